"""A meta-training run on disk: ``runs/<experiment>/<run>/`` with its config, TensorBoard events,
checkpoint (written atomically), and result; resumable, interruptible, never overwritten
silently.

Layout of a run directory::

    config.json        the resolved TrainConfig
    checkpoint.pt      model, optimizer, schedule, history, RNG states (atomic)
    baselines.json     tuned baselines for the TensorBoard figure (cached)
    start-synapse.json the linear synapse the cell started at (``--start-from`` only; for
                       ``tuned:MODEL`` with the tuned model's metrics)
    events.out.tfevents.*   TensorBoard scalars, figures, histograms, hparams
    result.json        final metrics (training estimate and a larger-batch evaluation) and
                       what ran the rollouts (``rollout_kernel``)
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.cells import (
    linear_state_extent,
    read_linear_start,
    saturation_scale,
    start_arrays,
    start_at_linear,
)
from learnsyn.config import option_name, stream_seed
from learnsyn.estimate.snr import MIN_PAIRS
from learnsyn.io import (
    DirectoryLock,
    atomic_write_json,
    check_output_dir,
    json_text,
    read_json,
    remove_stale_temporaries,
)
from learnsyn.memory import check_training_memory
from learnsyn.progress import progress_bar
from learnsyn.scenario import make_scenario
from learnsyn.training import (
    CHECKPOINT_NAME,
    TrainConfig,
    build_model,
    load_checkpoint,
    make_optimizer,
    meta_objective,
    resolve_device,
    save_checkpoint,
    training_rollout,
    training_step,
    validation_score,
)
from learnsyn.warm_start import linear_start_for_run, start_path, tuned_model

#: where a run started with ``--start-from`` keeps the synapse it started at
START_NAME = "start-synapse.json"


def default_run_dir(config: TrainConfig, root: str | Path = "runs") -> Path:
    name = f"{config.cell}-m{config.state_size}-N{config.synapses}-{config.metric}-s{config.seed}"
    return Path(root) / config.task / name


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").exists()


def read_run_config(run_dir: Path) -> TrainConfig:
    """The run's config.json as a TrainConfig; a corrupt or foreign file is one line naming it."""
    path = Path(run_dir) / "config.json"
    data = read_json(path)
    try:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return TrainConfig.from_dict(data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a training run's config ({error})") from None


def _check_finite(model, config: TrainConfig) -> None:
    if not parameters_finite(model):
        raise ValueError(f"the initial parameters of cell {config.cell!r} are not finite")


def prepare_run_dir(
    run_dir: Path, config: TrainConfig, resume: bool, overwrite: bool, log=print
) -> bool:
    """Create or check the run directory; returns True when resuming from a checkpoint."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    check_output_dir(run_dir, "run directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        if overwrite:
            try:  # only a directory whose config.json is a whole run config is deleted
                saved = read_json(run_dir / "config.json")
                is_run = (  # a run's config, also one written before later fields existed
                    isinstance(saved, dict)
                    and RUN_CONFIG_CORE <= set(saved) <= {f.name for f in fields(TrainConfig)}
                    and TrainConfig.from_dict(saved) is not None
                )
            except (OSError, ValueError, TypeError):
                is_run = False
            if not is_run:
                raise ValueError(f"{run_dir} is not a run directory; refusing to delete it")
            shutil.rmtree(run_dir.resolve())  # the directory, also where --out is a link to it
        elif resume:
            if not is_run_dir(run_dir):
                raise ValueError(f"{run_dir} is not a run directory (no config.json)")
            saved = read_run_config(run_dir)
            recorded = _recorded_derived(run_dir)
            differing = _differences(saved, config, recorded, run_dir)
            if differing:
                options = {f.name: option_name(f) for f in fields(TrainConfig)}
                used = " ".join(f"{options[k]} {recorded[k]}" for k in differing if k in recorded)
                raise ValueError(
                    f"--resume with a config that differs from the run's in {differing}; "
                    "resume with the same options (or start a new run)"
                    + (f"; the run was trained with {used}" if used else "")
                )
            # the same start given by another path (or by the run's record of it): the run keeps
            # its own, so its label, and the group its seeds pool in, stay the same
            config.start_from = saved.start_from
            # a run made before a setting existed resumes with today's value of it: said, and
            # recorded (review, session 31: filled in silently, and config.json kept lacking it)
            on_disk = read_json(run_dir / "config.json")
            absent = [key for key in asdict(config) if key not in on_disk]
            if absent:
                values = ", ".join(f"{k}={getattr(config, k)!r}" for k in absent)
                log(
                    f"note: {run_dir / 'config.json'} predates the settings {', '.join(absent)}; "
                    f"the run resumes with {values}, now recorded there"
                )
            if absent or asdict(saved) != asdict(config):  # e.g. another --eval-batch
                atomic_write_json(run_dir / "config.json", asdict(config))
            return (run_dir / CHECKPOINT_NAME).exists()
        elif not is_run_dir(run_dir):
            raise ValueError(
                f"{run_dir} already exists and is not a run directory (no config.json); "
                "choose another --out"
            )
        else:
            raise ValueError(
                f"run directory {run_dir} already exists; pass --resume to continue it or "
                "--overwrite to start over"
            )
    elif resume:
        state = "is empty" if run_dir.exists() else "does not exist"
        raise ValueError(f"nothing to resume: {run_dir} {state}")
    run_dir.resolve().mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", asdict(config))
    return False


#: keys every run's config.json has held since the first version (a folder whose config.json
#: lacks one is not a run directory, and --overwrite does not delete it)
RUN_CONFIG_CORE = {
    "task", "synapses", "state_size", "cell", "iterations", "batch", "horizon", "seed"
}  # fmt: skip

RESUME_FREE = {"device", "checkpoint_every", "log_every", "figure_every", "eval_batch"}


#: settings whose unset value is derived from others (``TrainConfig.derived``)
DERIVED = ("burn_in", "gradient_burn_in", "timescale", "validation_batch")


def _differences(
    saved: TrainConfig,
    given: TrainConfig,
    recorded: dict[str, Any] | None = None,
    run_dir: Path | None = None,
) -> list[str]:
    """Settings that differ, each as the run uses it. The given ones first; only where they all
    agree, a derived one (``burn_in`` None) by the value it resolves to, or, where the run's
    checkpoint ``recorded`` it, by the value the run was trained with (a default changed since
    then is a difference). A start file is the same where its path is, or (``run_dir``'s
    record of the start) the synapse in it is."""
    a, b = asdict(saved), asdict(given)
    given_keys = [k for k in a if k not in RESUME_FREE and k not in DERIVED]
    differing = sorted(k for k in given_keys if a[k] != b.get(k))
    if "start_from" in differing and _same_start(saved, given, run_dir):
        differing.remove("start_from")
    if differing:
        return differing
    a = {**saved.derived(), **(recorded or {})}
    b = given.derived()
    return sorted(k for k in DERIVED if a.get(k) != b.get(k))


def _same_start(saved: TrainConfig, given: TrainConfig, run_dir: Path | None) -> bool:
    """The same start file: by its absolute path, or by the synapse in it (the run's record,
    start-synapse.json, against the file given now: a moved or copied project)."""
    if tuned_model(saved.start_from) or tuned_model(given.start_from):
        return False
    if None in (saved.start_from, given.start_from):
        return False
    if start_path(saved.start_from) == start_path(given.start_from):
        return True
    record = None if run_dir is None else run_dir / START_NAME
    if record is None or not record.exists():
        return False
    try:
        kept = read_json(record).get("params")
        now = read_linear_start(given.start_from, given.cell, given.state_size)
    except (OSError, ValueError, AttributeError):
        return False
    return json_text(kept, sort_keys=True) == json_text(now, sort_keys=True)


def _recorded_derived(run_dir: Path) -> dict[str, Any]:
    """The derived settings the run's checkpoint recorded as it used them (none before session
    29, or without a checkpoint)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return {}
    try:
        return dict(load_checkpoint(path).get("derived") or {})
    except ValueError:  # a corrupt checkpoint is resume's to report
        return {}


