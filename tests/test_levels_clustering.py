"""Tests of qrspec.levels.clustering (AHC + EM + BIC, Watkins & Yang 2005)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.levels import cluster_levels, find_change_points
from qrspec.levels.clustering import _ahc, _bic
from qrspec.levels.segments import Segments


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def multilevel(rng, rates_cps, dwell_s, n_switch):
    """Photon times (s) of a random walk over levels (no self-transitions), dwell uniform."""
    seq = [0]
    for _ in range(n_switch):
        seq.append(int(rng.choice([k for k in range(len(rates_cps)) if k != seq[-1]])))
    d = rng.uniform(dwell_s[0], dwell_s[1], n_switch + 1)
    edges = np.concatenate([[0.0], np.cumsum(d)])
    parts = [rng.uniform(edges[j], edges[j + 1], rng.poisson(rates_cps[seq[j]] * d[j]))
             for j in range(n_switch + 1)]
    return np.sort(np.concatenate(parts)), edges, np.array(seq)


@pytest.mark.parametrize("rates", [(2e4, 5e3), (2e4, 8e3, 2e3), (3e4, 1.5e4, 6e3, 1e3)])
def test_recovers_number_of_levels(rng, rates):
    for _ in range(3):
        t, edges, seq = multilevel(rng, rates, (0.03, 0.08), 60)
        cl = cluster_levels(find_change_points(t))
        assert cl.n_levels == len(rates)
        # photon-weighted level intensities: Poisson error plus a few photons misplaced at each
        # change point (<= 2 % of a level's photons here), hence 3 sigma + 2 %
        true = np.sort(np.asarray(rates))
        tol = 3 * cl.intensity_err_cps + 0.02 * true
        assert np.all(np.abs(cl.intensity_cps - true) < tol)


def test_levels_assign_segments_to_true_states(rng):
    rates = (2e4, 8e3, 2e3)
    t, edges, seq = multilevel(rng, rates, (0.03, 0.08), 60)
    cl = cluster_levels(find_change_points(t))
    seg = cl.segments
    # true state at each segment's photon-weighted middle; levels ascend, states by rate rank
    rank = np.argsort(np.argsort(rates))
    mid = t[(seg.start_index + seg.stop_index) // 2]
    true_level = rank[seq[np.searchsorted(edges, mid, side="right") - 1]]
    agree = np.sum(seg.n_photons[seg.level == true_level]) / seg.n_photons.sum()
    assert agree > 0.99  # misassigned photons: only short spurious segments


def test_dwell_times_and_totals(rng):
    t, edges, seq = multilevel(rng, (2e4, 5e3), (0.03, 0.08), 40)
    cl = cluster_levels(find_change_points(t))
    total = cl.segments.stop_s[-1] - cl.segments.start_s[0]
    assert sum(d.sum() for d in cl.dwell_times_s) == pytest.approx(total, rel=1e-12)
    assert_allclose(cl.duration_s, [d.sum() for d in cl.dwell_times_s], rtol=1e-12)
    assert cl.n_photons.sum() == t.size
    # 41 alternating dwells of 30-80 ms: 20-21 per level, each inside [30, 80] ms up to the
    # change-point error (a few ms at these rates)
    for d in cl.dwell_times_s:
        assert 19 <= d.size <= 22
        assert np.all((d > 0.02) & (d < 0.09))


def test_bic_formula_by_hand():
    counts = np.array([10.0, 50.0, 12.0, 48.0])
    durations = np.array([1.0, 1.0, 1.0, 1.0])
    from scipy.special import gammaln
    from scipy.stats import poisson

    lgam = gammaln(counts + 1)
    a2 = np.array([0, 1, 0, 1])
    rates = np.array([11.0, 49.0])
    ll = poisson.logpmf(counts, rates[a2]).sum()
    d = 3
    expect = 2 * (ll - 0.5 * 3 * np.log(d) - 0.5 * d * np.log(counts.sum()))
    assert _bic(counts, durations, lgam, a2) == pytest.approx(expect, rel=1e-12)
    a1 = np.zeros(4, np.int64)
    ll1 = poisson.logpmf(counts, 30.0).sum()
    assert _bic(counts, durations, lgam, a1) == pytest.approx(2 * (ll1 - 0.5 * np.log(4)),
                                                              rel=1e-12)


def test_ahc_merges_closest_intensities_first():
    counts = np.array([100.0, 10.0, 105.0, 12.0, 300.0])
    durations = np.ones(5)
    parts = _ahc(counts, durations, 5)
    assert_array_equal(parts[5], [2, 0, 3, 1, 4])
    # 10 and 12 merge before 100 and 105 (smaller likelihood loss), 300 stays alone
    assert len(set(parts[3][[1, 3]])) == 1 and len(set(parts[3][[0, 2]])) == 1
    assert len(set(parts[3])) == 3
    assert len(set(parts[1])) == 1


def test_fixed_number_of_levels_merges_the_cheapest_pair(rng):
    # three true levels; forcing two must merge the adjacent pair whose merge loses the least
    # Poisson likelihood (computed here from the true states), not just report n_levels=2
    rates = (2e4, 8e3, 2e3)
    t, edges, seq = multilevel(rng, rates, (0.03, 0.08), 30)
    cps = find_change_points(t)
    # BIC alone resolves the three (here also a 92-photon upward fluctuation, z = 4.8, as a
    # fourth level: the change points are right, the clustering keeps it)
    assert cluster_levels(cps).n_levels >= 3
    cl = cluster_levels(cps, n_levels=2)
    assert cl.n_levels == 2
    d = np.diff(edges)
    n_true = np.array([np.sum(rng_counts) for rng_counts in
                       [np.diff(np.searchsorted(t, edges))[seq == k] for k in range(3)]])
    t_true = np.array([d[seq == k].sum() for k in range(3)])

    def loss(i, j):
        nn, tt = n_true[[i, j]], t_true[[i, j]]
        return float(np.sum(nn * np.log(nn / tt)) - nn.sum() * np.log(nn.sum() / tt.sum()))

    # states by rate: 0 = 2e4, 1 = 8e3, 2 = 2e3; merge {0, 1} or {1, 2}
    merged = (0, 1) if loss(0, 1) < loss(1, 2) else (1, 2)
    seg = cl.segments
    mid = t[(seg.start_index + seg.stop_index) // 2]
    state = seq[np.searchsorted(edges, mid, side="right") - 1]
    # level 1 (brighter) holds state 0 with or without state 1
    expect = np.where(np.isin(state, merged), 0 in merged, 0 not in merged).astype(int)
    agree = np.sum(seg.n_photons[seg.level == expect]) / seg.n_photons.sum()
    assert agree > 0.99
    # each level's intensity is photons / time of its segments
    for k in range(2):
        m = seg.level == k
        assert cl.intensity_cps[k] == pytest.approx(seg.n_photons[m].sum()
                                                    / seg.duration_s[m].sum(), rel=1e-12)


def test_min_separation_zero_is_plain_bic(rng):
    t, _, _ = multilevel(rng, (2e4, 5e3), (0.03, 0.08), 30)
    cps = find_change_points(t)
    a = cluster_levels(cps, min_separation_sigma=0.0)
    assert a.n_levels == int(np.argmax(a.bic)) + 1


def test_rejects_bad_input(rng):
    seg = Segments.from_boundaries([0.0, 1.0, 2.0], [0, 5, 9])
    with pytest.raises(QrspecError, match=r"max_levels=0 must be an integer in 1..20"):
        cluster_levels(seg, max_levels=0)
    with pytest.raises(QrspecError, match=r"n_levels=6 must be an integer in 1..max_levels=5"):
        cluster_levels(seg, n_levels=6)
    with pytest.raises(QrspecError, match=r"min_separation_sigma=-1 must be >= 0"):
        cluster_levels(seg, min_separation_sigma=-1)
    with pytest.raises(QrspecError, match=r"segments must be Segments or ChangePoints, got list"):
        cluster_levels([1, 2])
    empty = Segments.from_boundaries([0.0, 1.0, 2.0], [0, 0, 0])
    with pytest.raises(QrspecError, match=r"segments hold no photons"):
        cluster_levels(empty)
    with pytest.raises(QrspecError, match=r"segments is empty"):
        cluster_levels(Segments.empty())


def test_em_kernel_matches_numpy_reference(rng):
    from scipy.special import gammaln

    from qrspec.levels import _kernels
    from qrspec.levels.clustering import _em

    durations = rng.uniform(0.01, 0.1, 500)
    truth = rng.integers(0, 3, 500)
    counts = rng.poisson(np.array([1e3, 5e3, 2e4])[truth] * durations).astype(np.float64)
    # start from a corrupted assignment (20 % of the segments one level up)
    init = np.clip(truth + (rng.random(500) < 0.2), 0, 2).astype(np.int64)
    ref = _em(counts, durations, gammaln(counts + 1), init, 3, 200, 1e-4)
    got = _kernels.poisson_mixture_em(counts, durations, init, 3, 200, 1e-4, 5)
    assert_array_equal(got, ref)
    assert_array_equal(_kernels.poisson_mixture_em.py_func(counts, durations, init, 3, 200,
                                                           1e-4, 5), ref)
    # levels 5x apart with >= 10 expected photons per segment: EM repairs the corruption
    assert np.mean(got == truth) > 0.98
