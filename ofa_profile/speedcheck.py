"""The speed check: how fast this machine runs a LUT's blocks now, relative to the figures the LUT stores.

A LUT is measured on one machine, and a fingerprint that reads "AMD EPYC, 2 logical CPUs" fits machines that
run the same blocks 2.4x apart.  :func:`speed_check` times a small fixed set of the LUT's blocks
(:func:`select_blocks`) on a device the way ``measure`` timed them (the device's profiler with the LUT's own timing
settings, seed, batch size and number of passes, the lowest median of the passes) and compares: ``factor`` is the
median over the blocks of now / then, > 1 where this machine is slower than the LUT says.  A factor off by more
than :data:`TOLERANCE` (15 %) means the LUT's latencies are wrong here (:meth:`SpeedCheck.off`).

:func:`cached_speed_check` keeps the result per machine and LUT in the user's cache (keyed by the LUT file's
sha256, a hash of this machine (:func:`machine_id`), the device and the number of blocks), so only the first call
pays the few seconds; ``lut check`` measures again and refreshes it.  :func:`shipped_lut_check` is the policy of
``predict`` and ``pareto``: a *shipped* LUT (one of the package's ``lut/`` folder) used on a *local* device is
checked; a user's own LUT file, a device over adb or ssh, or ``OFA_PROFILE_NO_SPEED_CHECK=1`` is not.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .argsafety import shell_command
from .atomic import write_json_atomic
from .devices import list_devices, load_device
from .errors import OfaProfileError
from .jsonio import JsonInputError, read_json_file
from .lut import is_shipped, lut_sha256
from .ops import ops_at_resolution
from .paths import safe_name, user_cache_dir
from .replicates import run_passes
from .runtimes import get_runtime
from .timing import TimingConfig, machine_info
from .transports import make_profiler, precision_available

if TYPE_CHECKING:  # pragma: no cover
    from .devicespec import DeviceSpec
    from .lut_format import Lut
    from .ops import Op
    from .transports.base import Profiler

__all__ = ["TOLERANCE", "DEFAULT_BLOCKS", "MAX_BLOCKS", "NO_CHECK_ENV", "BlockRatio", "SpeedCheck", "select_blocks",
           "check_device", "speed_check", "machine_id", "cache_path", "cached_speed_check", "is_shipped",
           "shipped_lut_check", "speed_warning", "measure_hint", "check_for_command"]

TOLERANCE = 0.15              # a factor above 1.15 or below 1/1.15 means the LUT is off on this machine
DEFAULT_BLOCKS = 8            # 4 at the LUT's smallest resolution, 4 at its largest
MAX_BLOCKS = 64
MAX_PASSES = 3                # the LUT's own passes (the shipped ones: 3), at most this many
MAX_BLOCK_S = 2.0             # the LUT's time cap per block (the shipped ones: 2 s), at most this
NO_CHECK_ENV = "OFA_PROFILE_NO_SPEED_CHECK"
MIN_FACTOR, MAX_FACTOR = 0.02, 50.0   # a cached factor outside this range is not believed (and re-measured)
FACTOR_AGREEMENT = 1e-3       # a cached factor is the median of its blocks' ratios within this (relative)
CACHE_FORMAT = "ofa-profile-speed-check"
CACHE_VERSION = 1
CACHE_MAX_BYTES = 1 << 20     # a cache file of MAX_BLOCKS blocks is ~15 KB

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


@dataclass(frozen=True)
class BlockRatio:
    """One checked block: its LUT figure (``then_ms``) and the lowest median of its passes now (``now_ms``)."""
    key: str
    resolution: int
    then_ms: float
    now_ms: float

    @property
    def ratio(self) -> float:
        return self.now_ms / self.then_ms

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "resolution": self.resolution, "then_ms": self.then_ms, "now_ms": self.now_ms,
                "ratio": round(self.ratio, 5)}


@dataclass(frozen=True)
class SpeedCheck:
    """A LUT's blocks timed on a device now: ``factor`` = median over the blocks of now / then."""
    factor: float
    blocks: tuple[BlockRatio, ...]
    seconds: float             # the measuring (profiler start included); a cached result keeps its first figure
    device: str
    lut: str
    passes: int
    checked_utc: str
    cached: bool = False

    @property
    def off(self) -> bool:
        """The LUT's latencies are off by more than :data:`TOLERANCE` on this machine."""
        return self.factor > 1 + TOLERANCE or self.factor < 1 / (1 + TOLERANCE)

    def describe(self) -> str:
        """``1.33x faster`` / ``2.41x slower`` / ``as fast``: this machine relative to the LUT."""
        if abs(self.factor - 1) < 0.005:
            return "as fast as"
        return f"{self.factor:.2f}x slower than" if self.factor > 1 else f"{1 / self.factor:.2f}x faster than"

    def as_dict(self) -> dict[str, Any]:
        return {"factor": round(self.factor, 5), "blocks": len(self.blocks), "seconds": round(self.seconds, 2),
                "off": self.off, "tolerance": TOLERANCE, "device": self.device, "lut": self.lut,
                "passes": self.passes, "checked_utc": self.checked_utc, "cached": self.cached,
                "per_block": [b.as_dict() for b in self.blocks]}

    @classmethod
    def from_dict(cls, d: Any) -> "SpeedCheck":
        """The inverse of :meth:`as_dict` (a cache file); ``ValueError`` where ``d`` is not one: every field of its
        JSON type (a number is a JSON number, never a string), every figure positive and finite, and the factor
        the median of its own per-block ratios (within :data:`FACTOR_AGREEMENT`) and within
        [:data:`MIN_FACTOR`, :data:`MAX_FACTOR`]."""
        import math

        def num(v: Any, what: str) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{what} {v!r} is not a finite JSON number")
            return float(v)

        def integer(v: Any, what: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{what} {v!r} is not a JSON integer")
            return v

        def text(v: Any, what: str) -> str:
            if not isinstance(v, str):
                raise ValueError(f"{what} {v!r} is not a string")
            return v

        if not isinstance(d, Mapping) or not isinstance(d.get("per_block"), list):
            raise ValueError("not a speed check (no per_block list)")
        try:
            blocks = []
            for b in d["per_block"]:
                if not isinstance(b, Mapping):
                    raise ValueError("a per_block item is not an object")
                blocks.append(BlockRatio(text(b["key"], "key"), integer(b["resolution"], "resolution"),
                                         num(b["then_ms"], "then_ms"), num(b["now_ms"], "now_ms")))
            chk = cls(num(d["factor"], "factor"), tuple(blocks), num(d["seconds"], "seconds"),
                      text(d["device"], "device"), text(d["lut"], "lut"), integer(d["passes"], "passes"),
                      text(d["checked_utc"], "checked_utc"))
        except KeyError as exc:
            raise ValueError(f"not a speed check (no {exc})") from None
        positive = [chk.factor] + [x for b in blocks for x in (b.then_ms, b.now_ms)]
        if not blocks or not all(x > 0 for x in positive) or chk.seconds < 0 or not 1 <= chk.passes <= MAX_PASSES:
            raise ValueError("not a speed check (no blocks, or a figure that is not a positive number)")
        if not MIN_FACTOR <= chk.factor <= MAX_FACTOR:
            raise ValueError(f"factor {chk.factor:g} is outside [{MIN_FACTOR:g}, {MAX_FACTOR:g}]")
        median = statistics.median(b.ratio for b in blocks)
        if abs(chk.factor - median) > FACTOR_AGREEMENT * median:
            raise ValueError(f"factor {chk.factor:g} is not the median of its blocks' ratios ({median:g})")
        return chk


# -- which blocks -------------------------------------------------------------------------------------

def select_blocks(lut: "Lut", n: int = DEFAULT_BLOCKS) -> list[tuple[int, "Op"]]:
    """The blocks a speed check times, fixed by a rule so that two checks of a LUT compare the same blocks: the
    elastic blocks (``expanded_conv``) the LUT holds at its smallest and at its largest resolution (those it covers
    completely, else those it has begun), each list sorted by MACs (then key), ``n`` picks spread evenly over
    them (the largest resolution takes the odd one; a block both share counts at the smaller one only): small,
    medium and large blocks at both ends.  Fewer where the LUT holds fewer; a LUT with none is refused (one
    line)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BLOCKS:
        raise OfaProfileError(f"the number of blocks to check must be 1..{MAX_BLOCKS}, got {n!r}")
    res = tuple(lut.resolutions) or tuple(sorted(lut.coverage()))
    if not res:
        raise OfaProfileError(f"LUT {lut.source} holds no resolution, so no blocks to check")
    ends = sorted({min(res), max(res)})
    want = {ends[0]: n} if len(ends) == 1 else {ends[0]: n // 2, ends[1]: n - n // 2}
    out: list[tuple[int, Op]] = []
    for r in ends:
        taken = {op.key for _, op in out}       # a block both resolutions share is checked once
        cands = sorted((op for op in ops_at_resolution(lut.space, r)
                        if op.kind == "expanded_conv" and op.key in lut.entries and op.key not in taken),
                       key=lambda op: (op.macs(), op.key))
        k = min(want[r], len(cands))
        out += [(r, cands[int((i + 0.5) * len(cands) / k)]) for i in range(k)]
    if not out:
        raise OfaProfileError(f"LUT {lut.source} holds no block (expanded_conv) at r={','.join(map(str, ends))} "
                              f"to check")
    return out


# -- measuring -----------------------------------------------------------------------------------------

def check_device(lut: "Lut", device: "DeviceSpec") -> None:
    """Refuse (one line) a device that cannot re-measure the LUT's figures: another runtime or thread count."""
    if device.runtime != lut.runtime:
        same = [d.name for d in list_devices() if d.runtime == lut.runtime and not d.template]
        raise OfaProfileError(f"device {device.name} runs {device.runtime} but LUT {lut.source} was measured with "
                              f"{lut.runtime}: check it with a device of that runtime"
                              + (f" ({', '.join(same)})" if same else ""))
    if lut.num_threads is not None and device.num_threads != lut.num_threads:
        raise OfaProfileError(f"device {device.name} runs {device.num_threads} thread(s) but LUT {lut.source} was "
                              f"measured with {lut.num_threads}: check it with --threads {lut.num_threads} (this "
                              f"machine's CPU runtimes) or a device spec of {lut.num_threads}")
    ok, why = precision_available(device, lut.timed.precision)
    if not ok:
        raise OfaProfileError(f"LUT {lut.source} holds {lut.timed.precision} blocks: {why}")


def _timing(lut: "Lut") -> Any:
    """The LUT's own timing settings (a :class:`~ofa_profile.timing.TimingConfig`; its time cap per block at most
    :data:`MAX_BLOCK_S`, so a check stays a few seconds), None where it recorded none usable (the device's are
    used then)."""
    t = lut.provenance.get("timing")
    if not isinstance(t, Mapping):
        return None
    cfg = TimingConfig.from_mapping(t)
    if cfg.problem():
        return None
    return replace(cfg, max_time_s=min(cfg.max_time_s, MAX_BLOCK_S))


def _int_field(v: Any, default: int, lo: int, hi: int) -> int:
    return min(hi, max(lo, v)) if isinstance(v, int) and not isinstance(v, bool) else default


def speed_check(lut: "Lut", device: "DeviceSpec", n_blocks: int = DEFAULT_BLOCKS, *,
                profiler: "Profiler | None" = None) -> SpeedCheck:
    """Time :func:`select_blocks` of ``lut`` on ``device`` as ``measure`` timed them (the LUT's timing settings,
    seed, batch size and passes, at most :data:`MAX_PASSES`; each block's lowest median) and compare with the
    LUT's figures.  ``profiler``: one already open for ``device`` (else one is opened and closed here)."""
    check_device(lut, device)
    blocks = select_blocks(lut, n_blocks)
    then = {op.key: lut.entry(op.key, r).median_ms for r, op in blocks}
    blocks = [(r, op) for r, op in blocks if then[op.key] > 0]
    if not blocks:
        raise OfaProfileError(f"LUT {lut.source} stores 0 ms for every block it would check")
    seed = _int_field(lut.provenance.get("seed"), 0, 0, 2 ** 63)
    passes = _int_field(lut.provenance.get("passes"), 1, 1, MAX_PASSES)
    t0 = time.perf_counter()
    cfg = _timing(lut)
    prof = profiler or make_profiler(device, batch_size=lut.batch_size, precision=lut.timed.precision,
                                     **({"timing": cfg} if cfg else {}))
    try:
        by_key = {op.key: (r, op) for r, op in blocks}

        def measure(batch: list, p: int, record: Callable[[Any, Any], None]) -> None:
            prof.measure_ops([op for _, op in batch], seed, lambda op, m: record(by_key[op.key], m))

        reps = run_passes(blocks, passes, measure, key=lambda b: b[1].key)
    finally:
        if profiler is None:
            prof.close()
    rows = tuple(BlockRatio(op.key, r, then[op.key], reps.lowest[op.key].median_ms) for r, op in blocks)
    if not all(b.now_ms > 0 for b in rows):
        raise OfaProfileError(f"device {device.name} timed a block of {lut.source} at 0 ms; its clock is too coarse")
    return SpeedCheck(statistics.median(b.ratio for b in rows), rows, time.perf_counter() - t0, device.name,
                      lut.source, passes, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


# -- the cache -----------------------------------------------------------------------------------------

def machine_id(device: "DeviceSpec") -> str:
    """A hash of what this machine's speed depends on: its host name, CPU (model, flags, caches), memory, OS,
    Python, ofa-profile, the device's runtime and its package versions, threads.  The clock a guest reads
    (``cpu_mhz``) is left out: it may move between calls."""
    import hashlib
    import json
    import platform

    hw = machine_info()
    hw.pop("cpu_mhz", None)
    try:
        versions = get_runtime(device.runtime, device.runtime_options or None).versions()
    except OfaProfileError:
        versions = {}
    obj = {"host": platform.node(), "os": f"{platform.system()} {platform.release()}", "python":
           platform.python_version(), "ofa_profile": __version__, "hardware": hw, "runtime": device.runtime,
           "versions": versions, "num_threads": device.num_threads}
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(lut: "Lut", device: "DeviceSpec", n_blocks: int = DEFAULT_BLOCKS) -> tuple[Path, str]:
    """(the cache file of this LUT, machine, device and number of blocks; its key)."""
    import hashlib

    key = hashlib.sha256(f"{lut_sha256(lut)}|{machine_id(device)}|{device.name}|{n_blocks}".encode()).hexdigest()
    stem = safe_name(Path(lut.source).stem, max_len=40, default="lut")
    return user_cache_dir() / "speed-check" / f"{stem}-{key[:24]}.json", key


def _read_cache(path: Path, key: str, lut: "Lut | None" = None, device: "DeviceSpec | None" = None,
                n_blocks: int = DEFAULT_BLOCKS) -> SpeedCheck | None:
    """The cached check at ``path`` if it is one (:meth:`SpeedCheck.from_dict`) for ``key`` and, given ``lut`` and
    ``device``, of exactly the blocks :func:`select_blocks` picks with the LUT's own figures and of that device;
    None otherwise (then it is measured again and rewritten).  Its ``lut`` becomes ``lut.source`` and its
    ``device`` must be the device's name: neither is taken from the file."""
    try:
        obj = read_json_file(path, "speed-check cache", max_bytes=CACHE_MAX_BYTES, follow_symlinks=False)
        if not isinstance(obj, dict) or obj.get("format") != CACHE_FORMAT or obj.get("version") != CACHE_VERSION \
                or obj.get("key") != key:
            return None
        chk = SpeedCheck.from_dict(obj.get("check"))
        if lut is None or device is None:
            return chk
        if chk.device != device.name:
            return None
        want = [(r, op.key, lut.entry(op.key, r).median_ms) for r, op in select_blocks(lut, n_blocks)]
        want = [w for w in want if w[2] > 0]
        have = [(b.resolution, b.key, b.then_ms) for b in chk.blocks]
        if len(want) != len(have) or any(wr != hr or wk != hk or abs(wt - ht) > 1e-9 * max(wt, ht)
                                         for (wr, wk, wt), (hr, hk, ht) in zip(want, have)):
            return None
        return replace(chk, lut=lut.source)
    except (OfaProfileError, JsonInputError, ValueError, OSError):
        return None  # missing, another version, damaged, poisoned: measured again (and rewritten)


def _write_cache(path: Path, key: str, chk: SpeedCheck, log: Log) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.is_symlink():
            raise OfaProfileError(f"{path.parent} is a symbolic link, which the cache does not follow")
        write_json_atomic(path, {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key,
                                 "check": {**chk.as_dict(), "cached": False}}, follow_symlinks=False)
    except (OSError, OfaProfileError) as exc:
        log(f"speed check: not cached ({' '.join(str(exc).split())[:160]}); the next call measures again")


def cached_speed_check(lut: "Lut", device: "DeviceSpec", n_blocks: int = DEFAULT_BLOCKS, *, refresh: bool = False,
                       log: Log = _quiet) -> SpeedCheck:
    """:func:`speed_check`, kept in the user's cache (:func:`cache_path`): a second call on the same machine, LUT
    file and device returns the stored result (``cached`` True); ``refresh`` measures again and replaces it."""
    check_device(lut, device)
    path, key = cache_path(lut, device, n_blocks)
    if not refresh:
        hit = _read_cache(path, key, lut, device, n_blocks)
        if hit is not None:
            return replace(hit, cached=True)
    n = len(select_blocks(lut, n_blocks))
    log(f"speed check: timing {n} blocks of {lut.source} on {device.name} "
        + (f"(cached under {path.parent}) ..." if refresh else
           f"(once per machine and LUT; cached under {path.parent}) ..."))
    chk = speed_check(lut, device, n_blocks)
    _write_cache(path, key, chk, log)
    return chk


# -- the policy of predict and pareto -------------------------------------------------------------------

def _disabled() -> bool:
    return os.environ.get(NO_CHECK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def shipped_lut_check(lut: "Lut", device_ref: str | None = None, *, log: Log = _quiet) -> SpeedCheck | None:
    """The speed check of ``predict`` and ``pareto`` (cached): run where ``lut`` is a shipped LUT and its device
    (``device_ref``, else the device spec the LUT was measured with) runs on this machine (transport ``local``);
    None otherwise, with ``OFA_PROFILE_NO_SPEED_CHECK`` set, or where the check cannot run here (said in one line:
    e.g. the runtime is not installed)."""
    if _disabled() or not is_shipped(lut):
        return None
    spec = lut.provenance.get("device_spec")
    name = device_ref or (spec if isinstance(spec, str) and spec else lut.device)
    try:
        dev = load_device(name)
    except OfaProfileError:
        return None                     # no spec of that name: nothing here runs it
    if dev.transport != "local" or dev.template:
        return None
    try:
        return cached_speed_check(lut, dev, log=log)
    except (OfaProfileError, OSError) as exc:
        log(f"speed check of {lut.source} on {dev.name} not run: {' '.join(str(exc).split())[:200]}")
        return None


def check_for_command(lut: "Lut | None", device_ref: str | None, *, enabled: bool, rescale: bool, what: str,
                      log: Log = _quiet) -> SpeedCheck | None:
    """What ``predict`` and ``pareto`` do with the speed check: run it where ``enabled`` and :func:`shipped_lut_check`
    applies, log its one warning line when it is off (saying whether ``rescale`` applies its factor), and with
    ``rescale`` but no check say in one line that ``what`` (the latencies the command uses) stays as it is.  The
    caller scales by the returned check's ``factor`` when ``rescale``."""
    chk = shipped_lut_check(lut, device_ref, log=log) if enabled and lut is not None else None
    if chk is None:
        if rescale:
            log(f"--rescale: no speed check ran (only a shipped LUT used on a device of this machine is checked); "
                f"{what} is used as it is")
        return None
    w = speed_warning(chk, applied=rescale)
    if w:
        log(w)
    return chk


def measure_hint(device: str) -> str:
    """The command that measures this machine's own LUT for ``device``."""
    return (f"`{shell_command('ofa-profile', 'measure', '--device', device)}` (then --lut "
            f"{shell_command(safe_name(device) + '.json')})")


def speed_warning(chk: SpeedCheck, applied: bool) -> str | None:
    """The one warning line of ``predict``/``pareto`` when the check is off by more than :data:`TOLERANCE`; None
    otherwise."""
    if not chk.off:
        return None
    what = (f"its latencies are scaled by {chk.factor:.3f} (--rescale)" if applied
            else f"its latencies are off by more than {TOLERANCE:.0%} here (--rescale scales them by {chk.factor:.3f})")
    return (f"warning: this machine runs the blocks of shipped LUT {Path(chk.lut).stem} {chk.describe()} the LUT "
            f"says (speed check, {len(chk.blocks)} blocks: x{chk.factor:.3f}); {what}; measure this machine: "
            f"{measure_hint(chk.device)}")
