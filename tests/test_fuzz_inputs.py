"""Property-based fuzzing of the files users hand the command line.

Generated malformed JSON (LUTs, subnet specs, accuracy predictors, latency adapters, device specs) and CSV
(accuracy and latency measurements) go through the real commands.  Whatever the input, a command must:
exit 0, 1 or 2; never raise anything but its own exit; print no traceback; print on stdout nothing or strict
JSON (no NaN/Infinity) when --json is given; end a failure with one ``error: ...`` line (exit 1) or a usage
error (exit 2); and change no file outside its output folder.

Inputs are mutations of real, valid files (a node replaced by a random JSON value, deleted, re-typed or
scaled; the text truncated, given a ``1e400``, or nested thousands deep), so most of them get past the first
checks and reach the loaders' later ones.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile.cli import main
from ofa_profile.errors import OfaProfileError

ROOT = Path(__file__).resolve().parents[1]
SPACE = "ofa-mbv3-w1.0"
R = 160
FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "25")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# -- generated values and mutations --------------------------------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.sampled_from([0, -1, 3, 5, 7, 160, 10**30])
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                                          max_size=4),
                           max_leaves=10)


def _paths(obj, prefix=(), out=None, limit=4000):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    out.append(prefix)
    if isinstance(obj, dict):
        for k, v in obj.items():
            _paths(v, prefix + (k,), out, limit)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            _paths(v, prefix + (i,), out, limit)
    return out


def _set(obj, path, value):
    if not path:
        return value
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return obj


def _delete(obj, path):
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    del cur[path[-1]]
    return obj


class _Text(str):
    """Generated file text whose repr (printed by hypothesis for a failing example) stays readable."""

    def __repr__(self) -> str:
        s = str(self)
        return repr(s) if len(s) <= 300 else f"{s[:150]!r} ... {s[-150:]!r} ({len(s):,} characters)"


@st.composite
def mutated_json(draw, base):
    """Text of ``base`` with one to three structural mutations, then maybe a textual one."""
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        node = obj
        for k in path:
            node = node[k]
        action = draw(st.sampled_from(["replace", "delete", "retype", "scale", "empty"]))
        if action == "delete" and path:
            obj = _delete(obj, path)
        elif action == "retype":
            obj = _set(obj, path, json.dumps(node) if not isinstance(node, str) else [node])
        elif action == "scale" and isinstance(node, (int, float)) and not isinstance(node, bool):
            obj = _set(obj, path, node * draw(st.sampled_from([-1, -1e6, 0, 0.5, 1e9, 1.5])) +
                       draw(st.sampled_from([0, 0.5, -1000])))
        elif action == "empty":
            obj = _set(obj, path, {} if isinstance(node, dict) else [] if isinstance(node, list) else "")
        else:
            obj = _set(obj, path, draw(json_values))
    text = json.dumps(obj)                 # NaN / Infinity come out as the tokens Python writes
    tail = draw(st.sampled_from(["", "", "", "truncate", "overflow", "deep", "garbage"]))
    if tail == "truncate":
        text = text[:draw(st.integers(0, max(0, len(text) - 1)))]
    elif tail == "overflow":
        i = text.find(": 1")
        text = text[:i] + ": 1e400" + text[i + 3:] if i >= 0 else "[1e400]"
    elif tail == "deep":
        n = draw(st.sampled_from([100, 3000, 100_000]))
        text = "[" * n + text + "]" * n
    elif tail == "garbage":
        text = draw(st.text(max_size=40))
    return _Text(text)


# -- the real files the mutations start from -------------------------------------------------------------------

class _Bases(dict):
    def __repr__(self) -> str:        # hypothesis prints the arguments of a failing example: keep it short
        return "<valid base files>"


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Small valid inputs: a one-resolution LUT cut from the shipped one, a spec, the shipped predictor, a fitted
    adapter, a device spec, an accuracy CSV and a latency CSV."""
    from ofa_profile.adapt import fit_adapter
    from ofa_profile.lut import _keys_at
    from ofa_profile.space import get_space

    lut = json.loads((ROOT / "lut" / "cpu-ort.json").read_text())
    keys = set(_keys_at(SPACE, R))
    lut["entries"] = {k: {f: v for f, v in e.items() if f != "raw_ms"} for k, e in lut["entries"].items()
                      if k in keys}
    lut["resolutions"] = [R]
    lut["calibration"] = {k: v for k, v in lut["calibration"].items() if k != "samples"}
    lut["calibration"]["report"] = {k: v for k, v in lut["calibration"]["report"].items() if k != "samples"}
    sp = get_space(SPACE)
    rng = random.Random(0)
    specs = [sp.sample(rng, resolution=R) for _ in range(40)]
    lat = [1.0 + 0.1 * sum(s.d) + 0.01 * sum(s.ks[:4]) for s in specs]
    ad = fit_adapter(specs, lat, "fuzz-gpu", seed=0).to_json()
    acc = [0.70 + 0.002 * sum(s.d) + 0.001 * sum(s.e[:6]) for s in specs]

    def csv_rows(col, ys):
        return [{"d": json.dumps(list(s.d)), "ks": json.dumps(list(s.ks)), "e": json.dumps(list(s.e)), "r": s.r,
                 col: y} for s, y in zip(specs, ys)]

    d = tmp_path_factory.mktemp("bases")
    (d / "lut.json").write_text(json.dumps(lut))
    return _Bases({
        "lut": lut, "lut_path": d / "lut.json",
        "spec": json.loads((ROOT / "examples" / "arch-r160.json").read_text()),
        "predictor": json.loads((ROOT / "ofa_profile" / "predictors" / f"{SPACE}-imagenet.json").read_text()),
        "adapter": ad,
        "device": json.loads((ROOT / "device_specs" / "cpu-ort.json").read_text()),
        "acc_rows": csv_rows("accuracy", acc), "lat_rows": csv_rows("latency_ms", lat),
    })


