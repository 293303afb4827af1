"""The elastic OFA MobileNetV3 supernet, its progressive-shrinking trainer and bundled weights."""

#: the end of the line the trainer prints when a signal stops it (``python -m ofa_model.train``, ``ofa-profile train``)
TRAIN_INTERRUPTED = "finished work (decoded images, the last checkpoint) is kept; rerun the same command to resume"
