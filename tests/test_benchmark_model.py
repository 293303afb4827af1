"""The benchmark_model output parser, on REAL output pasted from public issue threads.

Each sample names where it was found.  Samples marked "constructed" follow the format of
TensorFlow's source (named) because no real paste of that case was found.
"""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ofa_profile.benchmark_model import BenchmarkOutputError, first_lines, parse_benchmark_output

# Source: google/XNNPACK issue #999 ("support for quantized tflite models"), Raspberry Pi,
# ./benchmark_model --graph=yolo_best_recall_int8_static.tflite --enable_op_profiling=true --num_threads=4
XNNPACK_999 = """\
pi@raspberrypi:~/aXeleRate/example_scripts/tensorflow_lite/detector $ ./benchmark_model --graph=yolo_best_recall_int8_static.tflite  --enable_op_profiling=true --num_threads=4STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [yolo_best_recall_int8_static.tflite]
Enable op profiling: [1]
#threads used for CPU inference: [4]
Loaded model yolo_best_recall_int8_static.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 3.67827
Initialized session in 18.777ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=9 first=64791 curr=56295 min=54873 max=65831 avg=57758.2 std=4065

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=58154 curr=53809 min=53077 max=60727 avg=55043.2 std=1562

Inference timings in us: Init: 18777, First inference: 64791, Warmup (avg): 57758.2, Inference (avg): 55043.2
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=8.97656 overall=18.7227
Profiling Info for Benchmark Initialization:
============================== Run Order =================
"""

# Source: tensorflow/tensorflow issue #42507 ("Timing discrepancy between tflite benchmark tool and android"),
# Android phone, op profiling on; newer "Peak memory footprint" wording.
TF_42507 = """\
STARTING!
Duplicate flags: num_threads
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [/data/local/tmp/espcn_harmonic_2x_slim_w_cl.tflite]
Enable op profiling: [1]
#threads used for CPU inference: [4]
Loaded model /data/local/tmp/espcn_harmonic_2x_slim_w_cl.tflite
The input model file size (MB): 0.004448
Initialized session in 0.855ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=15 first=49060 curr=33682 min=32825 max=49060 avg=34825.1 std=3930

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=32891 curr=33978 min=32641 max=34005 avg=33209.4 std=450

Inference timings in us: Init: 855, First inference: 49060, Warmup (avg): 34825.1, Inference (avg): 33209.4
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=0 overall=12.8672
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
"""

# Source: tensorflow/tensorflow issue #61946 ("TFLite with default cmake build, xnnpack does not work for
# quantized model"), x86 Linux cmake build: every line prefixed "INFO: ".
TF_61946 = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Graph: [./mobilenet_v1_1.0_224_quant.tflite]
INFO: Loaded model ./mobilenet_v1_1.0_224_quant.tflite
INFO: The input model file size (MB): 4.27635
INFO: Initialized session in 0.53ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=5 first=124020 curr=116061 min=115177 max=124020 avg=117225 std=3412

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=121183 curr=115199 min=111222 max=121324 avg=116066 std=1906

INFO: Inference timings in us: Init: 530, First inference: 124020, Warmup (avg): 117225, Inference (avg): 116066
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.75 overall=12.1914
"""

# Source: tensorflow/tensorflow issue #56301 ("Tflite model not work correctly on NNAPI-GPU delegate"):
# the Android benchmark app's logcat, with logcat prefixes on every line.
TF_56301_LOGCAT = """\
05-30 15:16:44.857  3380  3380 I tflite  : Explicitly applied NNAPI delegate, and the model graph will be partially executed by the delegate w/ 44 delegate kernels.
05-30 15:16:44.858  3380  3380 I tflite  : The input model file size (MB): 0.113392
05-30 15:16:44.858  3380  3380 I tflite  : Initialized session in 126.059ms.
05-30 15:16:44.858  3380  3380 I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
05-30 15:16:45.362  3380  3380 I tflite  : count=40 first=32942 curr=12594 min=11340 max=32942 avg=12581.9 std=3331
05-30 15:16:45.362  3380  3380 I tflite  : Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
05-30 15:16:46.365  3380  3380 I tflite  : count=75 first=12840 curr=11853 min=11787 max=13649 avg=12167.6 std=325
05-30 15:16:46.366  3380  3380 I tflite  : Inference timings in us: Init: 126059, First inference: 32942, Warmup (avg): 12581.9, Inference (avg): 12167.6
05-30 15:16:46.366  3380  3380 I tflite  : Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
"""

# Source: tensorflow/tensorflow issue #59997 ("How to benchmark TFLite object detection model"):
# `adb logcat | grep "Inference timings in us"`: summary lines only, in scientific notation.
TF_59997_GREP = [
    "03-15 14:00:51.294 12836 12836 I tflite  : Inference timings in us: Init: 36618, First inference: 1530248, "
    "Warmup (avg): 1.53025e+06, Inference (avg): 1.49712e+06",
    "03-15 14:13:43.409 13393 13393 I tflite  : Inference timings in us: Init: 33412, First inference: 307818, "
    "Warmup (avg): 297955, Inference (avg): 333826",
]

# Source: google-research/google-research issue #802 ("Realtime implemetation/working of the kws_streaming
# models"): Android, 1 thread, --num_runs=1000.
GR_802 = """\
STARTING!
Log parameter values verbosely: [0]
Min num runs: [1000]
Num threads: [1]
Min warmup runs: [1]
Graph: [/data/local/tmp/model.tflite]
#threads used for CPU inference: [1]
Loaded model /data/local/tmp/model.tflite
The input model file size (MB): 1.41812
Initialized session in 17.851ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=478 first=2104 curr=1017 min=1012 max=2104 avg=1041.15 std=63

Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=1000 first=1040 curr=1018 min=1012 max=1190 avg=1039.66 std=22