def _snapshot(folders):
    out = {}
    for f in folders:
        for p in sorted(Path(f).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def shipped_untouched():
    """The package's own data never changes, whatever a command is fed."""
    folders = [ROOT / "lut", ROOT / "device_specs", ROOT / "ofa_profile" / "predictors", ROOT / "examples"]
    before = _snapshot(folders)
    yield
    assert _snapshot(folders) == before


@pytest.fixture()
def work(tmp_path, monkeypatch, shipped_untouched):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # accuracy CSV fits are cached there
    return tmp_path


def _run(args, inputs_dir: Path, out_dir: Path | None, as_json: bool):
    """Run the CLI in-process and check the contract; returns the result."""
    before = _snapshot([inputs_dir])
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    exc = res.exception
    assert exc is None or isinstance(exc, SystemExit), f"{args}: raised {type(exc).__name__}: {exc}"
    assert res.exit_code in (0, 1, 2), (args, res.exit_code, res.output)
    assert "Traceback" not in res.output, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    if res.exit_code == 1:
        assert err and err[-1].startswith("error: ") and "\n" not in err[-1], res.stderr
    elif res.exit_code == 2:       # a usage error: one line too (ofa_profile/clierrors.py)
        assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    if as_json and res.stdout.strip():
        assert res.exit_code == 0, res.stdout

        def no_constants(name):
            raise AssertionError(f"stdout holds {name}: not strict JSON")
        json.loads(res.stdout, parse_constant=no_constants)
    else:
        assert res.exit_code != 0 or not as_json or res.stdout.strip(), "a --json success printed nothing"
    changed = {p for p, h in _snapshot([inputs_dir]).items() if before.get(p) != h}
    changed |= set(before) - set(_snapshot([inputs_dir]))
    if out_dir is not None:
        changed = {p for p in changed if not p.startswith(str(out_dir) + "/") and not p.startswith(
            str(inputs_dir / "cache") + "/")}
    assert not changed, f"{args} changed files outside its output folder: {sorted(changed)}"
    return res


# -- the properties ------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_predict_survives_malformed_specs_and_luts(bases, work, data):
    which = data.draw(st.sampled_from(["spec", "lut"]))
    spec_p, lut_p = work / "arch.json", work / "lut.json"
    if which == "spec":
        spec_p.write_text(data.draw(mutated_json(bases["spec"])))
        lut_p = bases["lut_path"]
    else:
        spec_p.write_text(json.dumps(bases["spec"]))
        lut_p.write_text(data.draw(mutated_json(bases["lut"])))
    _run(["predict", "--lut", lut_p, "--arch", spec_p, "--json"], work, None, True)


@FUZZ
@given(data=st.data())
def test_lut_validate_survives_malformed_luts(bases, work, data):
    p = work / "lut.json"
    p.write_text(data.draw(mutated_json(bases["lut"])))
    _run(["lut", "validate", p], work, None, False)


@FUZZ
@given(data=st.data())
def test_pareto_survives_malformed_predictors_and_adapters(bases, work, data):
    out = work / "out"
    out.mkdir(exist_ok=True)
    which = data.draw(st.sampled_from(["predictor", "adapter"]))
    p = work / f"{which}.json"
    p.write_text(data.draw(mutated_json(bases[which])))
    src = ["--lut", bases["lut_path"]] if which == "predictor" else ["--adapter", p,
                                                                     "--resolutions", str(R)]
    pred = ["--predictor", p] if which == "predictor" else []
    _run(["pareto", "--budget", "8ms", *src, *pred, "--effort", "fast", "--n-budgets", "2", "--no-plot",
          "--out-dir", out, "--json"], work, out, True)


@FUZZ
@given(data=st.data())
def test_device_spec_loader_survives_malformed_specs(bases, work, data):
    from ofa_profile.devices import load_device

    p = work / "dev.json"
    p.write_text(data.draw(mutated_json(bases["device"])))
    try:
        dev = load_device(p)
    except OfaProfileError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    t = dev.timing       # what loaded must be usable as the timing rules say
    assert 1 <= t.min_runs <= t.max_runs and t.warmup_runs >= 0 and math.isfinite(t.max_time_s) \
        and t.max_time_s > 0


def _mutated_csv(draw, rows):
    rows = [dict(r) for r in rows]
    cols = list(rows[0])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(rows) - 1))
        c = draw(st.sampled_from(cols))
        action = draw(st.sampled_from(["cell", "cell", "dropcol", "nan", "blank"]))
        if action == "dropcol":
            for r in rows:
                r.pop(c, None)
            cols = [x for x in cols if x != c]
            if not cols:
                break
        elif action == "nan":
            rows[i][c] = draw(st.sampled_from(["nan", "inf", "-inf", "1e400", "NaN", "[NaN]", "[1e400]"]))
        elif action == "blank":
            rows[i][c] = ""
        else:
            rows[i][c] = draw(st.text(max_size=12) | st.sampled_from(["[3,3]", "[]", "{}", "[[3]]", "-5", "0",
                                                                      "160.5", "true", "[3.5]*20"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols or ["x"], extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    text = buf.getvalue()
    if draw(st.booleans()) and draw(st.booleans()):
        text = text[:draw(st.integers(0, len(text)))]
    return _Text(text)


@FUZZ
@given(data=st.data())
def test_csv_commands_survive_malformed_csvs(bases, work, data):
    out = work / "out"
    out.mkdir(exist_ok=True)
    which = data.draw(st.sampled_from(["accuracy-predictor", "adapt", "pareto"]))
    p = work / "data.csv"
    if which == "adapt":
        p.write_text(_mutated_csv(data.draw, bases["lat_rows"]))
        args = ["adapt", "--device", "fuzz", "--measurements", p, "--out", out / "a.json", "--json"]
    elif which == "accuracy-predictor":
        p.write_text(_mutated_csv(data.draw, bases["acc_rows"]))
        args = ["accuracy-predictor", "--data", p, "--out", out / "p.json", "--model", "ridge", "--test-frac", "0",
                "--json"]
    else:
        p.write_text(_mutated_csv(data.draw, bases["acc_rows"]))
        args = ["pareto", "--budget", "8ms", "--lut", bases["lut_path"], "--accuracy-data", p, "--effort", "fast",
                "--n-budgets", "2", "--no-plot", "--out-dir", out, "--json"]
    _run(args, work, out, True)


def test_the_unmutated_files_pass(bases, work):
    """The fuzzing above is not vacuous: every command takes the valid base files with exit 0."""
    from ofa_profile.devices import load_device

    out = work / "out"
    out.mkdir()
    (work / "arch.json").write_text(json.dumps(bases["spec"]))
    for name in ("predictor", "adapter"):
        (work / f"{name}.json").write_text(json.dumps(bases[name]))
    for name, rows in (("acc", bases["acc_rows"]), ("lat", bases["lat_rows"])):
        with open(work / f"{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (work / "dev.json").write_text(json.dumps(bases["device"]))
    assert load_device(work / "dev.json").name == "cpu-ort"
    common = ["--effort", "fast", "--n-budgets", "2", "--no-plot", "--out-dir", out, "--json"]
    for args, as_json in (
            (["predict", "--lut", bases["lut_path"], "--arch", work / "arch.json", "--json"], True),
            (["lut", "validate", bases["lut_path"]], False),
            (["pareto", "--budget", "8ms", "--lut", bases["lut_path"], "--predictor", work / "predictor.json",
              *common], True),
            (["pareto", "--budget", "8ms", "--adapter", work / "adapter.json", "--resolutions", str(R), *common],
             True),
            (["pareto", "--budget", "8ms", "--lut", bases["lut_path"], "--accuracy-data", work / "acc.csv",
              *common], True),
            (["adapt", "--device", "fuzz", "--measurements", work / "lat.csv", "--out", out / "a.json", "--json"],
             True),
            (["accuracy-predictor", "--data", work / "acc.csv", "--out", out / "p.json", "--model", "ridge",
              "--test-frac", "0", "--json"], True)):
        res = _run(args, work, out, as_json)
        assert res.exit_code == 0, (args, res.output)
    cfg = _reference_net_config()
    if cfg is not None:
        (work / "net").mkdir()
        (work / "net" / "net.config").write_text(json.dumps(cfg))
        (work / "net" / "run.config").write_text(json.dumps({"image_size": 160}))
        res = _run(["predict", "--lut", "cpu-ort", "--arch", work / "net" / "net.config", "--no-speed-check",
                    "--json"], work, out, True)
        assert res.exit_code == 0 and not _changes_representable(cfg, cfg), res.output
    (work / "board.json").write_text(json.dumps(_ssh_base(work)))          # reaches ssh, which finds no server
    res = _run(["measure", "--device", work / "board.json", "--resolutions", "128", "--out", out / "b.json"], work,
               out, False)
    assert res.exit_code == 1 and "cannot reach board" in res.stderr, res.output


# -- device specs, net.configs and transport options (issue 24) ------------------------------------------------

_INJECT = ["-oProxyCommand=touch {m}", "ProxyCommand=touch {m}", "proxycommand touch {m}", "LocalCommand=touch {m}",
           "$(touch {m})", "`touch {m}`", "x;touch {m}", "x\ntouch {m}", "--help", "-", "", "Match exec \"touch {m}\"",
           "KnownHostsCommand=/bin/touch {m}", "a b", "~/x", "127.0.0.1", "pi", "Port=22", "ConnectTimeout=1"]


def _ssh_base(work: Path) -> dict:
    """An ssh board on this machine's port 1 (nothing listens: ssh fails at once), its worker folder in ``work``."""
    return {"format": "ofa-profile-device", "schema_version": 1, "name": "fuzz-board", "description": "a board",
            "runtime": "onnxruntime", "transport": "ssh", "num_threads": 1, "batch_sizes": [1],
            "timing": {"warmup_runs": 1, "min_runs": 2, "max_runs": 3, "max_time_s": 0.2},
            "ssh": {"host": "127.0.0.1", "port": 1, "user": "pi", "identity_file": str(work / "key"),
                    "remote_python": "python3", "remote_dir": str(work / "board"),
                    "options": ["BatchMode=yes", "ConnectTimeout=2", "StrictHostKeyChecking=no"]}}


@st.composite
def injected_json(draw, base, marker):
    """``base`` with one to three string or string-list fields replaced by a command-line injection (or another
    odd string), then maybe the structural mutations of :func:`mutated_json`."""
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(obj) if p]
        path = draw(st.sampled_from(paths))
        payload = draw(st.sampled_from(_INJECT) | st.text(max_size=12)).replace("{m}", str(marker))
        obj = _set(obj, path, [payload] if draw(st.booleans()) and path[-1] == "options" else payload)
    if draw(st.booleans()):
        return draw(mutated_json(obj))
    return _Text(json.dumps(obj))


def _no_marker(marker: Path, args):
    assert not marker.exists(), f"{args} ran an injected command: {marker} was created"


@FUZZ
@given(data=st.data())
def test_measure_survives_malformed_and_injected_device_specs(work, data, monkeypatch):
    monkeypatch.setenv("OFA_PROFILE_ADB", str(work / "no-adb"))       # a phone spec stops at "adb is not installed"
    out = work / "out"
    out.mkdir(exist_ok=True)
    marker = work / "marker"
    base = _ssh_base(work) if data.draw(st.booleans()) else \
        json.loads((ROOT / "device_specs" / data.draw(st.sampled_from(["android.json", "cpu-ort.json"]))).read_text())
    p = work / "dev.json"
    p.write_text(data.draw(injected_json(base, marker)))
    args = ["measure", "--device", p, "--resolutions", "128", "--limit", "1", "--out", out / "l.json", "--quiet",
            "--json"]
    _run(args, work, out, True)
    _no_marker(marker, args)


@FUZZ
@given(data=st.data())
def test_transport_options_never_run_a_command(work, data, monkeypatch):
    monkeypatch.setenv("OFA_PROFILE_ADB", str(work / "no-adb"))
    out = work / "out"
    out.mkdir(exist_ok=True)
    marker = work / "marker"
    ssh = data.draw(st.booleans())
    p = work / "dev.json"
    p.write_text(json.dumps(_ssh_base(work)) if ssh else (ROOT / "device_specs" / "android.json").read_text())
    keys = (["host", "port", "user", "identity_file", "remote_python", "remote_dir", "remote_runtime", "options"]
            if ssh else ["serial", "cores", "benchmark_binary", "remote_dir", "use_xnnpack", "repeats", "model_hint"])
    extra = []
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(keys) | st.text(max_size=6))
        value = data.draw(st.sampled_from(_INJECT) | st.text(max_size=16)).replace("{m}", str(marker))
        if key == "options" and data.draw(st.booleans()):
            value = json.dumps([value, "BatchMode=yes"])
        extra += ["--transport-option", f"{key}={value}"]
    if data.draw(st.booleans()):     # an opt-in of a harmless or unknown name (opting in to ProxyCommand runs it)
        if ssh:
            extra += ["--allow-ssh-option", data.draw(st.sampled_from(["Compression", "Foo", "-oX", "Port", "a=b"]))]
        else:
            extra += ["--serial", data.draw(st.sampled_from(_INJECT)).replace("{m}", str(marker))]
    args = ["measure", "--device", p, "--resolutions", "128", "--limit", "1", "--out", out / "l.json", "--quiet",
            *extra]
    _run(args, work, out, False)
    _no_marker(marker, args)


def _reference_net_config() -> dict | None:
    base = Path(__import__("os").environ.get("OFA_PROFILE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    p = base / "reference" / "ofa-specialized" / "note10_lat-8ms_top1-71.4_finetune-25" / "net.config"
    return json.loads(p.read_text()) if p.is_file() else None


def _leaves(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, prefix + (i,))
    else:
        yield prefix, obj


def _changes_representable(orig: dict, new) -> list:
    """The paths where ``new`` differs from ``orig`` in a way the project does not represent: anything but a block's
    kernel/expand choice (and its middle width), a training-only field, or a field left out that OFA's default
    restores."""
    from ofa_profile.netconfig import _DEFAULTS

    def default(path):        # OFA's default of the field at ``path`` (its layer's type), or a marker
        kind = {"first_conv": "ConvLayer", "final_expand_layer": "ConvLayer", "feature_mix_layer": "ConvLayer",
                "classifier": "LinearLayer", "bn": "bn"}.get(path[0]) if path else None
        if path[:1] == ("blocks",) and len(path) == 4:
            kind = "IdentityLayer" if path[2] == "shortcut" else "MBConv"
        table = {"bn": {"eps": 1e-5, "momentum": 0.1}}.get(kind) or _DEFAULTS.get(kind, {})
        return table.get(path[-1], KeyError)
    a, b = dict(_leaves(orig)), dict(_leaves(new)) if isinstance(new, dict) else {}
    bad = []
    for path in set(a) | set(b):
        if path in a and path in b and json.dumps(a[path]) == json.dumps(b[path]):
            continue
        last = path[-1] if path else None
        if last in ("dropout_rate", "momentum") or (path[:1] == ("blocks",) and len(path) == 4 and path[1] != 0
                                                     and last in ("kernel_size", "expand_ratio", "mid_channels")):
            continue
        if path in a and path not in b and (last == "name" or json.dumps(default(path), default=str) ==
                                               json.dumps(a[path])):
            continue
        bad.append(path)
    return bad


@FUZZ
@given(data=st.data())
def test_net_configs_are_read_whole_or_refused(work, data):
    """Every field of a net.config may be mutated; a command that accepts the result must have been handed the
    same network (a different kernel/expand choice is a different subnet of the space, which it reads)."""
    base = _reference_net_config()
    if base is None:
        pytest.skip("OFA's specialised net.configs (shared data) are not here")
    d = work / "net"
    d.mkdir(exist_ok=True)
    (d / "run.config").write_text(json.dumps({"image_size": 160}))
    text = data.draw(mutated_json(base))
    (d / "net.config").write_text(text)
    res = _run(["predict", "--lut", "cpu-ort", "--arch", d / "net.config", "--no-speed-check", "--json"], work,
               None, True)
    if res.exit_code == 0:
        bad = _changes_representable(base, json.loads(text))
        assert not bad, f"accepted a net.config that differs at {bad[:3]}"
