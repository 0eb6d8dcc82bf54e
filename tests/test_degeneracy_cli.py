"""End-to-end tests of the degeneracy command: --quick runs, outputs on disk, bad input."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from learnsyn.cli.degeneracy import add_degeneracy_commands, main
from learnsyn.degeneracy.deep_linear_config import DeepLinearConfig

REPOSITORY = Path(__file__).resolve().parents[1]


def _scalar_tags(out_dir: Path) -> tuple[EventAccumulator, list[str]]:
    accumulator = EventAccumulator(str(out_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator, accumulator.Tags()["scalars"]


def _check_common_outputs(out_dir: Path, experiment: str) -> dict:
    assert list((out_dir / "tensorboard").glob("events.out.tfevents.*"))
    config = json.loads((out_dir / "config.json").read_text())
    assert config["experiment"] == experiment
    assert config["config"]["seed"] == 3
    assert config["config"]["threads"] == 1 and config["environment"]["torch_version"]
    results = json.loads((out_dir / "results.json").read_text())
    for figure in results["figures"]:
        assert (out_dir / figure).read_bytes().startswith(b"\x89PNG")
    return results


def test_deep_linear_quick_writes_figures_json_tensorboard_and_config(tmp_path, capsys):
    out_dir = tmp_path / "deep"
    code = main(["deep-linear", "--quick", "--seed", "3", "--out", str(out_dir), "--no-progress"])
    assert code == 0
    results = _check_common_outputs(out_dir, "deep-linear")
    assert len(results["figures"]) == 5
    assert "gradient_norms_over_training.png" in results["figures"]
    assert results["fold_axis"] == "rows"
    # 40 epochs end before the judgement window (250-500): no claim gets a verdict.
    assert results["judge_window"] == [250, 500] and results["judged"] is False
    assert [claim["verdict"] for claim in results["claims"]] == [
        "no verdict: run too short to judge"
    ] * 5
    section = results["gradient_norms_over_training"]
    config = DeepLinearConfig.quick()
    assert section["epochs"] == config.gradient_schedule and len(section["epochs"]) >= 8
    assert section["epochs"][-1] == config.epochs
    ratio = section["relative_to_orthogonal"]["fold0"]["gradient_norm_ratio"]
    assert len(ratio) == len(section["epochs"])
    accumulator, tags = _scalar_tags(out_dir)
    assert "loss/fold0" in tags
    assert "layer_mean_activation_gradient_norm/fold1" in tags
    events = accumulator.Scalars("loss/fold0")
    assert events[0].step == 0
    assert events[0].value == pytest.approx(results["loss"]["fold0"]["mean"][0], rel=1e-5)
    assert "claim:" in capsys.readouterr().out


def test_spectra_quick_writes_figures_json_tensorboard_and_config(tmp_path):
    out_dir = tmp_path / "spectra"
    code = main(["spectra", "--quick", "--seed", "3", "--out", str(out_dir), "--no-progress"])
    assert code == 0
    results = _check_common_outputs(out_dir, "spectra")
    assert len(results["figures"]) == 5 and "jacobian_pennington.png" in results["figures"]
    assert [check["holds"] for check in results["checks"]] == [True] * len(results["checks"])
    accumulator, tags = _scalar_tags(out_dir)
    tag = "jacobians/variance_squared_singular_value/linear-orthogonal"
    assert tag in tags
    assert all(abs(event.value) < 1e-12 for event in accumulator.Scalars(tag))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["deep-linear", "--depth", "0"], "learnsyn: error: depth must be an integer >= 1, got 0"),
        (["deep-linear", "--width", "1"], "learnsyn: error: width must be an integer >= 2, got 1"),
        (
            ["deep-linear", "--conditions", "he"],
            "learnsyn: error: unknown init 'he'; allowed: fold<k>",
        ),
        (
            ["deep-linear", "--conditions", "fold6"],
            "learnsyn: error: fold k=6 needs a width divisible by 2^6=64, but width is 32",
        ),
        (
            ["spectra", "--jacobian-depths", "0"],
            "learnsyn: error: depth must be an integer >= 1, got 0",
        ),
        (["spectra", "--seed", "-2"], "learnsyn: error: seed = -2 is not allowed: need an integer"),
        (
            ["deep-linear", "--threads", "0"],
            "learnsyn: error: argument --threads: --threads 0 is not allowed: expected an integer",
        ),
        # review, session 31: a traceback (torch.set_num_threads ran before any check)
        (
            ["hessian", "--threads", "-1"],
            "learnsyn: error: argument --threads: --threads -1 is not allowed: expected an",
        ),
        (
            ["spectra", "--product-inits", "fold9"],
            "learnsyn: error: fold k=9 needs a width divisible",
        ),
        # review, session 30: accepted, every fraction below threshold read 1.0
        (
            ["spectra", "--threshold", "inf"],
            "learnsyn: error: small_value_threshold must be a finite number > 0, got inf",
        ),
        # review, session 30: the allocator's traceback after the data were drawn
        (
            ["deep-linear", "--width", "200000", "--depth", "2", "--seeds", "1"],
            "learnsyn: error: deep-linear with 4 conditions x 1 seeds of depth 2, width 200000 "
            "would need about",
        ),
    ],
)
def test_bad_input_prints_one_line_error_and_exits_2(tmp_path, capsys, arguments, message):
    out_dir = tmp_path / "never"
    try:
        code = main([*arguments, "--quick", "--out", str(out_dir)])
    except SystemExit as stop:  # argparse's own (one-line) errors
        code = stop.code
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1
    assert not out_dir.exists()


def test_the_experiments_take_learnsyn_threads_from_the_environment(tmp_path, monkeypatch):
    # review, session 31: README's LEARNSYN_THREADS was ignored (the configs' 1 won)
    from learnsyn.cli import main as learnsyn

    monkeypatch.setenv("LEARNSYN_THREADS", "2")
    out = tmp_path / "hessian"
    arguments = ["degeneracy", "hessian", "--quick", "--depth", "2", "--width", "4", "--seeds",
                 "1", "--samples", "4", "--no-progress"]  # fmt: skip
    assert learnsyn([*arguments, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["threads"] == 2
    assert learnsyn([*arguments, "--threads", "1", "--out", str(tmp_path / "one")]) == 0
    assert json.loads((tmp_path / "one" / "config.json").read_text())["config"]["threads"] == 1


def test_add_degeneracy_commands_wires_into_a_main_parser():
    parser = argparse.ArgumentParser(prog="learnsyn")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_degeneracy_commands(subparsers)
    arguments = parser.parse_args(["degeneracy", "spectra", "--quick", "--seed", "5"])
    assert callable(arguments.func) and arguments.seed == 5 and arguments.quick


def test_module_entry_point_reports_bad_input():
    completed = subprocess.run(
        [sys.executable, "-m", "learnsyn.degeneracy", "deep-linear", "--quick", "--depth", "-1"],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == "learnsyn: error: depth must be an integer >= 1, got -1"


def test_a_rerun_with_other_settings_does_not_replace_results_silently(tmp_path, capsys):
    """deep-linear run again into its --out with another --seed replaced the earlier results
    without a word (review, session 25); the same settings (or only --threads) still rerun."""
    out_dir = tmp_path / "dl"
    assert main(["deep-linear", "--quick", "--out", str(out_dir), "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()}
    capsys.readouterr()
    code = main(["deep-linear", "--quick", "--seed", "1", "--out", str(out_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "other settings (seed: 0 -> 1)" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()} == before


def test_a_rerun_that_fails_before_its_results_leaves_the_earlier_config(tmp_path):
    """Review, session 30: config.json was written before the results, so a rerun that failed
    in its summary left a config beside results made with other settings, and a rerun with the
    original settings was then refused as "other settings"."""
    from dataclasses import dataclass

    from learnsyn.degeneracy.outputs import experiment_writer

    @dataclass
    class Config:
        epochs: int

    def plot(config, summary, raw, out_dir):
        return []

    def failing(config, raw):
        raise RuntimeError("the summary failed")

    write = experiment_writer("toy", lambda config, raw: {"epochs": config.epochs}, plot,
                              lambda *args: None)  # fmt: skip
    write(Config(40), None, tmp_path)
    before = json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(RuntimeError):
        experiment_writer("toy", failing, plot, lambda *args: None)(Config(5), None, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == before
    assert json.loads((tmp_path / "results.json").read_text()) == {"epochs": 40, "figures": []}
