"""Photon-by-photon change-point analysis (Watkins & Yang, J. Phys. Chem. B 109, 617 (2005)).

For a range of photons ``t_0 < ... < t_n`` with ``V_k = (t_k - t_0)/(t_n - t_0)`` the raw
generalised likelihood ratio of a rate change at photon k is
``L_k = -2k ln V_k - 2(n-k) ln(1 - V_k)``. Under a constant rate ``V_k ~ Beta(k, n-k)`` so
``E ln V_k = -sum_{j=k}^{n-1} 1/j`` and ``Var ln V_k = sum_{j=k}^{n-1} 1/j**2``; Henderson's
standardisation ``Lambda_k = (L_k - E L_k)/sd(L_k) + ln(4k(n-k)/n**2)/2`` removes the bias of the
raw GLR towards the range ends. A change is accepted when ``max_k Lambda_k`` exceeds the
Monte-Carlo critical value ``c_alpha(n)`` (``scripts/make_cpa_table.py``).

Algorithm (linear in the photon count):

1. Scan: windows of at most ``window_photons`` photons are searched by recursive binary
   segmentation; after a change is accepted the two sides outside its confidence region are
   searched again. Window ``j + 1`` starts ``overlap_photons`` (default half a window) before
   the end of window ``j``. A change near the end of a window has few photons on its right
   there, so its test has little power; with half-window overlaps every photon lies in the
   middle half of some window. (An overlap of 200 photons, the old default, lost changes within
   ~200 photons of a seam: both windows saw them with <= 200 photons on one side; issue 15.)
   A change found in two windows is kept once (the copy with the larger statistic).
2. Refinement: every change point is re-tested between its two neighbours (at most
   ``window_photons/2`` photons on each side, the whole range scanned): insignificant ones are
   removed, the others get their final location and confidence region. This is the sequential
   check of the reference code.
3. Beside search: the ranges between each change and its neighbours (at most
   ``window_photons`` photons on each side) are searched again by binary segmentation, then
   step 2 is repeated, until nothing changes. These ranges are anchored at changes, not at
   window seams: a short burst held whole by one window is often missed by the single-change
   test there (two changes), and when the next window starts exactly at the burst only its
   end is found; its start is then found here. The extra tests happen only next to accepted
   changes, so the false-positive rate of a stationary trace hardly moves.
4. The confidence region of a change at ``khat`` is the contiguous set of photons around
   ``khat`` with ``P_k > P_khat - c``, where ``P_k = L_k + 2[k ln k + (n-k) ln(n-k) - n ln n]`` is
   twice the log profile-likelihood ratio of a change at photon k (``L_k`` alone omits the
   k-dependent terms and is not a likelihood in k); ``c`` comes from a Monte-Carlo table in
   the estimated rate ratio of the two sides, calibrated so that the region contains the true
   change time with the requested probability.

Measured (``scripts/validate_levels.py``): false changes per ``window_photons`` photons of a
stationary Poisson stream below ``alpha``; no loss at window seams; recall of simulated rod
transitions 99.8 % for >= 25 % intensity changes with >= 400 photons on each side. Limits: a
range never exceeds the critical-value table (8192 photons), so a step of a few % between long
states (e.g. 7 % between neighbouring charge states of a staircase) is often missed: it needs
~``(5 / ln r)**2`` photons on each side (extend ``scripts/make_cpa_table.py`` to larger n to
reach it); a short burst (two changes close together) is harder than a step. The
location of a weak change scatters by ~``(ln r / (r - 1 - ln r))**2`` photons (r: rate ratio),
with heavy tails; at r = 1.25 and 400 photons on each side even a test that knew the location
would detect the change only 94 % of the time (one-sided z = 3.16 at alpha = 0.05), so no
detector reaches 98 % there.

The statistic was checked against the authors' ``FindCP.c`` and against an independent
digamma/trigamma evaluation (tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qrspec.errors import QrspecError
from qrspec.levels.segments import Segments

__all__ = ["ChangePoints", "find_change_points", "available_alphas", "available_confidences"]

logger = logging.getLogger(__name__)

MIN_PHOTONS = 3  # smallest range tested (reference code: 3 photons)


@dataclass(frozen=True, eq=False)
class ChangePoints:
    """Change points of one photon trace.

    Attributes
    ----------
    index : ndarray of int64
        Index (in the time-sorted input) of the first photon after each change.
    time_s : ndarray of float64
        Change time: arrival time of photon ``index``.
    ci_start_s, ci_stop_s : ndarray of float64
        Confidence region of each change time (``confidence`` level).
    ci_start_index, ci_stop_index : ndarray of int64
        The same region as photon indices.
    statistic : ndarray of float64
        Henderson statistic ``max Lambda`` of the accepted test.
    rate_ratio : ndarray of float64
        Estimated intensity ratio (>= 1) of the two sides in the final test.
    boundaries_s : ndarray of float64
        Segment boundaries: trace start, change times, trace stop (``size + 2`` values).
    boundaries_index : ndarray of int64
        The same as photon indices (0, change indices, number of photons).
    n_photons : int
        Photons analysed.
    alpha : float
        False-positive probability per test.
    confidence : float
        Coverage probability of the confidence regions.
    """

    index: np.ndarray
    time_s: np.ndarray
    ci_start_s: np.ndarray
    ci_stop_s: np.ndarray
    ci_start_index: np.ndarray
    ci_stop_index: np.ndarray
    statistic: np.ndarray
    rate_ratio: np.ndarray
    boundaries_s: np.ndarray
    boundaries_index: np.ndarray
    n_photons: int
    alpha: float
    confidence: float

    @property
    def size(self) -> int:
        """Number of change points."""
        return int(self.index.size)

    def __len__(self) -> int:
        return self.size

    def segments(self) -> Segments:
        """The segments between change points (level ``-1``, label ``""``)."""
        if self.boundaries_s.size < 2:
            return Segments.empty()
        return Segments.from_boundaries(self.boundaries_s, self.boundaries_index)

    def __repr__(self) -> str:
        return (f"ChangePoints({self.size} change points in {self.n_photons} photons, "
                f"alpha={self.alpha}, confidence={self.confidence})")


# ------------------------------------------------------------------------------- tables
@lru_cache(maxsize=1)
def _table():
    from qrspec.levels import _cpa_table

    return _cpa_table


def available_alphas() -> tuple[float, ...]:
    """False-positive rates with tabulated critical values."""
    return tuple(sorted(_table().CRIT))


def available_confidences() -> tuple[float, ...]:
    """Confidence levels with tabulated region thresholds."""
    return tuple(sorted(_table().C_CI))


def max_window_photons() -> int:
    """Largest range (in intervals) covered by the critical-value table."""
    return int(_table().N_GRID[-1])


@lru_cache(maxsize=8)
def _dense_crit(alpha: float) -> np.ndarray:
    """Critical value for every n = 0..N_MAX (interpolated in ln n; +inf for n < 2)."""
    tab = _table()
    grid = np.asarray(tab.N_GRID, np.float64)
    vals = np.asarray(tab.CRIT[alpha], np.float64)
    n = np.arange(2, int(grid[-1]) + 1, dtype=np.float64)
    dense = np.interp(np.log(n), np.log(grid), vals)
    return np.concatenate([[np.inf, np.inf], dense])


@lru_cache(maxsize=8)
def _ci_table(confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tab = _table()
    return np.asarray(tab.LN_R_GRID, np.float64), np.asarray(tab.C_CI[confidence], np.float64)


@lru_cache(maxsize=2)
def _harmonics(n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    j = np.arange(1, n_max + 1, dtype=np.float64)
    h1 = np.concatenate([[0.0], np.cumsum(1.0 / j)])
    h2 = np.concatenate([[0.0], np.cumsum(1.0 / j**2)])
    jlnj = np.concatenate([[0.0], j * np.log(j)])
    return h1, h2, jlnj


def _match_level(value, available, name):
    for a in available:
        if abs(float(value) - a) < 1e-9:
            return a
    raise QrspecError(f"{name}={value!r} is not tabulated; available: {list(available)} "
                      "(extend scripts/make_cpa_table.py)")


# ------------------------------------------------------------------------------- input
def prepare_times(times, timestamps_unit=None) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Validate arrival times; return ``(x, boundary_s, unit_s)``.

    ``x`` is strictly increasing float64 (ticks relative to the first photon for integer input,
    seconds for float input, where ``unit_s`` is None). ``boundary_s[i]`` is the time in seconds
    used for a segment boundary at photon i (the start of its tick for integer input); it is
    indexable and ``np.asarray(boundary_s)`` gives all of them. Tied photons (same tick, e.g. a
    biexciton cascade caught by both detectors in one laser period) are spread evenly inside
    their tick; tied float times are spread over less than half the smallest positive gap.
    """
    from qrspec.photons import Photons

    if isinstance(times, Photons):
        if timestamps_unit is not None:
            raise QrspecError(f"timestamps_unit={timestamps_unit!r} must be None for Photons "
                              "input (it carries its own unit)")
        return prepare_times(times.timestamps, times.timestamps_unit)
    t = np.asarray(times)
    if t.ndim != 1:
        raise QrspecError(f"times must be 1-D, got shape {t.shape}")
    if np.issubdtype(t.dtype, np.integer):
        if timestamps_unit is None or not float(timestamps_unit) > 0:
            raise QrspecError(f"timestamps_unit={timestamps_unit!r} must be > 0 (seconds per "
                              "tick) for integer times")
        unit = float(timestamps_unit)
        t = t.astype(np.int64, copy=False)
        from qrspec.levels import _kernels

        x, ok = _kernels.spread_ticks(t)
        if not ok:
            raise QrspecError("times must be sorted (non-decreasing)")
        return x, _TickSeconds(t, unit), unit
    if np.issubdtype(t.dtype, np.floating):
        if timestamps_unit is not None:
            raise QrspecError(f"timestamps_unit={timestamps_unit!r} must be None for float "
                              "times in seconds")
        t = t.astype(np.float64, copy=False)
        if not np.all(np.isfinite(t)):
            raise QrspecError("times must be finite")
        d = np.diff(t)
        if np.any(d < 0):
            raise QrspecError("times must be sorted (non-decreasing)")
        x = t - t[0] if t.size else t.copy()
        if np.any(d == 0):
            pos = d[d > 0]
            eps = 0.5 * (pos.min() if pos.size else 1.0)
            x = x + eps * _tie_offsets(t)
        return x, t.copy(), None
    raise QrspecError(f"times dtype={t.dtype} must be integer ticks or float seconds")


