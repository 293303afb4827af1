"""The commands on LUT files: ``predict`` (one subnet's latency) and the ``lut`` group (``import-ofa``,
``export-ofa``, ``info``, ``check``, ``validate``).  Each parses its options, calls one domain function
(:mod:`ofa_profile.lut`, :mod:`ofa_profile.lut_report`) and prints."""
from __future__ import annotations

import click

from ..cliopts import RESOLUTION, SPACE_NAME, count_range
from ..lut import export_ofa_yaml, load_lut
from ..lut_report import check_out_file, import_ofa_lut, lut_summary, predict_subnet, validate_lut_file
from ..paths import check_out_dir
from ..speedcheck import DEFAULT_BLOCKS, MAX_BLOCKS, cached_speed_check, measure_hint
from .base import (ALLOW_SSH_OPTION, THREADS_OPTION, SPEED_CHECK_OPTIONS, WAIT_OPTION, check_speed_options, echo_json, hold_lock,
                   load_device_cli, log, main, with_options)


@main.group("lut")
def lut_group() -> None:
    """Inspect, validate and convert latency LUT files.

    \b
    Example:
      ofa-profile lut import-ofa ofa-note10-lut-w1.2/ --out note10.json
      ofa-profile lut info note10.json
    """


@lut_group.command("import-ofa")
@click.argument("src", type=click.Path())
@click.option("--out", "out", required=True, help="LUT JSON file to write (replaced atomically)")
@click.option("--space", type=SPACE_NAME, default=None, help="space of the tables [default: inferred from the stem width]")
@click.option("--device", "device_name", default="imported", show_default=True, help="device name stored in the LUT")
@click.option("--allow-partial", is_flag=True,
              help="import tables that lack keys of their resolution, as partly covered resolutions (not listed "
                   "in the LUT's resolutions; a prediction there names the missing keys)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def lut_import_ofa_cmd(src: str, out: str, space: str | None, device_name: str, allow_partial: bool,
                       as_json: bool) -> None:
    """Convert OFA's YAML latency tables (a folder of <r>_lookup_table.yaml, or one file) to a LUT.

    OFA stores {count, mean, std}: median_ms is OFA's mean (OFA stores no median) and
    iqr_ms is estimated as 1.349 * std; both are noted in the LUT's provenance.
    A table lacking keys of its resolution is refused, naming them, unless --allow-partial.

    \b
    Example:
      ofa-profile lut import-ofa ../shared/data/reference/ofa-note10-lut-w1.2 --out note10.json --device note10
    """
    check_out_file(out)
    hold_lock(out)
    rep = import_ofa_lut(src, out, space=space, device=device_name, allow_partial=allow_partial)
    lut, gaps = rep.lut, rep.partial
    if as_json:
        echo_json(rep.as_dict())
    else:
        part = f"; partly covered: {lut.gaps_text(gaps)}" if gaps else ""
        click.echo(f"{out}: {len(lut.entries)} entries, space {lut.space}, resolutions "
                   f"{','.join(map(str, lut.resolutions)) or 'none complete'}{part}")


@lut_group.command("export-ofa")
@click.argument("lut_ref", metavar="FILE_OR_DEVICE")
@click.option("--out", "out", required=True, help="folder for the <r>_lookup_table.yaml files (made if its parent exists)")
@click.option("--value", type=click.Choice(["median", "mean"]), default="median", show_default=True,
              help="figure written into OFA's 'mean' field")
@click.option("--json", "as_json", is_flag=True, help="print the written files as JSON")
@WAIT_OPTION
def lut_export_ofa_cmd(lut_ref: str, out: str, value: str, as_json: bool) -> None:
    """Write a LUT as OFA YAML tables, one <r>_lookup_table.yaml per complete resolution.

    \b
    Example:
      ofa-profile lut export-ofa cpu-ort.json --out ofa-tables/
    """
    lut = load_lut(lut_ref)
    d, _ = check_out_dir(out, "--out")      # a folder, made if its parent exists, and writable
    hold_lock(d, folder=True)
    paths = export_ofa_yaml(lut, d, value=value)
    if as_json:
        echo_json({"files": [str(p) for p in paths], "value": value})
    else:
        for p in paths:
            click.echo(str(p))


