"""What a study searches: its settings (``StudySettings``) and its search space.

``study_settings`` checks every option of ``learnsyn study`` before any trial (target, task,
metric, space, fixed values, a probe config or model) and ``learned_config`` turns a learned
trial's sampled values into a validated ``TrainConfig``.

A space is an ordered ``{name: Dimension}``. The learned synapse declares its space here
(``learned_space``: cell, state size, learning rate, batch, horizon, initialization,
temperature); a hand-crafted baseline's space comes from its ``ParamSpec``s through
``learnsyn.tuning.search_space`` (integers enumerated, continuous ranges on their ``log`` /
``log1m`` scale), so a new baseline is searchable the moment it declares its parameters.

Users narrow a space with ``--space`` / ``--space-file`` entries, one grammar for both:

- ``lr=0.001:0.02`` a range (``lr=0.001:0.02:linear`` also changes the scale);
- ``cell=gru,rnn`` a subset of choices (numbers listed this way become choices too);
- ``cell=gru`` a single value, which fixes the setting (same as ``--fixed cell=gru``).

A ``log1m`` dimension (decays close to 1) is searched as ``1-NAME`` on a log scale; the trial's
user attributes hold the model's own parameter values.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from learnsyn.estimate.snr import MIN_PAIRS, EvalSpec
from learnsyn.registry import model_class, model_names
from learnsyn.synapse import ParamSpec

SCALES = ("linear", "log", "log1m")
#: the settings that define the objective; every worker of a study must agree on them
OBJECTIVE_KEYS = (
    "target",
    "task",
    "task_params",
    "synapses",
    "metric",
    "horizon",
    "threshold",
    "convention",
)


@dataclass(frozen=True)
class Dimension:
    """One searched setting: an ``int`` or ``float`` range on a scale, or ``choice`` values.

    ``allowed`` checks values a user narrows to (None: any value, checked later by the config or
    model); ``only_if = (other, values)`` searches this setting only when ``other`` took one of
    ``values`` (the chain cell has no recurrent matrix to initialize).
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    step: int = 1
    choices: tuple[Any, ...] = ()
    allowed: ParamSpec | tuple[Any, ...] | None = None
    only_if: tuple[str, tuple[Any, ...]] | None = None

    def coerce(self, text: Any) -> Any:
        """A user-given value of this setting, converted and checked (one-line errors)."""
        if isinstance(self.allowed, ParamSpec):
            return self.allowed.coerce(text, "search space")
        if isinstance(self.allowed, tuple) and str(text) not in self.allowed:
            raise ValueError(
                f"search space value {self.name}={text} is not allowed; "
                f"choices: {', '.join(map(str, self.allowed))}"
            )
        return str(text)

    def optuna_name(self) -> str:
        return f"1-{self.name}" if self.scale == "log1m" else self.name

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "choice":
            data["choices"] = list(self.choices)
        else:
            data.update(low=self.low, high=self.high, scale=self.scale)
            if self.step != 1:
                data["step"] = self.step
        if self.only_if is not None:
            data["only_if"] = {self.only_if[0]: list(self.only_if[1])}
        return data


Space = dict[str, Dimension]


def learned_space() -> Space:
    """The learned synapse's declared space (meta-training settings of ``TrainConfig``)."""
    cells = tuple(model_names("learned"))
    dims = (
        Dimension("cell", "choice", choices=cells, allowed=cells),
        Dimension("state_size", "int", 2, 8, allowed=ParamSpec("state_size", int, 2, 1, 64)),
        Dimension(
            "lr", "float", 1e-3, 3e-2, "log", allowed=ParamSpec("lr", float, 0.01, 0, 1, True)
        ),
        Dimension("batch", "int", 128, 1024, "log", allowed=ParamSpec("batch", int, 512, 2)),
        Dimension("horizon", "int", 300, 1000, "log", allowed=ParamSpec("horizon", int, 600, 1)),
        Dimension(
            "init",
            "choice",
            # auto: train's default (the best start of the degeneracy grids); a study created
            # without it keeps its own choices when it resumes (keep_stored_choices)
            choices=("auto", "default", "orthogonal", "gaussian"),
            only_if=("cell", ("rnn", "gru")),
        ),
        Dimension(
            "temperature",
            "float",
            0.05,
            1.0,
            "log",
            allowed=ParamSpec("temperature", float, 0.3, 0, None, True),
        ),
    )
    return {dim.name: dim for dim in dims}


