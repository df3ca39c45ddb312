"""Population checks of the HBT decisions and the CW fit (issue 13 items 3 and 4).

Prints, on simulated populations:

A. zero-peak finder (:func:`qrspec.stats.hbt.find_zero_peak`): for 0..3 whole periods of extra
   delay (plus 3.3 ns) on one detector, antibunched (g2(0) = 0.05) and Poissonian sources, at
   several photon budgets: the fraction of correct choices, wrong choices accepted, and
   undecided (flagged) runs. Plus the 80 MHz / 24 ns case of issue 13 with the full simulator.
B. pulsed-vs-CW decision (:func:`qrspec.stats.hbt.detect_comb` via ``plan_g2``) on T2 data:
   CW emitters (with and without background, with microsecond blinking) called "pulsed", and
   pulsed combs called "CW".
C. CW antibunching fit (:func:`qrspec.fitting.antibunching.fit_antibunching`): coverage of the
   1-sigma errors of g2(0), the rise time, the dip centre and the background-corrected g2(0).

Usage: ``nice -n 10 python scripts/validate_hbt.py [--quick]`` (5-10 minutes on the shared
machine; --quick: a tenth of the populations).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("test_hbt", ROOT / "tests" / "test_hbt.py")
_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tests)
pulsed_hbt, PERIOD_NS = _tests.pulsed_hbt, _tests.PERIOD_NS


def part_a(n_runs: int) -> None:
    from qrspec.stats.hbt import find_zero_peak

    print("A. zero-peak finder: fraction correct / wrong accepted / undecided "
          f"({n_runs} runs per cell; z_min = 5, second_z_max = 4)")
    print(f"{'source':<14}{'pulses':>9}{'median side area':>18}  " +
          "  ".join(f"k={k}: ok/wrong/undec" for k in range(4)))
    rng = np.random.default_rng(7)
    for label, g in (("g2(0)=0.05", 0.05), ("Poissonian", None)):
        for n_pulses in (15_000, 30_000, 60_000, 400_000):
            cells, areas = [], []
            for whole in range(4):
                ok = wrong = undec = 0
                for _ in range(n_runs):
                    ph = pulsed_hbt(rng, n_pulses=n_pulses, p_photon=0.06, g2_zero=g,
                                    delay_ns=whole * PERIOD_NS + 3.3)
                    zp = find_zero_peak(ph)
                    areas.append(zp.median_area)
                    if not zp.decided:
                        undec += 1
                    elif zp.zero_peak_index == whole:
                        ok += 1
                    else:
                        wrong += 1
                cells.append(f"{ok / n_runs:.2f}/{wrong / n_runs:.2f}/{undec / n_runs:.2f}")
            print(f"{label:<14}{n_pulses:>9}{np.median(areas):>18.0f}  " + "  ".join(
                f"{c:>20}" for c in cells))
    from qrspec import simulate as sim
    from qrspec.stats.correlation import g2, g2_peaks
    from qrspec.stats.hbt import plan_g2

    det = dict(offset_ns=(2.0, 26.0), eta_collection=0.2, dead_time_ns=(20.0, 20.0))
    cfg = sim.preset("neutral").replace(duration_s=0.05, sync_rate_hz=80e6,
                                        mean_excitations=0.1, detection=det,
                                        emitter=dict(tau_x0_ns=2.0, tau_a_xx0_ns=0.02))
    print("   issue 13 case (simulator, 80 MHz, 24 ns cable, dark counts and afterpulses on):")
    for seed in range(3 if n_runs < 20 else 10):
        ph = sim.simulate_particle(cfg, seed=seed).photons
        plan = plan_g2(ph)
        right = g2_peaks(g2(ph, delay_ns=plan.delay_ns))
        wrong = g2_peaks(g2(ph, delay_ns=plan.zero_peak.base_delay_ns))
        print(f"   seed {seed}: k*={plan.zero_peak.zero_peak_index} "
              f"delay={plan.delay_ns:.3f} ns z={plan.zero_peak.z_score:.1f}; g2(0) with "
              f"offsets only {wrong.g2_0:.3f}+-{wrong.g2_0_err:.3f}, with the zero peak "
              f"{right.g2_0:.3f}+-{right.g2_0_err:.3f}")


def _blinking(ph, rng, dwell_ns):
    """Keep photons in 'on' intervals of a telegraph with mean dwell dwell_ns (both states)."""
    from qrspec.photons import Photons

    t = ph.timestamps * ph.timestamps_unit * 1e9
    n = int(t[-1] / dwell_ns * 1.2) + 10
    edges = np.cumsum(rng.exponential(dwell_ns, n))
    on = (np.searchsorted(edges, t) % 2) == 0
    return Photons.from_arrays(ph.timestamps[on], ph.detectors[on],
                               timestamps_unit=ph.timestamps_unit)


def part_b(n_runs: int) -> None:
    from qrspec.simulate.cw import simulate_cw_hbt
    from qrspec.stats.hbt import plan_g2

    print(f"\nB. pulsed-vs-CW decision on T2 data (false_alarm = 1e-3; {n_runs} runs each)")
    rng = np.random.default_rng(11)
    cases = [
        ("CW tau_r 9.5 ns, 5 kcps bg", dict(k_exc_per_ns=0.005, k_rad_per_ns=0.1,
                                           background_cps=(5000.0, 5000.0)), None),
        ("CW tau_r 2 ns, no bg", dict(k_exc_per_ns=0.05, k_rad_per_ns=0.45), None),
        ("CW tau_r 40 ns", dict(k_exc_per_ns=0.005, k_rad_per_ns=0.02), None),
        ("CW + 1 us blinking", dict(k_exc_per_ns=0.005, k_rad_per_ns=0.1), 1000.0),
    ]
    for label, kw, blink in cases:
        called_pulsed = 0
        for _ in range(n_runs):
            ph, _ = simulate_cw_hbt(int(rng.integers(1 << 30)), duration_s=0.2, eta=(0.1, 0.1),
                                    **kw)
            if blink:
                ph = _blinking(ph, rng, blink)
            called_pulsed += plan_g2(ph).g2_mode == "pulsed"
        print(f"   {label:<30} called pulsed: {called_pulsed}/{n_runs}")
    for label, n_pulses, g, tau in (("pulsed, g2(0)=0.05, 1e5 pulses", 100_000, 0.05, 2.0),
                                    ("pulsed, g2(0)=0.05, 3e4 pulses", 30_000, 0.05, 2.0),
                                    ("pulsed, classical, 3e4 pulses", 30_000, None, 2.0),
                                    ("pulsed, tau 10 ns, 3e4 pulses", 30_000, 0.05, 10.0),
                                    ("pulsed, tau 10 ns, 3e5 pulses", 300_000, 0.05, 10.0)):
        called_cw = 0
        for _ in range(n_runs):
            ph = pulsed_hbt(rng, n_pulses=n_pulses, p_photon=0.06, g2_zero=g, delay_ns=4.0,
                            t2=True, tau_ns=tau)
            called_cw += plan_g2(ph).g2_mode == "cw"
        n_ph = int(n_pulses * 0.06)
        print(f"   {label:<30} (~{n_ph} photons) called CW: {called_cw}/{n_runs}")


def part_c(n_runs: int) -> None:
    from qrspec.fitting.antibunching import fit_antibunching
    from qrspec.simulate.cw import simulate_cw_hbt
    from qrspec.stats.correlation import g2

    print(f"\nC. CW antibunching fit: coverage of the 1-sigma errors ({n_runs} runs per set)")
    sets = [
        ("tau_r 9.5 ns, 5 kcps bg", dict(k_exc_per_ns=0.005, k_rad_per_ns=0.1,
                                        background_cps=(5000.0, 5000.0)), 0.4, 0.5),
        ("tau_r 2 ns, 2nd emitter r=0.3", dict(k_exc_per_ns=0.05, k_rad_per_ns=0.45,
                                              second_emitter_ratio=0.3), 0.1, 0.1),
    ]
    for label, kw, dur, bin_ns in sets:
        pulls = {"g2_0": [], "rise_time": [], "tau0": [], "g2_0_corrected": []}
        failed = 0
        for seed in range(n_runs):
            ph, truth = simulate_cw_hbt(1000 + seed, duration_s=dur, eta=(0.1, 0.1),
                                        delay_ns=2.0, **kw)
            bg = kw.get("background_cps", (0.0, 0.0))
            fit = fit_antibunching(g2(ph, max_lag_ns=150.0, bin_ns=bin_ns), background_cps=bg)
            if not fit.success:
                failed += 1
                continue
            pulls["g2_0"].append((fit.g2_0 - truth.g2_0) / fit.g2_0_err)
            pulls["rise_time"].append((fit.rise_time_ns - truth.rise_time_ns)
                                      / fit.rise_time_err_ns)
            pulls["tau0"].append((fit.tau0_ns - 2.0) / fit.tau0_err_ns)
            pulls["g2_0_corrected"].append((fit.g2_0_corrected - truth.g2_0_emitter)
                                           / fit.g2_0_corrected_err)
        print(f"   {label} (truth g2(0) {truth.g2_0:.3f}, tau_r {truth.rise_time_ns:.2f} ns; "
              f"{failed} failed fits)")
        for name, p in pulls.items():
            p = np.asarray(p)
            p = p[np.isfinite(p)]
            cover = float(np.mean(np.abs(p) < 1))
            se = np.sqrt(0.683 * 0.317 / p.size)
            print(f"      {name:<16} coverage {cover:.3f} (nominal 0.683 +- {se:.3f}), pull "
                  f"mean {p.mean():+.3f} sd {p.std(ddof=1):.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the populations")
    args = ap.parse_args(argv)
    t0 = time.time()
    scale = 10 if args.quick else 1
    part_a(max(3, 40 // scale))
    part_b(max(5, 100 // scale))
    part_c(max(20, 200 // scale))
    print(f"\ntotal {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
