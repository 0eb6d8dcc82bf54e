"""`learnsyn study` in one process: a learned study on SQLite with its summary, baselines,
pruning of non-finite objectives, resuming an interrupted study, and bad input."""

import json
import math

import optuna
import pytest
import torch

from learnsyn.cli import main
from learnsyn.runs import START_NAME
from learnsyn.study.space import sampler_seed, trial_seed

#: a meta-training run of a fraction of a second
TINY_LEARNED = [
    "--fixed",
    "iterations=4",
    "--fixed",
    "batch=8",
    "--fixed",
    "horizon=20",
    "--fixed",
    "burn_in=20",
    "--fixed",
    "eval_batch=16",
    "--fixed",
    "device=cpu",
    "--fixed",
    "figure_every=1000",
    "--space",
    "state_size=2:3",
]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")


def study_args(tmp_path, target="learned", *extra):
    return [
        "study",
        *(["--target", target] if target else []),
        "--task",
        "ideal",
        "--synapses",
        "100",
        "--out",
        str(tmp_path / "runs"),
        *extra,
    ]


def load(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs/optuna.db'}")


def test_learned_study_on_sqlite_then_summary_and_compare(tmp_path, capsys):
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "3", "--seed", "5")
    assert main([*args, "--study-name", "tiny"]) == 0
    study = load(tmp_path, "tiny")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for trial in trials:
        run_dir = tmp_path / "runs" / "tiny" / f"trial_{trial.number}"
        assert trial.user_attrs["run_dir"] == str(run_dir)
        seed = trial_seed(5, trial.number)  # seeds per trial, recorded
        assert trial.user_attrs["seed"] == seed
        assert json.loads((run_dir / "config.json").read_text())["seed"] == seed
        assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard per trial
        assert trial.intermediate_values  # reported for the pruner
    # the figure's baselines are tuned once per setting (here: per state size), not per trial
    cached = sorted((tmp_path / "runs" / "tiny" / "baselines").glob("*.json"))
    assert len(cached) == len({t.params["state_size"] for t in trials})
    shared = {json.dumps(json.loads(path.read_text()), sort_keys=True) for path in cached}
    for trial in trials:
        rows = (tmp_path / "runs" / "tiny" / f"trial_{trial.number}" / "baselines.json").read_text()
        assert json.dumps(json.loads(rows), sort_keys=True) in shared
        assert {row["settings"]["seed"] for row in json.loads(rows)} == {5}  # the study's seed
    capsys.readouterr()

    summary_path = tmp_path / "summary.json"
    storage = f"sqlite:///{tmp_path / 'runs/optuna.db'}"
    summary_args = ["study", "--summary", "--storage", storage, "--study-name", "tiny"]
    assert main([*summary_args, "--json", str(summary_path)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(summary_path.read_text())
    best = data["best_trial"]
    assert best["number"] == study.best_trial.number and best["value"] == study.best_value
    assert best["seed"] == trial_seed(5, best["number"])
    assert f"best trial {best['number']}" in printed
    assert f"learnsyn compare --run {best['run_dir']}" in printed
    assert f"--seed {best['seed']}" in best["rerun"]
    # outside the study's folder (a trial_*-rerun there looked like a trial; session 26)
    reruns = tmp_path / "runs" / "tiny-reruns" / f"trial_{best['number']}"
    assert best["rerun"].endswith(f"--out {reruns}")
    assert set(data["importances"]) <= set(best["params"]) | {"init"}
    assert f"optuna-dashboard {storage}" in printed
    assert main(["compare", "--run", best["run_dir"], "--baselines", "exponential"]) == 0


def test_a_tuned_start_is_tuned_once_per_setting_for_the_whole_study(tmp_path, monkeypatch):
    """``--fixed start_from=tuned:optimal-linear``: the start's family is tuned with the study's
    seed and cached beside the figure's baselines, so trials that share a setting (here three
    trials, one state size) tune it once, and every trial starts at that one row."""
    import learnsyn.tuning

    tuned = []
    real = learnsyn.tuning._tune_row

    def counted(name, *args, **kwargs):
        tuned.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(learnsyn.tuning, "_tune_row", counted)
    fixed = [*TINY_LEARNED[:-2], "--fixed", "state_size=2", "--fixed", "cell=rnn"]
    args = study_args(tmp_path, "learned", *fixed, "--fixed", "start_from=tuned:optimal-linear")
    assert main([*args, "--n-trials", "3", "--seed", "5", "--study-name", "warm"]) == 0
    assert tuned.count("optimal-linear") == 1  # the start's family and the figure's share it
    (cache,) = (tmp_path / "runs" / "warm" / "baselines").glob("*.json")
    (row,) = [row for row in json.loads(cache.read_text()) if row["name"] == "optimal-linear"]
    assert row["settings"]["seed"] == 5  # the study's seed, not a trial's
    for number in range(3):
        kept = json.loads((tmp_path / "runs" / "warm" / f"trial_{number}" / START_NAME).read_text())
        assert kept["model"] == "optimal-linear" and kept["metrics"] == row["metrics"]


def test_a_cell_parameter_is_fixed_one_key_at_a_time(tmp_path):
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "1", "--study-name", "c")
    assert main([*args, "--fixed", "cell=gru", "--fixed", "cell_params.output_scale=1000"]) == 0
    (trial,) = load(tmp_path, "c").get_trials()
    assert trial.user_attrs["config"]["cell_params"]["output_scale"] == 1000


def test_trials_are_scored_on_their_own_stream_and_an_old_study_keeps_its_seed(tmp_path, capsys):
    """The scoring stream of a learned study is not the final evaluation's (a run trained with
    the study's seed is finally evaluated on other numbers than those its settings were chosen
    on); a study created before (no ``evaluation_seed`` stored) keeps scoring on its old seed."""
    from learnsyn.config import stream_seed

    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "1", "--seed", "3")
    assert main([*args, "--study-name", "new"]) == 0
    stored = load(tmp_path, "new").user_attrs["learnsyn"]["evaluation_seed"]
    assert stored == stream_seed(3, "study-evaluation") != stream_seed(3, "final-evaluation")
    evaluation = json.loads((tmp_path / "runs/new/trial_0/evaluation.json").read_text())
    assert evaluation["monte_carlo"]["seed"] == stored
    assert load(tmp_path, "new").trials[0].user_attrs["seed"] == trial_seed(3, 0) != 3
    old = load(tmp_path, "new")
    identity = dict(old.user_attrs["learnsyn"])
    del identity["evaluation_seed"], identity["trial_seeding"]
    old.set_user_attr("learnsyn", identity)  # as a study created before session 22
    capsys.readouterr()
    assert main([*args, "--study-name", "new", "--n-trials", "2"]) == 0
    err = capsys.readouterr().err
    assert "keeps scoring its trials on seed 10003" in err
    assert "keeps seeding trial k with --seed + k" in err  # as created before session 26
    evaluation = json.loads((tmp_path / "runs/new/trial_1/evaluation.json").read_text())
    assert evaluation["monte_carlo"]["seed"] == 10003
    assert load(tmp_path, "new").trials[1].user_attrs["seed"] == 3 + 1


