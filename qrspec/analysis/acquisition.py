"""Stage: what the file recorded and what the pipeline analyses (the first stage).

:func:`prepare` checks the decoded photons, chooses the detectors (the user's, or the two with
most photons: :func:`qrspec.stats.hbt.choose_detectors`), turns T2 data with recorded sync
events into T3-like photons (nanotimes from the last sync:
:meth:`qrspec.photons.Photons.with_sync_nanotimes`), and says which stages apply:

* ``timing == "t3"`` or ``"t2_sync"``: everything (nanotimes exist);
* ``timing == "t2"`` (T2 without sync events): trajectory, levels and g2 (a pulsed comb found
  in the correlation, or a CW antibunching dip); decays, lifetimes, the gated g2, FLID, tau_XX
  and charging are *not applicable* (flagged here; their results are None);
* one detector: trajectory, levels and decays; g2, tau_XX and charging are not applicable.

Scan images (FLIM images, line scans: the header says ``Measurement_SubMode = 3`` / an image
header) are refused unless ``allow_scan`` is set, because qrspec analyses single-particle point
measurements: the photons of a whole image are not one particle, and its numbers would enter
the group statistics. Markers in a point measurement (e.g. external triggers) are ignored with
a flag.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from qrspec.analysis.config import AnalysisConfig
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["Acquisition", "prepare", "MAX_PERIOD_BINS", "MIN_PHOTONS", "scan_evidence"]

logger = logging.getLogger(__name__)

MAX_PERIOD_BINS = 1 << 22  # TCSPC bins per laser period (10 MHz, 16 ps: 6250; 100 kHz, 4 ps:
# 2.5e6); above this every per-period histogram costs > 32 MB per row
MIN_PHOTONS = 1000  # fewer photons on the analysed detectors: nothing of the pipeline is
# meaningful (a change point needs ~100 photons per segment, a lifetime fit 200, g2 pairs)

NO_NANOTIMES = ("T2 data without sync events (no nanotimes): decays, lifetimes, gated g2, "
                "FLID, tau_XX and charging not applicable")
ONE_DETECTOR = ("one detector ({}): g2, biexciton lifetimes, tau_XX and charging not "
                "applicable")


@dataclass(frozen=True, eq=False)
class Acquisition:
    """The recording and the choices made before the analysis.

    Attributes
    ----------
    record_type : str
        Record type of the file (e.g. ``"HydraHarp2T3"``).
    timing : str
        ``"t3"``; ``"t2_sync"`` (T2 with sync events: nanotimes from the last sync); ``"t2"``
        (T2 without sync: no nanotimes).
    detectors : tuple of int
        Analysed detectors (ascending; two: the HBT pair, lag = t(second) - t(first)).
    detector_source : str
        ``"user"`` (``AnalysisConfig.detectors``) or ``"most_photons"``.
    n_photons_per_detector : tuple of int
        Photons on each analysed detector.
    left_out_detectors : tuple of int
        Detectors with photons that are not analysed.
    n_photons_left_out : int
        Photons on them.
    n_markers : int
        Marker records in the file (ignored by the analysis).
    marker_inputs : str
        ``"input: records"`` per marker input, e.g. ``"1: 1280, 2: 1280"`` ("" without).
    scan : str
        Why the file looks like a scan image ("" for a point measurement).
    sync_period_ns : float
        Laser (sync) period of the nanotimes (NaN for T2 without sync).
    tcspc_bin_ns : float
        Nanotime bin (NaN for T2 without sync).
    flags : tuple of str
        Stages that do not apply, markers, conversions.
    """

    record_type: str
    timing: str
    detectors: tuple[int, ...]
    detector_source: str
    n_photons_per_detector: tuple[int, ...]
    left_out_detectors: tuple[int, ...]
    n_photons_left_out: int
    n_markers: int
    marker_inputs: str
    scan: str
    sync_period_ns: float
    tcspc_bin_ns: float
    flags: tuple[str, ...]

    @property
    def has_nanotimes(self) -> bool:
        """Decays, lifetimes, gated g2 and FLID apply."""
        return self.timing != "t2"

    @property
    def hbt(self) -> bool:
        """Two detectors: g2 applies."""
        return len(self.detectors) == 2


def scan_evidence(header: dict) -> str:
    """Why a header describes a scan image ("" for a point measurement).

    PTU: ``Measurement_SubMode == 3`` (image) or ``ImgHdr_Dimensions >= 2``; legacy PT3 / HT3:
    ``SubMode == 3`` or an imaging header (``ImgHdrSize > 0``).
    """
    def num(key):
        v = header.get(key)
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    why = []
    for key in ("Measurement_SubMode", "SubMode"):
        if num(key) == 3:
            why.append(f"{key}=3 (image)")
    if num("ImgHdr_Dimensions") >= 2:
        why.append(f"ImgHdr_Dimensions={int(num('ImgHdr_Dimensions'))}")
    if num("ImgHdrSize") > 0:
        why.append(f"ImgHdrSize={int(num('ImgHdrSize'))}")
    if why and num("ImgHdr_PixX") > 0 and num("ImgHdr_PixY") > 0:
        why.append(f"{int(num('ImgHdr_PixX'))} x {int(num('ImgHdr_PixY'))} pixels")
    return ", ".join(why)


def _check_units(photons: Photons, name: str) -> None:
    # units from a corrupt or unusual header must not reach the histogram code: a period of
    # 1e11 TCSPC bins would allocate terabytes, less than one bin divides by zero
    bins = photons.timestamps_unit / photons.nanotimes_unit
    if not (math.isfinite(bins) and 1 <= round(bins) <= MAX_PERIOD_BINS):
        raise QrspecError(f"{name}: laser period / TCSPC bin = {photons.timestamps_unit:.4g} s / "
                          f"{photons.nanotimes_unit:.4g} s = {bins:.4g} bins per period; the "
                          f"pipeline needs 1..{MAX_PERIOD_BINS} (check MeasDesc_GlobalResolution "
                          "and MeasDesc_Resolution)")


def prepare(photons: Photons, config: AnalysisConfig, name: str
            ) -> tuple[Acquisition, Photons]:
    """Check the photons, choose the detectors and the timing mode.

    Parameters
    ----------
    photons : Photons
        Decoded photons of one particle (T3, or T2 with or without sync events).
    config : AnalysisConfig
        Uses ``detectors`` and ``allow_scan``.
    name : str
        File (or particle) named in errors.

    Returns
    -------
    acquisition : Acquisition
    photons : Photons
        The photons of the analysed detectors (T2 with sync: with nanotimes).

    Raises
    ------
    QrspecError
        A scan image without ``allow_scan``, no photons or a missing detector, fewer than
        :data:`MIN_PHOTONS` photons on the analysed detectors, or implausible time units.
    """
    from qrspec.stats.hbt import choose_detectors

    flags: list[str] = []  # warnings: logged as such
    scan = scan_evidence(photons.header)
    n_markers = int(photons.markers.size)
    marker_inputs = ", ".join(f"{k}: {v}" for k, v in photons.markers.counts_per_bit().items())
    if scan:
        if not config.allow_scan:
            raise QrspecError(
                f"{name}: a scan image ({scan}; {n_markers} line/frame marker records): qrspec "
                "analyses single-particle point measurements; set allow_scan (--allow-scan) "
                "to analyse all its photons as one particle anyway")
        flags.append(f"scan image ({scan}) analysed as one particle (allow_scan): values "
                     "mix every pixel")
    elif n_markers:
        flags.append(f"{n_markers} marker records (inputs {marker_inputs}) ignored: qrspec "
                     "analyses single-particle point measurements")
    if photons.size == 0:
        raise QrspecError(f"{name}: the file holds no photons")
    timing = "t3"
    if not photons.is_t3:
        sync = photons.sync_timestamps
        if sync is not None and sync.size >= 2:
            known = set(photons.warnings)
            photons = photons.with_sync_nanotimes()
            timing = "t2_sync"
            # photons dropped (before the first sync, after a missing one), irregular sync
            # intervals, a header sync divider other than 1
            flags += [f"T2 sync nanotimes: {w}" for w in photons.warnings if w not in known]
        else:
            timing = "t2"
    try:
        choice = choose_detectors(photons, config.detectors)
    except QrspecError as exc:
        raise QrspecError(f"{name}: {exc}") from None
    dets = choice.detectors
    ph = photons.select(detectors=list(dets)) if choice.left_out else photons
    if ph.size < MIN_PHOTONS:
        raise QrspecError(f"{name}: only {ph.size} photons on detectors {list(dets)}; at least "
                          f"{MIN_PHOTONS} are needed for the particle pipeline")
    if timing != "t2":
        _check_units(ph, name)
    if choice.left_out:
        flags.append(f"detectors {', '.join(map(str, choice.left_out))} left out "
                     f"({choice.n_left_out} photons); analysed: {', '.join(map(str, dets))}")
    for f in flags:
        logger.warning("%s: %s", name, f)
    if timing == "t2":
        flags.append(NO_NANOTIMES)
    if len(dets) == 1:
        flags.append(ONE_DETECTOR.format(dets[0]))
    acq = Acquisition(
        record_type=str(photons.record_type), timing=timing, detectors=tuple(dets),
        detector_source=choice.source, n_photons_per_detector=tuple(choice.n_photons),
        left_out_detectors=tuple(choice.left_out), n_photons_left_out=int(choice.n_left_out),
        n_markers=n_markers, marker_inputs=marker_inputs, scan=scan,
        sync_period_ns=ph.sync_period_s * 1e9 if timing != "t2" else math.nan,
        tcspc_bin_ns=ph.nanotimes_unit * 1e9 if timing != "t2" else math.nan,
        flags=tuple(flags))
    return acq, ph
