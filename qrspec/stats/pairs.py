"""Photon pairs ("heralded" analysis, methods.md section 2.4).

For every laser period holding a photon on each of two detectors, the pair's earlier and later
aligned nanotimes ``t1 <= t2`` and their delay ``t2 - t1``: in a biexciton-exciton cascade
``t1`` is the XX-type photon (its distribution gives tau_XX) and the delay the X-type photon
(tau_X of the same charge state).

Photons of one detector in one period beyond the first are rare (dead time ~ period); the one
with the smallest aligned nanotime is used and the periods with more are counted in
``n_multiple``.

Shifted pairs (detector A in period ``s``, detector B in period ``s + k``, ``k != 0``) are pairs
of independent photons: their number per shift is what the same-period count would be without
any photon correlation (the g2 side-peak area), and their ``t1``/delay distributions are the
shape of independent (accidental) coincidences. Their number is *not* the number of accidental
pairs among the same-period pairs of an antibunched emitter (there, signal photons of one pulse
are not independent): that number comes from the flat background measured in a pre-rise window,
``expected_accidental = N (s_A b_B + b_A s_B + b_A b_B)`` with per-period background and signal
probabilities ``b_d`` and ``s_d`` over the ``N`` periods spanned (methods.md section 2.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.stats._input import N_DET, check_photons, gate_tables, require_t3
from qrspec.validate import detector_list, integer, shift_to_grid

__all__ = ["MAX_PAIR_SHIFT", "PhotonPairs", "photon_pairs"]

#: Largest reference shift (periods). The shifted pairs of each period are listed, so memory
#: grows as periods with photons x (2 max_shift + 1); 1000 shifts are far more than the few
#: tens a side-peak reference needs.
MAX_PAIR_SHIFT = 1000


@dataclass(frozen=True, eq=False)
class PhotonPairs:
    """Same-period photon pairs on two detectors and shifted-period reference pairs.

    Attributes
    ----------
    sync : ndarray of int64
        Period (timestamp) of each pair.
    nanotimes_ns : ndarray of float64, shape (n_pairs, 2)
        Aligned nanotime on ``detectors[0]`` and ``detectors[1]``.
    t1_ns, t2_ns, delay_ns : ndarray of float64
        Earlier and later aligned nanotime and ``t2 - t1``.
    first_detector : ndarray of uint8
        Detector of the earlier photon (``detectors[1]`` on ties).
    detectors : tuple of int
        The two detectors.
    offsets_ns : ndarray of float64
        Offset subtracted from each detector's nanotimes (whole TCSPC bins).
    gate_ns : tuple of float or None
        Gate on the aligned nanotimes of both photons.
    n_periods : tuple of int
        Periods with a (gated) photon on each detector.
    n_multiple : tuple of int
        Periods with more than one photon on the same detector.
    shifts : ndarray of int
        Period shifts ``k`` of the reference pairs.
    n_shifted : ndarray of int64
        Pairs (A in ``s``, B in ``s + k``) per shift.
    shifted_t1_ns, shifted_delay_ns : ndarray of float64
        ``t1`` and delay of all shifted pairs pooled over ``shifts`` (each pooled pair stands
        for ``1 / len(shifts)`` expected independent same-period pairs).
    background_probability : ndarray of float64, shape (2,)
        Per-period probability of a (gated) flat-background photon on each detector.
    signal_probability : ndarray of float64, shape (2,)
        Per-period probability of a (gated) non-background photon on each detector.
    expected_accidental : float
        Expected same-period pairs with at least one background photon.
    """

    sync: np.ndarray
    nanotimes_ns: np.ndarray
    t1_ns: np.ndarray
    t2_ns: np.ndarray
    delay_ns: np.ndarray
    first_detector: np.ndarray
    detectors: tuple
    offsets_ns: np.ndarray
    gate_ns: tuple | None
    n_periods: tuple
    n_multiple: tuple
    shifts: np.ndarray
    n_shifted: np.ndarray
    shifted_t1_ns: np.ndarray
    shifted_delay_ns: np.ndarray
    background_probability: np.ndarray
    signal_probability: np.ndarray
    expected_accidental: float

    @property
    def n_pairs(self) -> int:
        """Number of same-period pairs."""
        return int(self.sync.size)

    @property
    def shifted_mean(self) -> float:
        """Mean number of shifted pairs per shift (independent-photon expectation)."""
        return float(self.n_shifted.mean()) if self.n_shifted.size else float("nan")

    def in_windows(self, windows_s, timestamps_unit: float) -> np.ndarray:
        """Mask of the pairs whose period lies inside half-open time windows (s).

        The edges follow the seconds-to-ticks rule of :mod:`qrspec.validate`, as
        :meth:`qrspec.photons.Photons.select_windows` (the one rule for states, levels and charging
        windows).

        Parameters
        ----------
        windows_s : array_like, shape (n, 2)
            ``(start_s, stop_s)`` rows.
        timestamps_unit : float
            Seconds per timestamp tick of the photons the pairs came from.

        Returns
        -------
        ndarray of bool
        """
        from qrspec.validate import in_windows, windows_to_ticks

        lo, hi = windows_to_ticks("windows_s", windows_s, timestamps_unit, merge=True)
        return in_windows(self.sync, lo, hi)

    @property
    def pair_ratio(self) -> float:
        """``n_pairs / shifted_mean``: a g2(0) estimate from first photons per period."""
        m = self.shifted_mean
        return self.n_pairs / m if m > 0 else float("nan")


def photon_pairs(photons, *, detectors=(0, 1), gate_ns=None, offsets_ns=None,
                 max_shift: int = 10, background_window_ns=None) -> PhotonPairs:
    """Photon pairs within one laser period on two detectors.

    Parameters
    ----------
    photons : Photons
        T3 photons.
    detectors : (int, int)
        The two detectors (A, B).
    gate_ns : (float, float), optional
        Half-open gate on the aligned nanotimes of both photons (``nanotime - offset``).
    offsets_ns : (float, float), optional
        Offsets subtracted from each detector's nanotimes (rounded to TCSPC bins). Default:
        estimated from the decays (:func:`qrspec.stats.decay.decay_histogram`, relative to
        ``detectors[0]``).
    max_shift : int
        Reference pairs use shifts ``k = +-1 .. +-max_shift`` periods (at most
        :data:`MAX_PAIR_SHIFT`).
    background_window_ns : (float, float), optional
        Aligned-nanotime window holding only flat background (see
        :func:`qrspec.stats.decay.background_counts`; default: a pre-rise window).

    Returns
    -------
    PhotonPairs
    """
    from qrspec.stats._kernels import correlate as _kc
    from qrspec.stats.decay import background_counts, decay_histogram

    photons = check_photons(photons)
    require_t3(photons, "photon pairs need")
    dets = detector_list("detectors", detectors)
    if len(dets) != 2:
        raise QrspecError(f"detectors={detectors!r} must be two distinct detectors")
    max_shift = integer("max_shift", max_shift, minimum=1, maximum=MAX_PAIR_SHIFT)
    res_ns = photons.nanotimes_unit * 1e9
    if offsets_ns is not None:
        off_ns = np.asarray(offsets_ns, dtype=np.float64)
        if off_ns.shape != (2,) or not np.all(np.isfinite(off_ns)):
            raise QrspecError(f"offsets_ns={offsets_ns!r} must be two finite offsets (ns)")
    decay = decay_histogram(photons, detectors=dets, offsets_ns=offsets_ns)
    if offsets_ns is None:
        off_ns = decay.offsets_ns
    bg_counts = background_counts(decay, background_window_ns)
    off_bins = shift_to_grid(off_ns, res_ns)
    shift = np.zeros(N_DET, np.int64)
    shift[dets] = off_bins
    role = np.full(N_DET, -1, np.int64)
    role[dets[0]], role[dets[1]] = 0, 1
    lo, hi = gate_tables(photons, gate_ns, shift)
    stats = np.empty((3, 2), np.int64)  # per role: used photons, periods, multiple periods
    sync, kk, fa, fb = _kc.period_pairs(photons.timestamps, photons.nanotimes, photons.detectors,
                                        role, lo, hi, shift, int(max_shift), stats)
    same = kk == 0
    common = sync[same]
    a_ns, b_ns = fa[same] * res_ns, fb[same] * res_ns
    t1 = np.minimum(a_ns, b_ns)
    t2 = np.maximum(a_ns, b_ns)
    first_det = np.where(a_ns < b_ns, dets[0], dets[1]).astype(np.uint8)
    shifts = np.concatenate([-np.arange(max_shift, 0, -1), np.arange(1, max_shift + 1)])
    n_shifted = np.bincount(kk + max_shift, minlength=2 * max_shift + 1)
    n_shifted = np.delete(n_shifted, max_shift)
    x, y = fa[~same] * res_ns, fb[~same] * res_ns
    st1, sdel = np.minimum(x, y), np.abs(x - y)
    n_periods = int(photons.timestamps[-1] - photons.timestamps[0]) + 1 if photons.size else 0
    period_bins = int(round(decay.period_ns / res_ns))
    if gate_ns is None:
        gate_frac = 1.0
    else:
        g0, g1 = lo[dets[0]] - off_bins[0], hi[dets[0]] - off_bins[0]  # aligned gate bins
        gate_frac = max(0, min(g1, period_bins) - max(g0, 0)) / period_bins
    n_gated = stats[0].astype(np.float64)
    if n_periods > 0:
        p_b = bg_counts * gate_frac / n_periods
        p_s = np.maximum(n_gated / n_periods - p_b, 0.0)
        expected = n_periods * (p_s[0] * p_b[1] + p_b[0] * p_s[1] + p_b[0] * p_b[1])
    else:
        p_b = p_s = np.zeros(2)
        expected = 0.0
    return PhotonPairs(
        sync=common, nanotimes_ns=np.stack([a_ns, b_ns], axis=1), t1_ns=t1, t2_ns=t2,
        delay_ns=t2 - t1, first_detector=first_det, detectors=tuple(dets),
        offsets_ns=off_bins * res_ns,
        gate_ns=None if gate_ns is None else tuple(float(g) for g in gate_ns),
        n_periods=(int(stats[1, 0]), int(stats[1, 1])),
        n_multiple=(int(stats[2, 0]), int(stats[2, 1])),
        shifts=shifts, n_shifted=n_shifted, shifted_t1_ns=st1,
        shifted_delay_ns=sdel, background_probability=p_b,
        signal_probability=p_s, expected_accidental=float(expected))
