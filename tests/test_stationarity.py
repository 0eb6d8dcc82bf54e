"""The final evaluation's stationarity check: the metric again after 10 x the run's burn-in."""

import pytest
import torch

from learnsyn.config import TrainConfig
from learnsyn.registry import make_model
from learnsyn.runs import evaluate_trained, stationarity_check
from learnsyn.scenario import make_scenario

CONFIG = TrainConfig(
    task="ideal", synapses=100, state_size=1, cell="gru", horizon=10, eval_batch=2048
).validate()


@pytest.mark.parametrize("decay, stationary", [(0.5, True), (0.9999, False)])
def test_a_synapse_still_filling_up_its_variance_is_flagged(decay, stationary):
    # from the zero state, a slow synapse's weight variance keeps growing through the 25-step
    # burn-in, so its early SNR is far above the stationary one; a fast one has forgotten it
    model = make_model("exponential", {"decay": decay})
    scenario = make_scenario("ideal")
    result = evaluate_trained(model, CONFIG, batch=2048, seed=1, device=torch.device("cpu"))
    check = stationarity_check(model, scenario, CONFIG, torch.device("cpu"), result, False)
    assert check["burn_in"] == 10 * CONFIG.resolved_burn_in()
    assert check["stationary"] is stationary


def test_a_run_without_burn_in_is_checked_after_ten_horizons():
    """With ``burn_in=0`` ten times the burn-in is still 0, and the check compared two
    evaluations from the initial state, which always agree: it now waits ten horizons at least
    (found by a review: an exponential of decay 0.9999 passed with area 40 against 0)."""
    from dataclasses import replace

    config = replace(CONFIG, burn_in=0).validate()
    model = make_model("exponential", {"decay": 0.9999})
    scenario = make_scenario("ideal")
    result = evaluate_trained(model, config, batch=2048, seed=1, device=torch.device("cpu"))
    check = stationarity_check(model, scenario, config, torch.device("cpu"), result, False)
    assert check["burn_in"] == 10 * config.horizon
    assert check["stationary"] is False
