"""The scoreboard: every scenario x state budget m x N, every baseline tuned for it, the bound,
and the learned runs it is given, each figure with its error (science.md section 7).

A **cell** is one (scenario, m, N) with the metric, threshold, convention and horizon (by
default 0.6 N ages, so that the area-optimal curves fit: the tight bound's flat curve lasts
N / (4 theta^2) ages). In each cell:

- every default baseline that applies there and fits the budget (``compare.default_baselines``,
  ``optimal-linear`` included, and ``linear-range``, the linear family with unstable modes,
  where the scenario clips the state) is tuned exactly as ``compare`` tunes a run's baselines
  (``tuning.tune_baselines_for_run``, cached in the cell's ``baselines.json``); Monte Carlo
  winners are evaluated again on fresh random numbers, the cell's evaluation seed, shared by
  every Monte Carlo evaluation of the cell (common random numbers); a cached cell that lacks a
  default baseline added since gets that one tuned and appended, the others are kept;
- the **bound** on the area above theta, N / (4 theta), where it is proven for every synapse
  (balanced independent +-1 events, so the past events are orthonormal: ``ideal``, ``bounded``,
  ``noisy``);
- each learned run (``--runs``) is evaluated exactly where its grid fits (bounded, at most
  ``AUTO_MAX_STATES`` grid states) and otherwise by Monte Carlo on the same seed and batch as the
  baselines; runs of one cell and one cell type are grouped: mean over training seeds, its
  standard error, the paired ratio of each seed to the best baseline (``compare.row_ratio``)
  and the mean ratio, whose error adds the spread over seeds and the best baseline's own
  relative error (common to every seed). The verdict needs 3 seeds and says "above", "below"
  or "matches" at 95 % (the interval ``ratio +- k x error`` with k from Student's t for the
  seeds and pair groups behind the error, ``estimate.ratio.verdict_cutoff``: 4.3 where the spread
  of 3 seeds dominates, 2.13 for a jackknife over 16 groups alone);
- each learned run's **linearized ablation**: the same trained cell held to its linearization
  (``linearization.linearize_in``: around the fixed point of its mean map where the scenario
  leaves the state free, fitted on its stationary states where it constrains it), evaluated
  with the learned row's own method, seed and batch, so learned / linearized is paired (exact on
  both sides on the bounded grid: no error). Per group, "learned / own linearization": the mean
  of the seeds' ratios, its error combined as above (spread over seeds, Monte Carlo error common
  to the seeds), and a verdict at 95 % as above (3 seeds needed): "nonlinearity adds X",
  "within the 95 % interval of its linearization" or "nonlinearity costs X". In a scenario
  whose events carry flags (importance) the linearization ignores the flag
  (``flags_ignored``): a flag can only carry a memory through an event x flag interaction,
  which is nonlinear. Where no linearization can be built or evaluated the row's ``ablation``
  is null, with ``ablation_reason``;
- the **strongest synapse found** (``strongest`` in the cell, ``strongest_*`` in each group): the
  best baseline or, where higher, the best of the cell's learned runs' linearizations, each an
  affine synapse of the cell's size that a tuner may miss (bounded m = 4: a GRU's linearization
  reaches 185.5 exactly, ``linear-range`` 177.1). The linearization is chosen on a value
  independent of the evaluation pairs (exact where the grid fits, else Monte Carlo on the cell's
  ``selection`` seed stream: ``linearization_selection``) and compared on those pairs like a
  baseline, with the same error rule and a verdict "above / below / matches the strongest
  found". A run that holds ``refined-linear.json`` (``python -m learnsyn.tools.refine_linear``:
  its linearization refined along its modes) adds that synapse as a candidate too, chosen on the
  tool's own value (exact, or fresh random numbers). This is the comparison the mission's
  claim needs: a learned cell that beats the tuners but not a linear synapse of its size that
  exists is not a nonlinear win.

Cells are cached under ``OUT/cells/<key>/cell.json`` (written atomically), learned evaluations
and their ablations under ``OUT/learned/`` (a row cached before ablations or selection values
existed is completed without evaluating the learned run again), so an interrupted scoreboard
resumes where it stopped. Outputs:
``scoreboard.json``, ``scoreboard.md`` (the README's tables) and ``scoreboard.png``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.compare import (
    best_baseline,
    default_baselines,
    reevaluated,
    row_ratio,
    selection_value,
)
from learnsyn.config import TrainConfig, resolve_device, stream_seed
from learnsyn.estimate.grid import AUTO_MAX_STATES
from learnsyn.estimate.montecarlo import PairBatch
from learnsyn.estimate.ratio import ratio_rounding, verdict_cutoff
from learnsyn.estimate.snr import (
    BOUND_SCENARIOS,
    MIN_PAIRS,
    EvalSpec,
    check_pairs,
    jackknife_stderr,
    rounding_error,
)
from learnsyn.evaluate import exact_method_available
from learnsyn.io import (
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    output_owner,
    read_json,
    source_fingerprint,
)
from learnsyn.runs import evaluate_trained
from learnsyn.scenario import make_scenario
from learnsyn.tuning import simulation_files

TASKS = ("ideal", "bounded", "noisy", "sparse", "correlated", "importance")
STATE_SIZES = (1, 2, 4)
SYNAPSES = (1000, 10000)
#: scenarios where sum_tau SNR(tau)^2 <= N holds for every synapse (orthonormal past events)
BOUND_TASKS = BOUND_SCENARIOS
EVAL_BATCH = 8192
SEEDS_FOR_A_VERDICT = 3


@dataclass(frozen=True)
class Cell:
    task: str
    state_size: int
    synapses: int
    horizon: int
    metric: str = "area"
    threshold: float = 1.0
    convention: str = "large-n"

    @property
    def key(self) -> str:
        # 6 digits where they say the threshold exactly (the keys of existing caches), else all
        # of them: 1.0000004 shared 1's cache (review, session 33)
        theta = f"{self.threshold:g}"
        theta = theta if float(theta) == self.threshold else repr(self.threshold)
        return (
            f"{self.task}-m{self.state_size}-N{self.synapses}-T{self.horizon}-{self.metric}"
            f"-theta{theta}-{self.convention}"
        )

    def config(self, eval_batch: int = MIN_PAIRS) -> TrainConfig:
        """The cell as a run's settings (default scenario parameters, seed 0): the baselines
        are tuned for it exactly as for a training run of this cell. Nothing is trained, so
        the training batches are the least there are; the memory check then weighs the
        evaluations of ``eval_batch`` pairs."""
        return TrainConfig(
            task=self.task,
            synapses=self.synapses,
            state_size=self.state_size,
            horizon=self.horizon,
            metric=self.metric,
            threshold=self.threshold,
            convention=self.convention,
            batch=MIN_PAIRS,
            validation_batch=MIN_PAIRS,
            eval_batch=eval_batch,
        ).validate()

    def bound(self) -> float | None:
        if self.metric != "area" or self.task not in BOUND_TASKS or self.convention != "large-n":
            return None
        if self.threshold <= 0:  # the area above 0 has no such bound
            return None
        return self.synapses / (4 * self.threshold)


def default_horizon(synapses: int) -> int:
    return max(10, int(round(0.6 * synapses)))


def cell_of_run(config: TrainConfig) -> Cell | None:
    """The scoreboard cell a training run belongs to (None when its scenario parameters are not
    the defaults: the scoreboard's baselines are tuned for the defaults)."""
    if config.task_params != make_scenario(config.task).params:
        return None
    return Cell(**{f.name: getattr(config, f.name) for f in fields(Cell)})


def plan_cells(
    tasks: Sequence[str] = TASKS,
    state_sizes: Sequence[int] = STATE_SIZES,
    synapses: Sequence[int] = SYNAPSES,
    horizon: int | None = None,
    metric: str = "area",
    threshold: float = 1.0,
    convention: str = "large-n",
) -> list[Cell]:
    """Every requested cell, checked before any work starts."""
    for task in tasks:
        make_scenario(task)  # one clear line for an unknown name
    for m in state_sizes:
        if m < 1:
            raise ValueError(f"state size m = {m} is not allowed: need m >= 1")
    for n in synapses:
        EvalSpec(n)  # one clear line for a bad N before its horizon is derived
    cells = [
        Cell(t, m, n, horizon or default_horizon(n), metric, threshold, convention)
        for n in synapses
        for t in tasks
        for m in state_sizes
    ]
    for cell in cells:
        cell.config()  # metric, threshold, convention, horizon: one clear line if bad
    return cells


#: what a board writes into its --out, after every cell and run is done
OUTPUT_FILES = ("scoreboard.json", "scoreboard.md", "scoreboard.png")


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda``: the kind of device whose random numbers a cached cell or learned row
    drew. A CUDA generator draws other numbers than the CPU's from the same seed, so a row
    evaluated on one kind is not paired with a cell evaluated on the other (common random
    numbers): caches record the kind, and one made on the other kind is evaluated again. Rows
    cached before the kind was recorded were made on the CPU."""
    return torch.device(device).type


def _cell_seed(cell: Cell) -> int:
    return stream_seed(cell.config().seed, "compare")


def _evaluate(model, config: TrainConfig, batch: int, seed: int, device: str, method: str):
    """``runs.evaluate_trained`` after the cell's burn-in (the default at the cell's horizon,
    as its baselines are), not a run's own: a run trained with ``--burn-in 0`` read 2.47 x the
    best baseline, above the bound, on its start-up transient (review, session 35). Looked up at
    each call (a test may patch it)."""
    from learnsyn.runs import evaluate_trained

    config = _at_cell_burn_in(config)
    return evaluate_trained(model, config, batch=batch, seed=seed, device=device, method=method)


def _at_cell_burn_in(config: TrainConfig) -> TrainConfig:
    """A run's config with the burn-in of its cell: the default at its horizon."""
    return replace(config, burn_in=None)


