"""One timing loop with a clock hook, one replicate policy (N passes, alternating order, the lowest median) shared
by measure, calibrate, drift and verify, and the noise judgement of a measured LUT, on the measurement side."""
import inspect
import statistics
import time

import numpy as np
import pytest

from ofa_profile.measure import Profiler
from ofa_profile.replicates import pass_order, per_item, run_passes
from ofa_profile.space import SubnetSpec
from ofa_profile.timing import PerfCounterClock, TimingConfig, measure_callable
from helpers import fast_spec


class ScriptedClock:
    """A clock of the timing loop that reads scripted durations (ms, cycling) and logs what it is asked."""

    def __init__(self, durations_ms, log=None):
        self.durations = list(durations_ms)
        self.n = 0
        self.log = log if log is not None else []

    def ready(self):
        self.log.append("ready")

    def start(self):
        self.log.append("start")

    def stop_ms(self):
        self.log.append("stop")
        d = self.durations[self.n % len(self.durations)]
        self.n += 1
        return d


class ScriptedProfiler(Profiler):
    """A profiler of this test: each op or subnet is a real (empty) call timed by the one timing loop with a
    ScriptedClock whose duration depends on the call number, so that passes disagree in a known way."""

    def __init__(self, device=None, fingerprint=None):
        self.device = device
        self._fp = fingerprint
        self.calls = []          # (key, median_ms) in the order measured

    def fingerprint(self):
        return dict(self._fp) if self._fp is not None else super().fingerprint()

    def _time(self, key):
        ms = 1.0 + 0.25 * ((len(self.calls) * 7) % 5)       # 1.0 .. 2.0 ms, varying from call to call
        m = measure_callable(lambda: None, TimingConfig(warmup_runs=1, min_runs=3, max_runs=3), clock=ScriptedClock([ms]))
        self.calls.append((key, m.median_ms))
        return m

    def measure_op(self, op, seed):
        return self._time(op.key)

    def measure_subnet(self, spec, seed):
        from ofa_profile.calibrate import _arch_key
        return self._time(_arch_key(spec))

    def lowest(self, key):
        return min(ms for k, ms in self.calls if k == key)


def alternating(keys, passes):
    return [k for p in range(passes) for k in (keys if p % 2 == 0 else keys[::-1])]


# -- the timing loop and its clock ---------------------------------------------------------------------------

def test_the_timing_loop_reads_the_clock_it_is_given():
    log = []
    m = measure_callable(lambda: log.append("call"), TimingConfig(warmup_runs=2, min_runs=5, max_runs=5),
                         clock=ScriptedClock([3.0, 1.0, 2.0, 5.0, 4.0], log))
    assert m.raw_ms == (3.0, 1.0, 2.0, 5.0, 4.0) and m.median_ms == 3.0 and m.iqr_ms == 2.0
    assert m.stopped_by == "max_runs" and m.warmup_runs == 2
    assert log == ["call", "call", "ready"] + ["start", "call", "stop"] * 5    # warm-up, ready, timed calls
    # the stop rules read the clock's times: a flat clock stops by IQR at the first check
    m = measure_callable(lambda: None, TimingConfig(warmup_runs=0, min_runs=10, max_runs=100, target_iqr_rel=0.01),
                         clock=ScriptedClock([2.0]))
    assert (m.count, m.stopped_by, m.iqr_ms, m.median_ms) == (10, "iqr", 0.0, 2.0)
    # the CPU clock: host wall time of a real sleep, its sync inside the timed region and once after warm-up
    synced = []
    m = measure_callable(lambda: time.sleep(0.002), TimingConfig(warmup_runs=1, min_runs=5, max_runs=5),
                         clock=PerfCounterClock(lambda: synced.append(1)))
    assert len(synced) == m.count + 1 == 6 and min(m.raw_ms) >= 2.0 and m.median_ms < 100
    with pytest.raises(ValueError, match="sync or clock"):
        measure_callable(lambda: None, sync=lambda: None, clock=ScriptedClock([1.0]))


def test_cuda_timing_is_the_same_loop_with_a_cuda_event_clock():
    from ofa_profile import cuda
    src = inspect.getsource(cuda.measure_cuda_events)
    assert "measure_callable(" in src and "CudaEventClock(" in src and "while" not in src
    assert {"ready", "start", "stop_ms"} <= set(vars(cuda.CudaEventClock))


# -- the replicate policy ----------------------------------------------------------------------------------

