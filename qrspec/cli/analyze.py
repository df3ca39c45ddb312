"""``qrspec analyze``: the full pipeline on one particle."""

from __future__ import annotations

import json

import click

from qrspec.cli._options import analysis_options, check_output, display


@click.command()
@click.argument("file", type=click.Path())
@click.option("-o", "--output", type=click.Path(), required=True,
              help="Results HDF5 file for this particle.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary row as JSON.")
@analysis_options
def analyze(file, output, overwrite, as_json, config):
    """Analyse one particle.

    Trajectory, levels, decays and lifetimes per state, g2 raw and gated, biexciton lifetimes,
    n_c(t) and tau_A(t). Writes OUTPUT (HDF5).

    Exit code 0 on success; 1 when FILE cannot be analysed or OUTPUT is refused (exists
    without --overwrite, is FILE itself, a folder, cannot be written: nothing is left behind);
    2 on bad options.
    """
    from qrspec.analysis.pipeline import analyze_file
    from qrspec.errors import QrspecError
    from qrspec.store.hdf5 import write_particle_file
    from qrspec.store.summary import row_to_dict, summary_row

    check_output(output, inputs=[file], overwrite=overwrite)
    try:
        res = analyze_file(file, config)
        # crash-safe: on any error nothing (partial) is left and the input is never replaced
        write_particle_file(output, res, inputs=[file], overwrite=overwrite)
    except QrspecError as exc:  # unreadable input, or the output cannot be written
        raise click.ClickException(display(str(exc))) from None
    if as_json:
        click.echo(json.dumps(row_to_dict(summary_row(res))))
    else:
        click.echo(display(f"{res.particle_id}: {res.status} -> {output}"
                           + (f" ({res.error})" if res.error else "")))
