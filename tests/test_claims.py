"""Claims of README on stored parameters: the importance GRU (m = 2, `learnsyn train` defaults,
seed 0) is below the linear synapse that sees the flag and far above the flag-blind baselines
that made it look twice as good; the ideal GRU is within 2% of the optimum at m = 4 and is the
optimum at m = 2."""

import pytest

from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.runs import evaluate_trained
from learnsyn.scenario import make_scenario


def test_learned_gru_is_below_the_gated_linear_synapse_and_above_the_flag_blind_ones(stored_run):
    stored, config, model = stored_run("importance-gru-m2-s0")
    learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
    area, stderr = learned.metrics["area"], learned.metrics_stderr["area"]
    scenario = make_scenario("importance")
    kw = dict(synapses=1000, horizon=600, convention="large-n", method="exact")
    gated = evaluate(make_model("optimal-linear", stored["gated_optimal_linear"]), scenario, **kw)
    assert gated.metrics["area"] == pytest.approx(stored["gated_area"], rel=1e-9)
    blind = {key: value for key, value in stored["gated_optimal_linear"].items()}
    blind.pop("b_flagged")  # the same synapse, blind to the flag
    flag_blind = evaluate(make_model("optimal-linear", blind), scenario, **kw).metrics["area"]
    exponential = evaluate(make_model("exponential", {"decay": 0.99755}), scenario, **kw)
    # measured: 1181-1200 +- 10-21 on six seeds of 4096 pairs; the scoreboard's 1202.1 +- 10.4
    assert area == pytest.approx(1190, abs=4 * stderr)
    assert area < gated.metrics["area"] - 3 * stderr  # below the gated optimum, 1265.6
    assert area > 2 * exponential.metrics["area"]  # the best flag-blind exponential: 505.4
    assert gated.metrics["area"] > 2 * flag_blind


def test_ideal_m4_gru_from_the_new_start_is_within_two_percent_of_the_optimum(stored_run):
    """The ideal m = 4 GRU (defaults, seed 0) is its own linearization, whose exact area is
    237.4: 0.987 of optimal-linear's 240.64 (from the former start, pairs from 2 steps, the three
    seeds' linearizations scored 229.0, 228.8 and 229.1: the m = 2 optimum, 228.5)."""
    from learnsyn.linearization import LinearizedCell, linearize

    _, config, model = stored_run("ideal-gru-m4-s0")
    scenario = make_scenario("ideal")
    kw = dict(synapses=1000, horizon=600, convention="large-n")
    linear = evaluate(LinearizedCell(linearize(model)), scenario, method="exact", **kw)
    assert linear.metrics["area"] == pytest.approx(237.42, abs=0.05)  # measured
    assert linear.metrics["area"] > 0.98 * 240.64  # optimal-linear, m = 4 (exact; the scoreboard)
    assert linear.metrics["area"] < 240.64  # and not above it: it is a linear synapse
    learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
    assert (
        abs(learned.metrics["area"] - linear.metrics["area"]) < 3 * learned.metrics_stderr["area"]
    )


def test_ideal_m2_gru_is_the_optimal_linear_synapse(stored_run):
    """Issue 11's ideal criterion on a stored run (m = 2, defaults, seed 0): the GRU is its own
    linearization, whose exact area is 228.41, 0.9996 of optimal-linear's 228.50 (seeds 1 and
    2: 227.61 and 228.44); the bar is 0.98."""
    from learnsyn.linearization import LinearizedCell, linearize

    _, config, model = stored_run("ideal-gru-m2-s0")
    kw = dict(synapses=1000, horizon=600, convention="large-n")
    scenario = make_scenario("ideal")
    linear = evaluate(LinearizedCell(linearize(model)), scenario, method="exact", **kw)
    assert linear.metrics["area"] == pytest.approx(228.41, abs=0.05)  # measured
    assert 0.98 * 228.50 < linear.metrics["area"] <= 228.50 + 1e-6  # optimal-linear, exact
    learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
    assert (
        abs(learned.metrics["area"] - linear.metrics["area"]) < 3 * learned.metrics_stderr["area"]
    )
