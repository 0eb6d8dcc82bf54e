"""GPU checks (marked `gpu`; skipped cleanly where no CUDA device is present)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.runs import load_run, train
from learnsyn.scenario import make_scenario
from learnsyn.training import TrainConfig

pytestmark = pytest.mark.gpu


def test_monte_carlo_on_cuda_matches_exact():
    model, scenario = make_model("exponential", {"decay": 0.98}), make_scenario("ideal")
    exact = evaluate(model, scenario, synapses=1000, horizon=200)
    mc = evaluate(
        model, scenario, synapses=1000, horizon=200, method="monte-carlo", batch=8192, device="cuda"
    )
    snr, est, err = np.array(exact.snr), np.array(mc.snr), np.array(mc.snr_stderr)
    mask = snr >= 1
    assert np.max(np.abs(est[mask] - snr[mask]) / err[mask]) < 4


def test_meta_training_runs_on_cuda_with_the_same_code_path(tmp_path):
    config = TrainConfig(
        task="importance",
        synapses=200,
        state_size=4,
        cell="gru",
        iterations=6,
        batch=256,
        horizon=40,
        burn_in=40,
        eval_batch=512,
        validate_every=3,
        device="cuda",
    )
    result = train(config, tmp_path / "run", progress=False, log=lambda *a: None)
    assert result["complete"] and result["skipped_updates"] == 0
    assert np.isfinite(result["evaluation"]["metrics"]["area"])
    _, model, _ = load_run(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_auto_device_picks_cuda(tmp_path):
    config = TrainConfig(
        task="ideal",
        synapses=100,
        state_size=2,
        cell="rnn",
        iterations=2,
        batch=32,
        horizon=20,
        burn_in=20,
        eval_batch=64,
        device="auto",
    )
    train(replace(config), tmp_path / "run", progress=False, log=lambda *a: None)
    from learnsyn.training import resolve_device

    assert resolve_device("auto").type == "cuda"