def test_passes_alternate_and_keep_the_lowest_median_of_real_timings():
    """Three passes over three real callables; some (item, pass) are slowed as by a burst of other load.
    The passes run forwards, backwards, forwards, and each item keeps the pass with the lowest median."""
    order = []
    burst = {("a", 0), ("c", 0), ("b", 1), ("c", 2)}

    def one(item, p):
        order.append((item, p))
        pause = 0.008 if (item, p) in burst else 0.001
        return measure_callable(lambda: time.sleep(pause), TimingConfig(warmup_runs=1, min_runs=5, max_runs=5))

    reps = run_passes(["a", "b", "c"], 3, per_item(one))
    assert order == [("a", 0), ("b", 0), ("c", 0), ("c", 1), ("b", 1), ("a", 1), ("a", 2), ("b", 2), ("c", 2)]
    assert reps.planned == tuple((p, i) for i, p in order) and reps.remaining == 9
    assert reps.lowest["c"] is reps.runs["c"][1]                     # the only pass of c without a burst
    for k in "abc":
        ms = reps.medians(k)
        assert len(ms) == 3 and reps.lowest[k].median_ms == min(ms)
        assert all(reps.lowest[k].median_ms < reps.runs[k][p].median_ms for p in range(3) if (k, p) in burst)
    assert pass_order("xyz", 0) == list("xyz") and pass_order("xyz", 3) == list("zyx")


def test_results_at_hand_are_not_measured_again_and_limit_stops_early():
    order = []
    measure = per_item(lambda item, p: order.append((item, p)) or float(len(order)))
    reps = run_passes(["x", "y", "z"], 2, measure, have={"y": {0: 0.5}, "w": {0: 9.0, 1: 8.0}}, limit=3)
    assert order == [("x", 0), ("z", 0), ("z", 1)] and reps.remaining == 5     # y's pass 0 was at hand
    assert reps.lowest == {"w": 8.0, "z": 2.0}                       # x and y lack a pass: no figure yet
    seen = []
    reps = run_passes(["a", "a", "b"], 1, per_item(lambda item, p: seen.append(item) or 1.0))
    assert seen == ["a", "b"] and reps.lowest == {"a": 1.0, "b": 1.0}    # one key, measured once a pass
    batches = []
    run_passes([1, 2, 3], 2, lambda batch, p, record: batches.append((p, batch)) or [record(i, i) for i in batch])
    assert batches == [(0, [1, 2, 3]), (1, [3, 2, 1])]                 # one batch a pass (remote profilers)
    with pytest.raises(ValueError, match="passes"):
        run_passes([1], 0, measure)


def test_measure_lut_passes_use_the_policy(tmp_path):
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import block_noise, measure_lut
    from ofa_profile.ops import enumerate_ops
    from ofa_profile.space import get_space

    dev = load_device(fast_spec(tmp_path, "torch"))
    prof = ScriptedProfiler(dev)
    r = measure_lut(dev, tmp_path / "l.json", [128], progress=False, profiler=prof, passes=3)
    keys = [op.key for _, op in enumerate_ops(get_space(dev.space), (128,))]
    assert [k for k, _ in prof.calls] == alternating(keys, 3) and r.measured == 3 * len(keys) and r.complete
    lut = load_lut(tmp_path / "l.json")
    assert {k: e.median_ms for k, e in lut.entries.items()} == {k: round(prof.lowest(k), 6) for k in keys}
    assert len({e.median_ms for e in lut.entries.values()}) > 1
    nz = block_noise(lut)                  # a steady clock: no spread, every block at its 3-run cap
    assert (nz.iqr_rel_median, nz.max_runs, nz.share_at_max_runs, nz.noisy) == (0.0, 3, 1.0, False)


def test_calibration_subnets_take_the_lowest_of_three_alternating_passes(tmp_path):
    from ofa_profile.calibrate import _arch_key, measure_subnets, sample_specs

    specs = sample_specs("ofa-mbv3-w1.0", 4, 1, [128])
    keys = [_arch_key(s) for s in specs]
    prof = ScriptedProfiler()
    got = measure_subnets(prof, specs, tmp_path / "j.jsonl", seed=0, progress=False, rounds=3)
    assert [k for k, _ in prof.calls] == alternating(keys, 3)
    assert got == [prof.lowest(k) for k in keys]
    firsts = [ms for _, ms in prof.calls[:4]]
    assert got != firsts and all(g <= f for g, f in zip(got, firsts))   # later passes won for some subnets