def settings_changed(run_dir: Path, config: TrainConfig) -> list[str]:
    """The settings (other than those a resume may change) in which the run in ``run_dir``
    differs from ``config`` (validated); none where there is no run."""
    if not is_run_dir(run_dir):
        return []
    saved = read_run_config(run_dir)
    return _differences(saved, replace(config).validate(), _recorded_derived(run_dir), run_dir)


def run_cautions(run_dir: str | Path) -> list[str]:
    """What a number measured on this run must say with it, from its result.json: a run that
    did not finish (interrupted, diverged) and a final evaluation that the stationarity check
    flagged (a burn-in too short: the transient was scored); a run without result.json was
    interrupted before its final evaluation. Empty for a sound run."""
    path = Path(run_dir) / "result.json"
    if not path.exists():
        return [
            "the run has no result.json: it was interrupted before its final evaluation "
            "(finish it with --resume)"
        ]
    try:
        result = read_json(path)
    except ValueError as error:
        return [f"its result.json is unreadable ({error}): its final figures are unknown"]
    if not isinstance(result, dict):
        return ["its result.json holds no result object: its final figures are unknown"]
    cautions = []
    status = result_status(result)
    if status != "complete":
        cautions.append(
            f"the run is {status} ({result.get('iterations_done')} iterations done): its numbers "
            "are those of an unfinished run"
        )
    evaluation = result.get("evaluation") or {}
    check = evaluation.get("stationarity") or {}
    if check.get("stationary") is False:
        cautions.append(
            f"not stationary: the final evaluation's {check.get('metric')} moves from "
            f"{evaluation.get('metrics', {}).get(check.get('metric'))} to "
            f"{check.get('value')} with a {check.get('burn_in')}-step burn-in: train with a longer "
            "--burn-in before trusting a ratio"
        )
    return cautions


