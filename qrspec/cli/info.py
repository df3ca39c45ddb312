"""``qrspec info``: describe TTTR files."""

from __future__ import annotations

import json

import click


def describe(path) -> dict:
    """Summary of one TTTR file as a JSON-serialisable dict.

    Counted with numpy on the raw records (:func:`qrspec.io.reader.summarize_tttr`): ``qrspec
    info`` imports neither numba nor scipy nor h5py, and gives the counts ``read_tttr`` gives.
    """
    from qrspec.io.reader import summarize_tttr

    s = summarize_tttr(path)
    lay = s.layout
    duration = s.duration_s
    return {
        "path": str(path),
        "record_type": lay.record_type.name,
        "mode": f"T{lay.mode}",
        "sync_rate_hz": lay.sync_rate_hz,
        "timestamps_unit_s": lay.timestamps_unit,
        "nanotimes_unit_s": lay.nanotimes_unit,
        "duration_s": duration,
        "acquisition_s_header": lay.acquisition_s,
        "n_photons": s.n_photons,
        "photons_per_detector": s.counts_per_detector,
        "rate_cps": None if duration == 0 else s.n_photons / duration,
        "n_markers": s.n_markers,
        "markers_per_input": s.markers_per_input,
        "n_sync_events": s.n_sync,
        "n_overflows": s.n_overflows,
        "n_invalid_records": s.n_invalid_records,
        "warnings": list(s.warnings),
    }


def _fmt(d: dict) -> str:
    def si(x, unit):
        if x is None:
            return "-"
        for scale, prefix in ((1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1, "")):
            if abs(x) < scale * 1000:
                return f"{x / scale:.6g} {prefix}{unit}"
        return f"{x:.6g} {unit}"

    acq = "-" if d["acquisition_s_header"] is None else format(d["acquisition_s_header"], "g")
    lines = [
        f"{d['path']}",
        f"  record type        {d['record_type']} ({d['mode']})",
        f"  sync rate          {d['sync_rate_hz']:.6g} Hz",
        f"  timestamp unit     {si(d['timestamps_unit_s'], 's')}",
        f"  nanotime unit      {si(d['nanotimes_unit_s'], 's')}",
        f"  duration           {d['duration_s']:.6g} s (header: {acq} s)",
        f"  photons            {d['n_photons']}"
        + ("" if d["rate_cps"] is None else f" ({d['rate_cps']:.6g} cps)"),
    ]
    for det, n in d["photons_per_detector"].items():
        lines.append(f"    detector {det:<3}     {n}")
    lines.append(f"  markers            {d['n_markers']} {d['markers_per_input'] or ''}".rstrip())
    if d["n_sync_events"] is not None:
        lines.append(f"  sync events (T2)   {d['n_sync_events']}")
    lines.append(f"  overflows          {d['n_overflows']}")
    if d["n_invalid_records"]:
        lines.append(f"  invalid records    {d['n_invalid_records']}")
    for w in d["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
def info(files, as_json):
    """Describe TTTR FILES.

    Record type, mode, sync rate, resolutions, duration, photons per detector, markers, overflows
    and warnings.

    Exit code 0 when every file was read, 1 when any file could not be read (the others are
    still described).
    """
    from qrspec.errors import QrspecError

    failed = 0
    for path in files:
        try:
            d = describe(path)
        except QrspecError as exc:
            click.echo(f"qrspec info: error: {exc}", err=True)
            failed += 1
            continue
        click.echo(json.dumps(d) if as_json else _fmt(d))
    if failed:
        raise SystemExit(1)
