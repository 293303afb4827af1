"""ofa-profile: hardware profiling and latency modelling for Once-for-All (OFA) supernets.

Modules, one owner per fact:
  space      the elastic MobileNetV3 spaces and the subnet spec (OFA formats)
  ops        the op enumerator and OFA's LUT key grammar
  blocks     torch modules of exact shape for every op and whole subnets
  runtimes   CPU runtimes (PyTorch eager, ONNX Runtime, LiteRT) behind one interface
  tflite     the direct .tflite writer (no TensorFlow)
  timing     warm-up, repetition, IQR, malloc fix, hardware/software fingerprint
  lut        the versioned LUT JSON format, OFA YAML import/export, LUT-sum prediction
  measure    the resumable LUT builder
  calibrate  whole-net calibration stored as plain parameters in the LUT
  devices    device specs (device_specs/*.json) and their validation
  cli        the ``ofa-profile`` command
"""
__version__ = "0.1.0"
