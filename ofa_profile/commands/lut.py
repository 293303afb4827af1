"""The commands on LUT files: ``predict`` (one subnet's latency) and the ``lut`` group (``import-ofa``,
``export-ofa``, ``info``, ``validate``).  Each parses its options, calls one domain function
(:mod:`ofa_profile.lut`, :mod:`ofa_profile.lut_report`) and prints."""
from __future__ import annotations

import click

from ..cliopts import RESOLUTION, SPACE_NAME
from .base import WAIT_OPTION, echo_json, hold_lock, main


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
    from ..lut_report import check_out_file, import_ofa_lut

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
    from ..lut import export_ofa_yaml, load_lut
    from ..paths import check_out_dir

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
    from ..lut import load_lut
    from ..lut_report import lut_summary

    s = lut_summary(load_lut(lut_ref))
    if as_json:
        echo_json(s)
        return
    click.echo(f"lut:          {s['lut']}")
    click.echo(f"space:        {s['space']}")
    click.echo(f"device:       {s['device']} (runtime {s['runtime']}, batch {s['batch_size']}, "
               f"threads {s['num_threads'] if s['num_threads'] is not None else 'unknown'})")
    click.echo(f"resolutions:  {','.join(map(str, s['resolutions'])) or 'none complete'}")
    extra = f" (+{s['resolution_entries']} per-resolution)" if s["resolution_entries"] else ""
    click.echo(f"entries:      {s['entries']}{extra}")
    click.echo(f"created:      {s['created_utc']} by {s['tool']}; source: {s['source']}; seed: {s['seed']}")
    click.echo("fingerprint:  " + "; ".join(f"{k}={v}" for k, v in s["fingerprint"].items()))
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
    cal = s["calibration"]
    click.echo("calibration:  " + ("none" if not cal else "; ".join(f"{k}={v}" for k, v in cal.items())))
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
    from ..lut_report import validate_lut_file

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
@click.option("--arch", "arch_path", required=True, help="subnet: OFA spec JSON {ks, e, d, r} or a net.config")
@click.option("--space", type=SPACE_NAME, default=None, help="space of a plain spec JSON [default: the LUT's space]")
@click.option("--resolution", type=RESOLUTION, default=None, help="input resolution (overrides the arch's r)")
@click.option("--no-calibration", is_flag=True, help="report the plain LUT sum even if the LUT is calibrated")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def predict_cmd(lut_ref: str, arch_path: str, space: str | None, resolution: int | None, no_calibration: bool,
                as_json: bool) -> None:
    """Predict the latency of one subnet from a LUT (calibrated where the LUT holds a calibration).

    \b
    Example:
      ofa-profile predict --lut cpu-ort --arch examples/arch-r160.json
      ofa-profile predict --lut note10.json --arch net.config --json
    """
    from ..lut_report import predict_subnet

    p = predict_subnet(lut_ref, arch_path, space=space, resolution=resolution, calibrated=not no_calibration)
    if as_json:
        echo_json(p.as_dict())
    else:
        how = "calibrated" if p.calibrated else "LUT sum, uncalibrated"
        click.echo(f"{p.latency_ms:.3f} ms ({how}; LUT sum {p.lut_sum_ms:.3f} ms) for {p.spec.short()} on "
                   f"{p.lut.device} [{p.lut.source}]")
