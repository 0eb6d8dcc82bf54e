"""``learnsyn study``: an Optuna study whose trials are meta-training runs or baseline tunings.

``--target learned`` searches meta-training settings (``learnsyn.study.space.learned_space``);
each trial is a ``learnsyn.runs.train`` run in ``<out>/<study>/trial_<number>/`` (TensorBoard
events, checkpoint, config), reports a smoothed training metric every few iterations so the
pruner can stop poor runs, and is scored by a Monte Carlo evaluation of the trained synapse at
the study's horizon with one evaluation seed shared by all trials. ``--target baseline:NAME``
searches a hand-crafted model's parameters; each trial is one ``learnsyn.evaluate`` call.

Every worker runs the same command (same ``--study-name`` and ``--storage``): the study is
created by the first and joined by the others, the slot lock of ``learnsyn.study.storage`` makes
them start exactly ``--n-trials`` trials together (failed trials do not count, so a crashed
trial is replaced), and a worker out of trials to start waits for the others' running trials,
so that one whose worker died is marked failed by its stale heartbeat and replaced. Re-running
the command resumes an interrupted study. Non-finite objectives prune the trial. Trial ``k`` of
a learned study trains with a seed mixed from ``--seed`` and ``k`` (``StudySettings.trial_seed``;
``--seed + k`` in a study created before session 26); its seed, run directory and host are user
attributes, so any trial can be re-run (``--summary`` prints the command).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from learnsyn.io import atomic_write_json
from learnsyn.study.space import (
    OBJECTIVE_KEYS,
    Space,
    StudySettings,
    keep_stored_choices,
    learned_config,
    suggest,
)
from learnsyn.study.storage import StorageLocation, describe_running, described, trial_counts

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "none")
STUDY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class IntermediateReporter:
    """``train(on_iteration=...)`` hook: reports a moving average of the training metric every
    few iterations and prunes when the pruner says so, or at once when the metric is not
    finite on an update that was made. An update that ``train`` skipped (a non-finite objective,
    gradient or step: undone there) is passed over, as ``learnsyn train`` passes over it;
    ``DIVERGENCE_LIMIT`` of them in a row end the run, and the trial is pruned then."""

    def __init__(self, trial, metric: str, iterations: int):
        self.trial = trial
        self.metric = metric
        self.every = max(1, iterations // 20)
        self.smoothed: float | None = None

    def __call__(self, iteration: int, record: dict[str, Any]) -> None:
        import optuna

        value = record.get(self.metric)
        if record.get("skipped") and (value is None or not math.isfinite(value)):
            return
        if value is None or not math.isfinite(value):
            raise optuna.TrialPruned(f"non-finite {self.metric} at iteration {iteration}")
        self.smoothed = value if self.smoothed is None else 0.7 * self.smoothed + 0.3 * value
        if (iteration + 1) % self.every == 0:
            self.trial.report(self.smoothed, iteration)
            if self.trial.should_prune():
                raise optuna.TrialPruned(
                    f"{self.metric} {self.smoothed:.4g} below the median at iteration {iteration}"
                )


class TrialObjective:
    """The objective of one study: a learned meta-training run or a baseline evaluation."""

    def __init__(
        self, settings: StudySettings, study_dir: Path, on_trial_start=None, log=_log, heartbeat=0
    ):
        self.settings = settings
        self.study_dir = study_dir
        self.on_trial_start = on_trial_start
        self.log = log
        self.heartbeat = heartbeat
        self.last_number: int | None = None
        self.last_note = ""

    def __call__(self, trial) -> float:
        import optuna
        import torch

        if self.on_trial_start is not None:
            self.on_trial_start()  # the trial exists: other workers may create theirs now
        self.last_number, self.last_note = trial.number, ""
        run_dir = self.study_dir / f"trial_{trial.number}"
        params = suggest(trial, self.settings.space, self.settings.fixed)
        for key, value in (("run_dir", str(run_dir)), ("host", socket.gethostname())):
            trial.set_user_attr(key, value)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("heartbeat", self.heartbeat)  # 0: nothing fails it when stale
        try:
            if self.settings.model is None:
                value = self._learned(trial, params, run_dir)
            else:
                value = self._baseline(trial, params, run_dir)
            if not math.isfinite(value):
                raise optuna.TrialPruned(f"non-finite {self.settings.metric} ({value})")
        except torch.OutOfMemoryError:  # one trial's batch or size, not the worker's end
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            message = (
                f"out of device memory with {described(params) or 'the fixed settings'}; "
                "narrow --space batch, state_size or horizon to what fits"
            )
            self.last_note = f" ({message})"
            raise optuna.TrialPruned(message) from None
        except optuna.TrialPruned as pruned:
            self.last_note = f" ({pruned})"
            raise
        return value

    def _learned(self, trial, params: dict[str, Any], run_dir: Path) -> float:
        import optuna

        from learnsyn import runs
        from learnsyn.config import resolve_device
        from learnsyn.memory import NotEnoughMemory
        from learnsyn.scenario import make_scenario
        from learnsyn.tensorboard_log import FIGURE_BASELINES, RunLogger

        s = self.settings
        try:
            config = learned_config(s, params, seed=s.trial_seed(trial.number))
        except ValueError as error:  # a combination the user's narrowed space allows
            raise optuna.TrialPruned(f"settings rejected: {error}") from None
        trial.set_user_attr("seed", config.seed)
        trial.set_user_attr("config", asdict(config))
        self.log(
            f"trial {trial.number}: training {described(params) or 'the fixed settings'} in "
            f"{run_dir}"
        )
        try:
            runs.train(
                config,
                run_dir,
                progress=False,
                final_evaluation=False,
                log=lambda message: self._run_log(trial.number, message),
                on_iteration=IntermediateReporter(trial, s.metric, config.iterations),
                figure_baselines=(  # no figure (figure_every 0): nothing to tune for it
                    self._shared_baselines(config, FIGURE_BASELINES, trial.number)
                    if config.figure_every
                    else None
                ),
                tune_start=lambda names: self._shared_baselines(config, names, trial.number),
            )
        except runs.TrainingDiverged as error:
            raise optuna.TrialPruned(str(error)) from None
        except NotEnoughMemory as error:  # checked again with the rollout the run found (a
            # fallback to the reference loop needs more): this trial's size, not the worker's
            # end (review, session 38)
            raise optuna.TrialPruned(f"settings rejected: {error}") from None
        _, model, _ = runs.load_run(run_dir)
        scenario = make_scenario(config.task, config.task_params)
        device = resolve_device(config.device)
        # every trial is scored after the same burn-in: a searched one (the trial trained with
        # it) gives way to the study's fixed one, else the default (review, session 35: a short
        # burn-in scored the start-up transient, 15 % higher at 0)
        scoring = replace(config, burn_in=s.fixed.get("burn_in")) if "burn_in" in params else config
        evaluation = runs.evaluate_trained(
            model,
            scoring,
            batch=config.eval_batch,
            seed=s.scoring_seed(),
            device=device,
            horizon=s.horizon,
            scenario=scenario,
        )
        atomic_write_json(run_dir / "evaluation.json", evaluation.to_json())
        _record_measurement(trial, evaluation, s.metric)
        logger = RunLogger(run_dir, config, scenario, device, log=self.log)
        logger.log_hparams({"evaluation": {"metrics": evaluation.metrics}})
        logger.close()
        return float(evaluation.metrics[s.metric])

    def _shared_baselines(self, config, names, number: int) -> list[dict[str, Any]]:
        """Baselines for a trial (the TensorBoard figure's; a ``tuned:MODEL`` start's family),
        tuned with the study's seed (not the trial's) and cached in ``<study>/baselines/``, one
        file per setting: trials that share a setting, in any worker, tune them once."""
        import hashlib

        from learnsyn.io import json_text
        from learnsyn.scenario import make_scenario
        from learnsyn.tuning import tune_baselines_for_run, tuning_settings

        shared = replace(config, seed=self.settings.seed)
        setting = json_text(tuning_settings(shared), sort_keys=True)
        key = hashlib.sha256(setting.encode()).hexdigest()[:16]
        cache = self.study_dir / "baselines" / f"{key}.json"
        cache.parent.mkdir(parents=True, exist_ok=True)
        scenario = make_scenario(config.task, config.task_params)
        log = lambda message: self._run_log(number, message)  # noqa: E731
        return tune_baselines_for_run(shared, scenario, names, cache, log)

    def _run_log(self, number: int, message: str) -> None:
        if message.startswith("interrupted:"):  # a study resumes with new trials, not --resume
            message = "interrupted; its checkpoint is kept, the study replaces the trial"
        self.log(f"trial {number}: {message}")

    def _baseline(self, trial, params: dict[str, Any], run_dir: Path) -> float:
        import optuna
        from torch.utils.tensorboard import SummaryWriter

        from learnsyn.evaluate import evaluate
        from learnsyn.registry import make_model
        from learnsyn.scenario import make_scenario

        s = self.settings
        # one seed for all trials: Monte Carlo candidates compare on the same random numbers
        trial.set_user_attr("seed", s.seed)
        try:
            model = make_model(s.model, {**s.fixed, **params})
            evaluation = evaluate(
                model, make_scenario(s.task, s.task_params), method=s.method, batch=s.eval_batch,
                seed=s.seed, **s.eval_spec().keywords(),
            )  # fmt: skip
        except ValueError as error:  # e.g. an unstable combination of parameters
            raise optuna.TrialPruned(f"parameters rejected: {error}") from None
        trial.set_user_attr("model_params", evaluation.params)
        _record_measurement(trial, evaluation, s.metric)
        atomic_write_json(run_dir / "evaluation.json", evaluation.to_json())
        finite = {k: float(v) for k, v in evaluation.metrics.items() if math.isfinite(v)}
        writer = SummaryWriter(log_dir=str(run_dir))
        for key, value in finite.items():
            writer.add_scalar(f"metrics/{key}", value, 0)
        hparams = {k: v for k, v in evaluation.params.items() if isinstance(v, (int, float))}
        writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in finite.items()}, run_name=".")
        writer.close()
        return float(evaluation.metrics[s.metric])


def _record_measurement(trial, evaluation, metric: str) -> None:
    """What the trial's value was measured on, and its standard error (the summary prints
    them next to the value)."""
    errors = evaluation.metrics_stderr or {}
    if errors.get(metric) is not None and math.isfinite(errors[metric]):
        trial.set_user_attr("value_stderr", float(errors[metric]))
    if evaluation.method == "monte-carlo":
        pairs = (evaluation.monte_carlo or {}).get("batch_pairs")
        measured = f"Monte Carlo, {pairs} pairs, one seed shared by all trials"
    else:
        measured = "exact"
    trial.set_user_attr("measured_on", f"{measured}, horizon {evaluation.horizon}")


def make_sampler(name: str, seed: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def check_sampler_and_pruner(sampler: str, pruner: str) -> None:
    import importlib.util

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ValueError("--sampler cmaes needs the cmaes package: pip install cmaes")
    if pruner not in PRUNERS:
        raise ValueError(f"unknown pruner {pruner!r}; allowed: {', '.join(PRUNERS)}")


def _estimators_over_state_sizes(settings: StudySettings) -> set[str]:
    """The estimators the trials resolve to over the searched state sizes (``estimator=auto``
    trains bounded on the exact grid at m = 2, 3 and by Monte Carlo from m = 4)."""
    from learnsyn.config import TrainConfig, resolve_estimator

    dim = settings.space["state_size"]
    sizes = dim.choices if dim.kind == "choice" else range(int(dim.low), int(dim.high) + 1)
    estimator = settings.fixed.get("estimator", TrainConfig().estimator)
    return {
        resolve_estimator(estimator, settings.task, dict(settings.task_params), int(m))
        for m in sizes
    }


def make_pruner(name: str, settings: StudySettings | None = None, log=_log):
    """Optuna's pruner for ``--pruner``. The median pruner compares the trials' training
    metrics at the same iteration, so a learned study that searches ``horizon`` (the window
    they are measured over: a longer one scores more area whatever the synapse), ``batch`` (the
    training batch they are estimated on: a small one reads high), ``burn_in``, ``estimator``
    or state sizes that mix the exact grid with Monte Carlo prunes nothing (the default space
    searches horizon and batch: fix both to prune), and none is pruned in the first quarter of
    a known number of iterations (early values are mostly noise)."""
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    warmup = 0
    if settings is not None and settings.model is None:
        uncomparable = {
            "horizon": "cover different windows",
            "burn_in": "are measured after different burn-ins (a short one scores the "
            "start-up transient, higher)",
            "estimator": "are exact in some trials and Monte Carlo in others",
            # (review, session 38: a Monte Carlo SNR of few pairs reads high: an exponential's
            # area 1.9 +- 0.9 % above its exact value at 128 pairs, 0.3 +- 0.4 % at 1024)
            "batch": "are estimated on different numbers of pairs (a small batch reads high)",
        }
        searched = set(settings.space)
        if "state_size" in searched and len(_estimators_over_state_sizes(settings)) > 1:
            searched.add("estimator")  # auto: exact grid at small m (review, session 38)
        for name, why in uncomparable.items():
            if name in searched:  # (burn_in, estimator: review, session 36)
                log(
                    f"note: the space searches {name}, so the trials' training metrics, which "
                    f"the median pruner compares, {why}: no trial is pruned (give {name} one "
                    f"value with --fixed to prune)"
                )
                return optuna.pruners.NopPruner()
        if "iterations" not in settings.space:
            from learnsyn.config import TrainConfig

            iterations = settings.fixed.get("iterations", TrainConfig().iterations)
            warmup = int(iterations) // 4
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)


#: before session 22 the study's scoring stream shared the final evaluation's offset, so a run
#: trained with the study's seed was finally evaluated on the numbers its settings were chosen on
LEGACY_EVALUATION_OFFSET = 10_000


def _check_identity(study, settings: StudySettings, log=_log) -> None:
    """Store ``settings``' identity with a new study; for an existing one, search the choices
    it was created with (``keep_stored_choices``, which sets ``settings.space``) and refuse
    other objective or scoring settings."""
    mine = json.loads(json.dumps(settings.identity()))
    theirs = study.user_attrs.get("learnsyn")
    if theirs is None:
        study.set_user_attr("learnsyn", mine)
        return
    if "evaluation_seed" not in theirs:  # created when the study stream was the final one's
        settings.evaluation_seed = settings.seed + LEGACY_EVALUATION_OFFSET
        log(
            f"study {study.study_name!r} keeps scoring its trials on seed "
            f"{settings.evaluation_seed}, the one it was created with"
        )
    else:
        settings.evaluation_seed = theirs["evaluation_seed"]
    settings.trial_seeding = theirs.get("trial_seeding", "offset")
    if settings.trial_seeding == "offset":
        seeded = "trial k" if settings.model is None else "its sampler before trial k"
        log(
            f"study {study.study_name!r} keeps seeding {seeded} with --seed + k, as it was "
            "created (a new study mixes the seeds, so that adjacent --seed values share no trial)"
        )
    if "burn_in" in settings.space and theirs.get("burn_in_scoring") != "study":
        # the diff review, session 35: its earlier trials were scored after their own burn-in
        log(
            f"warning: study {study.study_name!r} searches burn_in and was created before its "
            "trials were scored after one common burn-in: its earlier trials' values (scored "
            "after their own, a short one on the start-up transient) are not comparable with "
            "new ones; start a new study (--study-name) to compare like with like"
        )
    if theirs.get("code") != mine["code"]:  # review, session 38
        made = "before code fingerprints were kept" if "code" not in theirs else "by other code"
        log(
            f"warning: study {study.study_name!r} was created {made} (learnsyn's engine, "
            "scenarios or baselines differ from this worker's): its earlier trials' values may "
            "not be what this code gives; start a new study (--study-name) to compare like "
            "with like"
        )
    settings.space, kept = keep_stored_choices(settings.space, theirs.get("space"))
    for name in kept:
        choices = ", ".join(map(str, settings.space[name].choices))
        log(f"study {study.study_name!r} keeps the {name} choices it was created with: {choices}")
    for name in _refuse_other_space(study.study_name, theirs.get("space"), settings.space):
        log(f"study {study.study_name!r} searches {name} inside the range it was created with")
    # the objective, and how every trial is scored: a worker with another seed, fixed setting,
    # evaluation batch or method would add trials that are not comparable with the others'
    for key in (*OBJECTIVE_KEYS, "seed", "fixed", "eval_batch", "method"):
        if theirs.get(key) != mine[key]:
            raise ValueError(
                f"study {study.study_name!r} was created with {key} = {theirs.get(key)!r}, not "
                f"{mine[key]!r}; run it with the same options or choose another --study-name"
            )


def _refuse_other_space(study_name: str, stored: dict[str, Any] | None, space: Space) -> list[str]:
    """A study searches the space it was created with, or a range inside it: another scale,
    kind, step or set of choices of a dimension (Optuna would record it under the same name, or
    fail inside a trial) or another set of dimensions is one line naming the dimension, before
    any trial. Returns the dimensions searched over a narrower range than at creation."""
    if stored is None:
        return []
    mine = json.loads(json.dumps({name: dim.to_json() for name, dim in space.items()}))
    narrowed = []
    for name in sorted(set(stored) | set(mine)):
        then, now = stored.get(name), mine.get(name)
        if then == now:
            continue
        if _within(now, then):
            narrowed.append(name)
            continue
        raise ValueError(
            f"study {study_name!r} searches {name} as "
            f"{json.dumps(then) if then else 'not searched'} (as it was created), not "
            f"{json.dumps(now) if now else 'not searched'}; give the --space/--fixed options "
            "it was created with (or a range inside), or start another --study-name"
        )
    return narrowed


def _within(now: dict[str, Any] | None, then: dict[str, Any] | None) -> bool:
    """A range inside the range a study was created with (same kind, scale and step)."""
    if not now or not then or now.get("kind") not in ("int", "float"):
        return False
    same = all(now.get(key) == then.get(key) for key in ("kind", "scale", "step", "only_if"))
    return same and then["low"] <= now["low"] and now["high"] <= then["high"]


def _refuse_foreign_trials(study_dir: Path, study_name: str) -> None:
    """Trial directories where a study without trials would write are another study's."""
    if list(study_dir.glob("trial_*")):
        raise ValueError(
            f"{study_dir} holds trial directories of another study named {study_name!r}; "
            "choose another --study-name or --out"
        )