def load_run(
    run_dir: str | Path, which: str = "best"
) -> tuple[TrainConfig, torch.nn.Module, dict[str, Any]]:
    """Config, trained model and checkpoint dict of a run directory. ``which="best"``: the
    parameters that scored best on the validation batch (the last ones if none was scored);
    ``"last"``: the parameters after the last iteration."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not is_run_dir(run_dir):
        raise ValueError(f"{run_dir} is not a run directory (no config.json)")
    config = read_run_config(run_dir)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_NAME)
    model = build_model(config)
    state = checkpoint["model"]
    if which == "best" and checkpoint.get("best") is not None:
        state = checkpoint["best"]["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as error:
        raise ValueError(f"checkpoint in {run_dir} does not fit its config: {error}") from None
    return config, model, checkpoint


#: updates in a row that give a non-finite objective, gradient or parameters before a run is
#: stopped as diverged (the last finite parameters are checkpointed)
DIVERGENCE_LIMIT = 10


class _SignalInterrupt(KeyboardInterrupt):
    """A KeyboardInterrupt that keeps the signal's number, ``signum`` (a command exits with
    ``128 + signum``: 130 for SIGINT, 143 for SIGTERM, which read 130 too before session 37)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__()
        self.signum = int(signum)


class RunInterrupted(_SignalInterrupt):
    """Ctrl-C (or SIGTERM) stopped ``train``, which has said where its checkpoint is."""


class _StopNow(_SignalInterrupt):
    """A second Ctrl-C, or SIGTERM where no loop can stop: raised inside the work, before
    ``train`` has said anything (so not a ``RunInterrupted``; review of session 37's diff: the
    command then printed nothing about the run's checkpoint)."""


class TrainingDiverged(ValueError):
    """Meta-training stopped: ``DIVERGENCE_LIMIT`` updates in a row were not finite."""


def parameters_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """The parameters and the optimizer's state (Adam's moments and step counts) before an
    update, so that an update undone for divergence is undone whole: restoring the parameters
    alone left the moments of the gradient that diverged, which scaled every later step."""
    state = {
        param: {key: value.clone() if torch.is_tensor(value) else value
                for key, value in entry.items()}
        for param, entry in optimizer.state.items()
    }  # fmt: skip
    return [p.detach().clone() for p in model.parameters()], state


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, snapshot) -> None:
    parameters, state = snapshot
    with torch.no_grad():
        for param, kept in zip(model.parameters(), parameters):
            param.copy_(kept)
    optimizer.state.clear()
    optimizer.state.update(state)


