"""The one evaluation path: any synapse, any scenario -> SNR curve, errors and metrics.

``method="auto"`` solves linear synapses and finite-state synapses exactly wherever the scenario
allows it, continuous-state synapses in the ``bounded`` scenario exactly through their Markov
chain on the grid (``learnsyn.estimate.grid``) when the grid fits, and runs the paired Monte Carlo
estimator otherwise. Scenarios with several kinds of
tracked memory (importance) report each kind's curve and their weighted sum; metrics are those
of the weighted curve.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from learnsyn.estimate.exact import (
    closed_form_applies,
    linear_signal_and_variance,
    markov_signal_and_variance,
    markov_signal_and_variance_blocks,
    visible_eigenvalues,
)
from learnsyn.estimate.grid import (
    AUTO_MAX_STATES,
    MAX_STATES,
    check_grid_size,
    grid_applies,
    grid_exact_curves,
    grid_fits,
)
from learnsyn.estimate.montecarlo import (
    default_burn_in,
    pair_groups,
    simulate_pairs,
    slowest_time_scale,
    steps_to_relax,
)
from learnsyn.estimate.snr import (
    MIN_PAIRS,
    EvalSpec,
    check_exact_bound,
    check_pairs,
    compute_metrics,
    curve_from_pairs,
    integer_ages,
    leave_one_out_metrics,
    leave_one_out_stderr,
    lifetime_censored,
    lifetime_stderr,
    snr_from_moments,
)
from learnsyn.initialization import generator_seed
from learnsyn.io import to_jsonable
from learnsyn.memory import check_memory, evaluation_bytes
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.scenario import Scenario
from learnsyn.synapse import Synapse

METHODS = ("auto", "exact", "monte-carlo")
#: a curve over more ages is reported at this many log-spaced ages (the metrics still sum over
#: every age); ``Evaluation.curve_ages_subsampled`` says so
MAX_CURVE_AGES = 2000
#: the exact closed forms stream over ages in chunks (bounded memory); beyond this horizon the
#: time (about 5 s per 1e8 ages for a one-variable synapse, more per state variable) is refused
MAX_EXACT_HORIZON = 10**9


@dataclass
class Evaluation:
    """An evaluated SNR curve; ``to_json()`` gives the documented JSON layout."""

    model: str
    params: dict[str, Any]
    task: str
    task_params: dict[str, Any]
    synapses: int
    method: str
    convention: str
    threshold: float
    horizon: int
    ages: list[float]
    snr: list[float]
    snr_stderr: list[float] | None
    metrics: dict[str, float]
    metrics_stderr: dict[str, float] | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)
    lifetime_censored: bool = False
    monte_carlo: dict[str, Any] | None = None
    seconds: float = 0.0
    grid: dict[str, Any] | None = None
    curve_ages_subsampled: bool = False

    def to_json(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (non-finite numbers as in ``learnsyn.io``)."""
        return to_jsonable(asdict(self))


def log_spaced_ages(count: int, max_age: float) -> np.ndarray:
    """``count`` distinct integer ages from 0 to ``max_age``, spaced evenly in log(age + 1)."""
    if count > max_age + 1:
        return np.arange(int(max_age) + 1, dtype=np.float64)
    points = count
    while True:
        ages = np.unique(np.round(np.geomspace(1, max_age + 1, points)) - 1)
        if len(ages) >= count:
            return ages[np.round(np.linspace(0, len(ages) - 1, count)).astype(int)]
        points += count - len(ages)


def reported_ages(horizon: int) -> np.ndarray:
    """The ages a curve over ``0..horizon-1`` is reported at: all of them, or
    ``MAX_CURVE_AGES`` log-spaced ones (0 and ``horizon - 1`` included)."""
    if horizon <= MAX_CURVE_AGES:
        return np.arange(horizon, dtype=np.float64)
    return log_spaced_ages(MAX_CURVE_AGES, horizon - 1).astype(np.float64)