@lut_group.command("info")
@click.argument("lut_ref", metavar="FILE_OR_DEVICE")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def lut_info_cmd(lut_ref: str, as_json: bool) -> None:
    """Describe a LUT: space, device, runtime, resolutions, entries, fingerprint, calibration, coverage.

    \b
    Example:
      ofa-profile lut info cpu-ort
      ofa-profile lut info note10.json --json
    """
    s = lut_summary(load_lut(lut_ref))
    if as_json:
        echo_json(s)
        return
    click.echo(f"lut:          {s['lut']}")
    click.echo(f"space:        {s['space']}")
    click.echo(f"device:       {s['device']} (runtime {s['runtime']}, batch {s['batch_size']}, "
               f"threads {s['num_threads'] if s['num_threads'] is not None else 'unknown'})")
    click.echo(f"timed:        {s['timed_label']}")
    if len(s["heads_classes"]) > 1:
        click.echo(f"heads:        classifier heads of {', '.join(map(str, s['heads_classes']))} classes "
                   f"(predict/pareto --classes N)")
    click.echo(f"resolutions:  {','.join(map(str, s['resolutions'])) or 'none complete'}")
    extra = f" (+{s['resolution_entries']} per-resolution)" if s["resolution_entries"] else ""
    click.echo(f"entries:      {s['entries']}{extra}")
    click.echo(f"created:      {s['created_utc']} by {s['tool']}; source: {s['source']}; seed: {s['seed']}")
    fp = s["fingerprint"]
    click.echo("fingerprint:  " + "; ".join(f"{k}={v}" for k, v in fp.items() if k not in _MACHINE_KEYS))
    if "cpu_model" in fp:
        click.echo(f"machine:      {_machine_text(fp)}")
    if isinstance(fp.get("cpu_flags"), list):
        click.echo(f"cpu flags:    {_flags_text(fp['cpu_flags'])}")
    tm = s["timing"]
    if tm:
        st = tm["settings"] or {}
        rule = (f"{st.get('warmup_runs', '?')} warm-up, {st.get('min_runs', '?')}-{st.get('max_runs', '?')} runs, "
                f"{st.get('max_time_s', '?')} s cap, stop at IQR/median <= {st.get('target_iqr_rel', '?')}"
                + (f" or median +-{st['target_ci_rel']}" if st.get("target_ci_rel") else "")) if st else "not recorded"
        runs = (f"; runs per block: median {tm['runs_per_block_median']:g}"
                + (f", {tm['share_at_max_runs']:.0%} at the cap" if tm.get("share_at_max_runs") is not None else "")
                if "runs_per_block_median" in tm else "")
        click.echo(f"timing:       {rule}{runs}")
        if tm.get("iqr_rel_median") is not None:
            noisy = tm["iqr_rel_median"] > s["noisy_above"]
            click.echo(f"noise:        block IQR/median {100 * tm['iqr_rel_median']:.1f} % (median over the blocks; "
                       f"{'a noisy machine: ' if noisy else ''}above {100 * s['noisy_above']:g} % a machine counts as "
                       f"noisy)")
    click.echo(f"calibration:  {_calibration_text(s['calibration'])}")
    cov = s["coverage"]
    if cov["complete"]:
        click.echo(f"coverage:     complete for its {len(s['resolutions'])} resolution(s)")
    else:
        first = next(iter(cov["missing_by_resolution"].values()))
        click.echo(f"coverage:     {cov['missing_keys']} key(s) missing at r={','.join(cov['missing_by_resolution'])}, "
                   f"e.g. {first[0]}")
    part = cov["partial_resolutions"]
    if part:
        r0, n0 = next(iter(part.items()))
        click.echo(f"partly:       {len(part)} other resolution(s) partly covered, e.g. r={r0} "
                   f"({n0} key(s) missing; see --json)")


def _calibration_text(cal: dict | None) -> str:
    """``lut info``'s calibration line: how it was fitted and how well it predicted the subnets it did not see."""
    if not cal:
        return "none (plain LUT sums; `ofa-profile calibrate` fits one)"
    fit = (f"{cal.get('model', '?')} on {cal.get('n_fit', '?')} measured subnets (seed {cal.get('seed', '?')}, alpha "
           f"{cal.get('alpha', '?'):.3g})" if isinstance(cal.get("alpha"), (int, float))
           else f"{cal.get('model', '?')} on {cal.get('n_fit', '?')} measured subnets")
    when = f", {cal['calibrated_utc']}" if cal.get("calibrated_utc") else ""
    t = cal.get("test")
    if not t:
        return f"{fit}{when}; no held-out subnets"
    parts = [f"MAPE {t['mape_pct']:.1f} %" if isinstance(t.get("mape_pct"), (int, float)) else None,
             f"{100 * t['within_5pct']:.0f} % within +-5 %" if isinstance(t.get("within_5pct"), (int, float)) else None,
             f"RMSE {t['rmse_ms']:.3f} ms" if isinstance(t.get("rmse_ms"), (int, float)) else None]
    raw = cal.get("test_lut_sum_mape_pct")
    tail = f" (plain LUT sums: MAPE {raw:.1f} %)" if isinstance(raw, (int, float)) else ""
    return f"{fit}{when}; on {t.get('n', '?')} held-out subnets: {', '.join(p for p in parts if p)}{tail}"


