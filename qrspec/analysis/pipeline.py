"""The per-particle pipeline: reader -> bursts (found, removed) -> trajectory -> alignment ->
levels -> blinking (bleaching, dwell-time laws) -> [the analysed part: everything, or the time
before a bleach] -> detector artefacts (afterpulsing) -> g2 raw and gated -> dead-time check ->
states (decays, lifetimes) -> FLID -> tau_XX three ways -> charging n_c(t), tau_A(t).

Each stage is a function of its own module returning a frozen dataclass; this module only
checks the input and calls them in order. :func:`analyze_file` returns a
:class:`~qrspec.analysis.particle.ParticleAnalysis`; it raises
:class:`~qrspec.errors.QrspecError` only when the file cannot be analysed at all (unreadable,
T2 data, a detector without photons). Anything the data cannot decide (no neutral period, too
few photon pairs, a failed fit) gives NaN values with a flag, never a silent number.

Adding a stage: write its module (a function returning a frozen dataclass with a ``flags``
field), add a field to ``ParticleAnalysis`` (and its name to ``STAGES``), describe its fields
in :mod:`qrspec.store.schema`, and call it here.
"""

from __future__ import annotations

import logging
import math
import os
import time

from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.particle import ParticleAnalysis
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["analyze_file", "analyze_photons", "MAX_PERIOD_BINS", "MIN_PHOTONS"]

logger = logging.getLogger(__name__)

MAX_PERIOD_BINS = 1 << 22  # TCSPC bins per laser period (10 MHz, 16 ps: 6250; 100 kHz, 4 ps:
# 2.5e6); above this every per-period histogram costs > 32 MB per row
MIN_PHOTONS = 1000  # fewer photons on the HBT pair: nothing of the pipeline is meaningful


def analyze_file(path, config: AnalysisConfig | None = None, *, particle_id: str | None = None,
                 group: str = "") -> ParticleAnalysis:
    """Run the full pipeline on one TTTR file.

    Parameters
    ----------
    path : str or Path
        T3 TTTR file of one particle (two HBT detectors).
    config : AnalysisConfig, optional
        Parameters (defaults when None).
    particle_id : str, optional
        Default: the sanitised file stem.
    group : str
        Sample group recorded with the result.

    Returns
    -------
    ParticleAnalysis

    Raises
    ------
    QrspecError
        The file cannot be read or cannot be analysed (T2 data, missing detector, no photons).
    """
    from qrspec.io import read_tttr
    from qrspec.io.files import sanitize_id, sha256_file

    path = os.fspath(path)
    photons = read_tttr(path)
    pid = particle_id or sanitize_id(os.path.splitext(os.path.basename(path))[0])
    return analyze_photons(photons, config, particle_id=pid, group=group, source=path,
                           source_sha256=sha256_file(path))


def _check_input(photons: Photons, config: AnalysisConfig, name: str) -> Photons:
    """The photons of the HBT pair, or a QrspecError saying why the pipeline cannot run."""
    if not photons.is_t3:
        raise QrspecError(f"{name}: T2 data (record type {photons.record_type}) has no "
                          "nanotimes; the particle pipeline needs T3 data")
    # units from a corrupt or unusual header must not reach the histogram code: a period of
    # 1e11 TCSPC bins would allocate terabytes, less than one bin divides by zero
    bins = photons.timestamps_unit / photons.nanotimes_unit
    if not (math.isfinite(bins) and 1 <= round(bins) <= MAX_PERIOD_BINS):
        raise QrspecError(f"{name}: laser period / TCSPC bin = {photons.timestamps_unit:.4g} s / "
                          f"{photons.nanotimes_unit:.4g} s = {bins:.4g} bins per period; the "
                          f"pipeline needs 1..{MAX_PERIOD_BINS} (check MeasDesc_GlobalResolution "
                          "and MeasDesc_Resolution)")
    dets = config.detectors
    counts = photons.counts_per_detector
    for d in dets:
        if d >= counts.size or counts[d] == 0:
            raise QrspecError(f"{name}: detector {d} has no photons; active detectors are "
                              f"{photons.detector_ids.tolist()} (set detectors=)")
    ph = photons.select(detectors=list(dets))
    if ph.size < MIN_PHOTONS:
        raise QrspecError(f"{name}: only {ph.size} photons on detectors {list(dets)}; at least "
                          f"{MIN_PHOTONS} are needed for the particle pipeline")
    return ph


