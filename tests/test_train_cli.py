"""`learnsyn train` and `learnsyn compare` end to end on a tiny config; errors; Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY_TRAIN

from learnsyn.cli import main

TINY = TINY_TRAIN


def test_figure_every_zero_skips_the_figure_and_its_baselines(tmp_path, capsys):
    # the figure's baselines are tuned at the first figure (minutes for a bounded run); a run
    # that wants no figure should not pay for them
    run_dir = tmp_path / "run"
    assert main(["train", *TINY, "--figure-every", "0", "--out", str(run_dir)]) == 0
    assert (run_dir / "result.json").exists()
    assert not (run_dir / "baselines.json").exists()
    assert "tuning" not in capsys.readouterr().out
    assert main(["train", *TINY, "--figure-every", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "figure-every = -1 is not allowed: need an integer >= 0" in capsys.readouterr().err


def test_train_then_compare(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "exp" / "tiny"
    assert main(["train", *TINY, "--out", str(run_dir)]) == 0
    for name in ("config.json", "checkpoint.pt", "result.json"):
        assert (run_dir / name).exists()
    assert list(run_dir.glob("events.out.tfevents.*"))
    # TensorBoard's figure sets the learned curve against the strongest baseline of its size
    tuned = json.loads((run_dir / "baselines.json").read_text())
    assert [row["name"] for row in tuned] == ["optimal-linear", "exponential", "benna-fusi"]
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                "--run",
                str(run_dir),
                "--baselines",
                "exponential,binary",
                "--eval-batch",
                "64",
                "--json",
                "-",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert {"task", "synapses", "state_size", "metric", "models"} <= set(data)
    names = [m["name"] for m in data["models"]]
    assert names == ["learned", "exponential", "binary"]
    for model in data["models"]:
        assert set(model["metrics"]) == {"area", "lifetime", "initial_snr", "log_area"}
        assert set(model["metrics_stderr"]) == set(model["metrics"])
    assert (run_dir / "snr_curves.png").stat().st_size > 1000
    assert "| learned |" in (run_dir / "comparison.md").read_text()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--state-size", "0"], "state size m = 0"),
        (["--batch", "1"], "batch B = 1"),
        (["--lr", "-1"], "learning rate = -1.0"),
        (["--cell", "lstm"], "unknown cell 'lstm'"),
    ],
)
def test_train_bad_input_one_line(learnsyn_command, tmp_path, args, expected):
    result = learnsyn_command(["train", *TINY, "--out", str(tmp_path / "r"), *args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "r").exists()


def test_compare_rejects_non_runs_and_corrupt_checkpoints(learnsyn_command, tmp_path):
    result = learnsyn_command(["compare", "--run", str(tmp_path)])
    assert result.returncode == 2 and "is not a run directory" in result.stderr
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 0
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"\x00garbage")
    result = learnsyn_command(["compare", "--run", str(tmp_path / "r")])
    assert result.returncode == 2 and "corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_existing_run_needs_resume_or_overwrite(learnsyn_command, tmp_path):
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 0
    result = learnsyn_command(["train", *TINY, "--out", str(tmp_path / "r")])
    assert result.returncode == 2 and "--resume" in result.stderr and "--overwrite" in result.stderr


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_saves_a_checkpoint_then_resume_finishes(tmp_path, signum, status):
    """SIGTERM (a scheduler) checkpoints like Ctrl-C; the exit status names the signal (review,
    session 37: SIGTERM's read 130, SIGINT's)."""
    out = tmp_path / "r"
    args = [*TINY, "--out", str(out), "--iterations", "100000", "--checkpoint-every", "100000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "learnsyn.cli", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("events.out.tfevents.*")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "checkpoint saved" in err
    from learnsyn.runs import load_run

    _, _, checkpoint = load_run(out)
    assert checkpoint["iteration"] > 0


def test_demo_quick_trains_compares_and_reuses_the_run(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr()
    assert "| learned |" in out.out and "snr_curves.png" in out.err
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    assert "reusing the finished run" in capsys.readouterr().err


def test_the_lr_help_states_every_default_the_config_resolves():
    """``--lr``'s help said 0.0005 / 0.005 while a bounded run on the exact grid used 0.02
    (review, session 25): every resolved default now stands in the help."""
    from dataclasses import fields

    from learnsyn.config import TrainConfig

    help_text = next(f for f in fields(TrainConfig) if f.name == "lr").metadata["help"]
    for cell in ("rnn", "gru", "mlp"):
        for task in ("ideal", "bounded"):
            config = TrainConfig(task=task, synapses=1000, state_size=2, cell=cell)
            assert f"{config.resolved_lr():g}" in help_text, (cell, task)
    grid = TrainConfig(task="bounded", synapses=1000, state_size=2, cell="gru")
    assert grid.resolved_estimator() == "grid" and grid.resolved_lr() == 0.02


def test_result_json_says_what_ran_the_rollouts(tiny_runs, tmp_path):
    """A run slower than expected says why: the fast path's kernel, or ``reference`` where it
    was asked for (or where the fast path does not cover the model)."""
    from learnsyn.rollout import available_kernels

    fastest = available_kernels("cpu")[0]
    assert json.loads((tiny_runs / "s0" / "result.json").read_text())["rollout_kernel"] == fastest
    for extra, expected in (
        (["--rollout", "reference"], "reference"),
        (["--cell", "chain"], "reference"),
    ):
        run_dir = tmp_path / extra[-1]
        assert main(["train", *TINY, *extra, "--figure-every", "0", "--out", str(run_dir)]) == 0
        assert json.loads((run_dir / "result.json").read_text())["rollout_kernel"] == expected
