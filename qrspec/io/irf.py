"""Measured instrument response (IRF) input.

Either a TTTR file of scattered laser light, or a histogram as text or ``.npy``.

:func:`read_irf` reads and validates; :func:`qrspec.stats.decay.irf_histogram` puts the IRF on
a decay's aligned axis (the same offsets and bins as the decay), ready for
:func:`qrspec.fitting.irf.normalize_irf` and ``fit_decay(irf=...)``.

Formats
-------
* TTTR (any file :func:`qrspec.io.read_tttr` reads, T3): one nanotime histogram per detector
  on the raw TCSPC axis; aligned later with each detector's decay offset, so a decay and its
  IRF from the same set-up share the axis exactly.
* Text (``.txt``, ``.csv``, ``.dat``, ...): one column (counts; ``bin_ns`` required) or two
  columns ``time_ns, counts`` (uniformly spaced; the time is a bin's left edge), separated by
  white space, commas, semicolons or tabs; ``#`` starts a comment; one header line of
  non-numbers is skipped. The time axis is the decays' aligned axis (that of the first
  detector's raw nanotimes).
* ``.npy``: a 1-D array (counts; ``bin_ns`` required) or an ``(n, 2)`` array
  ``[time_ns, counts]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrspec.errors import QrspecError
from qrspec.validate import detector_list, positive_float

__all__ = ["IRF", "read_irf"]

_TTTR_SUFFIXES = {".ptu", ".pt3", ".ht3", ".t3r", ".pt2", ".ht2", ".phu"}
_MIN_BINS = 3


@dataclass(frozen=True, eq=False)
class IRF:
    """A measured IRF histogram (background not subtracted).

    Attributes
    ----------
    counts : ndarray of float64, shape (n_rows, n_bins)
        TTTR: one row per detector on the raw TCSPC axis; text/npy: one row.
    start_ns : float
        Left edge of bin 0 (0 for TTTR).
    bin_ns : float
        Bin width.
    detectors : tuple of int or None
        TTTR: the detector of each row; text/npy: None (one IRF for every detector).
    kind : str
        ``"tttr"``, ``"text"`` or ``"npy"``.
    source : str
        The file.
    period_ns : float
        TTTR: the file's laser period; NaN otherwise.
    timestamps_unit : float
        TTTR: seconds per tick (to check the decay's period); NaN otherwise.
    """

    counts: np.ndarray
    start_ns: float
    bin_ns: float
    detectors: tuple | None
    kind: str
    source: str
    period_ns: float = math.nan
    timestamps_unit: float = math.nan

    @property
    def edges_ns(self) -> np.ndarray:
        """Bin edges in ns, shape (n_bins + 1,)."""
        return self.start_ns + self.bin_ns * np.arange(self.counts.shape[1] + 1)

    @property
    def n_photons(self) -> float:
        """Total counts."""
        return float(self.counts.sum())


def read_irf(path, *, bin_ns=None, detectors=None) -> IRF:
    """Read a measured IRF (TTTR file, text or ``.npy`` histogram; module docstring).

    Parameters
    ----------
    path : str or Path
        The file.
    bin_ns : float, optional
        Bin width of a one-column histogram (required there; ignored otherwise).
    detectors : sequence of int, optional
        TTTR only: detectors to keep (default: every detector with photons); each must hold
        photons.

    Returns
    -------
    IRF
    """
    p = Path(path)
    if not p.is_file():
        raise QrspecError(f"{p}: IRF file not found")
    suffix = p.suffix.lower()
    if suffix in _TTTR_SUFFIXES:
        return _read_tttr(p, detectors)
    if detectors is not None:
        raise QrspecError(f"{p}: detectors={detectors!r} applies to TTTR IRF files only")
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise QrspecError(f"{p}: cannot read the IRF as .npy ({exc})") from None
        if not np.issubdtype(arr.dtype, np.number):
            raise QrspecError(f"{p}: IRF array dtype={arr.dtype} must be numeric")
        kind = "npy"
    else:
        arr = _read_text(p)
        kind = "text"
    arr = np.asarray(arr, np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 1:
        if bin_ns is None:
            raise QrspecError(f"{p}: a one-column IRF histogram needs bin_ns= (its bin width)")
        _check_counts(p, arr)
        return IRF(arr[None, :].copy(), 0.0, positive_float("bin_ns", bin_ns), None, kind,
                   str(p))
    if not (arr.ndim == 2 and arr.shape[1] == 2):
        raise QrspecError(f"{p}: IRF array shape={arr.shape} must be (n,) counts or (n, 2) "
                          "time_ns, counts")
    times, counts = arr[:, 0], arr[:, 1]
    _check_counts(p, counts)
    if not np.all(np.isfinite(times)):
        raise QrspecError(f"{p}: IRF time_ns column holds NaN or inf")
    d = np.diff(times)
    width = float(d.mean())
    if not width > 0 or np.abs(d - width).max() > 1e-6 * width:
        raise QrspecError(f"{p}: IRF time_ns must increase in equal steps (got steps "
                          f"{d.min():.6g}..{d.max():.6g} ns)")
    return IRF(counts[None, :].copy(), float(times[0]), width, None, kind, str(p))


def _check_counts(p: Path, counts: np.ndarray) -> None:
    if counts.size < _MIN_BINS:
        raise QrspecError(f"{p}: IRF histogram has {counts.size} bins; at least {_MIN_BINS} "
                          "are needed")
    if not np.all(np.isfinite(counts)):
        raise QrspecError(f"{p}: IRF counts hold {int((~np.isfinite(counts)).sum())} NaN or "
                          "inf values")
    if counts.min() < 0:
        raise QrspecError(f"{p}: IRF counts must be >= 0 (found {counts.min():.6g})")
    if not counts.sum() > 0:
        raise QrspecError(f"{p}: IRF histogram is empty (all counts 0)")


def _read_text(p: Path) -> np.ndarray:
    try:
        text = p.read_text(errors="strict")
    except UnicodeDecodeError:
        raise QrspecError(f"{p}: IRF text file is not text (undecodable bytes); TTTR files "
                          f"need a TTTR suffix ({', '.join(sorted(_TTTR_SUFFIXES))})") from None
    except OSError as exc:
        raise QrspecError(f"{p}: cannot read the IRF ({exc.strerror})") from None
    rows = []
    width = None
    for i, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").replace(";", " ").split()
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            if not rows and i == _first_content_line(text):
                continue  # one header line
            raise QrspecError(f"{p}: line {i}: {line[:40]!r} is not numeric") from None
        if width is None:
            width = len(vals)
            if width not in (1, 2):
                raise QrspecError(f"{p}: line {i} has {width} columns; an IRF has 1 (counts) "
                                  "or 2 (time_ns, counts)")
        elif len(vals) != width:
            raise QrspecError(f"{p}: line {i} has {len(vals)} columns, the first data line "
                              f"{width}")
        rows.append(vals)
    if not rows:
        raise QrspecError(f"{p}: IRF file holds no data")
    arr = np.asarray(rows, np.float64)
    return arr[:, 0] if width == 1 else arr


def _first_content_line(text: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if line.split("#", 1)[0].strip():
            return i
    return 0


def _read_tttr(p: Path, detectors) -> IRF:
    from qrspec.io import read_tttr

    ph = read_tttr(p)
    if not ph.is_t3:
        raise QrspecError(f"{p}: an IRF TTTR file must be T3 (nanotimes); this is T2 data")
    counts_per_det = ph.counts_per_detector
    present = [int(d) for d in np.flatnonzero(counts_per_det)]
    if not present:
        raise QrspecError(f"{p}: IRF file holds no photons")
    dets = detector_list("detectors", detectors)
    if dets is None:
        dets = present
    missing = [d for d in dets if d not in present]
    if missing:
        raise QrspecError(f"{p}: IRF detectors={detectors!r}: detector "
                          f"{', '.join(map(str, missing))} has no photons; detectors with "
                          f"photons: {present}")
    n = int(ph.nanotimes.max()) + 1
    counts = np.zeros((len(dets), n))
    for i, d in enumerate(dets):
        counts[i] = np.bincount(ph.nanotimes[ph.detectors == d], minlength=n)
    return IRF(counts, 0.0, ph.nanotimes_unit * 1e9, tuple(dets), "tttr", str(p),
               ph.sync_period_s * 1e9, ph.timestamps_unit)