def test_drift_measures_like_calibration():
    from ofa_profile.calibrate import _arch_key, measure_drift
    from ofa_profile.lut import load_lut

    lut = load_lut("cpu-ort")
    prof = ScriptedProfiler(fingerprint=lut.fingerprint)
    d = measure_drift(lut, prof, 3, rounds=3, progress=False)
    keys = [_arch_key(s) for s in d.specs]
    assert len(keys) == 3 and [k for k, _ in prof.calls] == alternating(keys, 3)
    assert d.now_ms == tuple(prof.lowest(k) for k in keys)
    assert d.factor == statistics.median(b / a for a, b in zip(d.then_ms, d.now_ms))


def test_drift_subnets_span_the_held_out_sizes():
    """The drift is measured on held-out subnets from the smallest to the largest (a host's contention slows large
    subnets most), not on the first few held out, which may all be small."""
    from ofa_profile.calibrate import measure_drift
    from ofa_profile.lut import load_lut

    lut = load_lut("cpu-ort")
    held = [x for x in lut.calibration["samples"] if x["split"] == "test"]
    sums = sorted(lut.lut_sum_ms(SubnetSpec.from_ofa(x["arch"], space=lut.space)) for x in held)
    assert len(held) >= 6
    d = measure_drift(lut, ScriptedProfiler(fingerprint=lut.fingerprint), 3, rounds=1, progress=False)
    got = [lut.lut_sum_ms(s) for s in d.specs]
    assert got[0] == sums[0] and got[-1] == sums[-1]                  # the extremes of the held-out sizes
    assert got[1] == sums[round((len(sums) - 1) / 2)]                 # and the middle one
    one = measure_drift(lut, ScriptedProfiler(fingerprint=lut.fingerprint), 1, rounds=1, progress=False)
    assert [lut.lut_sum_ms(s) for s in one.specs] == [sums[len(sums) // 2]]


def test_every_replicate_caller_runs_the_one_policy():
    """measure, calibrate, drift and verify all call run_passes (and reverse no list of their own)."""
    from ofa_profile import calibrate, measure, pareto
    for fn in (measure.measure_lut, calibrate.measure_subnets, calibrate.measure_drift, pareto.verify_best):
        src = inspect.getsource(fn)
        assert "run_passes(" in src and "[::-1]" not in src and "% 2" not in src, fn.__name__


# -- the noise judgement -----------------------------------------------------------------------------------

def test_noise_judgement_of_a_measured_lut_on_real_numbers():
    from ofa_profile.lut import Lut, LutEntry, load_lut
    from ofa_profile.measure import NOISY_IQR_REL, block_noise, entry_from_measurement, timing_summary
    from ofa_profile.ops import ops_at_resolution

    ops = ops_at_resolution("ofa-mbv3-w1.0", 128)[:10]

    def lut_of(spread, timing):   # blocks timed by the loop with clock times 1, 1 + s, ..., 1 + 4 s
        ents = {}
        for op in ops:
            m = measure_callable(lambda: None, TimingConfig(warmup_runs=0, min_runs=5, max_runs=5),
                                 clock=ScriptedClock([1 + spread * j for j in range(5)]))
            e = entry_from_measurement(m)
            ents[op.key] = LutEntry(**{**e, "raw_ms": tuple(e["raw_ms"])})
        return Lut(space="ofa-mbv3-w1.0", device="t", runtime="torch", entries=ents,
                   provenance={"timing": timing} if timing is not None else {})

    quiet, noisy = block_noise(lut_of(0.01, {"max_runs": 5})), block_noise(lut_of(0.05, {"max_runs": 10}))
    assert quiet.iqr_rel_median == pytest.approx(0.02 / 1.02, abs=1e-5) and not quiet.noisy
    assert noisy.iqr_rel_median == pytest.approx(0.10 / 1.10, abs=1e-5) and noisy.noisy
    assert (quiet.max_runs, quiet.share_at_max_runs, noisy.max_runs, noisy.share_at_max_runs) == (5, 1.0, 10, 0.0)
    assert quiet.as_dict() == {"iqr_rel_median": quiet.iqr_rel_median, "max_runs": 5, "share_at_max_runs": 1.0}
    bare = block_noise(lut_of(0.05, None))
    assert bare.max_runs is None and bare.share_at_max_runs is None and bare.noisy
    # a shipped LUT measured on a real machine: the same figures through numpy
    lut = load_lut("cpu-ort")
    rel = [e.iqr_ms / e.median_ms for e in lut.entries.values() if e.median_ms > 0]
    nz = block_noise(lut)
    assert nz.iqr_rel_median == round(float(np.median(rel)), 5) and nz.noisy == (np.median(rel) > NOISY_IQR_REL)
    assert nz.max_runs == lut.provenance["timing"]["max_runs"] == timing_summary(lut)["settings"]["max_runs"]
