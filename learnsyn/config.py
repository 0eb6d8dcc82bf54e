"""One home for every setting: ``TrainConfig``, the seed streams, devices, ``KEY=VALUE`` input.

``TrainConfig`` is the single declaration of a meta-training run's settings. Each field carries
its command-line help in its metadata; ``learnsyn.cli.options`` generates the ``learnsyn train``
options from the fields and ``learnsyn.study.space`` accepts any numeric field as a study
dimension, so a new field is an option and a searchable setting with no other file touched.
Derived values (the burn-in, the final temperature, the scenario's resolved parameters) are
resolved here, once. How a run's synapses are evaluated (N, horizon, threshold, convention,
metric, burn-in) is ``TrainConfig.eval_spec()``: a ``learnsyn.estimate.snr.EvalSpec``, the one
spec that ``evaluate``, ``tune``, the optimum searches, studies and the scoreboard check and
pass on.

**Seed streams.** Every random number of a run comes from the run's ``seed`` through
``stream_seed(seed, stream)`` (a fixed offset per purpose, so that the streams never overlap
for seeds below 10,000) or, per training iteration, ``iteration_generator(seed, iteration)``
(a ``SeedSequence`` of both): the training batches, the validation batch (a reserved iteration
number), the final evaluation, the comparison's evaluation (the learned model and the
Monte Carlo baselines on the same numbers), a study's shared evaluation and the scoreboard's
selection of the strongest linearization (numbers independent of those it is compared on).
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from learnsyn.estimate.snr import MIN_PAIRS, EvalSpec, is_count

TRAIN_METRICS = ("area", "lifetime", "log_area")
ESTIMATORS = ("auto", "monte-carlo", "grid")
#: settings of the Monte Carlo objective alone; the exact grid estimator refuses other values
MONTE_CARLO_ONLY = ("objective", "noise_margin", "late_variance")
#: settings of the Monte Carlo batch that the exact grid estimator has no use for: accepted
#: (studies search them beside state sizes off the grid), and a run says it ignores them
GRID_UNUSED = ("batch", "validation_batch", "eval_batch", "gradient_burn_in", "rollout")
OBJECTIVES = ("lcb", "cross-fit")
ROLLOUTS = ("fast", "reference")

#: offsets of the evaluation seed streams from a run's seed
SEED_STREAMS = {
    "final-evaluation": 10_000,
    "study-evaluation": 50_000,
    "compare": 20_000,
    "stationarity": 30_000,
    "selection": 40_000,
    "retune": 60_000,
    "tune-evaluation": 70_000,
}
#: the iteration number whose batch is the validation batch: never a training iteration
VALIDATION_ITERATION = 10**9


def stream_seed(seed: int, stream: str) -> int:
    """The seed of one named random-number stream of a run."""
    return int(seed) + SEED_STREAMS[stream]


def mixed_seed(*parts: int) -> int:
    """A 64-bit number mixed from integer ``parts`` by NumPy's ``SeedSequence``: nearby parts
    give independent numbers, where a sum such as ``seed + k`` makes (seed, k + 1) and
    (seed + 1, k) the same."""
    state = np.random.SeedSequence([int(part) for part in parts]).generate_state(1, np.uint64)
    return int(state[0])


def iteration_generator(seed: int, iteration: int, device) -> torch.Generator:
    """The generator of one training iteration: a pure function of (seed, iteration), so a
    resumed run replays exactly the numbers an uninterrupted one draws."""
    mixed = mixed_seed(seed, iteration)
    return torch.Generator(device=device).manual_seed(mixed & ((1 << 63) - 1))


def check_device(name: str) -> None:
    """One clear line unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether a GPU
    is present is ``resolve_device``'s question)."""
    if name not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", str(name)):
        raise ValueError(f"device {name!r} is not allowed: expected auto, cpu, cuda or cuda:N")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; one clear line otherwise."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} is not available here (no CUDA): use auto or cpu")
    return torch.device(name)


