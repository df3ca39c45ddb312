"""``qrspec report``: figures and the browsable HTML report of a results file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output-dir", "output_dir",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the figures (created if needed).")
@click.option("--html", "html_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the HTML report into this folder (new, empty, or a previous "
                   "report, which is replaced; its figures are reused when still valid).")
@click.option("--exclude", "exclude", type=click.Path(dir_okay=False, path_type=Path),
              help="Exclusion list (JSON saved from the HTML report): group statistics and "
                   "batch figures without these particles.")
@click.option("--particles", "particles", multiple=True, metavar="ID",
              help="Only these particles (repeat the option or give a comma-separated list) "
                   "[default: all]; -o only.")
@click.option("--format", "fmt", type=click.Choice(["png", "pdf"]), default="png",
              show_default=True, help="Figure file format (-o).")
@click.option("--dpi", type=click.IntRange(10, 2400), default=None,
              help="Resolution of PNG figures [default: 300 for -o, 100 for --html].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Processes drawing the figures  [default: 2 where the machine has 2 or "
                   "more cores, else 1].")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--filter", "particle_filter", metavar="EXPR",
              help="Only the particles this expression selects, e.g. \"single_emitter and "
                   "rate_cps > 5000\" (summary columns, numbers, comparisons, and/or/not): "
                   "the others are excluded (as by --exclude) from the group statistics and "
                   "the batch figures, and -o draws the selected particles only.")
@click.pass_context
def report(ctx, results, output_dir, html_dir, exclude, particles, fmt, dpi, jobs,
           no_progress, particle_filter):
    """Draw the figures of the results file RESULTS.

    With -o DIR: the batch figures batch_<name>.<fmt> (group means of intensity and n_c,
    tau_A,XX against n_c with the charge model, gated g2(0) histograms, per-group lifetimes
    and dwell exponents, the lasing-threshold map with the groups) and particle_<ID>.<fmt>
    per particle (trajectory with levels, n_c(t) and tau_A(t), decays with fits, g2 raw and
    gated, FLID, dwell times); prints their paths.

    With --html DIR: a static site (open DIR/index.html, no server) with a sortable,
    filterable table of all particles, a page per particle and per group, and exclusion
    checkboxes whose list can be saved and given back with --exclude; prints the index path.

    Needs matplotlib (extra 'plot'). Exit code 0 on success, 1 when RESULTS is not a results
    file, a particle id or the exclusion list is bad, an output cannot be written or
    matplotlib is missing; 2 on a usage error.
    """
    from qrspec.errors import QrspecError

    if output_dir is None and html_dir is None:
        raise click.UsageError("give -o/--output-dir, --html or both")
    if particles and output_dir is None:
        raise click.UsageError("--particles applies to -o/--output-dir only")
    try:
        from qrspec.app import html_report, plots
    except ImportError as exc:  # matplotlib is not installed
        raise click.ClickException(str(exc)) from None
    import numpy as np

    from qrspec.app.batch_tables import load_batch_tables
    from qrspec.app.exclude import read_exclusion_file
    from qrspec.app.filters import apply_filter, filter_exclusion
    from qrspec.app.progress import ProgressBar, progress_enabled
    from qrspec.cli._options import default_jobs

    quiet = bool(ctx.find_root().params.get("quiet"))
    show = progress_enabled(quiet, no_progress)
    jobs = jobs or default_jobs()
    ids = [x.strip() for item in particles for x in item.split(",") if x.strip()] or None
    try:
        tables = load_batch_tables(results)
        listed = read_exclusion_file(exclude) if exclude is not None else None
        excl = listed
        if particle_filter is not None:  # the particles it leaves out are excluded
            excl = filter_exclusion(tables.summary, particle_filter, excl)
        if output_dir is not None:
            n = len(ids if ids is not None else tables.particle_ids) + 1
            if particle_filter is not None:
                n = int(np.sum(np.isin(ids if ids is not None else tables.particle_ids,
                                       tables.summary["particle_id"][
                                           apply_filter(tables.summary, particle_filter)]))) + 1
            with ProgressBar(n, "figures", enabled=show) as bar:
                paths = plots.write_figures(results, output_dir, particles=ids, fmt=fmt,
                                            dpi=dpi or 300, particle_filter=particle_filter,
                                            exclude=listed, jobs=jobs, progress=bar)
            for p in paths:
                click.echo(p)
            if not quiet:
                click.echo(f"{len(paths)} figures -> {output_dir}", err=True)
        if html_dir is not None:
            n = len(tables.particle_ids) + 1
            with ProgressBar(n, "figures", enabled=show) as bar:
                rep = html_report.write_html_report(results, html_dir, jobs=jobs,
                                                    progress=bar, exclude=excl,
                                                    dpi=dpi or 100)
            click.echo(rep.index)
            if not quiet:
                click.echo(f"HTML report of {rep.n_particles} particles -> {rep.index} "
                           f"({rep.n_drawn} figures drawn, {rep.n_reused} reused, "
                           f"{rep.n_failed} failed; {rep.n_excluded} excluded; "
                           f"{rep.seconds:.1f} s)", err=True)
    except (QrspecError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None
