"""`learnsyn scoreboard`: cells filled and cached, the bound above every model, learned runs
grouped over seeds with paired ratios and verdicts that can come out either way."""

import json
import math

import pytest

from learnsyn import scoreboard
from learnsyn.cli import main


def test_cells_hold_every_baseline_under_the_bound_and_resume_from_the_cache(tmp_path, monkeypatch):
    cells = scoreboard.plan_cells(["ideal"], [1, 2], [100])
    assert [c.horizon for c in cells] == [60, 60]
    result = scoreboard.build_scoreboard(cells, tmp_path, eval_batch=64)
    for cell in result["cells"]:
        area = {r["name"]: r["metrics"]["area"] for r in cell["baselines"]}
        assert {"optimal-linear", "exponential", "benna-fusi"} <= set(area)
        assert all(v <= cell["bound"] * (1 + 1e-9) for v in area.values())
        assert area["optimal-linear"] >= area["exponential"] * (1 - 1e-4)  # optimizer tolerance
    m2 = result["cells"][1]["baselines"]
    assert max(m2, key=lambda r: r["metrics"]["area"])["name"] == "optimal-linear"
    md = (tmp_path / "scoreboard.md").read_text()
    assert "| ideal | 2 |" in md and "bound" in md
    assert (tmp_path / "scoreboard.png").stat().st_size > 1000

    def no_tuning(*args, **kwargs):
        raise AssertionError("a cached cell was tuned again")

    monkeypatch.setattr("learnsyn.tuning.tune_baselines_for_run", no_tuning)
    again = scoreboard.build_scoreboard(cells, tmp_path, eval_batch=64)
    assert again["cells"][0]["baselines"] == result["cells"][0]["baselines"]


def _row(seed, value, loo):
    return {
        "run": f"r{seed}",
        "label": "gru",
        "seed": seed,
        "metrics": {"area": value},
        "metrics_stderr": {"area": 0.1},
        "leave_one_out": {"area": loo},
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((110.0, 111.0, 109.0), "above the best baseline"),
        ((90.0, 91.0, 89.0), "below the best baseline"),
        ((99.0, 101.0, 100.5), "matches the best baseline (within 2 s.e.)"),
        ((120.0, 121.0), "no verdict: 2 training seed(s), 3 needed"),
    ],
)
def test_learned_groups_get_verdicts_that_can_go_either_way(values, expected):
    cell = {"baselines": [{"name": "exponential", "metrics": {"area": 100.0},
                           "metrics_stderr": {"area": 0.0}}]}  # fmt: skip
    rows = [_row(s, v, [v - 0.1, v + 0.1, v]) for s, v in enumerate(values)]
    (group,) = scoreboard.learned_groups(cell, rows, "area")
    assert group["verdict"] == expected
    assert group["ratio"] == pytest.approx(sum(values) / len(values) / 100.0)
    assert group["best_baseline"] == "exponential"


def test_the_baselines_own_error_enters_the_mean_ratio():
    exact = {"name": "b", "metrics": {"area": 100.0}, "metrics_stderr": {"area": 0.0}}
    noisy = {"name": "b", "metrics": {"area": 100.0}, "metrics_stderr": {"area": 5.0},
             "leave_one_out": {"area": [95.0, 105.0, 100.0]}}  # fmt: skip
    rows = [_row(s, v, [v - 0.1, v + 0.1, v]) for s, v in enumerate((110.0, 111.0, 109.0))]
    (sharp,) = scoreboard.learned_groups({"baselines": [exact]}, rows, "area")
    (blurred,) = scoreboard.learned_groups({"baselines": [noisy]}, rows, "area")
    assert blurred["ratio_stderr"] > 5 * sharp["ratio_stderr"]
    assert blurred["ratio_stderr"] >= 1.1 * 0.05
    assert blurred["verdict"] == "matches the best baseline (within 2 s.e.)"


def test_scoreboard_command_with_learned_runs(tiny_runs, tmp_path, capsys):
    out = tmp_path / "board"
    args = ["scoreboard", "--tasks", "ideal", "--state-sizes", "2", "--synapses", "100",
            "--horizon", "30", "--runs", str(tiny_runs), "--eval-batch", "64",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "| ideal | 2 |" in printed.out and "gru" in printed.out
    data = json.loads((out / "scoreboard.json").read_text())
    (cell,) = data["cells"]  # the runs belong to the one cell asked for
    (group,) = cell["learned"]
    assert group["seeds"] == [0, 1, 2] and len(group["ratios"]) == 3
    assert all(r["paired"] for r in group["ratios"])
    assert math.isfinite(group["ratio_stderr"]) and group["verdict"]
    assert len(list((out / "learned").glob("*.json"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "nope"], "unknown scenario 'nope'"),
        (["--state-sizes", "0"], "state size m = 0"),
        (["--synapses", "ten"], "--synapses 'ten'"),
        (["--runs", "/no/such/dir"], "--runs /no/such/dir: no such directory"),
        (["--metric", "speed"], "unknown metric 'speed'"),
    ],
)
def test_scoreboard_bad_input_is_one_line(args, message, tmp_path, capsys):
    assert main(["scoreboard", "--out", str(tmp_path / "b"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_the_common_monte_carlo_error_does_not_average_out_over_seeds():
    """Three seeds that learned the same synapse, evaluated on the same random numbers, agree
    to the last digit: their spread is zero, but the evaluation's Monte Carlo error (3 here) is
    common to all three and must stay in the mean's error. 103 +- 3 against an exact 100 is
    no win."""
    loo = [100.0 + 3.0 * x for x in (-1.2, 0.8, 1.5, -0.4, 0.3, -1.0, 0.9, -0.9)]
    mean = sum(loo) / len(loo) + 3.0  # the same full-batch value for each seed
    rows = [_row(seed, mean, [v + 3.0 for v in loo]) for seed in range(3)]
    exact = {"name": "b", "metrics": {"area": 100.0}, "metrics_stderr": {"area": 0.0}}
    (group,) = scoreboard.learned_groups({"baselines": [exact]}, rows, "area")
    assert group["ratio_stderr_parts"]["seeds"] == 0.0
    assert group["ratio_stderr"] > 0.02 and group["stderr"] > 2.0
    assert group["verdict"] == "matches the best baseline (within 2 s.e.)"


def test_learned_runs_on_the_bounded_grid_are_evaluated_exactly(tmp_path):
    """A learned run in `bounded` whose grid fits is scored by its exact curve (no Monte Carlo
    noise: zero error, no groups), equal to `evaluate --method exact` with the run's burn-in."""
    from learnsyn.evaluate import evaluate
    from learnsyn.runs import load_run
    from learnsyn.scenario import make_scenario

    run = tmp_path / "run"
    args = ["train", "--task", "bounded", "--synapses", "100", "--state-size", "2", "--cell",
            "gru", "--iterations", "2", "--batch", "16", "--horizon", "20", "--burn-in", "20",
            "--eval-batch", "32", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(args) == 0
    row = scoreboard.evaluate_learned_run(run, tmp_path / "board", eval_batch=64)
    assert row["method"] == "exact" and row["leave_one_out"] is None
    assert set(row["metrics_stderr"].values()) == {0.0}
    _, model, _ = load_run(run)
    exact = evaluate(model, make_scenario("bounded"), synapses=100, horizon=20, method="exact",
                     convention="large-n", burn_in=20)  # fmt: skip
    assert row["metrics"] == exact.metrics
