"""Issue 16: the cheap cases of the hostile-input catalogue (``tests/hostile_cases.py``), one
or two per class, each as a ``qrspec`` subprocess with a time and memory limit. The whole
catalogue (about 80 cases, all classes, including other helpers' cases) is run by
``scripts/run_hostile.py``."""

from __future__ import annotations

import pytest
from hostile_cases import CASES, base_particle, run_case

CHEAP = [c for c in CASES if c.cheap]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return base_particle(tmp_path_factory.mktemp("hostile_base"))


def test_issue_16_catalogue_covers_every_class():
    classes = {c.category for c in CASES}
    assert classes >= {"disk full", "output = input", "refused output", "path-escaping ids",
                       "crafted results file", "undecodable file name", "FIFO",
                       "stuck or dying worker", "memory bomb", "hostile header",
                       "wrong-type config", "nonsense value", "concurrent batches",
                       "exit code"}
    assert len({c.name for c in CASES}) == len(CASES)
    assert len(CHEAP) >= 8


@pytest.mark.parametrize("case", CHEAP, ids=[c.name for c in CHEAP])
def test_issue_16_hostile_case(case, base, tmp_path):
    o = run_case(case, tmp_path / "work", base, timeout_s=60.0, rss_limit_mb=2048.0)
    assert o.handled, f"{case.name}: {o.problems}\n{o.output}"
