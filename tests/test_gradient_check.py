"""`learnsyn.tools.gradient_check`: the Monte Carlo training gradient (the rollout, straight
through the stochastic rounding) against the exact gradient on the bounded grid. On a fine grid
the two agree (no bias: both gradient paths are right); on a coarse one the straight-through
gradient is biased (what the tool is for); bad input is one clear line."""

import json
from dataclasses import replace

import pytest

from learnsyn.config import TrainConfig
from learnsyn.runs import train
from learnsyn.tools import gradient_check
from learnsyn.training import build_model

#: m = 1 GRU at its initialization, N = 1000, horizon 60: area about 140 (256 levels), 33 (4)
CONFIG = TrainConfig(task="bounded", synapses=1000, state_size=1, cell="gru", horizon=60,
                     batch=2048, seed=0)  # fmt: skip


def check(levels: int) -> dict:
    config = replace(CONFIG, task_params={"levels": levels})
    return gradient_check.gradient_check(build_model(config), config, batches=16, noise_margin=0.0)


def per_entry(report: dict, name: str) -> float:
    group = report["groups"][name]
    return group["chi2"] / group["dof"]


# the readout of one variable only scales the weight, which the SNR ignores: its gradient is 0
# up to rounding on both paths (about 1e-6), so its z-scores compare rounding errors; left out
UPDATE = ("W_in", "U_zr", "U_h", "bias", "log_scale")


def test_on_a_fine_grid_the_monte_carlo_gradient_is_the_exact_one():
    # measured: chi2 / dof 0.01-0.96 per tensor, cosine 1.000
    report = check(256)
    assert report["cosine_mc_mean_exact"] > 0.99
    for name in UPDATE:
        assert per_entry(report, name) < 3.0, name
    assert abs(report["mc_objective"] - report["exact_objective"]) < (
        4 * report["mc_objective_stderr"] + 0.02 * report["exact_objective"]
    )


def test_on_a_coarse_grid_the_straight_through_gradient_is_biased():
    # measured: chi2 / dof 137 (the event's input W_in), 103 (bias), 82 (log_scale)
    report = check(4)
    assert per_entry(report, "W_in") > 20
    assert report["chi2"] > 5 * report["dof"]


def test_the_command_reads_a_run_and_refuses_a_scenario_without_a_grid(tmp_path, capsys):
    run = tmp_path / "run"
    config = replace(CONFIG, task_params={"levels": 8}, iterations=2, batch=64, horizon=30)
    train(config, run, progress=False, final_evaluation=False, log=lambda *a, **k: None)
    assert gradient_check.main(["--run", str(run), "--batches", "5", "--batch", "128"]) == 0
    out = capsys.readouterr().out
    assert "5 batches of 128 pairs" in out and "W_in" in out
    ideal = tmp_path / "ideal"
    train(replace(config, task="ideal", task_params={}, estimator="auto"), ideal, progress=False,
          final_evaluation=False, log=lambda *a, **k: None)  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        gradient_check.main(["--run", str(ideal)])
    assert exit_info.value.code == 2
    assert "task 'ideal' has no exact gradient; need bounded" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gradient_check.main(["--run", str(run), "--batches", "4"])
    # review, session 33: 2-4 were taken, and "unbiased: about dof" was wrong there
    assert "batches 4 is not allowed; need at least 5" in capsys.readouterr().err
    # review, session 30: accepted, then a ZeroDivisionError, or NaN in a JSON "chi2 0 on 0"
    for option, value, message in (
        ("--temperature", "0", "temperature = 0.0 is not allowed"),
        ("--temperature", "nan", "temperature = nan is not allowed"),
        ("--temperature", "-1", "temperature = -1.0 is not allowed"),
        ("--noise-margin", "-5", "noise margin = -5.0 is not allowed"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            gradient_check.main(["--run", str(run), "--batches", "5", option, value, "--json"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert (
        gradient_check.main(["--run", str(run), "--batches", "5", "--batch", "64", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)  # strict JSON
    assert report["chi2_unbiased"] == pytest.approx(2 * report["dof"])  # (5 - 1) / (5 - 3)