Inference timings in us: Init: 17851, First inference: 2104, Warmup (avg): 1041.15, Inference (avg): 1039.66
"""

# Source: yuenshome/yuenshome.github.io issue #77 ("tflite benchmark"): a 2018/2019 (TF 1.x) binary on
# armeabi-v7a / arm64-v8a phones, with the old "Average inference timings in us" summary.
YUENSHOME_77_TF1 = """\
Loaded model /data/local/tmp/tflite/tfmodel/mobilenet_v1_1.0_224_quant.tflite
resolved reporter
Initialized session in 9.933ms
Running benchmark for at least 4 iterations and at least 0.5 seconds
count=7 first=127425 curr=66709 min=66709 max=127425 avg=76605.9 std=20944

Running benchmark for at least 10 iterations and at least 1 seconds
count=15 first=66753 curr=66800 min=66699 max=66838 avg=66767.6 std=39

Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6
"""

# Same source: the end of one run, then the (truncated) next run of the author's loop, in one paste.
YUENSHOME_77_TWO_RUNS = """\
Initialized session in 9.89ms
Running benchmark for at least 4 iterations and at least 0.5 seconds
count=4 first=606701 curr=568090 min=567461 max=606701 avg=577904 std=16640

Running benchmark for at least 10 iterations and at least 1 seconds
count=10 first=566841 curr=235081 min=232432 max=566895 avg=420334 std=156392

Average inference timings in us: Warmup: 577904, Init: 9890, no stats: 420334
echo '[INFO] ==== arm64-v8a USE_GPU:false-2 /data/local/tmp/tflite/tfmodel/squeezenet.tflite ===='
STARTING!
Min num runs: [10]
Num threads: [2]
Graph: [/data/local/tmp/tflite/tfmodel/squeezenet.tflite]
nnapi error: unable to open library libneuralnetworks.so
Loaded model /data/local/tmp/tflite/tfmodel/squeezenet.tflite
resolved reporter
Initialized session in 5.93ms
Running benchmark for at least 4 iterations and at least 0.5 seconds
count=4 first=198994 curr=183966 min=183966 max=198994 avg=189810 std=5773

Running benchmark for at least 10 iterations and at least 1 seconds
count=10 first=184543 curr=188201 min=183201 max=1
"""

# Source: tensorflow/tensorflow issue #42956 ("benchmark error cannot run in phone"): an arm64 binary
# pushed to a phone whose shell cannot run it.
TF_42956_WRONG_ARCH = """\
/system/bin/sh: ./benchmark_model: not executable: 64-bit ELF file
"""

# Constructed from tsl/util/stats_calculator.h Stat::OutputToStream (tensorflow/tensorflow): when every
# run took the same time it prints only "count=N curr=T(all same)"; no real paste of this case was found.
CONSTRUCTED_ALL_SAME = """\
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=3 curr=5(all same)

Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=5 curr=4(all same)

