"""Stage: the neutral biexciton lifetime three ways and their consistency.

The three ways are heralded pairs, the g2 gate scan and the cascade decay fit (methods.md §2.3,
§2.4, §2.6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.decay_fits import NO_TAIL, TAIL_START_NS
from qrspec.analysis.states import States
from qrspec.photons import Photons

__all__ = ["TauXXMethods", "compare_tau_xx_methods"]


@dataclass(frozen=True, eq=False)
class TauXXMethods:
    """Neutral tau_XX by the gate scan and the cascade fit, compared with the heralded one.

    Attributes
    ----------
    run : bool
        Whether the comparison ran (it needs ``mean_excitations`` and a neutral tau_X).
    reason : str
        Why it did not run ("" when it ran).
    mean_excitations : float
        <N> used (NaN when not given).
    gate_scan_ns, gate_scan_err_ns : float
        tau_XX from the g2(0; gate) scan and its standard error.
    cascade_ns, cascade_err_ns : float
        tau_XX from the constrained cascade fit of the neutral decay and its standard error.
    p_value : float
        p-value of the methods' consistency (chi2); NaN with fewer than two estimates.
    flags : tuple of str
        Flags of this stage.
    """

    run: bool
    reason: str
    mean_excitations: float
    gate_scan_ns: float
    gate_scan_err_ns: float
    cascade_ns: float
    cascade_err_ns: float
    p_value: float
    flags: tuple[str, ...]


def compare_tau_xx_methods(photons: Photons, states: States, alignment: Alignment,
                           config: AnalysisConfig) -> TauXXMethods:
    """Neutral tau_XX by the g2(0; gate) scan and the cascade fit, compared with the heralded one.

    The gate scan of g2(0; gate) and the constrained cascade fit of the neutral decay both need the
    mean excitation number <N> (``config.mean_excitations``); disagreement is flagged.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    states : States
        The neutral state (windows, decay, heralded tau_XX).
    alignment : Alignment
        Offsets, rise and HBT delay.
    config : AnalysisConfig
        Uses ``mean_excitations``, ``g2_*``, ``detectors`` and ``fit_method``.

    Returns
    -------
    TauXXMethods
    """
    n_exc = config.mean_excitations
    n_exc_value = math.nan if n_exc is None else float(n_exc)

    def skipped(reason):
        return TauXXMethods(False, reason, n_exc_value, *(math.nan,) * 5, ())

    if n_exc is None:
        return skipped("mean_excitations not given (heralded tau_XX only)")
    neutral = states.neutral
    if neutral is None or neutral.decay_counts is None or not np.isfinite(neutral.tau_x_ns) \
            or neutral.windows_s.size == 0:
        return skipped("no neutral period or no neutral tau_X")

    from qrspec.fitting.biexciton import (
        TauXXEstimate,
        cascade_tau_xx,
        compare_tau_xx,
        gate_scan_tau_xx,
        nested_gate_covariance,
    )
    from qrspec.stats.correlation import g2_gate_scan

    flags: list[str] = []
    gate_scan = cascade = (math.nan, math.nan)
    p_value = math.nan
    t0_ns = alignment.t0_ns
    period_ns = alignment.period_ns
    gates = t0_ns + np.arange(0.0, 8.01, 1.0)
    gates = gates[gates < period_ns]
    scan = g2_gate_scan(photons, gates, detectors=config.detectors,
                        gate_offsets_ns=alignment.offsets_ns,
                        max_lag_periods=config.g2_max_lag_periods, bin_ns=config.g2_bin_ns,
                        delay_ns=alignment.delay_ns, time_windows_s=neutral.windows_s)
    ok = np.isfinite(scan.g2_0) & np.isfinite(scan.g2_0_err) & (scan.centre > 0)
    estimates = []
    if neutral.n_pairs and np.isfinite(neutral.tau_xx_ns):
        estimates.append(TauXXEstimate("heralded", neutral.tau_xx_ns, neutral.tau_xx_err_ns,
                                       (neutral.tau_xx_ns - neutral.tau_xx_err_ns,
                                        neutral.tau_xx_ns + neutral.tau_xx_err_ns),
                                       neutral.n_pairs, True, ""))
    if ok.sum() >= 3:
        cov = nested_gate_covariance(scan.g2_0[ok], scan.centre[ok], scan.side_mean[ok],
                                     len(scan.side_peaks))
        est = gate_scan_tau_xx(scan.gates_ns[ok] - t0_ns, scan.g2_0[ok], scan.g2_0_err[ok],
                               tau_x_ns=neutral.tau_x_ns, mean_excitations=n_exc, g2_cov=cov,
                               tau_x_err_ns=neutral.tau_x_err_ns)
        if est.success:
            gate_scan = (est.tau_ns, est.tau_err_ns)
            estimates.append(est)
        else:
            flags.append(f"neutral tau_XX gate scan: {est.message}")
    else:
        flags.append("neutral tau_XX gate scan: fewer than 3 gates with centre-peak pairs")
    n_whole = int(np.floor(period_ns / neutral.decay_bin_ns + 1e-9))  # no last, short bin
    counts, time_ns = neutral.decay_counts[:n_whole], neutral.decay_time_ns[:n_whole]
    start = t0_ns + TAIL_START_NS
    if start < time_ns.size * neutral.decay_bin_ns:
        est = cascade_tau_xx(counts, time_ns, mean_excitations=n_exc, intervals="hessian",
                             period_ns=period_ns, irf=None, background="fit",
                             fit_range_ns=(start, period_ns), method=config.fit_method)
        if est.success:
            cascade = (est.tau_ns, est.tau_err_ns)
            estimates.append(est)
        else:
            flags.append(f"neutral tau_XX cascade fit: {est.message}")
    else:
        flags.append(f"neutral tau_XX cascade fit: {NO_TAIL.format(start)}")
    if len(estimates) < 2:
        flags.append("neutral tau_XX methods: fewer than two estimates to compare")
    else:
        cmp = compare_tau_xx(estimates)
        p_value = cmp.p_value
        if not cmp.consistent:
            flags.append(f"neutral tau_XX methods disagree: {cmp.message}")
    return TauXXMethods(True, "", n_exc_value, float(gate_scan[0]), float(gate_scan[1]),
                           float(cascade[0]), float(cascade[1]), float(p_value), tuple(flags))
