"""``qrspec analyze``: the full pipeline on one particle."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qrspec.cli._options import analysis_options


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Results HDF5 file for this particle.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary row as JSON.")
@analysis_options
def analyze(file, output, overwrite, as_json, config):
    """Analyse one particle: trajectory, levels, decays and lifetimes per state, g2 raw and
    gated, biexciton lifetimes, n_c(t) and tau_A(t). Writes OUTPUT (HDF5)."""
    from qrspec.analysis.pipeline import analyze_file
    from qrspec.errors import QrspecError
    from qrspec.store.hdf5 import write_particle_file
    from qrspec.store.summary import row_to_dict, summary_row

    out = Path(output)
    if out.exists() and not overwrite:
        raise click.ClickException(f"{out}: exists; use --overwrite to replace it")
    from qrspec.io.atomic import check_output_path

    try:
        check_output_path(out, inputs=[file], overwrite=overwrite)  # before the work
        res = analyze_file(file, config)
        # crash-safe: on any error nothing (partial) is left and the input is never replaced
        write_particle_file(out, res, inputs=[file], overwrite=overwrite)
    except QrspecError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(row_to_dict(summary_row(res))))
    else:
        click.echo(f"{res.particle_id}: {res.status} -> {out}"
                   + (f" ({res.error})" if res.error else ""))