class _TickSeconds:
    """Seconds of integer ticks, converted only where indexed (avoids a full float copy)."""

    def __init__(self, ticks: np.ndarray, unit: float):
        self.ticks = ticks
        self.unit = unit

    def __getitem__(self, idx):
        return self.ticks[idx] * self.unit

    def __len__(self) -> int:
        return int(self.ticks.size)

    def __array__(self, dtype=None, copy=None):
        out = self.ticks * self.unit
        return out if dtype is None else out.astype(dtype)


def _tie_offsets(t: np.ndarray) -> np.ndarray:
    """Offset in [0, 1) of each photon inside its run of equal values: (j + 0.5)/m."""
    n = t.size
    if n == 0:
        return np.zeros(0)
    new = np.ones(n, bool)
    new[1:] = t[1:] != t[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, n))
    run = np.repeat(np.arange(starts.size), lengths)
    j = np.arange(n) - starts[run]
    return (j + 0.5) / lengths[run]


def _distinct(idx, lo, hi, lam) -> np.ndarray:
    """Mask keeping one of each group of sorted changes with overlapping confidence regions.

    Overlapping scan windows find a change near their seam twice, at the same photon or a few
    photons apart; the copy with the larger statistic is kept (the refinement re-locates it).
    """
    keep = np.ones(idx.size, bool)
    last = -1
    for j in range(idx.size):
        if last >= 0 and (idx[j] == idx[last] or lo[j] < hi[last]):
            if lam[j] > lam[last]:
                keep[last] = False
                last = j
            else:
                keep[j] = False
            continue
        last = j
    return keep


