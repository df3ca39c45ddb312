"""A small synthetic results file for the batch-figure and HTML-report tests.

Four groups chosen to hit every branch: ``doped`` (charged, all values), ``undoped``
(charged; one particle without n_c, one with NaN errors, one failed), ``neutral`` (never
charged: n_c undefined, frac_time_neutral 1) and ``empty`` (one failed particle and one ok
particle whose every value is NaN). Only the tables matter here (the report's figures are
stand-ins), so the file is written with the store's own table writers (``/summary`` rows from
its ``summary_row``, ``/groups`` from its ``group_statistics``) and holds no particle data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NAN = math.nan

# the charge model stored in the file's config (as the pipeline writes it)
CONFIG = {"charge_model": {"variant": "capped", "eps": 0.5, "gamma": 1.0, "qy_x0": 1.0,
                           "beta_xminus": 2.0, "beta_xx": 4.0, "tau_a_xx0_ns": None},
          "gate_after_rise_ns": 3.0}


@dataclass(frozen=True)
class Particle:
    """One synthetic particle: identity and summary values."""

    particle_id: str
    group: str
    status: str
    error: str
    summary: dict = field(default_factory=dict)


def _p(pid, group, *, status="ok", error="", **values):
    base = {"n_photons": 500_000, "duration_s": 20.0, "rate_cps": NAN, "g2_zero": NAN,
            "g2_zero_err": NAN, "g2_zero_gated": NAN, "g2_zero_gated_err": NAN,
            "gate_after_rise_ns": 3.0, "single_emitter": False, "frac_time_neutral": NAN,
            "tau_x_neutral_ns": NAN, "tau_x_neutral_err_ns": NAN, "tau_xx_neutral_ns": NAN,
            "tau_a_xx_neutral_ns": NAN, "tau_a_xx_neutral_err_ns": NAN, "n_c_mean": NAN,
            "n_c_err": NAN,
            "tau_a_xx_charged_ns": NAN, "tau_a_xx_charged_err_ns": NAN, "n_levels": 2,
            "n_change_points": 3}
    base.update(values)
    return Particle(pid, group, status, error, base)


PARTICLES = [
    _p("doped_00", "doped", rate_cps=30e3, g2_zero=0.85, g2_zero_err=0.03, g2_zero_gated=0.31,
       g2_zero_gated_err=0.04, single_emitter=True, frac_time_neutral=0.1,
       tau_x_neutral_ns=9.0, tau_x_neutral_err_ns=0.1, tau_a_xx_neutral_ns=12.0,
       n_c_mean=6.0, n_c_err=1.0, tau_a_xx_charged_ns=1.7, tau_a_xx_charged_err_ns=0.2),
    _p("doped_01", "doped", rate_cps=34e3, g2_zero=0.88, g2_zero_err=0.03, g2_zero_gated=0.42,
       g2_zero_gated_err=0.05, frac_time_neutral=0.2, tau_x_neutral_ns=10.0,
       tau_a_xx_neutral_ns=15.0, n_c_mean=7.0, n_c_err=1.5, tau_a_xx_charged_ns=1.9,
       tau_a_xx_charged_err_ns=0.3),
    _p("doped_02", "doped", rate_cps=28e3, g2_zero=0.90, g2_zero_err=0.04, g2_zero_gated=0.58,
       g2_zero_gated_err=0.06, frac_time_neutral=0.05, tau_x_neutral_ns=9.5,
       tau_a_xx_neutral_ns=9.0, n_c_mean=5.0, n_c_err=0.8, tau_a_xx_charged_ns=1.5,
       tau_a_xx_charged_err_ns=0.2,
       error="charging window 0: tau_ratio_below_2"),
    _p("undoped_00", "undoped", rate_cps=40e3, g2_zero=0.80, g2_zero_err=0.02,
       g2_zero_gated=0.45, g2_zero_gated_err=0.05, frac_time_neutral=0.3,
       tau_x_neutral_ns=10.5, tau_a_xx_neutral_ns=20.0, n_c_mean=14.0, n_c_err=3.0,
       tau_a_xx_charged_ns=2.2, tau_a_xx_charged_err_ns=0.3),
    # NaN errors: the point is drawn, its bars are not
    _p("undoped_01", "undoped", rate_cps=36e3, g2_zero=0.83, g2_zero_err=0.02,
       g2_zero_gated=0.39, g2_zero_gated_err=0.04, frac_time_neutral=0.2,
       tau_x_neutral_ns=11.0, tau_a_xx_neutral_ns=18.0, n_c_mean=10.0, n_c_err=NAN,
       tau_a_xx_charged_ns=2.6, tau_a_xx_charged_err_ns=NAN),
    # no n_c (no usable neutral reference): rate and g2 only
    _p("undoped_02", "undoped", rate_cps=44e3, g2_zero=0.86, g2_zero_err=0.03,
       g2_zero_gated=0.61, g2_zero_gated_err=0.07, frac_time_neutral=0.25,
       error="no usable neutral reference: n_c and tau_A not inverted"),
    _p("undoped_03", "undoped", status="failed", error="read error: truncated <file> & such"),
    _p("neutral_00", "neutral", rate_cps=55e3, g2_zero=0.84, g2_zero_err=0.02,
       g2_zero_gated=0.36, g2_zero_gated_err=0.03, single_emitter=True, frac_time_neutral=1.0,
       tau_x_neutral_ns=10.0, tau_a_xx_neutral_ns=11.0, tau_a_xx_neutral_err_ns=1.5,
       error="no charged period", neutral_reference_source="own"),
    _p("neutral_01", "neutral", rate_cps=52e3, g2_zero=0.87, g2_zero_err=0.02,
       g2_zero_gated=0.40, g2_zero_gated_err=0.03, single_emitter=True, frac_time_neutral=1.0,
       tau_x_neutral_ns=9.8, tau_a_xx_neutral_ns=13.0, error="no charged period"),
    _p("empty_00", "empty", status="failed", error="no photons"),
    _p("empty_01", "empty"),
]


def write_population(folder) -> Path:
    """Write the synthetic results file into ``folder``; return its path."""
    from qrspec.store import hdf5
    from qrspec.store.summary import summary_row

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.asarray([summary_row({**p.summary, "particle_id": p.particle_id,
                                    "group": p.group, "status": p.status, "error": p.error,
                                    "source": f"/data/{p.group}/{p.particle_id}.ptu"})
                       for p in PARTICLES])
    out = folder / "results.h5"
    with hdf5.atomic_h5(out) as f:
        hdf5._root_attrs(f, json.dumps(CONFIG))
        hdf5._write_summary(f, rows)
        hdf5._write_groups(f, rows)
        f.create_group("particles")
    return out