def compute_cell(
    cell: Cell, out: Path, eval_batch: int = EVAL_BATCH, device: str = "cpu", log=print
) -> dict[str, Any]:
    """Tune and evaluate every baseline of ``cell`` (cached in ``out/cells/<key>/``)."""
    from learnsyn.tuning import baseline_code, tune_baselines_for_run

    directory = out / "cells" / cell.key
    done = directory / "cell.json"
    config = cell.config()
    scenario = make_scenario(cell.task)
    names = default_baselines(scenario, cell.state_size)
    kept: list[dict[str, Any]] = []
    if done.exists():
        data = read_json(done)
        if (
            data.get("cell") == asdict(cell)  # (a cache of another cell is never served)
            and data.get("eval_batch") == eval_batch
            and data.get("code") == evaluation_code()
            and data.get("device", "cpu") == device_kind(device)
        ):
            # rows made by today's code on this kind of device; a default baseline added since
            # (e.g. linear-range) or one whose code changed is tuned and evaluated again, alone
            kept = [
                row
                for row in data["baselines"]
                if row.get("code") == baseline_code(row["name"], scenario)
            ]
            if set(names) <= {row["name"] for row in kept}:
                return data
    directory.mkdir(parents=True, exist_ok=True)
    missing = [name for name in names if name not in {row["name"] for row in kept}]
    tuned = tune_baselines_for_run(config, scenario, missing, directory / "baselines.json", log)
    seed, chosen_on = _cell_seed(cell), stream_seed(cell.config().seed, "selection")
    rows = [  # chosen on the pairs the linearizations are chosen on (linearization_selection)
        reevaluated(row, config, scenario, eval_batch, seed, device, selection_seed=chosen_on)
        for row in tuned
    ]
    for row, tuned_row in zip(rows, tuned):
        row["on_boundary"] = tuned_row.get("on_boundary", [])
        row["code"] = tuned_row.get("code")
    data = {
        "cell": asdict(cell),
        "key": cell.key,
        "task_params": dict(scenario.params),
        "eval_batch": eval_batch,
        "seed": seed,
        "bound": cell.bound(),
        "code": evaluation_code(),
        "device": device_kind(device),
        "baselines": kept + rows,
    }
    atomic_write_json(done, data)
    return data


def evaluate_learned_run(
    run_dir: Path, out: Path, eval_batch: int = EVAL_BATCH, device: str = "cpu"
) -> dict[str, Any] | None:
    """A learned run's row on its cell's evaluation seed and batch (cached); None when the run
    does not belong to a scoreboard cell."""
    from learnsyn.runs import load_run

    config, model, checkpoint = load_run(run_dir)
    cell = cell_of_run(config)
    if cell is None:
        return None
    cache = _learned_cache(run_dir, out)
    fingerprint = model_fingerprint(model)
    if cache.exists():
        row = read_json(cache)
        # the same parameters, not only the same path and iteration: a run trained again into
        # its directory (--overwrite, another --lr) must not be served the old row
        same = (
            row.get("eval_batch") == eval_batch
            and row.get("iteration") == checkpoint["iteration"]
            and row.get("model_sha1") == fingerprint
            and row.get("cell_key") == cell.key  # retrained in place with other settings
            and row.get("code") == evaluation_code()  # made by other evaluation code
            and row.get("device", "cpu") == device_kind(device)  # its pairs are the cell's
        )
        if same and "method" in row:  # the labelling rule and the run's result may have changed
            label = learned_label(config)
            return {**row, "run": str(run_dir), "label": label, "cautions": _cautions(run_dir)}
    scenario = make_scenario(config.task, config.task_params)
    # bounded grid: exactly, no noise; elsewhere on the cell's shared random numbers
    method = "exact" if exact_method_available(model, scenario, AUTO_MAX_STATES) else "monte-carlo"
    ev = _evaluate(model, config, eval_batch, _cell_seed(cell), device, method)
    row = {
        "run": str(run_dir),
        "cell_key": cell.key,
        "cell": asdict(cell),
        "name": config.cell,
        "label": learned_label(config),
        "seed": config.seed,
        "iteration": checkpoint["iteration"],
        "model_sha1": fingerprint,
        "code": evaluation_code(),
        "device": device_kind(device),
        "eval_batch": eval_batch,
        "params": model.params_dict(),
        "method": ev.method,
        "metrics": ev.metrics,
        "metrics_stderr": ev.metrics_stderr or {key: 0.0 for key in ev.metrics},
        "leave_one_out": (ev.monte_carlo or {}).get("leave_one_out_metrics"),
        "ages": ev.ages,
        "snr": ev.snr,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache, row)
    return {**row, "cautions": _cautions(run_dir)}


def _cautions(run_dir: Path) -> list[str]:
    """``runs.run_cautions``, and a burn-in of the run's own (``_evaluate`` scores after the
    cell's), each also said on stderr."""
    from learnsyn.runs import read_run_config, run_cautions

    cautions = run_cautions(run_dir)
    config = read_run_config(Path(run_dir))
    trained, cell = config.resolved_burn_in(), _at_cell_burn_in(config).resolved_burn_in()
    if trained != cell:
        cautions.append(f"trained with burn-in {trained}; scored after the cell's {cell}")
    for caution in cautions:
        _to_stderr(f"warning: {run_dir}: {caution}")
    return cautions