# ------------------------------------------------------------------------------- API
def find_change_points(
    times,
    *,
    timestamps_unit: float | None = None,
    alpha: float = 0.05,
    confidence: float = 0.69,
    window_photons: int = 4096,
    overlap_photons: int | None = None,
    refine: bool = True,
    max_sweeps: int = 10,
) -> ChangePoints:
    """Detect intensity change points photon by photon (Watkins & Yang 2005).

    Parameters
    ----------
    times : Photons, ndarray of int64 ticks, or ndarray of float64 seconds
        Sorted arrival times of all photons (merge the detectors first). ``Photons`` use their
        ``timestamps`` and ``timestamps_unit``.
    timestamps_unit : float, optional
        Seconds per tick; required for integer times, must be None otherwise.
    alpha : float
        False-positive probability of each test (tabulated: see :func:`available_alphas`;
        0.01, 0.05, 0.1). A constant trace that fits in one window gets a false change with
        probability ``alpha``; longer traces get fewer than ``alpha`` false changes per
        ``window_photons`` photons (measured on stationary Poisson streams of 100 000 photons,
        alpha = 0.05: 0.030 +- 0.002 at window_photons = 2000, 0.028 +- 0.004 at 4096; false
        changes often come in pairs around a spurious short segment; one window of 4096
        photons: P(any) = 0.046 [0.033, 0.063]; ``scripts/validate_levels.py``).
    confidence : float
        Coverage of the confidence region of each change time (0.69, 0.9 or 0.95).
    window_photons : int
        Largest range searched at once (2 .. table maximum, 8192; default 4096). Larger windows
        find weaker changes between long segments and give fewer false changes per photon; the
        cost stays linear in the photon count.
    overlap_photons : int, optional
        Overlap of consecutive windows, 0 .. ``window_photons - ceil(window_photons/4)``;
        default ``window_photons // 2`` (no change is lost at a window seam, see step 1).
    refine : bool
        Re-test every change point between its neighbours and search beside it (steps 2 and 3
        above); False returns the raw scan.
    max_sweeps : int
        Maximum number of refinement sweeps (and of beside-search rounds).

    Returns
    -------
    ChangePoints
    """
    from qrspec.levels import _kernels

    alpha = _match_level(alpha, available_alphas(), "alpha")
    confidence = _match_level(confidence, available_confidences(), "confidence")
    n_max = max_window_photons()
    if not isinstance(window_photons, int | np.integer) or not 2 <= window_photons <= n_max:
        raise QrspecError(f"window_photons={window_photons!r} must be an integer in 2..{n_max}")
    max_overlap = window_photons - (window_photons + 3) // 4
    if overlap_photons is None:
        overlap_photons = window_photons // 2
    if not isinstance(overlap_photons, int | np.integer) or not (
        0 <= overlap_photons <= max_overlap
    ):
        raise QrspecError(f"overlap_photons={overlap_photons!r} must be an integer in "
                          f"0..{max_overlap}")
    if not isinstance(max_sweeps, int | np.integer) or max_sweeps < 1:
        raise QrspecError(f"max_sweeps={max_sweeps!r} must be an integer >= 1")
    x, bnd_s, unit = prepare_times(times, timestamps_unit)
    n_total = x.size
    crit = _dense_crit(alpha)
    ln_r, c_ci = _ci_table(confidence)
    h1, h2, jlnj = _harmonics(n_max + 2)
    empty_i = np.zeros(0, np.int64)
    if n_total < MIN_PHOTONS + 1:
        idx = lo = hi = empty_i
        lam = rh = np.zeros(0)
    else:
        idx, lo, hi, lam, rh = _kernels.cpa_trace(
            x, int(window_photons), int(overlap_photons), MIN_PHOTONS, h1, h2, jlnj, crit, ln_r,
            c_ci,
        )
        order = np.argsort(idx, kind="stable")
        idx, lo, hi, lam, rh = idx[order], lo[order], hi[order], lam[order], rh[order]
        keep = _distinct(idx, lo, hi, lam)  # a change found in two overlapping windows
        idx, lo, hi, lam, rh = idx[keep], lo[keep], hi[keep], lam[keep], rh[keep]
        args = (MIN_PHOTONS, h1, h2, jlnj, crit, ln_r, c_ci)
        half = int(window_photons) // 2
        if refine and idx.size:
            idx, lo, hi, lam, rh = _kernels.cpa_refine(
                x, idx, lo, hi, lam, rh, np.ones(idx.size, bool), half, *args, int(max_sweeps))
        active = np.ones(idx.size, bool)
        for _ in range(int(max_sweeps) if refine else 0):
            # step 3: beside the changes that are new or moved, then the refinement again
            new = _kernels.cpa_beside(x, idx, lo, hi, active, int(window_photons), *args)
            if new[0].size == 0:
                break
            before = idx
            cat = [np.concatenate([u, v]) for u, v in zip((idx, lo, hi, lam, rh), new,
                                                           strict=True)]
            order = np.argsort(cat[0], kind="stable")
            idx, lo, hi, lam, rh = (c[order] for c in cat)
            keep = _distinct(idx, lo, hi, lam)
            idx, lo, hi, lam, rh = idx[keep], lo[keep], hi[keep], lam[keep], rh[keep]
            fresh = ~np.isin(idx, before)
            dirty = fresh.copy()
            dirty[1:] |= fresh[:-1]
            dirty[:-1] |= fresh[1:]
            idx, lo, hi, lam, rh = _kernels.cpa_refine(x, idx, lo, hi, lam, rh, dirty, half,
                                                       *args, int(max_sweeps))
            active = ~np.isin(idx, before)
            if not active.any():
                break
    if idx.size:
        # a boundary must advance the clock: drop a change that shares the tick of the previous
        # boundary (possible only for photons tied within one tick)
        while True:
            prev_t = np.concatenate([[bnd_s[0]], bnd_s[idx][:-1]])
            ok = bnd_s[idx] > prev_t
            if ok.all():
                break
            bad = int(np.flatnonzero(~ok)[0])
            keep = np.ones(idx.size, bool)
            keep[bad] = False
            idx, lo, hi, lam, rh = idx[keep], lo[keep], hi[keep], lam[keep], rh[keep]
    logger.debug("%d change points in %d photons", idx.size, n_total)
    if n_total:
        # end of the trace: one tick after the last photon (integer input) so that the half-open
        # last segment contains it; for float input 1 ps after it
        pad = unit if unit is not None else max(1e-12, 4 * float(np.spacing(abs(bnd_s[-1]))))
        last_stop = bnd_s[-1] + pad
        boundaries_s = np.concatenate([[bnd_s[0]], bnd_s[idx], [last_stop]])
        boundaries_index = np.concatenate([[0], idx, [n_total]]).astype(np.int64)
    else:
        boundaries_s = np.zeros(0)
        boundaries_index = empty_i
    return ChangePoints(
        index=idx.astype(np.int64),
        time_s=bnd_s[idx] if n_total else np.zeros(0),
        ci_start_s=bnd_s[lo] if n_total else np.zeros(0),
        ci_stop_s=bnd_s[hi] if n_total else np.zeros(0),
        ci_start_index=lo.astype(np.int64),
        ci_stop_index=hi.astype(np.int64),
        statistic=lam,
        rate_ratio=rh,
        boundaries_s=boundaries_s,
        boundaries_index=boundaries_index,
        n_photons=int(n_total),
        alpha=float(alpha),
        confidence=float(confidence),
    )
