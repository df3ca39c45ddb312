"""The demo's background kernel warm-up (issue 19, first run)."""

from __future__ import annotations

import numpy as np

from qrspec.app.warmup import start_background_warmup, synthetic_particle


def test_synthetic_particle_looks_decoded():
    ph = synthetic_particle()
    assert ph.timestamps.dtype == np.int64 and ph.detectors.dtype == np.uint8
    assert ph.nanotimes.dtype == np.uint16 and ph.nanotime_bins_per_period == 6250
    assert ph.detector_ids.tolist() == [0, 1] and ph.size > 50_000
    assert np.all(np.diff(ph.timestamps) >= 0)


def test_background_warmup_runs_the_analysis():
    """The warm-up process writes and analyses the synthetic particle to the end (exit code 0;
    1 when the analysis raised)."""
    proc = start_background_warmup()
    assert proc is not None
    proc.join(timeout=300)
    assert proc.exitcode == 0
