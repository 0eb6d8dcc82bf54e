"""The learned cells' saturation ``s tanh(y / s)`` (``output_scale``) and the rotation init sized
to a constrained scenario (``state_std``, ``update_gate``).

Why the scale exists: in ``bounded`` the optimal 2-variable linear synapse fills the whole range
[-1, 1], which is also the range of ``tanh``. Placed by hand into a plain-tanh GRU or RNN (its
linearization set to the optimal A, b, c), it loses a quarter of its area to tanh's curvature;
with a scale s >> 1 the cell is linear over the range and recovers the linear optimum. A cell that
cannot represent the linear synapse cannot be expected to beat it.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from learnsyn.cells import GRUSynapse, TanhRNNSynapse, make_cell
from learnsyn.estimate.grid import grid_snr
from learnsyn.estimate.snr import compute_metrics
from learnsyn.linearization import linearize
from learnsyn.rollout import available_kernels, supports_fast_path
from learnsyn.scenario import make_scenario

#: the optimal 2-variable linear synapse of ``bounded`` (N = 1000, horizon 600, area above 1;
#: ``learnsyn tune --model optimal-linear --task bounded``): exact area 177.68 on the grid
BOUNDED_A = torch.tensor([[0.98684, 0.023536], [-0.0037685, 0.99246]])
BOUNDED_B = torch.tensor([-0.0038298, -0.13107])
BOUNDED_C = torch.tensor([-0.32683, -0.14272])
BOUNDED_AREA = 177.68


def _hand_placed(cell: str, scale: float):
    """The cell whose linearization at 0 is the optimal bounded linear synapse."""
    params = {"output_scale": scale} if scale > 0 else {}
    model = make_cell(cell, 2, init="rotation", cell_params=params)
    eye = torch.eye(2)
    with torch.no_grad():
        if cell == "gru":  # gates fixed at z = 1/2, reset fully open
            gate = 0.5
            model.W_in.zero_()
            model.U_zr.zero_()
            model.bias.zero_()
            model.bias[2:4] = 30.0
            model.U_h.copy_((BOUNDED_A - eye + gate * eye) / gate)
            model.W_in[4:, 0] = BOUNDED_B / gate
        else:
            model.W.copy_(BOUNDED_A)
            model.U.zero_()
            model.U[:, 0] = BOUNDED_B
            model.bias.zero_()
        model.readout_weights.copy_(BOUNDED_C)
    return model


def _bounded_area(model) -> float:
    ages = np.arange(600)
    with torch.no_grad():
        snr = grid_snr(model, make_scenario("bounded"), ages, 1000, "large-n", burn_in=1500)
    return compute_metrics(ages, snr[0].double().numpy(), 1.0)["area"]


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_plain_tanh_cells_cannot_hold_the_bounded_linear_optimum_but_scaled_ones_can(cell):
    plain = _bounded_area(_hand_placed(cell, 0.0))
    scaled = _bounded_area(_hand_placed(cell, 10.0))
    assert plain < 0.8 * BOUNDED_AREA  # measured: gru 132.1, rnn 120.4
    assert scaled == pytest.approx(BOUNDED_AREA, rel=0.01)  # measured: 177.5, 177.1


@pytest.mark.parametrize("cls", [GRUSynapse, TanhRNNSynapse])
def test_saturation_has_slope_one_at_zero_and_range_s(cls):
    model = cls(2, output_scale=3.0)
    assert torch.allclose(model.log_scale.exp(), torch.full((2,), 3.0))
    y = torch.tensor([1e-4, 100.0])
    out = model.saturate(y).detach()
    assert float(out[0]) == pytest.approx(1e-4, rel=1e-3)
    assert float(out[1]) == pytest.approx(3.0, rel=1e-4)
    assert cls(2).log_scale is None and torch.equal(cls(2).saturate(y), torch.tanh(y))
    # learnable: the gradient reaches the scale
    state = torch.full((4, 2), 0.5)
    model.step(state, torch.ones(4)).sum().backward()
    assert float(model.log_scale.grad.abs().max()) > 0


def test_scaled_cells_take_the_native_kernel_only():
    scenario = make_scenario("bounded")
    scaled = make_cell("gru", 2, cell_params={"output_scale": 2.0})
    assert supports_fast_path(make_cell("gru", 2), scenario)
    assert supports_fast_path(scaled, scenario) == ("native" in available_kernels("cpu"))
    assert not supports_fast_path(scaled, scenario, dtype=torch.float64)  # no native kernel


@pytest.mark.parametrize("gate", [0.0, 0.5])
def test_rotation_init_with_an_open_gate_linearizes_to_the_same_rotation(gate):
    params = {"state_std": 0.5, "update_gate": gate, "output_scale": 4.0}
    lin = linearize(make_cell("gru", 2, init="rotation", timescale=100.0, cell_params=params))
    eig = lin.eigenvalues
    assert np.allclose(np.abs(eig), 1 - 1 / 100, atol=2e-3)
    assert np.allclose(np.abs(np.angle(eig)), 1 / 100, rtol=0.15)
    if gate:  # each event moves the state by std * sqrt(2 / T), filling the range
        assert np.allclose(np.abs(lin.b), 0.5 * math.sqrt(2 / 100), rtol=0.15)


def test_response_profile_is_flat_for_a_linear_synapse_and_not_for_a_saturating_cell():
    from learnsyn.linearization import (
        linearize,
        plot_response,
        response_profile,
        stationary_states,
    )
    from learnsyn.synapse import LinearSynapse

    scenario = make_scenario("ideal")
    linear = LinearSynapse(BOUNDED_A.double().numpy(), BOUNDED_B.double().numpy(), [1.0, 0.0])
    states = stationary_states(linear, scenario, batch=256, steps=300)
    profile = response_profile(linear, linearize(linear), states)
    assert max(profile["state_dependence"]) < 1e-5 and max(profile["drift_residual"]) < 1e-5
    saturating = _hand_placed("rnn", 0.3)  # range +-0.3: the increment shrinks near the edges
    states = stationary_states(saturating, scenario, batch=256, steps=300)
    profile = response_profile(saturating, linearize(saturating), states)
    assert max(profile["state_dependence"]) > 0.05  # measured 0.03 and 0.19
    plot_response(profile, linearize(saturating))  # draws without error


def test_linearization_on_stationary_states_of_a_linear_synapse_is_itself():
    from learnsyn.linearization import linearize_in, linearize_on_states, stationary_states
    from learnsyn.synapse import LinearSynapse

    A, b = BOUNDED_A.double().numpy(), BOUNDED_B.double().numpy()
    linear = LinearSynapse(A, b, [1.0, 0.0])
    states = stationary_states(linear, make_scenario("ideal"), batch=128, steps=200)
    lin = linearize_on_states(linear, states)
    assert np.allclose(lin.A, A, atol=1e-9) and np.allclose(lin.b, b, atol=1e-9)
    assert lin.residual < 1e-9 and np.allclose(lin.fixed_point, 0, atol=1e-6)
    # in a constrained scenario the ablation fits the states the synapse visits there: over
    # [-1, 1] a plain tanh's effective slope is well below its tangent at 0 (measured 0.915)
    bounded = linearize_in(_hand_placed("rnn", 0.0), make_scenario("bounded"))
    assert bounded.residual > 0 and bounded.A[1, 1] < float(BOUNDED_A[1, 1]) - 0.02


def test_the_trained_bounded_gru_beats_the_stable_optimum_but_not_the_best_linear(
    stored_run,
):
    """The README's bounded claim for the defaults, checked on the stored parameters of one of
    its runs (seed 0): exactly on the level grid, after the run's burn-in and after 20,000 steps,
    its area exceeds the best stable 2-variable linear synapse's (177.68) by 1 %, but is more
    than 1 % below the strongest linear synapse found (183.88, a difference integrator since
    session 22; 182.05 before: tests/data/best-linear-bounded.json); its own best affine fit
    on its stationary states (the ablation) is far below. If the evaluation changes so that the
    claim no longer holds, this fails."""
    from learnsyn.linearization import LinearizedCell, linearize_in
    from learnsyn.synapse import LinearSynapse

    _, _, model = stored_run("bounded-gru-m2-s0")
    learned = _bounded_area(model)
    ages = np.arange(600)
    with torch.no_grad():
        long = grid_snr(model, make_scenario("bounded"), ages, 1000, "large-n", burn_in=20_000)
    stationary = compute_metrics(ages, long[0].double().numpy(), 1.0)["area"]
    optimal = _bounded_area(
        LinearSynapse(BOUNDED_A.double().numpy(), BOUNDED_B.double().numpy(), BOUNDED_C.numpy())
    )
    assert optimal == pytest.approx(BOUNDED_AREA, abs=0.05)
    assert learned == pytest.approx(179.61, abs=0.05)  # measured
    assert stationary == pytest.approx(learned, abs=0.05)  # not a transient from the start
    assert learned > 1.005 * optimal
    best = json.loads((Path(__file__).parent / "data" / "best-linear-bounded.json").read_text())
    assert learned < 0.99 * best["m2"]["value"]  # the value is checked in test_claims
    ablation = _bounded_area(LinearizedCell(linearize_in(model, make_scenario("bounded"))))
    assert ablation < 0.95 * optimal  # measured 164.5


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_the_native_kernel_keeps_a_wide_saturation_exact(cell):
    """Review, session 33: the native kernel formed tanh as 2 sigmoid(2p) - 1, which cancels
    near 0 (an absolute error of 6e-8) and the saturation S tanh(y / S) multiplies that by S:
    at S = 1e4 the fast rollout's area read 0 against the reference's 129, at S = 1000 (the
    held-linear rnn of linear-range) it was low by about 2 %. Rows of S > 8 use a series
    there; the fast rollout now reads the reference's figure on the same random numbers."""
    from learnsyn.evaluate import evaluate
    from learnsyn.registry import make_model

    if "native" not in available_kernels(torch.device("cpu")):
        pytest.skip("no native kernel here (no C compiler)")
    model = make_model(cell, {"state_size": 2, "init": "rotation", "output_scale": 1e4})
    areas = [
        evaluate(model, make_scenario("ideal"), synapses=1000, horizon=200, method="monte-carlo",
                 batch=256, burn_in=1000, convention="large-n", rollout=rollout).metrics["area"]
        for rollout in ("reference", "fast")
    ]  # fmt: skip
    assert areas[0] > 50 and areas[1] == pytest.approx(areas[0], rel=1e-3)


@pytest.mark.parametrize("task", ["ideal", "bounded"])
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_the_native_gradient_of_a_wide_saturation_agrees_with_the_reference(cell, task):
    """The same fault in the training rollout (review, session 33): at S = 1000 the native
    kernel's objective differed from the reference's by up to 3 % and its gradient by up to
    12 % of the largest entry; now within the rollout benchmark's tolerances."""
    from learnsyn.estimate.montecarlo import simulate_pairs
    from learnsyn.registry import make_model
    from learnsyn.tools.rollout_bench import _agreement, _run, _tolerance, _with_kernel

    if "native" not in available_kernels(torch.device("cpu")):
        pytest.skip("no native kernel here (no C compiler)")
    model = make_model(cell, {"state_size": 3, "init": "rotation", "output_scale": 1000.0})
    scenario, size, cpu = make_scenario(task), dict(pairs=256, horizon=150), torch.device("cpu")
    reference = _run(simulate_pairs, model, scenario, size, cpu, True)
    fast = _run(_with_kernel("native"), model, scenario, size, cpu, True)
    assert _agreement(reference, fast, _tolerance(scenario))["ok"]