def fail_orphaned_trials(study, log=_log) -> None:
    """Mark failed the running trials whose worker process is gone (same host, no process with
    the trial's pid): a trial without a heartbeat (journal files, one started under
    ``--heartbeat 0``) would stay running forever, whatever heartbeat the worker now has."""
    from optuna.trial import TrialState

    from learnsyn.study.storage import worker_state

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker_state(trial) == "gone":
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            log(
                f"trial {trial.number}: its worker (pid {trial.user_attrs.get('pid')} on this "
                "host) is gone; marked failed, a new trial replaces it"
            )


def _awaitable_trials(study) -> bool:
    """Whether a running trial will end by itself: its worker is alive on this host, or it
    beats a heartbeat (a dead worker's trial is then failed as stale). A trial started on
    another host without one (``--heartbeat 0``, journal files) is not waited for: a worker
    polled for it forever, silently (review, session 35); the summary names it."""
    from optuna.trial import TrialState

    from learnsyn.study.storage import worker_state

    return any(
        worker_state(trial) == "alive" or trial.user_attrs.get("heartbeat")
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    )


def run_study(
    settings: StudySettings,
    location: StorageLocation,
    study_name: str,
    *,
    n_trials: int,
    out: Path,
    timeout: float | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    heartbeat: int = 60,
    log=_log,
) -> dict[str, int]:
    """Join (or create) the study and run trials until it holds ``n_trials`` counted ones."""
    import optuna

    heartbeat = heartbeat if location.has_heartbeat else 0
    study_dir = out / study_name
    lock = location.slot_lock()
    try:
        lock.acquire()  # the first worker creates tables and study while the others wait
        storage = location.open(heartbeat or None)
        existed = study_name in optuna.get_all_study_names(storage)
        if not existed:
            _refuse_foreign_trials(study_dir, study_name)  # before the study is created
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            pruner=make_pruner(pruner, settings, log),
            load_if_exists=True,
        )
        _check_identity(study, settings, log)
        if existed and not study.get_trials(deepcopy=False):  # (a new one was checked above)
            _refuse_foreign_trials(study_dir, study_name)
        lock.release()
        if not lock.exact:
            log(
                f"note: no shared lock on {location.display}: workers finishing together may "
                "start a trial or two beyond --n-trials (SQLite, journal files and PostgreSQL "
                "have one)"
            )
        objective = TrialObjective(
            settings, study_dir, on_trial_start=lock.release, log=log, heartbeat=heartbeat
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            lock.acquire()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            # whatever this worker's heartbeat: a trial started with --heartbeat 0 has none,
            # so Optuna never fails it as stale (review, session 33: a study polled forever)
            fail_orphaned_trials(study, log)
            counts = trial_counts(study)
            counted = counts["complete"] + counts["pruned"] + counts["running"] + counts["waiting"]
            out_of_time = deadline is not None and time.monotonic() > deadline
            if counted >= n_trials or out_of_time:
                lock.release()
                if out_of_time or not heartbeat or not _awaitable_trials(study):
                    break
                time.sleep(1.0)  # a running trial may belong to a dead worker: poll
                continue
            # reseeded per trial: a lone worker's study is reproducible, and two workers do not
            # draw the same parameters
            study.sampler = make_sampler(sampler, settings.sampler_seed(sum(counts.values())))
            try:
                study.optimize(objective, n_trials=1)
            finally:
                lock.release()
            _log_trial(study, objective, log)
    finally:
        lock.close()
    counts = trial_counts(study)
    log(
        f"study {study_name}: {counts['complete'] + counts['pruned']} of {n_trials} trials done "
        f"({counts['complete']} complete, {counts['pruned']} pruned; {counts['fail']} failed, "
        "not counted)"
    )
    for line in describe_running(study):
        log(line)
    return counts


def _log_trial(study, objective: TrialObjective, log) -> None:
    number = objective.last_number
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is not None:
        value = f" {trial.value:.6g}" if trial.value is not None else ""
        where = trial.user_attrs.get("run_dir", "")
        log(f"trial {number} {trial.state.name.lower()}{value}{objective.last_note}: {where}")