def config_dimension(config_type: type, name: str) -> Dimension | None:
    """A study dimension for any int, float or str field of ``config_type`` (``TrainConfig``):
    a new field is searchable with ``--space NAME=LOW:HIGH`` (or ``A,B``) at once."""
    from learnsyn.config import field_kind

    if name not in {f.name for f in fields(config_type)} or name in TRAIN_FIELDS_FROM_OPTIONS:
        return None
    kind = field_kind(config_type, name)
    if kind in (int, float):
        return Dimension(
            name, kind.__name__, allowed=ParamSpec(name, kind, getattr(config_type(), name))
        )
    if kind is str:
        return Dimension(name, "choice")
    return None


def with_config_dimensions(space: Space, names, config_type: type) -> Space:
    """``space`` plus a dimension for each named config field it lacks."""
    added = {name: config_dimension(config_type, name) for name in names if name not in space}
    return {**space, **{name: dim for name, dim in added.items() if dim is not None}}


def baseline_space(model_name: str, scenario, fixed: dict[str, Any], max_state: int | None):
    """A hand-crafted model's space from its ``ParamSpec``s (``fixed`` ones left out)."""
    from learnsyn.tuning import search_space

    specs = {spec.name: spec for spec in model_class(model_name).info.params}
    integers, continuous = search_space(model_name, scenario, fixed, max_state)
    space: Space = {}
    for name, values in integers:
        step = values[1] - values[0] if len(values) > 1 else 1
        space[name] = Dimension(name, "int", values[0], values[-1], step=step, allowed=specs[name])
    for name, low, high, scale in continuous:
        space[name] = Dimension(name, "float", low, high, scale, allowed=specs[name])
    return space


