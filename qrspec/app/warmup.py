"""Compile the analysis kernels in the background while the main process does other work.

numba compiles a kernel on its first call and caches it on disk (``cache=True``), so a fresh
install pays the compilation once, on its first run. ``qrspec demo`` first simulates its
population in the main process (one core) and then analyses it in worker processes, which
would each compile the same analysis kernels. :func:`start_background_warmup` runs the analysis
of a small synthetic particle in another process meanwhile, on the otherwise idle core: the
kernels are compiled once, in parallel with the simulation, and the workers load them from the
cache. With a warm cache the warm-up only loads the cached kernels (about a second of the idle
core).
"""

from __future__ import annotations

import logging

__all__ = ["synthetic_particle", "warm_analysis_kernels", "start_background_warmup"]

logger = logging.getLogger(__name__)


def synthetic_particle(seed: int = 0):
    """A small T3 particle made with numpy only (no simulator kernels).

    1 s at 10 MHz, 16 ps bins, two detectors, blinking between two levels, 3 ns decays on a 0.1 ns
    IRF, and cascade photon pairs in the same pulse; the dtypes of a decoded file.
    """
    import numpy as np

    from qrspec.photons import Photons

    rng = np.random.default_rng(seed)
    period_s, bin_s, n_pulses = 1e-7, 16e-12, 10_000_000
    n_bins = int(round(period_s / bin_s))
    # blinking: 0.1 s dwell times, on ~2 % of pulses detected, off ~0.4 %
    edges = np.arange(0, n_pulses + 1, 1_000_000)  # 0.1 s levels
    parts = []
    for k in range(edges.size - 1):
        p = 0.02 if k % 2 == 0 else 0.004
        n = rng.binomial(edges[k + 1] - edges[k], p)
        parts.append(rng.integers(edges[k], edges[k + 1], n))
    pulses = np.sort(np.concatenate(parts))
    pairs = pulses[rng.random(pulses.size) < 0.03]  # a second photon in the same pulse
    ts = np.concatenate([pulses, pairs])
    n = ts.size
    det = np.concatenate([rng.integers(0, 2, pulses.size), 1 - rng.integers(0, 2, pairs.size)])
    t_ns = 5.0 + rng.normal(0, 0.1, n) + rng.exponential(3.0, n)
    nt = np.minimum((np.mod(t_ns, 100.0) / (bin_s * 1e9)).astype(np.int64), n_bins - 1)
    order = np.argsort(ts, kind="stable")
    return Photons.from_arrays(ts[order], det[order], nt[order], timestamps_unit=period_s,
                               nanotimes_unit=bin_s, record_type="HydraHarp2T3")


def warm_analysis_kernels(tmp_dir=None) -> None:
    """Write the synthetic particle to a PTU file and analyse it (default configuration).

    Compiles (or loads) the reader's and the pipeline's kernels.
    """
    import os
    import tempfile

    from qrspec.analysis.pipeline import analyze_file
    from qrspec.io.writer import write_ptu

    ph = synthetic_particle()
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        path = os.path.join(tmp, "warmup.ptu")
        write_ptu(path, record_type=ph.record_type, timestamps=ph.timestamps,
                  detectors=ph.detectors, nanotimes=ph.nanotimes,
                  timestamps_unit=ph.timestamps_unit, nanotimes_unit=ph.nanotimes_unit)
        analyze_file(path)


def _warm_quietly() -> None:
    try:
        warm_analysis_kernels()
    except Exception:  # noqa: BLE001 - an optimisation only: never disturb the caller
        logger.debug("kernel warm-up failed", exc_info=True)
        raise SystemExit(1) from None  # the exit code tells (tests)


def start_background_warmup():
    """Start :func:`warm_analysis_kernels` in a background process.

    Return it (join it before starting work that needs the kernels) or None when a process cannot
    be started.
    """
    import multiprocessing

    try:
        proc = multiprocessing.get_context("spawn").Process(target=_warm_quietly, daemon=True,
                                                            name="qrspec-warmup")
        proc.start()
    except (OSError, RuntimeError) as exc:  # e.g. no process limit left
        logger.debug("no kernel warm-up: %s", exc)
        return None
    return proc
