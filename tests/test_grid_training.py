"""Training on the exact bounded-grid objective (``--estimator grid``): the objective is the
exact curve that ``evaluate --method exact`` gives, deterministic, with exact gradients; it is
refused where the state is not on a grid."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from learnsyn.config import TrainConfig
from learnsyn.evaluate import evaluate
from learnsyn.runs import load_run, train
from learnsyn.scenario import make_scenario
from learnsyn.training import build_model, meta_objective

GRID = TrainConfig(
    task="bounded",
    task_params={"levels": 6},
    synapses=100,
    state_size=2,
    cell="gru",
    iterations=6,
    horizon=40,
    burn_in=60,
    lr=0.05,
    estimator="grid",
    eval_batch=64,
    checkpoint_every=3,
    validate_every=2,
    figure_every=0,  # a figure tunes the baselines first (seconds in bounded)
    device="cpu",
)


def test_the_grid_objective_is_the_exact_curve_and_its_gradient_is_exact():
    config = replace(GRID).validate()
    scenario = make_scenario(config.task, config.task_params)
    model = build_model(config).double()
    device = torch.device("cpu")
    result = meta_objective(model, scenario, config, 0, device)
    again = meta_objective(model, scenario, config, 7, device, grad=False)
    np.testing.assert_array_equal(result.snr, again.snr)  # no sampling
    exact = evaluate(model, scenario, synapses=100, horizon=40, method="exact",
                     convention="large-n", burn_in=60)  # fmt: skip
    np.testing.assert_allclose(result.snr, exact.snr, rtol=1e-9, atol=1e-12)
    result.value.backward()
    param = next(p for p in model.parameters() if p.requires_grad and p.numel() > 1)
    analytic = param.grad.flatten()[0].item()
    eps = 1e-5
    with torch.no_grad():
        values = []
        for sign in (1, -1):
            param.view(-1)[0] += sign * eps
            values.append(meta_objective(model, scenario, config, 0, device, grad=False).value)
            param.view(-1)[0] -= sign * eps
    numeric = float(values[0] - values[1]) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "ideal", "task_params": {}}, "estimator 'grid' needs the bounded scenario"),
        ({"state_size": 5}, "6^5 = 7776 grid states"),
        ({"estimator": "exact"}, "estimator 'exact' is not allowed"),
    ],
)
def test_the_grid_estimator_is_refused_off_the_grid(changes, message):
    with pytest.raises(ValueError, match=message.replace("^", r"\^").replace("'", "'")):
        replace(GRID, **changes).validate()


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"objective": "cross-fit"}, "--objective cross-fit"),
        ({"noise_margin": 3.0}, "--noise-margin 3.0"),
        ({"late_variance": 0.5}, "--late-variance 0.5"),
        ({"estimator": "auto", "noise_margin": 0.0}, "--noise-margin 0.0"),  # auto: the grid
    ],
)
def test_the_grid_estimator_refuses_the_monte_carlo_objective_settings(changes, option):
    """Review, session 33: the exact grid objective ignored these (it has no noise), while
    config.json recorded them as used. Given with the grid they are refused; with
    ``--estimator monte-carlo`` they apply."""
    with pytest.raises(ValueError, match=f"{option} is not allowed with the exact grid"):
        replace(GRID, **changes).validate()
    assert replace(GRID, **{**changes, "estimator": "monte-carlo"}).validate()


def test_training_on_the_grid_improves_the_exact_metric(tmp_path):
    run = tmp_path / "grid"
    result = train(replace(GRID, iterations=12), run, log=lambda *a, **k: None)
    config, model, checkpoint = load_run(run)
    assert config.estimator == "grid"
    assert result["evaluation"]["method"] == "exact"  # the final evaluation too: no noise
    scenario = make_scenario(config.task, config.task_params)
    start = build_model(config)
    kwargs = dict(synapses=100, horizon=40, method="exact", convention="large-n", burn_in=60)
    before = evaluate(start, scenario, **kwargs).metrics["area"]
    after = evaluate(model, scenario, **kwargs).metrics["area"]
    assert after > before
    selected = result["evaluation"]["metrics"]["area"]  # burn-in 60 above, the run's here
    assert selected == pytest.approx(
        evaluate(model, scenario, **{**kwargs, "burn_in": config.resolved_burn_in()}).metrics[
            "area"
        ],
        rel=1e-9,
    )
    # the ablation report evaluates the learned cell and its linearization exactly on the grid
    # too, and pairs their Monte Carlo figures on the same random numbers
    from learnsyn.linearization import ablation_report

    report = ablation_report(run, eval_batch=64)
    assert report["exact_on_grid"]["learned"]["area"] == pytest.approx(after, rel=1e-9)
    ratio = report["learned_over_linearized"]
    assert ratio["paired"] and np.isfinite(ratio["ratio_stderr"]) and ratio["ratio_stderr"] > 0


def test_a_grid_run_says_what_it_ignores_and_that_its_figures_are_exact(tmp_path):
    """Review, session 35: a grid run given --batch 3 --validation-batch 3 trained exactly as
    with the defaults (the batch has no use on the grid), said nothing, and result.json called
    its training figures "3 pairs; noisy" and its validation batch 3 pairs."""
    said = []
    config = replace(GRID, batch=3, validation_batch=3, iterations=2)
    result = train(config, tmp_path / "grid", log=lambda message, **k: said.append(message))
    assert any(
        "note: --batch 3, --validation-batch 3" in line
        and "has no effect with the exact grid" in line
        for line in said
    ), said
    assert "exact on the level grid" in result["training_estimate_measured_on"]
    assert "pairs" not in result["training_estimate_measured_on"]
    assert result["selected"]["validation_batch_pairs"] is None
    assert "exact on the level grid" in result["selected"]["rule"]
    assert replace(GRID, estimator="monte-carlo", batch=3).grid_unused() == []
    # review, session 36: --eval-batch too (the final evaluation is exact) was silently
    # ignored, and a resume with another one evaluated the finished run again
    assert replace(GRID, eval_batch=99).grid_unused() == ["--eval-batch 99"]
    again = []
    log = lambda message, **k: again.append(message)  # noqa: E731
    assert train(replace(config, eval_batch=999), tmp_path / "grid", resume=True, log=log) == result
    assert any("nothing to resume" in line for line in again), again
