"""Regenerate ``tests/reference/``: the pipeline's numbers on ``data_samples/``, pinned.

Usage: ``python scripts/make_reference.py [--check]``

For every case in :data:`CASES` (a sample file and a configuration) it runs the per-particle
pipeline and stores the summary row, the flags and a few small arrays (levels, charging table,
g2 histograms, total decay) in ``tests/reference/<case>.npz``. ``tests/test_reference.py``
compares a fresh run with these files, so a refactor that changes a number fails a test. When a
change of numbers is intended (a better estimator), rerun this script in the same commit and say
why in the commit message. ``--check`` compares without writing and exits 1 on a difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
REFERENCE = ROOT / "tests" / "reference"

# case name -> (sample file, AnalysisConfig fields as JSON-ready dict)
CASES = {
    "undoped_default": ("sim_undoped_discharging.ptu", {}),
    "mn_doped_default": ("sim_mn_doped_blinking.ptu", {}),
    "mn_doped_model": ("sim_mn_doped_blinking.ptu",
                       {"charge_model": {"gamma": 2.39, "tau_a_xx0_ns": 13.9},
                        "charging_window_s": 1.0}),
    "neutral_mean_excitations": ("sim_neutral.ptu", {"mean_excitations": 0.1}),
    "neutral_t2": ("sim_neutral_t2.ptu", {}),
}

# summary entries that are not numbers of the analysis (wall time, identity; the flags are
# pinned on their own) are not pinned
UNPINNED = {"analysis_s", "particle_id", "group", "source", "status", "error"}
# small arrays worth pinning: key in the npz (the results path of format 1) -> where the
# array is in the ParticleAnalysis
ARRAYS = {
    "levels/segments_start_s": "levels.segments.start_s",
    "levels/segments_stop_s": "levels.segments.stop_s",
    "levels/segments_label": "levels.segments.label",
    "levels/intensity_cps": "levels.intensity_cps",
    "levels/tau_ns": "levels.tau_ns",
    "charging/n_c": "charging.windows.n_c",
    "charging/n_c_err": "charging.windows.n_c_err",
    "charging/tau_a_xx_ns": "charging.windows.tau_a_xx_ns",
    "charging/tau_a_xx_err_ns": "charging.windows.tau_a_xx_err_ns",
    "g2/counts": "g2.raw.counts",
    "g2_gated/counts": "g2.gated.counts",
    "decays/total": "alignment.counts",
    "trace/counts": "trajectory.counts",
}


def _array(analysis, where: str) -> np.ndarray:
    """The array at a dotted path of a ParticleAnalysis; empty where a stage did not apply
    (T2 data without sync: no decays; one detector: no g2)."""
    obj = analysis
    for name in where.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return np.zeros(0)
    arr = np.asarray(obj)
    return arr.astype("S12") if arr.dtype.kind == "U" else arr


def run_case(name: str) -> dict:
    """Analyse one case; returns ``{"summary": json text, "flags": str, <array keys>...}``."""
    from qrspec.analysis import AnalysisConfig, analyze_file
    from qrspec.errors import QrspecError
    from qrspec.store.summary import summary_values

    sample, cfg = CASES[name]
    config = AnalysisConfig.from_dict(cfg)
    try:
        res = analyze_file(SAMPLES / sample, config)
    except QrspecError as exc:  # a refusal is pinned too (its message, without the path)
        return {"refused": np.asarray(str(exc).replace(str(SAMPLES / sample), sample))}
    summary = {k: v for k, v in summary_values(res).items() if k not in UNPINNED}
    out = {"summary": np.asarray(json.dumps(summary, sort_keys=True, default=float)),
           "flags": np.asarray(res.error)}
    for key, where in ARRAYS.items():
        out[key.replace("/", "__")] = _array(res, where)
    return out


def compare(name: str, got: dict, ref: dict) -> list[str]:
    """Differences between a fresh run and a stored reference (empty when equal)."""
    diffs = []
    if set(got) != set(ref):
        return [f"{name}: keys {sorted(set(got) ^ set(ref))} differ"]
    for key in got:
        a, b = np.asarray(got[key]), np.asarray(ref[key])
        if key == "summary":
            sa, sb = json.loads(str(a)), json.loads(str(b))
            for col in sorted(set(sa) | set(sb)):
                x, y = sa.get(col), sb.get(col)
                if isinstance(x, float) and isinstance(y, float):
                    # deterministic code on the same inputs: equal to rounding of the BLAS /
                    # libm in use (1e-9 relative is far below any statistical error)
                    same = (np.isnan(x) and np.isnan(y)) or np.isclose(x, y, rtol=1e-9,
                                                                       atol=0.0)
                else:
                    same = x == y
                if not same:
                    diffs.append(f"{name}: summary[{col!r}] = {x!r}, reference {y!r}")
        elif a.dtype.kind in "fc":
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-9, atol=0.0,
                                                     equal_nan=True):
                diffs.append(f"{name}: {key} differs")
        elif a.shape != b.shape or not np.array_equal(a, b):
            diffs.append(f"{name}: {key} differs ({a!r:.60} vs {b!r:.60})")
    return diffs


def main(argv: list[str]) -> int:
    check = "--check" in argv
    REFERENCE.mkdir(parents=True, exist_ok=True)
    bad = []
    for name in CASES:
        got = run_case(name)
        path = REFERENCE / f"{name}.npz"
        if check:
            with np.load(path) as ref:
                bad += compare(name, got, dict(ref))
        else:
            np.savez_compressed(path, **got)
            print(f"{path.relative_to(ROOT)}  {path.stat().st_size / 1e3:.0f} kB")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
