"""The :class:`Segments` result: contiguous time segments of one photon trace.

Every segment is a half-open time window ``[start_s, stop_s)`` and a half-open photon index range
``[start_index, stop_index)`` into the time-sorted photon arrays it was computed from. Segments
tile the trace without gaps: ``stop_s[j] == start_s[j + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["Segments"]

UNASSIGNED = -1


@dataclass(frozen=True, eq=False)
class Segments:
    """Contiguous segments of a photon trace, with their level and state label.

    Attributes
    ----------
    start_s, stop_s : ndarray of float64
        Half-open time window of each segment in seconds (same clock as the input times).
    start_index, stop_index : ndarray of int64
        Half-open photon index range of each segment in the time-sorted input.
    n_photons : ndarray of int64
        Photons in the segment (``stop_index - start_index``).
    level : ndarray of int64
        Intensity level (0 = dimmest), ``-1`` before clustering.
    label : ndarray of str
        State label (``"neutral"``, ``"charged"``, ``"trap"``, ``"off"``, ``"unclassified"``),
        ``""`` before labelling.
    intensity_cps : ndarray of float64
        ``n_photons / (stop_s - start_s)``.
    """

    start_s: np.ndarray
    stop_s: np.ndarray
    start_index: np.ndarray
    stop_index: np.ndarray
    n_photons: np.ndarray
    level: np.ndarray
    label: np.ndarray
    intensity_cps: np.ndarray

    @classmethod
    def from_boundaries(cls, boundaries_s, boundaries_index, level=None, label=None) -> Segments:
        """Build from ``m + 1`` boundary times and photon indices (first start .. last stop)."""
        b_s = np.asarray(boundaries_s, dtype=np.float64)
        b_i = np.asarray(boundaries_index, dtype=np.int64)
        if b_s.ndim != 1 or b_s.shape != b_i.shape or b_s.size < 2:
            raise QrspecError(
                f"boundaries_s shape {b_s.shape} and boundaries_index shape {b_i.shape} must be "
                "equal, 1-D and hold at least 2 values"
            )
        if np.any(np.diff(b_s) <= 0) or np.any(np.diff(b_i) < 0):
            raise QrspecError("boundaries_s must increase strictly and boundaries_index must not "
                              "decrease")
        m = b_s.size - 1
        n = np.diff(b_i)
        dur = np.diff(b_s)
        return cls(
            start_s=b_s[:-1].copy(),
            stop_s=b_s[1:].copy(),
            start_index=b_i[:-1].copy(),
            stop_index=b_i[1:].copy(),
            n_photons=n,
            level=np.full(m, UNASSIGNED, np.int64) if level is None else np.asarray(level,
                                                                                    np.int64),
            label=np.full(m, "", dtype="U12") if label is None else np.asarray(label, "U12"),
            intensity_cps=n / dur,
        )

    @classmethod
    def empty(cls) -> Segments:
        """No segments."""
        f = np.zeros(0, np.float64)
        i = np.zeros(0, np.int64)
        return cls(f, f.copy(), i, i.copy(), i.copy(), i.copy(), np.zeros(0, "U12"), f.copy())

    # ---------------------------------------------------------------- properties
    @property
    def size(self) -> int:
        """Number of segments."""
        return int(self.start_s.size)

    def __len__(self) -> int:
        return self.size

    @property
    def duration_s(self) -> np.ndarray:
        """Duration of each segment in seconds."""
        return self.stop_s - self.start_s

    @property
    def n_levels(self) -> int:
        """Number of distinct assigned levels (0 before clustering)."""
        lv = self.level[self.level >= 0]
        return int(lv.max()) + 1 if lv.size else 0

    def with_levels(self, level) -> Segments:
        """Copy with a new ``level`` array."""
        level = np.asarray(level, dtype=np.int64)
        if level.shape != self.start_s.shape:
            raise QrspecError(f"level shape {level.shape} != number of segments ({self.size},)")
        return replace(self, level=level)

    def with_labels(self, label) -> Segments:
        """Copy with a new ``label`` array."""
        label = np.asarray(label, dtype="U12")
        if label.shape != self.start_s.shape:
            raise QrspecError(f"label shape {label.shape} != number of segments ({self.size},)")
        return replace(self, label=label)

    # ---------------------------------------------------------------- selection
    def mask(self, *, label=None, level=None) -> np.ndarray:
        """Boolean mask of the segments with ``label`` (str or sequence) and/or ``level``."""
        keep = np.ones(self.size, bool)
        if label is not None:
            labels = [label] if isinstance(label, str) else list(label)
            keep &= np.isin(self.label, labels)
        if level is not None:
            keep &= np.isin(self.level, np.atleast_1d(np.asarray(level, np.int64)))
        return keep

    def windows(self, *, label=None, level=None, as_index=False) -> np.ndarray:
        """Merged contiguous windows of the selected segments.

        Parameters
        ----------
        label : str or sequence of str, optional
            Keep segments with this label (e.g. ``"charged"``).
        level : int or sequence of int, optional
            Keep segments of these levels.
        as_index : bool
            Return half-open photon index ranges instead of times in seconds.

        Returns
        -------
        ndarray, shape (m, 2)
            ``(start_s, stop_s)`` (float64) or ``(start_index, stop_index)`` (int64) rows;
            neighbouring selected segments are merged into one window.
        """
        keep = self.mask(label=label, level=level)
        if as_index:
            lo, hi, dtype = self.start_index, self.stop_index, np.int64
        else:
            lo, hi, dtype = self.start_s, self.stop_s, np.float64
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return np.zeros((0, 2), dtype)
        # a new window starts where the previous kept segment is not the direct predecessor
        new = np.ones(idx.size, bool)
        new[1:] = np.diff(idx) > 1
        starts = idx[new]
        ends = idx[np.concatenate([new[1:], [True]])]
        return np.stack([lo[starts], hi[ends]], axis=1).astype(dtype)

    def dwell_times_s(self, level: int | None = None, label: str | None = None) -> np.ndarray:
        """Durations of the uninterrupted stays in a level or label (runs of segments merged)."""
        if (level is None) == (label is None):
            raise QrspecError(f"give exactly one of level={level!r} and label={label!r}")
        w = self.windows(level=level) if level is not None else self.windows(label=label)
        return w[:, 1] - w[:, 0]

    def __repr__(self) -> str:
        return f"Segments({self.size} segments, n_levels={self.n_levels})"