def test_studies_with_adjacent_seeds_share_no_trial_or_sampler_seed():
    """Review, session 26: with ``seed + k`` trial k + 1 of ``--seed 0`` was trial k of
    ``--seed 1`` (the same parameters and bit-identical weights), so replicate studies were
    mostly copies. Mixed seeds share none; the old rule (kept for old studies) shares most."""
    for seeds in (trial_seed, sampler_seed):
        one, two = ({seeds(s, k) for k in range(200)} for s in (0, 1))
        assert len(one) == len(two) == 200 and not one & two
        old_one, old_two = ({seeds(s, k, "offset") for k in range(200)} for s in (0, 1))
        assert len(old_one & old_two) == 199
    assert all(0 <= trial_seed(2**32 - 1, k) < 2**62 for k in range(50))
    assert all(0 <= sampler_seed(2**32 - 1, k) < 2**32 for k in range(50))


def test_trials_without_a_figure_tune_no_baselines(tmp_path, monkeypatch):
    """Review, session 26: ``--fixed figure_every=0`` still tuned the figure's baselines before
    every trial (23 s against 4.8 s for the same ``learnsyn train``)."""
    import learnsyn.tuning

    def refuse(*args, **kwargs):
        raise AssertionError("baselines tuned for a figure that is not drawn")

    monkeypatch.setattr(learnsyn.tuning, "tune_baselines_for_run", refuse)
    fixed = [*TINY_LEARNED[:-4], "--fixed", "figure_every=0", "--fixed", "state_size=2"]
    args = study_args(tmp_path, "learned", *fixed, "--n-trials", "2", "--study-name", "nofig")
    assert main(args) == 0
    assert all(t.state.name == "COMPLETE" for t in load(tmp_path, "nofig").get_trials())