@functools.cache
def evaluation_code() -> str:
    """A fingerprint of the code that decides a learned row and a cell's re-evaluated baselines
    beside the tuning (``tuning.baseline_code``): the evaluation path, the estimators, the final
    evaluation of a trained model, the re-evaluation of a baseline and the linearized ablation.
    A cached row or cell made by other code is evaluated again. Read once per process (the
    code does not change under a running board; every cell and row asked for it again)."""
    import inspect

    import learnsyn.tasks

    here = Path(__file__).parent
    files = [
        here / "evaluate.py",
        here / "linearization.py",
        here / "cells.py",  # a learned row is its cell's forward pass
        *Path(learnsyn.tasks.__file__).parent.glob("*.py"),  # the scenarios' dynamics
        # estimators, rollouts and native kernel, synapse and scenario interfaces (a fixed
        # native kernel served the faulty one's cached figures), and the config's derived
        # settings (a default burn-in; review, session 35)
        *simulation_files(),
        here / "config.py",
    ]
    digest = hashlib.sha1(source_fingerprint(files).encode())
    # as imported (a test may patch the module), and this module's own scoring of a learned
    # row, its burn-in and its ablation (review, session 36: an edit there kept the old rows)
    scoring = (_evaluate, _at_cell_burn_in, linearized_ablation, linearization_selection)
    for function in (evaluate_trained, reevaluated, *scoring):
        digest.update(inspect.getsource(function).encode())
    return digest.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the model's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def _learned_cache(run_dir: Path, out: Path) -> Path:
    tag = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return out / "learned" / f"{run_dir.name}-{tag}.json"


def _to_stderr(text: str) -> None:
    """Where the scoreboard's steps report when no ``log`` is given."""
    print(text, file=sys.stderr)


#: what the linearized ablation says in a scenario whose events carry flags
FLAGS_NOTE = (
    "the linearization is taken on flag-0 events and its linear synapse ignores the flag: a "
    "flagged event enters it as its amplitude times the same increment, so any use the cell "
    "makes of the flag (an event x flag interaction) counts as nonlinearity"
)


