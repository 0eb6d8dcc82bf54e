"""Markov (finite-state) synapses on the fast forward-only path equal the reference loop: the
same random numbers (events, then each step's transition uniform), the same state indices,
hence the same sums of +-1 weights exactly, and the generator left where the reference
leaves it."""

import numpy as np
import pytest
import torch

import learnsyn.rollout as rollout
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.rollout import available_kernels, fast_simulate_pairs, supports_fast_path
from learnsyn.scenario import make_scenario
from learnsyn.synapse import MarkovSynapse

pytestmark = pytest.mark.skipif(
    "native" not in available_kernels("cpu"), reason="no C compiler here"
)

SCENARIOS = [
    ("ideal", {}),
    ("sparse", {"rate": 0.3, "p_plus": 0.3}),
    ("correlated", {"repeat": 0.8}),
    ("importance", {}),
]
MODELS = [("binary", {}), ("cascade", {}), ("cascade", {"depth": 3, "x": 0.3})]


def run(function, model, scenario, kind, seed=5, **options):
    """Sums and the generator's next number after one simulation."""
    settings = dict(pairs=64, burn_in=30, horizon=40, groups=8)
    settings.update(options)
    generator = torch.Generator().manual_seed(seed)
    moments = function(model, scenario, kind, generator=generator, **settings)
    return moments, torch.rand(4, generator=generator)


def assert_fast_equals_reference(model, scenario, kind, monkeypatch, **options):
    reference = run(simulate_pairs, model, scenario, kind, **options)
    with monkeypatch.context() as patch:
        patch.setattr(rollout, "simulate_pairs", None)  # not called: the fast path runs
        fast = run(fast_simulate_pairs, model, scenario, kind, **options)
    assert torch.equal(fast[0].sums, reference[0].sums)
    assert fast[0].count == reference[0].count and fast[0].p_plus == reference[0].p_plus
    assert torch.equal(fast[1], reference[1])  # the generator is where the reference leaves it
    return reference, fast


@pytest.mark.parametrize("name, params", MODELS)
@pytest.mark.parametrize("task, task_params", SCENARIOS)
def test_markov_fast_path_matches_reference(name, params, task, task_params, monkeypatch):
    model = make_model(name, params)
    scenario = make_scenario(task, task_params)
    assert supports_fast_path(model, scenario, grad=False)
    for kind in scenario.tracked_kinds():
        reference, fast = assert_fast_equals_reference(model, scenario, kind, monkeypatch)
        # the sums depend on the numbers drawn: another seed gives others
        other = run(fast_simulate_pairs, model, scenario, kind, seed=6)
        assert not torch.equal(other[0].sums, fast[0].sums)
        # the memory is there (the tracked event moves the first branch's weights up)
        gap = fast[0].sums[:5, :, 0].sum() - fast[0].sums[:5, :, 2].sum()
        assert gap > 0
    assert model._uniform_source is not None and model._paired  # as the reference leaves it


@pytest.mark.parametrize(
    "options",
    [
        dict(pairs=45, groups=4),  # 44 pairs: lanes of padding, no shared inputs
        dict(pairs=33, groups=5),  # 30 pairs in one block with padding
        dict(pairs=96, groups=3),  # whole blocks: shared inputs, both branches side by side
        dict(pairs=7, groups=7, burn_in=0),
        dict(pairs=64, groups=8, horizon=1),
        dict(pairs=64, groups=2, burn_in=300, horizon=300),  # several chunks of steps
    ],
)
@pytest.mark.parametrize("task, task_params", [SCENARIOS[0], SCENARIOS[2]])
def test_markov_fast_path_edge_sizes(options, task, task_params, monkeypatch):
    model = make_model("cascade", {})
    scenario = make_scenario(task, task_params)
    assert_fast_equals_reference(
        model, scenario, scenario.tracked_kinds()[0], monkeypatch, **options
    )


def test_many_states_find_their_transitions_by_bisection(monkeypatch):
    """Rows longer than 32 states are searched by bisection in the kernel."""
    model = make_model("serial", {"states": 40, "q": 0.7})
    for task, task_params in (SCENARIOS[0], SCENARIOS[1]):
        scenario = make_scenario(task, task_params)
        kind = scenario.tracked_kinds()[0]
        assert_fast_equals_reference(model, scenario, kind, monkeypatch, burn_in=200)


def test_transition_uniforms_drawn_through_torch_where_the_compiled_generator_is_not_used(
    monkeypatch,
):
    """Without the compiled copy of the generator the numbers come from torch, step by step."""
    monkeypatch.setattr(rollout.rollout_native, "draw_steps", lambda *args, **kwargs: None)
    model = make_model("cascade", {})
    for task, task_params in (SCENARIOS[0], SCENARIOS[3]):
        scenario = make_scenario(task, task_params)
        kind = scenario.tracked_kinds()[0]
        assert_fast_equals_reference(model, scenario, kind, monkeypatch, pairs=44, groups=4)


class _Sticky(MarkovSynapse):
    """A Markov synapse with its own step (the kernel does not know it)."""

    def __init__(self):
        super().__init__(make_model("binary", {"q": 0.5}).markov_form(), initial=0)

    def step(self, state, events, flags=None):
        return super().step(state, events.abs(), flags)


def test_markov_synapses_the_kernel_cannot_run_go_to_the_reference():
    ideal = make_scenario("ideal")
    cascade = make_model("cascade", {})
    assert supports_fast_path(cascade, ideal, grad=False)
    assert not supports_fast_path(cascade, ideal, grad=True)
    assert not supports_fast_path(cascade, ideal, grad=False, dtype=torch.float64)
    assert not supports_fast_path(cascade, make_scenario("bounded"), grad=False)
    sticky = _Sticky()
    assert not supports_fast_path(sticky, ideal, grad=False)
    kind = ideal.tracked_kinds()[0]
    reference = run(simulate_pairs, sticky, ideal, kind)
    fast = run(fast_simulate_pairs, sticky, ideal, kind)
    assert torch.equal(fast[0].sums, reference[0].sums) and torch.equal(fast[1], reference[1])
    broken = make_model("cascade", {})
    broken.cum_plus[0] = broken.cum_plus[0].flip(0)  # not a cumulative row any more
    assert not supports_fast_path(broken, ideal, grad=False)
    with pytest.raises(ValueError, match="Markov"):
        run(fast_simulate_pairs, cascade, ideal, kind, kernel="eager")


def test_monte_carlo_evaluation_of_a_cascade_is_the_same_on_both_paths(monkeypatch):
    model = make_model("cascade", {})
    scenario = make_scenario("sparse", {"rate": 0.5})
    options = dict(synapses=1000, horizon=60, burn_in=50, method="monte-carlo", batch=96, groups=4)
    reference = evaluate(model, scenario, rollout="reference", **options)
    with monkeypatch.context() as patch:
        patch.setattr(rollout, "simulate_pairs", None)  # the fast path must run
        fast = evaluate(model, scenario, rollout="fast", **options)
    assert np.array_equal(fast.snr, reference.snr)
    assert np.array_equal(fast.snr_stderr, reference.snr_stderr)
    assert fast.metrics == reference.metrics
    other = evaluate(model, scenario, rollout="fast", seed=1, **options)
    assert not np.array_equal(other.snr, fast.snr)
