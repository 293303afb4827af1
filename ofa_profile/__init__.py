"""ofa-profile: hardware profiling and latency modelling for Once-for-All (OFA) supernets.

Modules, one owner per fact:
  space      the elastic spaces (data) and the subnet spec (OFA formats); the space registry
  families   one module per supernet family (MobileNetV3, ProxylessNAS): its spaces and LUT key grammar
  ops        the op enumerator, the op chain of a subnet, the key-grammar registry
  blocks     torch modules of exact shape for every op and whole subnets
  runtimes   the runtime registry; CPU runtimes (PyTorch eager, ONNX Runtime, LiteRT) behind one interface
  tflite     the direct .tflite writer (no TensorFlow)
  timing     one timing loop (clock hook), warm-up, repetition, IQR, malloc fix, fingerprint
  replicates one replicate policy: passes over items in alternating order, lowest median
  lut        loading LUTs (lut_format: the JSON format and its checks; lut_ofa: OFA's tables per family;
             lut_report: what the lut/predict commands report)
  measure    the resumable LUT builder
  calibrate  whole-net calibration: measuring subnets, fitting, drift
  calibration the stored calibration model (features, prediction, checks), below lut
  devicespec the device spec value (DeviceSpec, DeviceError), below the transports
  devices    device specs (device_specs/*.json): loading, validation, reachability
  transports where a device's ops run: the transport registry, the Profiler interface, one module per
             transport (local, adb phones, ssh boards); remote_worker runs on the board
  benchmark_model  the parser of TFLite benchmark_model's output
  cuda       the PyTorch CUDA runtime (CUDA events, synchronisation, optional CUDA graphs)
  encodings  architectures as arrays, block cost tables
  accuracy   accuracy predictors stored as plain JSON (accuracy_data: CSVs; accuracy_components: stored parts)
  adapt      few-shot latency models of devices one cannot run on
  latency    latency sources for search (LUT, calibration, adapter, MACs)
  search     constrained evolutionary and multi-objective (frontier) search (genomes, evolution, knapsack)
  pareto     one pareto run as data (margins, verify tolerance, drift refresh)
  figures    what each figure shows; plots draws it (headless matplotlib)
  cli        the ``ofa-profile`` group; commands/ holds the commands, one module per area
  clierrors  how the three command lines end: exit codes 0/1/2/128+signal, one line, Ctrl-C/SIGTERM handling
  console    the ``ofa-profile`` console script (signal handlers first, then cli)
  cliopts    option value types shared by the command lines (ranges, resolutions, seeds, devices)
"""
__version__ = "0.1.0"

from . import families  # noqa: E402,F401  (registers the spaces and key grammars)
