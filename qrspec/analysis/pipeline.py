"""The per-particle pipeline.

Reader -> acquisition (detectors, timing mode) -> bursts (found, removed) -> trajectory ->
alignment (decay, offsets, lag zero of the g2, IRF) -> levels (change points, labels from physics)
-> blinking (bleaching, dwell-time laws) -> [the analysed part: everything, or the time before a
bleach] -> detector artefacts (afterpulsing) -> g2 (afterpulse-corrected; the single-emitter
verdict needs the labelled levels) -> dead-time check -> states (decays, lifetimes) -> FLID ->
tau_XX three ways -> charging n_c(t), tau_A(t).

Each stage is a function of its own module returning a frozen dataclass; this module only
calls them in order, skipping those that do not apply (see
:mod:`qrspec.analysis.acquisition`: T2 data without sync events have no decays; one detector
has no g2). :func:`analyze_file` returns a
:class:`~qrspec.analysis.particle.ParticleAnalysis`; it raises
:class:`~qrspec.errors.QrspecError` only when the file cannot be analysed at all (unreadable,
a scan image without ``allow_scan``, a missing detector, too few photons). Anything the data
cannot decide (no neutral period, too few photon pairs, a failed fit, a zero peak the data
cannot find) gives NaN values with a flag, never a silent number.

Adding a stage: write its module (a function returning a frozen dataclass with a ``flags``
field), add a field to ``ParticleAnalysis`` (and its name to ``STAGES``), describe its fields
in :mod:`qrspec.store.schema`, and call it here.
"""

from __future__ import annotations

import logging
import os
import time

from qrspec.analysis.acquisition import MAX_PERIOD_BINS, MIN_PHOTONS
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.particle import ParticleAnalysis
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["analyze_file", "analyze_photons", "MAX_PERIOD_BINS", "MIN_PHOTONS"]

logger = logging.getLogger(__name__)


def analyze_file(path, config: AnalysisConfig | None = None, *, particle_id: str | None = None,
                 group: str = "") -> ParticleAnalysis:
    """Run the full pipeline on one TTTR file.

    Parameters
    ----------
    path : str or Path
        TTTR file of one particle (T3, or T2 with or without sync events).
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
        The file cannot be read or cannot be analysed (a scan image without ``allow_scan``,
        a missing detector, too few photons).
    """
    from qrspec.io import read_tttr
    from qrspec.io.files import sanitize_id, sha256_file

    path = os.fspath(path)
    photons = read_tttr(path)
    pid = particle_id or sanitize_id(os.path.splitext(os.path.basename(path))[0])
    try:
        return analyze_photons(photons, config, particle_id=pid, group=group, source=path,
                               source_sha256=sha256_file(path))
    except QrspecError as exc:  # every refusal names the file (subclasses name their own)
        if type(exc) is not QrspecError or str(exc).startswith(path):
            raise
        raise QrspecError(f"{path}: {exc}") from None


def analyze_photons(photons: Photons, config: AnalysisConfig | None = None, *,
                    particle_id: str = "particle", group: str = "", source: str = "",
                    source_sha256: str = "") -> ParticleAnalysis:
    """Run the full pipeline on decoded photons (see :func:`analyze_file`).

    Parameters
    ----------
    photons : Photons
        Decoded photons of one particle.
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
        The photons cannot be analysed (a scan image without ``allow_scan``, a missing
        detector, too few photons).
    """
    from qrspec.analysis.acquisition import prepare
    from qrspec.analysis.alignment import align_detectors
    from qrspec.analysis.blinking import analysed_part, measure_blinking
    from qrspec.analysis.bursts import remove_photon_bursts
    from qrspec.analysis.charging import invert_charging
    from qrspec.analysis.detector import (
        afterpulse_background,
        check_dead_time,
        detector_artefacts,
        estimate_detector_afterpulsing,
        usable_afterpulsing,
    )
    from qrspec.analysis.flid import measure_flid
    from qrspec.analysis.g2 import measure_g2
    from qrspec.analysis.levels import find_labelled_levels
    from qrspec.analysis.states import measure_states
    from qrspec.analysis.tau_xx import compare_tau_xx_methods
    from qrspec.analysis.trajectory import trajectory
    from qrspec.stats.pairs import photon_pairs

    t_start = time.perf_counter()
    config = config or AnalysisConfig()
    acq, ph = prepare(photons, config, source or particle_id)
    # the stages see the detectors actually analysed; the result records the user's config
    cfg = config.replace(detectors=list(acq.detectors))
    stages: dict = {"acquisition": acq}
    # photon bursts out first: change points would cut them out as short bright levels
    stages["bursts"], ph = remove_photon_bursts(ph, cfg)
    stages["trajectory"] = trajectory(ph, cfg.bin_width_s)
    alignment = stages["alignment"] = align_detectors(ph, acq, cfg)
    # same-period photon pairs once per particle; each level and state takes those of its
    # windows
    pairs = photon_pairs(ph, detectors=cfg.detectors, offsets_ns=alignment.offsets_ns) \
        if acq.hbt and acq.has_nanotimes else None
    levels, labels = find_labelled_levels(ph, alignment, cfg, pairs)
    stages["levels"] = levels
    blinking = stages["blinking"] = measure_blinking(levels, cfg)
    # everything below analyses the part before a bleach (the whole trace when none)
    ph, levels = analysed_part(ph, levels, blinking)
    if blinking.trimmed and pairs is not None:  # the pairs of the analysed part only
        pairs = photon_pairs(ph, detectors=cfg.detectors, offsets_ns=alignment.offsets_ns)
    ap, ap_why = estimate_detector_afterpulsing(ph, cfg)
    single = False
    if acq.hbt:
        stages["g2"] = measure_g2(ph, alignment, cfg, labels=labels,
                                  afterpulsing=usable_afterpulsing(ap))
        single = stages["g2"].single_emitter
    dead, dead_why = check_dead_time(ph, single, cfg)
    background = afterpulse_background(ph, ap, cfg) if acq.has_nanotimes else None
    stages["detector"] = detector_artefacts(ap, ap_why, background, dead, dead_why, cfg)
    if acq.has_nanotimes:
        states = stages["states"] = measure_states(ph, levels, alignment, cfg, pairs,
                                                   afterpulse=background)
        stages["flid"] = measure_flid(ph, alignment, cfg)
        if acq.hbt:
            stages["tau_xx"] = compare_tau_xx_methods(ph, states, alignment, cfg)
            stages["charging"] = invert_charging(ph, levels, states, alignment, cfg, pairs,
                                                 afterpulse=background)
    return ParticleAnalysis(
        particle_id=particle_id, group=group, source=source, source_sha256=source_sha256,
        status="ok", config_json=config.to_json(),
        analysis_s=time.perf_counter() - t_start, **stages)