def _trailing_skipped(history: list[dict[str, Any]]) -> int:
    count = 0
    for record in reversed(history):
        if not record.get("skipped"):
            break
        count += 1
    return count


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag so the loop can checkpoint before exiting."""

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM), raise_at_once: bool = False):
        self.requested = False
        self.signum = int(signal.SIGINT)
        self.signals = signals
        self.raise_at_once = raise_at_once  # no loop to stop: the signal interrupts the work
        self._previous = {}

    def __enter__(self):
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = int(signum)
        if self.requested or self.raise_at_once:  # a second Ctrl-C stops at once
            raise _StopNow(signum)
        self.requested = True
        # said at once: a step that tunes the first figure's baselines takes minutes in bounded,
        # and the run said nothing until then (review, session 35)
        print(
            "interrupt received: the run checkpoints after the current step (which may tune "
            "baselines for a figure); interrupt again to stop at once, without a checkpoint",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def result_status(result: dict[str, Any]) -> str:
    """A result.json's status: its ``status`` (complete, stopped, diverged); one written before
    that field existed has only ``complete`` (review, session 38: a resume read such a finished
    run as unfinished, deleted its result and evaluated it again with today's code)."""
    if "status" in result:
        return result["status"]
    # (one with neither field is not ours to call finished: the diff review, session 38)
    return "complete" if result.get("complete", False) else "stopped"


def _drop_unfinished_result(run_dir: Path, log) -> None:
    """A resumed run's result.json from an earlier session that did not complete (diverged,
    stopped) is removed when training goes on: an interrupted resume left it, and its status,
    iterations and selected model disagreed with the checkpoint (review, session 36)."""
    path = run_dir / "result.json"
    if not path.exists():
        return
    try:
        status = result_status(read_json(path))
    except (OSError, ValueError, AttributeError):
        status = None
    if status != "complete":
        path.unlink()
        log(f"removed {path.name} of an earlier session that did not finish ({status})")


def _say_start_bend(model, scenario, log, start: dict[str, list[float]]) -> None:
    """A saturating cell holds a linear start through ``s tanh(y / s)``: where the scenario
    fixes the state's scale (its range [-B, B]; without a range, ``noisy``'s noise), it bends
    the states by up to ``1 - s tanh(R / s) / R`` at the reach R of the states (B, or the
    start's own ``|mean| + std`` without a range): 2 % at the default s = 4, B = 1, so the run
    starts near the synapse, not at it (review, session 35: 181.9 where the synapse reads
    185.5); at ``bound=0`` a tuned synapse's states reach thousands and the start forgot
    after a step, unsaid (review, session 36). Said, with how to start at it."""
    if not scenario.constrains_state or not getattr(model, "saturating", False):
        return
    reach = scenario.state_range()
    if reach is None:  # no range: the start's own states
        reach = linear_state_extent(*start_arrays(start, model.state_size), scenario)
    s = saturation_scale(model)
    if not math.isfinite(reach):
        log(
            f"note: the start has a growing mode and no range holds it: the cell's saturation "
            f"s tanh(y / s), s = {s:.3g}, holds its states instead; the run starts far from the "
            "synapse"
        )
        return
    bend = 1.0 - s * math.tanh(reach / s) / reach if reach > 0 else 0.0
    if bend > 1e-3:
        room = f"{10 ** math.ceil(math.log10(max(reach, 1.0) * 100)):g}"
        log(
            f"note: the cell's saturation s tanh(y / s), s = {s:.3g}, bends the start's states "
            f"by up to {100 * bend:.2g} % where they reach {reach:.3g}: the run starts "
            f"{'far from' if bend > 0.1 else 'near'} the synapse, not at it (--cell-param "
            f"output_scale={room} starts at it)"
        )


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    objective_fn=meta_objective,
    stop_after: int | None = None,
    final_evaluation: bool = True,
    log=print,
    on_iteration=None,
    prepare_model=None,
    observe=None,
    figure_baselines: list[dict[str, Any]] | None = None,
    tune_start=None,
) -> dict[str, Any]:
    """Run (or resume) meta-training; returns the result dict also written to result.json.

    ``stop_after`` ends the run early after that many iterations of this call (used by tests
    to simulate an interruption); ``on_iteration(iteration, outcome)`` is called after each
    step (Optuna reports and prunes through it). ``prepare_model(model)`` may change a new
    run's freshly built model in place before anything else sees it (the degeneracy
    experiment's near-isometric control); ``observe(updates_done, model)`` is called before the
    first update and after every update (measurements along training; it must not change the
    model). ``figure_baselines``: rows already tuned for this run's setting (as
    ``tuning.tune_baselines_for_run`` returns them) for the TensorBoard SNR figure, instead of
    tuning them in the run; ``tune_start(names)``: how a ``tuned:MODEL`` start's family is
    tuned (``warm_start.linear_start_for_run``).

    Divergence: an update that makes a parameter non-finite is undone (the parameters before it
    and the optimizer's state are restored) and counted like a skipped update;
    ``DIVERGENCE_LIMIT`` such updates in a row stop the run with ``TrainingDiverged`` after
    checkpointing the last finite parameters and writing result.json with ``"status":
    "diverged"``. Model selection starts from the initial parameters (scored at iteration 0),
    so a run that only got worse keeps its starting point.
    """
    from learnsyn.tensorboard_log import RunLogger

    config.validate()
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    model = build_model(config).to(device)  # before the run directory is touched
    _check_finite(model, config)
    # again with the rollout that will run (the config alone cannot tell every fallback)
    rollout = training_rollout(
        model, make_scenario(config.task, config.task_params), config, device
    )
    check_training_memory(config, rollout)
    check_output_dir(run_dir, "run directory", locked=True)
    with DirectoryLock(run_dir):  # one process per run directory
        finished = _finished_result(run_dir, config, final_evaluation) if resume else None
        resuming = prepare_run_dir(run_dir, config, resume, overwrite, log)
        if resume:  # a run of ours, locked by us: a temporary file there is stale
            for path in remove_stale_temporaries(run_dir):
                log(f"removed {path.name}, left by a process killed while writing it")
        if finished is not None:
            log(
                f"{run_dir} is finished (result.json); nothing to resume (another "
                "--eval-batch runs its final evaluation again; `learnsyn compare --run` scores "
                "it against baselines)"
            )
            return finished
        if resuming:
            _drop_unfinished_result(run_dir, log)
        unused = config.grid_unused()
        if unused:  # (review, session 35: result.json called such a run's figures noisy)
            log(
                f"note: {', '.join(unused)} has no effect with the exact grid estimator (no "
                "Monte Carlo batch); config.json keeps it"
            )
        scenario = make_scenario(config.task, config.task_params)
        if config.start_from is not None and not resuming:
            start, record = linear_start_for_run(config, scenario, run_dir, log, tune_start)
            free = not scenario.constrains_state
            scale = start_at_linear(model, start, free_scale=free, scenario=scenario)
            _say_start_bend(model, scenario, log, start)
            if scale != 1.0:
                record = {**record, "state_scale": scale}
                log(
                    f"start: the cell holds the synapse's state scaled by {scale:.3g} (the "
                    "same synapse, inside its tanh's linear range)"
                )
            atomic_write_json(run_dir / START_NAME, record)
        if prepare_model is not None and not resuming:
            prepare_model(model)
        _check_finite(model, config)  # again after a start or prepare_model changed them
        optimizer, scheduler = make_optimizer(model, config)
        history: list[dict[str, Any]] = []
        start_iteration, skipped_total, restored_total = 0, 0, 0
        best: dict[str, Any] | None = None
        if resuming:
            checkpoint = load_checkpoint(run_dir / CHECKPOINT_NAME)
            try:
                model.load_state_dict(checkpoint["model"])
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
            except (RuntimeError, KeyError, ValueError) as error:
                raise ValueError(
                    f"the checkpoint in {run_dir} does not fit its config "
                    f"({str(error).splitlines()[0]}); start over with --overwrite"
                ) from None
            history = checkpoint["history"]
            start_iteration = checkpoint["iteration"]
            skipped_total = checkpoint.get("skipped", 0)
            restored_total = checkpoint.get("restored", 0)
            best = checkpoint.get("best")
            kernels = list(checkpoint.get("rollout_kernels") or [])
            torch.set_rng_state(checkpoint["rng"]["torch"])
            np.random.set_state(checkpoint["rng"]["numpy"])  # noqa: NPY002
            log(f"resuming {run_dir} at iteration {start_iteration}")
        else:  # the starting point is a candidate of model selection too
            best = _candidate(None, validation_score(model, scenario, config, device), 0, model)
            kernels = []
        if rollout not in kernels:
            # a resume on another machine or device can change the kernel, whose figures differ
            # at float level: result.json names every one (review, session 35)
            if kernels:
                log(
                    f"note: this session's rollouts run on {rollout}; earlier iterations ran on "
                    f"{', '.join(kernels)} (their figures differ at float level)"
                )
            kernels.append(rollout)
        bad_streak = _trailing_skipped(history)
        logger = RunLogger(
            run_dir,
            config,
            scenario,
            device,
            log=log,
            purge_step=start_iteration,
            baselines=figure_baselines,
        )
        tag = f"validation/{config.metric}"
        if not resuming:  # the initial parameters are a candidate: their score at step 0
            logger.writer.add_scalar(tag, best["score"], 0)
        elif history and "validation" in history[-1]:  # at the resumed step, which the purge
            logger.writer.add_scalar(tag, history[-1]["validation"], start_iteration)  # dropped
        ckpt_path = run_dir / CHECKPOINT_NAME

        def checkpoint(iteration: int) -> None:
            save_checkpoint(
                ckpt_path,
                model,
                optimizer,
                scheduler,
                config,
                iteration,
                history,
                {
                    "skipped": skipped_total,
                    "restored": restored_total,
                    "best": best,
                    "derived": config.derived(),
                    "rollout_kernels": kernels,
                },
            )

        iteration = start_iteration
        interrupted = diverged = False
        if observe is not None:
            observe(iteration, model)
        with _Interrupt() as interrupt:
            if config.figure_every > 0 and start_iteration < config.iterations:
                # the figure's baselines are tuned before the bar starts (minutes in bounded),
                # so its rate and ETA are the training's (review, session 35: 8 min left of
                # 13 s); a Ctrl-C meanwhile checkpoints after the first iteration, as before
                logger.baselines()
            bar = _progress_bar(config.iterations, start_iteration, progress)
            while iteration < config.iterations:
                before = _snapshot(model, optimizer)
                lr = scheduler.get_last_lr()[0]  # the rate this iteration's step uses
                outcome = training_step(
                    model, scenario, config, optimizer, scheduler, iteration, device, objective_fn
                )
                finite = parameters_finite(model)
                if outcome.skipped or not finite:  # (an update that failed half-way, too)
                    _restore(model, optimizer, before)
                if not finite:
                    outcome.skipped = True
                    restored_total += 1
                    log(
                        f"iteration {iteration}: the update made parameters non-finite; "
                        "the parameters before it are restored"
                    )
                elif outcome.skipped:
                    log(f"iteration {iteration}: non-finite objective, gradient or step; skipped")
                if outcome.skipped:
                    skipped_total += 1
                bad_streak = bad_streak + 1 if outcome.skipped else 0
                record = {
                    "iteration": iteration,
                    "objective": outcome.objective,
                    "grad_norm": outcome.grad_norm,
                    "skipped": outcome.skipped,
                    **outcome.result.metrics,
                    "snr_stderr": float(np.mean(outcome.result.snr_stderr)),
                    "synapse_steps_per_second": outcome.result.synapse_steps / outcome.seconds,
                    "lr": lr,
                }
                if (
                    iteration + 1
                ) % config.validate_every == 0 or iteration + 1 == config.iterations:
                    score = validation_score(model, scenario, config, device)
                    record["validation"] = score
                    # at the updates done, as model selection counts them (review, session 35:
                    # a step behind result.json's selected.iteration)
                    logger.writer.add_scalar(tag, score, iteration + 1)
                    best = _candidate(best, score, iteration + 1, model)
                history.append(record)
                logger.log_iteration(iteration, record, outcome.result, model)
                iteration += 1
                if observe is not None:
                    observe(iteration, model)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(  # drawn with the bar's own redraws, not each time
                        objective=f"{outcome.objective:.4g}",
                        area=f"{record['area']:.4g}",
                        refresh=False,
                    )
                if on_iteration is not None:
                    try:
                        on_iteration(iteration - 1, record)
                    except (
                        BaseException
                    ):  # e.g. optuna.TrialPruned: keep what was done, close files
                        checkpoint(iteration)
                        if bar is not None:
                            bar.close()
                        logger.close()
                        raise
                if iteration % config.checkpoint_every == 0:
                    checkpoint(iteration)
                if bad_streak >= DIVERGENCE_LIMIT:
                    diverged = True
                    break
                if interrupt.requested or (
                    stop_after is not None and iteration - start_iteration >= stop_after
                ):
                    interrupted = interrupt.requested
                    break
        if bar is not None:
            bar.close()
        checkpoint(iteration)
        if interrupted:
            log(
                f"interrupted: checkpoint saved at iteration {iteration} in {run_dir}; "
                "continue with --resume"
            )
            logger.close()
            raise RunInterrupted(interrupt.signum)
        result = _result(config, history, iteration, skipped_total, run_dir)
        result["restored_updates"] = restored_total
        if objective_fn is meta_objective:  # what ran the rollouts (a slow run says why)
            result["rollout_kernel"] = training_rollout(model, scenario, config, device)
            result["rollout_kernels"] = kernels  # every session's, in order
        if best is not None:
            grid = config.resolved_estimator() == "grid"
            result["selected"] = {
                "iteration": best["iteration"],
                "validation": best["score"],
                "validation_batch_pairs": None if grid else config.resolved_validation_batch(),
                "rule": f"best {config.metric} "
                + ("exact on the level grid" if grid else "on the fixed validation batch")
                + f", iteration 0 (the initial parameters), every {config.validate_every} "
                "iterations and the last one",
            }
        if diverged:
            result["status"] = "diverged"
            logger.close()
            atomic_write_json(run_dir / "result.json", result)
            raise TrainingDiverged(
                f"training diverged: {DIVERGENCE_LIMIT} updates in a row up to iteration "
                f"{iteration - 1} gave a non-finite objective, gradient or parameters "
                f"(learning rate {config.lr:g}); the last finite parameters are checkpointed "
                f"in {run_dir}; try a smaller --lr"
            )
        if best is not None and best["iteration"] == 0 and iteration > 0:
            log(
                "note: no validated iteration scored better than the initial parameters; "
                "they are the selected ones"
            )
        if iteration >= config.iterations and final_evaluation:
            if best is not None:
                model.load_state_dict(best["model"])
            try:
                # SIGTERM too (it killed the process without a word, the lock left behind:
                # review, session 37); Ctrl-C keeps Python's own KeyboardInterrupt
                with _Interrupt(signals=(signal.SIGTERM,), raise_at_once=True):
                    result["evaluation"] = _final_evaluation(model, scenario, config, device)
            except KeyboardInterrupt as error:
                logger.close()
                log(
                    "interrupted during the final evaluation: training is complete and "
                    f"checkpointed in {run_dir}; --resume runs the final evaluation"
                )
                raise RunInterrupted(getattr(error, "signum", signal.SIGINT)) from None
            logger.log_hparams(result)
        logger.close()
        atomic_write_json(run_dir / "result.json", result)
        return result


