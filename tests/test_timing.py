import time

import numpy as np

from ofa_profile.timing import (Measurement, TimingConfig, fingerprint, fingerprint_mismatch, fix_malloc, measure_callable,
                                stop_reason)


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
    # the reason it reports is true of the times it kept (a loaded machine may stop it by any of the three)
    if m.stopped_by == "iqr":
        assert m.iqr_rel <= cfg.target_iqr_rel and cfg.min_runs <= m.count < cfg.max_runs and m.count % 5 == 0
    else:
        assert (m.stopped_by, m.count) in (("max_runs", cfg.max_runs), ("max_time", m.count)), m.stopped_by
        assert m.stopped_by == "max_runs" or m.count < cfg.max_runs


def test_stop_rules_iqr_and_median_confidence():
    """IQR/median <= target_iqr_rel stops; else 1.57 IQR / sqrt(n) / median <= target_ci_rel does (0: off).
    Noisy times (IQR/median 10 %): the median's 95 % half-width is 1.57 x 10 % / sqrt(n), under 2 % from
    n = 62, so the rule fires at the first check from there (n = 65), never before min_runs or between checks."""
    import random
    rng = random.Random(0)
    noisy = [10.0 * (1 + 0.2 * (i % 2 == 0) - 0.1) for i in range(200)]   # half 9 ms, half 11 ms: IQR/median 20 %
    rng.shuffle(noisy)
    cfg = TimingConfig(min_runs=30, max_runs=200, target_iqr_rel=0.03, target_ci_rel=0.04)
    fired = [n for n in range(1, 201) if stop_reason(noisy[:n], cfg)]

    def half_width(n):   # the same rule through numpy's quantiles
        q1, med, q3 = np.percentile(noisy[:n], [25, 50, 75])
        return 1.57 * (q3 - q1) / med / np.sqrt(n)
    want = next(n for n in range(30, 201, 5) if half_width(n) <= 0.04)
    assert 50 <= want <= 100 and fired[0] == want and stop_reason(noisy[:want], cfg) == "median_ci"
    assert all(n % 5 == 0 for n in fired)
    assert not any(stop_reason(noisy[:n], TimingConfig(min_runs=30, target_ci_rel=0.0)) for n in range(1, 201))
    quiet = [10.0 + 0.01 * (i % 3) for i in range(40)]
    assert stop_reason(quiet[:29], cfg) is None and stop_reason(quiet[:30], cfg) == "iqr"
    m = measure_callable(lambda: time.sleep(0.0005 * (1 + (len(calls2) % 2))) or calls2.append(1),
                         TimingConfig(warmup_runs=0, min_runs=10, max_runs=400, max_time_s=30, target_iqr_rel=0.0,
                                      target_ci_rel=0.2))
    assert m.stopped_by == "median_ci" and m.count < 400


calls2: list = []


def test_time_cap_stops_early():
    cfg = TimingConfig(warmup_runs=0, min_runs=1000, max_runs=1000, max_time_s=0.05, target_iqr_rel=0.0)
    m = measure_callable(lambda: time.sleep(0.005), cfg)
    assert m.stopped_by == "max_time" and m.count < 100


def test_sync_is_called_inside_timing():
    calls = []
    m = measure_callable(lambda: None, TimingConfig(warmup_runs=1, min_runs=5, max_runs=5), sync=lambda: calls.append(1))
    assert len(calls) == m.count + 1


def test_fingerprint_and_malloc_fix():
    import platform
    # applied exactly where the C library is glibc (this Linux: True; musl, macOS, Windows: False)
    assert fix_malloc() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    fp = fingerprint({"onnxruntime": "1.0"}, num_threads=1)
    assert fp["cpu_model"] and fp["num_threads"] == 1 and fp["runtime_versions"] == {"onnxruntime": "1.0"}
    other = dict(fp, runtime_versions={"onnxruntime": "2.0"})
    assert fingerprint_mismatch(fp, fp) == []
    assert fingerprint_mismatch(fp, other) == ["onnxruntime: '1.0' != '2.0'"]


def test_min_time_keeps_timing_past_the_stop_rules_and_max_runs():
    """With min_time_s a fast call is timed for at least that long (past max_runs and a stop rule that holds at
    once), and then stops; without it the same config stops at max_runs."""
    cfg = TimingConfig(warmup_runs=0, min_runs=5, max_runs=10, max_time_s=5.0, target_iqr_rel=1.0)
    assert measure_callable(lambda: None, cfg).count <= 10
    t0 = time.perf_counter()
    m = measure_callable(lambda: time.sleep(0.001), cfg, min_time_s=0.08)
    took = time.perf_counter() - t0
    assert took >= 0.08 and m.count > 10
    assert took < 2.0 and m.stopped_by in ("iqr", "max_runs")     # not the time cap


def test_subnet_min_time_is_a_checked_timing_setting():
    """subnet_min_time_s round-trips through a spec's timing mapping and is bounded like the others."""
    cfg = TimingConfig.from_mapping({"subnet_min_time_s": 0.25})
    assert cfg.subnet_min_time_s == 0.25 and cfg.as_dict()["subnet_min_time_s"] == 0.25
    assert cfg.problem() is None
    assert "subnet_min_time_s" in TimingConfig(subnet_min_time_s=-1).problem()
    assert TimingConfig().subnet_min_time_s == 0.0