def test_baseline_study_summary_to_stdout_and_resume_adds_trials(tmp_path, capsys):
    args = study_args(tmp_path, "baseline:exponential", "--horizon", "200")
    assert main([*args, "--n-trials", "4", "--sampler", "random"]) == 0
    name = "baseline-exponential-ideal-N100"
    study = load(tmp_path, name)
    assert len(study.trials) == 4
    assert all(0 <= t.user_attrs["model_params"]["decay"] < 1 for t in study.trials)
    assert main([*args, "--n-trials", "6"]) == 0  # the same command, a larger total
    assert [t.number for t in load(tmp_path, name).trials] == list(range(6))
    capsys.readouterr()
    assert main(["study", "--summary", "--out", str(tmp_path / "runs"), "--json", "-"]) == 0
    printed = capsys.readouterr()
    data = json.loads(printed.out)
    assert data["study"] == name and data["trials"]["complete"] == 6
    # the decay is searched as 1-decay: the JSON keeps Optuna's name, the text says both
    assert list(data["importances"]) == ["1-decay"]
    assert "parameter importances: decay (as 1-decay) 1.00" in printed.err
    assert "--model exponential" in data["best_trial"]["rerun"]
    assert (tmp_path / "runs" / name / "trial_5" / "evaluation.json").exists()


def test_a_study_refused_for_foreign_trial_directories_is_not_created(tmp_path, capsys):
    """Review, session 26: the refusal came after the study was created with its settings, so
    the next run, with the folder cleaned and other settings, was refused as a different
    study."""
    args = study_args(tmp_path, "baseline:exponential", "--horizon", "50", "--n-trials", "1")
    (tmp_path / "runs" / "zz" / "trial_0").mkdir(parents=True)
    assert main([*args, "--study-name", "zz"]) == 2
    assert "holds trial directories of another study named 'zz'" in capsys.readouterr().err
    assert main(["study", "--summary", "--out", str(tmp_path / "runs")]) == 2
    assert "holds no study yet" in capsys.readouterr().err  # (was: "several studies")
    (tmp_path / "runs" / "zz" / "trial_0").rmdir()
    other = [*args, "--study-name", "zz"]
    other[other.index("100")] = "200"  # --synapses 200: not the settings of the refused run
    assert main(other) == 0
    assert load(tmp_path, "zz").user_attrs["learnsyn"]["synapses"] == 200


def test_summary_with_one_trial_has_no_importances(tmp_path, capsys):
    args = study_args(tmp_path, "baseline:binary", "--horizon", "50", "--n-trials", "1")
    assert main(args) == 0
    capsys.readouterr()
    assert main(["study", "--summary", "--out", str(tmp_path / "runs"), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["importances"] is None and "at least 2" in data["importances_note"]


def test_non_finite_objectives_prune_the_trial_not_the_study(tmp_path, monkeypatch):
    import learnsyn.evaluate
    import learnsyn.runs

    real_evaluate = learnsyn.evaluate.evaluate
    calls = []

    def evaluate_with_a_nan(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            result.metrics["area"] = math.nan
        return result

    monkeypatch.setattr(learnsyn.evaluate, "evaluate", evaluate_with_a_nan)
    assert main([*study_args(tmp_path, "baseline:exponential"), "--n-trials", "3"]) == 0
    states = [t.state.name for t in load(tmp_path, "baseline-exponential-ideal-N100").trials]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE"]

    def training_gone_wrong(config, run_dir, on_iteration, **kwargs):
        on_iteration(0, {"area": math.nan, "objective": math.nan})

    monkeypatch.setattr(learnsyn.runs, "train", training_gone_wrong)
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "2")
    assert main(args) == 0
    trials = load(tmp_path, "learned-ideal-N100").trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]


def test_a_trial_out_of_device_memory_is_pruned_and_the_worker_goes_on(
    tmp_path, monkeypatch, capsys
):
    """Review, session 29: a CUDA out-of-memory error in one trial (a large batch drawn) ended
    the worker and its remaining trials."""
    import torch

    import learnsyn.runs

    real_train, calls = learnsyn.runs.train, []

    def first_runs_out(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(learnsyn.runs, "train", first_runs_out)
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "2")
    assert main([*args, "--study-name", "oom"]) == 0
    trials = load(tmp_path, "oom").trials
    assert [t.state.name for t in trials] == ["PRUNED", "COMPLETE"]
    assert "trial 0 pruned (out of device memory with" in capsys.readouterr().err


def test_a_trial_refused_for_memory_by_its_run_is_pruned_and_the_worker_goes_on(
    tmp_path, monkeypatch, capsys
):
    """Review, session 38: a run checks memory again with the rollout it finds (a fallback to
    the reference loop needs more) after the study's own checks passed; its refusal, a
    ValueError, ended the worker and its remaining trials."""
    import learnsyn.runs
    from learnsyn.memory import NotEnoughMemory

    real_check, calls = learnsyn.runs.check_training_memory, []

    def first_does_not_fit(config, rollout=None):
        calls.append(1)
        if len(calls) == 1:
            raise NotEnoughMemory("meta-training with batch 16 would need about 9 GiB")
        return real_check(config, rollout)

    monkeypatch.setattr(learnsyn.runs, "check_training_memory", first_does_not_fit)
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "2")
    assert main([*args, "--study-name", "mem"]) == 0
    trials = load(tmp_path, "mem").trials
    assert [t.state.name for t in trials] == ["PRUNED", "COMPLETE"]
    assert "would need about 9 GiB" in capsys.readouterr().err