def parse_assignments(items: list[str] | None, what: str) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; malformed items raise one clear line."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"{what} {item!r} is not allowed: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def field_kind(config_type: type, name: str) -> type:
    """The base type of a config field: int, float, str or dict (``X | None`` -> X)."""
    hint = typing.get_type_hints(config_type)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args and typing.get_origin(hint) is not dict else hint
    return dict if typing.get_origin(base) is dict or base is dict else base


def _as_text(value: float) -> str:
    """The string that strict JSON wrote for a non-finite number."""
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def option_name(field) -> str:
    """The command-line option of a config field."""
    return field.metadata.get("option") or "--" + field.name.replace("_", "-")


def config_fields(config_type: type) -> list:
    """The fields that are command-line options (all but those marked ``cli=False``)."""
    return [f for f in fields(config_type) if f.metadata.get("cli", True)]


def setting(default: Any = MISSING, help: str = "", **meta: Any) -> Any:
    """A ``TrainConfig`` field with its command-line metadata (``help``; ``required``: the
    ``train`` option must be given; ``option``: another option name; ``cli=False``: no
    option)."""
    metadata = {"help": help, **meta}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


#: what ``init=auto`` adds to the tanh RNN's and the GRU's cell parameters where the scenario
#: constrains the state to [-bound, bound] (``bounded``, ``noisy``): a learnable saturation
#: ``s tanh(y / s)`` starting at s = 4, so that the cell can be linear over the whole range
#: (a plain tanh cannot: tests/test_cell_saturation.py), a state that fills the range, and for
#: the GRU update gates open at 1/2, so that an event moves the state by about a grid level
CONSTRAINED_CELL_PARAMS = {"state_std": 0.8, "output_scale": 4.0}
CONSTRAINED_GRU_PARAMS = {"update_gate": 0.5}


