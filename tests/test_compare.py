"""The comparison's verdict: the ratio error includes the baseline's own error."""

import math

import pytest

from learnsyn.compare import verdict


def _data(learned, learned_err, base, base_err):
    row = lambda name, v, e: {"name": name, "metrics": {"area": v}, "metrics_stderr": {"area": e}}  # noqa: E731
    return {
        "metric": "area",
        "models": [row("learned", learned, learned_err), row("b", base, base_err)],
    }


def test_ratio_error_propagates_both_sides():
    v = verdict(_data(110.0, 1.1, 100.0, 2.0))
    assert v["ratio"] == pytest.approx(1.1)
    assert v["ratio_stderr"] == pytest.approx(1.1 * math.hypot(0.01, 0.02))
    assert v["best_baseline_stderr"] == 2.0
    exact = verdict(_data(110.0, 1.1, 100.0, 0.0))
    assert exact["ratio_stderr"] == pytest.approx(0.011)  # an exact baseline adds nothing
    assert v["ratio_stderr"] > exact["ratio_stderr"]