_MACHINE_KEYS = ("cpu_model", "cpu_vendor", "cpu_family", "cpu_model_number", "cpu_stepping", "cpu_max_mhz", "cpu_mhz",
                 "cache_kb", "mem_total_kb", "cpu_flags")
_SIMD = ("sse4", "avx", "fma", "f16c", "amx", "neon", "asimd", "sve", "sme", "i8mm", "bf16")


def _kib(kb: object) -> str:
    if not isinstance(kb, (int, float)) or isinstance(kb, bool):
        return str(kb)
    for unit, size in (("GiB", 1024 ** 2), ("MiB", 1024)):
        if kb >= size:
            return f"{kb / size:.3g} {unit}"
    return f"{kb:g} KiB"


def _machine_text(fp: dict) -> str:
    """``lut info``'s machine line: CPU (vendor, family, model, stepping), clock, caches, memory, as recorded."""
    ids = [str(fp[k]) if k == "cpu_vendor" else f"{k.split('_')[1]} {fp[k]}"
           for k in ("cpu_vendor", "cpu_family", "cpu_model_number", "cpu_stepping") if k in fp]
    parts = [f"{fp['cpu_model']}" + (f" ({' '.join(ids)})" if ids else "")]
    if "cpu_max_mhz" in fp:
        parts.append(f"max {fp['cpu_max_mhz']} MHz")
    elif "cpu_mhz" in fp:
        parts.append(f"{fp['cpu_mhz']} MHz")
    caches = fp.get("cache_kb")
    if isinstance(caches, dict) and caches:
        parts.append("caches " + ", ".join(f"{k} {_kib(v)}" for k, v in caches.items()))
    if "mem_total_kb" in fp:
        parts.append(f"memory {_kib(fp['mem_total_kb'])}")
    if not ({"cache_kb", "cpu_max_mhz", "cpu_mhz"} & set(fp)):
        parts.append("cache sizes and clock not recorded")
    return "; ".join(parts)


def _flags_text(flags: list) -> str:
    """``lut info``'s flags line: all of a short list, else the count and the SIMD ones (all with --json)."""
    if len(flags) <= 12:
        full = {"fpu", "fp"} & set(flags)       # in every full x86 / ARM set: older LUTs kept a few SIMD flags only
        return (" ".join(map(str, flags)) or "none recorded") + ("" if full or not flags else " (the SIMD ones only)")
    simd = [f for f in map(str, flags) if f.startswith(_SIMD)]
    return f"{len(flags)} flags; SIMD: {' '.join(simd) or 'none'} (all with --json)"


@lut_group.command("check")
@click.argument("lut_ref", metavar="FILE_OR_DEVICE")
@click.option("--device", "device_name", required=True, help="device (name or spec file) to time the blocks on")
@click.option("--blocks", "n_blocks", type=count_range(1, MAX_BLOCKS), default=DEFAULT_BLOCKS, show_default=True,
              help="blocks to time, half at the LUT's smallest resolution and half at its largest")
@ALLOW_SSH_OPTION
@THREADS_OPTION
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def lut_check_cmd(lut_ref: str, device_name: str, n_blocks: int, allow_ssh_option: tuple[str, ...],
                  threads: int | None, as_json: bool) -> None:
    """Speed check: time a small fixed set of the LUT's blocks on a device now, the way `measure` timed them, and
    compare with the LUT's figures.

    The factor is the median over the blocks of now / then: above 1.15 or below 1/1.15 the LUT's latencies
    are off on this machine; measure its own LUT then.  The blocks are fixed by a rule (small, medium and
    large blocks at the LUT's smallest and largest resolution), so two checks compare the same ones.  The
    result refreshes the cache that predict and pareto read (they check shipped LUTs on a device of this
    machine once, then reuse it).

    \b
    Example:
      ofa-profile lut check cpu-ort --device cpu-ort
      ofa-profile lut check my-lut.json --device cpu-ort --blocks 12 --json
      ofa-profile lut check cpu-ort-t2.json --device cpu-ort --threads 2
    """
    lut = load_lut(lut_ref)
    dev = load_device_cli(device_name, allow_ssh_option, threads)
    chk = cached_speed_check(lut, dev, n_blocks, refresh=True, log=log)
    if as_json:
        echo_json(chk.as_dict())
        return
    click.echo(f"{lut.source} on {dev.name}: factor {chk.factor:.3f} (now/then, median of {len(chk.blocks)} blocks, "
               f"lowest of {chk.passes} pass(es) each; {chk.seconds:.1f} s)")
    verdict = (f"off by more than 15 %: measure this machine's own LUT, {measure_hint(dev.name)}" if chk.off
               else "within 15 %")
    click.echo(f"this machine runs its blocks {chk.describe()} the LUT says: {verdict}")
    click.echo(f"  {'r':>4}  {'then_ms':>9}  {'now_ms':>9}  {'ratio':>6}  block")
    for b in chk.blocks:
        click.echo(f"  {b.resolution:>4}  {b.then_ms:9.4f}  {b.now_ms:9.4f}  {b.ratio:6.3f}  {b.key}")