def resolve_auto_init(
    init: str, cell: str, scenario, cell_params: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """``auto``: the rotation init for the tanh RNN and the GRU (measured: it reaches the
    optimal linear synapse in the ideal scenario, docs/learned-vs-linear.md), sized to the range
    where the scenario constrains the state (``CONSTRAINED_CELL_PARAMS``; given cell parameters
    win); the cell's default for the chain. Any other name unchanged. Returns ``(init,
    cell_params)``."""
    cell_params = dict(cell_params or {})
    if init != "auto":
        return init, cell_params
    if cell not in ("gru", "rnn"):
        return "default", cell_params
    return "rotation", {**constrained_sizing(cell, scenario), **cell_params}


def constrained_sizing(cell: str, scenario) -> dict[str, Any]:
    """The cell parameters that size a tanh RNN or GRU to the range where ``scenario``
    constrains the state (``CONSTRAINED_CELL_PARAMS``, and ``CONSTRAINED_GRU_PARAMS`` for the
    GRU); none elsewhere or for other cells."""
    if cell not in ("gru", "rnn") or not scenario.constrains_state:
        return {}
    sized = dict(CONSTRAINED_CELL_PARAMS)
    if cell == "gru":
        sized.update(CONSTRAINED_GRU_PARAMS)
    return sized


def grid_states(task: str, task_params: dict, state_size: int) -> int | None:
    """The number of states of the level grid the exact estimator would train on (``levels^m``),
    or None where the scenario keeps no grid."""
    from learnsyn.estimate.grid import GRID_SCENARIO, grid_size
    from learnsyn.scenario import make_scenario

    if task != GRID_SCENARIO:
        return None
    return grid_size(make_scenario(task, task_params).params["levels"], state_size)[0]


def resolve_estimator(estimator: str, task: str, task_params: dict, state_size: int) -> str:
    """``auto``: the exact grid where the scenario keeps the state on a grid that fits
    (``bounded`` with levels^m <= ``AUTO_MAX_STATES``: exact gradients, no Monte Carlo noise),
    Monte Carlo elsewhere; any other name unchanged."""
    if estimator != "auto":
        return estimator
    from learnsyn.estimate.grid import AUTO_MAX_STATES

    states = grid_states(task, task_params, state_size)
    return "grid" if states is not None and states <= AUTO_MAX_STATES else "monte-carlo"


def default_train_burn_in(task: str, task_params: dict[str, Any] | None, horizon: int) -> int:
    """Background steps before the tracked event when a run leaves ``burn_in`` unset: 2.5 x the
    horizon times the scenario's ``burn_in_factor``."""
    from learnsyn.scenario import make_scenario

    return int(2.5 * horizon * make_scenario(task, task_params).burn_in_factor)


@dataclass
class TrainConfig:
    """Everything that defines a meta-training run (saved, resolved, as ``config.json``)."""

    task: str = setting("ideal", "scenario name (see `learnsyn list`)", required=True)
    task_params: dict[str, Any] = setting(
        {}, "scenario parameter", option="--task-param", metavar="KEY=VALUE"
    )
    synapses: int = setting(
        1000, "N, synapses of the memory system (scales SNR by sqrt(N))", required=True
    )
    state_size: int = setting(2, "state variables m of the learned synapse", required=True)
    cell: str = setting("gru", "learned cell: rnn | gru | chain | mlp", required=True)
    metric: str = setting("area", "meta-objective: area | lifetime | log_area")
    iterations: int = setting(300, "meta-training iterations (Adam updates)")
    batch: int = setting(512, "Monte Carlo batch B: synapse pairs per iteration (not N)")
    horizon: int = setting(600, "tracked window T (ages 0..T-1)")
    burn_in: int | None = setting(
        None, "background steps before the tracked event (2.5 x T; 10 x T in importance)"
    )
    lr: float | None = setting(
        None,
        "Adam learning rate (cosine schedule; default 0.0005 for rnn, 0.005 otherwise; on the "
        "exact grid estimator 0.01 for rnn, 0.02 otherwise)",
    )
    lr_final_fraction: float = setting(
        0.05,
        "final learning rate as a fraction of --lr (cosine annealing over --iterations: the "
        "last update's is a little above it, e.g. 0.066 at 12 iterations, 0.05 at 300)",
    )
    grad_clip: float = setting(1.0, "gradient norm clip")
    threshold: float = setting(1.0, "SNR threshold theta of the metric")
    convention: str = setting("large-n", "noise convention: large-n | exact")
    temperature: float = setting(0.3, "surrogate smoothness at the start")
    temperature_final: float | None = setting(None, "surrogate smoothness at the end (0.1 x)")
    objective: str = setting(
        "lcb",
        "surrogate's gradient: lcb (on SNR - margin x stderr) | cross-fit (weights from one "
        "half of the pair groups, derivative from the other)",
    )
    noise_margin: float = setting(1.0, "objective on SNR - margin x stderr (lower conf. bound)")
    gradient_burn_in: int | None = setting(
        None,
        "last burn-in steps inside the differentiated window (default: half the burn-in; more "
        "than the burn-in means all of it; 0: "
        "none, the gradient then ignores how the state the tracked event finds depends on the "
        "parameters, a large bias)",
    )
    late_variance: float = setting(
        0.0,
        "take the gradient of every age's weight variance from the variance pooled over this "
        "last fraction of the window; the SNR itself keeps each age's own variance (0: off)",
    )
    init: str = setting(
        "auto",
        "recurrent init: auto (rotation for rnn/gru, sized to the range in bounded/noisy; "
        "default for the chain) | default | chrono | rotation | a degeneracy init name",
    )
    start_from: str | None = setting(
        None,
        "linear synapse to start the rnn, gru or mlp cell at, in place of its init (kept in the "
        "run as start-synapse.json): a JSON file (A, b, c, optional drive: a refined-linear.json, "
        "learnsyn tune --json) or tuned:MODEL (linear-range or optimal-linear, tuned for this "
        "run's setting first and cached in its baselines.json)",
        metavar="FILE|tuned:MODEL",
    )
    cell_params: dict[str, Any] = setting(
        {},
        "a cell's own parameter (learnsyn list shows each cell's: e.g. output_scale, state_std, "
        "shortest for the rnn and gru; width for the mlp; amplitude, ratio, first_conductance "
        "for the chain)",
        option="--cell-param",
        metavar="KEY=VALUE",
    )
    fold_axis: str = setting("rows", "axis of Fold k inits: rows | columns")
    timescale: float | None = setting(
        None, "longest initial time scale (the horizon, or N / (4 theta^2) when shorter)"
    )
    seed: int = setting(0, "seed of every random number of the run")
    device: str = setting("auto", "auto | cpu | cuda[:N]")
    checkpoint_every: int = setting(50, "iterations between checkpoints")
    validate_every: int = setting(25, "iterations between validation scores (model selection)")
    validation_batch: int | None = setting(
        None,
        "pairs of the fixed validation batch of model selection (default: --batch); a larger one "
        "picks among close candidates with less luck",
    )
    rollout: str = setting("fast", "fast (compiled kernels where they apply) | reference")
    estimator: str = setting(
        "auto",
        "SNR estimate of the objective: auto (grid where it applies, else monte-carlo) | "
        "monte-carlo | grid (bounded only: the exact chain on the level grid, exact gradients, "
        "no Monte Carlo noise)",
    )
    log_every: int = setting(10, "iterations between TensorBoard scalars")
    figure_every: int = setting(
        100,
        "iterations between TensorBoard SNR figures (0: none, and the figure's baselines are "
        "not tuned)",
    )
    eval_batch: int = setting(4096, "pairs of the final Monte Carlo evaluation")

    def __post_init__(self) -> None:
        # one spelling of the init however the config is made (the options, config.json, a
        # replace): the cell reads any case, and a run made with FOLD0 refused a resume with
        # fold0 (review, session 36)
        if isinstance(self.init, str):
            self.init = self.init.strip().lower()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(known)}")
        # strict JSON reads "inf", "-inf" and "nan" back as numbers (io.read_json): a text
        # setting that is one of them (a --start-from file named inf) is text again (review,
        # session 35: a resume crashed on it)
        texts = {f.name for f in fields(cls) if str(f.type).startswith("str")}
        data = {
            key: _as_text(value) if key in texts and isinstance(value, float) else value
            for key, value in data.items()
        }
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_burn_in(self, horizon: int | None = None) -> int:
        """The burn-in: the given one, else ``default_train_burn_in`` at ``horizon`` (None: the
        run's)."""
        if self.burn_in is not None:
            return int(self.burn_in)
        horizon = self.horizon if horizon is None else horizon
        return default_train_burn_in(self.task, self.task_params, horizon)

    def seed_of(self, stream: str) -> int:
        """The seed of one of the run's named random-number streams (``stream_seed``), for
        callers below this module (``tuning``) that cannot import it."""
        return stream_seed(self.seed, stream)

    def eval_spec(self, horizon: int | None = None) -> EvalSpec:
        """The run's evaluation spec: its N, threshold, convention and metric, over ``horizon``
        ages (None: the run's) after the run's burn-in at that horizon."""
        horizon = self.horizon if horizon is None else horizon
        # the given values are checked as given (a burn-in of 2.5 is refused, not rounded)
        spec = EvalSpec(
            self.synapses, horizon, self.threshold, self.convention, self.metric, self.burn_in
        )
        return replace(spec, burn_in=self.resolved_burn_in(spec.horizon))

    def grid_unused(self) -> list[str]:
        """The options given away from their defaults that a grid run ignores (``GRID_UNUSED``),
        as ``--option value``; empty for a Monte Carlo run."""
        return self._given(GRID_UNUSED) if self.resolved_estimator() == "grid" else []

    def _given(self, names) -> list[str]:
        """``--option value`` of each setting in ``names`` that differs from its default."""
        return [
            f"{option_name(f)} {getattr(self, f.name)}"
            for f in fields(self)
            if f.name in names and getattr(self, f.name) != f.default
        ]

    def resolved_lr(self) -> float:
        """The learning rate: 0.005, or 0.0005 for the tanh RNN, whose recurrent matrix holds
        its eigenvalues directly (one Adam step of 0.005 moves a time scale of 250 steps by
        half; measured in the ideal scenario: 122 +- 9 at 0.005, 230.9 +- 2.6 at 0.0005). On
        the exact grid, whose gradient has no noise: 0.02 (GRU) and 0.01 (tanh RNN), measured
        in bounded (the GRU reaches 169 at 0.01 and 176 at 0.02, docs/learned-vs-linear.md)."""
        if self.lr is not None:
            return float(self.lr)
        if self.resolved_estimator() == "grid":
            return 0.01 if self.cell == "rnn" else 0.02
        return 0.0005 if self.cell == "rnn" else 0.005

    def resolved_estimator(self) -> str:
        """``monte-carlo`` or ``grid`` (``auto`` resolved: ``resolve_estimator``)."""
        return resolve_estimator(self.estimator, self.task, self.task_params, self.state_size)

    def resolved_gradient_burn_in(self) -> int:
        """Burn-in steps inside the differentiated window: half the burn-in unless set (the
        first half, without gradient, brings the state near stationarity; differentiating
        from the initial state itself would let training tune the transient from it)."""
        if self.gradient_burn_in is None:
            return self.resolved_burn_in() // 2
        return min(int(self.gradient_burn_in), self.resolved_burn_in())

    def resolved_timescale(self) -> float:
        """The longest initial time scale: the horizon, or ``N / (4 theta^2)`` when shorter
        (sum_t SNR(t)^2 <= N, so an SNR above theta cannot last much longer than N / theta^2;
        the flat curve that maximizes the area holds 2 theta for N / (4 theta^2) ages)."""
        if self.timescale is not None:
            return float(self.timescale)
        if self.threshold > 0:
            return float(min(self.horizon, self.synapses / (4.0 * self.threshold**2)))
        return float(self.horizon)

    def resolved_validation_batch(self) -> int:
        """Pairs of the validation batch: ``validation_batch``, else the training batch."""
        return int(self.batch if self.validation_batch is None else self.validation_batch)

    def derived(self) -> dict[str, Any]:
        """The settings that default to a value derived from others, as the run uses them
        (``burn_in`` None resolved, ...): a checkpoint records them, a resume compares them."""
        return {
            "burn_in": self.resolved_burn_in(),
            "gradient_burn_in": self.resolved_gradient_burn_in(),
            "timescale": self.resolved_timescale(),
            "validation_batch": self.resolved_validation_batch(),
        }

    def resolved_temperature_final(self) -> float:
        """The final surrogate temperature: 0.1 x the starting one unless set."""
        if self.temperature_final is None:
            return 0.1 * self.temperature
        return float(self.temperature_final)

    def validate(self) -> TrainConfig:
        """Check every value before any work (one clear line per problem) and resolve the
        derived ones in place: the scenario's full parameters and the final temperature."""
        from learnsyn.cells import MAX_TIMESCALE, make_cell
        from learnsyn.estimate.snr import check_metric
        from learnsyn.initialization import check_seed
        from learnsyn.memory import check_training_memory
        from learnsyn.registry import model_names
        from learnsyn.scenario import make_scenario

        cells = model_names("learned")
        if self.cell not in cells:
            raise ValueError(f"unknown cell {self.cell!r}; allowed: {', '.join(cells)}")
        check_metric(self.metric, TRAIN_METRICS)
        self.eval_spec()  # N, horizon, threshold, convention, burn-in: checked where they live
        checks = [
            ("state size m", self.state_size, 1),
            ("batch B", self.batch, MIN_PAIRS),
            ("iterations", self.iterations, 1),
            ("checkpoint-every", self.checkpoint_every, 1),
            ("eval batch", self.eval_batch, MIN_PAIRS),
            ("validate-every", self.validate_every, 1),
            # as given, not int()-ed: 5000.7 was accepted and run as 5000 (review, session 32)
            (
                "validation batch",
                self.batch if self.validation_batch is None else self.validation_batch,
                MIN_PAIRS,
            ),
            ("log-every", self.log_every, 1),
            ("figure-every", self.figure_every, 0),
        ]
        for name, value, low in checks:
            if not is_count(value, low):
                raise ValueError(f"{name} = {value} is not allowed: need an integer >= {low}")
        check_seed(self.seed)
        self.temperature_final = self.resolved_temperature_final()
        self.lr = self.resolved_lr()
        for name, value in (
            ("learning rate", self.lr),
            ("temperature", self.temperature),
            ("final temperature", self.temperature_final),
            ("grad clip", self.grad_clip),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} = {value} is not allowed: need a finite number > 0")
        if not (math.isfinite(self.lr_final_fraction) and 0 < self.lr_final_fraction <= 1):
            raise ValueError(
                f"final learning-rate fraction = {self.lr_final_fraction} is not allowed: "
                "need a fraction in (0, 1] (the cosine schedule ends at lr x this)"
            )
        if self.timescale is not None and not (
            math.isfinite(self.timescale) and 0 < self.timescale <= MAX_TIMESCALE
        ):  # (the cell's own limit: above it the error named a cell parameter; session 36)
            raise ValueError(
                f"timescale = {self.timescale:g} is not allowed: need a number in "
                f"(0, {MAX_TIMESCALE:g}]"
            )
        if self.gradient_burn_in is not None and not is_count(self.gradient_burn_in, 0):
            raise ValueError(
                f"gradient burn-in = {self.gradient_burn_in} is not allowed: need an integer >= 0"
            )
        check_device(self.device)
        if self.rollout not in ROLLOUTS:
            raise ValueError(f"rollout {self.rollout!r} is not allowed: expected fast or reference")
        if not (math.isfinite(self.late_variance) and 0 <= self.late_variance <= 1):
            raise ValueError(
                f"late variance = {self.late_variance} is not allowed: need a fraction in [0, 1]"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"objective {self.objective!r} is not allowed: expected {' or '.join(OBJECTIVES)}"
            )
        if not (math.isfinite(self.noise_margin) and self.noise_margin >= 0):
            raise ValueError(f"noise margin = {self.noise_margin} is not allowed: need >= 0")
        scenario = make_scenario(self.task, self.task_params)
        self.task_params = dict(scenario.params)
        self.init, self.cell_params = resolve_auto_init(
            self.init, self.cell, scenario, self.cell_params
        )
        if self.estimator not in ESTIMATORS:
            raise ValueError(
                f"estimator {self.estimator!r} is not allowed: expected {' or '.join(ESTIMATORS)}"
            )
        self.estimator = self.resolved_estimator()
        if self.estimator == "grid":
            from learnsyn.estimate.grid import AUTO_MAX_STATES, GRID_SCENARIO

            states = grid_states(self.task, self.task_params, self.state_size)
            if states is None:
                raise ValueError(
                    f"estimator 'grid' needs the {GRID_SCENARIO} scenario (task {self.task!r} "
                    "does not keep the state on a grid)"
                )
            if states > AUTO_MAX_STATES:
                raise ValueError(
                    f"estimator 'grid': levels^m = {self.task_params['levels']}^"
                    f"{self.state_size} = {states} grid states, more than {AUTO_MAX_STATES}; "
                    "use fewer levels, a smaller m or --estimator monte-carlo"
                )
            # the exact curve has no noise: these shape only the Monte Carlo objective, and the
            # grid run ignored them while config.json recorded them (review, session 33)
            ignored = self._given(MONTE_CARLO_ONLY)
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)} is not allowed with the exact grid estimator (it has "
                    "no Monte Carlo noise to guard against): leave the default or pass "
                    "--estimator monte-carlo"
                )
        check_training_memory(self)
        cell = make_cell(
            self.cell,
            self.state_size,
            init=self.init,
            fold_axis=self.fold_axis,
            cell_params=self.cell_params,
        )
        # as the cell reads them: `--cell-param output_scale=4` is stored as the number 4.0
        self.cell_params = {k: cell.params.get(k, v) for k, v in self.cell_params.items()}
        if self.start_from is not None:
            from learnsyn.warm_start import check_start

            check_start(self)
        return self