def test_interrupted_study_resumes_with_the_same_command(tmp_path, monkeypatch, capsys):
    import learnsyn.evaluate

    real_evaluate = learnsyn.evaluate.evaluate
    calls = []

    def interrupted_on_the_second_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(learnsyn.evaluate, "evaluate", interrupted_on_the_second_trial)
    args = [*study_args(tmp_path, "baseline:exponential"), "--n-trials", "3"]
    assert main(args) == 130
    assert "run the same command again" in capsys.readouterr().err
    name = "baseline-exponential-ideal-N100"
    assert [t.state.name for t in load(tmp_path, name).trials] == ["COMPLETE", "FAIL"]
    assert main(args) == 0
    states = [t.state.name for t in load(tmp_path, name).trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]  # failed trials do not count


def test_joining_a_study_with_another_objective_is_refused(tmp_path, capsys):
    args = study_args(tmp_path, "baseline:exponential", "--study-name", "s", "--n-trials", "1")
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--metric", "lifetime"]) == 2
    assert "created with metric = 'area'" in capsys.readouterr().err
    # how trials are scored is part of the study too: trials scored otherwise are not comparable
    for extra, expected in (
        (["--seed", "7"], "created with seed = 0, not 7"),
        (["--eval-batch", "64"], "created with eval_batch = 1024, not 64"),
        (["--method", "exact"], "created with method = 'auto', not 'exact'"),
        (["--fixed", "amplitude=3"], "created with fixed = {}"),
    ):
        assert main([*args, *extra]) == 2
        assert expected in capsys.readouterr().err, extra


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--target", "lstm"], "unknown target 'lstm'"),
        (["--target", "baseline:nope"], "unknown target 'baseline:nope'"),
        # review, session 34: a study searched only its number of variables, A, b, c default
        (["--target", "baseline:optimal-linear"], "use `learnsyn tune --model optimal-linear`"),
        (["--target", "baseline:linear-range"], "linear-range computes its own optimum (A, b, c"),
        (["--sampler", "grid"], "unknown sampler 'grid'"),
        (["--pruner", "hyperband"], "unknown pruner 'hyperband'"),
        (["--n-trials", "0"], "--n-trials 0 is not allowed"),
        (["--timeout", "-1"], "--timeout -1.0 is not allowed"),
        (["--storage", "not a url"], "storage URL 'not a url' is malformed"),
        (["--storage", "postgres://u@localhost/db"], "unknown database 'postgres'"),
        (["--storage", "sqlite://"], "in-memory database"),
        (["--storage", "journal:"], "names no file"),
        (["--storage", "journal://runs/j.log"], "is ambiguous"),  # (was the file /runs/j.log)
        (["--storage", "postgresql://u@127.0.0.1:1/db"], "cannot open storage"),
        (["--metric", "speed"], "unknown metric 'speed'"),
        (["--space", "lr=0.1:0.01"], "LOW must not exceed HIGH"),
        (["--fixed", "lr=0.01", "--space", "lr=0.02"], "both in --space and --fixed"),
        (["--max-state", "2"], "--max-state applies to baseline targets"),  # (was ignored)
        (["--method", "exact"], "--method exact applies to baseline targets"),
        (["--fixed", "synapses=5"], "set it with --synapses"),
        (["--fixed", "task_params.levels=8"], "set it with --task-param"),
        (["--fixed", "cell_params=x"], "give each entry of cell_params as cell_params.KEY=VALUE"),
        (["--fixed", "cell_params.nosuch=1"], "nosuch"),
        (["--fixed", "cell=chain", "--fixed", "init=orthogonal"], "chain cell"),
        (["--study-name", "a/b"], "study name 'a/b' is not allowed"),
        # review, session 29: searched values no trial could use were trials pruned as
        # "settings rejected", and a bad device failed inside trial 0
        (["--space", "init=default,bogus"], "--space init: the value bogus is not allowed"),
        (["--space", "rollout=fast,bogus"], "rollout 'bogus' is not allowed"),
        (["--space", "log_every=0:3"], "--space log_every: the value 0 is not allowed"),
        (["--space", "grad_clip=-2:-1"], "grad clip = -2.0 is not allowed"),
        (["--fixed", "device=cpuu"], "device 'cpuu' is not allowed"),
        # review, session 35: the scoring evaluation (the study's horizon) failed after trial 0
        # had trained
        (["--horizon", "100000000"], "Monte Carlo over horizon 100000000 with 16 pairs"),
        # review, session 35: a conditional setting no trial can take was dropped silently
        (["--fixed", "cell=chain", "--space", "init=orthogonal,gaussian"], "init: no trial can"),
        (["--space", "cell=chain,mlp", "--space", "init=orthogonal"], "cell is chain, mlp"),
        # review, session 31: an absent GPU failed in trial 0, after its baselines were tuned
        pytest.param(["--fixed", "device=cuda"], "device 'cuda' is not available", marks=NO_CUDA),
    ],
)
def test_bad_input_is_one_line_before_any_trial(tmp_path, capsys, extra, expected):
    target = None if "--target" in extra else "learned"
    args = study_args(tmp_path, target, *TINY_LEARNED)
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("learnsyn: error: ") and expected in err[0], err
    assert not (tmp_path / "runs" / "optuna.db").exists() or "a/b" in extra
    assert not list((tmp_path / "runs").glob("*/trial_*"))