class _MetricStream:
    """``compute_metrics`` and ``lifetime_censored`` of a curve given in consecutive chunks of
    ages (every age counted once, width 1)."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.area = self.log_area = 0.0
        self.lifetime = -1.0
        self.initial = float("nan")
        self.last = float("nan")

    def add(self, ages: np.ndarray, snr: np.ndarray) -> None:
        excess = np.maximum(snr - self.threshold, 0.0)
        self.area += float(np.sum(excess))
        self.log_area += float(np.sum(excess / (ages + 1.0)))
        above = np.nonzero(snr >= self.threshold)[0]
        if len(above):
            self.lifetime = float(ages[above[-1]])
        if ages[0] == 0:
            self.initial = float(snr[0])
        self.last = float(snr[-1])

    def metrics(self) -> dict[str, float]:
        return {
            "area": self.area,
            "lifetime": self.lifetime,
            "initial_snr": self.initial,
            "log_area": self.log_area,
        }


def _streamed_exact_metrics(
    model: Synapse, scenario: Scenario, horizon: int, synapses: float, convention: str,
    threshold: float, weights: np.ndarray,
) -> tuple[dict[str, float], bool]:  # fmt: skip
    """Metrics and censoring of the exact curve over ``0..horizon-1``, chunk by chunk."""
    if horizon > MAX_EXACT_HORIZON:
        raise ValueError(
            f"horizon {horizon} is not allowed for exact evaluation: it sums the curve over "
            f"every age, and beyond {MAX_EXACT_HORIZON:.0e} ages that takes too long; give a "
            "shorter horizon"
        )
    form, stats = model.linear_form(), scenario.linear_statistics()
    if form is not None and stats is not None:
        chunk = int(min(2**18, max(2**10, 2**22 // max(len(form.b), 1))))
        chunks = (
            (ages, linear_signal_and_variance(form, stats, ages))
            for ages in (
                np.arange(start, min(start + chunk, horizon), dtype=np.float64)
                for start in range(0, horizon, chunk)
            )
        )
    else:
        kinds = scenario.tracked_kinds()
        chunks = markov_signal_and_variance_blocks(
            model.markov_form(), scenario.markov_statistics(), kinds, horizon
        )
    stream = _MetricStream(threshold)
    for ages, (signals, variances) in chunks:
        snr = weights @ snr_from_moments(signals, variances, synapses, convention)
        check_exact_bound(scenario.info.name, ages, snr, synapses, convention)  # every age
        stream.add(ages, snr)
    return stream.metrics(), bool(stream.last >= threshold)


def check_evaluation_memory(
    state_size: int, scenario: Scenario, method: str, horizon: int, batch: int, groups: int
) -> None:
    """Refuse a grid (``method`` exact) or Monte Carlo evaluation whose per-age records cannot
    fit; a study asks it before any trial, for the largest state size and batch it searches."""
    kinds = len(scenario.tracked_kinds())
    if method == "exact":  # the grid keeps a few tensors per age
        check_memory(
            horizon * kinds * 800.0,
            f"exact evaluation on the grid over horizon {horizon}",
            "give a shorter --horizon",
        )
        return
    per_age = kinds * (groups * 4 * 4 + 250) + groups * 8 * 6  # records, jackknife curves
    state = evaluation_bytes(batch, state_size, scenario)  # (measured: sessions 35, 38)
    check_memory(
        horizon * per_age + state,
        f"Monte Carlo over horizon {horizon} with {batch} pairs",
        "use fewer pairs (--batch of evaluate, --eval-batch of train, compare and "
        "scoreboard) or a shorter --horizon",
    )


def exact_method_available(
    model: Synapse, scenario: Scenario, max_grid_states: int = MAX_STATES
) -> bool:
    """Linear or finite-state model with exact statistics, or a continuous-state model in
    bounded whose grid has at most ``max_grid_states`` states."""
    form, stats = model.linear_form(), scenario.linear_statistics()
    if form is not None and stats is not None:
        return closed_form_applies(form, stats)
    if model.markov_form() is not None and scenario.markov_statistics() is not None:
        return True
    return grid_fits(model, scenario, max_grid_states)


def uses_grid(model: Synapse, scenario: Scenario) -> bool:
    """True when the exact method goes through the model's chain on the bounded grid."""
    return not (
        model.linear_form() is not None and scenario.linear_statistics() is not None
    ) and grid_applies(model, scenario)


