"""``qrspec report``: figures of a results file (per particle and per batch)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output-dir", "output_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the figures (created if needed).")
@click.option("--particles", "particles", multiple=True, metavar="ID",
              help="Only these particles (repeat the option or give a comma-separated list) "
                   "[default: all].")
@click.option("--format", "fmt", type=click.Choice(["png", "pdf"]), default="png",
              show_default=True, help="Figure file format.")
@click.option("--dpi", type=click.IntRange(10, 2400), default=300, show_default=True,
              help="Resolution of PNG figures.")
@click.option("--filter", "particle_filter", metavar="EXPR",
              help="Only the particles this expression selects, e.g. \"single_emitter and "
                   "rate_cps > 5000\": group statistics recomputed on them (the expression is "
                   "shown in the batch figure), particle figures of them only.")
def report(results, output_dir, particles, fmt, dpi, particle_filter):
    """Draw the figures of the results file RESULTS into OUTPUT_DIR: batch_summary.<fmt>
    (g2(0), lifetimes and n_c per group; intensity and n_c versus group) and
    particle_<ID>.<fmt> per particle (trajectory with levels, n_c(t) and tau_A(t), decays per
    state with fits, g2 raw and gated, FLID). Needs matplotlib (extra 'plot').
    Prints the paths of the figures.

    Exit code 0 on success, 1 when RESULTS is not a results file, a particle id is unknown
    or matplotlib is missing.
    """
    from qrspec.errors import QrspecError

    try:
        from qrspec.app.plots import write_figures
    except ImportError as exc:  # matplotlib is not installed
        raise click.ClickException(str(exc)) from None
    ids = [x.strip() for item in particles for x in item.split(",") if x.strip()] or None
    try:
        paths = write_figures(results, output_dir, particles=ids, fmt=fmt, dpi=dpi,
                              particle_filter=particle_filter)
    except (QrspecError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None
    for p in paths:
        click.echo(p)
    click.echo(f"{len(paths)} figures -> {output_dir}", err=True)