def _finished_result(run_dir: Path, config: TrainConfig, final_evaluation: bool):
    """The result.json of a run in ``run_dir`` that finished with ``config``'s final evaluation
    batch (so a resume has nothing to add), else None; ``prepare_run_dir`` refuses a resume
    with other settings, and another ``eval_batch`` (free on resume) evaluates again."""
    try:
        result, saved = read_json(run_dir / "result.json"), read_run_config(run_dir)
    except (OSError, ValueError):
        return None  # no result yet, or prepare_run_dir names what is wrong
    done = isinstance(result, dict) and result_status(result) == "complete"
    evaluated = "evaluation" in result if done and final_evaluation else done
    if not evaluated:
        return None
    if config.resolved_estimator() == "grid":  # exact: eval_batch has no use (session 36)
        return result
    if saved.eval_batch != config.eval_batch:
        return None
    evaluation = result.get("evaluation") or {}
    # (a result.json from before session 26 has batch_pairs, then the batch asked for)
    asked = evaluation.get("eval_batch", evaluation.get("batch_pairs"))
    if asked not in (None, config.eval_batch):
        return None  # config.json took a new --eval-batch whose evaluation did not finish
    return result


def _candidate(best, score: float, iteration: int, model) -> dict[str, Any]:
    """``best`` or, when ``score`` beats it, the model's current parameters (non-finite scores
    are -inf, so a finite candidate always beats them)."""
    if best is not None and not score > best["score"]:
        return best
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"score": score, "iteration": iteration, "model": state}


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    return progress_bar(total=total, initial=initial, description="meta-training")


