"""Command-line interface: ``qrspec COMMAND``.

Each command lives in its own module under :mod:`qrspec.cli` and is imported only when it is
run (or its help is shown), so ``qrspec --help`` stays fast. Command modules import numerical
code inside the command function, never at module level. The CLI parses options, calls the
library and renders results; it holds no numerics.

Exit codes: 0 ok; 1 unreadable input or refused output; 2 usage error; 3 batch finished but
some particles failed.
"""

from __future__ import annotations

import importlib
import logging

import click

# command name -> (module, attribute, one-line help shown by `qrspec --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("qrspec.cli.demo", "demo", "Simulate, analyse and tabulate a small population."),
    "info": ("qrspec.cli.info", "info", "Describe TTTR files: record type, rates, photons."),
    "analyze": ("qrspec.cli.analyze", "analyze", "Full analysis of one particle into HDF5."),
    "batch": ("qrspec.cli.batch", "batch", "Analyse many particles into one results file."),
    "report": ("qrspec.cli.report", "report",
               "Figures of a results file (per particle and per batch)."),
    "simulate": ("qrspec.cli.simulate", "simulate",
                 "Simulate a quantum rod into a PTU file with ground truth."),
    "simulate-batch": ("qrspec.cli.simulate", "simulate_batch",
                       "Simulate a population of rods (PTU files + ground truth)."),
    "model": ("qrspec.cli.model", "model",
              "Charging-associated Auger model: forward, inverse, threshold map."),
    "export-photon-hdf5": ("qrspec.cli.export_photon_hdf5", "export_photon_hdf5",
                           "Convert a TTTR file to validated Photon-HDF5 (phconvert)."),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is used."""

    def list_commands(self, ctx):
        """Names of all commands, sorted (no module is imported)."""
        return sorted(COMMANDS)

    def get_command(self, ctx, cmd_name):
        """The command ``cmd_name``, importing its module now; None for an unknown name."""
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        """Run the command; running out of memory is a clean error (exit 1), not a traceback."""
        try:
            return super().invoke(ctx)
        except MemoryError as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise click.ClickException(
                f"out of memory{detail}: this input or these options need more memory than "
                "is available (or than the memory limit allows)") from None

    def format_commands(self, ctx, formatter):
        """List the commands with their short help from :data:`COMMANDS` (imports no module)."""
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qrspec", prog_name="qrspec")  # resolved on --version only
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """qrspec: single-particle photon-counting spectroscopy on PicoQuant TTTR files."""
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if quiet else levels[min(verbose, 2)]
    logging.basicConfig(level=level, format="qrspec: %(levelname)s: %(message)s")
