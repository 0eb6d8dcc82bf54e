"""The learned synapse under the post's initializations: does degeneracy decide meta-training?

Backpropagation through the ``horizon`` steps of the synapse RNN's tracked window is
backpropagation through a ``horizon``-layer network with tied weights. This experiment applies
the deep-linear initializations (Fold k, Gaussian = Fold 0, orthogonal, orthogonal x g) to the
recurrent matrix of the learned synapse (``W`` of the tanh RNN, ``U_h`` of the GRU), plus the
cell's own ``default`` initialization as a reference, and meta-trains every init with ``seeds``
seeds on the same scenario with the project's own training step (``learnsyn.training``).

Recorded per run:
- every iteration: the surrogate meta-objective that Adam maximizes, the hard metric on the same
  training batch, the total meta-gradient norm (before clipping) and the norm of the gradient
  with respect to the recurrent matrix;
- every ``evaluate_every`` iterations: the hard metric on a fixed evaluation batch (the same
  random numbers for every init of a seed), from which the final objective and the iterations
  to reach ``fraction`` of the best final objective are read;
- at ``measure_points`` iterations (always the first and the last): the degeneracy of the
  recurrent Jacobian products over the tracked window, ``P_L = J_L ... J_1`` with
  ``J_t = d h_t / d h_{t-1}`` (for the tanh RNN ``diag(1 - h_t^2) W``), for several window
  lengths L, on ``jacobian_streams`` streams after the training burn-in; and the degeneracy of
  the recurrent matrix itself (``recurrent_jacobians``).

Seeds are paired across inits: seed index s gives every init the same training batches, the
same evaluation batch and the same Jacobian streams, Fold k folds the same Gaussian draw that
Fold 0 uses, and orthogonal x g scales the same orthogonal draw. Differences between inits are
then due to the initialization alone. The figures, results.json and the verdicts on the post's
claims are written by ``synapse_report``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.cells import LearnedSynapse
from learnsyn.degeneracy.measures import DEFAULT_SMALL_VALUE_THRESHOLD
from learnsyn.degeneracy.outputs import progress_bar, torch_threads
from learnsyn.degeneracy.recurrent_jacobians import (
    DEVICE,
    JACOBIAN_MEASURES,
    spectrum_measures,
    window_jacobian_products,
)
from learnsyn.degeneracy.synapse_labels import CELL_DEFAULT_INIT
from learnsyn.initialization import (
    FOLD_AXES,
    check_fold_axis,
    check_fold_fits_width,
    check_seed,
    parse_init_spec,
    seeded_generator,
)
from learnsyn.scenario import Scenario, make_scenario
from learnsyn.training import (
    TRAIN_METRICS,
    TrainConfig,
    build_model,
    make_optimizer,
    meta_objective,
    training_step,
)

SYNAPSE_CELLS = ("rnn", "gru")  # the chain cell has no free recurrent matrix
DEFAULT_GAIN = 0.8
# The evaluation batch's random numbers: never a training or validation batch's.
EVALUATION_ITERATION = 2 * 10**9
# Stream tags, so run seeds and Jacobian streams never share a random stream.
_RUN_STREAM, _JACOBIAN_STREAM = 44, 55


def default_inits(gain: float = DEFAULT_GAIN) -> tuple[str, ...]:
    """The post's four initializations (orthogonal x ``gain``) and the cell's own default."""
    return ("fold0", "fold1", "orthogonal", f"orthogonal-x{gain:g}", CELL_DEFAULT_INIT)


@dataclass
class SynapseDegeneracyConfig:
    """Everything that defines one synapse-degeneracy run (saved as config.json).

    The default size (hidden 32, 5 inits x 16 seeds x 400 iterations, horizon 30, batch 256)
    takes about 11 minutes on one CPU thread; ``quick()`` well under a minute. ``inits=None``
    means ``default_inits(gain)`` with ``gain=None`` meaning 0.8; ``window_lengths=None`` means
    about 8 log-spaced lengths from 1 to ``horizon``. ``run_synapse_degeneracy`` saves the
    resolved config (``resolved()``).
    """

    cell: str = "rnn"
    hidden_size: int = 32
    inits: tuple[str, ...] | None = None
    gain: float | None = None
    fold_axis: str = "rows"
    seeds: int = 16
    seed: int = 0
    iterations: int = 400
    task: str = "ideal"
    task_params: tuple[str, ...] = ()
    synapses: int = 1000
    horizon: int = 30
    burn_in: int | None = None
    batch: int = 256
    metric: str = "area"
    snr_threshold: float = 1.0
    lr: float = 0.0003
    lr_final_fraction: float = 0.05
    grad_clip: float = 1.0
    temperature: float = 0.3
    temperature_final: float = 0.03
    noise_margin: float = 1.0
    timescale: float | None = None
    evaluate_every: int = 10
    eval_batch: int = 1024
    fraction: float = 0.9
    jacobian_streams: int = 16
    window_lengths: tuple[int, ...] | None = None
    measure_points: int = 5
    small_value_threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD
    threads: int = 1
    show_progress: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> SynapseDegeneracyConfig:
        """A run of seconds (hidden 16, 3 seeds, 30 iterations at lr 1e-3, horizon 12) for tests."""
        values: dict[str, Any] = dict(
            hidden_size=16,
            seeds=3,
            iterations=30,
            horizon=12,
            batch=64,
            eval_batch=128,
            evaluate_every=5,
            jacobian_streams=4,
            measure_points=3,
            lr=0.001,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def init_names(self) -> tuple[str, ...]:
        """The inits to run, in order (the default list when ``inits`` is None)."""
        if self.inits is not None:
            return tuple(self.inits)
        return default_inits(DEFAULT_GAIN if self.gain is None else self.gain)

    @property
    def task_param_dict(self) -> dict[str, str]:
        """``task_params`` (``KEY=VALUE`` strings) as a dict; the scenario converts the values."""
        parsed = {}
        for item in self.task_params:
            key, separator, value = item.partition("=")
            if not separator or not key.strip():
                raise ValueError(f"task parameter {item!r} is not allowed: expected KEY=VALUE")
            parsed[key.strip()] = value.strip()
        return parsed

    @property
    def resolved_window_lengths(self) -> tuple[int, ...]:
        """The window lengths L at which Jacobian products are measured (sorted, <= horizon)."""
        if self.window_lengths is not None:
            return tuple(sorted(set(self.window_lengths)))
        spaced = np.geomspace(1, self.horizon, num=min(8, self.horizon))
        return tuple(sorted({1, self.horizon, *np.round(spaced).astype(int).tolist()}))

    @property
    def evaluation_iterations(self) -> list[int]:
        """Iterations (updates done) at which the fixed evaluation batch is scored."""
        return sorted({*range(0, self.iterations + 1, self.evaluate_every), self.iterations})

    @property
    def measurement_iterations(self) -> list[int]:
        """Iterations at which Jacobian products are measured (first and last always)."""
        spaced = np.linspace(0, self.iterations, num=self.measure_points)
        return sorted({0, self.iterations, *np.round(spaced).astype(int).tolist()})

    def resolved(self) -> SynapseDegeneracyConfig:
        """A copy with the init list and window lengths written out (what config.json holds)."""
        return dataclasses.replace(
            self,
            inits=self.init_names,
            gain=None,
            window_lengths=self.resolved_window_lengths,
        )

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for the first bad setting, before any work."""
        if self.cell not in SYNAPSE_CELLS:
            raise ValueError(
                f"cell {self.cell!r} is not allowed: the synapse experiment needs a free "
                f"recurrent matrix; allowed: {', '.join(SYNAPSE_CELLS)}"
            )
        if int(self.hidden_size) != self.hidden_size or self.hidden_size < 2:
            raise ValueError(f"hidden size must be an integer >= 2, got {self.hidden_size}")
        check_seed(self.seed)
        check_fold_axis(self.fold_axis)
        if self.gain is not None:
            if self.inits is not None:
                raise ValueError(
                    "--gain sets the scaled orthogonal init of the default list; with --inits, "
                    "name it as orthogonal-x<gain>"
                )
            parse_init_spec(f"orthogonal-x{self.gain:g}")  # checks gain > 0
        names = self.init_names
        if not names:
            raise ValueError("inits must name at least one init")
        for name in names:
            if name == CELL_DEFAULT_INIT:
                continue
            spec = parse_init_spec(name)
            try:
                check_fold_fits_width(spec.fold_k, self.hidden_size)
            except ValueError as error:
                raise ValueError(
                    f"init {name!r} (hidden size {self.hidden_size}): {error}"
                ) from None
        keys = [name if name == CELL_DEFAULT_INIT else parse_init_spec(name) for name in names]
        if len(set(keys)) != len(keys):
            raise ValueError(f"inits must be distinct, got {list(names)}")
        _check_integer_at_least("horizon", self.horizon, 1)
        _check_integer_at_least("eval_batch", self.eval_batch, 2)
        for name, value in (
            ("seeds", self.seeds),
            ("iterations", self.iterations),
            ("evaluate_every", self.evaluate_every),
            ("jacobian_streams", self.jacobian_streams),
            ("threads", self.threads),
        ):
            _check_integer_at_least(name, value, 1)
        _check_integer_at_least("measure_points", self.measure_points, 2)
        for name, value in (
            ("small_value_threshold", self.small_value_threshold),
            ("lr", self.lr),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if not (math.isfinite(self.fraction) and 0 < self.fraction <= 1):
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        for length in self.resolved_window_lengths:
            if int(length) != length or not 1 <= length <= self.horizon:
                raise ValueError(
                    f"window length {length} is not allowed: need 1..horizon ({self.horizon})"
                )
        # Everything the training step checks (metric, batch, horizon, scenario, ...).
        train_config(self, names[0], 0).validate()
        train_config(self, names[0], 0, evaluation=True).validate()


def _check_integer_at_least(name: str, value: float, low: int) -> None:
    if int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")


def run_seed(base_seed: int, seed_index: int) -> int:
    """The training seed of seed index ``seed_index``: the same for every init (paired design)."""
    return int(np.random.SeedSequence([base_seed, seed_index, _RUN_STREAM]).generate_state(1)[0])


#: settings of the experiment that mean something else in TrainConfig (or are per run)
_NOT_TRAIN_SETTINGS = {"task_params", "seed", "batch", "init"}


def train_config(
    config: SynapseDegeneracyConfig, init: str, seed_index: int, evaluation: bool = False
) -> TrainConfig:
    """The ``TrainConfig`` of one run (``evaluation``: the same with the evaluation batch):
    every setting the two configs share by name, then the ones named differently here."""
    train_names = {f.name for f in fields(TrainConfig)} - _NOT_TRAIN_SETTINGS
    shared = {name: getattr(config, name) for name in train_names if hasattr(config, name)}
    return TrainConfig(
        **shared,
        task_params=config.task_param_dict,
        state_size=config.hidden_size,
        threshold=config.snr_threshold,
        batch=config.eval_batch if evaluation else config.batch,
        init=init,
        # the gradient stops at the burn-in, as when this experiment was run and reported;
        # `learnsyn train`'s default moved on (half the burn-in: docs/learned-vs-linear.md)
        gradient_burn_in=0,
        seed=run_seed(config.seed, seed_index),
        device="cpu",
    )


def measure_jacobian_products(
    model: LearnedSynapse,
    scenario: Scenario,
    config: TrainConfig,
    experiment: SynapseDegeneracyConfig,
    seed_index: int,
) -> dict[str, np.ndarray]:
    """Stream-mean ``JACOBIAN_MEASURES`` of ``P_L`` for every window length: ``(lengths,)``.

    The streams depend on (base seed, seed index) only, so every init and every measurement
    point of a seed index sees the same event streams.
    """
    generator = seeded_generator(experiment.seed, seed_index, _JACOBIAN_STREAM)
    lengths = experiment.resolved_window_lengths
    products = window_jacobian_products(
        model, scenario, config, experiment.jacobian_streams, lengths, generator
    )
    stacked = torch.stack([products[length] for length in lengths])  # (lengths, streams, n, n)
    measures = spectrum_measures(stacked, experiment.small_value_threshold)
    return {name: values.mean(dim=1).numpy() for name, values in measures.items()}


def evaluate_metric(
    model: LearnedSynapse, scenario: Scenario, evaluation_config: TrainConfig
) -> float:
    """The hard metric on the fixed evaluation batch of this seed (no gradient)."""
    with torch.no_grad():
        result = meta_objective(
            model, scenario, evaluation_config, EVALUATION_ITERATION, DEVICE, grad=False
        )
    return float(result.metrics[evaluation_config.metric])


def train_one_run(
    experiment: SynapseDegeneracyConfig,
    init: str,
    seed_index: int,
    scenario: Scenario,
    on_iteration: Any = None,
) -> dict[str, Any]:
    """Meta-train one init with one seed; return its per-iteration, evaluation, measure arrays."""
    config = train_config(experiment, init, seed_index)
    evaluation_config = train_config(experiment, init, seed_index, evaluation=True)
    model = build_model(config)
    optimizer, scheduler = make_optimizer(model, config)
    iterations = experiment.iterations
    series = {
        name: np.full(iterations, math.nan)
        for name in ("objective", "batch_metric", "grad_norm", "recurrent_grad_norm")
    }
    skipped = np.zeros(iterations, dtype=bool)
    evaluations, measures, recurrent = [], [], []
    recurrent_gradients: list[float] = []
    hook = model.recurrent_matrix().register_hook(
        lambda gradient: recurrent_gradients.append(float(gradient.norm()))
    )
    evaluation_points = set(experiment.evaluation_iterations)
    measurement_points = set(experiment.measurement_iterations)

    def checkpoint(iteration: int) -> None:
        if iteration in evaluation_points:
            evaluations.append(evaluate_metric(model, scenario, evaluation_config))
        if iteration in measurement_points:
            measures.append(
                measure_jacobian_products(model, scenario, config, experiment, seed_index)
            )
            matrix = model.recurrent_matrix().detach()
            recurrent.append(
                {
                    name: float(value)
                    for name, value in spectrum_measures(
                        matrix, experiment.small_value_threshold
                    ).items()
                }
            )

    try:
        for iteration in range(iterations):
            checkpoint(iteration)
            recurrent_gradients.clear()
            outcome = training_step(
                model, scenario, config, optimizer, scheduler, iteration, DEVICE, meta_objective
            )
            series["objective"][iteration] = outcome.objective
            series["batch_metric"][iteration] = outcome.result.metrics[experiment.metric]
            series["grad_norm"][iteration] = outcome.grad_norm
            if recurrent_gradients and not outcome.skipped:
                series["recurrent_grad_norm"][iteration] = recurrent_gradients[-1]
            skipped[iteration] = outcome.skipped
            if on_iteration is not None:
                on_iteration(outcome)
        checkpoint(iterations)
    finally:
        hook.remove()
    return {
        **series,
        "skipped": skipped,
        "evaluation": np.asarray(evaluations),
        "jacobian": {name: np.stack([m[name] for m in measures]) for name in JACOBIAN_MEASURES},
        "recurrent_matrix": {
            name: np.asarray([entry[name] for entry in recurrent]) for name in JACOBIAN_MEASURES
        },
    }


def train_synapse_degeneracy(config: SynapseDegeneracyConfig) -> dict[str, Any]:
    """Train every (init, seed) and return raw arrays with the init axis first, then the seed.

    Keys: ``objective``, ``batch_metric``, ``grad_norm``, ``recurrent_grad_norm``, ``skipped``
    ``(inits, seeds, iterations)``; ``evaluation`` ``(inits, seeds, evaluation points)``;
    ``jacobian[measure]`` ``(inits, seeds, measurement points, window lengths)``;
    ``recurrent_matrix[measure]`` ``(inits, seeds, measurement points)``; ``run_seconds``.
    """
    config.validate()
    scenario = make_scenario(config.task, config.task_param_dict)
    names = config.init_names
    total = len(names) * config.seeds * config.iterations
    bar = progress_bar(total=total, description="synapse", enabled=config.show_progress)
    runs: list[list[dict[str, Any]]] = []
    seconds = np.zeros((len(names), config.seeds))
    try:
        for init_index, init in enumerate(names):
            runs.append([])
            for seed_index in range(config.seeds):
                bar.set_description(f"synapse {init} seed {seed_index}", refresh=False)

                def advance(outcome: Any) -> None:
                    bar.update(1)
                    bar.set_postfix(objective=f"{outcome.objective:.4g}", refresh=False)

                started = time.perf_counter()
                runs[-1].append(train_one_run(config, init, seed_index, scenario, advance))
                seconds[init_index, seed_index] = time.perf_counter() - started
    finally:
        bar.close()

    def stacked(key: str, group: str | None = None) -> np.ndarray:
        return np.stack(
            [
                np.stack([run[key] if group is None else run[group][key] for run in per_init])
                for per_init in runs
            ]
        )

    raw: dict[str, Any] = {
        key: stacked(key)
        for key in ("objective", "batch_metric", "grad_norm", "recurrent_grad_norm", "skipped")
    }
    raw["evaluation"] = stacked("evaluation")
    for group in ("jacobian", "recurrent_matrix"):
        raw[group] = {name: stacked(name, group) for name in JACOBIAN_MEASURES}
    raw["run_seconds"] = seconds
    return raw


def run_synapse_degeneracy(config: SynapseDegeneracyConfig, out_dir: str | Path) -> dict[str, Any]:
    """Validate, train, and write figures, results.json, TensorBoard logs and config.json.

    Returns the summary dict that is also written to ``<out_dir>/results.json``.
    """
    from learnsyn.degeneracy.synapse_report import write_synapse_outputs

    config.validate()
    config = config.resolved()
    started = time.perf_counter()
    with torch_threads(config.threads):
        raw = train_synapse_degeneracy(config)
    training_seconds = time.perf_counter() - started
    return write_synapse_outputs(
        config, raw, Path(out_dir), training_seconds=training_seconds, torch_threads=config.threads
    )


__all__ = [
    "FOLD_AXES",
    "SYNAPSE_CELLS",
    "TRAIN_METRICS",
    "SynapseDegeneracyConfig",
    "default_inits",
    "run_synapse_degeneracy",
    "train_synapse_degeneracy",
]
