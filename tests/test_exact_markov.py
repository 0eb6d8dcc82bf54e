"""Exact SNR of finite-state synapses against closed forms."""

import math

import numpy as np
import pytest

from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.scenario import make_scenario
from learnsyn.tuning import tune

N = 1000


@pytest.mark.parametrize("q", [0.05, 0.3, 1.0])
def test_binary_switch_closed_form(q):
    # from the stationary state (1/2, 1/2) a +1 event gives E[w|+] = q; the memory then decays
    # by (1 - q) per step; S = 2 f+ f- (E+ - E-) = q (1-q)^tau, Var w = 1
    result = evaluate(
        make_model("binary", {"q": q}),
        make_scenario("ideal"),
        synapses=N,
        horizon=50,
        convention="large-n",
    )
    ages = np.arange(50)
    assert np.allclose(result.snr, math.sqrt(N) * q * (1 - q) ** ages, atol=1e-9)


def test_binary_switch_lifetime_optimum_near_e_over_sqrt_n():
    result = tune(
        "binary",
        make_scenario("ideal"),
        synapses=N,
        metric="lifetime",
        horizon=200,
        convention="large-n",
    )
    q = result.best_params["q"]
    assert q == pytest.approx(math.e / math.sqrt(N), rel=0.1)
    assert result.best_value == pytest.approx(math.sqrt(N) / math.e, rel=0.1)


@pytest.mark.parametrize("name", ["binary", "serial", "cascade"])
def test_transition_matrices_are_stochastic(name):
    form = make_model(name).markov_form()
    for M in (form.M_plus, form.M_minus):
        assert np.all(M >= 0) and np.allclose(M.sum(1), 1.0)


def test_cascade_forgets_as_a_power_law_then_exponentially():
    model = make_model("cascade", {"depth": 10})
    ages = np.array([10, 100, 1000, 10**5])
    result = evaluate(
        model, make_scenario("ideal"), synapses=N, ages=ages, horizon=10**5, convention="large-n"
    )
    snr = np.array(result.snr)
    slope = np.log(snr[1] / snr[2]) / np.log(10)
    assert 0.5 < slope < 1.5  # ~1/t over the cascade's range of time scales (~2^depth)
    assert snr[3] < 1e-3 * snr[2]  # beyond it the slowest level forgets exponentially


def test_sparse_events_slow_forgetting_by_the_rate():
    binary = make_model("binary", {"q": 0.2})
    dense = evaluate(binary, make_scenario("ideal"), synapses=N, horizon=40)
    sparse = evaluate(binary, make_scenario("sparse", {"rate": 0.5}), synapses=N, horizon=80)
    # half the events: the same curve over twice the ages (exactly, for the large-n signal)
    assert sparse.snr[0] == pytest.approx(dense.snr[0])
    assert sparse.metrics["lifetime"] > dense.metrics["lifetime"]


@pytest.mark.parametrize(
    ("name", "params"), [("binary", {"q": 0.3}), ("serial", {"states": 6, "q": 0.5})]
)
def test_correlated_events_are_exact_through_the_chain_augmented_with_the_last_event(name, params):
    """Markov-correlated events (repeat 0.8) make a finite-state synapse exactly solvable on
    (state, last event); Monte Carlo (8192 pairs) agrees at every age and on the area."""
    scenario = make_scenario("correlated", {"repeat": 0.8})
    model = make_model(name, params)
    kw = dict(synapses=100, horizon=40, convention="large-n")
    exact = evaluate(model, scenario, method="exact", **kw)
    assert evaluate(model, scenario, method="auto", **kw).method == "exact"
    mc = evaluate(model, scenario, method="monte-carlo", batch=8192, seed=3, **kw)
    # where every pair's two branches have met (stream and state) the standard error is 0 and
    # the estimate is off by less than one pair can move it: sqrt(N) / pairs (weights in [-1, 1])
    difference = np.abs(np.array(mc.snr) - np.array(exact.snr))
    assert np.all(difference <= 4.0 * np.array(mc.snr_stderr) + np.sqrt(100) / 8192)
    assert abs(mc.metrics["area"] - exact.metrics["area"]) < 3 * mc.metrics_stderr["area"]
    independent = evaluate(
        model, make_scenario("correlated", {"repeat": 0.5}), method="exact", **kw
    )
    ideal = evaluate(model, make_scenario("ideal"), method="exact", **kw)
    np.testing.assert_allclose(independent.snr, ideal.snr, rtol=1e-9)  # repeat 0.5: independent


