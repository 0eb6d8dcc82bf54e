"""Meta-training: improvement, exact resume, NaN guard, TensorBoard contents, run directories."""

import math
from dataclasses import replace

import pytest
import torch

from learnsyn.runs import load_run, train
from learnsyn.scenario import make_scenario
from learnsyn.training import (
    VALIDATION_ITERATION,
    TrainConfig,
    build_model,
    meta_objective,
    validation_score,
)

TINY = TrainConfig(
    task="ideal",
    synapses=100,
    state_size=2,
    cell="gru",
    iterations=8,
    batch=16,
    horizon=30,
    burn_in=30,
    lr=0.05,
    checkpoint_every=2,
    log_every=1,
    figure_every=4,
    eval_batch=64,
    device="cpu",
)


def quiet(*args, **kwargs):
    pass


@pytest.mark.parametrize("cell", ["gru", "rnn", "chain"])
def test_a_few_iterations_improve_the_objective(tmp_path, cell):
    # the rnn's default (rotation) init starts near this tiny task's optimum, where lr 0.05
    # overshoots (measured: 23.5 -> 20.3); at 0.005 it improves (23.5 -> 25.1)
    config = replace(
        TINY,
        cell=cell,
        iterations=25,
        batch=64,
        horizon=40,
        burn_in=60,
        figure_every=100,
        lr=0.005 if cell == "rnn" else TINY.lr,
    )
    scenario = make_scenario("ideal")

    def fixed_objective(model):
        with torch.no_grad():
            return float(
                meta_objective(
                    model, scenario, config, 10**6, torch.device("cpu"), grad=False
                ).value
            )

    before = fixed_objective(build_model(config))
    train(config, tmp_path / "run", progress=False, log=quiet, final_evaluation=False)
    _, trained, _ = load_run(tmp_path / "run")
    assert fixed_objective(trained) > before


def test_resume_reaches_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    config = replace(TINY, validate_every=2)  # validations on both sides of the interruption
    train(config, tmp_path / "straight", progress=False, log=quiet, final_evaluation=False)
    partial = train(
        config, tmp_path / "resumed", progress=False, log=quiet, stop_after=3,
        final_evaluation=False,
    )  # fmt: skip
    assert not partial["complete"]
    train(
        config, tmp_path / "resumed", resume=True, progress=False, log=quiet,
        final_evaluation=False,
    )  # fmt: skip
    # the LAST parameters (the selected ones may be the initial ones in so short a run), the
    # optimizer's state and the validation scores, not only the objectives
    _, a, ca = load_run(tmp_path / "straight", which="last")
    _, b, cb = load_run(tmp_path / "resumed", which="last")
    assert ca["iteration"] == cb["iteration"] == config.iterations
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert [h["objective"] for h in ca["history"]] == [h["objective"] for h in cb["history"]]
    assert [h.get("validation") for h in ca["history"]] == [
        h.get("validation") for h in cb["history"]
    ]
    assert any("validation" in h for h in ca["history"][:3])  # validations before the stop
    assert any("validation" in h for h in ca["history"][3:])  # and after it
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        for key in sa:
            assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key])), key
    # the learning rate logged is the one each step used: the schedule's first value first
    assert ca["history"][0]["lr"] == TINY.lr
    assert ca["history"][0]["lr"] > ca["history"][-1]["lr"]


def test_nan_guard_skips_the_update_and_says_so(tmp_path):
    messages, snapshots = [], []

    def poisoned(model, scenario, config, iteration, device):
        result = meta_objective(model, scenario, config, iteration, device)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        if iteration == 2:
            result.value = result.value * float("nan")
        return result

    train(
        TINY,
        tmp_path / "run",
        progress=False,
        log=messages.append,
        objective_fn=poisoned,
        final_evaluation=False,
    )
    _, model, checkpoint = load_run(tmp_path / "run")
    assert checkpoint["skipped"] == 1
    assert [h["skipped"] for h in checkpoint["history"]][:4] == [False, False, True, False]
    assert any("iteration 2" in m and "skipped" in m for m in messages)
    for key in snapshots[2]:  # parameters entering iteration 3 equal those entering iteration 2
        assert torch.equal(snapshots[2][key], snapshots[3][key])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_tensorboard_holds_scalars_figure_histograms_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(TINY, tmp_path / "run", progress=False, log=quiet)
    acc = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for key in (
        "objective",
        "area",
        "lifetime",
        "initial_snr",
        "snr_stderr",
        "grad_norm",
        "synapse_steps_per_second",
    ):
        assert f"train/{key}" in tags["scalars"], key
    assert len(acc.Scalars("train/area")) == TINY.iterations
    assert "snr_curve" in tags["images"]
    assert any(t.startswith("params/") for t in tags["histograms"])
    found = False  # hparams come from a second writer in the same directory
    for path in tmp_path.joinpath("run").glob("events.out.tfevents.*"):
        single = EventAccumulator(str(path))
        single.Reload()
        try:
            found |= bool(single.PluginTagToContent("hparams"))
        except KeyError:
            pass
    assert found
    assert math.isfinite(acc.Scalars("train/area")[-1].value)


