"""The built-in demo: simulate a small population, analyse it as a batch, tabulate by group.

It tells the paper's story (Fig. 1f, 2g, 2h): undoped rods whose charge number n_c(t) falls
over the acquisition as they discharge, Mn-doped rods that hold ~6 charges with a charged
biexciton Auger lifetime of ~1.7 ns, and neutral controls; every rod is a single emitter.

What the analysis is told is what a user knows from a calibration, recorded in the config:
the charge model (capped variant, eps = 1/2, gamma = 2.39: the value that maps the paper's
tau_A,XX0 = 13.9 ns onto 1.7 ns at n_c = 6, ``docs/charging_model.md``) and the excitation
<N> = 0.3 (fluence x cross-section). Lifetimes, Auger rates, charge numbers and the labels are
measured. The simulated rods share that material model (the undoped preset with gamma = 2.39)
and the presets' charge dynamics, with longer neutral periods than the presets (undoped 0.6 s,
Mn-doped 1.0 s mean neutral dwell): the neutral periods hold the reference tau_X0, tau_XX0 of
every inversion and the gated g2 of the single-emitter verdict, and 0.3 / 0.5 s left too few
pairs for either (4 of 8 Mn-doped rods undecided). The demo analyses with the same code as
``batch`` (:func:`qrspec.app.batch.run_batch`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

__all__ = ["DEMO_GROUPS", "DEMO_MEAN_EXCITATIONS", "demo_config", "simulate_demo_population",
           "run_demo", "group_table", "format_table", "charging_trend"]

logger = logging.getLogger(__name__)

DEMO_MEAN_EXCITATIONS = 0.3  # <N> of the simulated rods, told to the analysis
DEMO_GAMMA = 2.39  # capped model, eps 1/2: tau_A,XX0 13.9 ns -> 1.70 ns at n_c = 6
# folder (= group) -> (simulator preset, changes): an undoped rod that discharges from ~20
# charges, a Mn-doped rod holding ~6 charges, and a rod that stays neutral
DEMO_GROUPS = {
    "undoped": ("undoped", {"emitter": {"gamma": DEMO_GAMMA},
                            "charge": {"neutral_dwell_s": 0.6}}),
    "mn_doped": ("mn-doped", {"charge": {"neutral_dwell_s": 1.0}}),
    "neutral": ("neutral", {"emitter": {"gamma": DEMO_GAMMA}}),
}


def demo_config():
    """The AnalysisConfig of the demo: the calibrated model and <N> (module docstring)."""
    from qrspec.analysis.config import AnalysisConfig, ChargeModelParams

    return AnalysisConfig(mean_excitations=DEMO_MEAN_EXCITATIONS,
                          charge_model=ChargeModelParams(variant="capped", eps=0.5,
                                                         gamma=DEMO_GAMMA))


def simulate_demo_population(data_dir, *, n_per_group: int = 8, duration_s: float = 30.0,
                             seed: int = 2026) -> list[Path]:
    """Write ``n_per_group`` simulated particles per group into ``data_dir/<group>/``."""
    from qrspec.simulate import preset
    from qrspec.simulate.population import simulate_population
    from qrspec.simulate.sidecar import write_particle

    paths = []
    for k, (group, (name, changes)) in enumerate(DEMO_GROUPS.items()):
        folder = Path(data_dir) / group
        folder.mkdir(parents=True, exist_ok=True)
        base = preset(name, duration_s=duration_s, mean_excitations=DEMO_MEAN_EXCITATIONS,
                      **changes)
        for i, sim in enumerate(simulate_population(base, n_per_group, seed + 1000 * k)):
            ptu, _ = write_particle(sim, folder / f"{group}_{i:02d}.ptu")
            paths.append(ptu)
    return paths


def charging_trend(charging) -> tuple[int, float]:
    """(usable windows, slope of n_c(t) per second) of one particle's charging stage.

    The slope is a weighted least-squares line through the usable windows' n_c (weights 1 /
    n_c_err^2; NaN with fewer than 3). A descriptive number for the demo table (is n_c(t)
    falling?); the windows share the neutral reference, which scales all n_c together and does
    not change the slope's sign.
    """
    if charging is None:
        return 0, math.nan
    w = charging.windows
    u = np.asarray(w.usable, bool) & np.isfinite(w.n_c) & (w.n_c_err > 0)
    if u.sum() < 3:
        return int(np.sum(w.usable)), math.nan
    t = 0.5 * (w.t_start_s + w.t_stop_s)[u]
    wt = 1.0 / np.square(w.n_c_err[u])
    x = np.vstack([np.ones_like(t), t]).T
    slope = np.linalg.solve(x.T @ (x * wt[:, None]), x.T @ (wt * w.n_c[u]))[1]
    return int(np.sum(w.usable)), float(slope)


def group_table(results) -> list[dict]:
    """Per-group rows from a :class:`qrspec.store.hdf5.Results`.

    Columns: intensity, g2, verdict, lifetimes, n_c, charging windows.
    """
    trends: dict[str, list] = {}
    for row in results.summary:
        if str(row["status"]) != "ok":
            continue
        a = results.particle(str(row["particle_id"]))
        trends.setdefault(str(row["group"]), []).append(charging_trend(a.charging))
    rows = []
    for g in results.groups:
        def cell(col, g=g):
            m, e = g[f"{col}_mean"], g[f"{col}_sem"]
            return (float(m), float(e))
        name = str(g["group"])
        tr = trends.get(name, [])
        charged = [t for t in tr if t[0] > 0]
        slopes = [t[1] for t in tr if math.isfinite(t[1])]
        rows.append({"group": name, "n": int(g["n_particles"]), "ok": int(g["n_ok"]),
                     "rate_cps": cell("rate_cps"), "g2_zero": cell("g2_zero"),
                     "g2_zero_gated": cell("g2_zero_gated"),
                     "tau_x_neutral_ns": cell("tau_x_neutral_ns"),
                     "tau_xx_neutral_ns": cell("tau_xx_neutral_ns"),
                     "n_c_mean": cell("n_c_mean"),
                     "tau_a_xx_charged_ns": cell("tau_a_xx_charged_ns"),
                     "frac_time_neutral": cell("frac_time_neutral"),
                     "single": f"{float(g['frac_single_emitter']):.0%}"
                     if math.isfinite(float(g["frac_single_emitter"])) else "-",
                     "windows": f"{np.median([t[0] for t in charged]):.0f}" if charged
                     else "-",
                     "falling": f"{np.mean([s < 0 for s in slopes]):.0%}" if slopes else "-"})
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`group_table` rows.

    Values are mean ± SEM; windows: median usable charging windows per rod with any; falling: rods
    whose n_c(t) slope is negative.
    """
    cols = [("group", "group"), ("n", "n"), ("ok", "ok"), ("rate_cps", "rate [kcps]"),
            ("g2_zero", "g2(0)"), ("g2_zero_gated", "g2(0) gated"), ("single", "single"),
            ("tau_x_neutral_ns", "tau_X0 [ns]"), ("tau_xx_neutral_ns", "tau_XX0 [ns]"),
            ("frac_time_neutral", "f_neutral"), ("n_c_mean", "n_c"),
            ("tau_a_xx_charged_ns", "tau_A,XX^c [ns]"), ("windows", "windows"),
            ("falling", "n_c falling")]

    def fmt(key, v):
        if isinstance(v, tuple):
            m, e = v
            if key == "rate_cps":
                m, e = m / 1e3, e / 1e3
            if not math.isfinite(m):
                return "-"
            if not math.isfinite(e) or e <= 1e-9 * abs(m):
                return f"{m:.3g}"
            return f"{m:.3g}±{e:.2g}"
        return str(v)

    table = [[h for _, h in cols]] + [[fmt(k, r[k]) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     for row in table)


def run_demo(outdir, *, n_per_group: int = 8, duration_s: float = 30.0, jobs: int = 2,
             seed: int = 2026, progress=None):
    """Simulate the demo population, analyse it and return ``(results, report)``.

    The population is simulated into ``outdir/data`` and analysed (:func:`demo_config`) into
    ``outdir/results.h5``.
    """
    from qrspec.app.batch import run_batch
    from qrspec.app.warmup import start_background_warmup
    from qrspec.store.hdf5 import read_results

    outdir = Path(outdir)
    data = outdir / "data"
    # a fresh install compiles the analysis kernels once: on the idle core, while simulating
    warmup = start_background_warmup() if jobs > 1 else None
    simulate_demo_population(data, n_per_group=n_per_group, duration_s=duration_s, seed=seed)
    if warmup is not None:
        warmup.join(timeout=600)
    report = run_batch([data], outdir / "results.h5", demo_config(), jobs=jobs, overwrite=True,
                       progress=progress)
    return read_results(report.output), report
