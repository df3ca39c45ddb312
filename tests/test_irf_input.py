"""Measured IRF input (issue 13 item 6): read a TTTR file of scattered laser light or a text /
npy histogram, put it on a decay's axis, fit with reconvolution, recover tau."""

from __future__ import annotations

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.fitting.irf import normalize_irf
from qrspec.fitting.lifetime import fit_decay
from qrspec.io.irf import IRF, read_irf
from qrspec.stats.decay import decay_histogram, irf_histogram

TAU_NS = 1.5
# a slow SPAD: 0.15 ns Gaussian and 30 % in a 0.8 ns diffusion tail; with tau = 1.5 ns a tail
# fit cannot separate the two, reconvolution with the measured IRF can
DETECTION = dict(irf_sigma_ns=(0.15, 0.15), irf_tail_weight=(0.3, 0.3), irf_tail_ns=(0.8, 0.8),
                 offset_ns=(5.0, 7.5), dark_cps=(200.0, 200.0), afterpulse_prob=(0.0, 0.0),
                 dead_time_ns=(20.0, 20.0), eta_collection=0.2)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A sample decay and an IRF file (scattered light: IRF-shaped background, no emitter)."""
    from qrspec import simulate as sim
    from qrspec.io.writer import write_ptu

    base = sim.preset("neutral").replace(duration_s=0.5, mean_excitations=0.05,
                                         laser_fwhm_ns=0.0,
                                         emitter=dict(tau_ns=((TAU_NS, 0.5, 0.3),),
                                                      qy=((1.0, 0.1, 0.1),)))
    sample = sim.simulate_particle(base.replace(detection=DETECTION), seed=4).photons
    irf_cfg = base.replace(mean_excitations=0.0, detection=dict(
        DETECTION, bg_profile="irf", bg_cps=(40_000.0, 40_000.0), dark_cps=(20.0, 20.0)))
    scatter = sim.simulate_particle(irf_cfg, seed=5).photons
    folder = tmp_path_factory.mktemp("irf")
    ptu = write_ptu(folder / "irf.ptu", record_type="HydraHarp2T3",
                    timestamps=scatter.timestamps, detectors=scatter.detectors,
                    nanotimes=scatter.nanotimes, timestamps_unit=scatter.timestamps_unit,
                    nanotimes_unit=scatter.nanotimes_unit)
    return sample, scatter, ptu, folder


def _fit(decay, irf_rows, row):
    return fit_decay(decay.counts_per_detector[row], time_ns=decay.time_ns,
                     period_ns=decay.period_ns, model="mono",
                     irf=normalize_irf(irf_rows[row]))


def test_tttr_irf_end_to_end(measured):
    sample, scatter, ptu, _ = measured
    decay = decay_histogram(sample, bin_ns=0.032)
    irf = read_irf(ptu)
    assert irf.kind == "tttr" and irf.detectors == (0, 1) and irf.n_photons == scatter.size
    rows = irf_histogram(irf, decay)
    assert rows.shape == decay.counts_per_detector.shape and rows.sum() == scatter.size
    for row in (0, 1):  # each detector with its own aligned IRF
        fit = _fit(decay, rows, row)
        assert fit.success
        # the Fisher error of tau; 4 sigma (two detectors, one seed)
        assert abs(fit.tau_ns[0] - TAU_NS) < 4 * fit.tau_err_ns[0]
        assert fit.tau_err_ns[0] < 0.05  # ~1e4 photons: the test has power
    # the IRF peak sits at the decay's rise on the aligned axis (both at the 5 ns offset)
    assert abs(decay.time_ns[np.argmax(rows[1])] - 5.0) < 0.1


def test_text_and_npy_irf_end_to_end(measured):
    sample, scatter, _, folder = measured
    decay = decay_histogram(sample, bin_ns=0.032)
    # the aligned axis is detector 0's raw axis: its IRF histogram at 16 ps written as text
    h = np.bincount(scatter.nanotimes[scatter.detectors == 0], minlength=6250).astype(float)
    t = np.arange(h.size) * 0.016
    txt = folder / "irf.txt"
    np.savetxt(txt, np.column_stack([t, h]), header="time_ns counts", delimiter=",")
    npy = folder / "irf.npy"
    np.save(npy, h)
    ref = irf_histogram(read_irf(folder / "irf.ptu"), decay)[0]
    for irf in (read_irf(txt), read_irf(npy, bin_ns=0.016)):
        rows = irf_histogram(irf, decay)
        # 16 ps histogram resampled onto 32 ps decay bins: sums of bin pairs, exactly
        np.testing.assert_allclose(rows[0], ref, atol=1e-6)
        fit = _fit(decay, rows, 0)
        assert fit.success and abs(fit.tau_ns[0] - TAU_NS) < 4 * fit.tau_err_ns[0]


def test_tail_fit_without_irf_is_biased(measured):
    # why the IRF matters here: a tail fit right after the rise sees the 0.8 ns diffusion tail
    sample, _, ptu, _ = measured
    decay = decay_histogram(sample, bin_ns=0.032)
    tail = fit_decay(decay.counts_per_detector[0], time_ns=decay.time_ns,
                     period_ns=decay.period_ns, model="mono", fit_range_ns=(5.2, 60.0))
    rec = _fit(decay, irf_histogram(read_irf(ptu), decay), 0)
    assert tail.tau_ns[0] - TAU_NS > 4 * tail.tau_err_ns[0]
    assert abs(rec.tau_ns[0] - TAU_NS) < 4 * rec.tau_err_ns[0]


def test_irf_errors(tmp_path, measured):
    sample, _, ptu, _ = measured
    decay = decay_histogram(sample)

    def write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return p

    cases = [
        (lambda: read_irf(tmp_path / "none.txt"), r"none.txt: IRF file not found"),
        (lambda: read_irf(write("e.txt", "# only a comment\n")), r"e.txt: IRF file holds no "
                                                                  r"data"),
        (lambda: read_irf(write("n.txt", "0 1\n1 nan\n2 3\n")), r"n.txt: IRF counts hold 1 "
                                                               r"NaN or inf"),
        (lambda: read_irf(write("neg.txt", "0 1\n1 -2\n2 3\n")), r"neg.txt: IRF counts must "
                                                                r"be >= 0"),
        (lambda: read_irf(write("z.txt", "0 0\n1 0\n2 0\n")), r"z.txt: IRF histogram is "
                                                             r"empty"),
        (lambda: read_irf(write("s.txt", "0 1\n1 2\n")), r"s.txt: IRF histogram has 2 bins; "
                                                        r"at least 3"),
        (lambda: read_irf(write("r.txt", "0 1\n1 2 3\n")), r"r.txt: line 2 has 3 columns, "
                                                          r"the first data line 2"),
        (lambda: read_irf(write("c3.txt", "0 1 2\n")), r"c3.txt: line 1 has 3 columns; an "
                                                      r"IRF has 1"),
        (lambda: read_irf(write("x.txt", "t c\n0 1\nx 2\n")), r"x.txt: line 3: 'x 2' is not "
                                                             r"numeric"),
        (lambda: read_irf(write("u.txt", "0 1\n1 2\n3 3\n")), r"u.txt: IRF time_ns must "
                                                             r"increase in equal steps"),
        (lambda: read_irf(write("one.txt", "1\n2\n3\n")), r"one.txt: a one-column IRF "
                                                         r"histogram needs bin_ns="),
        (lambda: read_irf(write("one2.txt", "1\n2\n3\n"), bin_ns=-1),
         r"bin_ns=-1 must be a finite number > 0"),
        (lambda: read_irf(write("d.txt", "1\n2\n3\n"), detectors=(0,)),
         r"d.txt: detectors=\(0,\) applies to TTTR IRF files only"),
        (lambda: read_irf(ptu, detectors=(0, 3)), r"irf.ptu: IRF detectors=\(0, 3\): detector "
                                                  r"3 has no photons"),
        (lambda: irf_histogram("irf", decay), r"irf=str must be an IRF"),
        (lambda: irf_histogram(read_irf(ptu), "d"), r"decay=str must be a Decay"),
        (lambda: irf_histogram(read_irf(write("far.txt", "500 1\n501 2\n502 3\n")), decay),
         r"far.txt: IRF time range \[500, 503\) ns does not overlap the decay axis"),
    ]
    bad_npy = tmp_path / "b.npy"
    np.save(bad_npy, np.zeros((3, 3)))
    cases.append((lambda: read_irf(bad_npy), r"b.npy: IRF array shape=\(3, 3\) must be"))
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\xff\xfe\x00\x80" * 10)
    cases.append((lambda: read_irf(binary), r"bin.dat: IRF text file is not text"))
    coarse = IRF(np.ones((2, 10)), 0.0, 0.032, (0, 1), "tttr", "c.ptu", 100.0, 1e-7)
    cases.append((lambda: irf_histogram(coarse, decay), r"c.ptu: IRF TCSPC resolution 0.032 ns "
                                                        r"differs"))
    other_period = IRF(np.ones((2, 10)), 0.0, 0.016, (0, 1), "tttr", "p.ptu", 50.0, 5e-8)
    cases.append((lambda: irf_histogram(other_period, decay),
                  r"p.ptu: IRF laser period \(50 ns\) differs from the decay's"))
    one_det = IRF(np.ones((1, 10)), 0.0, 0.016, (0,), "tttr", "o.ptu", 100.0, 1e-7)
    cases.append((lambda: irf_histogram(one_det, decay),
                  r"o.ptu: the IRF has no photons on detector 1"))
    for call, match in cases:
        with pytest.raises(QrspecError, match=match):
            call()


def test_t2_irf_file_is_refused(tmp_path, rng):
    from qrspec.io.writer import write_ptu

    p = write_ptu(tmp_path / "t2.ptu", record_type="GenericT2",
                  timestamps=np.sort(rng.integers(0, 10**6, 100)),
                  detectors=np.zeros(100, int), timestamps_unit=1e-12)
    with pytest.raises(QrspecError, match=r"t2.ptu: an IRF TTTR file must be T3"):
        read_irf(p)


def test_irf_file_errors_npy_and_empty(tmp_path):
    from qrspec.io.writer import write_ptu

    corrupt = tmp_path / "c.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage")
    strings = tmp_path / "s.npy"
    np.save(strings, np.array(["a", "b", "c"]))
    nan_t = tmp_path / "t.npy"
    np.save(nan_t, np.array([[0.0, 1.0], [np.nan, 2.0], [2.0, 3.0]]))
    empty = write_ptu(tmp_path / "empty.ptu", record_type="HydraHarp2T3",
                      timestamps=np.zeros(0, np.int64), detectors=np.zeros(0, np.int64),
                      nanotimes=np.zeros(0, np.int64), timestamps_unit=1e-7,
                      nanotimes_unit=16e-12)
    cases = [
        (lambda: read_irf(corrupt), r"c.npy: cannot read the IRF as .npy"),
        (lambda: read_irf(strings), r"s.npy: IRF array dtype=<U1 must be numeric"),
        (lambda: read_irf(nan_t), r"t.npy: IRF time_ns column holds NaN or inf"),
        (lambda: read_irf(empty), r"empty.ptu: IRF file holds no photons"),
    ]
    for call, match in cases:
        with pytest.raises(QrspecError, match=match):
            call()
