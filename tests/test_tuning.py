"""Baseline tuning finds known optima."""

import math

import pytest
import scipy.optimize

from learnsyn.scenario import make_scenario
from learnsyn.tuning import tune


def test_exponential_area_optimum_matches_the_continuum_estimate():
    # area ~ integral of (a e^{-k t} - 1)_+ with a = sqrt(2 N k): maximal at a - 1 - 2 ln a = 0,
    # area = 2N (a - 1 - ln a) / a^2; the discrete sum agrees to within a fraction of a percent
    N = 2000
    a = scipy.optimize.brentq(lambda a: -a + 1 + 2 * math.log(a), 2, 10)
    expected = 2 * N * (a - 1 - math.log(a)) / a**2
    result = tune("exponential", make_scenario("ideal"), synapses=N, metric="area", horizon=3000)
    assert result.best_value == pytest.approx(expected, rel=0.01)
    assert result.evaluation.metrics["initial_snr"] == pytest.approx(a, rel=0.02)


def test_state_budget_caps_the_chain_length():
    result = tune(
        "benna-fusi",
        make_scenario("ideal"),
        synapses=1000,
        metric="log_area",
        max_state=3,
        horizon=2000,
        grid_points=6,
        refine_iterations=20,
    )
    assert 1 <= result.best_params["variables"] <= 3


def test_fixed_parameters_are_held_and_checked():
    result = tune(
        "benna-fusi",
        make_scenario("ideal"),
        synapses=1000,
        metric="area",
        fixed={"variables": 2, "ratio": 2.0},
        horizon=500,
        grid_points=8,
    )
    assert result.best_params["variables"] == 2 and result.best_params["ratio"] == 2.0
    with pytest.raises(ValueError, match="has no parameter"):
        tune("benna-fusi", make_scenario("ideal"), synapses=10, fixed={"speed": 1})
