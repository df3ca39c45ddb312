"""Run the hostile-input catalogue of issue 16 (``tests/hostile_cases.py``).

Every case runs as its own ``qrspec`` subprocess (own session) in a fresh folder, with a time
limit (default 60 s), a peak-RSS limit for its whole process group (default 2 GB; sampled every
20 ms; the group is killed above 4 GB) and a 6 GB address-space cap as a safety net for the
machine (running into it counts as a memory bomb). Prints one line per case, then handled /
tried, the worst time, the worst peak RSS, and every case that was not handled (traceback,
hang, crash, memory, wrong exit code or message, touched input, files left behind) with the
helper who owns it.

Usage: ``python scripts/run_hostile.py [-k SUBSTRING] [--cheap] [--timeout-s 60]
[--rss-limit-mb 2048] [--keep DIR]``. Disk-full cases need root (a tmpfs is mounted); they are
reported as skipped otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hostile_cases as hc  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only cases whose name or category contains this")
    ap.add_argument("--cheap", action="store_true", help="only the cases the test suite runs")
    ap.add_argument("--timeout-s", type=float, default=60.0)
    ap.add_argument("--rss-limit-mb", type=float, default=2048.0)
    ap.add_argument("--keep", help="keep the case folders under this folder")
    a = ap.parse_args()

    cases = [c for c in hc.CASES if (a.k in c.name or a.k in c.category)
             and (c.cheap or not a.cheap)]
    tmpfs = hc.tmpfs_available()
    root = Path(a.keep or tempfile.mkdtemp(prefix="qrspec_hostile_"))
    root.mkdir(parents=True, exist_ok=True)
    base = hc.base_particle(root)
    outcomes, skipped = [], []
    t_all = time.monotonic()
    for c in cases:
        if c.needs == "tmpfs" and not tmpfs:
            skipped.append(c)
            print(f"SKIP     {c.name:40s} (cannot mount a tmpfs)", flush=True)
            continue
        o = hc.run_case(c, root / c.name, base, timeout_s=a.timeout_s,
                        rss_limit_mb=a.rss_limit_mb)
        outcomes.append(o)
        mark = "ok  " if o.handled else "FAIL"
        print(f"{mark}     {c.name:40s} {o.wall_s:6.1f} s {o.peak_rss_mb:7.0f} MB  "
              f"exit {o.returncode}  [{c.owner}]" + ("" if o.handled else
                                                    f"  {'; '.join(o.problems)}"), flush=True)
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)
    handled = [o for o in outcomes if o.handled]
    failed = [o for o in outcomes if not o.handled]
    worst_t = max(outcomes, key=lambda o: o.wall_s) if outcomes else None
    worst_m = max(outcomes, key=lambda o: o.peak_rss_mb) if outcomes else None
    print()
    print(f"handled {len(handled)} / tried {len(outcomes)}"
          + (f" ({len(skipped)} skipped: no tmpfs)" if skipped else "")
          + f" in {time.monotonic() - t_all:.0f} s")
    if worst_t:
        print(f"worst time: {worst_t.wall_s:.1f} s ({worst_t.case.name}); worst peak RSS: "
              f"{worst_m.peak_rss_mb:.0f} MB ({worst_m.case.name})")
    kinds = {"traceback": 0, "hang": 0, "crash": 0, "memory": 0}
    for o in failed:
        text = "; ".join(o.problems)
        for k in kinds:
            if k in text or (k == "memory" and ("RSS" in text or "out of memory" in text)):
                kinds[k] += 1
    print("not handled: " + ", ".join(f"{v} {k}" for k, v in kinds.items())
          + f", {len(failed)} in all")
    by_owner: dict[str, list] = {}
    for o in failed:
        by_owner.setdefault(o.case.owner, []).append(o)
    for owner, items in sorted(by_owner.items()):
        print(f"\n[{owner}]")
        for o in items:
            print(f"  {o.case.name} ({o.case.category}): {'; '.join(o.problems)}")
            tail = o.output.strip().splitlines()[-3:]
            for line in tail:
                print(f"      | {line[:150]}")
    return 0 if not failed else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
