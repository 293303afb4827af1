import time

from ofa_profile.timing import Measurement, TimingConfig, fingerprint, fingerprint_mismatch, fix_malloc, measure_callable


def test_measurement_statistics():
    m = Measurement((1.0, 2.0, 3.0, 4.0, 100.0))
    assert m.median_ms == 3.0
    assert m.iqr_ms == 2.0  # q1=2, q3=4 (linear interpolation)
    assert m.count == 5
    assert abs(m.iqr_rel - 2 / 3) < 1e-12


def test_measure_callable_times_a_sleep():
    cfg = TimingConfig(warmup_runs=2, min_runs=10, max_runs=40, max_time_s=5.0, target_iqr_rel=0.5)
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.002)

    m = measure_callable(fn, cfg)
    assert 1.9 <= m.median_ms < 20
    assert len(calls) == cfg.warmup_runs + m.count
    assert 10 <= m.count <= 40
    assert m.stopped_by in ("iqr", "max_runs", "max_time")


def test_time_cap_stops_early():
    cfg = TimingConfig(warmup_runs=0, min_runs=1000, max_runs=1000, max_time_s=0.05, target_iqr_rel=0.0)
    m = measure_callable(lambda: time.sleep(0.005), cfg)
    assert m.stopped_by == "max_time" and m.count < 100


def test_sync_is_called_inside_timing():
    calls = []
    m = measure_callable(lambda: None, TimingConfig(warmup_runs=1, min_runs=5, max_runs=5), sync=lambda: calls.append(1))
    assert len(calls) == m.count + 1


def test_fingerprint_and_malloc_fix():
    assert fix_malloc() in (True, False)
    fp = fingerprint({"onnxruntime": "1.0"}, num_threads=1)
    assert fp["cpu_model"] and fp["num_threads"] == 1 and fp["runtime_versions"] == {"onnxruntime": "1.0"}
    other = dict(fp, runtime_versions={"onnxruntime": "2.0"})
    assert fingerprint_mismatch(fp, fp) == []
    assert fingerprint_mismatch(fp, other) == ["onnxruntime: '1.0' != '2.0'"]
