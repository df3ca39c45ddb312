"""Validation of the detector-artefact handling against the simulator's afterpulse and dead-time
options (qrspec.stats.afterpulsing, qrspec.fitting.pileup).

Sections (``--part``; default all):

``estimate``  afterpulse probability estimated from the data vs the simulator's truth
              (afterpulses landing 1..K periods after their parent), pulls.
``g2``        paired runs (same seed) with and without afterpulses: measured g2(0) bias vs the
              prediction p (1 - g2)/(1 + p), and the corrected g2(0) vs the run without.
``decay``     exciton lifetime (the pipeline's tail fit) with afterpulse probability 0, 2, 5 %.
``deadtime``  exciton lifetime bias of a single emitter against the detection probability per
              period, dead time 80 ns + one photon per period vs an ideal detector (same
              seed), and what the Coates pile-up correction would do to it.

Usage: ``nice -n 10 python scripts/validate_detector.py [--part g2] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qrspec.simulate import preset, simulate_particle  # noqa: E402
from qrspec.simulate.particle import ORIGIN_CODE  # noqa: E402
from qrspec.stats.afterpulsing import correct_g2, estimate_afterpulsing  # noqa: E402


def sim_with(seed, duration_s, **detection):
    cfg = preset("neutral", duration_s=duration_s)
    top = {k: detection.pop(k) for k in ("mean_excitations",) if k in detection}
    return simulate_particle(cfg.replace(detection=detection, **top), seed=seed)


def truth_probability(sim, est):
    tr = sim.truth
    ph = sim.photons
    ap = tr.origin == ORIGIN_CODE["afterpulse"]
    parent_sync = tr.arrival_sync[np.maximum(tr.parent, 0)]
    k = tr.arrival_sync - parent_sync
    later = ap & (k >= 1) & (k <= est.max_lag_periods)
    return np.asarray([np.sum(later & (ph.detectors == d)) / np.sum(ph.detectors == d)
                       for d in est.detectors])


def part_estimate(rng, quick):
    print("\n== afterpulse probability: estimate vs simulator truth (neutral rod, 20 s, "
          "~90 kcps) ==")
    seeds = 3 if quick else 8
    print("p_sim          det  mean_truth  mean_estimate  median_pull  max|pull|")
    for p in (0.0, 0.005, 0.02):
        pulls, tru, est_v = [[], []], [[], []], [[], []]
        for _ in range(seeds):
            sim = sim_with(int(rng.integers(1 << 31)), 20.0, afterpulse_prob=(p, p / 2))
            est = estimate_afterpulsing(sim.photons)
            t = truth_probability(sim, est)
            for d in (0, 1):
                pulls[d].append((est.probability[d] - t[d]) / est.probability_err[d])
                tru[d].append(t[d])
                est_v[d].append(est.probability[d])
        for d in (0, 1):
            print(f"({p:.3f},{p / 2:.4f})  {d:3d}  {np.mean(tru[d]):10.5f}  "
                  f"{np.mean(est_v[d]):13.5f}  {np.median(pulls[d]):+11.2f}  "
                  f"{np.max(np.abs(pulls[d])):9.2f}")


def _g2(ph, gate=None):
    from qrspec.stats.correlation import g2, g2_peaks
    from qrspec.stats.decay import decay_histogram

    dec = decay_histogram(ph, detectors=(0, 1))
    kw = {}
    if gate is not None:
        kw = dict(gate_ns=(dec.t0_ns + gate, dec.period_ns), gate_offsets_ns=dec.offsets_ns)
    c = g2(ph, detectors=(0, 1), max_lag_periods=5, bin_ns=0.5,
           delay_ns=float(dec.offsets_ns[1] - dec.offsets_ns[0]), **kw)
    return g2_peaks(c), dec


def part_g2(rng, quick):
    from qrspec.stats.afterpulsing import gated_probability

    print("\n== g2(0) with afterpulse probability (0.02, 0.02) vs none, same seed (neutral rod, "
          "<N> = 0.05, 60 s) ==")
    seeds = 3 if quick else 8
    print("gate   g2_without  g2_with  measured_bias  predicted_bias  corrected-without  "
          "(in sigma)")
    rows = {None: [], 3.0: []}
    for _ in range(seeds):
        seed = int(rng.integers(1 << 31))
        a = sim_with(seed, 60.0, afterpulse_prob=(0.0, 0.0), mean_excitations=0.05)
        b = sim_with(seed, 60.0, afterpulse_prob=(0.02, 0.02), mean_excitations=0.05)
        est = estimate_afterpulsing(b.photons)
        for gate in rows:
            pa, _ = _g2(a.photons, gate)
            pb, dec = _g2(b.photons, gate)
            p, pe = est.probability, est.probability_err
            if gate is not None:
                nt = b.photons.nanotimes * b.photons.nanotimes_unit * 1e9
                off = np.asarray(dec.offsets_ns)[b.photons.detectors]
                inside = (nt - off) >= dec.t0_ns + gate
                frac = [np.mean(inside[b.photons.detectors == d]) for d in (0, 1)]
                p, pe = gated_probability(est, (dec.t0_ns + gate, dec.period_ns), frac)
            c = correct_g2(pb.g2_0, pb.g2_0_err, p, pe)
            rows[gate].append((pa.g2_0, pb.g2_0, pb.g2_0 - pa.g2_0, c.bias,
                               (c.g2_zero - pa.g2_0) / c.g2_zero_err))
    for gate, r in rows.items():
        r = np.asarray(r)
        print(f"{'none' if gate is None else f'{gate:.0f} ns':5s}  {r[:, 0].mean():10.4f}  "
              f"{r[:, 1].mean():7.4f}  {r[:, 2].mean():+13.4f}  {r[:, 3].mean():+14.4f}  "
              f"{np.mean(r[:, 4]):+17.2f}  (std {np.std(r[:, 4]):.2f})")


def _tau_x(ph, fixed=None):
    """Exciton lifetime by the pipeline's tail fit (bi, else mono), optionally with a known
    background shape (aligned counts per 0.1 ns bin)."""
    from qrspec.analysis.decay_fits import FIT_BIN_NS
    from qrspec.stats.decay import decay_histogram

    dec = decay_histogram(ph, detectors=(0, 1), bin_ns=FIT_BIN_NS)
    return _tau_x_of(dec, fixed)


def _tau_x_of(dec, fixed=None):
    from qrspec.analysis.decay_fits import TAIL_START_NS
    from qrspec.analysis.decay_fits import whole_bins as _whole_bins
    from qrspec.fitting.lifetime import fit_decay

    counts, t = _whole_bins(dec)
    kw = dict(time_ns=t, period_ns=dec.period_ns, irf=None, background="fit",
              fit_range_ns=(dec.t0_ns + TAIL_START_NS, dec.period_ns))
    if fixed is not None:
        kw["fixed_background"] = fixed[: counts.size]
    bi = fit_decay(counts, model="bi", **kw)
    if bi.success and bi.tau_ns[0] < 0.8 * bi.tau_ns[1]:
        k = int(np.argmax(bi.fractions))
        return bi.tau_ns[k], bi.tau_err_ns[k]
    m = fit_decay(counts, model="mono", **kw)
    return m.tau_ns[0], m.tau_err_ns[0]


def part_decay(rng, quick):
    from qrspec.analysis.decay_fits import FIT_BIN_NS
    from qrspec.stats.afterpulsing import afterpulse_nanotime_profile, aligned_profile
    from qrspec.stats.decay import decay_histogram

    print("\n== exciton lifetime (pipeline tail fit, flat background free) with afterpulsing, "
          "same seed (neutral rod, 20 s); corrected: the measured afterpulse profile as a "
          "fixed background ==")
    seeds = 2 if quick else 6
    print("p_afterpulse   tau_x_ns   shift_raw   shift/err   shift_corrected   shift/err")
    base = {}
    for p in (0.0, 0.005, 0.02, 0.05):
        rows = []
        for i in range(seeds):
            sim = sim_with(1000 + i, 20.0, afterpulse_prob=(p, p))
            dec = decay_histogram(sim.photons, detectors=(0, 1), bin_ns=FIT_BIN_NS)
            tau, err = _tau_x_of(dec)
            if p == 0.0:
                base[i] = tau
            est = estimate_afterpulsing(sim.photons)
            prof = afterpulse_nanotime_profile(sim.photons, est)
            tc, ec = _tau_x_of(dec, aligned_profile(prof, dec))
            rows.append((tau, tau - base[i], (tau - base[i]) / err, tc - base[i],
                         (tc - base[i]) / ec))
        r = np.mean(np.asarray(rows), axis=0)
        print(f"{p:12.3f}   {r[0]:8.4f}   {r[1]:+9.4f}   {r[2]:+9.2f}   {r[3]:+15.4f}   "
              f"{r[4]:+9.2f}")


def part_deadtime(rng, quick):
    from qrspec.fitting.pileup import coates_correction
    from qrspec.stats.decay import decay_histogram

    print("\n== dead time and pile-up: single emitter, 80 ns dead time + one photon per period "
          "vs an ideal detector (same seed, 10 s, 10 MHz) ==")
    print("eta    <N>   p_det/period   tau_ideal  tau_dead   bias_%   bias/err   "
          "tau_coates  coates_bias_%")
    seeds = 1 if quick else 3
    for eta, n_exc in ((0.05, 0.2), (0.2, 0.5), (0.5, 1.0), (0.9, 2.0)):
        rows = []
        for i in range(seeds):
            kw = dict(eta_collection=eta, afterpulse_prob=(0.0, 0.0), mean_excitations=n_exc)
            ideal = sim_with(77 + i, 10.0, dead_time_ns=(0.0, 0.0), one_photon_per_sync=False,
                             **dict(kw))
            dead = sim_with(77 + i, 10.0, dead_time_ns=(80.0, 80.0), one_photon_per_sync=True,
                            **dict(kw))
            ti, _ = _tau_x(ideal.photons)
            td, ed = _tau_x(dead.photons)
            n_per = dead.config.n_pulses
            p_det = dead.photons.size / 2 / n_per
            # Coates on each detector's raw histogram (TCSPC order), then the same tail fit
            ph = dead.photons
            raw = decay_histogram(ph, detectors=(0, 1))
            nb = ph.nanotime_bins_per_period
            counts = np.vstack([np.bincount(ph.nanotimes[ph.detectors == d], minlength=nb)[:nb]
                                for d in (0, 1)])
            corr_counts = np.vstack([coates_correction(counts[d], n_per) for d in (0, 1)])
            tc = _tau_from_counts(raw, corr_counts)
            rows.append((p_det, ti, td, 100 * (td - ti) / ti, (td - ti) / ed, tc,
                         100 * (tc - ti) / ti))
        r = np.mean(np.asarray(rows), axis=0)
        print(f"{eta:4.2f}  {n_exc:4.1f}  {r[0]:12.4f}   {r[1]:9.4f}  {r[2]:8.4f}  {r[3]:+7.3f}  "
              f"{r[4]:+9.2f}   {r[5]:10.4f}  {r[6]:+13.3f}")


def _tau_from_counts(decay, raw_counts):
    """Exciton lifetime of per-detector raw (TCSPC-order) histograms aligned like ``decay``."""
    from dataclasses import replace

    from qrspec.analysis.decay_fits import FIT_BIN_NS

    res_ns = decay.resolution_ns
    r = int(round(FIT_BIN_NS / res_ns))
    off = np.round(np.asarray(decay.offsets_ns) / res_ns).astype(np.int64)
    aligned = np.vstack([np.roll(raw_counts[d], -int(off[d])) for d in range(2)])
    p = aligned.shape[1]
    n_out = -(-p // r)
    pad = np.zeros((2, n_out * r))
    pad[:, :p] = aligned
    per = pad.reshape(2, n_out, r).sum(axis=2)
    edges = np.minimum(np.arange(n_out + 1) * r, p) * res_ns
    d = replace(decay, counts=per.sum(axis=0), counts_per_detector=per, edges_ns=edges,
                bin_ns=res_ns * r)
    return _tau_x_of(d)[0]


PARTS = {"estimate": part_estimate, "g2": part_g2, "decay": part_decay,
         "deadtime": part_deadtime}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), action="append")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for name in args.part or list(PARTS):
        t = time.perf_counter()
        PARTS[name](rng, args.quick)
        print(f"[{name}: {time.perf_counter() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