def check_compatible(model: Synapse, scenario: Scenario) -> None:
    if model.discrete_state and scenario.constrains_state:
        raise ValueError(
            f"model {model.info.name!r} has discrete states, which the {scenario.info.name!r} "
            "scenario's constraint on continuous variables does not apply to; use a "
            "continuous-state model (exponential, benna-fusi, ewc, learned)"
        )
    if model.needs_state_range and scenario.state_range() is None:
        raise ValueError(
            f"model {model.info.name!r} may have unstable modes, which only a scenario that "
            f"clips the state holds; {scenario.info.name!r} has no range (use bounded, or noisy "
            "with bound > 0; elsewhere optimal-linear is the best linear synapse)"
        )


def resolve_method(model: Synapse, scenario: Scenario, method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    check_compatible(model, scenario)
    if method == "auto":
        exact = exact_method_available(model, scenario, AUTO_MAX_STATES)
        return "exact" if exact else "monte-carlo"
    if method == "exact" and not exact_method_available(model, scenario):
        if model.linear_form() is not None and scenario.linear_statistics() is not None:
            return method  # the closed form says in one line why it cannot (unstable, ...)
        if grid_applies(model, scenario):  # the grid is too large: say so in one line
            check_grid_size(scenario.params["levels"], model.state_size)
        raise ValueError(
            f"method 'exact' is not available for model {model.info.name!r} in scenario "
            f"{scenario.info.name!r} (only linear or finite-state models in scenarios with "
            "exact statistics); use --method monte-carlo"
        )
    return method


def exact_curves(
    model: Synapse, scenario: Scenario, ages: np.ndarray, synapses: float, convention: str
) -> np.ndarray:
    """``[kinds, ages]`` exact SNR curves."""
    kinds = scenario.tracked_kinds()
    form = model.linear_form()
    stats = scenario.linear_statistics()
    if form is not None and stats is not None:
        signals, variance = linear_signal_and_variance(form, stats, ages)
    else:
        mstats = scenario.markov_statistics()
        signals, variance = markov_signal_and_variance(model.markov_form(), mstats, kinds, ages)
    return snr_from_moments(signals, variance, synapses, convention)


#: said once per process when a burn-in is shorter than the model's relaxation
SHORT_BURN_IN = (
    "a burn-in shorter than the model needs to relax (5 time constants of its slowest mode; "
    "`burn_in_needed` in the evaluation's monte_carlo record): the estimate includes "
    "the transient from the initial state and can be biased, mostly upward"
)


#: said when the model's time scale is infinite: no burn-in makes its curve a stationary one
NEVER_STATIONARY = (
    "a synapse that never becomes stationary (an infinite time scale, e.g. ewc with decay 1; "
    "`stationary: false` in the evaluation's monte_carlo record): its curve is that of a memory "
    "stored after the burn-in, and changes with the burn-in"
)


#: said when the simulated moments are not finite (review, session 33: they read as an area of
#: 0 or an infinite one)
NAN_SIMULATION = (
    "the simulation produced moments that are not finite (a state or its square overflowed "
    "float32: a very large amplitude, or a growing mode that the readout does not see): the "
    "SNR reads NaN where they are"
)


#: below this share of the weight's mean square, its variance is lost to float32 rounding in
#: the Monte Carlo moment sums (E w^2 - (E w)^2 with |E w| about 1000 x the spread). Measured in
#: session 37 against the same synapse read out less its mean (same random numbers): a share of
#: 1.2e-5 (importance GRU) moved the area by 0.02 %, one of 1.5e-7 (its linearization read out
#: around its fixed point) made it 638 +- 219 for 550.7; 1e-4 flagged the first
MIN_VARIANCE_SHARE = 1e-6
#: said when the weight's mean dwarfs its spread (review, session 36)
VARIANCE_LOST = (
    "the simulated weight's mean is about 1000 x its spread or more (a large drive or bias; "
    "`variance_share` in the evaluation's monte_carlo record): the float32 moment sums cancel "
    "in E[w^2] - E[w]^2 and the variance, so the SNR and its error, are unreliable; the exact "
    "method, or a synapse without the offset (the SNR does not depend on it), is not affected"
)


#: said when all pairs merged where the SNR they cannot see may still reach the threshold
MERGED_PAIRS = (
    "every simulated pair's two branches have met (a finite-state synapse, or a clipped one; "
    "`pairs_merged_from_age` and `snr_bound_after_merge` in the evaluation's monte_carlo "
    "record): from that age the Monte Carlo curve reads 0 with an error of 0, while the SNR "
    "these pairs cannot rule out reaches the threshold; use more pairs (batch) or the exact "
    "method"
)


def _merged_pairs(model: Synapse, scenario: Scenario, moments, weights, synapses: int) -> tuple:
    """``(age, bound)`` for a synapse whose two branches can meet for good (a finite-state one,
    or a linear one whose state is clipped to a range): the first age from which, in every
    group of every tracked kind, both branches' sums are equal (every pair merged: the curve and
    its jackknife error are exactly 0 there), and the largest SNR the pairs cannot rule out at
    95 % (fewer than 3 / n of them differ, each by at most the weights' range D:
    ``sqrt(N) 2 f (1 - f) (3 / n) D / sqrt(V)``, V the stationary weight variance where it is
    known exactly, else the pairs' own there). (None, None) when the pairs never all merge, and
    for other synapses (a continuous one's branches only meet by float32 rounding, where its
    SNR is negligible)."""
    spread, variance = _weight_range(model, scenario)
    if spread is None:
        return None, None
    equal = None
    for m in moments:
        sums = m.sums
        same = ((sums[..., 0] == sums[..., 2]) & (sums[..., 1] == sums[..., 3])).all(dim=1)
        equal = same if equal is None else equal & same
    differing = torch.nonzero(~equal.cpu()).flatten()
    age = 0 if not len(differing) else int(differing[-1]) + 1
    if age >= len(equal):
        return None, None
    bound = 0.0
    for m, weight in zip(moments, weights):
        pairs = m.count * m.sums.shape[1]
        if variance is None:
            variance_here = float(m.moments(m.sums[age].sum(0), pairs)[1])
        else:
            variance_here = variance
        if variance_here <= 0:
            return age, math.inf  # no spread at all: nothing is ruled out
        f = m.p_plus
        bound += weight * 2 * f * (1 - f) * (3 / pairs) * spread / math.sqrt(variance_here)
    return age, float(math.sqrt(synapses) * bound)


def _weight_range(model: Synapse, scenario: Scenario) -> tuple[float | None, float | None]:
    """``(D, V)``: the range of the weights a synapse's branches can differ by and, for a
    finite-state synapse in a scenario with exact statistics, the stationary weight variance;
    ``(None, None)`` where the branches cannot meet for good (no levels, no range)."""
    from learnsyn.estimate.exact import background_chain, stationary_distribution

    form = model.markov_form()
    if form is not None:
        stats = scenario.markov_statistics()
        variance = None
        if stats is not None and stats.repeat is None:
            try:
                pi = stationary_distribution(background_chain(form, stats))
                variance = float(pi @ form.weights**2 - (pi @ form.weights) ** 2)
            except ValueError:  # several closed classes: no one stationary variance
                variance = None
        return float(np.ptp(form.weights)), variance
    linear, half_width = model.linear_form(), scenario.state_range()
    if linear is not None and half_width is not None:
        return float(2 * half_width * np.abs(linear.c).sum()), None
    return None, None


def _grows_where_seen(model: Synapse) -> bool:
    """Whether a mode that does not decay shapes the SNR: for a linear synapse, one an event
    drives and the readout sees (a linearized cell can hold an eigenvalue >= 1 in a mode
    neither touches, and its curve is then stationary); True for any other model."""
    form = model.linear_form()
    if form is None:
        return True
    seen = visible_eigenvalues(form)
    return seen is None or bool(np.any(np.abs(seen) >= 1))


def _short_burn_in(model: Synapse, scenario: Scenario, burn_in: int) -> dict:
    """``{"burn_in_needed": steps}`` (and the ``SHORT_BURN_IN`` warning) when ``burn_in`` is
    shorter than ``relaxation_steps``; ``{"stationary": False}`` (and ``NEVER_STATIONARY``)
    when the time scale is infinite; else ``{}``, also where no time scale is known and where
    the scenario clips the state to a range: clipping relaxes a slow or unstable linear mode
    far faster than its time scale (a ``linear-range`` synapse with a 21.5M-step scale reads
    the same area on the 8-level grid after 1500 and 20,000 steps)."""
    if scenario.state_range() is not None:
        return {}
    scale = slowest_time_scale(model, scenario)
    if scale is not None and math.isinf(scale) and _grows_where_seen(model):
        warnings.warn(NEVER_STATIONARY, stacklevel=3)
        return {"stationary": False}
    steps = steps_to_relax(scale)  # relaxation_steps, from the scale already found
    if steps is None or burn_in >= steps:
        return {}
    warnings.warn(SHORT_BURN_IN, stacklevel=3)
    return {"burn_in_needed": math.ceil(steps)}


def evaluate(
    model: Synapse,
    scenario: Scenario,
    *,
    synapses: int,
    horizon: int = 1000,
    method: str = "auto",
    convention: str = "exact",
    threshold: float = 1.0,
    batch: int = 1024,
    seed: int = 0,
    burn_in: int | None = None,
    ages: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    groups: int = 16,
    rollout: str | None = None,
) -> Evaluation:
    """Evaluate ``model`` in ``scenario`` for ``synapses`` synapses (N) over ages 0..horizon-1
    (or the given integer ``ages``, exact method only). ``burn_in`` (default: enough for the
    model's slowest time scale) applies to Monte Carlo and to the exact grid method; the exact
    closed forms are stationary (an infinite burn-in) and do not read it.
    ``rollout``: Monte Carlo through ``learnsyn.rollout.fast_simulate_pairs`` (``fast``: the
    forward-only compiled kernels for learned cells, linear and Markov synapses, the same random
    numbers; other models go to the reference) or ``reference`` (``simulate_pairs``); None:
    ``$LEARNSYN_ROLLOUT``, else ``fast``."""
    # one line if bad; its values from here (600.0 from JSON: 600; review, session 33: a
    # float horizon passed the check and failed the Monte Carlo and streamed exact paths)
    spec = EvalSpec(synapses, horizon, threshold, convention, burn_in=burn_in)
    synapses, horizon, threshold, burn_in = (
        spec.synapses,
        spec.horizon,
        spec.threshold,
        spec.burn_in,
    )
    if isinstance(batch, float) and batch.is_integer():  # (inf and nan are not)
        batch = int(batch)  # 64.0 from JSON
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)):
        raise ValueError(
            f"batch = {batch!r} is not allowed: need an integer >= {MIN_PAIRS} (pairs)"
        )
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 2:
        raise ValueError(
            f"groups = {groups!r} is not allowed: need an integer >= 2 (the jackknife leaves one "
            "group of pairs out)"
        )
    method = resolve_method(model, scenario, method)
    if ages is not None and method != "exact":
        raise ValueError("custom ages need the exact method; Monte Carlo uses 0..horizon-1")
    if ages is not None:
        integer_ages(ages)
    kinds = scenario.tracked_kinds()
    weights = np.array([k.weight for k in kinds])
    grid = method == "exact" and uses_grid(model, scenario)
    subsampled = ages is None and horizon > MAX_CURVE_AGES
    streamed = method == "exact" and not grid and subsampled
    if (grid or method != "exact") and ages is None:
        check_evaluation_memory(model.state_size, scenario, method, horizon, batch, groups)
    if streamed:  # every age is visited in chunks, the curve reported at fewer
        ages_array = reported_ages(horizon)
    else:
        ages_array = (
            np.arange(horizon, dtype=np.float64) if ages is None else np.asarray(ages, float)
        )
    start = time.perf_counter()
    stderr = None
    metrics = metrics_stderr = None
    mc_info = None
    grid_info = None
    if streamed:
        metrics, censored = _streamed_exact_metrics(
            model, scenario, horizon, synapses, convention, threshold, weights
        )
        curves = exact_curves(model, scenario, ages_array, synapses, convention)
        combined = weights @ curves
    elif grid:
        burn = default_burn_in(model, scenario, horizon) if burn_in is None else int(burn_in)
        curves = grid_exact_curves(
            model, scenario, ages_array, synapses, convention, burn_in=burn, device=device
        )
        combined = weights @ curves
        grid_info = {"states": scenario.params["levels"] ** model.state_size, "burn_in": burn}
    elif method == "exact":
        curves = exact_curves(model, scenario, ages_array, synapses, convention)
        combined = weights @ curves
    if method == "exact":
        check_exact_bound(scenario.info.name, ages_array, combined, synapses, convention)
    else:
        check_pairs(batch)
        burn = default_burn_in(model, scenario, horizon) if burn_in is None else int(burn_in)
        generator = torch.Generator(device=device).manual_seed(generator_seed(seed))
        model = model.to(device)
        rollout = rollout or os.environ.get("LEARNSYN_ROLLOUT", "fast")
        if rollout not in ("fast", "reference"):
            raise ValueError(f"rollout {rollout!r} is not allowed: expected fast or reference")
        simulate = fast_simulate_pairs if rollout == "fast" else simulate_pairs
        moments = [
            simulate(
                model,
                scenario,
                kind,
                pairs=batch,
                burn_in=burn,
                horizon=horizon,
                generator=generator,
                groups=groups,
                device=device,
            )
            for kind in kinds
        ]
        estimate = curve_from_pairs(moments, weights, synapses, convention)
        merged, merged_bound = _merged_pairs(model, scenario, moments, weights, synapses)
        curves = estimate.per_kind.double().cpu().numpy()
        combined = estimate.snr.double().cpu().numpy()
        stderr = estimate.stderr.double().cpu().numpy().tolist()
        loo_metrics = leave_one_out_metrics(ages_array, estimate, threshold)
        metrics_stderr = leave_one_out_stderr(loo_metrics)
        delta = lifetime_stderr(ages_array, combined, stderr, threshold)
        if delta is not None:  # else the jackknife of the crossing ages stands
            metrics_stderr["lifetime"] = delta
        used_groups, per_group = pair_groups(batch, groups)
        mc_info = {
            "batch_pairs": used_groups * per_group,  # the pairs simulated (whole groups)
            **({"batch_pairs_requested": batch} if batch != used_groups * per_group else {}),
            "burn_in": burn,
            "seed": seed,
            "groups": used_groups,
            "leave_one_out_metrics": loo_metrics,
            **_short_burn_in(model, scenario, burn),
            **(
                {}
                if merged is None
                else {"pairs_merged_from_age": merged, "snr_bound_after_merge": merged_bound}
            ),
        }
        if merged_bound is not None and merged_bound >= threshold:
            warnings.warn(MERGED_PAIRS, stacklevel=2)
        # (a finite-state synapse, or one rounded to levels, can sit in one state in every
        # pair: a variance of 0 that is true, not lost)
        discrete = model.markov_form() is not None or scenario.params.get("levels")
        share = math.inf if discrete else min(m.variance_share() for m in moments)
        if share < MIN_VARIANCE_SHARE:
            mc_info["variance_share"] = share
            warnings.warn(VARIANCE_LOST, stacklevel=2)
        if np.isnan(combined).any():
            warnings.warn(NAN_SIMULATION, stacklevel=2)
    if metrics is None:
        metrics = compute_metrics(ages_array, combined, threshold)
        censored = lifetime_censored(ages_array, combined, threshold)
    if subsampled and len(ages_array) > MAX_CURVE_AGES:  # a full curve computed: report fewer
        keep = reported_ages(horizon).astype(np.int64)
        ages_array, combined, curves = ages_array[keep], np.asarray(combined)[keep], curves[:, keep]
        stderr = None if stderr is None else np.asarray(stderr)[keep].tolist()
    elapsed = time.perf_counter() - start
    return Evaluation(
        model=model.info.name,
        params=model.params_dict(),
        task=scenario.info.name,
        task_params=dict(scenario.params),
        synapses=int(synapses),
        method=method,
        convention=convention,
        threshold=float(threshold),
        horizon=int(horizon),
        ages=ages_array.tolist(),
        snr=np.asarray(combined, dtype=float).tolist(),
        snr_stderr=stderr,
        metrics=metrics,
        metrics_stderr=metrics_stderr,
        curves={k.name: c.tolist() for k, c in zip(kinds, curves)} if len(kinds) > 1 else {},
        lifetime_censored=censored,
        monte_carlo=mc_info,
        seconds=elapsed,
        grid=grid_info,
        curve_ages_subsampled=subsampled,
    )