def test_a_chain_that_sits_in_one_state_has_no_round_off_snr():
    """Session 24's review: with M+ leaking out of state 0 with probability 3e-17 the chain
    sits in state 1, ``E[w^2] - E[w]^2`` about 0 cancelled to exactly 0, and the large-n SNR
    read 6e134. About the stationary mean the variance is the true 5e-17 order and the SNR
    below 1e-6."""
    from learnsyn.estimate import exact
    from learnsyn.estimate.snr import snr_from_moments
    from learnsyn.scenario import MarkovStatistics, TrackedKind
    from learnsyn.synapse import MarkovForm

    form = MarkovForm(np.array([[1 - 3e-17, 3e-17], [0.0, 1.0]]),
                      np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([-1.0, 1.0]))  # fmt: skip
    kinds = (TrackedKind("x"),)
    signal, variance = exact.markov_signal_and_variance(
        form, MarkovStatistics(1.0, 0.5), kinds, np.arange(4)
    )
    assert np.all(variance > 0)
    assert np.all(snr_from_moments(signal[0], variance[0], 1000, "large-n") < 1e-6)
    ((_, (block_signal, block_variance)),) = exact.markov_signal_and_variance_blocks(
        form, MarkovStatistics(1.0, 0.5), kinds, 4
    )
    assert np.allclose(block_variance, variance, rtol=1e-6)


def test_a_transition_uniform_of_exactly_0_takes_the_first_state_with_probability(monkeypatch):
    """Review, session 33: the step took the number of cumulative entries below u, so u = 0
    (``torch.rand`` draws it with probability 2^-24) sent a row that opens with zeros to state
    0: serial with q = 1 jumped from states 5 and 2 to 0 on a + event, not to 6 and 3."""
    import torch

    model = make_model("serial", {"states": 8, "q": 1.0})
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.zeros(*shape))
    state = torch.tensor([[5.0], [2.0]])
    moved = model.step(state, torch.tensor([1.0, 1.0]))
    assert moved[:, 0].tolist() == [6.0, 3.0]


def test_a_chain_with_two_closed_classes_is_refused_in_one_line():
    """Review, session 33: least squares returned one mixture of the two closed classes'
    distributions as "the" stationary one."""
    from learnsyn.estimate.exact import stationary_distribution

    two = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])  # {0} and {1, 2}
    with pytest.raises(ValueError, match="no unique stationary distribution"):
        stationary_distribution(two)
    transient = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])  # 0 is transient
    np.testing.assert_allclose(stationary_distribution(transient), [0.0, 0.5, 0.5], atol=1e-12)


@pytest.mark.parametrize(("depth", "x"), [(11, 0.05), (12, 0.05), (40, 0.5)])
def test_a_deep_cascade_is_irreducible_and_occupies_its_states_equally(depth, x):
    """Review, session 34: a numerical rank (least squares) called these chains reducible from
    depth 12 at x = 0.05 (their smallest transitions are near x^(depth - 1)), and at depth 11
    was off by 2e-3 in pi. The cascade's states are equally occupied: pi = 1 / (2 depth)."""
    from learnsyn.estimate.exact import background_chain, stationary_distribution
    from learnsyn.scenario import MarkovStatistics

    model = make_model("cascade", {"depth": depth, "x": x})
    chain = background_chain(model.markov_form(), MarkovStatistics(1.0, 0.5))
    np.testing.assert_allclose(stationary_distribution(chain), 1 / (2 * depth), rtol=1e-12)
    result = evaluate(model, make_scenario("ideal"), synapses=1000, horizon=100)
    assert result.method == "exact" and np.isfinite(result.metrics["area"])


def test_the_cascade_is_fusi_drew_abbotts_only_up_to_x_one_half():
    """Review, session 37: above x = 1/2, x^d / (1 - x) exceeds 1 and was clipped, so the
    deepest level was less stable than the one above it (a clamped chain labelled "cascade",
    and the tuner chose x = 0.705). Refused; at x = 1/2 no probability is clipped and each
    level switches with probability x^(d-1), the deepest x^(n-1) / (1 - x)."""
    with pytest.raises(ValueError, match=r"parameter x=0.7 is out of range"):
        make_model("cascade", {"depth": 5, "x": 0.7})
    form = make_model("cascade", {"depth": 5, "x": 0.5}).markov_form()
    plus = form.M_plus[:5, 5:].sum(axis=1)[::-1]  # from (-, d) to the + side, d = 1..5
    np.testing.assert_allclose(plus, [1.0, 0.5, 0.25, 0.125, 0.0625 / 0.5])