def analyze_photons(photons: Photons, config: AnalysisConfig | None = None, *,
                    particle_id: str = "particle", group: str = "", source: str = "",
                    source_sha256: str = "") -> ParticleAnalysis:
    """Run the full pipeline on decoded photons (see :func:`analyze_file`).

    Parameters
    ----------
    photons : Photons
        Decoded T3 photons of one particle.
    config : AnalysisConfig, optional
        Parameters (defaults when None).
    particle_id, group, source, source_sha256 : str
        Identity and provenance recorded in the result.

    Returns
    -------
    ParticleAnalysis

    Raises
    ------
    QrspecError
        The photons cannot be analysed (T2 data, missing detector, too few photons).
    """
    from qrspec.analysis.alignment import align_detectors
    from qrspec.analysis.blinking import analysed_part, measure_blinking
    from qrspec.analysis.bursts import remove_photon_bursts
    from qrspec.analysis.charging import invert_charging
    from qrspec.analysis.detector import (
        afterpulse_background,
        check_dead_time,
        detector_artefacts,
        estimate_detector_afterpulsing,
    )
    from qrspec.analysis.flid import measure_flid
    from qrspec.analysis.g2 import measure_g2
    from qrspec.analysis.levels import find_levels
    from qrspec.analysis.states import measure_states
    from qrspec.analysis.tau_xx import compare_tau_xx_methods
    from qrspec.analysis.trajectory import trajectory
    from qrspec.stats.pairs import photon_pairs

    t_start = time.perf_counter()
    config = config or AnalysisConfig()
    ph = _check_input(photons, config, source or particle_id)
    # photon bursts out first: change points would cut them out as short bright levels
    bursts, ph = remove_photon_bursts(ph, config)
    traj = trajectory(ph, config.bin_width_s)
    alignment = align_detectors(ph, config.detectors)
    levels = find_levels(ph, alignment, config)
    blinking = measure_blinking(levels, config)
    # everything below analyses the part before a bleach (the whole trace when none)
    ph_a, levels_a = analysed_part(ph, levels, blinking)
    ap, ap_why = estimate_detector_afterpulsing(ph_a, config)
    g2 = measure_g2(ph_a, alignment, config, afterpulsing=ap)
    dead, dead_why = check_dead_time(ph_a, g2.single_emitter, config)
    background = afterpulse_background(ph_a, ap, config)
    detector = detector_artefacts(ap, ap_why, background, dead, dead_why, config)
    # same-period photon pairs once per particle; each state takes those of its windows
    pairs = photon_pairs(ph_a, detectors=config.detectors, offsets_ns=alignment.offsets_ns)
    states = measure_states(ph_a, levels_a, alignment, config, pairs, afterpulse=background)
    fl = measure_flid(ph_a, alignment, config)
    tau_xx = compare_tau_xx_methods(ph_a, states, alignment, config)
    charging = invert_charging(ph_a, levels_a, states, alignment, config, pairs,
                               afterpulse=background)
    return ParticleAnalysis(
        particle_id=particle_id, group=group, source=source, source_sha256=source_sha256,
        status="ok", config_json=config.to_json(),
        analysis_s=time.perf_counter() - t_start, bursts=bursts, trajectory=traj,
        alignment=alignment, levels=levels, blinking=blinking, detector=detector, g2=g2,
        states=states, flid=fl, tau_xx=tau_xx, charging=charging)
