"""The per-particle pipeline: reader -> trajectory -> levels -> decays and lifetimes per state ->
g2 raw and gated -> biexciton lifetimes -> n_c(t), tau_A(t).

:func:`analyze_file` returns a :class:`qrspec.analysis.results.ParticleResult`; it raises
:class:`~qrspec.errors.QrspecError` only when the file cannot be analysed at all (unreadable,
T2 data, a detector without photons). Anything the data cannot decide (no neutral period, too
few photon pairs, a failed fit) gives NaN values with a flag in the result's ``error`` text,
never a silent number.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np

from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.results import Dataset, ParticleResult
from qrspec.charging.inverse import UNUSABLE_FLAGS
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["analyze_file", "analyze_photons", "StateLifetimes"]

logger = logging.getLogger(__name__)

# the flags that keep a window out of the particle's values (defined with the model)
UNUSABLE_CHARGING_FLAGS = UNUSABLE_FLAGS
TAIL_START_NS = 0.3  # tail fits start this far after the rise: past the IRF peak (~0.1 ns)
_NO_TAIL = ("tail fit start t0 + 0.3 ns = {:.4g} ns is past the end of the period (rise at "
            "the period end or a one-bin decay)")
MAX_PERIOD_BINS = 1 << 22  # TCSPC bins per laser period (10 MHz, 16 ps: 6250; 100 kHz, 4 ps:
# 2.5e6); above this every per-period histogram costs > 32 MB per row
FIT_BIN_NS = 0.1  # decays are fitted on ~0.1 ns bins (whole TCSPC bins): 6x fewer than 16 ps


@dataclass(frozen=True)
class StateLifetimes:
    """X and XX lifetimes of one state (all photons of its windows)."""

    tau_x_ns: float
    tau_x_err_ns: float
    tau_xx_ns: float
    tau_xx_err_ns: float
    n_photons: int
    n_pairs: int
    g2_zero: float
    g2_zero_err: float
    message: str


def _whole_bins(decay):
    """Counts and left edges without a last, shorter bin (period not a multiple of the bin)."""
    n = int(np.floor(decay.period_ns / decay.bin_ns + 1e-9))
    return decay.counts[:n], decay.time_ns[:n]


def _fit_x(decay, min_photons: int, models=("bi", "mono")):
    """Exciton lifetime of an aligned decay: bi-exponential tail fit (the short component
    absorbs the biexciton), mono-exponential when the bi fit cannot separate two components.

    Returns ``(tau_ns, tau_err_ns, message, fit)``; ``fit`` is the LifetimeFit used (None when
    no fit was made), whose ``model_counts`` and ``residuals`` are stored for the figures.
    """
    from qrspec.fitting.lifetime import fit_decay

    if decay.n_photons < min_photons:
        return math.nan, math.nan, f"{decay.n_photons} photons < {min_photons}", None
    start = decay.t0_ns + TAIL_START_NS
    counts, time_ns = _whole_bins(decay)
    if not start < time_ns.size * decay.bin_ns:
        return math.nan, math.nan, _NO_TAIL.format(start), None
    kw = dict(time_ns=time_ns, period_ns=decay.period_ns,
              fit_range_ns=(start, decay.period_ns), irf=None, background="fit")
    bi = fit_decay(counts, model="bi", **kw) if "bi" in models else None
    if bi is not None and bi.success and bi.tau_ns[0] < 0.8 * bi.tau_ns[1]:
        # the exciton carries most photons (the biexciton share is ~<N>/2 at low <N>); a minor
        # long component is contamination from neighbouring states at segment edges
        k = int(np.argmax(bi.fractions))
        if np.isfinite(bi.tau_err_ns[k]):
            return bi.tau_ns[k], bi.tau_err_ns[k], "", bi
    mono = fit_decay(counts, model="mono", **kw)
    if mono.success:
        return mono.tau_ns[0], mono.tau_err_ns[0], "", mono
    return math.nan, math.nan, f"lifetime fit failed: {mono.message}", None


def _in_windows_ticks(ticks, windows, unit: float) -> np.ndarray:
    """Mask of sorted ``ticks`` inside half-open windows (s), edges as in select_windows."""
    if windows is None:
        return np.ones(ticks.size, bool)
    a = np.ceil(windows[:, 0] / unit - 1e-9).astype(np.int64)
    b = np.ceil(windows[:, 1] / unit - 1e-9).astype(np.int64)
    k = np.searchsorted(a, ticks, "right") - 1  # last window starting at or before the tick
    return (k >= 0) & (ticks < b[np.clip(k, 0, None)])


def _tau_xx_heralded(t1_ns, decay, background, n_pulses: int, min_pairs: int = 20):
    """Biexciton lifetime from the first photon of same-period two-detector pairs.

    For a single emitter every same-period pair of emitter photons is a cascade pair, so the
    pairs k periods apart (the g2 side peaks) are not the accidentals of the centre peak; those
    are signal x background pairs, whose first-photon histogram follows from each detector's
    decay and background (:func:`qrspec.fitting.biexciton.accidental_first_photon_counts`).
    It enters the fit with fixed shape and size.
    """
    from qrspec.fitting.biexciton import accidental_first_photon_counts, heralded_tau_xx

    n = t1_ns.size
    if n < min_pairs:
        return math.nan, math.nan, f"{n} photon pairs < {min_pairs}"
    n_bins = int(np.floor(decay.period_ns / decay.bin_ns + 1e-9))
    per_bin = np.asarray(background, float) * decay.bin_ns / decay.period_ns
    cpd = decay.counts_per_detector[:, :n_bins]
    acc = accidental_first_photon_counts(cpd[0], cpd[1], n_pulses=n_pulses,
                                         background_a=per_bin[0], background_b=per_bin[1])
    start = decay.t0_ns + TAIL_START_NS
    if not start < n_bins * decay.bin_ns:
        return math.nan, math.nan, _NO_TAIL.format(start)
    est = heralded_tau_xx(t1_ns, bin_ns=decay.bin_ns, period_ns=n_bins * decay.bin_ns,
                          accidental_counts=acc, background=0.0,
                          fit_range_ns=(start, n_bins * decay.bin_ns), intervals="hessian")
    if not est.success:
        return math.nan, math.nan, f"heralded tau_XX failed: {est.message}"
    return est.tau_ns, est.tau_err_ns, ""


def _state(ph: Photons, windows, config, offsets, delay_ns, dets, pairs,
           with_g2: bool = True) -> tuple:
    """Decay, lifetimes and g2 of the photons inside ``windows`` (None: all photons).

    ``pairs`` are the same-period photon pairs of all of ``ph`` (computed once); the pairs of
    the windows are those whose period lies inside them.
    """
    from qrspec.stats.correlation import g2, g2_peaks
    from qrspec.stats.decay import DecayAccumulator, background_counts

    sub = ph if windows is None else ph.select_windows(windows)
    msgs = []
    if sub.size == 0:
        return None, StateLifetimes(*(math.nan,) * 4, 0, 0, math.nan, math.nan,
                                    "no photons"), None
    acc = DecayAccumulator(detectors=dets)  # one pass; two resolutions of the same counts
    acc.add(sub)
    full = acc.result(offsets_ns=offsets)
    dec = acc.result(offsets_ns=offsets, bin_ns=FIT_BIN_NS)
    tx, tx_err, m, fit = _fit_x(dec, config.min_decay_photons)
    if m:
        msgs.append(f"tau_X: {m}")
    t1_ns = pairs.t1_ns[_in_windows_ticks(pairs.sync, windows, ph.timestamps_unit)]
    span_s = sub.duration_s if windows is None else float(np.sum(windows[:, 1] - windows[:, 0]))
    n_pulses = max(int(round(span_s / sub.sync_period_s)), 1)
    txx, txx_err, m = _tau_xx_heralded(t1_ns, dec, background_counts(full), n_pulses)
    if m:
        msgs.append(f"tau_XX: {m}")
    g2_0 = g2_err = math.nan
    if with_g2:
        curve = g2(sub, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                   bin_ns=config.g2_bin_ns, delay_ns=delay_ns,
                   time_windows_s=None if windows is None else windows)
        pk = g2_peaks(curve, window_ns=config.g2_peak_window_ns)
        g2_0, g2_err = pk.g2_0, pk.g2_0_err
    st = StateLifetimes(tx, tx_err, txx, txx_err, sub.size, int(t1_ns.size), g2_0, g2_err,
                        "; ".join(msgs))
    return dec, st, fit


def _tau_xx_three_ways(ph, windows, neutral, decay, config, offsets, delay_ns, dets, t0_ns,
                       flags) -> dict:
    """Neutral tau_XX by the gate scan of g2(0; gate) and by the constrained cascade fit of
    the decay, compared with the heralded value (methods.md §2.3, §2.6, §2.4). Both need the
    mean excitation number <N> (``config.mean_excitations``); disagreement is flagged."""
    from qrspec.fitting.biexciton import (
        TauXXEstimate,
        cascade_tau_xx,
        compare_tau_xx,
        gate_scan_tau_xx,
        nested_gate_covariance,
    )
    from qrspec.stats.correlation import g2_gate_scan

    out = {"gate_scan": (math.nan, math.nan), "cascade": (math.nan, math.nan),
           "p_value": math.nan, "run": False,
           "reason": "mean_excitations not given (heralded tau_XX only)"}
    if config.mean_excitations is None:
        return out
    if neutral is None or decay is None or not np.isfinite(neutral.tau_x_ns) \
            or windows.size == 0:
        out["reason"] = "no neutral period or no neutral tau_X"
        return out
    out["run"], out["reason"] = True, ""
    n_exc = config.mean_excitations
    gates = t0_ns + np.arange(0.0, 8.01, 1.0)
    gates = gates[gates < decay.period_ns]
    scan = g2_gate_scan(ph, gates, detectors=dets, gate_offsets_ns=offsets,
                        max_lag_periods=config.g2_max_lag_periods, bin_ns=config.g2_bin_ns,
                        delay_ns=delay_ns, time_windows_s=windows)
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
            out["gate_scan"] = (est.tau_ns, est.tau_err_ns)
            estimates.append(est)
        else:
            flags.append(f"neutral tau_XX gate scan: {est.message}")
    else:
        flags.append("neutral tau_XX gate scan: fewer than 3 gates with centre-peak pairs")
    counts, time_ns = _whole_bins(decay)
    start = t0_ns + TAIL_START_NS
    if start < time_ns.size * decay.bin_ns:
        est = cascade_tau_xx(counts, time_ns, mean_excitations=n_exc, intervals="hessian",
                             period_ns=decay.period_ns, irf=None, background="fit",
                             fit_range_ns=(start, decay.period_ns))
        if est.success:
            out["cascade"] = (est.tau_ns, est.tau_err_ns)
            estimates.append(est)
        else:
            flags.append(f"neutral tau_XX cascade fit: {est.message}")
    else:
        flags.append(f"neutral tau_XX cascade fit: {_NO_TAIL.format(start)}")
    if len(estimates) < 2:
        flags.append("neutral tau_XX methods: fewer than two estimates to compare")
    else:
        cmp = compare_tau_xx(estimates)
        out["p_value"] = cmp.p_value
        if not cmp.consistent:
            flags.append(f"neutral tau_XX methods disagree: {cmp.message}")
    return out


def _g2_flags(label: str, pk) -> list[str]:
    """Flags for a g2(0) or its error that the photon pairs cannot define."""
    if not np.isfinite(pk.g2_0):
        return [f"{label} undefined (no photon pairs in the side peaks)"]
    if not np.isfinite(pk.g2_0_err):
        return [f"{label} error undefined (no photon pairs in the centre peak)"]
    return []


def _charging_windows(segments, label: str, min_time_s: float) -> list[np.ndarray]:
    """Group consecutive segments with ``label`` into windows of >= ``min_time_s`` total."""
    m = segments.label == label
    starts, stops = segments.start_s[m], segments.stop_s[m]
    out, cur, acc = [], [], 0.0
    for a, b in zip(starts, stops, strict=True):
        cur.append((a, b))
        acc += b - a
        if acc >= min_time_s:
            out.append(np.asarray(cur))
            cur, acc = [], 0.0
    if cur and (acc >= 0.5 * min_time_s or not out):
        # a last window at least half full stands alone; a shorter one joins the previous
        # window; when all charged time is shorter than one window, it is one window
        if out and acc < 0.5 * min_time_s:
            out[-1] = np.concatenate([out[-1], np.asarray(cur)])
        else:
            out.append(np.asarray(cur))
    elif cur and out:
        out[-1] = np.concatenate([out[-1], np.asarray(cur)])
    return out


def _merge_rows(rows: np.ndarray) -> np.ndarray:
    """Merge touching (start, stop) rows (segments of one label can be adjacent)."""
    if rows.size == 0:
        return rows.reshape(0, 2)
    out = [list(rows[0])]
    for a, b in rows[1:]:
        if a <= out[-1][1] + 1e-12:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out)


def analyze_file(path, config: AnalysisConfig | None = None, *, particle_id: str | None = None,
                 group: str = "") -> ParticleResult:
    """Run the full pipeline on one TTTR file.

    Parameters
    ----------
    path : str or Path
        T3 TTTR file of one particle (two HBT detectors).
    config : AnalysisConfig, optional
        Parameters (defaults when None).
    particle_id : str, optional
        Default: the sanitised file stem.
    group : str
        Sample group recorded with the result.

    Returns
    -------
    ParticleResult

    Raises
    ------
    QrspecError
        The file cannot be read or cannot be analysed (T2 data, missing detector, no photons).
    """
    from qrspec.io import read_tttr
    from qrspec.io.files import sanitize_id, sha256_file

    path = os.fspath(path)
    photons = read_tttr(path)
    pid = particle_id or sanitize_id(os.path.splitext(os.path.basename(path))[0])
    return analyze_photons(photons, config, particle_id=pid, group=group, source=path,
                           source_sha256=sha256_file(path))


def analyze_photons(photons: Photons, config: AnalysisConfig | None = None, *,
                    particle_id: str = "particle", group: str = "", source: str = "",
                    source_sha256: str = "") -> ParticleResult:
    """Run the full pipeline on decoded photons (see :func:`analyze_file`)."""
    from qrspec.charging import (
        ChargedObservation,
        NeutralReference,
        charging_trajectory,
        combine_windows,
        neutral_rates,
    )
    from qrspec.fitting.g2_analysis import single_emitter_verdict
    from qrspec.levels import cluster_levels, find_change_points, label_levels
    from qrspec.stats.correlation import g2, g2_peaks
    from qrspec.stats.decay import decay_histogram, flid
    from qrspec.stats.pairs import photon_pairs
    from qrspec.stats.trace import intensity_trace

    t_start = time.perf_counter()
    config = config or AnalysisConfig()
    name = source or particle_id
    if not photons.is_t3:
        raise QrspecError(f"{name}: T2 data (record type {photons.record_type}) has no "
                          "nanotimes; the particle pipeline needs T3 data")
    # units from a corrupt or unusual header must not reach the histogram code: a period of
    # 1e11 TCSPC bins would allocate terabytes, less than one bin divides by zero
    bins = photons.timestamps_unit / photons.nanotimes_unit
    if not (math.isfinite(bins) and 1 <= round(bins) <= MAX_PERIOD_BINS):
        raise QrspecError(f"{name}: laser period / TCSPC bin = {photons.timestamps_unit:.4g} s / "
                          f"{photons.nanotimes_unit:.4g} s = {bins:.4g} bins per period; the "
                          f"pipeline needs 1..{MAX_PERIOD_BINS} (check MeasDesc_GlobalResolution "
                          "and MeasDesc_Resolution)")
    dets = config.detectors
    counts = photons.counts_per_detector
    for d in dets:
        if d >= counts.size or counts[d] == 0:
            raise QrspecError(f"{name}: detector {d} has no photons; active detectors are "
                              f"{photons.detector_ids.tolist()} (set detectors=)")
    ph = photons.select(detectors=list(dets))
    if ph.size < 1000:
        raise QrspecError(f"{name}: only {ph.size} photons on detectors {list(dets)}; at least "
                          "1000 are needed for the particle pipeline")
    flags: list[str] = []
    ds: dict[str, Dataset] = {}
    attrs: dict[str, dict] = {}

    # ---- trajectory and total decay (alignment of the two detectors)
    trace = intensity_trace(ph, config.bin_width_s)
    ds["trace/counts"] = Dataset(trace.counts_per_detector.T.astype(np.uint32), "counts",
                                 "photons per bin (columns: detectors)",
                                 {"bin_width_s": trace.bin_width_s,
                                  "start_s": trace.start_tick * trace.timestamps_unit,
                                  "detectors": list(trace.detectors)})
    dec = decay_histogram(ph, detectors=dets)
    offsets = dec.offsets_ns
    delay_ns = float(offsets[1] - offsets[0])
    ds["decays/time_ns"] = Dataset(dec.time_ns, "ns", "left bin edge on the aligned axis")
    ds["decays/total"] = Dataset(dec.counts, "counts", "aligned decay, all photons",
                                 {"t0_ns": dec.t0_ns, "offsets_ns": list(offsets)})
    pairs = photon_pairs(ph, detectors=dets, offsets_ns=offsets)
    gate = (dec.t0_ns + config.gate_ns, dec.period_ns)
    if not gate[0] < gate[1]:
        # the rise sits within gate_ns of the end of the period (or the decay is one spike
        # whose rise estimate is the last bin): a gate cannot start after the period ends
        flags.append(f"gate start t0 + gate_ns = {gate[0]:.4g} ns is not inside the laser "
                     f"period ({dec.period_ns:.4g} ns): gated g2 not computed")
        gate = None

    # ---- g2 raw and gated
    g2_raw = g2(ph, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                bin_ns=config.g2_bin_ns, delay_ns=delay_ns)
    pk_raw = g2_peaks(g2_raw, window_ns=config.g2_peak_window_ns)
    flags += _g2_flags("g2(0)", pk_raw)
    if not ph.duration_s > 0:
        flags.append("all photons share one timestamp: duration and rate undefined")
    if gate is not None:
        g2_gated = g2(ph, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                      bin_ns=config.g2_bin_ns, delay_ns=delay_ns, gate_ns=gate,
                      gate_offsets_ns=offsets)
        pk_gated = g2_peaks(g2_gated, window_ns=config.g2_peak_window_ns)
    else:  # same arrays with no pairs: g2_zero NaN, flagged above
        g2_gated = replace(g2_raw, counts=np.zeros_like(g2_raw.counts), n_photons=(0, 0))
        pk_gated = replace(pk_raw, areas=np.zeros_like(pk_raw.areas), centre=0,
                           side_mean=math.nan, g2_0=math.nan, g2_0_err=math.nan,
                           g2_0_ci95=(math.nan, math.nan))
    for key, curve, pk in (("g2", g2_raw, pk_raw), ("g2_gated", g2_gated, pk_gated)):
        ds[f"{key}/lag_ns"] = Dataset(curve.lag_ns, "ns", "bin centre lag t(det1) - t(det0)")
        ds[f"{key}/counts"] = Dataset(curve.counts, "counts", "photon pairs per lag bin",
                                      {"detectors": list(dets),
                                       "gate_ns": list(gate) if key == "g2_gated" and gate
                                       else [],
                                       "g2_zero": pk.g2_0, "g2_zero_err": pk.g2_0_err,
                                       "window_ns": pk.window_ns})
        ds[f"{key}/peak_areas"] = Dataset(pk.areas, "counts", "pairs per peak window",
                                          {"peaks": pk.peaks.tolist()})
    if np.isfinite(pk_gated.g2_0) and np.isfinite(pk_gated.g2_0_err):
        verdict = single_emitter_verdict(pk_gated.g2_0, pk_gated.g2_0_err,
                                         threshold=config.single_emitter_max_g2)
        single = bool(verdict.single)
    else:  # no pairs (few photons, gate removed everything): undecided, not single
        single = False
        if gate is not None:
            flags += [f + ": single-emitter verdict not made"
                      for f in _g2_flags("gated g2(0)", pk_gated)]

    # ---- levels
    cp = find_change_points(ph, alpha=config.cpa_alpha, confidence=config.cpa_confidence)
    clus = cluster_levels(cp.segments(), max_levels=config.max_levels)

    def lifetime_of(windows):
        sub = ph.select_windows(_merge_rows(np.asarray(windows)))
        d = decay_histogram(sub, detectors=dets, offsets_ns=offsets, bin_ns=FIT_BIN_NS)
        # labelling only compares levels: one mono-exponential tail fit per level
        tau, err, _, _ = _fit_x(d, config.min_decay_photons, models=("mono",))
        return tau, err

    labels = label_levels(clus, lifetimes=lifetime_of)
    segs = labels.segments
    ds["levels/segments_start_s"] = Dataset(segs.start_s, "s", "segment start")
    ds["levels/segments_stop_s"] = Dataset(segs.stop_s, "s", "segment stop")
    ds["levels/segments_n_photons"] = Dataset(segs.n_photons, "counts", "photons in segment")
    ds["levels/segments_level"] = Dataset(segs.level, "", "level index of each segment")
    ds["levels/segments_label"] = Dataset(np.asarray(segs.label, dtype="S12"), "",
                                          "neutral / charged / trap / off / unclassified")
    ds["levels/change_points_s"] = Dataset(cp.time_s, "s", "change-point times",
                                           {"confidence": config.cpa_confidence,
                                            "alpha": config.cpa_alpha})
    ds["levels/change_points_ci_s"] = Dataset(np.column_stack([cp.ci_start_s, cp.ci_stop_s])
                                              if cp.size else np.zeros((0, 2)), "s",
                                              "confidence region of each change point")
    ds["levels/intensity_cps"] = Dataset(labels.intensity_cps, "counts/s", "level intensity")
    ds["levels/tau_ns"] = Dataset(labels.tau_ns, "ns", "level lifetime (mono-exponential tail "
                                  "fit, used for labelling)")
    ds["levels/rho_rad"] = Dataset(labels.rho_rad, "", "radiative-rate ratio to neutral")
    ds["levels/label"] = Dataset(np.asarray(labels.label, dtype="S12"), "", "level label")

    total_time = float(np.sum(segs.stop_s - segs.start_s)) if segs.size else 0.0
    w_neutral = _merge_rows(segs.windows(label="neutral"))
    w_charged = _merge_rows(segs.windows(label="charged"))
    t_neutral = float(np.sum(w_neutral[:, 1] - w_neutral[:, 0])) if w_neutral.size else 0.0

    # ---- per state: decays, lifetimes, heralded XX, g2
    states = {}
    neutral_fit_decay = None
    for label, w in (("neutral", w_neutral), ("charged", w_charged)):
        if w.size == 0:
            flags.append(f"no {label} period")
            continue
        d, st, fit = _state(ph, w, config, offsets, delay_ns, dets, pairs)
        states[label] = st
        if label == "neutral":
            neutral_fit_decay = d
        if st.message:
            flags.append(f"{label}: {st.message}")
        if d is not None:
            ds[f"decays/{label}"] = Dataset(d.counts, "counts", f"aligned decay, {label} "
                                            "periods", {"tau_x_ns": st.tau_x_ns,
                                                        "tau_x_err_ns": st.tau_x_err_ns,
                                                        "bin_ns": d.bin_ns})
            ds[f"decays/{label}_time_ns"] = Dataset(d.time_ns, "ns", f"left bin edge of "
                                                    f"decays/{label} (aligned axis)")
            if fit is not None:
                ds[f"decays/{label}_model"] = Dataset(
                    fit.model_counts, "counts", f"fitted tail model of decays/{label} "
                    "(whole bins; NaN-free)", {"model": fit.model, "tau_ns": list(fit.tau_ns)})
                ds[f"decays/{label}_residuals"] = Dataset(
                    fit.residuals, "", "Pearson residuals of the fit (NaN outside the fit "
                    "range)")
    fl = flid(ph, config.bin_width_s, detectors=dets, offsets_ns=offsets)
    ds["flid/histogram"] = Dataset(fl.histogram, "counts", "trace bins per (counts, delay)",
                                   {"count_edges": fl.count_edges,
                                    "delay_edges_ns": fl.delay_edges_ns})

    # ---- biexciton lifetime three ways (neutral periods; needs <N>)
    xx3 = _tau_xx_three_ways(ph, w_neutral, states.get("neutral"), neutral_fit_decay, config,
                             offsets, delay_ns, dets, dec.t0_ns, flags)

    # ---- neutral reference and charging inversion
    cm = config.charge_model
    neutral = states.get("neutral")
    tau_a_xx_neutral = tau_a_xx_neutral_err = math.nan
    tau_a_xx_neutral_lo = tau_a_xx_neutral_hi = math.nan
    traj_rows, win_flags = [], []
    n_c_mean = n_c_err = tau_a_c = tau_a_c_err = math.nan
    tau_x_c = tau_xx_c = tau_x_c_err = tau_xx_c_err = math.nan
    particle = None
    own_ref = None  # the particle's own neutral periods (tau_X0 and heralded tau_XX0)
    if neutral is not None and np.all(np.isfinite([neutral.tau_x_ns, neutral.tau_x_err_ns,
                                                   neutral.tau_xx_ns, neutral.tau_xx_err_ns])):
        try:
            own_ref = NeutralReference.from_particle(neutral.tau_x_ns, neutral.tau_x_err_ns,
                                                     neutral.tau_xx_ns, neutral.tau_xx_err_ns)
        except QrspecError as exc:
            flags.append(f"neutral reference unusable: {exc}")
    if own_ref is not None:
        own = neutral_rates(own_ref, cm)
        tau_a_xx_neutral, tau_a_xx_neutral_err = own.tau_a_xx0_ns, own.tau_a_xx0_err_ns
        tau_a_xx_neutral_lo, tau_a_xx_neutral_hi = own.tau_a_xx0_lo_ns, own.tau_a_xx0_hi_ns
        if not own.consistent:
            flags.append("neutral tau_XX is significantly longer than radiative "
                         "1/(beta_xx k_r): no neutral Auger rate")
            own_ref = None
        elif not own.k_a_xx0_per_ns > 0:
            flags.append("neutral Auger rate consistent with 0 (tau_A,XX0 open above): the "
                         "charging windows decide it")
    # the reference the windows are inverted against: user values replace measured ones
    neutral_ref = None
    tau_x0 = (cm.tau_x0_ns, cm.tau_x0_err_ns) if cm.tau_x0_ns is not None else (
        (neutral.tau_x_ns, neutral.tau_x_err_ns) if neutral is not None
        and np.isfinite(neutral.tau_x_ns) and np.isfinite(neutral.tau_x_err_ns) else None)
    try:
        if cm.tau_a_xx0_ns is not None and tau_x0 is not None:
            neutral_ref = NeutralReference(tau_x0[0], tau_x0[1], tau_a_xx0_ns=cm.tau_a_xx0_ns,
                                           tau_a_xx0_err_ns=cm.tau_a_xx0_err_ns, source="user",
                                           note="tau_x0 from " + ("the user" if cm.tau_x0_ns
                                                                  is not None else "the particle"))
        elif own_ref is not None and cm.tau_x0_ns is not None:
            neutral_ref = NeutralReference(tau_x0[0], tau_x0[1], tau_xx0_ns=own_ref.tau_xx0_ns,
                                           tau_xx0_err_ns=own_ref.tau_xx0_err_ns, source="user",
                                           note="tau_xx0 from the particle")
        else:
            neutral_ref = own_ref
    except QrspecError as exc:
        flags.append(f"neutral reference unusable: {exc}")
    if neutral_ref is None and "charged" in states:
        flags.append("no usable neutral reference: n_c and tau_A not inverted")

    model = None
    if neutral_ref is not None and w_charged.size:
        ref_rates = neutral_rates(neutral_ref, cm)
        # the model as used, with the reference's neutral lifetimes (recorded in the results;
        # the fit takes them from neutral_ref)
        model = cm.charge_model().replace(
            tau_x0_ns=neutral_ref.tau_x0_ns,
            tau_a_xx0_ns=ref_rates.tau_a_xx0_ns if ref_rates.k_a_xx0_per_ns > 0 else None)
        segments, seg_meta = [], []
        windows = _charging_windows(segs, "charged", config.charging_window_s)
        for win in windows:
            _, st, _ = _state(ph, _merge_rows(win), config, offsets, delay_ns, dets, pairs,
                              with_g2=False)
            ok = all(np.isfinite([st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns,
                                  st.tau_xx_err_ns])) and st.tau_x_err_ns > 0 \
                and st.tau_xx_err_ns > 0
            if not ok:
                continue
            segments.append(ChargedObservation(st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns,
                                               st.tau_xx_err_ns, t_start_s=float(win[0, 0]),
                                               t_stop_s=float(win[-1, 1])))
            seg_meta.append((float(np.sum(win[:, 1] - win[:, 0])), st))
        n_windows = len(windows)
        if len(segments) < n_windows:
            flags.append(f"{n_windows - len(segments)} of {n_windows} charging windows had "
                         "too few photons or pairs for both lifetimes")
        if segments:
            # grid starts find the uncapped variant's second root; the capped and power-law
            # lifetimes are monotonic in n: the closed-form / default start suffices
            traj = charging_trajectory(segments, neutral_ref, model, profile=False,
                                       n_starts=5 if cm.variant == "uncapped" else 0)
            w = np.asarray([m[0] for m in seg_meta])
            # windows whose n is only a bound or not identifiable stay in the table (with
            # their flags) but not in the particle's values
            good = np.asarray([f.usable for f in traj.fits])
            for i, seg in enumerate(segments):
                fit = traj.fits[i]
                n_err = 0.5 * (traj.n_hi[i] - traj.n_lo[i]) \
                    if np.isfinite(traj.n_hi[i] - traj.n_lo[i]) else fit.n_err_delta
                traj_rows.append((seg.t_start_s, seg.t_stop_s, traj.n[i], n_err,
                                  traj.tau_a_xx_ns[i], traj.tau_a_xx_err_ns[i], seg.tau_x_ns,
                                  seg.tau_xx_ns, seg_meta[i][1].n_photons, seg.tau_x_err_ns,
                                  seg.tau_xx_err_ns, float(good[i])))
                win_flags.append(",".join(fit.flags))
                if fit.flags:
                    flags.append(f"charging window {i}: {', '.join(fit.flags)}")
            if good.any():
                idx = np.flatnonzero(good)
                # one fit of all usable windows and the neutral reference: the windows share
                # the reference's error (qrspec.charging.particle)
                particle = combine_windows([segments[i] for i in idx], neutral_ref, model,
                                           weights=w[idx], starts=traj.n[idx],
                                           n_max=40.0)
                if particle.flags:
                    flags.append(f"particle charging: {', '.join(particle.flags)}")
                n_c_mean = particle.n_mean
                n_c_err = 0.5 * (particle.n_mean_hi - particle.n_mean_lo)
                tau_a_c = particle.tau_a_xx_mean_ns
                tau_a_c_err = 0.5 * (particle.tau_a_xx_mean_hi_ns
                                     - particle.tau_a_xx_mean_lo_ns)
                ww = w[good] / w[good].sum()
                # weighted means of independent windows' lifetimes (no shared reference)
                lt = np.asarray([(s.tau_x_ns, s.tau_x_err_ns, s.tau_xx_ns, s.tau_xx_err_ns)
                                 for s in segments])[good]
                tau_x_c, tau_xx_c = float(ww @ lt[:, 0]), float(ww @ lt[:, 2])
                tau_x_c_err = float(np.sqrt(np.sum((ww * lt[:, 1]) ** 2)))
                tau_xx_c_err = float(np.sqrt(np.sum((ww * lt[:, 3]) ** 2)))
    rows = np.asarray(traj_rows, float).reshape(-1, 12)
    for j, (col, unit, desc) in enumerate([
        ("t_start_s", "s", "window start"), ("t_stop_s", "s", "window stop"),
        ("n_c", "", "charging number"), ("n_c_err", "", "68 % half-width of n_c"),
        ("tau_a_xx_ns", "ns", "charged biexciton Auger lifetime"),
        ("tau_a_xx_err_ns", "ns", "error of tau_a_xx_ns"),
        ("tau_x_ns", "ns", "charged exciton lifetime"),
        ("tau_xx_ns", "ns", "charged biexciton lifetime (heralded)"),
        ("n_photons", "counts", "photons in the window"),
        # with these a second pass (e.g. a group's pooled neutral reference) can re-invert
        # the windows from the results file alone
        ("tau_x_err_ns", "ns", "error of tau_x_ns"),
        ("tau_xx_err_ns", "ns", "error of tau_xx_ns"),
        ("usable", "", "1: the window enters the particle values (ChargingFit.usable)"),
    ]):
        ds[f"charging/{col}"] = Dataset(rows[:, j], unit, desc)
    attrs["tau_xx_methods"] = {"run": xx3["run"], "reason": xx3["reason"],
                               "mean_excitations": (math.nan if config.mean_excitations is None
                                                    else config.mean_excitations)}
    ds["charging/flags"] = Dataset(np.asarray(win_flags, dtype="S200"), "",
                                   "identifiability / quality flags of each window's inversion")
    attrs["charging"] = {"model": model.to_json() if model is not None else "",
                         "neutral_tau_x_ns": neutral.tau_x_ns if neutral else math.nan,
                         "neutral_reference_source": (neutral_ref.source if neutral_ref
                                                      is not None else ""),
                         "neutral_reference_note": (neutral_ref.note if neutral_ref
                                                    is not None else "")}

    def val(state, attr):
        s = states.get(state)
        return getattr(s, attr) if s is not None else math.nan

    def part(attr):  # particle-level charging values (NaN without usable windows)
        return getattr(particle, attr) if particle is not None else math.nan

    summary = {
        "n_photons": ph.size,
        "duration_s": ph.duration_s,
        "rate_cps": ph.rate_cps,
        "g2_zero": pk_raw.g2_0,
        "g2_zero_err": pk_raw.g2_0_err,
        "g2_zero_gated": pk_gated.g2_0,
        "g2_zero_gated_err": pk_gated.g2_0_err,
        "gate_ns": config.gate_ns,
        "single_emitter": single,
        "frac_time_neutral": t_neutral / total_time if total_time > 0 else math.nan,
        "tau_x_neutral_ns": val("neutral", "tau_x_ns"),
        "tau_x_neutral_err_ns": val("neutral", "tau_x_err_ns"),
        "tau_xx_neutral_ns": val("neutral", "tau_xx_ns"),
        "tau_xx_neutral_err_ns": val("neutral", "tau_xx_err_ns"),
        "tau_a_xx_neutral_ns": tau_a_xx_neutral,
        "tau_a_xx_neutral_err_ns": tau_a_xx_neutral_err,
        "tau_a_xx_neutral_lo_ns": tau_a_xx_neutral_lo,
        "tau_a_xx_neutral_hi_ns": tau_a_xx_neutral_hi,
        "neutral_reference_source": neutral_ref.source if neutral_ref is not None else "",
        "tau_xx_neutral_gate_scan_ns": xx3["gate_scan"][0],
        "tau_xx_neutral_gate_scan_err_ns": xx3["gate_scan"][1],
        "tau_xx_neutral_cascade_ns": xx3["cascade"][0],
        "tau_xx_neutral_cascade_err_ns": xx3["cascade"][1],
        "tau_xx_methods_p": xx3["p_value"],
        "tau_x_charged_ns": tau_x_c,
        "tau_x_charged_err_ns": tau_x_c_err,
        "tau_xx_charged_ns": tau_xx_c,
        "tau_xx_charged_err_ns": tau_xx_c_err,
        "n_c_mean": n_c_mean,
        "n_c_err": n_c_err,
        "tau_a_xx_charged_ns": tau_a_c,
        "tau_a_xx_charged_err_ns": tau_a_c_err,
        "n_c_lo": part("n_mean_lo"),
        "n_c_hi": part("n_mean_hi"),
        "tau_a_xx_charged_lo_ns": part("tau_a_xx_mean_lo_ns"),
        "tau_a_xx_charged_hi_ns": part("tau_a_xx_mean_hi_ns"),
        "tau_a_xx_neutral_joint_ns": part("tau_a_xx0_ns"),
        "tau_a_xx_neutral_joint_lo_ns": part("tau_a_xx0_lo_ns"),
        "tau_a_xx_neutral_joint_hi_ns": part("tau_a_xx0_hi_ns"),
        "n_levels": int(labels.label.size),
        "n_change_points": int(cp.size),
        "analysis_s": time.perf_counter() - t_start,
    }
    return ParticleResult(particle_id=particle_id, group=group, source=source,
                          source_sha256=source_sha256, status="ok", error="; ".join(flags),
                          summary=summary, datasets=ds, attrs=attrs)