def linearized_ablation(
    model: torch.nn.Module,
    config: TrainConfig,
    learned: dict[str, Any],
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """The learned row's ablation: ``model`` held to its linearization (``linearize_in``: around
    the mean map's fixed point, or on its stationary states where the scenario constrains the
    state) and evaluated with the SAME method, seed and batch as the ``learned`` row, so the
    ratio learned / linearized is paired (exact on both sides: no error at all)."""
    from learnsyn.linearization import LinearizedCell, linearize_in

    scenario = make_scenario(config.task, config.task_params)
    if getattr(model, "discrete_state", False):
        raise ValueError(f"{config.cell}: a discrete-state model has no linearization")
    lin = linearize_in(model, scenario)  # on the stationary states where the state is constrained
    batch = learned["eval_batch"]
    ev = _evaluate(LinearizedCell(lin), config, batch, seed, device, learned["method"])
    ablation = {
        "method": ev.method,
        "eval_seed": seed,
        "eval_batch": batch,
        "metrics": ev.metrics,
        "metrics_stderr": ev.metrics_stderr or {key: 0.0 for key in ev.metrics},
        "leave_one_out": (ev.monte_carlo or {}).get("leave_one_out_metrics"),
        "linearization": {
            "around": "stationary states" if scenario.constrains_state else "fixed point",
            **lin.summary(),
        },
    }
    metric = config.metric
    ablation.update(metric=metric, **row_ratio(learned, ablation, metric).to_json())
    ablation["selection"] = linearization_selection(lin, config, ablation, device)
    if scenario.has_flags:
        ablation.update(flags_ignored=True, note=FLAGS_NOTE)
    return ablation


def linearization_selection(
    lin, config: TrainConfig, ablation: dict[str, Any], device: str = "cpu"
) -> dict[str, Any]:
    """The value on which the cell's strongest linearization is chosen (``strongest_found``),
    never the evaluation pairs it is then compared on (the largest of several values on the same
    noise favours the luckiest): the ablation's own value where that is exact; else exactly
    where the bounded grid fits (``estimate.grid.MAX_STATES``, e.g. 16^4 states at m = 4, about
    10 s); else Monte Carlo on the cell's ``selection`` seed stream, the ablation's batch."""
    from learnsyn.linearization import LinearizedCell

    if ablation["method"] == "exact":
        return {"method": "exact", "metrics": ablation["metrics"]}
    model = LinearizedCell(lin)
    exact = exact_method_available(model, make_scenario(config.task, config.task_params))
    cell = cell_of_run(config)
    seed = stream_seed(cell.config().seed if cell else config.seed, "selection")
    method = "exact" if exact else "monte-carlo"
    ev = _evaluate(model, config, ablation["eval_batch"], seed, device, method)
    selection = {"method": ev.method, "metrics": ev.metrics}
    if not exact:
        selection.update(eval_seed=seed, metrics_stderr=ev.metrics_stderr)
    return selection


def ablate_learned_run(
    run_dir: Path, row: dict[str, Any], out: Path, device: str = "cpu", log=None
) -> dict[str, Any]:
    """``row`` (from ``evaluate_learned_run``) with its ``ablation``, computed once and cached in
    the row's file (a row cached without one is completed; the learned evaluation is not
    repeated). Where no linearization can be built or evaluated, ``ablation`` is None and
    ``ablation_reason`` says why: the scoreboard goes on (and tries again on its next run)."""
    if row.get("ablation") is not None:
        if "selection" in row["ablation"]:
            return row
        return _complete_selection(run_dir, row, out, device, log)
    from learnsyn.runs import load_run

    row = dict(row)
    row.pop("ablation_reason", None)
    try:
        config, model, checkpoint = load_run(run_dir)
        if checkpoint["iteration"] != row["iteration"]:
            raise ValueError("the run changed since its row was evaluated")
        seed = _cell_seed(Cell(**row["cell"]))
        row["ablation"] = linearized_ablation(model, config, row, seed, device)
        a = row["ablation"]
        message = (
            f"ablation of {run_dir}: learned / own linearization ({a['metric']}, {a['method']}) "
            f"= {a['ratio']:.4f} +- {a['ratio_stderr']:.4f}"
        )
    except Exception as error:  # one run's ablation never stops the scoreboard
        row["ablation"] = None
        row["ablation_reason"] = f"{type(error).__name__}: {error}"
        message = f"ablation of {run_dir}: none ({row['ablation_reason']})"
    atomic_write_json(_learned_cache(Path(run_dir), out), row)
    (log or _to_stderr)(message)
    return row


def _complete_selection(
    run_dir: Path, row: dict[str, Any], out: Path, device: str = "cpu", log=None
) -> dict[str, Any]:
    """A row whose ablation was cached before selections existed, completed with one from the
    stored linearization (the same synapse; the learned run is not evaluated again)."""
    from learnsyn.linearization import Linearization
    from learnsyn.runs import read_run_config

    row = {**row, "ablation": dict(row["ablation"])}
    stored = row["ablation"]["linearization"]
    lin = Linearization(
        *(np.asarray(stored[k], dtype=np.float64) for k in ("fixed_point", "A", "b", "c")),
        residual=float(stored["fixed_point_residual"]),
        event_mean=float(stored.get("event_mean", 0.0)),
    )
    config = read_run_config(Path(run_dir))
    row["ablation"]["selection"] = linearization_selection(lin, config, row["ablation"], device)
    atomic_write_json(_learned_cache(Path(run_dir), out), row)
    value = row["ablation"]["selection"]["metrics"][config.metric]
    (log or _to_stderr)(f"selection value of {run_dir}'s linearization: {value:.4g}")
    return row


#: what ``python -m learnsyn.tools.refine_linear --run DIR`` writes into a run
REFINED_FILE = "refined-linear.json"


def add_refined(
    run_dir: Path, row: dict[str, Any], out: Path, device: str = "cpu", log=None
) -> dict[str, Any]:
    """``row`` with ``refined``: the linear synapse that ``tools.refine_linear`` found from the
    run's linearization (``DIR/refined-linear.json``, when there is one), evaluated like the
    row (its method, the cell's seed and batch) as a candidate for the strongest synapse found;
    its selection value is the tool's own (exact, or on fresh numbers: never these pairs).
    Cached in the row's file while the synapse is the same; dropped when the file is gone."""
    from learnsyn.baselines.optimal_linear import form_from_params
    from learnsyn.registry import make_model
    from learnsyn.runs import read_run_config
    from learnsyn.synapse import spectral_radius

    path = Path(run_dir) / REFINED_FILE
    if not path.exists():
        if "refined" not in row:
            return row
        row = {key: value for key, value in row.items() if key != "refined"}
    else:
        say = log or _to_stderr
        try:
            report = read_json(path)
            made_from = report.get("model_sha1")
            if made_from is not None and made_from != row.get("model_sha1", made_from):
                # the run was trained again in place since (review, session 35)
                raise ValueError(
                    "it was refined from other parameters than the run's now; run "
                    "`python -m learnsyn.tools.refine_linear --run` again"
                )
            config = read_run_config(Path(run_dir))
            cell_burn_in = _at_cell_burn_in(config).resolved_burn_in()
            if report.get("burn_in", cell_burn_in) != cell_burn_in:
                raise ValueError(
                    f"it was scored after burn-in {report['burn_in']}, the cell's is "
                    f"{cell_burn_in}; run `python -m learnsyn.tools.refine_linear --run` again"
                )
            if (row.get("refined") or {}).get("params") == report["params"]:
                return row
            model = make_model("linear-range", report["params"])
            selected = float(report["refined_value"])
        except (OSError, ValueError, KeyError, TypeError) as error:  # never stops the scoreboard
            say(f"refined linearization of {run_dir}: left out ({type(error).__name__}: {error})")
            return {key: value for key, value in row.items() if key != "refined"}
        seed = _cell_seed(Cell(**row["cell"]))
        ev = _evaluate(model, config, row["eval_batch"], seed, device, row["method"])
        row = {
            **row,
            "refined": {
                "params": report["params"],
                "method": ev.method,
                "metrics": ev.metrics,
                "metrics_stderr": ev.metrics_stderr or {key: 0.0 for key in ev.metrics},
                "leave_one_out": (ev.monte_carlo or {}).get("leave_one_out_metrics"),
                "selection": {
                    "method": report["method"],
                    "metrics": {report["metric"]: selected},
                },
                "spectral_radius": spectral_radius(form_from_params(report["params"])[0]),
                "source": str(path),
            },
        }
        value = ev.metrics[config.metric]
        say(f"refined linearization of {run_dir}: {config.metric} {value:.4g} ({ev.method})")
    atomic_write_json(_learned_cache(Path(run_dir), out), row)
    return row


#: settings that do not change what a run learns (or that define its cell): left out of labels
UNLABELLED = {
    "task", "task_params", "synapses", "state_size", "cell", "metric", "horizon", "threshold",
    "convention", "seed", "device", "checkpoint_every", "log_every", "figure_every",
    "eval_batch", "rollout",
}  # fmt: skip


def _resolved(config: TrainConfig, name: str) -> Any:
    """A setting as training uses it (``resolved_<name>`` where the config has one). A setting
    is labelled only when its given value differs from the default's and its resolved value from
    what the run would resolve without it: a run that spells out a default pools with the runs
    that left it unset, and a setting derived from another (the gradient burn-in from the
    burn-in) is not labelled when only its source was."""
    resolve = getattr(config, f"resolved_{name}", None)
    return resolve() if resolve is not None else getattr(config, name)


def learned_label(config: TrainConfig) -> str:
    """The group a run belongs to: its cell type and every training setting that differs from
    the defaults of ``learnsyn train`` for that cell (so different recipes never pool)."""
    default = TrainConfig(
        task=config.task,
        task_params=config.task_params,
        synapses=config.synapses,
        state_size=config.state_size,
        cell=config.cell,
        horizon=config.horizon,
        metric=config.metric,
        threshold=config.threshold,
        convention=config.convention,
    ).validate()
    from learnsyn.registry import model_class
    from learnsyn.synapse import resolve_params

    specs = model_class(config.cell).info.params
    owner = f"cell {config.cell!r}"
    # cell parameters as the cell reads them (given on the command line they are strings)
    cell_params = resolve_params(specs, config.cell_params, owner)
    default_params = resolve_params(specs, default.cell_params, owner)
    changed = []
    for f in fields(TrainConfig):
        if f.name in UNLABELLED:
            continue
        if f.name == "cell_params":
            differing = {k: v for k, v in cell_params.items() if v != default_params[k]}
            changed += [
                f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in differing.items()
            ]
        elif getattr(config, f.name) != getattr(default, f.name) and _resolved(
            config, f.name
        ) != _resolved(replace(config, **{f.name: getattr(default, f.name)}), f.name):
            # against what THIS run would resolve without it, not the default run: a validation
            # batch of 512 beside --batch 128 matched the default's derived 512 and pooled with
            # runs validated on 128 (review, session 35)
            changed.append(f"{f.name}={getattr(config, f.name)}")
    return config.cell + (f" ({', '.join(changed)})" if changed else " (defaults)")


def left_out_of_board(out: Path, cells: list[Cell], run_dirs: list[Path]) -> list[str]:
    """The cells (by key) and learned runs of the board in ``out`` that a board of ``cells``
    and ``run_dirs`` would not hold; a cell stays when one of its runs is given again."""
    try:
        board = read_json(out / "scoreboard.json")
        old_cells = list(board["cells"])
    except (OSError, ValueError, TypeError, KeyError):
        return []  # no board (or not one of ours): nothing to lose
    given = [Path(run).resolve() for run in run_dirs]
    planned = {cell.key for cell in cells}
    lost = []
    for data in (data for data in old_cells if isinstance(data, dict)):
        runs = [run for group in data.get("learned", []) for run in group.get("runs", [])]
        kept = [run for run in runs if _names_a_given_run(run, given)]
        if data.get("key") not in planned and not kept:
            lost.append(f"cell {data.get('key')}")
        lost += [f"run {run}" for run in runs if run not in kept]
    return lost


def _names_a_given_run(stored: str, given: list[Path]) -> bool:
    """Whether a board's run path names one of the resolved run directories ``given``. A
    relative path was written relative to the directory the board was built from, which need
    not be this one: where it names no run directory from here, it names a given run whose path
    ends with it, of at least two parts (a lone run name, such as the config's default names,
    is too common to tell runs apart; such a board is refused from elsewhere, as before)."""
    path = Path(stored)
    here = path.resolve()
    if path.is_absolute() or here in given or (here / "config.json").exists():
        return here in given
    parts = path.parts  # pathlib drops "." parts
    if len(parts) < 2 or ".." in parts:
        return False
    return any(run.parts[-len(parts) :] == parts for run in given)


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories (holding ``config.json`` and ``checkpoint.pt``) at or under ``paths``."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"--runs {path}: no such directory")
        found = sorted(
            p.parent for p in path.rglob("checkpoint.pt") if (p.parent / "config.json").exists()
        )
        if not found:
            raise ValueError(f"--runs {path}: no training run (config.json + checkpoint.pt) there")
        # a run without a checkpoint yet (crashed or still starting) is said, not dropped
        # silently: its group would read fewer seeds without a word (review, session 35)
        for config in sorted(path.rglob("config.json")):
            started = output_owner(config.parent) == "train"
            if started and not (config.parent / "checkpoint.pt").exists():
                _to_stderr(f"warning: --runs {config.parent}: no checkpoint.pt yet; left out")
        runs += found
    return list({run.resolve(): run for run in reversed(runs)}.values())[::-1]  # a run once


def check_runs(run_dirs: Sequence[Path], eval_batch: int = MIN_PAIRS) -> None:
    """Every run loads (a broken checkpoint is one line before any run is evaluated), its
    cell's evaluations of ``eval_batch`` pairs fit in memory, and no training is counted twice:
    two runs of one label, cell and seed are copies, which would pass for more seeds than there
    are."""
    from learnsyn.runs import load_run

    seen: dict[tuple[str, str, int], Path] = {}
    for run_dir in run_dirs:
        config, _, _ = load_run(run_dir)
        cell = cell_of_run(config)
        if cell is None:  # left out of the board (not the default scenario parameters)
            continue
        cell.config(eval_batch)
        key = (learned_label(config), cell.key, config.seed)
        if key in seen:
            raise ValueError(
                f"--runs: {run_dir} and {seen[key]} are the same training ({key[0]}, seed "
                f"{config.seed}): give one of them (a copy would count as another seed)"
            )
        seen[key] = run_dir


def learned_groups(cell_data: dict[str, Any], runs: list[dict[str, Any]], metric: str) -> list:
    """The learned runs of one cell grouped by label, each with its mean, the paired ratios to
    the cell's best baseline and to the strongest synapse found (``strongest_found``), with
    verdicts.

    Errors of the mean over training seeds add two parts: the spread over seeds (training
    variability) and the Monte Carlo error of the evaluation. Every run of a cell is evaluated on
    the SAME random numbers, so their Monte Carlo errors do not average out over seeds: that part
    is the jackknife over the pair groups of the seeds' mean (for the ratio: of the seeds' mean
    divided by the reference, group by group). The sum is conservative: the spread over seeds
    holds the part of each seed's Monte Carlo error the seeds do not share, which the jackknife
    counts again (up to 1.36 x the true error with 3 seeds of independent errors; README). The
    strongest synapse found is ``cell_data["strongest"]`` where the caller has it, else found
    here."""
    baselines = cell_data["baselines"]
    best = best_baseline(baselines, metric)
    strongest = (
        cell_data["strongest"]
        if "strongest" in cell_data
        else strongest_found(baselines, runs, metric)
    )
    groups = []
    for label in sorted({r["label"] for r in runs}):
        members = sorted((r for r in runs if r["label"] == label), key=lambda r: r["seed"])
        values = np.array([r["metrics"][metric] for r in members])
        n = len(values)
        mean_loo = _mean_leave_one_out(members, metric)
        spread = values.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
        group = {
            "label": label,
            "seeds": [r["seed"] for r in members],
            "runs": [r["run"] for r in members],
            "values": values.tolist(),
            "value_stderrs": [r["metrics_stderr"][metric] for r in members],
            "mean": float(values.mean()),
            "stderr": float(math.hypot(spread, _jackknife(mean_loo, members, metric))),
            # a run that did not finish or was flagged not stationary (runs.run_cautions)
            "cautions": [f"{r['run']}: {c}" for r in members for c in r.get("cautions") or []],
        }
        if best is not None:
            against = _ratio_to(members, best, metric, mean_loo)
            group.update(best_baseline=best["name"], **_judged(against, n, _verdict))
        if strongest is not None:
            against = _ratio_to(members, strongest, metric, mean_loo)
            judged = _judged(against, n, _strongest_verdict, "strongest_")
            group.update(strongest=strongest["name"], **judged)
        group.update(_against_linearization(members, metric))
        groups.append(group)
    return groups


def _ratio_to(
    members: list[dict[str, Any]],
    reference: dict[str, Any],
    metric: str,
    mean_loo: np.ndarray | None,
) -> dict[str, Any]:
    """The seeds' paired ratios to one ``reference`` row of the cell (a baseline or a
    linearization, evaluated on the same pairs), their mean and its error: the spread over seeds
    and the Monte Carlo part, the jackknife of the seeds' mean over the reference, group by
    group (the reference's own error enters: it is common to every seed)."""
    ratios = [row_ratio(r, reference, metric) for r in members]
    r = np.array([x.value for x in ratios])
    n = len(r)
    spread = r.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
    reference_loo = (reference.get("leave_one_out") or {}).get(metric)
    # a reference without leave-one-out values is exact only without an error (as paired_ratio)
    hidden = reference_loo is None and (reference.get("metrics_stderr") or {}).get(metric, 0.0)
    if (
        mean_loo is not None
        and not hidden
        and (reference_loo is None or len(reference_loo) == len(mean_loo))
    ):
        denominator = (
            reference["metrics"][metric] if reference_loo is None else np.asarray(reference_loo)
        )
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0: nan, said by the verdict
            monte_carlo = float(jackknife_stderr(torch.tensor(mean_loo / denominator)))
        # a Monte Carlo lifetime's rounding to a whole age: the reference's is common to every
        # seed; the seeds' own are in their spread, which one seed does not have
        rounding = (
            rounding_error(metric, n == 1),
            rounding_error(metric, reference_loo is not None),
        )
        if reference["metrics"][metric]:
            rounded = ratio_rounding(r.mean(), reference["metrics"][metric], rounding)
            monte_carlo = math.hypot(monte_carlo, rounded)
    else:  # group layouts differ: take the seeds' errors as fully correlated
        monte_carlo = float(np.mean([x.stderr for x in ratios]))
    error = _with_error(
        r.mean(), spread, monte_carlo, _cutoff([(spread, n)], monte_carlo, members, metric)
    )
    return {"ratios": [x.to_json() for x in ratios], **error}


def _with_error(
    ratio: float, seeds: float, monte_carlo: float, cutoff: tuple[float, float]
) -> dict[str, Any]:
    """A ratio with its error (the spread over training seeds and the Monte Carlo part, in
    quadrature) and its verdict's cutoff and degrees of freedom (``_cutoff``)."""
    return {
        "ratio": float(ratio),
        "ratio_stderr": float(math.hypot(seeds, monte_carlo)),
        "ratio_stderr_parts": {"seeds": float(seeds), "monte_carlo": monte_carlo},
        "verdict_cutoff": cutoff[0],
        "degrees_of_freedom": cutoff[1],
    }


def _judged(entry: dict[str, Any], seeds: int, rule, prefix: str = "") -> dict[str, Any]:
    """``entry`` (``_with_error``) and its ``verdict`` by ``rule``, each key after ``prefix``."""
    verdict = rule(entry["ratio"], entry["ratio_stderr"], seeds, entry["verdict_cutoff"])
    return {prefix + key: value for key, value in {**entry, "verdict": verdict}.items()}


def _cutoff(
    seeds: list[tuple[float, int]], monte_carlo: float, rows: list[dict[str, Any]], metric: str
) -> tuple[float, float]:
    """``verdict_cutoff`` for an error made of the spreads over training seeds (``(error,
    seeds)`` per side) and the Monte Carlo part over the rows' pair groups (the length of their
    leave-one-out values; ``montecarlo.PairBatch``'s 16 where none is stored)."""
    counts = [len(v) for r in rows if (v := (r.get("leave_one_out") or {}).get(metric))]
    groups = min(counts, default=PairBatch.groups)
    return verdict_cutoff([(error, n - 1) for error, n in seeds] + [(monte_carlo, groups - 1)])


def strongest_found(
    baselines: list[dict[str, Any]], runs: list[dict[str, Any]], metric: str
) -> dict[str, Any] | None:
    """The strongest synapse of the cell's size that anyone found: the best baseline
    (``compare.best_baseline``) or, where its selection value is higher than the baseline's,
    the best linearization of the cell's learned runs (neither decided on the pairs of the
    comparison).

    A run's linearization (its ablation) is an affine synapse of the same m, x' = A x + b xi +
    drive: a member of ``optimal-linear``'s family, or of ``linear-range``'s where the scenario
    clips the state (its spectral radius is reported): one the tuners miss (module docstring)
    is the reference the claim "learned beats linear" needs. Among the runs of every label (a
    linear control's linearization is itself), and their refinements where a run has one
    (``add_refined``), the one with the largest ``selection`` value is taken
    (``linearization_selection``: exact, or independent pairs, so the choice does not favour the
    luckiest draw of the pairs it is compared on). A row of the same shape as a baseline's
    (``metrics``, ``metrics_stderr``, ``leave_one_out``) with ``name``, ``kind`` ("baseline",
    "linearization" or "refined linearization") and, for the latter two, where it came from;
    None with neither."""
    best = best_baseline(baselines, metric)
    strongest = None
    if best is not None:
        strongest = {key: best.get(key) for key in ("name", "metrics", "metrics_stderr",
                                                    "leave_one_out", "selection")}  # fmt: skip
        strongest["kind"] = "baseline"
    candidates = [
        (r, kind, r[key])
        for r in runs
        for key, kind in (("ablation", "linearization"), ("refined", "refined linearization"))
        if (r.get(key) or {}).get("selection")
        and math.isfinite(r[key]["metrics"][metric])
        and math.isfinite(r[key]["selection"]["metrics"][metric])
    ]
    if not candidates:
        return strongest
    pick, kind, entry = max(candidates, key=lambda c: c[2]["selection"]["metrics"][metric])
    chosen = entry["selection"]["metrics"][metric]
    if strongest is not None and not chosen > selection_value(strongest, metric):
        return strongest
    radius = entry.get("spectral_radius") or max(entry["linearization"]["moduli"])
    return {
        "name": f"{kind} of {pick['label']} seed {pick['seed']}",
        "kind": kind,
        "run": pick["run"],
        "metrics": entry["metrics"],
        "metrics_stderr": entry["metrics_stderr"],
        "leave_one_out": entry.get("leave_one_out"),
        "selection": entry["selection"],
        "spectral_radius": radius,
        "candidates": len(candidates),
    }


def learned_pairs(runs: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Every pair of learned groups of one cell (labels in sorted order): the ratio of their seeds'
    means, e.g. a nonlinear cell against a linear synapse trained with the same budget.

    Both groups are evaluated on the same random numbers, so the Monte Carlo part of the error
    is the jackknife over the pair groups of the ratio of the seeds' mean leave-one-out values
    (the common noise partly cancels); the training seeds are independent on the two sides, so
    their spreads add in quadrature (relative errors). A verdict needs ``SEEDS_FOR_A_VERDICT``
    seeds on each side and lies outside the 95 % interval (``verdict_cutoff``)."""
    by_label = {}
    for row in runs:
        by_label.setdefault(row["label"], []).append(row)
    pairs = []
    for top, bottom in itertools.combinations(sorted(by_label), 2):
        sides = [sorted(by_label[label], key=lambda r: r["seed"]) for label in (top, bottom)]
        values = [np.array([r["metrics"][metric] for r in side]) for side in sides]
        means = [float(v.mean()) for v in values]
        if not (means[1] and all(math.isfinite(m) for m in means)):
            continue
        ratio = means[0] / means[1]
        # each side's spread over seeds on the ratio's scale, written so that a numerator of
        # mean 0 (collapsed runs) still has one (review, session 32: 0 x inf made it NaN)
        spread = [v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0 for v in values]
        on_ratio = [spread[0] / abs(means[1]), abs(ratio) * spread[1] / abs(means[1])]
        seeds = math.hypot(*on_ratio)
        loo = [_mean_leave_one_out(side, metric) for side in sides]
        if loo[0] is not None and loo[1] is not None and len(loo[0]) == len(loo[1]):
            with np.errstate(divide="ignore", invalid="ignore"):
                monte_carlo = float(jackknife_stderr(torch.tensor(loo[0] / loo[1])))
        else:  # no common groups: the two Monte Carlo errors as independent
            errors = [_jackknife(v, side, metric) for v, side in zip(loo, sides, strict=True)]
            monte_carlo = math.hypot(errors[0], abs(ratio) * errors[1]) / abs(means[1])
        cutoff = _cutoff(
            [(part, len(v)) for part, v in zip(on_ratio, values, strict=True)],
            monte_carlo, sides[0] + sides[1], metric,
        )  # fmt: skip
        entry = _with_error(ratio, seeds, monte_carlo, cutoff)
        pairs.append(
            {
                "numerator": top,
                "denominator": bottom,
                "seeds": [len(v) for v in values],
                **_judged(entry, min(len(v) for v in values), _pair_verdict),
            }
        )
    return pairs


def _pair_verdict(ratio: float, error: float, seeds: int, cutoff: float) -> str:
    texts = ("above (95 %)", "below (95 %)", "matches (within the 95 % interval)")
    return _judge(ratio, error, seeds, texts, cutoff, " on a side")


def _against_linearization(members: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Learned / own linearization over the seeds that have an ablation: the mean of the
    seeds' paired ratios, its error combined as for learned / best baseline (the spread over
    seeds and the Monte Carlo error common to every seed, the jackknife over the pair groups of
    the seeds' mean ratio) and a verdict; the seeds without one under ``linearized_missing``.
    Nothing for rows that never had an ablation computed."""
    if not any("ablation" in r for r in members):
        return {}
    done = [r for r in members if r.get("ablation")]
    summary: dict[str, Any] = {
        "linearized_missing": [
            {"seed": r["seed"], "reason": r.get("ablation_reason", "not computed")}
            for r in members
            if not r.get("ablation")
        ]
    }
    if not done:
        return summary
    ratios = [row_ratio(r, r["ablation"], metric) for r in done]
    values = np.array([x.value for x in ratios])
    n = len(values)
    spread = values.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
    loo = [
        [(row.get("leave_one_out") or {}).get(metric) for row in (r, r["ablation"])] for r in done
    ]
    if (
        all(a is not None and b is not None for a, b in loo)
        and len({len(v) for pair in loo for v in pair}) == 1
    ):
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_ratio = np.mean([np.asarray(a) / np.asarray(b) for a, b in loo], axis=0)
        monte_carlo = float(jackknife_stderr(torch.tensor(mean_ratio)))
    else:  # exact rows (zero error) or layouts that differ: the seeds' errors fully correlated
        monte_carlo = float(np.mean([x.stderr for x in ratios]))
    rows = [row for r in done for row in (r, r["ablation"])]
    error = _with_error(
        values.mean(), spread, monte_carlo, _cutoff([(spread, n)], monte_carlo, rows, metric)
    )
    entry = {"ratios": [x.to_json() for x in ratios], **error}
    summary.update(
        linearized_seeds=[r["seed"] for r in done],
        linearized_values=[r["ablation"]["metrics"][metric] for r in done],
        **_judged(entry, n, _linearization_verdict, "linearized_"),
        linearized_flags_ignored=any(r["ablation"].get("flags_ignored") for r in done),
    )
    return summary


def _mean_leave_one_out(members: list[dict[str, Any]], metric: str) -> np.ndarray | None:
    """The seeds' mean of the leave-one-group-out values ``[groups]`` (None when the runs'
    group layouts differ)."""
    loo = [(r.get("leave_one_out") or {}).get(metric) for r in members]
    if any(v is None for v in loo) or len({len(v) for v in loo}) != 1:
        return None
    return np.mean(np.asarray(loo, dtype=float), axis=0)


def _jackknife(mean_loo: np.ndarray | None, members: list[dict[str, Any]], metric: str) -> float:
    if mean_loo is None:  # (these errors hold each seed's rounding, which the spread has too)
        return float(np.mean([r["metrics_stderr"][metric] for r in members]))
    error = float(jackknife_stderr(torch.tensor(mean_loo)))
    return math.hypot(error, rounding_error(metric, len(members) == 1))  # see _ratio_to


def _judge(
    ratio: float,
    error: float,
    seeds: int,
    texts: tuple[str, str, str],
    cutoff: float,
    side: str = "",
) -> str:
    """The verdict on a ratio against 1: ``texts`` = (above, below, within the 95 % interval),
    the interval ``ratio +- cutoff x error`` (``estimate.ratio.verdict_cutoff``: Student's t for
    the seeds and groups behind the error); none with fewer than ``SEEDS_FOR_A_VERDICT``
    training seeds or a non-finite ratio."""
    if seeds < SEEDS_FOR_A_VERDICT:
        return f"no verdict: {seeds} training seed(s){side}, {SEEDS_FOR_A_VERDICT} needed"
    if not (math.isfinite(ratio) and math.isfinite(error)):
        return "no verdict: the ratio or its error is not finite"
    above, below, within = texts
    margin = cutoff * error
    return above if ratio - margin > 1 else below if ratio + margin < 1 else within


def _verdict(
    ratio: float, error: float, seeds: int, cutoff: float, what: str = "the best baseline"
) -> str:
    texts = (f"above {what}", f"below {what}", f"matches {what} (within the 95 % interval)")
    return _judge(ratio, error, seeds, texts, cutoff)


def _strongest_verdict(ratio: float, error: float, seeds: int, cutoff: float) -> str:
    return _verdict(ratio, error, seeds, cutoff, "the strongest found")


def _percent(fraction: float) -> str:
    """One decimal of a percent, or two significant digits below 0.1% (an exact ratio can be
    resolved far below that: 0.03%, not 0.0%)."""
    return f"{fraction:.1%}" if abs(fraction) >= 0.001 else f"{100 * fraction:.2g}%"


def _linearization_verdict(ratio: float, error: float, seeds: int, cutoff: float) -> str:
    texts = (
        f"nonlinearity adds {_percent(ratio - 1)} (above its linearization at 95 %)",
        f"nonlinearity costs {_percent(1 - ratio)} (below its linearization at 95 %)",
        "within the 95 % interval of its linearization",
    )
    return _judge(ratio, error, seeds, texts, cutoff)


class Progress:
    """One line per step on stderr: the step, what it does, elapsed time and an estimate of the
    time left from the steps done so far."""

    def __init__(self, total: int, out=None):
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.cached = 0  # steps answered from the cache: left out of the time estimate
        self.out = out or sys.stderr

    def step(self, what: str, cached: bool = False) -> None:
        elapsed = time.perf_counter() - self.start
        worked = self.done - self.cached
        left = elapsed / worked * (self.total - self.done) if worked else float("nan")
        self.cached += cached
        eta = f", about {left / 60:.1f} min left" if math.isfinite(left) else ""
        bar = "#" * int(20 * self.done / self.total)
        print(
            f"[{bar:<20}] {self.done}/{self.total} {what} ({elapsed / 60:.1f} min{eta})",
            file=self.out,
            flush=True,
        )
        self.done += 1

    def note(self, message: str) -> None:
        """A line within the current step (which baseline is being tuned, and the like)."""
        elapsed = time.perf_counter() - self.start
        print(f"    {message} ({elapsed / 60:.1f} min)", file=self.out, flush=True)


def build_scoreboard(
    cells: list[Cell],
    out: str | Path,
    runs: Sequence[str | Path] = (),
    eval_batch: int = EVAL_BATCH,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fill every cell (and the cells of the given runs), write the outputs, return the data.
    A board already in ``out`` that holds cells or learned runs this call leaves out is not
    replaced unless ``overwrite`` (its caches are kept either way)."""
    check_pairs(eval_batch, "--eval-batch")
    out = check_output_dir(out, "--out")  # ("" is refused there)
    device = resolve_device(device)
    for cell in cells:
        cell.config(eval_batch)  # evaluations that cannot fit: one line before any tuning
    run_dirs = find_runs(runs) if runs else []
    check_runs(run_dirs, eval_batch)
    for name in OUTPUT_FILES:  # written last, after every cell: refused now, not then
        check_output_file(out / name, f"--out {out}: the board's {name},")
    # not into another command's folder, nor below a training run (its --overwrite deletes it)
    runs_above = [p for p in out.absolute().parents if (p / "checkpoint.pt").exists()]
    for place in [out] + [p for p in runs_above if (p / "config.json").exists()]:
        if output_owner(place) is not None:
            raise ValueError(
                f"--out {out}: {place} holds the outputs of `learnsyn {output_owner(place)}`, "
                "not a scoreboard; choose another --out"
            )
    lost = [] if overwrite else left_out_of_board(out, cells, run_dirs)
    if lost:
        raise ValueError(
            f"{out / 'scoreboard.json'} holds {len(lost)} cell(s) or learned run(s) that this "
            f"call leaves out ({', '.join(lost[:3])}{', ...' if len(lost) > 3 else ''}), and "
            "the new board would lose them: give them again (cached cells and runs cost "
            "nothing), write to another --out, or pass --overwrite to replace the board"
        )
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(run_dirs) + len(cells))
    note = log or progress.note
    learned = []
    for run_dir in run_dirs:
        progress.step(f"evaluating {run_dir}")
        row = evaluate_learned_run(run_dir, out, eval_batch, device)
        if row is None:
            _to_stderr(f"note: {run_dir} left out: its scenario parameters are not the defaults")
            continue
        row = ablate_learned_run(run_dir, row, out, device, note)
        learned.append(add_refined(run_dir, row, out, device, note))
    wanted = list(dict.fromkeys(cells + [Cell(**row["cell"]) for row in learned]))
    progress.total = len(run_dirs) + len(wanted)
    table = []
    for cell in wanted:
        cached = (out / "cells" / cell.key / "cell.json").exists()
        progress.step(f"{cell.task} m={cell.state_size} N={cell.synapses}", cached)
        data = compute_cell(cell, out, eval_batch, device, note)
        rows = [r for r in learned if r["cell_key"] == cell.key]
        data["strongest"] = strongest_found(data["baselines"], rows, cell.metric)
        data["learned"] = learned_groups(data, rows, cell.metric)
        data["learned_pairs"] = learned_pairs(rows, cell.metric)
        table.append(data)
    result = {"eval_batch": eval_batch, "cells": table}
    atomic_write_json(out / "scoreboard.json", result)
    atomic_write_text(out / "scoreboard.md", markdown(result))
    _figure(result, out / "scoreboard.png")
    progress.step("done")
    return result


def _fmt(value: float, error: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f} +- {error:.1f}" if error else f"{value:.1f}"


def _ratio_text(entry: dict[str, Any], prefix: str = "") -> str:
    """``ratio +- error: verdict`` of a ``_judged`` entry (its keys after ``prefix``)."""
    ratio, error = entry[f"{prefix}ratio"], entry[f"{prefix}ratio_stderr"]
    return f"{ratio:.3f} +- {error:.3f}: {entry[f'{prefix}verdict']}"


def _linearized_text(group: dict[str, Any]) -> str:
    """A group's learned / own linearization (``n/a`` where no seed has an ablation)."""
    if "linearized_ratio" not in group:
        return "n/a"
    text = _ratio_text(group, "linearized_")
    if group["linearized_missing"]:
        text += f" ({len(group['linearized_seeds'])} of {len(group['seeds'])} seeds)"
    return text + (" (flags ignored)" if group.get("linearized_flags_ignored") else "")


def _strongest_text(strongest: dict[str, Any] | None, metric: str) -> str:
    """The cell's strongest synapse found: the best baseline's name, or which run's
    linearization, with its value."""
    if not strongest:
        return "-"
    value = _fmt(strongest["metrics"][metric], (strongest["metrics_stderr"] or {}).get(metric))
    if strongest["kind"] == "baseline":
        return f"{strongest['name']} (best baseline)"
    chosen_on = strongest["selection"]["metrics"][metric]
    return (
        f"{strongest['name']}: {value} (radius {strongest['spectral_radius']:.3f}; best of "
        f"{strongest['candidates']} on its selection value {chosen_on:.1f})"
    )


def _unlike_header(cell: dict[str, Any], first: dict[str, Any]) -> str:
    """A cell's settings that differ from its table's header (a run trained at another
    horizon, metric, threshold or convention has its own cell): `` (T = 60)``."""
    names = {"horizon": "T", "metric": "metric", "threshold": "theta", "convention": "convention"}
    differ = [f"{names[k]} = {cell[k]:g}" if isinstance(cell[k], (int, float)) else
              f"{names[k]} = {cell[k]}" for k in names if cell[k] != first[k]]  # fmt: skip
    return f" ({', '.join(differ)})" if differ else ""


def markdown(result: dict[str, Any]) -> str:
    """One table per N and metric: a row per (scenario, m), the best member of every family,
    the bound and the learned groups against the best baseline."""
    lines = []
    cells = result["cells"]
    for n in sorted({c["cell"]["synapses"] for c in cells}):
        subset = [c for c in cells if c["cell"]["synapses"] == n]
        names = list(dict.fromkeys(r["name"] for c in subset for r in c["baselines"]))
        first = subset[0]["cell"]
        lines += [
            f"N = {n}, {first['metric']} above theta = {first['threshold']:g}, "
            f"{first['convention']} convention, ages 0..{first['horizon'] - 1}; every baseline "
            f"tuned for its cell; Monte Carlo figures on {result['eval_batch']} pairs with their "
            "standard errors (exact ones without).",
            "",
            "| scenario | m | " + " | ".join(names) + " | bound | learned (mean over seeds) "
            "| learned / best baseline | learned / own linearization | strongest found "
            "| learned / strongest found |",
            "| --- | --- | "
            + " | ".join("---" for _ in names)
            + " | --- | --- | --- | --- | --- | --- |",
        ]
        for c in subset:
            metric = c["cell"]["metric"]
            by_name = {r["name"]: r for r in c["baselines"]}
            best = (best_baseline(c["baselines"], metric) or {}).get("name")
            values = []
            for name in names:
                row = by_name.get(name)
                if row is None:
                    values.append("n/a")
                    continue
                text = _fmt(row["metrics"][metric], (row["metrics_stderr"] or {}).get(metric))
                values.append(f"**{text}**" if name == best else text)
            bound = f"{c['bound']:.0f}" if c.get("bound") else "-"
            learned = "; ".join(
                f"{g['label']} {_fmt(g['mean'], g['stderr'])} ({len(g['seeds'])} seeds)"
                + (" (see the warnings)" if g.get("cautions") else "")
                for g in c.get("learned", [])
            )
            ratio = "; ".join(_ratio_text(g) for g in c.get("learned", []) if "ratio" in g)
            own = "; ".join(_linearized_text(g) for g in c.get("learned", []))
            strongest = "; ".join(
                _ratio_text(g, "strongest_") for g in c.get("learned", []) if "strongest_ratio" in g
            )
            lines.append(
                f"| {c['cell']['task']}{_unlike_header(c['cell'], first)} | "
                f"{c['cell']['state_size']} | "
                + " | ".join(values)
                + f" | {bound} | {learned or '-'} | {ratio or '-'} | {own or '-'} | "
                + f"{_strongest_text(c.get('strongest'), metric)} | {strongest or '-'} |"
            )
        lines.append("")
    compared = [(c, p) for c in cells for p in c.get("learned_pairs", [])]
    if compared:
        lines += [
            "Learned against learned (the same evaluation pairs; both sides' errors):",
            "",
        ]
        lines += [
            f"- {c['cell']['task']} m = {c['cell']['state_size']} N = {c['cell']['synapses']}: "
            f"{p['numerator']} / {p['denominator']} = {_ratio_text(p)} ({p['seeds'][0]} and "
            f"{p['seeds'][1]} seeds)"
            for c, p in compared
        ]
        lines.append("")
    warnings = [text for c in cells for g in c.get("learned", []) for text in g.get("cautions", [])]
    if warnings:
        lines += ["**Warnings** (runs counted in the learned means above):", ""]
        lines += [f"- {text}" for text in warnings] + [""]
    notes = [
        (f"{c['key']}: {r['name']}: {line}", "may lie beyond" in line)
        for c in cells
        for r in c["baselines"]
        for line in r.get("on_boundary") or []
    ]
    open_edges = sorted(note for note, beyond in notes if beyond)
    if open_edges:
        lines += ["Optima on the edge of a widened search range:", ""]
        lines += [f"- {note}" for note in open_edges] + [""]
    at_limits = sorted({note.split(": ", 1)[1] for note, beyond in notes if not beyond})
    if at_limits:
        lines += [
            f"{len(notes) - len(open_edges)} tuned parameters sit at the limit of their allowed "
            "range (" + "; ".join(at_limits) + "); details in scoreboard.json.",
            "",
        ]
    return "\n".join(lines)


def _figure(result: dict[str, Any], path: Path) -> None:
    """Each model's metric as a fraction of the cell's best baseline (or the bound), per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from learnsyn.plotting import save_figure

    cells = result["cells"]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(cells) + 2), 4))
    names = list(dict.fromkeys(r["name"] for c in cells for r in c["baselines"]))
    markers = "osD^v<>ph*"

    def best_value(c) -> float:  # the table's best baseline (``best_baseline``)
        best = best_baseline(c["baselines"], c["cell"]["metric"])
        return best["metrics"][c["cell"]["metric"]] if best is not None else 0

    bests = [best_value(c) for c in cells]  # once per cell, not once per cell and name
    for k, name in enumerate(names):
        xs, ys = [], []
        for i, c in enumerate(cells):
            metric, best = c["cell"]["metric"], bests[i]
            for r in c["baselines"]:
                if r["name"] == name and best > 0:
                    xs.append(i)
                    ys.append(r["metrics"][metric] / best)
        ax.plot(xs, ys, markers[k % len(markers)], label=name, alpha=0.8)
    for i, c in enumerate(cells):
        best = bests[i]
        for g in c.get("learned", []):
            if best > 0:
                ax.errorbar(i, g["mean"] / best, yerr=(g["stderr"] or 0) / best, fmt="k*", ms=10)
        if c.get("bound") and best > 0:
            ax.plot(i, c["bound"] / best, "_", color="gray", ms=14)
        strongest = c.get("strongest")
        if strongest and strongest.get("kind") != "baseline" and best > 0:
            ax.plot(i, strongest["metrics"][c["cell"]["metric"]] / best, "rx", ms=8)
    ax.plot([], [], "k*", label="learned (mean over seeds)")
    if any((c.get("strongest") or {}).get("kind", "baseline") != "baseline" for c in cells):
        ax.plot([], [], "rx", label="strongest found: a learned run's linearization")
    ax.plot([], [], "_", color="gray", label="bound N/(4 theta)")
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels(
        [f"{c['cell']['task']} m{c['cell']['state_size']} N{c['cell']['synapses']}" for c in cells],
        rotation=70,
        fontsize=7,
    )
    ax.set_ylabel("metric / best baseline of the cell")
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
