"""Compare every number the pipeline returns between this tree and another qrspec source tree.

Speed work must not change results silently. This script runs
:func:`qrspec.analysis.pipeline.analyze_photons` on every file of ``--data`` (default: the
particles of ``scripts/bench_batch.py``) and, when present, every real file of
``../shared/realdata``, once with this tree and once with ``SRC`` (a source tree of another
version, e.g. ``git archive <rev> | tar -x -C /tmp/old_src``), each in a fresh process; flattens
each result (the frozen stage dataclasses, dicts, lists and arrays) into named numbers and
prints how many differ and the largest relative difference, with the fields that differ most.
Refused files must be refused with the same message. The wall-clock field ``analysis_s`` is left
out. Numbers are equal only when bit-identical (NaN equals NaN).

Usage: ``python scripts/compare_outputs.py SRC [--data DIR ...] [--no-realdata] [--show 10]``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = ("analysis_s",)


def _files(data_dirs, realdata: bool) -> list[Path]:
    files = []
    for d in data_dirs:
        files += sorted(Path(d).glob("*.ptu"))
    real = REPO.parent / "shared" / "realdata"
    if realdata and real.is_dir():
        files += sorted(p for p in real.iterdir() if p.is_file()
                        and p.suffix.lower() in (".ptu", ".pt3", ".ht3", ".ht2", ".t3r", ".pt2"))
    return files


def _flat(x, name: str, out: dict) -> None:
    import numpy as np

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        for f in dataclasses.fields(x):
            if f.name not in SKIP:
                _flat(getattr(x, f.name), f"{name}.{f.name}", out)
    elif isinstance(x, dict):
        for k, v in x.items():
            _flat(v, f"{name}[{k!r}]", out)
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _flat(v, f"{name}[{i}]", out)
    elif isinstance(x, np.ndarray) and x.dtype.kind in "fiub":
        out[name] = np.asarray(x, float).ravel()
    elif isinstance(x, (bool, int, float, np.number)):
        out[name] = np.array([float(x)])
    else:
        out[name] = repr(x) if not isinstance(x, np.ndarray) else repr(x.tolist())


def _dump(out_path: str, files: list[str]) -> None:
    """Child process: analyse every file with the qrspec on sys.path, pickle the flat results."""
    from qrspec.analysis import pipeline
    from qrspec.io import read_tttr

    res = {}
    for f in files:
        try:
            r = pipeline.analyze_photons(read_tttr(f))
        except Exception as exc:  # a refusal is an output too: compared by its message
            res[f] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        d: dict = {}
        _flat(r, "r", d)
        res[f] = d
    with open(out_path, "wb") as fh:
        pickle.dump(res, fh)


def _run(src: Path, files: list[Path], out: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); "
            "import compare_outputs as c; c._dump(sys.argv[1], sys.argv[2:])")
    subprocess.run([sys.executable, "-c", code, out, *map(str, files)], env=env, check=True,
                   cwd=tempfile.gettempdir())
    with open(out, "rb") as fh:
        return pickle.load(fh)


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="source tree of the other qrspec version")
    ap.add_argument("--data", nargs="*",
                    default=[os.path.join(tempfile.gettempdir(), "qrspec_bench_batch")])
    ap.add_argument("--no-realdata", action="store_true")
    ap.add_argument("--show", type=int, default=10, help="fields that differ most to print")
    args = ap.parse_args()
    if not (args.src / "qrspec" / "__init__.py").is_file():
        sys.exit(f"src={str(args.src)!r} holds no qrspec package")
    files = _files(args.data, not args.no_realdata)
    if not files:
        sys.exit(f"no input files in {args.data}: run scripts/bench_batch.py first")
    with tempfile.TemporaryDirectory() as tmp:
        other = _run(args.src, files, os.path.join(tmp, "other.pkl"))
        this = _run(REPO, files, os.path.join(tmp, "this.pkl"))
    n_total = n_diff = 0
    worst = 0.0
    by_field: collections.Counter = collections.Counter()
    max_rel: dict = {}
    refusals = 0
    for f in map(str, files):
        a, b = other[f], this[f]
        if "error" in a or "error" in b:
            refusals += 1
            n_total += 1
            if a.get("error") != b.get("error"):
                n_diff += 1
                by_field["<refusal differs>"] += 1
            continue
        for key in a.keys() | b.keys():
            va, vb = a.get(key), b.get(key)
            field = key.split("[")[0] if "[" in key else key
            if isinstance(va, np.ndarray) and isinstance(vb, np.ndarray) and va.shape == vb.shape:
                n_total += va.size
                same = (va == vb) | (np.isnan(va) & np.isnan(vb))
                if same.all():
                    continue
                n_diff += int((~same).sum())
                by_field[field] += int((~same).sum())
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = np.abs(va - vb) / np.maximum(np.abs(va), np.abs(vb))
                r = float(np.nanmax(np.where(same, 0.0, rel))) if rel.size else 0.0
                worst = max(worst, r)
                max_rel[field] = max(max_rel.get(field, 0.0), r)
            else:
                n_total += 1
                if not (isinstance(va, str) and va == vb):
                    n_diff += 1
                    by_field[field] += 1
                    max_rel[field] = float("inf")
                    worst = float("inf")
    print(f"{len(files)} files ({refusals} refused on either side): {n_diff} of {n_total} "
          f"numbers differ, largest relative difference {worst:.3g}")
    for field, n in by_field.most_common(args.show):
        print(f"  {n:8d}  max rel {max_rel.get(field, 0.0):.3g}  {field}")


if __name__ == "__main__":
    main()