Inference timings in us: Init: 120, First inference: 5, Warmup (avg): 5, Inference (avg): 4
"""

# Constructed from an older stats_calculator.h (tensorflow fork, pre-2019) that printed "curr=" before
# "count=" and no "first=": the parser reads key=value pairs in any order.
CONSTRUCTED_OLD_ORDER = """\
Running benchmark for at least 4 iterations and at least 0.5 seconds
curr=66709 count=7 min=66709 max=127425 avg=76605.9 std=20944

Running benchmark for at least 10 iterations and at least 1 seconds
curr=66800 count=15 min=66699 max=66838 avg=66767.6 std=39

Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6
"""


@pytest.mark.parametrize("text, count, avg_ms, min_ms, max_ms, std_ms, init_ms, warm_n, warm_ms", [
    (XNNPACK_999, 50, 55.0432, 53.077, 60.727, 1.562, 18.777, 9, 57.7582),
    (TF_42507, 50, 33.2094, 32.641, 34.005, 0.450, 0.855, 15, 34.8251),
    (TF_61946, 50, 116.066, 111.222, 121.324, 1.906, 0.530, 5, 117.225),
    (TF_56301_LOGCAT, 75, 12.1676, 11.787, 13.649, 0.325, 126.059, 40, 12.5819),
    (GR_802, 1000, 1.03966, 1.012, 1.190, 0.022, 17.851, 478, 1.04115),
    (YUENSHOME_77_TF1, 15, 66.7676, 66.699, 66.838, 0.039, 9.933, 7, 76.6059),
    (CONSTRUCTED_OLD_ORDER, 15, 66.7676, 66.699, 66.838, 0.039, 9.933, 7, 76.6059),
])
def test_real_samples(text, count, avg_ms, min_ms, max_ms, std_ms, init_ms, warm_n, warm_ms):
    r = parse_benchmark_output(text)
    assert r.count == count
    assert r.avg_ms == pytest.approx(avg_ms, rel=1e-9)
    assert (r.min_ms, r.max_ms, r.std_ms) == pytest.approx((min_ms, max_ms, std_ms), rel=1e-9)
    assert r.init_ms == pytest.approx(init_ms, rel=1e-9)
    assert r.warmup_count == warm_n and r.warmup_avg_ms == pytest.approx(warm_ms, rel=1e-9)
    assert r.min_ms <= r.avg_ms <= r.max_ms


def test_first_and_curr_of_timed_phase():
    r = parse_benchmark_output(XNNPACK_999)
    assert r.tool == "benchmark_model"
    assert r.first_ms == pytest.approx(58.154) and r.last_ms == pytest.approx(53.809)
    assert r.first_inference_ms == pytest.approx(64.791)   # the very first (warm-up) run
    assert parse_benchmark_output(YUENSHOME_77_TF1).tool == "benchmark_model-tf1"


def test_summary_only_lines_in_scientific_notation():
    a = parse_benchmark_output(TF_59997_GREP[0])
    assert a.count is None and a.avg_ms == pytest.approx(1497.12)
    assert a.warmup_avg_ms == pytest.approx(1530.25) and a.init_ms == pytest.approx(36.618)
    b = parse_benchmark_output(TF_59997_GREP[1])
    assert b.avg_ms == pytest.approx(333.826)


def test_all_same_stats_line():
    r = parse_benchmark_output(CONSTRUCTED_ALL_SAME)
    assert r.count == 5 and r.avg_ms == r.min_ms == r.max_ms == pytest.approx(0.004) and r.std_ms == 0
    assert r.warmup_count == 3


def test_two_runs_in_one_output_are_refused():
    with pytest.raises(BenchmarkOutputError, match="runs in one output"):
        parse_benchmark_output(YUENSHOME_77_TWO_RUNS)
    with pytest.raises(BenchmarkOutputError, match="runs in one output"):
        parse_benchmark_output("\n".join(TF_59997_GREP))


def test_wrong_architecture_binary_is_one_clear_line():
    with pytest.raises(BenchmarkOutputError) as ei:
        parse_benchmark_output(TF_42956_WRONG_ARCH)
    msg = str(ei.value)
    assert "\n" not in msg and "no timings" in msg and "not executable: 64-bit ELF file" in msg


@pytest.mark.parametrize("text, needle", [
    ("", "no timings"),
    ("Segmentation fault\n", "Segmentation fault"),
    # a run cut off after the warm-up phase (device unplugged, process killed)
    (XNNPACK_999.split("Running benchmark for at least 50")[0], "no statistics for its timed runs"),
    # the timed phase started but its statistics never came
    (TF_42507.split("count=50")[0], "no statistics for its timed runs"),
    (TF_42507.replace("avg=33209.4", "avg=43209.4"), "inconsistent averages"),
    ("Running benchmark for at least 1 iterations\ncount=0\nRunning benchmark for at least 1 iterations\ncount=0\n",
     "count=0"),
])
def test_truncated_or_garbled_output(text, needle):
    with pytest.raises(BenchmarkOutputError) as ei:
        parse_benchmark_output(text, source="benchmark_model on pixel")
    msg = str(ei.value)
    assert needle in msg and "\n" not in msg and msg.startswith("benchmark_model on pixel printed")


def test_first_lines_is_one_line():
    assert first_lines("a\n\n b \nc\nd") == "a | b | c"
    assert first_lines("") == "(no output)"
    assert len(first_lines("x" * 500)) == 160


# Captured on this machine: ai-edge-litert 2.3.0's `litert-benchmark` (a Python port of benchmark_litert_model)
# on a 14x14x80 MBConv block written by ofa_profile.tflite (--num_threads=1 --warmup_runs=5 --num_runs=20); a
# few of its stderr lines first, as the profiler sees them (2>&1), OpenVINO plugin error included.
LITERT_BENCHMARK_CAPTURED = """\
2026-11-22 08:14:39 INFO benchmark_litert_model: Model:           /tmp/blk.tflite
2026-11-22 08:14:39 INFO benchmark_litert_model: Num threads:     1
WARNING: [compiler_plugin.cc:312] Failed to load plugin at: /work/main/.venv/lib/python3.11/site-packages/ai_edge_litert/vendors/intel_openvino/compiler/libLiteRtCompilerPlugin_IntelOpenvino.so with error: ERROR: [litert/compiler/plugin/compiler_plugin.cc:259]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
2026-11-22 08:14:39 INFO benchmark_litert_model: Running 20 benchmark iterations...

