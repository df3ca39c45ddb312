"""T2 data with recorded sync events -> nanotimes from the last sync (issue 13 item 4):
``Photons.with_sync_nanotimes`` against the simulator's ground truth and hand-made streams."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from qrspec.errors import QrspecError
from qrspec.io import read_tttr, write_ptu
from qrspec.photons import Photons
from qrspec.simulate import simulate_particle
from qrspec.simulate.config import preset
from qrspec.simulate.sidecar import write_particle


@pytest.fixture(scope="module")
def sim():
    # 10 MHz, 1 ps T2 ticks: a period of 100,000 ticks does not fit uint16 (k = 3)
    return simulate_particle(preset("neutral", duration_s=0.05, sync_rate_hz=1e7), 11)


@pytest.mark.parametrize("record_type", ["GenericT2", "HydraHarp2T2"])
def test_sync_nanotimes_equal_ground_truth(tmp_path, sim, record_type):
    path, _ = write_particle(sim, tmp_path / "t2.ptu", record_type=record_type, sidecar=False,
                             sync_divider=1)
    raw = read_tttr(path)
    assert raw.nanotimes is None and raw.sync_timestamps.size == sim.config.n_pulses
    ph = raw.with_sync_nanotimes()
    truth = sim.truth
    # every photon comes after pulse 0's sync event and within its period: none dropped
    assert ph.size == raw.size == truth.arrival_sync.size
    assert ph.is_t3 and ph.measurement_mode == 2 and ph.sync_timestamps is None
    assert ph.timestamps_unit == pytest.approx(1e-7, rel=1e-9)  # from the sync events
    assert ph.sync_rate_hz == pytest.approx(1e7, rel=1e-9)
    k = 3  # ceil(1.5 * 100000 / 65536)
    assert ph.nanotimes_unit == pytest.approx(k * 1e-12)
    assert ph.nanotime_bins_per_period == 33333
    # the pulse of every photon, exactly (T2 ticks round a photon within one tick of the
    # period's end onto the next sync: there are none here, t_ns < period - 1 ps)
    assert np.all(truth.arrival_ns < 100.0 - 0.001)
    assert_array_equal(ph.timestamps, truth.arrival_sync)
    # nanotime = floor(floor((s P + t) / r) - floor(s P / r)) / k): within one bin of t
    err_ns = truth.arrival_ns - ph.nanotimes * ph.nanotimes_unit * 1e9
    assert err_ns.min() > -0.001 and err_ns.max() < 0.004  # [0, k*r + r) up to rounding
    assert_array_equal(ph.detectors, sim.photons.detectors)
    assert ph.warnings == raw.warnings


def test_sync_nanotimes_fit_uint16_at_80_mhz_without_coarsening(tmp_path):
    # 80 MHz at 1 ps: 12,500 ticks per period, k = 1
    sync = np.arange(0, 1000) * 12500
    ts = sync[::3] + 4321
    ph = Photons.from_arrays(ts, np.zeros(ts.size, np.int64), timestamps_unit=1e-12,
                             sync_timestamps=sync, record_type="GenericT2")
    out = ph.with_sync_nanotimes()
    assert out.nanotimes_unit == 1e-12 and out.nanotimes.dtype == np.uint16
    assert_array_equal(out.nanotimes, 4321)
    assert_array_equal(out.timestamps, np.arange(0, 1000, 3))
    assert out.timestamps_unit == pytest.approx(12.5e-9)


def test_sync_nanotimes_drops_and_flags(tmp_path):
    """Photons before the first sync event and after a missing one are dropped with counts;
    irregular sync intervals are flagged."""
    sync = np.concatenate([np.arange(10, 50) * 1000, np.arange(52, 60) * 1000])  # 2 missing
    ts = np.array([5, 999, 10_500, 30_999, 50_200, 51_400, 52_001, 59_999])
    ph = Photons.from_arrays(ts, np.arange(8) % 2, timestamps_unit=1e-12, sync_timestamps=sync,
                             record_type="HydraHarp2T2")
    out = ph.with_sync_nanotimes()
    # 5 and 999 precede the first sync (10,000); 51,400 is 2.4 periods after 49,000 (dropped),
    # 50,200 only 1.2 (kept: a photon late in a slightly long period looks the same)
    assert_array_equal(out.nanotimes, [500, 999, 1200, 1, 999])
    assert_array_equal(out.timestamps, [0, 20, 39, 40, 47])  # sync event numbers
    assert_array_equal(out.detectors, [0, 1, 0, 0, 1])
    assert "2 photons before the first sync event dropped" in out.warnings
    assert ("1 photons more than 1.5 laser periods after their sync event (a sync event "
            "missing) dropped") in out.warnings
    assert any("1 of 47 sync intervals differ from the median 1000 ticks" in w
               for w in out.warnings)


def test_sync_divider_splits_sync_intervals(tmp_path, sim):
    """Sync events every 4th pulse: with sync_divider=4 the pulses and nanotimes are those of
    every pulse (the sync interval split into 4 laser periods)."""
    path, _ = write_particle(sim, tmp_path / "d4.ptu", record_type="GenericT2", sidecar=False,
                             sync_divider=4)
    raw = read_tttr(path)
    assert raw.sync_timestamps.size == sim.config.n_pulses // 4
    ph = raw.with_sync_nanotimes(sync_divider=4)
    assert ph.warnings == raw.warnings  # the header's HWSync_Divider=4 agrees
    assert ph.timestamps_unit == pytest.approx(1e-7, rel=1e-9)
    assert ph.size == raw.size
    assert_array_equal(ph.timestamps, sim.truth.arrival_sync)
    err_ns = sim.truth.arrival_ns - ph.nanotimes * ph.nanotimes_unit * 1e9
    # the split point j*T is a float: one more tick of rounding than with every sync
    assert err_ns.min() > -0.002 and err_ns.max() < 0.005
    wrong = raw.with_sync_nanotimes()
    assert any("header sync divider 4 differs from sync_divider=1" in w for w in wrong.warnings)


def test_simulator_sync_option_errors(tmp_path, sim):
    with pytest.raises(QrspecError, match=r"sync_divider=2: sync events exist only in T2"):
        write_particle(sim, tmp_path / "x.ptu", record_type="HydraHarp2T3", sync_divider=2)
    with pytest.raises(QrspecError, match=r"sync_divider=0 must be an integer >= 1"):
        write_particle(sim, tmp_path / "x.ptu", record_type="GenericT2", sync_divider=0)


def test_with_sync_nanotimes_errors(tmp_path):
    t3 = Photons.from_arrays([1, 2], [0, 0], [3, 4], timestamps_unit=1e-7, nanotimes_unit=1e-11)
    with pytest.raises(QrspecError, match=r"needs T2 photons; these have nanotimes"):
        t3.with_sync_nanotimes()
    t2 = Photons.from_arrays([1, 2], [0, 0], timestamps_unit=1e-12, record_type="PicoHarpT2")
    with pytest.raises(QrspecError, match=r"T2 data \(PicoHarpT2\) has 0 sync events"):
        t2.with_sync_nanotimes()
    p = write_ptu(tmp_path / "s.ptu", record_type="HydraHarp2T2", timestamps=[5, 6],
                  detectors=[0, 1], timestamps_unit=1e-12, sync_timestamps=[3, 3, 3])
    with pytest.raises(QrspecError, match=r"do not advance in time \(median interval 0.0"):
        read_tttr(p).with_sync_nanotimes()
    ok = Photons.from_arrays([5], [0], timestamps_unit=1e-12, sync_timestamps=[0, 10])
    for bad in (0, 1.5, True, 1 << 17):
        with pytest.raises(QrspecError, match=r"sync_divider=.* must be an integer in "
                                              r"1..65536"):
            ok.with_sync_nanotimes(sync_divider=bad)
