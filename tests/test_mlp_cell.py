"""The mlp cell (a linear synapse plus a residual tanh network): set at a linear synapse it IS
that synapse (its step and its exact grid curve); it is in the one registry with its parameters;
a short meta-training on the exact grid goes up and the run reloads."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_grid_training import GRID

from learnsyn.cells import make_cell, start_at_linear
from learnsyn.estimate.grid import grid_snr
from learnsyn.registry import model_class
from learnsyn.runs import load_run, train
from learnsyn.scenario import make_scenario
from learnsyn.synapse import LinearSynapse

LINEAR = {"A": [0.9, 0.1, -0.1, 0.8], "b": [0.3, 0.2], "c": [1.0, 0.5], "drive": [0.05, 0.0]}


def linear_synapse():
    A = np.reshape(LINEAR["A"], (2, 2))
    return LinearSynapse(A, LINEAR["b"], LINEAR["c"], drive=LINEAR["drive"])


def test_set_at_a_linear_synapse_the_step_is_that_synapse():
    cell = make_cell("mlp", 2, seed=3)
    start_at_linear(cell, LINEAR)
    state = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    events = torch.where(torch.rand(64) < 0.5, 1.0, -1.0)
    expected = linear_synapse().step(state, events)
    with torch.no_grad():
        assert torch.allclose(cell.step(state, events), expected, atol=1e-6)
        assert torch.allclose(cell.readout(state), state @ torch.tensor(LINEAR["c"]))
    # the correction is off but its hidden layer is not: training can grow it
    assert float(cell.V.detach().abs().max()) == 0.0 and float(cell.W.detach().abs().max()) > 0.1


def test_set_at_a_linear_synapse_its_exact_grid_curve_is_the_synapse_s():
    scenario = make_scenario("bounded", {"levels": 5})
    cell = make_cell("mlp", 2, seed=1).double()
    start_at_linear(cell, LINEAR)

    def curve(model):
        with torch.no_grad():
            return grid_snr(model, scenario, torch.arange(30), 100, "large-n", burn_in=None)[0]

    expected = curve(linear_synapse().double())
    assert float(expected.max()) > 1.0  # a curve above threshold, not 0 == 0
    assert torch.allclose(curve(cell), expected, rtol=1e-9, atol=1e-12)


def test_the_cell_is_in_the_one_registry_with_its_parameters():
    info = model_class("mlp", "learned").info
    assert info.family == "learned"
    names = [spec.name for spec in info.params]
    assert {"state_size", "width", "hidden_gain", "correction"} <= set(names)
    cell = make_cell("mlp", 3, cell_params={"width": 5}, seed=2)
    assert cell.W.shape == (5, 5) and cell.V.shape == (3, 5)
    assert cell.describe()["width"] == 5
    with pytest.raises(ValueError, match="width"):
        make_cell("mlp", 2, cell_params={"width": 0})
    with pytest.raises(ValueError, match="no free recurrent matrix"):
        make_cell("mlp", 2, init="orthogonal")
    # the same seed is the same cell, another seed another one
    same = make_cell("mlp", 2, cell_params={"width": 5}, seed=2)
    other = make_cell("mlp", 2, cell_params={"width": 5}, seed=7)
    assert torch.equal(same.W, make_cell("mlp", 2, cell_params={"width": 5}, seed=2).W)
    assert not torch.equal(same.W, other.W)


def test_meta_training_on_the_exact_grid_goes_up_and_the_run_reloads(tmp_path):
    from learnsyn.runs import build_model

    run = tmp_path / "run"
    config = replace(GRID, cell="mlp", iterations=30, lr=0.02, checkpoint_every=10)
    train(config, run, log=lambda *a, **k: None)
    saved, model, _ = load_run(run)
    assert saved.cell == "mlp" and isinstance(model, model_class("mlp", "learned"))
    scenario = make_scenario(config.task, config.task_params)

    def area(cell):
        with torch.no_grad():
            curve = grid_snr(cell.double(), scenario, torch.arange(40), 100, "large-n",
                             burn_in=None)[0]  # fmt: skip
        return float((curve - 1.0).clamp(min=0.0).sum())

    before, after = area(build_model(config)), area(model)
    # exact gradients, so no noise: measured 11.33 -> 16.69
    assert after > 1.3 * before, (before, after)
