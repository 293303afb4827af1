"""The elastic OFA MobileNetV3 supernet, its progressive-shrinking trainer and bundled weights."""
