"""Per-particle result containers and the columns of the batch summary table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qrspec.io.files import storable_text

__all__ = ["Dataset", "ParticleResult", "SUMMARY_COLUMNS", "summary_dtype"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """One array of a particle's results, with its units and a description (HDF5 attributes)."""

    data: np.ndarray
    units: str
    description: str
    attrs: dict = field(default_factory=dict)


# name, numpy dtype, units, description
SUMMARY_COLUMNS: list[tuple[str, str, str, str]] = [
    ("particle_id", "S64", "", "sanitised particle identifier (file stem)"),
    ("group", "S64", "", "sample group (e.g. the parent folder)"),
    ("source", "S512", "", "path of the TTTR file"),
    ("status", "S8", "", "ok or failed"),
    ("error", "S512", "", "error message or analysis flags"),
    ("n_photons", "i8", "counts", "photons on the analysed detectors"),
    ("duration_s", "f8", "s", "span of the photon stream"),
    ("rate_cps", "f8", "counts/s", "mean detected photon rate"),
    ("g2_zero", "f8", "", "pulsed g2(0): centre / mean side peak area, no gate"),
    ("g2_zero_err", "f8", "", "Poisson standard error of g2_zero"),
    ("g2_zero_gated", "f8", "", "g2(0) with both photons in the nanotime gate"),
    ("g2_zero_gated_err", "f8", "", "Poisson standard error of g2_zero_gated"),
    ("gate_ns", "f8", "ns", "nanotime gate start after the aligned decay zero"),
    ("single_emitter", "?", "", "gated g2(0) significantly below 0.5"),
    ("frac_time_neutral", "f8", "", "fraction of time in neutral-labelled segments"),
    ("tau_x_neutral_ns", "f8", "ns", "exciton lifetime in neutral periods"),
    ("tau_x_neutral_err_ns", "f8", "ns", "standard error of tau_x_neutral_ns"),
    ("tau_xx_neutral_ns", "f8", "ns", "biexciton lifetime in neutral periods"),
    ("tau_xx_neutral_err_ns", "f8", "ns", "standard error of tau_xx_neutral_ns"),
    ("tau_a_xx_neutral_ns", "f8", "ns", "neutral biexciton Auger lifetime (model)"),
    ("tau_xx_neutral_gate_scan_ns", "f8", "ns", "neutral tau_XX from the g2(0; gate) scan"),
    ("tau_xx_neutral_gate_scan_err_ns", "f8", "ns", "error of the gate-scan tau_XX"),
    ("tau_xx_neutral_cascade_ns", "f8", "ns", "neutral tau_XX from the cascade decay fit"),
    ("tau_xx_neutral_cascade_err_ns", "f8", "ns", "error of the cascade tau_XX"),
    ("tau_xx_methods_p", "f8", "", "p-value of the tau_XX methods' consistency (chi2)"),
    ("tau_x_charged_ns", "f8", "ns", "time-weighted mean exciton lifetime in charged periods"),
    ("tau_xx_charged_ns", "f8", "ns", "time-weighted mean biexciton lifetime in charged periods"),
    ("n_c_mean", "f8", "", "time-weighted mean charging number over charged periods"),
    ("n_c_err", "f8", "", "standard error of n_c_mean"),
    ("tau_a_xx_charged_ns", "f8", "ns", "time-weighted mean charged biexciton Auger lifetime"),
    ("tau_a_xx_charged_err_ns", "f8", "ns", "standard error of tau_a_xx_charged_ns"),
    ("n_levels", "i8", "", "number of intensity levels found by change-point analysis"),
    ("n_change_points", "i8", "", "number of change points"),
    ("analysis_s", "f8", "s", "wall time of the particle's analysis"),
]


def summary_dtype() -> np.dtype:
    """The structured dtype of ``/summary``."""
    return np.dtype([(name, dt) for name, dt, _, _ in SUMMARY_COLUMNS])


def summary_row(values: dict) -> np.ndarray:
    """One ``/summary`` row from a dict (missing floats NaN, ints -1, strings empty)."""
    dt = summary_dtype()
    row = np.zeros((), dt)
    for name, kind, _, _ in SUMMARY_COLUMNS:
        v = values.get(name)
        if kind.startswith("S"):
            # undecodable file-name bytes as \\xNN; never cut a UTF-8 character in two
            b = storable_text("" if v is None else v).encode("utf-8")[: int(kind[1:])]
            row[name] = b.decode("utf-8", "ignore").encode("utf-8")
        elif kind == "f8":
            row[name] = math.nan if v is None else float(v)
        elif kind == "i8":
            row[name] = -1 if v is None else int(v)
        else:
            row[name] = bool(v) if v is not None else False
    return row


def row_to_dict(row) -> dict:
    """A ``/summary`` row as a JSON-ready dict (str for text, None for NaN)."""
    out = {}
    for name in row.dtype.names:
        v = row[name].item() if hasattr(row[name], "item") else row[name]
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        out[name] = v
    return out


@dataclass(frozen=True, eq=False)
class ParticleResult:
    """Everything computed for one particle.

    Attributes
    ----------
    particle_id, group, source : str
        Identity of the particle.
    source_sha256 : str
        Checksum of the source file (provenance).
    status : str
        ``"ok"`` or ``"failed"``.
    error : str
        Error message (failed) or analysis flags (ok), "" when none.
    traceback : str
        Python traceback of a failure.
    summary : dict
        Scalar values for the ``/summary`` row (see :data:`SUMMARY_COLUMNS`).
    datasets : dict
        ``"trace/counts" -> Dataset`` arrays written under ``/particles/<id>/``.
    attrs : dict
        ``"trace" -> {attr: value}`` group attributes.
    """

    particle_id: str
    group: str
    source: str
    source_sha256: str
    status: str
    error: str = ""
    traceback: str = ""
    summary: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def summary_row(self) -> np.ndarray:
        """This particle's ``/summary`` row."""
        vals = dict(self.summary)
        vals.update(particle_id=self.particle_id, group=self.group, source=self.source,
                    status=self.status, error=self.error)
        return summary_row(vals)
