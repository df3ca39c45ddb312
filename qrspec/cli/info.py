"""``qrspec info``: describe TTTR files."""

from __future__ import annotations

import json

import click


def describe(path) -> dict:
    """Summary of one TTTR file as a JSON-serialisable dict."""
    from qrspec.io import read_tttr

    p = read_tttr(path)
    counts = p.counts_per_detector
    out = {
        "path": str(path),
        "record_type": p.record_type,
        "mode": f"T{p.measurement_mode}",
        "sync_rate_hz": p.sync_rate_hz,
        "timestamps_unit_s": p.timestamps_unit,
        "nanotimes_unit_s": p.nanotimes_unit,
        "duration_s": p.duration_s,
        "acquisition_s_header": p.acquisition_s,
        "n_photons": p.size,
        "photons_per_detector": {int(d): int(counts[d]) for d in p.detector_ids},
        "rate_cps": None if p.duration_s == 0 else p.rate_cps,
        "n_markers": p.markers.size,
        "markers_per_input": p.markers.counts_per_bit(),
        "n_sync_events": None if p.sync_timestamps is None else int(p.sync_timestamps.size),
        "n_overflows": p.n_overflows,
        "warnings": list(p.warnings),
    }
    return out


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
    for w in d["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
def info(files, as_json):
    """Describe TTTR FILES: record type, mode, sync rate, resolutions, duration, photons per
    detector, markers, overflows and warnings.

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
