"""Time and peak memory of every photon-statistics grid on the real files and on the synthetic
cases of issue 13 item 2 (size caps).

For each file: intensity trace (10 ms), aligned decay, sliced decays (10 windows), FLID
(10 ms), the HBT plan (detectors, pulsed/CW, zero peak) and the g2 of the plan. Memory is the
peak of numpy allocations during the call (tracemalloc), time the wall time of the call
(median of 3 in one process; the machine is shared, so read ratios, not absolutes).

Usage: ``nice -n 10 python scripts/bench_stats_caps.py [folder]`` (default ../shared/realdata).
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(call, repeat=3):
    times, peak, out = [], 0.0, None
    for _ in range(repeat):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            out = call()
        except Exception as exc:  # noqa: BLE001 - a refusal is a result here
            out = exc
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return out, statistics.median(times), peak


def bench(ph, label):
    from qrspec.stats.correlation import g2
    from qrspec.stats.decay import decay_histogram, flid, sliced_decays
    from qrspec.stats.hbt import plan_g2
    from qrspec.stats.trace import intensity_trace

    if ph.size == 0:
        print(f"{label:<40} no photons")
        return
    span = max(ph.duration_s, 1e-9)
    windows = [(ph.timestamps[0] * ph.timestamps_unit + i * span / 10,
                ph.timestamps[0] * ph.timestamps_unit + (i + 1) * span / 10) for i in range(10)]
    calls = [("trace", lambda: intensity_trace(ph, 0.01))]
    if ph.is_t3:
        calls += [("decay", lambda: decay_histogram(ph)),
                  ("sliced", lambda: sliced_decays(ph, time_windows_s=windows)),
                  ("flid", lambda: flid(ph, 0.01))]
    calls.append(("plan_g2", lambda: plan_g2(ph)))
    row = []
    plan = None
    for name, call in calls:
        out, t, mib = measure(call)
        if name == "plan_g2":
            plan = out
        note = ""
        if isinstance(out, Exception):
            note = f" refused: {str(out)[:60]}"
        elif getattr(out, "coarsening_note", ""):
            note = " (coarsened)"
        row.append(f"{name} {t * 1e3:.0f} ms/{mib:.0f} MiB{note}")
    if plan is not None and not isinstance(plan, Exception) and plan.g2_mode != "not_applicable":
        kw = dict(detectors=plan.choice.detectors, delay_ns=plan.delay_ns)
        if plan.g2_mode == "pulsed":
            kw.update(period_ns=plan.period_ns)
        else:
            kw.update(max_lag_ns=200.0, bin_ns=0.5)
        out, t, mib = measure(lambda: g2(ph, **kw))
        row.append(f"g2[{plan.g2_mode}] {t * 1e3:.0f} ms/{mib:.0f} MiB")
    elif plan is not None and not isinstance(plan, Exception):
        row.append("g2 not applicable")
    print(f"{label:<40} {ph.size:>8} ph  " + "; ".join(row))


def synthetic():
    from qrspec.photons import Photons

    rng = np.random.default_rng(1)
    n = 3000
    ts = np.sort(rng.integers(0, 10**9, n))  # 10 ms sync, 1e7 s overflow span
    nt = np.minimum(rng.exponential(300, n).astype(np.int64) + 100, 65535)
    yield "synthetic 10 ms sync, 1e7 s span", Photons.from_arrays(
        ts, rng.integers(0, 2, n), nt, timestamps_unit=1e-2, nanotimes_unit=16e-12)
    ts = np.sort(rng.integers(0, 10**8, 200_000))
    yield "synthetic 10 MHz, 10 s (bin 1e-7 below)", Photons.from_arrays(
        ts, rng.integers(0, 2, ts.size), rng.integers(0, 6000, ts.size), timestamps_unit=1e-7,
        nanotimes_unit=16e-12)


def main(argv=None) -> int:
    import logging

    from qrspec.io import read_tttr
    from qrspec.stats.correlation import g2
    from qrspec.stats.trace import intensity_trace

    logging.disable(logging.WARNING)  # per-file reader/offset warnings are not the subject here
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else ROOT.parent / "shared" / "realdata"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in
                   {".ptu", ".pt3", ".ht3", ".t3r", ".ht2"}) if folder.is_dir() else []
    for p in files:
        try:
            ph = read_tttr(p)
        except Exception as exc:  # noqa: BLE001
            print(f"{p.name:<40} unreadable: {exc}")
            continue
        bench(ph, p.name)
    for label, ph in synthetic():
        bench(ph, label)
    ph = dict(synthetic())["synthetic 10 MHz, 10 s (bin 1e-7 below)"]
    out, t, mib = measure(lambda: intensity_trace(ph, 1e-7))
    print(f"bin_width_s=1e-7 on 10 s at 10 MHz: {t * 1e3:.0f} ms, {mib:.0f} MiB, "
          f"{out.n_bins} bins of {out.bin_width_s:.3g} s ({out.coarsening_note})")
    out, t, mib = measure(lambda: g2(ph, max_lag_periods=100_000_000), repeat=1)
    print(f"g2_max_lag_periods=100000000: {t * 1e3:.0f} ms, {mib:.0f} MiB: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
