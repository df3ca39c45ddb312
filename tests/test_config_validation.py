"""Issue 16: typed validation of every AnalysisConfig field; every error names the field.

Each rule refused here was accepted (or crashed with a TypeError) before: a bool is not a
number, a fraction is not a detector index, a string is not a number, JSON nested 100 k deep
is not a config, a FIFO is not a config file.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from qrspec.analysis.config import (
    MAX_CONFIG_BYTES,
    MAX_JSON_DEPTH,
    AnalysisConfig,
    ChargeModelParams,
)
from qrspec.errors import QrspecError


@pytest.mark.parametrize("bad, match", [
    ({"cpa_alpha": "x"}, r"^cpa_alpha='x' must be a finite number in \(0, 0\.5\)$"),
    ({"cpa_alpha": True}, r"^cpa_alpha=True must be a finite number"),
    ({"cpa_confidence": 1.0}, r"^cpa_confidence=1\.0 must be a finite number in \(0, 1\)$"),
    ({"charge_model": 5}, r"^charge_model=5 must be a ChargeModelParams \(or a dict"),
    ({"charge_model": [1]}, r"^charge_model=\[1\] must be a ChargeModelParams"),
    ({"detectors": "ab"}, r"^detectors='ab' must be distinct 0-based detectors in 0\.\.255"),
    ({"detectors": [0.7, 1.2]}, r"^detectors=\[0\.7, 1\.2\] must be distinct 0-based"),
    ({"detectors": [True, 0]}, r"^detectors=\[True, 0\] must be"),
    ({"detectors": [0, 256]}, r"^detectors=\[0, 256\] must be .* in 0\.\.255"),
    ({"detectors": [-1, 0]}, r"^detectors=\[-1, 0\] must be"),
    ({"detectors": [0, 1, 2]}, r"^detectors=\[0, 1, 2\] must be one or two"),
    ({"detectors": {"a": 1}}, r"^detectors=\{'a': 1\} must be"),
    ({"min_decay_photons": -1}, r"^min_decay_photons=-1 must be an integer >= 1$"),
    ({"min_decay_photons": 10.0}, r"^min_decay_photons=10\.0 must be an integer >= 1$"),
    ({"mean_excitations": True}, r"^mean_excitations=True must be a finite number in "
                                 r"\(0, 50\) or null$"),
    ({"mean_excitations": 0}, r"^mean_excitations=0 must be"),
    ({"bin_width_s": float("nan")}, r"^bin_width_s=nan must be a finite number in "
                                    r"\(0, 86400\]$"),
    ({"bin_width_s": "0.01"}, r"^bin_width_s='0\.01' must be a finite number"),
    ({"bin_width_s": None}, r"^bin_width_s=None must be a finite number"),
    ({"g2_bin_ns": -0.5}, r"^g2_bin_ns=-0\.5 must be"),
    ({"g2_max_lag_periods": 2.5}, r"^g2_max_lag_periods=2\.5 must be an integer >= 2$"),
    ({"g2_max_lag_periods": False}, r"^g2_max_lag_periods=False must be an integer"),
    ({"g2_peak_window_ns": 0}, r"^g2_peak_window_ns=0 must be a finite number in "
                               r"\(0, 1e\+09\] or null$"),
    ({"gate_after_rise_ns": float("inf")}, r"^gate_after_rise_ns=inf must be a finite number "
                                           r"in \[0, 1e\+09\]$"),
    ({"hbt_delay_ns": True}, r"^hbt_delay_ns=True must be a finite number"),
    ({"hbt_delay_ns": "5"}, r"^hbt_delay_ns='5' must be a finite number"),
    ({"max_levels": 21}, r"^max_levels=21 must be an integer in \[1, 20\]$"),
    ({"charging_window_s": 0}, r"^charging_window_s=0 must be"),
    ({"single_emitter_max_g2": 1.5}, r"^single_emitter_max_g2=1\.5 must be a finite number in "
                                     r"\(0, 1\]$"),
    ({"fit_method": 3}, r"^fit_method=3 must be 'mle' or 'lsq'$"),
    ({"fit_method": ["mle"]}, r"^fit_method=\['mle'\] must be 'mle' or 'lsq'$"),
    ({"charge_model": {"eps": True}}, r"^charge_model\.eps=True must be a finite number$"),
    ({"charge_model": {"eps": 2}}, r"^charge_model\.eps=2 must be in \[0\.0, 1\.0\]$"),
    ({"charge_model": {"knr_all_states": 1}}, r"^charge_model\.knr_all_states=1 must be true "
                                              r"or false$"),
    ({"charge_model": {"sign": 1}}, r"^charge_model\.sign=1 must be"),
    ({"charge_model": {"levels_e": 5}}, r"^charge_model=\{'levels_e': 5\} is malformed"),
    ({"charge_model": {"gamma": -1}}, r"^charge_model\.gamma=-1 must be"),
    ({"charge_model": {"qy_x0": 0}}, r"^charge_model\.qy_x0=0 must be in \(0, 1\]$"),
    ({"charge_model": {"beta_xx": "4"}}, r"^charge_model\.beta_xx='4' must be"),
    ({"charge_model": {"tau_a_xx0_ns": 0}}, r"^charge_model\.tau_a_xx0_ns=0 must be"),
    ({"charge_model": {"variant": 5}}, r"^charge_model\.variant=5 must be one of "),
    ({"charge_model": {"variant": "levels"}}, r"^charge_model\.variant='levels' must be one of "
                                              r"'capped', 'uncapped', 'power_law'$"),
    ({"charge_model": {"bogus": 1}}, r"^unknown charge_model keys \['bogus'\]"),
])
def test_issue_16_config_field_types(bad, match):
    with pytest.raises(QrspecError, match=match):
        AnalysisConfig.from_dict(bad)


def test_issue_16_config_accepts_good_values_of_every_type():
    cfg = AnalysisConfig(detectors=np.array([3, 1]), bin_width_s=1,
                         g2_max_lag_periods=np.int64(7), hbt_delay_ns=np.float32(-24.5),
                         mean_excitations=0.2, g2_peak_window_ns=None,
                         charge_model={"eps": 1, "tau_a_xx0_ns": 13.9})
    assert cfg.detectors == (3, 1) and isinstance(cfg.detectors[0], int)
    assert cfg.charge_model == ChargeModelParams(eps=1, tau_a_xx0_ns=13.9)
    assert AnalysisConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(QrspecError, match=r"^config must be an object \(a JSON dict\), not list"):
        AnalysisConfig.from_dict([1])


@pytest.mark.parametrize("text, match", [
    ("[" * 100_000 + "]" * 100_000, r"config JSON is nested deeper than 16 levels"),
    ('{"a": ' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1),
     r"config JSON is nested deeper than 16 levels"),
    ("[1, 2]", r"config JSON must be an object"),
    ("{", r"config is not valid JSON"),
])
def test_issue_16_config_json_shape(text, match):
    with pytest.raises(QrspecError, match=match):
        AnalysisConfig.from_json(text)


def test_issue_16_config_file_checks(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it for reading would block for ever without a writer
    with pytest.raises(QrspecError, match=r"fifo\.json: cannot read config: is a FIFO \(named "
                                          r"pipe\), not a config file"):
        AnalysisConfig.from_file(fifo)
    with pytest.raises(QrspecError, match=r"cannot read config: is a directory, not a config "
                                          r"file"):
        AnalysisConfig.from_file(tmp_path)
    big = tmp_path / "big.json"
    big.write_text('{"x": "' + "a" * MAX_CONFIG_BYTES + '"}')
    with pytest.raises(QrspecError, match=rf"big\.json: config file size=\d+ bytes exceeds "
                                          rf"{MAX_CONFIG_BYTES}"):
        AnalysisConfig.from_file(big)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"fit_method": "\xff"}')
    with pytest.raises(QrspecError, match=r"latin\.json: config is not UTF-8 text \(invalid "
                                          r"start byte at byte 16\)"):
        AnalysisConfig.from_file(latin)
    good = tmp_path / "good.json"
    good.write_text("\ufeff" + json.dumps({"gate_after_rise_ns": 2.0}))  # a BOM is fine
    assert AnalysisConfig.from_file(good).gate_after_rise_ns == 2.0


@pytest.mark.parametrize("args, match", [
    (["--config", "{cfg}"], r"Invalid value for --config: .*c\.json: cpa_alpha='x' must be"),
    (["--min-decay-photons", "-1"], r"min_decay_photons=-1 must be an integer >= 1"),
    (["--detectors", "0.7", "1.2"], r"'0\.7' is not a valid integer"),
    (["--gate-after-rise-ns", "nan"], r"gate_after_rise_ns=nan must be a finite number"),
])
def test_issue_16_cli_config_errors_exit_2_naming_the_field(tmp_path, args, match):
    from qrspec.cli import main

    cfg = tmp_path / "c.json"
    cfg.write_text('{"cpa_alpha": "x"}')
    args = [a.replace("{cfg}", str(cfg)) for a in args]
    r = CliRunner().invoke(main, ["analyze", str(tmp_path / "x.ptu"), "-o",
                                  str(tmp_path / "r.h5"), *args])
    assert r.exit_code == 2, r.output
    assert __import__("re").search(match, r.output), r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]
