"""Validation of issue 18 as wired into the per-particle pipeline and the batch groups.

Sections (``--part``; default all):

``decay``   neutral rods with afterpulse probability 0, 0.5 %, 2 % per detector, 4 s and 20 s:
            the pipeline's neutral tau_X against the simulator's truth, with the afterpulse
            profile as a fixed background (default) and without (correct_afterpulsing=False):
            mean and spread of the pulls, shift in ns.
``g2``      neutral rods (10 s) with afterpulse probability 0 and 2 %: the pipeline's raw g2(0)
            against the theory of the simulated cascade
            (:func:`qrspec.simulate.theory.expected_g2_zero`): mean pull and coverage of the
            propagated error at 68 / 95 %, corrected and uncorrected; and the gated g2(0) of
            each 2 % run against the 0 % run of the same seed, corrected and uncorrected.
``pooled``  pooled dwell laws of groups of renewal power-law stays (one censored stay per
            particle): coverage of alpha_err with 50 and with POOLED_N_BOOT (the library's
            N_BOOT) bootstrap resamples.

Usage: ``python scripts/validate_pipeline_hygiene.py [--part decay|g2|pooled] [--quick]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _neutral(seed, duration_s, p):
    from qrspec.simulate import preset, simulate_particle

    cfg = preset("neutral", duration_s=duration_s)
    return simulate_particle(cfg.replace(detection=dict(afterpulse_prob=(p, p))), seed=seed)


def part_decay(quick):
    from qrspec.analysis.config import AnalysisConfig
    from qrspec.analysis.pipeline import analyze_photons

    n = 4 if quick else 10
    print(f"\n== neutral tau_X vs truth, afterpulse profile as fixed background (corrected) "
          f"or not (raw); {n} particles per row ==")
    print("duration_s  p_ap   significant  pull_corr (mean, sd)  pull_raw (mean, sd)  "
          "shift_corr_ns  shift_raw_ns")
    for dur in (4.0, 20.0):
        for p in (0.0, 0.005, 0.02):
            rows = []
            for seed in range(n):
                sim = _neutral(100 + seed, dur, p)
                truth = sim.truth.state_table.tau_ns[0, 0]
                out = []
                for corr in (True, False):
                    a = analyze_photons(sim.photons, AnalysisConfig(correct_afterpulsing=corr))
                    st = a.states.neutral
                    out += [(st.tau_x_ns - truth) / st.tau_x_err_ns, st.tau_x_ns - truth]
                rows.append((a.detector.afterpulse_significant.any(), *out))
            r = np.asarray(rows, float)
            print(f"{dur:10.0f}  {p:5.3f}  {r[:, 0].mean():11.2f}  {r[:, 1].mean():+9.2f} "
                  f"{r[:, 1].std():5.2f}     {r[:, 3].mean():+9.2f} {r[:, 3].std():5.2f}    "
                  f"{r[:, 2].mean():+12.4f}  {r[:, 4].mean():+12.4f}")


def part_g2(quick):
    from qrspec.analysis.config import AnalysisConfig
    from qrspec.analysis.pipeline import analyze_photons
    from qrspec.simulate.theory import expected_g2_zero
    from qrspec.store.summary import summary_values

    n = 8 if quick else 30
    print(f"\n== g2(0) of neutral rods (10 s, {n} seeds), afterpulse probability 0 and 2 % "
          "per detector, same seeds ==")
    print("raw g2(0) vs theory (expected_g2_zero):")
    print("p_ap   kind        mean_pull  sd_pull  cover68  cover95")
    paired = {"corrected": [], "raw": []}
    for p in (0.0, 0.02):
        pulls = {"corrected": [], "raw": []}
        for seed in range(n):
            sim = _neutral(500 + seed, 10.0, p)
            truth = expected_g2_zero(sim.config.mean_excitations, sim.truth.state_table.qy[0])
            for kind, corr in (("corrected", True), ("raw", False)):
                s = summary_values(analyze_photons(sim.photons,
                                                   AnalysisConfig(correct_afterpulsing=corr)))
                pulls[kind].append((s["g2_zero"] - truth) / s["g2_zero_err"])
                if p == 0.0 and kind == "corrected":
                    paired["base"] = paired.get("base", []) + [s["g2_zero_gated"]]
                    paired["base_err"] = paired.get("base_err", []) + [s["g2_zero_gated_err"]]
                elif p > 0.0:
                    paired[kind].append(s["g2_zero_gated"])
        for kind, v in pulls.items():
            v = np.asarray(v)
            print(f"{p:5.3f}  {kind:10s}  {v.mean():+9.2f}  {v.std():7.2f}  "
                  f"{np.mean(np.abs(v) <= 1):7.2f}  {np.mean(np.abs(v) <= 2):7.2f}")
    base, err = np.asarray(paired["base"]), np.asarray(paired["base_err"])
    print("gated g2(0) at 2 % minus the same seed at 0 %, in errors of the latter:")
    for kind in ("corrected", "raw"):
        d = (np.asarray(paired[kind]) - base) / err
        print(f"  {kind:10s}  mean {d.mean():+.2f}  sd {d.std():.2f}")


def part_pooled(quick):
    from qrspec.levels.dwell import dwell_sequence, pooled_dwell_law
    from qrspec.levels.dwell_laws import N_BOOT
    from qrspec.levels.segments import Segments
    from qrspec.store.summary import POOLED_N_BOOT

    class Part:  # what pooled_dwell_law reads of a particle
        def __init__(self, seq, res):
            self.sequence, self.resolution_s = seq, res

    rng = np.random.default_rng(7)
    reps = 40 if quick else 150
    alpha, t0 = 1.8, 0.01
    print(f"\n== pooled on-time law of 10 particles observed for 3 s (alpha {alpha}, t0 {t0} "
          f"s, {reps} groups) ==")
    print("n_boot  events  mean_alpha  cover68  cover95  median_err  sec/group")
    for n_boot in sorted({50, POOLED_N_BOOT, N_BOOT}):
        pulls, errs, events = [], [], []
        t = time.perf_counter()
        for _ in range(reps):
            parts = []
            for _ in range(10):
                b = np.zeros(1)
                while b[-1] < 3.0:  # a renewal process observed for 3 s (~40 stays)
                    d = t0 * (1 - rng.random(64)) ** (-1 / (alpha - 1))
                    b = np.concatenate([b, b[-1] + np.cumsum(d)])
                b = np.concatenate([b[b < 3.0], [3.0]])  # the last stay is cut: censored
                seg = Segments.from_boundaries(b, np.arange(b.size),
                                               label=np.where(np.arange(b.size - 1) % 2, "off",
                                                              "neutral"))
                parts.append(Part(dwell_sequence(seg, off_labels=("off",)), t0))
            law = pooled_dwell_law(parts, state="on", models=("power_law",), n_boot=n_boot)
            pulls.append((law.alpha - alpha) / law.alpha_err)
            errs.append(law.alpha_err)
            events.append(law.n_events)
        p = np.asarray(pulls)
        print(f"{n_boot:6d}  {np.mean(events):6.0f}  "
              f"{np.mean(np.asarray(pulls) * np.asarray(errs)) + alpha:10.3f}  "
              f"{np.mean(np.abs(p) <= 1):7.2f}  {np.mean(np.abs(p) <= 2):7.2f}  "
              f"{np.median(errs):10.4f}  {(time.perf_counter() - t) / reps:9.3f}")


PARTS = {"decay": part_decay, "g2": part_g2, "pooled": part_pooled}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), action="append")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    for name in args.part or list(PARTS):
        t = time.perf_counter()
        PARTS[name](args.quick)
        print(f"({name}: {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