def test_existing_run_directory_is_never_overwritten_silently(tmp_path):
    train(TINY, tmp_path / "run", progress=False, log=quiet, final_evaluation=False)
    with pytest.raises(ValueError, match="already exists; pass --resume"):
        train(TINY, tmp_path / "run", progress=False, log=quiet)
    with pytest.raises(ValueError, match="differs from the run's"):
        train(replace(TINY, lr=0.2), tmp_path / "run", resume=True, progress=False, log=quiet)
    train(TINY, tmp_path / "run", overwrite=True, progress=False, log=quiet, final_evaluation=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"state_size": 0}, "state size m = 0"),
        ({"batch": 1}, "batch B = 1"),
        ({"lr": -0.1}, "learning rate = -0.1"),
        ({"cell": "lstm"}, "unknown cell 'lstm'"),
        ({"metric": "speed"}, "unknown metric 'speed'"),
        ({"task": "nope"}, "unknown scenario 'nope'"),
        ({"validation_batch": 1}, "validation batch = 1"),
        # review, session 36: it passed validation and the cell's error named a cell parameter
        ({"timescale": 1e13}, r"timescale = 1e\+13 is not allowed: need a number in (0, 1e\+12]"),
    ],
)
def test_bad_configs_fail_before_any_work(tmp_path, change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        train(replace(TINY, **change), tmp_path / "run", progress=False, log=quiet)
    assert not (tmp_path / "run").exists()


def test_corrupt_checkpoint_and_non_run_directories_are_reported(tmp_path):
    with pytest.raises(ValueError, match="is not a run directory"):
        load_run(tmp_path)
    train(TINY, tmp_path / "run", progress=False, log=quiet, final_evaluation=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_run(tmp_path / "run")


class _RunsCode:
    """Unpickling this calls ``touch`` on a file: what a checkpoint from elsewhere could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_a_checkpoint_that_would_run_code_is_refused_and_its_code_never_runs(tmp_path):
    """load_checkpoint unpickled anything (weights_only=False; review, session 35): a run
    directory from elsewhere could run code on resume, compare or the scoreboard. A real
    checkpoint still loads (its NumPy random state included), a crafted one is refused."""
    from learnsyn.training import load_checkpoint

    train(TINY, tmp_path / "run", progress=False, log=quiet, final_evaluation=False)
    path = tmp_path / "run" / "checkpoint.pt"
    data = load_checkpoint(path)
    assert data["rng"]["numpy"][1].dtype == "uint32"
    witness = tmp_path / "code-ran"
    data["extra"] = _RunsCode(witness)
    torch.save(data, path)
    with pytest.raises(ValueError, match="holds .* refused rather than unpickled"):
        load_run(tmp_path / "run")
    assert not witness.exists()


def test_chain_cell_can_start_at_a_given_chain():
    import numpy as np
    from learnsyn.baselines.benna_fusi import chain_matrices

    from learnsyn.cells import make_cell

    params = {"amplitude": 0.2, "ratio": 3.0, "first_conductance": 0.01}
    cell = make_cell("chain", 3, cell_params=params)
    A, b, _ = chain_matrices(3, 3.0, 0.01, 0.2)
    assert np.allclose(cell.recurrent_matrix().detach().numpy(), A, atol=1e-6)
    assert np.allclose(cell.B[:, 0].detach().numpy(), b)
    with pytest.raises(ValueError, match="has no parameter 'speed'"):
        make_cell("chain", 3, cell_params={"speed": 1})
    with pytest.raises(ValueError, match="has no parameter 'amplitude'"):
        make_cell("gru", 3, cell_params={"amplitude": 1})


def test_validation_batch_sets_the_pairs_of_model_selection(tmp_path):
    """``validation_batch`` scores every candidate on that many pairs of the reserved
    iteration (the training batch when unset); the run records the number it used."""
    scenario, device = make_scenario("ideal"), torch.device("cpu")
    model = build_model(TINY)
    for pairs in (None, 16, 48):
        config = replace(TINY, validation_batch=pairs)
        direct = meta_objective(
            model,
            scenario,
            replace(TINY, batch=pairs or TINY.batch),
            VALIDATION_ITERATION,
            device,
            grad=False,
        ).metrics["area"]
        assert validation_score(model, scenario, config, device) == direct
    assert validation_score(model, scenario, replace(TINY, validation_batch=48), device) != (
        validation_score(model, scenario, TINY, device)
    )
    result = train(
        replace(TINY, validation_batch=48),
        tmp_path / "run",
        progress=False,
        log=quiet,
        final_evaluation=False,
    )
    assert result["selected"]["validation_batch_pairs"] == 48
    assert load_run(tmp_path / "run")[0].validation_batch == 48


def test_resuming_a_finished_run_changes_nothing_unless_the_evaluation_batch_does(tmp_path):
    """A finished run given --resume again returns its result.json as it is: no second final
    evaluation, no new TensorBoard files; another eval_batch (free on resume) evaluates again."""
    run, config = tmp_path / "run", replace(TINY, figure_every=0)  # (no baselines to tune)
    first = train(config, run, progress=False, log=quiet, final_evaluation=False)
    files = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    said = []
    again = train(config, run, resume=True, progress=False, log=said.append, final_evaluation=False)
    assert again == first and any("nothing to resume" in line for line in said)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == files
    other = replace(config, eval_batch=2 * config.eval_batch)
    train(other, run, resume=True, progress=False, log=quiet, final_evaluation=False)
    assert (run / "result.json").stat().st_mtime_ns > files[run / "result.json"]


def test_a_resume_whose_new_evaluation_batch_failed_evaluates_again(tmp_path, monkeypatch):
    """Review, session 26: a resume with another eval_batch writes it to config.json before its
    final evaluation; when that evaluation failed, the next resume found the config matching
    and returned the old evaluation as current."""
    import learnsyn.runs

    run, config = tmp_path / "run", replace(TINY, figure_every=0)
    first = train(config, run, progress=False, log=quiet)
    assert first["evaluation"]["eval_batch"] == config.eval_batch
    bigger = replace(config, eval_batch=2 * config.eval_batch)
    real = learnsyn.runs._final_evaluation

    def out_of_memory(*args, **kwargs):
        raise MemoryError("no room for the bigger batch")

    monkeypatch.setattr(learnsyn.runs, "_final_evaluation", out_of_memory)
    with pytest.raises(MemoryError):
        train(bigger, run, resume=True, progress=False, log=quiet)
    monkeypatch.setattr(learnsyn.runs, "_final_evaluation", real)
    again = train(bigger, run, resume=True, progress=False, log=quiet)
    assert again["evaluation"]["eval_batch"] == bigger.eval_batch
    assert again["evaluation"]["batch_pairs"] == bigger.eval_batch
    # a result.json written before the evaluation recorded eval_batch: batch_pairs tells
    import json

    old = json.loads((run / "result.json").read_text())
    del old["evaluation"]["eval_batch"]
    old["evaluation"]["batch_pairs"] = config.eval_batch  # as if the bigger one had failed
    (run / "result.json").write_text(json.dumps(old))
    monkeypatch.setattr(learnsyn.runs, "_final_evaluation", out_of_memory)
    with pytest.raises(MemoryError):  # evaluated again, not returned as it was
        train(bigger, run, resume=True, progress=False, log=quiet)


def test_cell_parameters_given_as_text_are_stored_as_the_cell_reads_them(tmp_path):
    """`--cell-param output_scale=4` arrives as the string "4"; config.json holds the number,
    as `init=auto` writes its own sizing, and a resume given the string still matches."""
    given = {"output_scale": "4", "state_std": "0.8"}
    # no figure (its baselines cost 16 s in bounded) and no final evaluation: config.json is all
    quick = dict(task="bounded", iterations=2, figure_every=0)
    config = replace(TINY, **quick, cell_params=given).validate()
    assert config.cell_params["output_scale"] == 4.0
    assert isinstance(config.cell_params["output_scale"], float)
    assert config.cell_params["state_std"] == 0.8
    run = tmp_path / "run"
    train(config, run, progress=False, log=quiet, final_evaluation=False)
    import json

    stored = json.loads((run / "config.json").read_text())["cell_params"]
    assert stored["output_scale"] == 4.0 and stored["state_std"] == 0.8
    again = replace(TINY, **quick, cell_params=dict(given)).validate()
    train(again, run, resume=True, progress=False, log=quiet, final_evaluation=False)


def test_a_resume_removes_the_temporary_files_a_killed_process_left(tmp_path):
    """kill -9 between writing a checkpoint aside and renaming it left ``.checkpoint.pt.*.tmp``
    in the run for good (as large as a checkpoint). A resume, which holds the run's lock,
    removes such files and names them; a file of the user's is kept."""
    run = tmp_path / "run"
    train(TINY, run, progress=False, log=quiet, stop_after=3, final_evaluation=False)
    stale = run / ".checkpoint.pt.k3_x9qa1.tmp"
    stale.write_bytes(b"half a checkpoint")
    kept = [run / ".notes.tmp", run / "draft.abcdefgh.tmp"]
    for path in kept:
        path.write_text("mine")
    said = []
    train(TINY, run, resume=True, progress=False, log=said.append, final_evaluation=False)
    assert not stale.exists() and all(path.exists() for path in kept)
    assert any(".checkpoint.pt.k3_x9qa1.tmp" in line for line in said)
    assert not list(run.glob(".*.tmp"))[1:]  # the user's .notes.tmp only


def test_a_gradient_whose_norm_overflows_skips_the_update():
    # review, session 31: finite entries of 3e19 have an infinite float32 norm; the clip scaled
    # them to 0 and Adam stepped on its old moments, an update not counted as skipped
    from learnsyn.scenario import make_scenario
    from learnsyn.training import build_model, make_optimizer, training_step

    model = build_model(TINY)
    optimizer, scheduler = make_optimizer(model, TINY)
    scenario = make_scenario(TINY.task, TINY.task_params)

    def huge(model, scenario, config, iteration, device):
        result = meta_objective(model, scenario, config, iteration, device)
        result.value = result.value * 0 + sum(3e19 * p.sum() for p in model.parameters())
        return result

    before = {k: v.clone() for k, v in model.state_dict().items()}
    outcome = training_step(model, scenario, TINY, optimizer, scheduler, 0, "cpu", huge)
    assert outcome.skipped and not math.isfinite(outcome.grad_norm)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_the_smallest_evaluation_batch_allowed_finishes_its_run(tmp_path):
    """Review, session 33: the stationarity check evaluates a quarter of ``--eval-batch``
    pairs, at least 2; an evaluation needs 3, so every run with ``--eval-batch`` 4 to 11
    (allowed) failed after its training, and so did each resume. It takes at least 3 now."""
    config = replace(TINY, iterations=2, figure_every=0, eval_batch=4)
    result = train(config, tmp_path / "run", progress=False, log=quiet)
    assert result["evaluation"]["stationarity"]["batch_pairs"] == 3


def test_an_infinite_metric_that_stays_infinite_is_stationary(monkeypatch):
    """Review, session 33: in the exact convention a perfect memory's metric is +inf after
    both burn-ins, and inf - inf is NaN, so the check called it not stationary."""
    from types import SimpleNamespace

    import learnsyn.runs as runs

    infinite = SimpleNamespace(
        metrics={"area": math.inf}, metrics_stderr=None, monte_carlo={"batch_pairs": 4}
    )
    monkeypatch.setattr(runs, "evaluate_trained", lambda *args, **kwargs: infinite)
    check = runs.stationarity_check(None, None, TINY, "cpu", infinite, exact=False)
    assert check["stationary"] is True


def test_a_text_setting_that_strict_json_writes_as_a_number_reads_back_as_text():
    """Review, session 35: config.json holds "inf" for ``--start-from inf`` (a file of that
    name), which the strict reader turns into a float: a resume crashed on it."""
    data = TINY.to_dict() | {"start_from": math.inf, "device": -math.inf, "init": math.nan}
    config = TrainConfig.from_dict(data)
    assert (config.start_from, config.device, config.init) == ("inf", "-inf", "nan")
    assert TrainConfig.from_dict(TINY.to_dict() | {"lr": math.inf}).lr == math.inf  # a number


def test_an_interrupt_is_acknowledged_at_once(capsys):
    """Review, session 35: Ctrl-C while the first figure's baselines were tuned (minutes in
    bounded) was silent until the step ended."""
    import signal

    from learnsyn.runs import _Interrupt

    with _Interrupt() as interrupt:
        signal.raise_signal(signal.SIGINT)
        assert interrupt.requested
    assert "interrupt received: the run checkpoints after the current step" in (
        capsys.readouterr().err
    )


def test_a_resume_on_another_kernel_is_said_and_recorded(tmp_path, monkeypatch):
    """Review, session 35: resumed where the native kernel is off, result.json named only the
    last session's kernel (eager) for a run whose first iterations ran natively."""
    from learnsyn.rollout import native

    if not native.available():
        pytest.skip("no native kernel here")
    run = tmp_path / "run"
    train(TINY, run, progress=False, log=quiet, stop_after=2, final_evaluation=False)
    monkeypatch.setenv("LEARNSYN_NATIVE", "0")
    said = []
    result = train(
        TINY, run, resume=True, progress=False, log=lambda m, **k: said.append(m),
        final_evaluation=False,
    )  # fmt: skip
    assert result["rollout_kernel"] == "eager"
    assert result["rollout_kernels"] == ["native", "eager"]
    assert any("earlier iterations ran on native" in line for line in said), said


def test_a_finished_run_evaluated_again_keeps_one_set_of_hparams_and_aligned_validation(
    tmp_path,
):
    """Review, session 35: a finished run resumed with another --eval-batch wrote a second set
    of hparams at step 0 (TensorBoard showed both); the validation curve was a step behind
    result.json's selected iteration and left out the initial parameters' score."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    config = replace(TINY, validate_every=2)
    first = train(config, run, progress=False, log=quiet)
    train(replace(config, eval_batch=2 * TINY.eval_batch), run, resume=True, progress=False,
          log=quiet)  # fmt: skip
    sets = 0
    for path in run.glob("events.out.tfevents.*"):
        single = EventAccumulator(str(path))
        single.Reload()
        try:
            sets += bool(single.PluginTagToContent("hparams"))
        except KeyError:
            pass
    assert sets == 1
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    steps = {e.step: e.value for e in acc.Scalars("validation/area")}
    assert set(steps) == {0, 2, 4, 6, 8}  # the initial score, then after every 2 updates
    selected = first["selected"]
    assert steps[selected["iteration"]] == pytest.approx(selected["validation"])


def test_the_progress_bar_redraws_a_log_file_at_its_own_pace_and_list_survives_a_closed_pipe(
    tmp_path,
):
    """Review, session 35: set_postfix redrew the bar at every iteration, so a log file got a
    line per iteration (62 in a 5 s run, where the README promises one every 30 s); and
    `learnsyn list | head -1` said "error: Broken pipe" and exited 1."""
    import subprocess
    import sys

    log = tmp_path / "train.err"
    with open(log, "w") as err:
        command = [sys.executable, "-m", "learnsyn.cli", "train", "--task", "ideal",
                   "--synapses", "100", "--state-size", "2", "--cell", "gru", "--iterations",
                   "30", "--batch", "16", "--horizon", "20", "--burn-in", "20", "--eval-batch",
                   "16", "--figure-every", "0", "--out", str(tmp_path / "run")]  # fmt: skip
        assert subprocess.run(command, stderr=err, stdout=subprocess.DEVNULL).returncode == 0
    redraws = log.read_text().replace("\r", "\n").count("meta-training")
    assert redraws <= 3, redraws
    listing = subprocess.run(
        f"{sys.executable} -m learnsyn.cli list | head -1", shell=True, capture_output=True,
        text=True,
    )  # fmt: skip
    assert listing.returncode == 0 and "Broken pipe" not in listing.stderr


def test_a_run_recorded_with_an_upper_case_init_resumes_in_either_spelling(tmp_path):
    """Review of session 36's diff: validate now lower-cases the init, but a run made before
    with --init FOLD0 kept that spelling in config.json, and every resume was refused."""
    import json

    run = tmp_path / "run"
    config = replace(TINY, init="fold0", iterations=4)
    train(config, run, progress=False, log=quiet, final_evaluation=False, stop_after=2)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "init": "FOLD0"}))
    for spelling in ("FOLD0", "fold0"):
        resumed = replace(config, init=spelling)
        train(resumed, run, resume=True, progress=False, log=quiet, final_evaluation=False)


def test_a_validation_curve_with_nan_ages_is_no_candidate_whatever_its_lifetime(monkeypatch):
    """Review, session 36: the lifetime skips NaN ages (moments that overflowed) and read
    finite, above a sound curve's, so model selection could keep broken parameters."""
    import numpy as np

    import learnsyn.training as training
    from learnsyn.training import ObjectiveResult, validation_score

    def broken(*args, **kwargs):
        snr = np.array([3.0, 3.0, 3.0, np.nan, np.nan])
        return ObjectiveResult(torch.tensor(0.0), snr, snr * 0, {"lifetime": 2.0}, 0)

    monkeypatch.setattr(training, "meta_objective", broken)
    config = replace(TINY, metric="lifetime")
    assert validation_score(None, make_scenario("ideal"), config, "cpu") == -math.inf


def test_a_resume_removes_the_result_of_an_earlier_session_that_did_not_finish(tmp_path):
    """Review, session 36: a result.json left by a diverged or stopped session outlived an
    interrupted resume, its status and selected model disagreeing with the checkpoint."""
    import json

    run = tmp_path / "run"
    train(TINY, run, progress=False, log=quiet, final_evaluation=False, stop_after=2)
    (run / "result.json").write_text(json.dumps({"status": "diverged", "iterations_done": 1}))
    said = []
    train(TINY, run, resume=True, progress=False, log=said.append, final_evaluation=False,
          stop_after=2)  # fmt: skip
    assert json.loads((run / "result.json").read_text())["status"] != "diverged"  # its own
    assert any("did not finish (diverged)" in line for line in said), said
    result = train(TINY, run, resume=True, progress=False, log=quiet, final_evaluation=False)
    assert result["status"] == "complete" and "and the last one" in result["selected"]["rule"]


def test_a_finished_result_written_before_the_status_field_is_finished_on_resume(tmp_path):
    """Review, session 38: a result.json with ``"complete": true`` and no ``status`` (written
    before that field existed) was read as unfinished by --resume: removed and evaluated again
    with today's code, while ``run_cautions`` read it as complete."""
    import json

    from learnsyn.runs import run_cautions

    run = tmp_path / "run"
    train(TINY, run, progress=False, log=quiet, final_evaluation=False)
    path = run / "result.json"
    old = json.loads(path.read_text())
    del old["status"]
    path.write_text(json.dumps(old))
    said = []
    result = train(TINY, run, resume=True, progress=False, log=said.append,
                   final_evaluation=False)  # fmt: skip
    assert "status" not in result and path.exists(), said
    assert any("is finished" in line for line in said) and run_cautions(run) == []
    path.write_text(json.dumps({**old, "complete": False}))
    assert "the run is stopped" in run_cautions(run)[0]
    from learnsyn.runs import result_status

    assert result_status({}) == "stopped"  # neither field: not called finished (diff review)


def test_a_checkpoint_saved_under_numpy_1_loads_under_numpy_2(tmp_path):
    """Review of session 36's diff: NumPy 1.x pickles its random state's array with
    numpy.core.multiarray._reconstruct, 2.x with numpy._core...; the weights_only allowlist
    named only the installed NumPy's, so a checkpoint from the other was refused. The file is
    rewritten here as NumPy 1.x would have named it (the pickle's GLOBAL opcode)."""
    import zipfile

    from learnsyn.training import load_checkpoint

    train(TINY, tmp_path / "run", progress=False, log=quiet, final_evaluation=False)
    path = tmp_path / "run" / "checkpoint.pt"
    other = tmp_path / "other.pt"
    names = ("numpy._core.multiarray", "numpy.core.multiarray")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(other, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name.endswith("data.pkl"):
                here, there = (n.encode() + b"\n_reconstruct\n" for n in names)
                if here not in content:  # NumPy 1.x installed: make the 2.x name
                    here, there = there, here
                assert here in content
                content = content.replace(here, there)
            target.writestr(name, content)
    assert load_checkpoint(other)["rng"]["numpy"][1].dtype == "uint32"