@lut_group.command("validate")
@click.argument("path", type=click.Path(dir_okay=True))
def lut_validate_cmd(path: str) -> None:
    """Check a LUT file (or OFA YAML tables) against the format, schema and space, and its coverage: every
    resolution it lists must have every key (a table every key of its resolution).

    Prints "ok: ..." and exits 0, or prints the one-line error (naming missing keys) and exits 1.

    \b
    Example:
      ofa-profile lut validate cpu-ort.json
    """
    v = validate_lut_file(path)
    p, lut, part = v.path, v.lut, v.partial
    if v.ofa_tables:
        click.echo(f"ok: {p}: OFA MobileNetV3 YAML table(s), space {lut.space}, {len(lut.entries)} keys, "
                   f"resolutions {','.join(map(str, lut.resolutions))} (convert with `ofa-profile lut import-ofa`)")
        return
    click.echo(f"ok: {p}: ofa-profile LUT schema_version {lut.schema_version}, space {lut.space}, device {lut.device}, "
               f"{len(lut.entries)} entries, resolutions {','.join(map(str, lut.resolutions)) or 'none complete'}"
               + (f"; partly covered (not listed): {lut.gaps_text(part)}" if part else ""))


@main.command("predict")
@click.option("--lut", "lut_ref", required=True, help="LUT file, or a device name with a shipped LUT")
@click.option("--arch", "arch_path", required=True,
              help="subnet: OFA spec JSON {ks, e, d, r}, a net.config, or an .onnx written by `ofa-profile export`")
@click.option("--space", type=SPACE_NAME, default=None, help="space of a plain spec JSON [default: the LUT's space]")
@click.option("--resolution", type=RESOLUTION, default=None, help="input resolution (overrides the arch's r)")
@click.option("--no-calibration", is_flag=True, help="report the plain LUT sum even if the LUT is calibrated")
@click.option("--classes", type=count_range(1, 1_000_000), default=None,
              help="classifier head to predict with (one the LUT holds; `measure --classes N` adds one) [default: "
                   "the LUT's; an .onnx from `export`: its own head]")
@with_options(SPEED_CHECK_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def predict_cmd(lut_ref: str, arch_path: str, space: str | None, resolution: int | None, no_calibration: bool,
                classes: int | None, rescale: bool, no_speed_check: bool, as_json: bool) -> None:
    """Predict the latency of one subnet from a LUT (calibrated where the LUT holds a calibration).

    A shipped LUT used on a device of this machine is speed-checked first (a few of its blocks timed, once
    per machine; see `ofa-profile lut check`): one warning line on stderr when this machine runs them more
    than 15 % faster or slower than the LUT says; --rescale then scales the prediction by that factor.

    \b
    Example:
      ofa-profile predict --lut cpu-ort --arch examples/arch-r160.json
      ofa-profile predict --lut cpu-ort --arch examples/arch-r160.json --rescale
      ofa-profile predict --lut note10.json --arch net.config --json
    """
    check_speed_options(rescale, no_speed_check)
    p = predict_subnet(lut_ref, arch_path, space=space, resolution=resolution, calibrated=not no_calibration,
                       speed_check=not no_speed_check, rescale=rescale, log=log, classes=classes)
    if as_json:
        echo_json(p.as_dict())
    else:
        how = "calibrated" if p.calibrated else "LUT sum, uncalibrated"
        if p.rescaled:
            how += f", x {p.scale:.3f} by the speed check"
        click.echo(f"{p.latency_ms:.3f} ms ({how}; LUT sum {p.lut_sum_ms:.3f} ms) for {p.spec.short()} on "
                   f"{p.lut.device} [{p.lut.source}]")
        click.echo(f"timed: {p.lut.timed.label(p.lut.runtime)}")
