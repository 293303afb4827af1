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
  transports where a device is reached: adb (phones) and ssh (boards); remote_worker runs on the board
  benchmark_model  the parser of TFLite benchmark_model's output
  cuda       the PyTorch CUDA runtime (CUDA events, synchronisation, optional CUDA graphs)
  accuracy   architecture encodings and accuracy predictors stored as plain JSON
  adapt      few-shot latency models of devices one cannot run on
  search     constrained evolutionary and multi-objective (frontier) search
  plots      headless matplotlib figures
  cli        the ``ofa-profile`` command
  clierrors  how the three command lines end: exit codes 0/1/2/128+signal, one line, Ctrl-C/SIGTERM handling
  cliopts    option value types shared by the command lines (ranges, resolutions, seeds, devices)
"""
__version__ = "0.1.0"
