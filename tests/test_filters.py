"""Tests of the particle filter language (qrspec.app.filters)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from qrspec.app.filters import ParticleFilter, apply_filter, parse_filter
from qrspec.errors import QrspecError
from qrspec.store.summary import summary_dtype, summary_row


@pytest.fixture
def rows():
    vals = [
        dict(particle_id="a", group="g1", status="ok", rate_cps=8000.0, single_emitter=True,
             n_levels=2, g2_zero=0.1),
        dict(particle_id="b", group="g1", status="ok", rate_cps=3000.0, single_emitter=True,
             n_levels=5, g2_zero=math.nan),
        dict(particle_id="c", group="g2", status="ok", rate_cps=12000.0, single_emitter=False,
             n_levels=3, g2_zero=0.6),
        dict(particle_id="d", group="g2", status="failed", rate_cps=math.nan,
             single_emitter=False, n_levels=-1, g2_zero=math.nan),
    ]
    return np.asarray([summary_row(v) for v in vals], summary_dtype())


@pytest.mark.parametrize("expr, expected", [
    ("single_emitter and rate_cps > 5000", [1, 0, 0, 0]),
    ("single_emitter", [1, 1, 0, 0]),
    ("not single_emitter", [0, 0, 1, 1]),
    ("rate_cps >= 3000 and rate_cps <= 8000", [1, 1, 0, 0]),
    ("3000 <= rate_cps < 12000", [1, 1, 0, 0]),  # chained
    ("group == 'g2' or n_levels > 4", [0, 1, 1, 1]),
    ("status != 'ok'", [0, 0, 0, 1]),
    ("n_levels > -1", [1, 1, 1, 0]),
    ("single_emitter == True", [1, 1, 0, 0]),
    ("(rate_cps > 5000 or n_levels == 5) and not (group == 'g2')", [1, 1, 0, 0]),
    ("g2_zero < rate_cps", [1, 0, 1, 0]),  # two columns
    ("True", [1, 1, 1, 1]),
])
def test_filter_selects_the_expected_rows(rows, expr, expected):
    assert_array_equal(apply_filter(rows, expr), np.asarray(expected, bool))


def test_nan_is_unknown_not_false(rows):
    # g2_zero NaN for b and d: unknown in both the comparison and its negation
    assert_array_equal(apply_filter(rows, "g2_zero < 0.5"), [1, 0, 0, 0])
    assert_array_equal(apply_filter(rows, "not (g2_zero < 0.5)"), [0, 0, 1, 0])
    # Kleene logic: unknown or True = True, unknown and False = False
    assert_array_equal(apply_filter(rows, "g2_zero < 0.5 or single_emitter"), [1, 1, 0, 0])
    assert_array_equal(apply_filter(rows, "not (g2_zero < 0.5 and n_levels > 100)"),
                       [1, 1, 1, 1])
    assert_array_equal(apply_filter(rows, "g2_zero != 0.1"), [0, 0, 1, 0])


def test_parsed_filter_records_its_columns_and_can_be_reused(rows):
    f = parse_filter("single_emitter and rate_cps > 5000 and rate_cps < 1e5")
    assert isinstance(f, ParticleFilter)
    assert f.columns == ("single_emitter", "rate_cps")
    assert f.expression == "single_emitter and rate_cps > 5000 and rate_cps < 1e5"
    assert [r.decode() for r in f(rows)["particle_id"]] == ["a"]


@pytest.mark.parametrize("expr, match", [
    ("rate > 5", r"filter='rate > 5': unknown column 'rate' \(known: particle_id, group"),
    ("rate_cps >", r"is not a valid expression \(invalid syntax"),
    ("__import__('os').system('x')", r"Call .* is not allowed as a condition"),
    ("rate_cps > 5 + 1", r"BinOp '5 \+ 1' is not allowed in a comparison"),
    ("rate_cps.real > 1", r"Attribute 'rate_cps.real' is not allowed in a comparison"),
    ("rate_cps in (1, 2)", r"operator In is not allowed"),
    ("rate_cps", r"column 'rate_cps' is not boolean \(float64\); compare it"),
    ("group > 'g1'", r"group > 'g1': text values take == and != only"),
    ("rate_cps > 'fast'", r"cannot compare rate_cps \(a number\) > 'fast' \(text\)"),
    ("single_emitter == 1", r"cannot compare single_emitter \(a boolean\) == 1 \(a number\)"),
    ("rate_cps > 1 if 1 else 2", r"IfExp .* is not allowed"),
    ("5", r"Constant '5' is not allowed as a condition"),
    ("   ", r"filter='   ': is empty"),
    ("x" * 2001, r"is 2001 characters long; at most 2000"),
    ("(" * 400 + "single_emitter" + ")" * 400, r"nested too deeply|not a valid expression"),
    ("lambda: 1", r"Lambda .* is not allowed"),
])
def test_bad_filters_are_rejected_with_the_reason(rows, expr, match):
    with pytest.raises(QrspecError, match=match):
        apply_filter(rows, expr)


def test_rejects_non_string_and_non_table(rows):
    with pytest.raises(QrspecError, match=r"filter=5 must be a string"):
        parse_filter(5)
    with pytest.raises(QrspecError, match=r"rows must be a 1-D structured array"):
        apply_filter(np.zeros(3), "single_emitter")
    f = parse_filter("alpha_grey > 1")  # alpha_on / alpha_off are columns, this is not
    with pytest.raises(QrspecError, match=r"unknown column 'alpha_grey'"):
        f.mask(rows)
    with pytest.raises(QrspecError, match=r"unknown column 'x'"):
        parse_filter("x > 1", columns=["rate_cps"])


def test_nothing_is_evaluated_as_python(rows, monkeypatch):
    import builtins

    calls = []
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: calls.append(a))
    apply_filter(rows, "rate_cps > 1")
    assert calls == []