def test_a_baseline_choice_no_trial_can_use_is_refused_before_any_trial(tmp_path, capsys):
    """Review, session 33: a listed choice of a baseline study was checked by nothing, so
    ``--space states=4,5`` of ``serial`` (an even number of states) ran and pruned every trial
    that drew 5. A choice usable beside other searched values stays (``--space states=4,6``)."""
    args = study_args(tmp_path, "baseline:serial", "--horizon", "30", "--n-trials", "2")
    assert main([*args, "--space", "states=4,5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--space states: the value 5 is not allowed" in err[0], err
    assert not (tmp_path / "runs" / "optuna.db").exists()
    assert main([*args, "--space", "states=4,6"]) == 0


def test_a_setting_both_searched_and_given_as_an_option_is_refused(tmp_path, capsys):
    """Review, session 26: ``--space eval_batch=32:128 --eval-batch 64`` dropped the searched
    range without a word."""
    i = TINY_LEARNED.index("eval_batch=16")
    tiny = TINY_LEARNED[: i - 1] + TINY_LEARNED[i + 1 :]
    args = study_args(tmp_path, "learned", *tiny, "--space", "eval_batch=32:128")
    # (session 36: a searched evaluation batch is refused in itself, given or not)
    for extra in (["--eval-batch", "64"], []):
        assert main([*args, *extra]) == 2
        assert "eval_batch cannot be searched" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "optuna.db").exists()
    one = study_args(tmp_path, "learned", *tiny, "--space", "eval_batch=64")  # one value
    assert main([*one, "--eval-batch", "128"]) == 2
    assert "as --eval-batch and --space" in capsys.readouterr().err


def test_summary_of_a_missing_study_names_the_ones_there(tmp_path, capsys):
    assert main([*study_args(tmp_path, "baseline:binary"), "--n-trials", "1"]) == 0
    capsys.readouterr()
    storage = f"sqlite:///{tmp_path / 'runs/optuna.db'}"
    assert main(["study", "--summary", "--storage", storage, "--study-name", "other"]) == 2
    assert "studies there: baseline-binary-ideal-N100" in capsys.readouterr().err
    assert main([*study_args(tmp_path, "baseline:exponential"), "--n-trials", "1"]) == 0
    capsys.readouterr()
    assert main(["study", "--summary", "--storage", storage]) == 2  # which one? (was "None")
    assert "holds several studies: name one with --study-name (baseline-" in (
        capsys.readouterr().err
    )


def test_storage_urls_are_checked_and_shown_without_connecting(tmp_path):
    from learnsyn.study.storage import parse_storage

    sqlite = parse_storage(f"sqlite:///{tmp_path}/a.db")
    assert sqlite.kind == "sqlite" and sqlite.has_heartbeat
    assert sqlite.dashboard_command() == f"optuna-dashboard sqlite:///{tmp_path}/a.db"
    journal = parse_storage("journal:runs/optuna.journal")
    assert journal.kind == "journal" and not journal.has_heartbeat
    assert journal.dashboard_command() == "optuna-dashboard runs/optuna.journal"
    remote = parse_storage("postgresql://learnsyn:secret@db-host:5432/studies")
    assert remote.kind == "database" and "secret" not in remote.display
    assert remote.sqlalchemy_url.startswith("postgresql+psycopg")  # the installed driver
    assert "secret" in remote.sqlalchemy_url and "***" in remote.dashboard_command()
    with pytest.raises(ValueError, match="no storage at"):
        parse_storage(f"sqlite:///{tmp_path}/missing.db").open(create=False)


def test_a_study_created_before_a_cell_was_registered_resumes_with_its_own_choices(
    tmp_path, monkeypatch, capsys
):
    """Optuna refuses a categorical whose choices change within a study ("does not support
    dynamic value space"); a study begun before the mlp cell existed keeps its cell choices."""
    import learnsyn.study.space

    old = ["rnn", "gru", "chain"]
    args = [*study_args(tmp_path, "learned", *TINY_LEARNED, "--seed", "3"), "--study-name", "old"]
    with monkeypatch.context() as patch:
        patch.setattr(learnsyn.study.space, "model_names", lambda family: list(old))
        assert main([*args, "--n-trials", "1"]) == 0
    assert "mlp" in learnsyn.study.space.learned_space()["cell"].choices
    capsys.readouterr()
    assert main([*args, "--n-trials", "2"]) == 0
    assert "keeps the cell choices it was created with: rnn, gru, chain" in capsys.readouterr().err
    trials = load(tmp_path, "old").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(t.distributions["cell"].choices == tuple(old) for t in trials)
    # choices that are not the study's are refused in one line before any trial (review,
    # session 26: Optuna's "dynamic value space" error inside a trial, which it recorded failed)
    for narrowed in ("cell=mlp,gru", "cell=gru,rnn"):
        capsys.readouterr()
        assert main([*args, "--n-trials", "3", "--space", narrowed]) == 2
        err = capsys.readouterr().err
        assert "this study searches cell among rnn, gru, chain (as it was created)" in err
    assert len(load(tmp_path, "old").get_trials()) == 2


@pytest.mark.parametrize(
    "extra",
    [["--space", "variables=2:12"], ["--space", "variables=2,12"], ["--fixed", "variables=12"]],
)
def test_a_baseline_study_keeps_narrowed_and_fixed_sizes_within_max_state(tmp_path, capsys, extra):
    """Review, session 29: --max-state capped only the space a study enumerates, so a range,
    choices or a fixed value the user gave ran trials of 12 variables under a budget of 4."""
    args = study_args(tmp_path, "baseline:benna-fusi", "--horizon", "40", "--max-state", "4")
    assert main([*args, "--n-trials", "1", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "12" in err[0] and "state" in err[0] and "4" in err[0], err
    assert not (tmp_path / "runs" / "optuna.db").exists()


def test_a_study_resumes_only_with_the_space_it_was_created_with(tmp_path, capsys):
    """Review, session 29: another range or scale of a dimension was accepted on resume (its
    trials recorded under another name, importances mixed), another kind failed inside a trial
    with Optuna's words."""
    args = study_args(tmp_path, "baseline:exponential", "--horizon", "40", "--study-name", "s")
    assert main([*args, "--n-trials", "1"]) == 0
    capsys.readouterr()
    for other in ("decay=0.5:0.9:linear", "decay=0.5,0.9"):
        assert main([*args, "--n-trials", "3", "--space", other]) == 2
        err = capsys.readouterr().err
        assert "searches decay as" in err and "as it was created" in err, err
    assert len(load(tmp_path, "s").get_trials()) == 1  # nothing ran, nothing failed
    assert main([*args, "--n-trials", "2"]) == 0
    assert len(load(tmp_path, "s").get_trials()) == 2
    # a range inside the created one (e.g. leaving out values found unusable) is allowed
    stored = load(tmp_path, "s").user_attrs["learnsyn"]["space"]["decay"]
    inside = f"decay={stored['low']}:{(stored['low'] + stored['high']) / 2}:{stored['scale']}"
    capsys.readouterr()
    assert main([*args, "--n-trials", "3", "--space", inside]) == 0
    assert "searches decay inside the range it was created with" in capsys.readouterr().err
    assert len(load(tmp_path, "s").get_trials()) == 3


def test_a_searched_value_is_judged_beside_the_other_searched_values(tmp_path, capsys):
    """Review of session 29's first version: fold2 was refused beside the default state size 2
    though every searched size (4, 8) takes it; a fixed linear synapse under --max-state was
    refused by the size of the family's smallest member."""
    from learnsyn.study.space import study_settings

    parser_args = study_args(tmp_path, "learned", *TINY_LEARNED)
    at = parser_args.index("state_size=2:3")
    parser_args[at] = "state_size=4,8"
    from learnsyn.cli import build_parser

    args = build_parser().parse_args([*parser_args, "--fixed", "cell=gru", "--space",
                                      "init=default,fold2"])  # fmt: skip
    assert study_settings(args).space["init"].choices == ("default", "fold2")
    fixed = ["--fixed", "A=[[0.9,0],[0,0.5]]", "--fixed", "b=[1,1]", "--fixed", "c=[1,1]"]
    args = study_args(tmp_path, "baseline:optimal-linear", "--max-state", "2", *fixed)
    assert main([*args, "--horizon", "40", "--n-trials", "1"]) == 0


def test_the_summary_says_what_compare_and_the_rerun_do_not_repeat():
    """Review, session 29: a trial scored at the study's --horizon 40 was offered a compare at
    its training horizon 100 as its re-evaluation, without a word."""
    from learnsyn.study.storage import _rerun_note

    identity = {"horizon": 40, "seed": 3}
    assert _rerun_note({"horizon": 40}, identity) is None
    note = _rerun_note({"horizon": 100, "start_from": "tuned:linear-range"}, identity)
    assert "ages 0..39" in note and "ages 0..99" in note
    assert "tuned:linear-range start was tuned with the study's seed 3" in note


def test_trials_can_start_where_train_does_and_an_old_study_keeps_its_inits(
    tmp_path, monkeypatch, capsys
):
    """``learnsyn train``'s default init (``auto``) was no study choice, so a study could not
    find the start the degeneracy grids rank best. A study created with the three old inits
    keeps them when it resumes."""
    import learnsyn.study.space

    space = learnsyn.study.space.learned_space()
    assert space["init"].choices == ("auto", "default", "orthogonal", "gaussian")
    old = ("default", "orthogonal", "gaussian")
    args = [
        *study_args(tmp_path, "learned", *TINY_LEARNED, "--seed", "3"),
        "--study-name", "inits", "--fixed", "cell=gru",
    ]  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setitem(space, "init", learnsyn.study.space.replace(space["init"], choices=old))
        patch.setattr(learnsyn.study.space, "learned_space", lambda: dict(space))
        assert main([*args, "--n-trials", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--n-trials", "2"]) == 0
    assert "keeps the init choices it was created with: default, orthogonal, gaussian" in (
        capsys.readouterr().err
    )
    trials = load(tmp_path, "inits").get_trials()
    assert all(t.distributions["init"].choices == old for t in trials)


def test_one_init_applies_to_the_cells_that_take_one(tmp_path, capsys):
    """Review, session 29: ``--space init=orthogonal`` fixed the init of every trial, so a
    study whose cells include the chain (no recurrent matrix) was refused. One value of a
    conditional setting stays conditional: rnn and gru trials take it, chain trials none."""
    from learnsyn.study.space import learned_space, narrow_space

    space, fixed = narrow_space(learned_space(), {"init": "orthogonal"}, "learned")
    assert fixed == {} and space["init"].choices == ("orthogonal",)
    assert space["init"].only_if == ("cell", ("rnn", "gru"))
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "2", "--seed", "1")
    extra = ["--space", "cell=chain,gru", "--space", "init=orthogonal", "--study-name", "one"]
    assert main([*args, *extra]) == 0
    trials = load(tmp_path, "one").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        assert trial.params.get("init") == ("orthogonal" if trial.params["cell"] == "gru" else None)
        assert trial.user_attrs["config"]["init"] == (
            "orthogonal" if trial.params["cell"] == "gru" else "default"
        )
    # fixed for every trial, it is still refused where a trial cannot take it
    assert main([*args, "--space", "cell=chain,gru", "--fixed", "init=orthogonal"]) == 2
    assert "the chain cell has no free recurrent matrix" in capsys.readouterr().err


def test_a_searched_burn_in_is_not_part_of_the_score(tmp_path, monkeypatch, capsys):
    """Review, session 35: each trial was scored after its own (searched) burn-in, so a short
    one scored the start-up transient (15 % higher at 0). Trials train with theirs and are
    scored after the study's: the fixed one, else the default."""
    from learnsyn import runs

    scored = []
    evaluate_trained = runs.evaluate_trained

    def recorded(model, config, **kwargs):
        scored.append(config.burn_in)
        return evaluate_trained(model, config, **kwargs)

    monkeypatch.setattr(runs, "evaluate_trained", recorded)
    i = TINY_LEARNED.index("burn_in=20")
    tiny = TINY_LEARNED[: i - 1] + TINY_LEARNED[i + 1 :]
    args = study_args(tmp_path, "learned", *tiny, "--n-trials", "2", "--sampler", "random")
    assert main([*args, "--space", "burn_in=0:40", "--study-name", "b"]) == 0
    trained = [t.user_attrs["config"]["burn_in"] for t in load(tmp_path, "b").trials]
    assert len(set(trained)) == 2 and scored == [None, None]
    # a study created before (its trials scored after their own burn-in) is said to mix rules
    study = load(tmp_path, "b")
    identity = dict(study.user_attrs["learnsyn"])
    del identity["burn_in_scoring"]
    study.set_user_attr("learnsyn", identity)
    capsys.readouterr()
    assert main([*args, "--space", "burn_in=0:40", "--study-name", "b", "--n-trials", "3"]) == 0
    assert "created before its trials were scored after one common burn-in" in (
        capsys.readouterr().err
    )
    scored.clear()
    fixed = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "1")
    assert main([*fixed, "--study-name", "f"]) == 0
    assert scored == [20]  # a fixed burn-in is the trial's own and the score's


def test_a_worker_with_other_code_than_the_studys_creator_is_warned(tmp_path, capsys):
    """Review, session 38: a study's identity held no fingerprint of the code, so a worker with
    edited code added trials beside earlier ones without a word."""
    args = study_args(tmp_path, "learned", *TINY_LEARNED, "--n-trials", "1")
    assert main([*args, "--study-name", "c"]) == 0
    study = load(tmp_path, "c")
    identity = dict(study.user_attrs["learnsyn"])
    assert len(identity["code"]) == 16
    capsys.readouterr()
    assert main([*args, "--study-name", "c", "--n-trials", "2"]) == 0
    assert "was created by other code" not in capsys.readouterr().err  # the same code
    study.set_user_attr("learnsyn", {**identity, "code": "0" * 16})
    assert main([*args, "--study-name", "c", "--n-trials", "3"]) == 0
    assert "was created by other code" in capsys.readouterr().err
    del identity["code"]
    study.set_user_attr("learnsyn", identity)
    assert main([*args, "--study-name", "c", "--n-trials", "4"]) == 0
    assert "created before code fingerprints were kept" in capsys.readouterr().err


def test_a_worker_does_not_wait_for_a_trial_nothing_will_end():
    """Review, session 35: a RUNNING trial started on another host without a heartbeat (a
    worker killed under --heartbeat 0) kept every later worker polling, silently. A worker
    waits for a trial whose process lives on this host or that beats a heartbeat."""
    import os
    import socket

    from learnsyn.study.run import _awaitable_trials

    study = optuna.create_study()
    assert not _awaitable_trials(study)
    trial = study.ask()
    trial.set_user_attr("host", "another-machine")
    trial.set_user_attr("pid", 12345)
    assert not _awaitable_trials(study)
    trial.set_user_attr("heartbeat", 60)
    assert _awaitable_trials(study)
    here = study.ask()
    here.set_user_attr("host", socket.gethostname())
    here.set_user_attr("pid", os.getpid())
    trial.set_user_attr("heartbeat", 0)
    assert _awaitable_trials(study)


def test_importances_of_equal_trials_are_undefined_and_the_summary_says_how_trials_were_measured(
    tmp_path, capsys
):
    """Review, session 35: two trials both scoring 0 printed "importances: q 1.00"; a study
    whose trials were partly Monte Carlo said "each exact (no noise)" when its best was exact."""
    from learnsyn.study.storage import print_summary

    args = study_args(tmp_path, "baseline:binary", "--horizon", "50", "--n-trials", "2")
    assert main(args) == 0
    capsys.readouterr()
    assert main(["study", "--summary", "--out", str(tmp_path / "runs"), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best_trial"]["value"] == 0.0
    assert data["importances"] is None and "undefined" in data["importances_note"]
    assert data["complete_exact"] == 2
    data["complete_exact"] = 1
    print_summary(data, "-", __import__("sys").stdout)
    out = capsys.readouterr().out
    assert "itself exact (1 of them exact, the others Monte Carlo" in out
    assert "each exact" not in out
    data["best_trial"]["measured_on"] = "Monte Carlo, 256 pairs"
    print_summary(data, "-", __import__("sys").stdout)
    out = capsys.readouterr().out
    assert "1 of them exact and the others Monte Carlo" in out and "another --seed" in out


def test_a_baseline_study_whose_evaluation_cannot_fit_is_refused_before_any_trial(tmp_path, capsys):
    """Review, session 35: with --method monte-carlo every trial was pruned for memory and the
    study reported "2 of 2 done"."""
    args = study_args(tmp_path, "baseline:exponential", "--method", "monte-carlo")
    assert main([*args, "--horizon", "100000000", "--n-trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Monte Carlo over horizon 100000000 with 1024 pairs" in err[0], err
    assert not (tmp_path / "runs" / "optuna.db").exists()
