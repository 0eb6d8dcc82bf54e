"""Tune a hand-crafted synapse's parameters for one metric, scenario and N.

The search runs in a transformed space (``log`` or ``log1m`` = log(1 - x) for decays near 1):
integer parameters are enumerated (up to the state budget), continuous ones get a coarse grid
and then a Nelder-Mead refinement from the best grid points. Exactly solvable models are
evaluated in closed form (milliseconds per point); the others by Monte Carlo with one fixed seed,
so that all candidates see the same random numbers and the comparison between them is sharp.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize

from learnsyn.estimate.snr import check_metric
from learnsyn.evaluate import Evaluation, evaluate, resolve_method
from learnsyn.registry import make_model, model_class
from learnsyn.scenario import Scenario
from learnsyn.synapse import ParamSpec

#: parameters that only matter when the state is constrained (SNR is scale-free otherwise)
SCALE_PARAMS = {"amplitude"}
INTEGER_CAP = {"variables": 12, "states": 16, "depth": 10}


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_value: float
    evaluation: Evaluation
    evaluations: int
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = self.evaluation.to_json()
        out["best_params"] = self.best_params
        out["tuning"] = {"metric_value": self.best_value, "evaluations": self.evaluations}
        return out


def _forward(value: float, scale: str) -> float:
    if scale == "log":
        return math.log(value)
    if scale == "log1m":
        return math.log(1.0 - value)
    return value


def _backward(value: float, scale: str) -> float:
    if scale == "log":
        return math.exp(value)
    if scale == "log1m":
        return 1.0 - math.exp(value)
    return value


def search_space(
    model_name: str,
    scenario: Scenario,
    fixed: dict[str, Any],
    max_state: int | None = None,
) -> tuple[list[tuple[str, list[int]]], list[tuple[str, float, float, str]]]:
    """Integer grids and continuous (name, low, high, scale) ranges of the tunable parameters."""
    cls = model_class(model_name, "hand-crafted")
    spec_list: tuple[ParamSpec, ...] = cls.info.params
    integers, continuous = [], []
    for spec in spec_list:
        if spec.name in fixed or not spec.tunable:
            continue
        if spec.name in SCALE_PARAMS and not scenario.constrains_state:
            continue
        if spec.kind is int:
            high = int(min(spec.high, INTEGER_CAP.get(spec.name, spec.high)))
            values = [
                v
                for v in range(int(spec.low), high + 1)
                if fits_state_budget(model_name, {**fixed, spec.name: v}, max_state)
            ]
            if model_name == "serial":
                values = [v for v in values if v % 2 == 0]
            integers.append((spec.name, values))
        elif spec.kind is float:
            low, high, scale = spec.search or (spec.low, spec.high, "linear")
            continuous.append((spec.name, low, high, scale))
    return integers, continuous


def fits_state_budget(name: str, params: dict[str, Any], max_state: int | None) -> bool:
    """True when the model built with ``params`` has at most ``max_state`` state variables
    (its ``state_size``; finite-state models have one discrete variable). Invalid parameter
    combinations count as not fitting."""
    if max_state is None:
        return True
    try:
        return make_model(name, params).state_size <= max_state
    except ValueError:
        return False


def check_state_budget(name: str, fixed: dict[str, Any], max_state: int | None) -> None:
    """One clear line when even the smallest member of the model's family (its tunable integer
    parameters at their lowest) has more state variables than the budget ``max_state``."""
    if max_state is None:
        return
    lowest = {s.name: int(s.low) for s in model_class(name).info.params if s.kind is int}
    smallest = make_model(name, {**lowest, **fixed}).state_size
    if smallest > max_state:
        raise ValueError(
            f"model {name!r} needs {smallest} state variables, more than the state budget "
            f"m = {max_state}"
        )


def tune(
    model_name: str,
    scenario: Scenario,
    *,
    synapses: int,
    metric: str = "area",
    fixed: dict[str, Any] | None = None,
    max_state: int | None = None,
    horizon: int = 1000,
    threshold: float = 1.0,
    convention: str = "large-n",
    method: str = "auto",
    batch: int = 512,
    seed: int = 0,
    burn_in: int | None = None,
    grid_points: int = 12,
    refine_iterations: int = 60,
    progress=None,
) -> TuneResult:
    """Maximize ``metric`` over the model's tunable parameters (the ``fixed`` ones held).

    ``burn_in`` (Monte Carlo only): the stream length before the tracked event, the same for
    every candidate; None lets each candidate relax for 5 of its slowest time constants.
    """
    check_metric(metric)
    fixed = dict(fixed or {})
    model_class(model_name, "hand-crafted")  # learned cells are trained, not tuned
    probe = make_model(model_name, fixed)  # validates names and values before any work
    check_state_budget(model_name, fixed, max_state)
    method = resolve_method(probe, scenario, method)
    optimize = getattr(type(probe), "optimize", None)
    if optimize is not None:  # a family that computes its own optimum (optimal-linear)
        return optimize(
            scenario,
            synapses=synapses,
            metric=metric,
            fixed=fixed,
            max_state=max_state,
            horizon=horizon,
            threshold=threshold,
            convention=convention,
            method=method,
            batch=batch,
            seed=seed,
            burn_in=burn_in,
            refine_iterations=refine_iterations,
            progress=progress,
        )
    integers, continuous = search_space(model_name, scenario, fixed, max_state)
    trials: list[dict[str, Any]] = []
    cache: dict[tuple, tuple[float, Evaluation | None]] = {}

    def score(params: dict[str, Any]) -> tuple[float, Evaluation | None]:
        key = tuple(sorted(params.items()))
        if key in cache:
            return cache[key]
        try:
            model = make_model(model_name, {**fixed, **params})
            result = evaluate(
                model,
                scenario,
                synapses=synapses,
                horizon=horizon,
                method=method,
                convention=convention,
                threshold=threshold,
                batch=batch,
                seed=seed,
                burn_in=burn_in if method == "monte-carlo" else None,
            )
            value = result.metrics[metric]
            value = value if math.isfinite(value) else -math.inf
        except ValueError:  # e.g. an unstable parameter combination
            value, result = -math.inf, None
        cache[key] = (value, result)
        trials.append({"params": params, "value": value})
        if progress is not None:
            progress(len(trials), params, value)
        return value, result

    best_value, best_params = -math.inf, {}
    int_names = [name for name, _ in integers]
    for combo in itertools.product(*[values for _, values in integers]) or [()]:
        ints = dict(zip(int_names, combo))
        value, params = _search_continuous(ints, continuous, score, grid_points, refine_iterations)
        if value > best_value:
            best_value, best_params = value, params
    value, evaluation = score(best_params)
    if evaluation is None:
        raise ValueError(f"no valid parameters found for model {model_name!r}")
    full_params = evaluation.params
    return TuneResult(full_params, value, evaluation, len(cache), trials)


def _search_continuous(ints, continuous, score, grid_points, refine_iterations):
    if not continuous:
        return score(dict(ints))[0], dict(ints)
    names = [c[0] for c in continuous]
    lows = np.array([_forward(c[1], c[3]) for c in continuous])
    highs = np.array([_forward(c[2], c[3]) for c in continuous])
    scales = [c[3] for c in continuous]
    points_per_dim = max(3, int(round(grid_points ** (1.0 / len(continuous)) * 1.5)))
    if len(continuous) == 1:
        points_per_dim = grid_points * 2

    def to_params(z: np.ndarray) -> dict[str, Any]:
        z = np.clip(z, np.minimum(lows, highs), np.maximum(lows, highs))
        return {**ints, **{n: _backward(float(v), s) for n, v, s in zip(names, z, scales)}}

    axes = [np.linspace(lo, hi, points_per_dim) for lo, hi in zip(lows, highs)]
    grid = [np.array(p) for p in itertools.product(*axes)]
    values = [score(to_params(z))[0] for z in grid]
    order = np.argsort(values)[::-1]
    best_value, best_z = values[order[0]], grid[order[0]]
    step = np.abs(highs - lows) / (points_per_dim - 1)
    for start in (grid[i] for i in order[:2]):
        if not math.isfinite(values[order[0]]):
            break
        simplex = [start] + [start + step * e for e in np.eye(len(start))]
        result = scipy.optimize.minimize(
            lambda z: -score(to_params(z))[0],
            start,
            method="Nelder-Mead",
            options={
                "initial_simplex": np.array(simplex),
                "maxfev": refine_iterations,
                "xatol": 1e-4,
                "fatol": 1e-6,
            },
        )
        if -result.fun > best_value:
            best_value, best_z = -result.fun, result.x
    return best_value, to_params(best_z)


#: Monte Carlo tuning budget for a run's baselines: candidates share one seed (sharp
#: comparisons); ``compare`` then re-evaluates the winner on fresh random numbers
MONTE_CARLO_TUNING = {"batch": 512, "grid_points": 8, "refine_iterations": 30}


def tune_baselines_for_run(
    config, scenario: Scenario, names, cache: Path | None = None, log=print
) -> list[dict[str, Any]]:
    """Tune each named baseline for a run (its scenario, N, metric, convention, threshold,
    horizon, burn-in and state budget m), exactly where possible and with
    ``MONTE_CARLO_TUNING`` otherwise. Results are cached in ``cache`` (a run's
    ``baselines.json``), one row per baseline, so TensorBoard and ``compare`` tune once.
    A baseline that cannot be tuned there is logged and left out."""
    from learnsyn.io import atomic_write_json, read_json

    rows = read_json(cache) if cache is not None and Path(cache).exists() else []
    by_name = {row.get("name"): row for row in rows}
    wanted = []
    for name in names:
        if name not in by_name:
            try:
                by_name[name] = _tune_row(name, config, scenario, log)
            except ValueError as error:
                log(f"baseline {name} left out: {error}")
                continue
            rows.append(by_name[name])
            if cache is not None:
                atomic_write_json(cache, rows)
        wanted.append(by_name[name])
    return wanted


def _tune_row(name: str, config, scenario: Scenario, log) -> dict[str, Any]:
    method = resolve_method(make_model(name), scenario, "auto")
    log(f"tuning {name} for {config.metric} ({method}) ...")
    result = tune(
        name,
        scenario,
        synapses=config.synapses,
        metric=config.metric,
        max_state=config.state_size,
        horizon=config.horizon,
        threshold=config.threshold,
        convention=config.convention,
        seed=config.seed,
        burn_in=config.resolved_burn_in(),
        **({} if method == "exact" else MONTE_CARLO_TUNING),
    )
    ev = result.evaluation
    return {
        "name": name,
        "label": f"{name} (tuned)",
        "params": result.best_params,
        "method": ev.method,
        "metrics": ev.metrics,
        "metrics_stderr": ev.metrics_stderr,
        "ages": ev.ages,
        "snr": ev.snr,
        "snr_stderr": ev.snr_stderr,
    }
