"""``qrspec batch``: many particles, one results file."""

from __future__ import annotations

import contextlib
import sys

import click

from qrspec.cli._options import analysis_options


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", type=click.Path(), required=True, help="Results HDF5 file.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
@click.option("--resume", is_flag=True, help="Finish an interrupted batch in OUTPUT.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("--group-by", type=click.Choice(["folder", "none"]), default="folder",
              show_default=True, help="Sample group of each particle.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--csv", "csv_path", type=click.Path(),
              help="Also write /summary as CSV here.")
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time limit per particle [s]; a worker past it (hung or stopped) is killed "
                   "and the particle recorded as failed.  [default: 1800]")
@click.option("--memory-limit-mb", type=click.IntRange(min=0), default=None,
              help="Address-space limit per worker [MiB]; 0 = none.  [default: 80 % of the "
                   "RAM divided among the workers]")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on a dask.distributed cluster (extra 'dask'), e.g. tcp://host:8786.")
@click.option("--dask-local", type=click.IntRange(min=1), metavar="N",
              help="Run on a local dask cluster of N worker processes (extra 'dask').")
@click.option("--filter", "particle_filter", metavar="EXPR",
              help="Group statistics over the particles this expression selects, e.g. "
                   "\"single_emitter and rate_cps > 5000\" (summary columns, numbers, "
                   "comparisons, and/or/not); every particle is still analysed and stored, "
                   "the expression is recorded in OUTPUT.")
@click.option("--exclude", "exclude", type=click.Path(dir_okay=False),
              help="Exclusion list (JSON saved from the HTML report, or written by "
                   "qrspec.app.exclude): group statistics without these particles; every "
                   "particle is still analysed and stored, the list is recorded in OUTPUT.")
@analysis_options
@click.pass_context
def batch(ctx, inputs, output, jobs, resume, overwrite, group_by, no_progress, csv_path,
          timeout_s, memory_limit_mb, scheduler, dask_local, particle_filter, exclude, config):
    """Analyse every TTTR file in INPUTS into one results file.

    INPUTS are files or folders, searched recursively. A failing particle (unreadable, crashing,
    hung, out of memory) is recorded and never stops the batch. OUTPUT is locked while the batch
    runs.

    Shows a progress bar on a terminal (not with -q or --no-progress) and ends with a table
    per group: particles, ok, failed, and the medians of gated g2(0), tau_X0 and n_c.

    Exit code 0 when all particles succeeded, 3 when some failed, 1 on unusable input or
    output (exists, is an input, locked by another batch, cannot be written) or a bad
    exclusion list, 2 on bad options.
    """
    from qrspec.app.batch import DEFAULT_TIMEOUT_S, collect_inputs, run_batch
    from qrspec.app.progress import ProgressBar, format_group_table, progress_enabled
    from qrspec.cli._options import check_output, display
    from qrspec.errors import QrspecError
    from qrspec.store.hdf5 import export_summary_csv, read_results

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite are mutually exclusive")
    if scheduler and dask_local:
        raise click.UsageError("--scheduler and --dask-local are mutually exclusive")
    if memory_limit_mb is not None and 0 < memory_limit_mb < 256:
        raise click.BadParameter(f"{memory_limit_mb} is below 256 MiB (0 = no limit)",
                                 param_hint="--memory-limit-mb")
    quiet = bool(ctx.find_root().params.get("quiet"))
    excl = None
    try:
        if particle_filter is not None:  # a bad expression fails before any work
            from qrspec.app.filters import parse_filter
            from qrspec.store.summary import SUMMARY_COLUMNS

            parse_filter(particle_filter, [c[0] for c in SUMMARY_COLUMNS])
        if exclude is not None:  # so does a bad exclusion list
            from qrspec.app.exclude import read_exclusion_file

            excl = read_exclusion_file(exclude)
        items = collect_inputs(inputs, group_by=group_by)
    except QrspecError as exc:
        raise click.ClickException(display(str(exc))) from None
    n = len(items)
    files = [it.path for it in items]
    check_output(output, inputs=files, overwrite=True)
    if csv_path:
        check_output(csv_path, inputs=[*files, output], overwrite=True)
    try:
        with contextlib.ExitStack() as stack:
            progress = stack.enter_context(ProgressBar(
                n, "particles", enabled=progress_enabled(quiet, no_progress)))
            executor = None
            if scheduler or dask_local:
                from qrspec.app.dask_backend import dask_executor

                executor = stack.enter_context(dask_executor(scheduler=scheduler,
                                                             local_workers=dask_local))
            report = run_batch(inputs, output, config, jobs=jobs, resume=resume,
                               overwrite=overwrite, group_by=group_by, progress=progress,
                               executor=executor,
                               timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
                               memory_limit_mb=memory_limit_mb, particle_filter=particle_filter,
                               exclude=excl)
    except QrspecError as exc:
        raise click.ClickException(display(str(exc))) from None
    if csv_path:
        try:
            export_summary_csv(report.output, csv_path)
        except QrspecError as exc:  # the results file is complete; only the CSV copy failed
            raise click.ClickException(display(f"{exc}; {report.output} is complete")) \
                from None
    click.echo(display(f"{report.n_ok} ok, {report.n_failed} failed, {report.n_skipped} "
                       f"resumed of {report.n_particles} particles in {report.wall_s:.1f} s -> "
                       f"{report.output}"), err=True)
    for pid, err in report.failed:
        click.echo(display(f"failed: {pid}: {err}"), err=True)
    if not quiet:
        try:
            click.echo(display(format_group_table(read_results(report.output))))
        except QrspecError as exc:  # the results are written; only the table failed
            click.echo(display(f"no group table: {exc}"), err=True)
    sys.exit(report.exit_code)
