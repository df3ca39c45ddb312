"""``qrspec export-photon-hdf5``: convert a TTTR file to a validated Photon-HDF5 file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export-photon-hdf5")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(path_type=Path),
              help="Output Photon-HDF5 file [default: FILE with suffix .hdf5].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--markers", type=click.Choice(["user", "non_photon_id"]), default="user",
              show_default=True,
              help="Store markers/T2 sync events in /user/markers and /user/sync, or as "
                   "non-photon detector ids in /photon_data.")
@click.option("--compression", type=click.Choice(["zlib", "blosc", "none"]), default="zlib",
              show_default=True,
              help="zlib: deflate-1 + shuffle, readable by any HDF5 reader; blosc: fastest, "
                   "needs PyTables or the Blosc HDF5 plugin to read.")
@click.option("--author", help="/identity/author.")
@click.option("--affiliation", "author_affiliation", help="/identity/author_affiliation.")
@click.option("--sample-name", help="/sample/sample_name.")
@click.option("--description", help="/description [default: record type, source, comment].")
@click.option("--laser-repetition-rate-hz", type=float,
              help="Override the laser repetition rate (default: the header's sync rate; "
                   "0 = CW, T2 only).")
def export_photon_hdf5(file, output, overwrite, markers, compression, author,
                       author_affiliation, sample_name, description, laser_repetition_rate_hz):
    """Convert the TTTR FILE (PTU, HT3, PT3, T3R, ...) to Photon-HDF5 with phconvert.

    Setup and provenance come from the file header; the result passes phconvert's
    Photon-HDF5 validation and holds exactly the decoded photons (read back and compared
    before the file is renamed into place; a full disk leaves nothing behind). Prints the
    output path.

    Exit code 0 on success; 1 when FILE cannot be read or OUTPUT is refused (exists without
    --overwrite, is FILE itself, a folder) or cannot be written; 2 on bad options.
    """
    from qrspec.cli._options import check_output, display
    from qrspec.errors import QrspecError
    from qrspec.io.photon_hdf5 import export_photon_hdf5 as export

    out = output if output is not None else file.with_suffix(".hdf5")
    check_output(out, inputs=[file], overwrite=overwrite)
    try:
        path = export(file, out, overwrite=overwrite, author=author,
                      author_affiliation=author_affiliation, sample_name=sample_name,
                      description=description, markers=markers, compression=compression,
                      laser_repetition_rate_hz=laser_repetition_rate_hz)
    except QrspecError as exc:
        raise click.ClickException(display(str(exc))) from None
    click.echo(display(path))