def suggest(trial, space: Space, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask the trial for every dimension (in order, honouring ``only_if`` against the values
    drawn so far and the ``fixed`` ones); returns model-side values."""
    values: dict[str, Any] = {}
    for dim in space.values():
        if dim.only_if is not None:
            condition, allowed = dim.only_if
            if values.get(condition, (fixed or {}).get(condition)) not in allowed:
                continue
        if dim.kind == "choice":
            values[dim.name] = trial.suggest_categorical(dim.name, list(dim.choices))
        elif dim.kind == "int":
            log = dim.scale == "log"
            values[dim.name] = trial.suggest_int(
                dim.name, int(dim.low), int(dim.high), step=1 if log else dim.step, log=log
            )
        elif dim.scale == "log1m":
            distance = trial.suggest_float(dim.optuna_name(), 1 - dim.high, 1 - dim.low, log=True)
            values[dim.name] = 1.0 - distance
        else:
            values[dim.name] = trial.suggest_float(
                dim.name, dim.low, dim.high, log=dim.scale == "log"
            )
    return values


def keep_stored_choices(space: Space, stored: dict[str, Any] | None) -> tuple[Space, list[str]]:
    """A study keeps the choices it was created with: where a choice dimension's ``stored``
    choices (the study's saved ``space``) differ from ``space``'s but all lie among today's (a
    cell registered since the study began), the stored ones are searched, since Optuna refuses
    a categorical whose choices change within a study; other choices are refused in one line.
    Returns the space and the names kept."""
    kept, names = dict(space), []
    for name, dim in space.items():
        old = (stored or {}).get(name) or {}
        choices = tuple(old.get("choices", ()))
        if dim.kind != "choice" or old.get("kind") != "choice" or choices == dim.choices:
            continue
        if choices and set(choices) <= set(dim.choices):
            kept[name] = replace(dim, choices=choices)
            names.append(name)
        elif choices:  # Optuna would fail inside the next trial ("dynamic value space")
            raise ValueError(
                f"this study searches {name} among {', '.join(map(str, choices))} (as it was "
                f"created), not {', '.join(map(str, dim.choices))}: a study cannot change a "
                f"choice's options; search those, or start another --study-name"
            )
    return kept, names


def narrow_space(space: Space, entries: dict[str, str], what: str) -> tuple[Space, dict[str, str]]:
    """Apply ``{name: "LOW:HIGH[:SCALE]" | "A,B" | "VALUE"}``; returns the space and the values
    it fixes (single values leave the space, except a conditional choice's: ``only_if``)."""
    narrowed = dict(space)
    fixed: dict[str, str] = {}
    for name, text in entries.items():
        if name not in space:
            raise ValueError(
                f"--space {name}={text}: {name!r} is not a search dimension of {what}; "
                f"dimensions: {', '.join(space) or 'none'} (set other settings with --fixed)"
            )
        result = _narrow_one(space[name], str(text).strip())
        if isinstance(result, Dimension):
            narrowed[name] = result
        elif space[name].only_if is not None and space[name].kind == "choice":
            # one value of a setting searched only under a condition (init, for rnn and gru):
            # it stays conditional, one choice, rather than fixed for every trial (a chain
            # trial takes no init)
            narrowed[name] = replace(space[name], choices=(space[name].coerce(result),))
        else:
            del narrowed[name]
            fixed[name] = result
    return narrowed, fixed


def _narrow_one(dim: Dimension, text: str) -> Dimension | str:
    where = f"--space {dim.name}={text}"
    # a choice may hold a colon (start_from=tuned:linear-range, device=cuda:1; review,
    # session 35): only numbers take ranges
    if ":" in text and dim.kind != "choice":
        parts = [part.strip() for part in text.split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{where} is not allowed: expected LOW:HIGH or LOW:HIGH:SCALE")
        scale = parts[2] if len(parts) == 3 else dim.scale
        if scale not in SCALES or (dim.kind == "int" and scale == "log1m"):
            allowed = "linear, log" if dim.kind == "int" else ", ".join(SCALES)
            raise ValueError(f"{where}: unknown scale {scale!r}; allowed: {allowed}")
        low, high = dim.coerce(parts[0]), dim.coerce(parts[1])
        if low > high:
            raise ValueError(f"{where} is not allowed: LOW must not exceed HIGH")
        if (scale == "log" and low <= 0) or (scale == "log1m" and high >= 1):
            need = "LOW > 0" if scale == "log" else "HIGH < 1"
            raise ValueError(f"{where} is not allowed on a {scale} scale: need {need}")
        if dim.step > 1 and (low - dim.low) % dim.step:
            raise ValueError(f"{where}: LOW must lie on the step-{dim.step} grid from {dim.low}")
        if dim.step > 1 and scale == "log":  # Optuna's log-scaled integers have step 1
            raise ValueError(
                f"{where}: {dim.name} moves in steps of {dim.step}, which a log scale cannot "
                f"keep (it would draw values off the grid); use a linear one: "
                f"{dim.name}={parts[0]}:{parts[1]}"
            )
        if low == high:
            return parts[0]
        return replace(dim, low=low, high=high, scale=scale)
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise ValueError(f"{where} is empty: give a range, choices or a value")
    coerced = [dim.coerce(value) for value in values]
    if len(values) == 1:
        return values[0]
    return replace(dim, kind="choice", choices=tuple(dict.fromkeys(coerced)), scale="linear")


def read_space_file(path: str | Path) -> dict[str, str]:
    """A JSON object ``{name: entry}``; entries as on the command line, or JSON forms: a number
    or string (one value), a list (choices), ``{"low", "high", "scale"?}``, ``{"choices"}``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"--space-file {path}: no such file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--space-file {path} is not readable JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--space-file {path} must hold a JSON object {{name: entry}}")
    return {str(name): _entry_text(name, entry, path) for name, entry in data.items()}


def _listed(entry: Any) -> bool:
    return isinstance(entry, list) and bool(entry)


def _entry_text(name: str, entry: Any, path: str | Path) -> str:
    if isinstance(entry, bool):
        return str(entry).lower()
    if isinstance(entry, (str, int, float)):
        return str(entry)
    if _listed(entry):
        return ",".join(map(str, entry))
    if isinstance(entry, dict) and {"low", "high"} <= set(entry) <= {"low", "high", "scale"}:
        return f"{entry['low']}:{entry['high']}" + (
            f":{entry['scale']}" if "scale" in entry else ""
        )
    if isinstance(entry, dict) and set(entry) == {"choices"} and _listed(entry["choices"]):
        return ",".join(map(str, entry["choices"]))
    if isinstance(entry, dict) and set(entry) - {"low", "high", "scale", "choices"}:
        others = ", ".join(sorted(set(entry) - {"low", "high", "scale", "choices"}))
        raise ValueError(
            f"--space-file {path}: entry {name!r} has keys it does not know ({others}); a range "
            'takes "low", "high" and optionally "scale", a set of choices "choices" alone'
        )
    raise ValueError(
        f"--space-file {path}: entry {name!r} = {json.dumps(entry)} is not allowed; expected a "
        'value, a list of choices, {"low": L, "high": H, "scale": S} or {"choices": [...]}'
    )


#: TrainConfig fields the study sets from its own options, with the option to use
TRAIN_FIELDS_FROM_OPTIONS = {
    "task": "--task",
    "task_params": "--task-param",
    "synapses": "--synapses",
    "metric": "--metric",
    "seed": "--seed",
    "threshold": "--threshold",
    "convention": "--convention",
}


def train_field_values(given: dict[str, str]) -> dict[str, Any]:
    """``--fixed`` entries of a learned study as typed ``TrainConfig`` values (one-line errors).
    A dictionary setting takes one entry per key: ``--fixed cell_params.output_scale=1000``."""
    from learnsyn.training import TrainConfig

    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    values: dict[str, Any] = {}
    for name, text in given.items():
        field_name, _, key = name.partition(".")
        if field_name in TRAIN_FIELDS_FROM_OPTIONS:
            raise ValueError(f"--fixed {name}: set it with {TRAIN_FIELDS_FROM_OPTIONS[field_name]}")
        if types.get(field_name, "").startswith("dict"):
            if not key:
                raise ValueError(
                    f"--fixed {name}={text}: give each entry of {name} as {name}.KEY=VALUE"
                )
            values.setdefault(field_name, {})[key] = text  # read by the cell, as the CLI's
            continue
        if name not in types:
            allowed = ", ".join(n for n in types if n not in TRAIN_FIELDS_FROM_OPTIONS)
            raise ValueError(f"--fixed {name}={text}: unknown setting; allowed: {allowed}")
        values[name] = _typed(name, text, types[name])
    return values


def _typed(name: str, text: str, type_name: str) -> Any:
    if "None" in type_name and str(text).strip().lower() == "none":
        return None
    base = type_name.split("|")[0].strip()
    try:
        if base == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if base == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"--fixed {name}={text} is not allowed: expected {base}") from None
    return str(text)


@dataclass
class StudySettings:
    """What a trial optimizes and how it is scored (validated before any trial)."""

    target: str
    model: str | None
    task: str
    task_params: dict[str, Any]
    synapses: int
    metric: str
    horizon: int
    threshold: float
    convention: str
    seed: int
    space: Space
    fixed: dict[str, Any]
    eval_batch: int | None = None
    method: str = "auto"
    max_state: int | None = None
    #: the seed every learned trial is scored on (None: the study seed's stream; a study created
    #: before that stream had its own offset keeps the one it was created with)
    evaluation_seed: int | None = None
    #: how trial k's training seed and the sampler's seed before trial n derive from ``seed``:
    #: "mixed" (``SeedSequence``: studies with adjacent seeds share no trial) or "offset"
    #: (``seed + k``, ``seed + n``: a study created before session 26 keeps it)
    trial_seeding: str = "mixed"

    def eval_spec(self) -> EvalSpec:
        """How every trial is scored (each model's own burn-in)."""
        return EvalSpec(self.synapses, self.horizon, self.threshold, self.convention, self.metric)

    def trial_seed(self, number: int) -> int:
        """The training seed of trial ``number``."""
        return trial_seed(self.seed, number, self.trial_seeding)

    def sampler_seed(self, trials: int) -> int:
        """The sampler's seed before the study's trial number ``trials``."""
        return sampler_seed(self.seed, trials, self.trial_seeding)

    def scoring_seed(self) -> int:
        from learnsyn.config import stream_seed

        if self.evaluation_seed is not None:
            return self.evaluation_seed
        return stream_seed(self.seed, "study-evaluation")

    def identity(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in OBJECTIVE_KEYS}
        data.update(
            seed=self.seed,
            evaluation_seed=self.scoring_seed(),
            fixed=self.fixed,
            space={name: dim.to_json() for name, dim in self.space.items()},
            eval_batch=self.eval_batch,
            method=self.method,
            trial_seeding=self.trial_seeding,
            # since session 35 a searched burn-in trains a trial, and the study's scores it
            burn_in_scoring="study",
            code=trial_code(),
        )
        return data


def trial_code() -> str:
    """A fingerprint of the code that decides a trial's value (the engine, the scenarios and the
    baselines; not the command line, tools or the degeneracy module): a worker whose code
    differs from the study's creator is warned that the trials may not be comparable."""
    import learnsyn
    import learnsyn.baselines
    import learnsyn.tasks
    from learnsyn.io import source_fingerprint

    engine = Path(learnsyn.__file__).parent
    files = [
        path
        for path in [*engine.rglob("*.py"), *engine.rglob("*.c")]
        if path.relative_to(engine).parts[0] not in ("cli", "tools", "degeneracy")
    ]
    for package in (learnsyn.tasks, learnsyn.baselines):
        files += Path(package.__file__).parent.glob("*.py")
    return source_fingerprint(files)


def trial_seed(seed: int, number: int, seeding: str = "mixed") -> int:
    """Trial ``number``'s training seed in a study of ``seed`` (a run seed: below 2**62):
    ``config.mixed_seed``, so that studies with adjacent seeds share no trial, or ``seed +
    number`` for a study created before session 26 (``seeding="offset"``)."""
    return _derived_seed(seed, number, seeding, b"trial", 62)


def sampler_seed(seed: int, trials: int, seeding: str = "mixed") -> int:
    """The sampler's seed before trial number ``trials`` (Optuna's samplers: below 2**32)."""
    return _derived_seed(seed, trials, seeding, b"sampler", 32)


def _derived_seed(seed: int, number: int, seeding: str, tag: bytes, bits: int) -> int:
    if seeding == "offset":
        return seed + number
    from learnsyn.config import mixed_seed

    return mixed_seed(seed, number, *tag) & ((1 << bits) - 1)


def parse_target(target: str | None) -> str | None:
    """``learned`` -> None, ``baseline:NAME`` -> NAME; anything else is one clear line."""
    known = model_names("hand-crafted")
    if target is None:
        raise ValueError("--target is required to run a study: learned or baseline:NAME")
    if target == "learned":
        return None
    if target and target.startswith("baseline:") and target.split(":", 1)[1] in known:
        return target.split(":", 1)[1]
    raise ValueError(
        f"unknown target {target!r}; allowed: learned, baseline:NAME with NAME one of "
        f"{', '.join(known)}"
    )


def study_settings(args: argparse.Namespace) -> StudySettings:
    """Check every option of a study run and resolve its search space."""
    from learnsyn.config import parse_assignments
    from learnsyn.estimate.montecarlo import PairBatch
    from learnsyn.estimate.snr import METRICS, check_metric
    from learnsyn.evaluate import check_evaluation_memory, resolve_method
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario
    from learnsyn.training import TRAIN_METRICS, TrainConfig

    for option in ("task", "synapses"):
        if getattr(args, option) is None:
            raise ValueError(f"--{option} is required to run a study (or pass --summary)")
    model = parse_target(args.target)
    if model is None and (args.max_state is not None or args.method != "auto"):
        given = "--max-state" if args.max_state is not None else f"--method {args.method}"
        raise ValueError(
            f"{given} applies to baseline targets; a learned trial's size is state_size "
            "(--space state_size=LOW:HIGH or --fixed state_size=M) and it is scored by Monte "
            "Carlo"
        )
    check_metric(args.metric, TRAIN_METRICS if model is None else METRICS)
    horizon = 1000 if args.horizon is None else args.horizon  # (a placeholder when unset)
    EvalSpec(args.synapses, horizon, args.threshold, args.convention)  # one line if bad
    for option, value, low in (
        ("--eval-batch", args.eval_batch, MIN_PAIRS),
        ("--max-state", args.max_state, 1),
    ):
        if value is not None and value < low:
            raise ValueError(f"{option} {value} is not allowed: expected an integer >= {low}")
    scenario = make_scenario(args.task, parse_assignments(args.task_param, "--task-param"))
    entries = read_space_file(args.space_file) if args.space_file else {}
    entries.update(parse_assignments(args.space, "--space"))
    given_fixed = parse_assignments(args.fixed, "--fixed")
    both = sorted(set(entries) & set(given_fixed))
    if both:
        raise ValueError(f"{', '.join(both)} given both in --space and --fixed; keep one")
    common = dict(
        target=args.target,
        model=model,
        task=args.task,
        task_params=dict(scenario.params),
        synapses=args.synapses,
        metric=args.metric,
        threshold=args.threshold,
        convention=args.convention,
        seed=args.seed,
    )
    if model is None:
        from learnsyn.config import resolve_device

        space = with_config_dimensions(learned_space(), entries, TrainConfig)
        space, from_space = narrow_space(space, entries, "the learned synapse")
        if "eval_batch" in space:  # (review, session 36: small batches read high and won)
            raise ValueError(
                "eval_batch cannot be searched: every trial is scored on its Monte Carlo "
                "evaluation batch, and a small one reads the area high (64 pairs: 9.8 +- 1.3 "
                "where 4096 read 7.6 +- 0.2), so the study would pick the noisiest trial; give "
                "it one value with --eval-batch"
            )
        fixed = train_field_values({**given_fixed, **from_space})
        if args.eval_batch is not None:
            if "eval_batch" in fixed or "eval_batch" in entries:
                where = "--space" if "eval_batch" in entries else "--fixed"
                raise ValueError(f"eval_batch given both as --eval-batch and {where}; keep one")
            fixed["eval_batch"] = args.eval_batch
        space = {name: dim for name, dim in space.items() if name not in fixed}
        for name in entries:
            _check_usable(space.get(name), space, fixed, TrainConfig())
        horizon = args.horizon or fixed.get("horizon") or TrainConfig().horizon
        settings = StudySettings(horizon=horizon, space=space, fixed=fixed, **common)
        devices = space["device"].choices if "device" in space else (fixed.get("device"),)
        for device in devices:  # one absent here: refused now, not in a trial after tuning
            if device is not None:
                resolve_device(str(device))
        for cell in space["cell"].choices if "cell" in space else (None,):
            # fixed values that some cell cannot use fail here, not in a trial
            learned_config(settings, {} if cell is None else {"cell": cell})
        check_learned_space(settings)
        # the scoring evaluation (the study's horizon) fails after a trial's training otherwise
        largest = {
            name: _end(space[name], high=True) if name in space else fixed.get(name)
            for name in ("state_size", "eval_batch")
        }
        defaults = TrainConfig()
        check_evaluation_memory(
            int(largest["state_size"] or defaults.state_size),
            scenario,
            "monte-carlo",
            horizon,
            int(largest["eval_batch"] or defaults.eval_batch),
            PairBatch.groups,
        )
        return settings
    check_searchable(model, given_fixed)
    space = baseline_space(model, scenario, given_fixed, args.max_state)
    space, from_space = narrow_space(space, entries, f"baseline {model}")
    fixed = {**given_fixed, **from_space}
    check_space_budget(model, space, fixed, args.max_state)
    check_baseline_choices(model, space, fixed)
    method = resolve_method(make_model(model, fixed), scenario, args.method)
    if method == "monte-carlo":  # every trial would be pruned for it
        size = args.max_state or make_model(model, fixed).state_size
        check_evaluation_memory(
            size, scenario, method, args.horizon or 1000, args.eval_batch or 1024, PairBatch.groups
        )
    return StudySettings(
        horizon=args.horizon or 1000,
        space=space,
        fixed=fixed,
        eval_batch=args.eval_batch or 1024,
        method=args.method,
        max_state=args.max_state,
        **common,
    )


def _end(dim: Dimension, high: bool) -> Any:
    """One end of a dimension's searched values: of a range, of numeric choices by value, else
    the first or the last choice."""
    if dim.kind != "choice":
        return dim.high if high else dim.low
    numbers = [c for c in dim.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if len(numbers) == len(dim.choices):
        return max(numbers) if high else min(numbers)
    return dim.choices[-1 if high else 0]


def _surroundings(dims: dict[str, Dimension]) -> list[dict[str, Any]]:
    """Values of the other searched settings a value is tried beside: all at their low ends,
    all at their high ends, and each alone at its high end (review, session 33: the low ends
    alone are not always the least demanding: a state size of 2 puts bounded on the exact grid,
    which refuses a noise margin, and a small ratio makes a Benna-Fusi chain overshoot)."""
    low = {name: _end(dim, high=False) for name, dim in dims.items()}
    high = {name: _end(dim, high=True) for name, dim in dims.items()}
    return [low, high, *({**low, name: high[name]} for name in dims)]


def _check_usable(dim: Dimension | None, space: Space, fixed: dict[str, Any], defaults) -> None:
    """A searched setting that is searched only under a condition (``only_if``) that no
    trial meets is one line: ``--space init=...`` with only chain cells was dropped without a
    word (review, session 35)."""
    if dim is None or dim.only_if is None:
        return
    condition, allowed = dim.only_if
    if condition in space:
        values = space[condition].choices
    else:
        values = (fixed.get(condition, getattr(defaults, condition)),)
    if not any(value in allowed for value in values):
        raise ValueError(
            f"--space {dim.name}: no trial can use it: it is searched only where {condition} "
            f"is one of {', '.join(map(str, allowed))}, and {condition} is "
            f"{', '.join(map(str, values))}"
        )


def check_learned_space(settings: StudySettings) -> None:
    """Every searched value of a learned study as the trial's ``TrainConfig`` would check it
    (a range by its ends), with the fixed values, before any trial: a value that no trial could
    use is one line naming it, not a trial pruned as "settings rejected". A value is refused
    only where it fails beside the defaults and beside every surrounding of the other searched
    settings (``_surroundings``: a fold that needs a wider state than the default is fine where
    a searched state size is wide enough; a memory limit is judged at the smallest batch)."""
    noted: set[str] = set()
    for dim in settings.space.values():
        context: dict[str, Any] = {}
        if dim.only_if is not None:  # checked with a setting under which it is searched
            condition, allowed = dim.only_if
            searched = getattr(settings.space.get(condition), "choices", (None,))
            usable = [value for value in allowed if value in searched]
            if condition in settings.fixed or not usable:
                if settings.fixed.get(condition) not in allowed:
                    continue  # never searched
            else:
                context = {condition: usable[0]}
        others = {
            name: other
            for name, other in settings.space.items()
            if name != dim.name and name not in context and other.only_if is None
        }
        besides = [{**around, **context} for around in _surroundings(others)]
        for value in dim.choices if dim.kind == "choice" else (dim.low, dim.high):
            refused = _check_value(
                partial(learned_config, settings), dim.name, value, context, besides
            )
            if refused is not None and dim.name not in noted:  # some trials will be lost
                noted.add(dim.name)
                print(
                    f"note: --space {dim.name}: some trials cannot take it and are pruned as "
                    f"rejected (beside {refused[0]}: {refused[1]}); fix the setting that "
                    "decides it with --fixed to lose none",
                    file=sys.stderr,
                )


def _builds(build, values: dict) -> bool:
    try:
        build(values)
    except ValueError:
        return False
    return True


def _check_value(
    build, name: str, value: Any, alone: dict, besides: list[dict]
) -> tuple[str, str] | None:
    """A searched value that ``build`` refuses with the values ``alone`` (the fixed ones) and
    beside every one of ``besides`` (other searched settings' values): one line. Where it is
    refused beside some of them only, ``(those values, the reason)``: the trials that draw
    them are lost (review, session 36: bounded's default space with a searched noise margin
    lost 28 % of its trials to the exact grid estimator, silently), else None."""
    reasons = []
    for beside in [alone, *besides]:
        try:
            build({**beside, name: value})
        except ValueError as error:
            reasons.append((beside, str(error)))
    if len(reasons) == 1 + len(besides):
        raise ValueError(f"--space {name}: the value {value} is not allowed: {reasons[0][1]}")
    # the value's own refusals: surroundings that take this setting's default
    own = [(beside, why) for beside, why in reasons if _builds(build, beside)]
    if not own:
        return None
    beside, why = own[0]
    shown = ", ".join(f"{key}={val}" for key, val in beside.items()) or "the defaults"
    return shown, why


def check_searchable(model: str, fixed: dict[str, Any]) -> None:
    """A family that computes its own optimum (``optimize``: optimal-linear, linear-range) has
    parameters no study dimension holds (its A, b, c lists): unless they are fixed, every trial
    was the default synapse (an exponential) at some m, 6.8 where tune finds 22.9 (review,
    session 34)."""
    from learnsyn.cells import LINEAR_KEYS

    unsearched = [name for name in LINEAR_KEYS if name not in fixed]
    if getattr(model_class(model), "optimize", None) is not None and unsearched:
        raise ValueError(
            f"baseline {model} computes its own optimum ({', '.join(unsearched)} are not "
            f"study dimensions); use `learnsyn tune --model {model}` (--max-state m), or fix "
            "them with --fixed"
        )


def check_baseline_choices(model: str, space: Space, fixed: dict[str, Any]) -> None:
    """Every listed choice of a baseline study (``--space NAME=A,B``) as its trial would build
    the model, before any trial: a choice that no trial can use is one line naming it, not
    every trial that draws it pruned (review, session 33: ``states=3,5`` of ``serial``). As for
    learned studies, a value is refused only where it fails with the fixed values alone and
    beside every one of the other searched settings' surroundings (``_surroundings``)."""
    from learnsyn.registry import make_model

    for dim in space.values():
        if dim.kind != "choice":  # ranges: their steps are checked as they are narrowed
            continue
        others = {n: d for n, d in space.items() if n != dim.name}
        besides = [{**fixed, **around} for around in _surroundings(others)]
        for value in dim.choices:
            _check_value(partial(make_model, model), dim.name, value, fixed, besides)


def check_space_budget(
    model: str, space: Space, fixed: dict[str, Any], max_state: int | None
) -> None:
    """The fixed values and every searched integer (a range by its top) within ``--max-state``
    (the budget caps the space a study enumerates, not the values a user narrows it to). A
    combination that makes no model is left to the search (its trials say so)."""
    from learnsyn.tuning import model_state_size

    if max_state is None:
        return
    lowest = {n: d.low for n, d in space.items() if d.kind == "int"}
    candidates: list[tuple[str | None, Any]] = [(None, None)]
    for dim in space.values():
        values = (dim.high,) if dim.kind == "int" else dim.choices
        candidates += [(dim.name, v) for v in values if isinstance(v, int)]
    for name, value in candidates:
        params = {**lowest, **fixed, **({} if name is None else {name: value})}
        size = model_state_size(model, params)  # None: no model, left to the search
        if size is not None and size > max_state:
            where = "the fixed values" if name is None else f"--space {name}={value}"
            raise ValueError(
                f"{where}: model {model!r} has {size} state variables there, more than "
                f"--max-state {max_state}"
            )


def learned_config(settings: StudySettings, params: dict[str, Any], seed: int | None = None):
    """The validated ``TrainConfig`` of a learned trial: fixed values, then sampled ones."""
    from learnsyn.training import TrainConfig

    config = TrainConfig(
        task=settings.task,
        task_params=dict(settings.task_params),
        synapses=settings.synapses,
        metric=settings.metric,
        threshold=settings.threshold,
        convention=settings.convention,
        seed=settings.seed if seed is None else seed,
        **{**settings.fixed, **params},
    )
    config.validate()
    return config
