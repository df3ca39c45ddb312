"""The pipeline's acquisition modes on simulated data with known truth (issue 13 items 3-7):
the HBT zero peak with whole-period cable delays, T2 data (pulsed comb, CW dip), one detector,
many detectors, markers and scan images, a measured IRF."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from test_hbt import PERIOD_NS, pulsed_hbt

from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.pipeline import analyze_file, analyze_photons
from qrspec.errors import QrspecError
from qrspec.io import write_ptu
from qrspec.photons import Photons
from qrspec.store.summary import summary_values


def _antibunched(k_periods: int, seed: int):
    """A single quantum dot (g2(0) ~ 0.04: Auger-quenched biexciton) at 80 MHz whose
    detector 1 is ``k_periods`` laser periods + 1.5 ns later than detector 0."""
    from qrspec import simulate as sim

    det = dict(offset_ns=(2.0, 3.5 + k_periods * 12.5), eta_collection=0.2,
               dead_time_ns=(20.0, 20.0), dark_cps=(0.0, 0.0), afterpulse_prob=(0.0, 0.0))
    cfg = sim.preset("neutral").replace(duration_s=0.05, sync_rate_hz=80e6,
                                        mean_excitations=0.1, detection=det,
                                        emitter=dict(tau_x0_ns=2.0, tau_a_xx0_ns=0.02))
    return sim.simulate_particle(cfg, seed=seed).photons


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_zero_peak_with_whole_period_delays_antibunched(k):
    """The pipeline finds the suppressed peak k periods away; every g2 uses it (issue 13: the
    offsets alone give a side peak and g2(0) ~ 1 for a true ~0.04)."""
    res = analyze_photons(_antibunched(k, seed=10 + k))
    s = summary_values(res)
    assert s["hbt_delay_source"] == "data" and s["zero_peak_index"] == k
    assert s["zero_peak_z"] >= 5
    # the delay to one lag bin: the sub-period part from the rise offsets (16 ps bins)
    assert s["hbt_delay_ns"] == pytest.approx(k * 12.5 + 1.5, abs=0.05)
    assert s["g2_zero"] + 4 * s["g2_zero_err"] < 0.5  # truth ~0.04
    assert "zero peak" not in res.error


@pytest.mark.parametrize("k", [0, 2])
def test_zero_peak_without_antibunching_is_undecided_unless_given(rng, k):
    """Classical (Poissonian) pulsed light: no peak is suppressed, so the data cannot decide;
    the result is flagged and uses the sub-period delay. Given the delay (a calibration), the
    pipeline uses it: g2(0) = 1 within 4 sigma."""
    delay = k * PERIOD_NS + 3.3
    ph = pulsed_hbt(rng, n_pulses=300_000, p_photon=0.06, g2_zero=None, delay_ns=delay)
    res = analyze_photons(ph)
    s = summary_values(res)
    assert s["hbt_delay_source"] == "default" and s["zero_peak_index"] == 0
    assert "zero peak not found: no suppressed peak" in res.error
    assert s["hbt_delay_ns"] == pytest.approx(3.3, abs=0.05)
    res = analyze_photons(ph, AnalysisConfig(hbt_delay_ns=delay))
    s = summary_values(res)
    assert s["hbt_delay_source"] == "user" and s["hbt_delay_ns"] == delay
    assert s["zero_peak_index"] == k and "zero peak" not in res.error
    assert abs(s["g2_zero"] - 1) < 4 * s["g2_zero_err"] and not s["single_emitter"]
    # Poissonian light: nothing to gate (no levels with pairs), the raw g2 cannot decide
    assert res.g2.verdict == "undecidable" and res.g2.verdict_reason


def test_user_delay_against_the_data_is_flagged():
    """A user delay one period off the data's suppressed peak is used as given, and the
    disagreement is flagged."""
    ph = _antibunched(2, seed=30)
    res = analyze_photons(ph, AnalysisConfig(hbt_delay_ns=1 * 12.5 + 1.5))
    s = summary_values(res)
    assert s["hbt_delay_source"] == "user" and s["zero_peak_index"] == 1
    assert "disagrees with the data's zero peak" in res.error
    assert s["g2_zero"] > 0.5  # a side peak, as the user asked


def test_t2_pulsed_comb_through_the_pipeline(rng):
    """T2 without sync: the comb period and the zero peak come from the correlation; the
    trajectory, levels and raw g2 run; nanotime stages are not applicable (None, flagged)."""
    ph = pulsed_hbt(rng, n_pulses=400_000, p_photon=0.06, g2_zero=0.02,
                    delay_ns=PERIOD_NS + 4.0, t2=True)
    res = analyze_photons(ph)
    s = summary_values(res)
    assert (s["timing"], s["g2_mode"]) == ("t2", "pulsed")
    assert s["g2_period_ns"] == pytest.approx(PERIOD_NS, abs=0.01)
    assert s["zero_peak_index"] == 1 and s["hbt_delay_source"] == "data"
    # truth 0.02: within 4 sigma (a few hundred side pairs per peak)
    assert abs(s["g2_zero"] - 0.02) < 4 * s["g2_zero_err"] + 0.01
    assert res.states is None and res.flid is None and res.tau_xx is None \
        and res.charging is None and res.g2.gated is None
    assert res.levels is not None and res.trajectory.n_photons == ph.size
    assert "T2 data without sync events (no nanotimes)" in res.error
    for col in ("tau_x_neutral_ns", "g2_zero_gated"):
        assert col not in s  # NaN in the table, null in JSON
    # T2: the ungated raw g2 decides "single" (biexciton photons only raise it), no gate
    assert res.g2.verdict == "single" and "raw g2(0)" in res.g2.verdict_reason
    assert math.isnan(res.g2.verdict_gate_ns) and res.g2.verdict_g2_upper < 0.35


def test_t2_cw_dip_through_the_pipeline(tmp_path):
    """T2 CW antibunching: no comb, the dip fitted: g2(0) and rise time within 4 sigma of the
    simulated truth (coverage of these errors: scripts/validate_hbt.py)."""
    from qrspec.simulate.cw import simulate_cw_hbt

    ph, truth = simulate_cw_hbt(5, duration_s=0.4, k_exc_per_ns=0.005, k_rad_per_ns=0.1,
                                eta=(0.1, 0.1), background_cps=(5000.0, 5000.0), delay_ns=3.0)
    res = analyze_photons(ph)
    s = summary_values(res)
    assert s["g2_mode"] == "cw" and res.g2.antibunching.success
    assert abs(s["g2_zero"] - truth.g2_0) < 4 * s["g2_zero_err"]
    assert abs(s["g2_rise_time_ns"] - truth.rise_time_ns) < 4 * s["g2_rise_time_err_ns"]
    assert abs(res.g2.antibunching.tau0_ns - 3.0) < 4 * res.g2.antibunching.tau0_err_ns
    # g2(0) ~ 0.1 (background): its one-sided 99 % bound below 0.35, no gate
    assert s["single_emitter"] and res.g2.verdict == "single"
    assert "CW g2(0) fit" in res.g2.verdict_reason and res.g2.verdict_g2_upper < 0.35
    # the results file holds the CW mode: the fit, no gated g2, no states (read back equal)
    from qrspec.store.hdf5 import read_particle, write_particle_file

    back = read_particle(write_particle_file(tmp_path / "cw.h5", res))
    ab, ab2 = res.g2.antibunching, back.g2.antibunching
    assert back.g2.g2_mode == "cw" and back.g2.gated is None and back.states is None
    assert ab2.rise_time_ns == ab.rise_time_ns and ab2.fit_range_ns == ab.fit_range_ns
    assert isinstance(ab2.rho, tuple) and np.isnan(ab2.rho).all()  # no background given
    np.testing.assert_array_equal(ab2.covariance, ab.covariance)
    assert back.acquisition.timing == "t2" and back.alignment.counts is None


def test_one_detector_and_the_detector_choice(tmp_path):
    """One detector of a two-detector particle (config detectors=[1]): trajectory, levels and
    decays with the lifetime; g2, tau_XX and charging not applicable. Default: the two with
    most photons, the others left out and counted."""
    from qrspec.simulate import preset, simulate_particle

    sim = simulate_particle(preset("neutral", duration_s=3.0), seed=2)
    ph = sim.photons
    res = analyze_photons(ph, AnalysisConfig(detectors=[1]))
    s = summary_values(res)
    assert (s["detectors"], s["g2_mode"]) == ("1", "not_applicable")
    assert res.g2 is None and res.tau_xx is None and res.charging is None
    tau = sim.truth.state_table.tau_ns[0, 0]
    assert abs(s["tau_x_neutral_ns"] - tau) < 4 * s["tau_x_neutral_err_ns"] + 0.01 * tau
    assert math.isnan(s["tau_xx_neutral_ns"]) and "one detector (1)" in res.error
    # a third and fourth detector with fewer photons are left out by default
    extra = Photons.from_arrays(np.concatenate([ph.timestamps, ph.timestamps[::50]]),
                                np.concatenate([ph.detectors, 2 + ph.detectors[::50]]),
                                np.concatenate([ph.nanotimes, ph.nanotimes[::50]]),
                                timestamps_unit=ph.timestamps_unit,
                                nanotimes_unit=ph.nanotimes_unit)
    res = analyze_photons(extra)
    s = summary_values(res)
    n_left = int((extra.detectors >= 2).sum())
    assert s["detectors"] == "0 1" and s["n_photons_left_out"] == n_left
    assert f"detectors 2, 3 left out ({n_left} photons)" in res.error
    with pytest.raises(QrspecError, match=r"detectors=\(0, 5\): detector 5 has no photons"):
        analyze_photons(extra, AnalysisConfig(detectors=(0, 5)))


def _sim_file(tmp_path, name, **kw):
    from qrspec.simulate import preset, simulate_particle

    ph = simulate_particle(preset("neutral", duration_s=1.0), seed=4).photons
    return write_ptu(tmp_path / name, record_type="HydraHarp2T3", timestamps=ph.timestamps,
                     detectors=ph.detectors, nanotimes=ph.nanotimes,
                     timestamps_unit=ph.timestamps_unit, nanotimes_unit=ph.nanotimes_unit,
                     **kw)


def test_markers_are_flagged_and_scan_images_refused(tmp_path, caplog):
    """Markers in a point measurement: analysed, flagged, warned on the log (stderr in the
    CLI). A header describing an image: refused, unless allow_scan."""
    from qrspec.cli import main

    marked = _sim_file(tmp_path, "marked.ptu", marker_timestamps=[10, 20, 30],
                       marker_bits=[1, 1, 2])
    res = analyze_file(marked)
    assert "3 marker records (inputs 1: 2, 2: 1) ignored" in res.error
    assert summary_values(res)["n_markers"] == 3
    assert any("marker records" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)
    scan = _sim_file(tmp_path, "scan.ptu", extra_tags=[
        ("ImgHdr_Dimensions", 3), ("ImgHdr_PixX", 16), ("ImgHdr_PixY", 8)])
    with pytest.raises(QrspecError, match=r"scan.ptu: a scan image \(ImgHdr_Dimensions=3, 16 x "
                       r"8 pixels; 0 line/frame marker records\): qrspec analyses "
                       r"single-particle point measurements; set allow_scan"):
        analyze_file(scan)
    res = analyze_file(scan, AnalysisConfig(allow_scan=True))
    assert res.status == "ok" and "analysed as one particle (allow_scan)" in res.error
    r = CliRunner().invoke(main, ["analyze", str(scan), "-o", str(tmp_path / "s.h5")])
    assert r.exit_code == 1 and "--allow-scan" in r.output
    r = CliRunner().invoke(main, ["analyze", str(scan), "-o", str(tmp_path / "s.h5"),
                                  "--allow-scan"])
    assert r.exit_code == 0, r.output


def _irf_and_decay(rng, tau_ns, n, *, sigma_ns=0.25, centre_ns=5.0, period_ns=50.0,
                   res_ns=0.016):
    """T3 photons of a mono-exponential decay convolved with a Gaussian IRF (two detectors,
    1 % flat background), and IRF photons of the same set-up."""
    def photons(delays_ns, m):
        ts = np.sort(rng.integers(0, int(2.0 / (period_ns * 1e-9)), m))
        nt = (np.mod(delays_ns, period_ns) / res_ns).astype(np.int64)
        return Photons.from_arrays(ts, rng.integers(0, 2, m), nt,
                                   timestamps_unit=period_ns * 1e-9,
                                   nanotimes_unit=res_ns * 1e-9)

    n_bg = n // 100
    d = np.concatenate([centre_ns + rng.normal(0, sigma_ns, n - n_bg)
                        + rng.exponential(tau_ns, n - n_bg), rng.random(n_bg) * period_ns])
    irf = centre_ns + rng.normal(0, sigma_ns, 200_000)
    return photons(rng.permutation(d), n), photons(irf, irf.size), irf


def test_measured_irf_reconvolution(rng, tmp_path):
    """A measured IRF (TTTR file or text histogram) drives a reconvolution fit of the state
    decays with a fitted shift; the lifetime is within 4 sigma of the truth. Without it: tail
    fits, recorded as such."""
    tau = 1.2
    ph, irf_ph, irf_ns = _irf_and_decay(rng, tau, 150_000)
    irf_file = write_ptu(tmp_path / "irf.ptu", record_type="HydraHarp2T3",
                         timestamps=irf_ph.timestamps, detectors=irf_ph.detectors,
                         nanotimes=irf_ph.nanotimes, timestamps_unit=irf_ph.timestamps_unit,
                         nanotimes_unit=irf_ph.nanotimes_unit)
    counts, edges = np.histogram(irf_ns + 3.0, bins=np.arange(0.0, 20.0, 0.016))  # other axis
    text = tmp_path / "irf.txt"
    np.savetxt(text, np.column_stack([edges[:-1], counts]), header="time_ns counts")
    # independent photons, not a cascade: their pair ratio tau/tau_first = 1.7 says "not
    # neutral" (no_neutral); the user declares the whole trace neutral to get its decay fitted
    base = AnalysisConfig(label_overrides=((0.0, 1e6, "neutral"),))
    tail = analyze_photons(ph, base)
    assert tail.states.neutral.fit_kind == "tail"
    assert summary_values(tail)["decay_fit"] == "tail"
    for path in (irf_file, text):
        res = analyze_photons(ph, base.replace(irf_path=str(path)))
        n = res.states.neutral
        assert n.fit_kind == "reconvolution" and np.isfinite(n.fit_shift_ns), path
        assert abs(n.tau_x_ns - tau) < 4 * n.tau_x_err_ns, (path, n.tau_x_ns, n.tau_x_err_ns)
        assert summary_values(res)["decay_fit"] == "reconvolution"
        assert res.alignment.irf_source == str(path)
    assert res.alignment.irf_roll_ns != 0  # the text IRF was put on the decay's rise


def test_irf_option_errors(tmp_path):
    """A bad IRF is refused before any particle (a usage error naming the file)."""
    from qrspec.cli import main

    sample = _sim_file(tmp_path, "p.ptu")
    r = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(tmp_path / "r.h5"),
                                  "--irf", str(tmp_path / "missing.txt")])
    assert r.exit_code == 2 and "missing.txt: IRF file not found" in r.output
    one_col = tmp_path / "one.txt"
    one_col.write_text("1\n5\n9\n3\n")
    r = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(tmp_path / "r.h5"),
                                  "--irf", str(one_col)])
    assert r.exit_code == 2 and "needs bin_ns=" in r.output
    r = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(tmp_path / "r.h5"),
                                  "--irf", str(one_col), "--irf-bin-ns", "0.5", "--json"])
    assert r.exit_code == 0, r.output


def test_t2_with_sync_events_runs_the_whole_pipeline(tmp_path):
    """T2 with recorded sync events: nanotimes from the last sync, and every stage runs as on
    the same particle recorded in T3 (lifetime within 4 sigma of the truth, g2(0) within
    the two analyses' errors)."""
    from qrspec.simulate import preset, simulate_particle
    from qrspec.simulate.sidecar import write_particle

    sim = simulate_particle(preset("neutral", duration_s=3.0), seed=21)
    t2, _ = write_particle(sim, tmp_path / "t2.ptu", record_type="HydraHarp2T2",
                           sidecar=False, sync_divider=1)
    t3, _ = write_particle(sim, tmp_path / "t3.ptu", sidecar=False)
    a, b = analyze_file(t2), analyze_file(t3)
    sa, sb = summary_values(a), summary_values(b)
    assert (sa["timing"], sb["timing"]) == ("t2_sync", "t3")
    assert a.states is not None and a.flid is not None and a.g2.gated is not None
    assert sa["g2_period_ns"] == pytest.approx(100.0, rel=1e-6)  # from the sync events
    tau = sim.truth.state_table.tau_ns[0, 0]
    assert abs(sa["tau_x_neutral_ns"] - tau) < 4 * sa["tau_x_neutral_err_ns"] + 0.01 * tau
    for col in ("g2_zero", "g2_zero_gated"):
        err = math.hypot(sa[f"{col}_err"], sb[f"{col}_err"])
        assert abs(sa[col] - sb[col]) < 3 * err, col  # same photons, other time base
    assert "T2 data without sync" not in a.error


def test_coarse_tcspc_bins_are_fitted_on_whole_bins(rng):
    """Instruments with TCSPC bins coarser than the 0.1 ns fit bin (here 0.25 ns) are fitted
    on their own bins (was: 'bin_ns=0.1 is shorter than one TCSPC bin')."""
    n = 60_000
    ts = np.sort(rng.integers(0, 20_000_000, n))
    nt = ((5.0 + rng.exponential(5.0, n)) % 100.0 / 0.25).astype(np.int64)
    ph = Photons.from_arrays(ts, rng.integers(0, 2, n), nt, timestamps_unit=1e-7,
                             nanotimes_unit=0.25e-9)
    # independent photons have no cascade pairs (their pair ratio says "not neutral"); the
    # user declares the trace neutral to get its decay fitted
    res = analyze_photons(ph, AnalysisConfig(label_overrides=((0.0, 1e6, "neutral"),)))
    n_state = res.states.neutral
    assert n_state.decay_bin_ns == 0.25
    assert abs(n_state.tau_x_ns - 5.0) < 4 * n_state.tau_x_err_ns


def test_hostile_span_and_period_are_capped_and_flagged(rng):
    """Issue 13 item 2: a 10 ms sync period with a 4e6 s span (trajectory and g2 grids sized
    by span / bin would need gigabytes): every grid within its cap, each coarsening flagged."""
    from qrspec.stats.correlation import MAX_G2_BINS
    from qrspec.stats.decay import MAX_FLID_DELAY_BINS
    from qrspec.stats.trace import MAX_TRACE_BINS

    n = 3000
    ts = np.sort(rng.integers(0, 4 * 10**8, n))
    nt = rng.exponential(300, n).astype(np.int64) + 100
    ph = Photons.from_arrays(ts, rng.integers(0, 2, n), nt, timestamps_unit=1e-2,
                             nanotimes_unit=4e-9)
    res = analyze_photons(ph)
    assert res.trajectory.counts.shape[0] <= MAX_TRACE_BINS
    assert res.g2.raw.counts.size <= MAX_G2_BINS
    assert res.flid.delay_edges_ns.size <= MAX_FLID_DELAY_BINS + 1
    assert res.alignment.counts.size <= 65536  # the nanotime range, not the 2.5e6-bin period
    for note in ("trajectory coarsened: bin_width_s=0.01", "g2 coarsened: bin_ns=0.5",
                 "FLID delay axis coarsened"):
        assert note in res.error, note
    assert res.error.count("trajectory coarsened") == 1  # the FLID's copy is not repeated
