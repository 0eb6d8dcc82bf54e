"""The learned-vs-linear training options: cross-fitting, the late-variance SNR, the rotation
init, the chain's sigmoid saturation and the linearization of a cell (issue 11)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from learnsyn.cells import GRUSynapse, TanhRNNSynapse, make_cell, rotation_blocks
from learnsyn.estimate.montecarlo import PairMoments, simulate_pairs
from learnsyn.estimate.snr import compute_metrics, curve_from_pairs
from learnsyn.evaluate import evaluate
from learnsyn.linearization import LinearizedCell, linearize
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.scenario import make_scenario
from learnsyn.synapse import LinearSynapse
from learnsyn.training import (
    LateVarianceMoments,
    TrainConfig,
    cross_fitted_objective,
    late_variance_start,
    meta_objective,
    split_groups,
)

#: the exact optimum of 2-variable linear synapses for the area, ideal, N = 1000 (README)
OPTIMAL_A = np.array(
    [[0.993385891225646, -0.00791872793908165], [0.00791872793908165, 0.993385891]]
)
OPTIMAL_B = np.array([1.0, 0.0])
OPTIMAL_C = np.array([0.26088789962400966, 0.8448441220404407])


def linear_pairs(seed: int, pairs: int = 256, horizon: int = 300):
    model = LinearSynapse(OPTIMAL_A, OPTIMAL_B, OPTIMAL_C)
    scenario = make_scenario("ideal")
    generator = torch.Generator().manual_seed(seed)
    return simulate_pairs(
        model,
        scenario,
        scenario.tracked_kinds()[0],
        pairs=pairs,
        burn_in=1000,
        horizon=horizon,
        generator=generator,
    )


def test_split_groups_cuts_the_groups_in_two_halves():
    moments = linear_pairs(0, pairs=64, horizon=20)
    first, second = split_groups(moments)
    assert first.sums.shape[1] + second.sums.shape[1] == moments.sums.shape[1]
    assert torch.equal(torch.cat([first.sums, second.sums], 1), moments.sums)


def test_late_variance_moments_keep_the_value_and_change_only_the_gradient():
    moments = linear_pairs(1, pairs=64, horizon=40)
    sums = moments.sums.clone().requires_grad_(True)
    plain = PairMoments(sums, moments.count, moments.p_plus)
    late = LateVarianceMoments(sums, moments.count, moments.p_plus, start=30)
    assert torch.allclose(plain.snr(1000, "large-n"), late.snr(1000, "large-n"))
    assert torch.allclose(
        plain.leave_one_out_snr(1000, "large-n"), late.leave_one_out_snr(1000, "large-n")
    )
    # the SNR at age 0 no longer depends on the variance at age 0, only on the late ages'
    (grad,) = torch.autograd.grad(late.snr(1000, "large-n")[0], sums)
    assert float(grad[0, :, 1].abs().sum()) == 0.0  # w+^2 at age 0
    assert float(grad[30:, :, 1].abs().sum()) > 0.0
    assert late_variance_start(600, 0.25) == 450
    assert late_variance_start(10, 0.0) == 9


def test_the_cross_fitted_objective_is_not_rewarded_by_noise():
    """On a synthetic flat curve right at the threshold, the hinge of a noisy estimate is biased
    upwards (the plain surrogate grows with the noise); the cross-fitted value stays the true
    one, and its gradient weights come from the independent half."""
    torch.manual_seed(0)
    config = TrainConfig(
        task="ideal", synapses=1000, state_size=2, cell="gru", horizon=50, threshold=1.0
    )
    ages = torch.arange(50, dtype=torch.float32)
    # per-group sums of a synapse with signal s and unit variance: w+ ~ N(s, 1), w- ~ N(-s, 1)
    signal = 1.0 / math.sqrt(1000)  # S = signal, V ~ 1: SNR = 1 at every age (large-n)
    plain_values, crossed = [], []
    for _ in range(200):
        count = 32
        plus = signal + torch.randn(50, 16, count)
        minus = -signal + torch.randn(50, 16, count)
        sums = torch.stack([plus.sum(-1), (plus**2).sum(-1), minus.sum(-1), (minus**2).sum(-1)], -1)
        moments = PairMoments(sums, count, 0.5)
        snr = curve_from_pairs([moments], [1.0], 1000, "large-n").snr
        plain_values.append(float((snr - 1).clamp_min(0).sum()))
        snr_half = [
            curve_from_pairs([h], [1.0], 1000, "large-n").snr for h in split_groups(moments)
        ]
        weights = [(s > 1).float() for s in snr_half]
        crossed.append(
            float(
                0.5
                * ((weights[0] * (snr_half[1] - 1)).sum() + (weights[1] * (snr_half[0] - 1)).sum())
            )
        )
        value = cross_fitted_objective([split_groups(moments)], [1.0], ages, config, 1e-3)
        assert torch.isfinite(value)
    assert np.mean(plain_values) > 2.0  # the true area is 0
    assert abs(np.mean(crossed)) < 4 * np.std(crossed) / math.sqrt(len(crossed))
    assert np.mean(crossed) < np.mean(plain_values) / 4


def test_meta_objective_runs_with_every_objective_option():
    config = TrainConfig(
        task="ideal",
        synapses=100,
        state_size=2,
        cell="gru",
        batch=32,
        horizon=20,
        burn_in=20,
        device="cpu",
    )
    scenario = make_scenario("ideal")
    for options in (
        {"objective": "cross-fit"},
        {"objective": "cross-fit", "late_variance": 0.5},
        {"late_variance": 0.25},
    ):
        model = make_cell("gru", 2, init="rotation", timescale=20)
        result = meta_objective(model, scenario, replace(config, **options), 0, torch.device("cpu"))
        result.value.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("bad", [{"objective": "other"}, {"late_variance": 1.5}])
def test_bad_objective_options_are_refused(bad):
    config = replace(TrainConfig(task="ideal", synapses=100, state_size=2, cell="gru"), **bad)
    with pytest.raises(ValueError):
        config.validate()


def test_rotation_blocks_are_damped_rotations():
    scales, target = rotation_blocks(2, 250.0)
    eig = np.linalg.eigvals(target.double().numpy())
    assert np.allclose(np.abs(eig), 1 - 1 / 250, rtol=1e-6)
    assert np.allclose(np.abs(np.angle(eig)), 1 / 250, rtol=1e-4)
    scales, target = rotation_blocks(5, 100.0)  # default: from a quarter of the longest
    assert scales.tolist()[:2] == [25.0, 25.0] and scales[-1] == 100.0
    assert rotation_blocks(5, 100.0, shortest=2.0)[0].tolist()[:2] == [2.0, 2.0]
    assert target[-1, -1] == pytest.approx(0.99)
    scales, _ = rotation_blocks(6, 400.0, shortest=25.0)  # pairs at 25, 100 and 400 steps
    assert scales.tolist() == pytest.approx([25.0, 25.0, 100.0, 100.0, 400.0, 400.0])
    model = GRUSynapse(4, init="rotation", timescale=250.0, shortest=62.5)
    moduli = np.sort(np.abs(linearize(model).eigenvalues))
    assert moduli == pytest.approx([1 - 1 / 62.5] * 2 + [1 - 1 / 250] * 2, abs=2e-4)


@pytest.mark.parametrize("cls", [GRUSynapse, TanhRNNSynapse])
def test_rotation_init_linearizes_to_complex_eigenvalues(cls):
    model = cls(2, init="rotation", timescale=250.0)
    lin = linearize(model)
    eig = lin.eigenvalues
    assert lin.summary()["rotation"]
    assert np.all(np.abs(eig.imag) > 0)
    # close to the intended damped rotation (the small input keeps tanh' near 1)
    assert np.allclose(np.abs(eig), 1 - 1 / 250, atol=2e-4)
    assert np.allclose(np.abs(np.angle(eig)), 1 / 250, rtol=0.1)


def test_chrono_init_is_the_previous_default_and_real():
    lin = linearize(GRUSynapse(2, init="chrono", timescale=600.0))
    assert not lin.summary()["rotation"]


def test_the_chain_takes_no_other_init():
    with pytest.raises(ValueError, match="no free recurrent matrix"):
        make_cell("chain", 2, init="rotation")


def test_chain_saturation_has_a_gradient_below_zero():
    """``alpha = sigmoid(logit)``: unlike the former clamp, the gradient reaches the saturation
    parameter at negative pre-activations (where the former alphas ended)."""
    model = make_cell("chain", 2)
    assert float(model.alpha.detach().max()) < 0.01  # starts all but linear
    with torch.no_grad():
        model.alpha_logit.fill_(-3.0)
    state = torch.full((4, 2), 3.0)
    out = model.step(state, torch.ones(4))
    out.sum().backward()
    assert float(model.alpha_logit.grad.abs().min()) > 0


def test_linearization_of_a_linear_synapse_is_itself():
    lin = linearize(LinearSynapse(OPTIMAL_A, OPTIMAL_B, OPTIMAL_C))
    assert np.allclose(lin.A, OPTIMAL_A) and np.allclose(lin.b, OPTIMAL_B)
    assert np.allclose(lin.c, OPTIMAL_C) and np.allclose(lin.fixed_point, 0)


def test_a_fixed_point_that_iterating_cannot_reach_is_found_by_newton():
    """Review, session 32: with a mode of modulus > 1 iterating the mean map diverged and the
    linearization was NaN, said nowhere; the fixed point (I - A)^-1 d exists."""
    A = np.diag([1.05, 0.5])
    synapse = LinearSynapse(A, [1.0, 0.5], [1.0, 1.0], drive=[0.1, 0.2]).double()
    found = linearize(synapse)
    assert found.residual < 1e-12
    assert np.allclose(found.fixed_point, np.linalg.solve(np.eye(2) - A, [0.1, 0.2]))
    assert np.allclose(found.A, A)


def test_linearized_cell_matches_the_exact_linear_curve():
    """The ablation model in the ideal scenario: its Monte Carlo curve agrees with the exact one
    of its linear form."""
    model = GRUSynapse(2, init="rotation", timescale=100.0)
    ablation = LinearizedCell(linearize(model))
    scenario = make_scenario("ideal")
    kwargs = dict(synapses=1000, horizon=200, convention="large-n")
    exact = evaluate(ablation, scenario, method="exact", **kwargs)
    mc = evaluate(ablation, scenario, method="monte-carlo", batch=2048, burn_in=1000, **kwargs)
    area, err = mc.metrics["area"], mc.metrics_stderr["area"]
    assert abs(area - exact.metrics["area"]) < 4 * err + 1e-6
    cell = evaluate(model, scenario, method="monte-carlo", batch=2048, burn_in=1000, **kwargs)
    assert compute_metrics(np.arange(200), np.asarray(cell.snr))["area"] == pytest.approx(
        exact.metrics["area"], rel=0.1
    )


def test_the_burn_in_tail_gradient_is_the_same_on_the_fast_path_and_the_reference():
    scenario = make_scenario("ideal")
    kind = scenario.tracked_kinds()[0]
    grads = {}
    for fast in (True, False):
        model = make_cell("gru", 2, init="rotation", timescale=30.0)
        simulate = fast_simulate_pairs if fast else simulate_pairs
        moments = simulate(
            model,
            scenario,
            kind,
            pairs=64,
            burn_in=60,
            horizon=20,
            generator=torch.Generator().manual_seed(3),
            tail=30,
            grad=True,
        )
        curve_from_pairs([moments], [1.0], 1000, "large-n").snr.sum().backward()
        grads[fast] = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert moments.sums.shape[0] == 20
    # relative to the largest entry, as in tests/test_rollout.py: the small entries are
    # differences of large per-branch sums and move with float rounding (measured: 3e-5)
    scale = grads[False].abs().max()
    assert float((grads[True] - grads[False]).abs().max() / scale) < 1e-4


def test_a_tail_of_zero_is_the_plain_rollout():
    scenario = make_scenario("ideal")
    kind = scenario.tracked_kinds()[0]
    model = make_cell("rnn", 2, init="rotation", timescale=30.0)
    common = dict(pairs=32, burn_in=40, horizon=10, grad=True)
    plain = simulate_pairs(
        model, scenario, kind, generator=torch.Generator().manual_seed(1), **common
    )
    tail = simulate_pairs(
        model, scenario, kind, generator=torch.Generator().manual_seed(1), tail=0, **common
    )
    assert torch.allclose(plain.sums, tail.sums)


def test_the_tail_removes_the_scale_bias_of_a_linear_synapse():
    """The SNR of a linear synapse does not depend on the scale of its increment b. Without the
    burn-in in the gradient the gradient says it does (towards larger b); with a long tail it is
    about zero."""
    scenario = make_scenario("ideal")
    kind = scenario.tracked_kinds()[0]

    class Scaled(LinearSynapse):
        """A linear synapse whose increment is multiplied by a differentiable ``scale``."""

        def __init__(self, *args):
            super().__init__(*args)
            self.scale = torch.nn.Parameter(torch.tensor(1.0))

        def step(self, state, events, flags=None):
            increment = events.unsqueeze(-1).to(state.dtype) * self.b * self.scale
            return state @ self.A_T + increment

    slopes = {}
    for tail in (0, 400):
        model = Scaled(np.diag([0.95, 0.9]), [1.0, 1.0], [1.0, 0.5])
        moments = simulate_pairs(
            model,
            scenario,
            kind,
            pairs=512,
            burn_in=400,
            horizon=20,
            generator=torch.Generator().manual_seed(0),
            tail=tail,
            grad=True,
        )
        snr = curve_from_pairs([moments], [1.0], 1000, "large-n").snr
        (slope,) = torch.autograd.grad(snr.sum(), model.scale)
        slopes[tail] = float(slope) / float(snr.sum().detach())
    assert slopes[0] > 0.1
    assert abs(slopes[400]) < 1e-3


def test_default_time_scale_and_gradient_burn_in():
    config = TrainConfig(task="ideal", synapses=1000, state_size=2, cell="gru", horizon=600)
    assert config.resolved_timescale() == 250.0  # N / (4 theta^2) < horizon
    assert replace(config, synapses=10_000).resolved_timescale() == 600.0
    assert replace(config, timescale=42.0).resolved_timescale() == 42.0
    assert config.resolved_gradient_burn_in() == 750  # half of 2.5 x 600
    assert replace(config, gradient_burn_in=0).resolved_gradient_burn_in() == 0
    assert replace(config, gradient_burn_in=10**6).resolved_gradient_burn_in() == 1500


def test_auto_init_is_the_rotation_sized_to_the_range_where_the_state_is_constrained():
    base = TrainConfig(task="ideal", synapses=100, state_size=2, cell="gru", horizon=20)
    assert base.init == "auto"
    assert replace(base).validate().init == "rotation"
    assert replace(base).validate().cell_params == {}  # ideal: as before
    assert replace(base, cell="rnn").validate().init == "rotation"
    assert replace(base, cell="chain").validate().init == "default"
    bounded = replace(base, task="bounded").validate()
    assert bounded.init == "rotation"
    assert bounded.cell_params == {"state_std": 0.8, "output_scale": 4.0, "update_gate": 0.5}
    noisy = replace(base, task="noisy", cell="rnn", cell_params={"output_scale": 2.0}).validate()
    assert noisy.cell_params == {"state_std": 0.8, "output_scale": 2.0}  # given values win
    assert replace(base, task="bounded", init="rotation").validate().cell_params == {}
    assert replace(base, init="chrono").validate().init == "chrono"
    from learnsyn.training import build_model

    assert linearize(build_model(base)).summary()["rotation"]  # unvalidated: resolved too
    assert make_cell("gru", 2).resolved_init() == "chrono"  # the cell's own default


def test_default_learning_rate_depends_on_the_cell():
    base = TrainConfig(task="ideal", synapses=100, state_size=2, cell="gru", horizon=20)
    assert base.resolved_lr() == 0.005
    assert replace(base, cell="rnn").resolved_lr() == 0.0005
    assert replace(base, cell="rnn", lr=0.01).resolved_lr() == 0.01
    assert replace(base, cell="rnn").validate().lr == 0.0005  # resolved into config.json


def test_auto_estimator_is_the_grid_where_it_fits():
    base = TrainConfig(task="bounded", synapses=100, state_size=2, cell="gru", horizon=20)
    assert base.estimator == "auto"
    assert replace(base).validate().estimator == "grid"
    assert replace(base).validate().lr == 0.02
    assert replace(base, cell="rnn").validate().lr == 0.01
    assert replace(base, state_size=4).validate().estimator == "monte-carlo"  # 16^4 states
    assert replace(base, task="noisy").validate().estimator == "monte-carlo"
    assert replace(base, task="ideal").validate().lr == 0.005  # Monte Carlo: as before
    assert replace(base, estimator="monte-carlo").validate().lr == 0.005


def test_a_supplied_simulator_gets_the_burn_in_tail():
    """A simulator given to ``meta_objective`` (the distributed one) receives the burn-in tail
    like the default one: without it the distributed gradient would be the biased one."""
    from learnsyn.training import build_model

    config = TrainConfig(
        task="ideal", state_size=2, cell="gru", batch=32, horizon=10, burn_in=20,
        gradient_burn_in=6, iterations=1, device="cpu",
    )  # fmt: skip
    seen = []

    def spy(model, scenario, kind, **batch):
        seen.append(batch["tail"])
        return simulate_pairs(model, scenario, kind, **batch)

    scenario = make_scenario("ideal")
    meta_objective(build_model(config), scenario, config, 0, torch.device("cpu"), simulate=spy)
    assert seen == [6]


def test_in_sparse_the_linearization_is_taken_at_the_scenarios_own_operating_point():
    """Review, session 36: the linearization iterated the mean map over +-1 events alone, so
    in sparse (most steps without an event) the linearized cell stood still at h* where the
    cell moved by F(h*, 0) - h*, and the gap counted as the cell's nonlinearity. Now h* is the
    fixed point of the scenario's mean map (0 included), A its Jacobian there (checked by
    autograd) and the linearized cell keeps h* as its mean state."""
    from learnsyn.linearization import scenario_events
    from learnsyn.scenario import make_scenario

    torch.manual_seed(3)
    model = GRUSynapse(2, init="chrono", timescale=50.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    scenario = make_scenario("sparse", {"rate": 0.2, "p_plus": 0.8})
    events = scenario_events(scenario)
    assert dict(events) == pytest.approx({1.0: 0.16, -1.0: 0.04, 0.0: 0.8})
    lin = linearize(model, events=events)
    double = model.double()
    h = torch.tensor(lin.fixed_point).unsqueeze(0)

    def mean_map(state):
        ones = torch.ones(1, dtype=torch.float64)
        return sum(p * double.step(state.unsqueeze(0), v * ones)[0] for v, p in events)

    assert torch.allclose(mean_map(h[0]), h[0], atol=1e-9)
    jacobian = torch.autograd.functional.jacobian(mean_map, h[0])
    np.testing.assert_allclose(lin.A, jacobian.numpy(), atol=1e-9)
    ablation = LinearizedCell(lin).double()
    average = sum(p * ablation.step(h, v * torch.ones(1, dtype=torch.float64)) for v, p in events)
    np.testing.assert_allclose(average[0].numpy(), lin.fixed_point, atol=1e-12)
    balanced = linearize(model)  # the former operating point differs
    assert np.abs(balanced.fixed_point - lin.fixed_point).max() > 0.01


def test_in_sparse_the_response_profile_samples_the_cells_own_states():
    """Review of session 36's diff: the profile's states came from balanced +-1 events at
    every step, states the cell never visits in sparse (mean [-0.01, 0.00], std [0.61, 0.16]
    where the sparse stream gives [0.07, -0.16], [0.21, 0.04]), and its drift from the +-1
    mean map: 0.05 of drift 'missed' at h* where the linearization predicts none."""
    from learnsyn.linearization import (
        linearize_in,
        response_profile,
        scenario_events,
        stationary_states,
    )
    from learnsyn.scenario import make_scenario

    model = make_cell("rnn", 2, seed=3)
    scenario = make_scenario("sparse", {"rate": 0.1, "p_plus": 0.8})
    states = stationary_states(model, scenario, batch=1024, steps=1500)
    lin = linearize_in(model, scenario, states)
    assert np.abs(states.mean(0).numpy() - lin.fixed_point).max() < 0.02
    profile = response_profile(model, lin, states, scenario_events(scenario))
    assert np.abs((profile["drift"] - profile["drift_linear"]).mean(0)).max() < 0.005


def test_in_importance_the_response_profile_samples_states_of_the_flagged_stream():
    """Review, session 38: importance's events carry flags, so ``scenario_events`` gives the
    balanced +-1 pair and the states were sampled from unboosted, unflagged events: a GRU whose
    candidate reads the flag sat at mean [0.00, -0.00], std [0.001, 0.002] where its own stream
    gives [0.05, 0.00], [0.018, 0.011]."""
    from learnsyn.linearization import stationary_states
    from learnsyn.scenario import make_scenario

    scenario = make_scenario("importance", {"fraction": 0.1, "boost": 4.0})
    model = make_cell("gru", 2, init="rotation", timescale=50.0)
    with torch.no_grad():
        model.W_in[4:, 1] += 0.5  # the candidate reads the flag
    states = stationary_states(model, scenario, batch=1024, steps=500)
    generator = torch.Generator().manual_seed(1)
    h, stream = model.initial_state(1024), scenario.new_stream(1024, "cpu")
    with torch.no_grad():
        for _ in range(500):
            u = torch.rand(1024, scenario.uniforms_per_step, generator=generator)
            events, flags, stream = scenario.next_events(stream, u)
            h = model.step(h, events, flags)
    np.testing.assert_allclose(states.mean(0).numpy(), h.mean(0).numpy(), atol=0.005)
    np.testing.assert_allclose(states.std(0).numpy(), h.std(0).numpy(), rtol=0.15)