========================================
 BENCHMARK RESULTS
========================================
Model initialization:  1.36 ms
Warmup (first):        0.26 ms
Warmup (avg):          0.18 ms (5 runs)
Inference (avg):       0.18 ms (20 runs)
Inference (min):       0.16 ms
Inference (max):       0.23 ms
Inference (median):    0.17 ms
Inference (std):       0.02 ms
Inference (p5):        0.16 ms
Inference (p95):       0.19 ms
Throughput:            341.12 MB/s
Fully accelerated:     True
========================================
"""


def test_litert_benchmark_block():
    r = parse_benchmark_output(LITERT_BENCHMARK_CAPTURED)
    assert r.tool == "litert-benchmark" and r.count == 20 and r.avg_ms == 0.18 and r.median_ms == 0.17
    assert (r.min_ms, r.max_ms, r.std_ms) == (0.16, 0.23, 0.02)
    assert r.warmup_count == 5 and r.warmup_avg_ms == 0.18 and r.init_ms == 1.36 and r.first_inference_ms == 0.26
    with pytest.raises(BenchmarkOutputError, match="BENCHMARK RESULTS"):
        parse_benchmark_output(LITERT_BENCHMARK_CAPTURED.replace("Inference (avg)", "Inference (mean)"))


LITERT_BENCHMARK = Path(sys.executable).with_name("litert-benchmark")


@pytest.mark.skipif(not LITERT_BENCHMARK.exists(), reason="litert-benchmark (ai-edge-litert wheel) is not installed")
def test_live_litert_benchmark_output(tmp_path):
    """Run the real tool on a block written by ofa-profile's own .tflite writer and parse what it prints."""
    torch = pytest.importorskip("torch")
    from ofa_profile.blocks import op_input, op_module
    from ofa_profile.ops import parse_key
    from ofa_profile.tflite import write_tflite

    op = parse_key("expanded_conv-input:14x14x80-output:14x14x80-expand:240-kernel:3-stride:1-idskip:1-se:0-hs:1")
    path = tmp_path / "block.tflite"
    with torch.inference_mode():
        write_tflite(op_module(op, seed=0), op_input(op, seed=0, batch=1), path)
    out = subprocess.run([str(LITERT_BENCHMARK), f"--model={path}", "--num_threads=1", "--warmup_runs=3",
                          "--num_runs=10"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, first_lines(out.stdout + out.stderr, 6)
    r = parse_benchmark_output(out.stdout + out.stderr, source="litert-benchmark")
    assert r.tool == "litert-benchmark" and r.count == 10 and r.warmup_count == 3
    assert 0 < r.min_ms <= r.median_ms <= r.max_ms and math.isfinite(r.avg_ms)
