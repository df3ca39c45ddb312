"""Time and peak memory of ``qrspec analyze`` on every real file and on synthetic worst cases
(issue 13 item 2: memory bounded by photons, never by span, bin width, period or TCSPC
resolution; peak RSS below 1 GiB for any file up to 50 MB).

Each file is analysed by ``qrspec analyze FILE -o OUT --json`` in a fresh process; the table
gives the wall time of that process (Python start-up and numba cache loading included), the
pipeline's own time (``analysis_s``) and the process's peak resident memory (``VmHWM`` read by
the process itself at exit: ``ru_maxrss`` of a child would start at the forking parent's
peak). Synthetic cases:

* a 50 MB HydraHarp T3 file (11.2 M photons, 2 detectors, blinking, 10 MHz);
* the hostile 23 KB file of issue 13: a 10 ms sync period and a 4e6 s overflow span
  (trajectory and g2 grids sized by span / bin would need gigabytes: now capped, flagged), with
  4 ns TCSPC bins; and the same with 16 ps bins (6e8 bins per period: refused);
* the same span at 1e7 s: beyond g2's integer time base (refused, naming the limit).

Usage: ``nice -n 10 python scripts/bench_realdata.py [FOLDER] [--no-synthetic]`` (default
folder ../shared/realdata; synthetic files are cached in the temp folder). The machine may
be shared: read the memory column, and the times as an order of magnitude.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".ptu", ".pt3", ".ht3", ".ht2", ".t3r"}
LIMIT_MIB = 1024

RUNNER = r"""
import resource, sys
import click
from qrspec.cli import main
code = 0
try:
    main.main(args=sys.argv[1:], standalone_mode=False)
except click.ClickException as exc:
    print("REFUSED " + exc.format_message().splitlines()[0], file=sys.stderr)
    code = 1
except SystemExit as exc:
    code = exc.code or 0
hwm = None
try:
    with open("/proc/self/status") as fh:
        hwm = [int(x.split()[1]) for x in fh if x.startswith("VmHWM")][0]
except OSError:
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"VMHWM {hwm}", file=sys.stderr)
sys.exit(code)
"""


def run(path: Path, out_dir: Path) -> dict:
    out = out_dir / (path.name + ".h5")
    if out.exists():
        out.unlink()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", RUNNER, "-q", "analyze", str(path), "-o",
                        str(out), "--json"], capture_output=True, text=True, env=env,
                       timeout=1800)
    wall = time.perf_counter() - t0
    hwm = [int(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("VMHWM")]
    refused = [line[8:] for line in p.stderr.splitlines() if line.startswith("REFUSED ")]
    row = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
    return dict(name=path.name, mb=path.stat().st_size / 1e6, wall_s=wall,
                rss_mib=hwm[0] / 1024 if hwm else float("nan"), code=p.returncode, row=row,
                refused=refused[0] if refused else (p.stderr.strip().splitlines() or [""])[-1])


def synthetic_50mb(path: Path) -> Path:
    """11.2 M photons in a HydraHarp2T3 file of ~50 MB (overflow records included): 2
    detectors, 10 MHz, 5 ns decay, telegraph blinking (bright and 7 % dim periods of ~0.5 s),
    120 s."""
    from qrspec.io import write_ptu

    if path.exists():
        return path
    rng = np.random.default_rng(5)
    n = 11_200_000
    dur_ticks = 1_200_000_000  # 120 s of 100 ns syncs
    # blinking: alternating bright / dim intervals of exponential length (mean 0.5 s)
    edges = np.cumsum(rng.exponential(5_000_000, 600)).astype(np.int64)
    edges = edges[edges < dur_ticks]
    bright = np.diff(np.concatenate([[0], edges, [dur_ticks]]))
    weight = bright * np.where(np.arange(bright.size) % 2 == 0, 1.0, 0.07)
    seg = rng.choice(bright.size, n, p=weight / weight.sum())
    start = np.concatenate([[0], edges])
    ts = np.sort(start[seg] + (rng.random(n) * bright[seg]).astype(np.int64))
    nt = np.minimum(rng.exponential(5.0 / 0.016, n) + 300 + rng.normal(0, 5, n),
                    6249).astype(np.int64)
    nt = np.maximum(nt, 0)
    write_ptu(path, record_type="HydraHarp2T3", timestamps=ts,
              detectors=rng.integers(0, 2, n), nanotimes=nt, timestamps_unit=1e-7,
              nanotimes_unit=16e-12)
    return path


def synthetic_hostile(path: Path, *, span_s: float, res_s: float) -> Path:
    """3000 photons, 10 ms sync period, ``span_s`` of overflow records (a ~23 KB file)."""
    from qrspec.io import write_ptu

    if path.exists():
        return path
    rng = np.random.default_rng(1)
    n = 3000
    ts = np.sort(rng.integers(0, int(span_s / 1e-2), n))
    nt = np.minimum(rng.exponential(300, n).astype(np.int64) + 100, 32767)
    write_ptu(path, record_type="HydraHarp2T3", timestamps=ts, detectors=rng.integers(0, 2, n),
              nanotimes=nt, timestamps_unit=1e-2, nanotimes_unit=res_s)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(ROOT.parent / "shared" / "realdata"))
    ap.add_argument("--no-synthetic", action="store_true")
    args = ap.parse_args(argv)
    folder = Path(args.folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES) \
        if folder.is_dir() else []
    cache = Path(tempfile.gettempdir()) / "qrspec_bench_realdata"
    cache.mkdir(exist_ok=True)
    if not args.no_synthetic:
        t = time.perf_counter()
        files += [synthetic_50mb(cache / "synthetic_50MB.ptu"),
                  synthetic_hostile(cache / "hostile_10ms_sync_4e6s_4ns.ptu", span_s=4e6,
                                    res_s=4e-9),
                  synthetic_hostile(cache / "hostile_10ms_sync_4e6s_16ps.ptu", span_s=4e6,
                                    res_s=16e-12),
                  synthetic_hostile(cache / "hostile_10ms_sync_1e7s_4ns.ptu", span_s=1e7,
                                    res_s=4e-9)]
        print(f"(synthetic files ready in {time.perf_counter() - t:.0f} s, in {cache})")
    with tempfile.TemporaryDirectory() as tmp:
        run(files[0], Path(tmp))  # warm the numba cache outside the table
        print(f"{'file':<38}{'MB':>7}{'photons':>10}{'wall s':>8}{'analysis s':>11}"
              f"{'peak RSS MiB':>13}  result")
        worst = 0.0
        for f in files:
            r = run(f, Path(tmp))
            row = r["row"]
            n = row.get("n_photons")
            res = "ok" if r["code"] == 0 else f"refused: {r['refused'][:70]}"
            if r["code"] == 0 and row.get("error"):
                caps = [x for x in row["error"].split("; ") if "coarsened" in x]
                if caps:
                    res += f" ({len(caps)} grid(s) coarsened)"
            a_s = row.get("analysis_s")
            print(f"{r['name'][:37]:<38}{r['mb']:>7.2f}{n if n is not None else '-':>10}"
                  f"{r['wall_s']:>8.2f}{a_s if a_s is not None else float('nan'):>11.2f}"
                  f"{r['rss_mib']:>13.0f}  {res}")
            if r["mb"] <= 50:
                worst = max(worst, r["rss_mib"])
    print(f"largest peak RSS of a file <= 50 MB: {worst:.0f} MiB (limit {LIMIT_MIB} MiB): "
          f"{'OK' if worst < LIMIT_MIB else 'ABOVE THE LIMIT'}")
    return 0 if worst < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