def _result(config, history, iteration, skipped, run_dir) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {
        "run_dir": str(run_dir),
        "iterations_done": iteration,
        "complete": iteration >= config.iterations,
        "status": "complete" if iteration >= config.iterations else "stopped",
        "skipped_updates": skipped,
        "training_estimate": {
            k: last.get(k) for k in ("area", "lifetime", "initial_snr", "log_area", "objective")
        },
        "training_estimate_measured_on": (
            "the parameters before the last update, exact on the level grid (the training "
            "objective)"
            if config.resolved_estimator() == "grid"
            else f"the parameters before the last update, on its training batch ({config.batch} "
            "pairs; "
            "noisy, no error); the final evaluation is the figure to quote"
        ),
        "synapse_steps_per_second": float(
            np.median([h["synapse_steps_per_second"] for h in history])
        )
        if history
        else None,
        "convention": config.convention,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def evaluate_trained(
    model: torch.nn.Module,
    config: TrainConfig,
    *,
    batch: int,
    seed: int,
    device,
    horizon: int | None = None,
    scenario=None,
    method: str = "monte-carlo",
):
    """The one evaluation of a trained synapse: Monte Carlo (or ``method="exact"``, on the
    bounded scenario's level grid) in the run's scenario, N, convention and threshold, over
    ``horizon`` ages (the run's by default) after the run's burn-in (its default at that horizon
    when the run left it unset)."""
    from learnsyn.evaluate import evaluate

    scenario = scenario or make_scenario(config.task, config.task_params)
    with torch.no_grad():
        return evaluate(
            model.to(device), scenario, method=method, batch=batch, seed=seed, device=device,
            **config.eval_spec(horizon).keywords(),
        )  # fmt: skip


def _final_evaluation(model, scenario, config: TrainConfig, device) -> dict[str, Any]:
    """Exact on the level grid where the run trained on it (no Monte Carlo noise), else Monte
    Carlo on ``eval_batch`` pairs of a seed of its own."""
    exact = config.resolved_estimator() == "grid"
    result = evaluate_trained(
        model,
        config,
        batch=config.eval_batch,
        seed=stream_seed(config.seed, "final-evaluation"),
        device=device,
        scenario=scenario,
        method="exact" if exact else "monte-carlo",
    )
    measured_on = (
        "the selected parameters, exactly on the scenario's level grid, the run's horizon and "
        "burn-in"
        if exact
        else f"the selected parameters by Monte Carlo, {result.monte_carlo['batch_pairs']} "
        "pairs, a seed of its "
        "own, the run's horizon and burn-in; +- one standard error"
    )
    return {
        "metrics": result.metrics,
        "metrics_stderr": result.metrics_stderr,
        "batch_pairs": None if exact else result.monte_carlo["batch_pairs"],  # (simulated)
        "eval_batch": None if exact else config.eval_batch,  # (asked for: a resume compares it)
        "method": "exact" if exact else "monte-carlo",
        "measured_on": measured_on,
        "stationarity": stationarity_check(model, scenario, config, device, result, exact),
    }


#: the stationarity check's burn-in, in multiples of the run's
STATIONARITY_BURN_IN_FACTOR = 10


def stationarity_check(model, scenario, config: TrainConfig, device, result, exact: bool) -> dict:
    """The metric again after ``STATIONARITY_BURN_IN_FACTOR`` x the run's burn-in (a quarter of
    the pairs, another seed; exact where the run is): training can lengthen time scales past
    the burn-in and score the transient from the initial state instead of the stationary
    synapse (seen: a GRU at horizon 100 scored 241 after its 250-step burn-in and 162 after
    20,000 steps). ``stationary``: the two agree within 3 combined standard errors or 1%. The
    long burn-in is at least that factor x the horizon, so that a run with a burn-in of 0 (or
    shorter than its window) is checked too."""
    from dataclasses import replace

    burn_in = STATIONARITY_BURN_IN_FACTOR * max(config.resolved_burn_in(), config.horizon)
    # at least the pairs an estimate needs (review, session 33: 2 for --eval-batch 4-11, which
    # validation allows, failed every such run after its training, and every resume)
    batch = max(config.eval_batch // 4, MIN_PAIRS)
    long = evaluate_trained(
        model,
        replace(config, burn_in=burn_in),
        batch=batch,
        seed=stream_seed(config.seed, "stationarity"),
        device=device,
        scenario=scenario,
        method="exact" if exact else "monte-carlo",
    )
    metric = config.metric
    value, again = result.metrics[metric], long.metrics[metric]
    errors = [e.get(metric, 0.0) for e in (result.metrics_stderr, long.metrics_stderr) if e]
    allowed = max(3.0 * float(np.sqrt(sum(e * e for e in errors))), 0.01 * abs(value))
    return {
        "burn_in": burn_in,
        "batch_pairs": None if exact else long.monte_carlo["batch_pairs"],
        "metric": metric,
        "value": again,
        "stderr": (long.metrics_stderr or {}).get(metric),
        # (equal infinities, the exact convention's perfect memory, are the same figure)
        "stationary": bool(again == value or abs(again - value) <= allowed),
    }
