"""From signal and variance to an SNR curve, its errors and its metrics (science.md 1-2).

This is the one place where ``N`` (``synapses``) and the noise convention are applied: the
estimators (``exact``, ``montecarlo``) return signals and variances of one synapse, and
``snr_from_moments`` turns them into SNR. ``curve_from_pairs`` turns simulated pairs (one
``PairMoments`` per tracked kind) into the combined SNR curve with its jackknife errors; both
``learnsyn.evaluate`` and meta-training (``learnsyn.training``) call it, so the estimate a model
is trained on is the one it is evaluated with.

Conventions, for signal ``S`` and stationary weight variance ``V`` of N independent synapses:

- ``exact`` (the seed's definition, the default for reports):
  ``SNR = sqrt(N) S / sqrt(V - S^2)``, the noise being the exact std of the overlap;
- ``large-n`` (Benna-Fusi, Lahiri-Ganguli): ``SNR = sqrt(N) S / sqrt(V)``.

In the exact convention a synapse that stores its newest event perfectly has zero noise at age 0
and an infinite SNR there, so the area objective is unbounded (an exponential with decay -> 0
wins). Objectives are therefore optimised in the large-n convention by default; every report
names the convention it used.

Metrics of a curve over ages (threshold theta): ``area`` = sum max(SNR - theta, 0),
``lifetime`` = largest age with SNR >= theta (-1 when there is none), ``initial_snr`` = SNR at
age 0, ``log_area`` = sum max(SNR - theta, 0) / (age + 1). Over consecutive integer ages the sums
are exact; over sparse ages each value stands for the ages up to the next one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

CONVENTIONS = ("exact", "large-n")
METRICS = ("area", "lifetime", "initial_snr", "log_area")


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; allowed: {', '.join(CONVENTIONS)}")
    return convention


def check_metric(metric: str, allowed: tuple[str, ...] = METRICS) -> str:
    if metric not in allowed:
        raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(allowed)}")
    return metric


def is_count(value: Any, low: int) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``low``."""
    try:
        return not isinstance(value, bool) and int(value) == value and value >= low
    except (TypeError, ValueError, OverflowError):
        return False


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    try:
        return not isinstance(value, bool) and math.isfinite(value)
    except TypeError:
        return False


@dataclass(frozen=True)
class EvalSpec:
    """How a synapse's memory is measured, one spec for every estimator, search and command:
    ``synapses`` N (the SNR grows as sqrt(N)), ages ``0..horizon-1``, the SNR ``threshold``
    theta of the metrics, the noise ``convention``, the ``metric`` a search maximizes and the
    ``burn_in`` (background events before the tracked one; None: enough for each model's slowest
    time scale). Every value is checked here, once, with one line naming it and what is
    allowed. ``TrainConfig.eval_spec()`` is a run's spec."""

    synapses: int
    horizon: int = 1000
    threshold: float = 1.0
    convention: str = "large-n"
    metric: str = "area"
    burn_in: int | None = None

    def __post_init__(self) -> None:
        if not is_count(self.synapses, 1):
            raise ValueError(f"synapses = {self.synapses} is not allowed: need N >= 1")
        if not is_count(self.horizon, 1):
            raise ValueError(f"horizon = {self.horizon} is not allowed: need horizon >= 1")
        if not (is_finite(self.threshold) and self.threshold >= 0):
            raise ValueError(f"threshold = {self.threshold} is not allowed: need a number >= 0")
        check_convention(self.convention)
        check_metric(self.metric)
        if self.burn_in is not None and not is_count(self.burn_in, 0):
            raise ValueError(f"burn-in = {self.burn_in} is not allowed: need an integer >= 0")
        for name, kind in (("synapses", int), ("horizon", int), ("threshold", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))  # 600.0 from JSON: 600
        if self.burn_in is not None:
            object.__setattr__(self, "burn_in", int(self.burn_in))

    def keywords(self) -> dict[str, Any]:
        """The spec as ``evaluate``'s keywords (all but the metric: an evaluation reports every
        metric)."""
        return dict(
            synapses=self.synapses, horizon=self.horizon, threshold=self.threshold,
            convention=self.convention, burn_in=self.burn_in,
        )  # fmt: skip


def snr_from_moments(signal, variance, synapses: float, convention: str):
    """SNR from signal and stationary variance; works on numpy arrays and torch tensors.

    Where the noise is zero (in the exact convention, a synapse that stores its newest event
    perfectly) the SNR is infinite with the signal's sign (0 without a signal): it read a
    floor's number, about 1e151 exact and 1e16 by Monte Carlo. A tensor's gradient flows
    through the finite ages only. A moment that is not finite (a simulation that overflowed)
    gives a NaN SNR (review, session 33: NaN read as an infinite SNR or an area of 0, and an
    infinite variance as an SNR of 0, without a word)."""
    check_convention(convention)
    if isinstance(signal, torch.Tensor):
        noise2 = variance - signal**2 if convention == "exact" else variance + 0 * signal
        # the smallest normal number of the dtype, not a fixed 1e-30: only a variance of 0 is
        # floored (the gradient of sqrt there), where 1e-30 changed the SNR of any synapse whose
        # variance is smaller (a bounded range of 1e-15: 3.08 for 18.0; review, session 37)
        floor = torch.finfo(noise2.dtype).tiny if noise2.is_floating_point() else 1e-30
        finite = math.sqrt(synapses) * signal / noise2.clamp_min(floor).sqrt()
        infinite = torch.where(signal != 0, torch.copysign(torch.tensor(math.inf), signal), 0.0)
        broken = ~(noise2.isfinite() & signal.isfinite())
        snr = torch.where(noise2 > 0, finite, infinite.to(finite))
        return torch.where(broken, torch.nan, snr)
    signal = np.asarray(signal, dtype=np.float64)
    noise2 = np.asarray(variance - signal**2 if convention == "exact" else variance + 0 * signal)
    with np.errstate(divide="ignore", invalid="ignore"):
        finite = math.sqrt(synapses) * signal / np.sqrt(np.maximum(noise2, 1e-300))
        infinite = np.where(signal != 0, np.copysign(np.inf, signal), 0.0)
        broken = ~(np.isfinite(noise2) & np.isfinite(signal))
        return np.where(broken, np.nan, np.where(noise2 > 0, finite, infinite))


#: scenarios where ``sum_tau Cov(w, xi(t - tau))^2 <= Var w`` holds for every synapse (the past
#: events are orthonormal), so that the large-n SNR is at most ``sqrt(N)`` at every age and the
#: area above theta at most ``N / (4 theta)``
BOUND_SCENARIOS = ("ideal", "bounded", "noisy")


class BoundViolation(ValueError):
    """An exact SNR above a bound that every synapse obeys: a numerical failure, not a
    synapse."""


def check_exact_bound(scenario: str, ages, snr, synapses: float, convention: str) -> None:
    """Raise ``BoundViolation`` where an exact large-n SNR curve exceeds ``sqrt(N)`` (beyond
    round-off) in a scenario of ``BOUND_SCENARIOS``. The closed forms compute the signal and the
    variance separately, so a variance lost to cancellation shows here (a finite-state chain
    that sat in one state read 6e134 until session 24). The grid's estimator
    (``PairMoments.moments``) cannot exceed ``sqrt(N)`` by construction: its failure of session
    24 (SNRs of 28 at single ages, an area of 1968 against the bound 250) stayed below this
    line, and only the moments about the mean removed it; the area bound holds only at
    stationarity, so it is not checked."""
    if convention != "large-n" or scenario not in BOUND_SCENARIOS:
        return
    snr = np.asarray(snr, dtype=np.float64)
    limit = math.sqrt(synapses) * (1 + 1e-6)
    if len(snr) and np.nanmax(np.abs(snr)) > limit:
        worst = int(np.nanargmax(np.abs(snr)))
        raise BoundViolation(
            f"the exact SNR {snr[worst]:.6g} at age {int(np.asarray(ages)[worst])} is above "
            f"sqrt(N) = {math.sqrt(synapses):.6g}, which no synapse exceeds in {scenario!r}: "
            "a numerical failure of the exact method; evaluate with --method monte-carlo"
        )


#: the fewest synapse pairs a Monte Carlo batch may have: with 2, each leave-one-group-out curve
#: rests on a single pair, whose spread is 0, so the jackknife read an error of about 0 on an
#: estimate that was anything (exponential, N = 1000: area 1259 +- 0.04 against 218)
MIN_PAIRS = 3


def check_pairs(pairs: Any, what: str = "batch") -> None:
    """One line unless ``pairs`` is an integer >= ``MIN_PAIRS``; ``what`` names the setting
    (``--eval-batch``, ``batch B``, ...)."""
    if isinstance(pairs, bool) or not isinstance(pairs, (int, np.integer)) or pairs < MIN_PAIRS:
        named = f"{what} {pairs!r}" if what.startswith("--") else f"{what} = {pairs!r}"
        raise ValueError(
            f"{named} is not allowed: need an integer >= {MIN_PAIRS} (synapse pairs; with 2, "
            "each leave-one-out curve of the jackknife rests on one pair and shows no spread)"
        )


def integer_ages(ages, increasing: bool = True) -> np.ndarray:
    """Custom ages as an int64 array, or one line: non-negative integers (inf, nan, 0.5 and -1
    are refused: a negative age ran a chain backwards, 0.5 was read as 0), and with
    ``increasing`` distinct and in increasing order, as the metrics' age widths and the
    lifetime read them (the exact grid visits any order)."""
    values = np.asarray(ages, dtype=np.float64).reshape(-1)
    whole = np.all(np.isfinite(values)) and np.all(values == np.round(values))
    ordered = not increasing or np.all(np.diff(values) > 0)
    if len(values) == 0 or not whole or np.any(values < 0) or not ordered:
        shown = values[:6].tolist()
        need = "non-negative integers"
        if increasing:
            need = f"distinct {need} in increasing order"
        raise ValueError(
            f"ages {shown}{' ...' if len(values) > 6 else ''} are not allowed: need {need}"
        )
    return values.astype(np.int64)


def age_widths(ages):
    """How many integer ages each listed age stands for (all 1 for consecutive ages); numpy in,
    numpy out, torch in, torch out."""
    if not isinstance(ages, torch.Tensor):
        ages = np.asarray(ages, dtype=np.float64)
    widths = ages * 0 + 1
    if len(ages) > 1:
        widths[:-1] = ages[1:] - ages[:-1]
    return widths


def compute_metrics(ages, snr, threshold: float = 1.0) -> dict[str, float]:
    """All four metrics of one curve (numpy)."""
    ages = np.asarray(ages, dtype=np.float64)
    snr = np.asarray(snr, dtype=np.float64)
    excess = np.maximum(snr - threshold, 0.0)
    widths = age_widths(ages)
    above = np.nonzero(snr >= threshold)[0]
    return {
        "area": float(np.sum(excess * widths)),
        "lifetime": float(ages[above[-1]]) if len(above) else -1.0,
        "initial_snr": float(snr[0]) if ages[0] == 0 else float("nan"),
        "log_area": float(np.sum(excess * widths / (ages + 1.0))),
    }


def lifetime_censored(ages, snr, threshold: float = 1.0) -> bool:
    """True when the SNR is still above threshold at the last age (lifetime >= horizon)."""
    return bool(np.asarray(snr)[-1] >= threshold)


def smooth_objective(
    snr: torch.Tensor, ages: torch.Tensor, threshold: float, metric: str, temperature: float
) -> torch.Tensor:
    """Differentiable surrogate of a metric (to be maximized).

    ``max(x, 0)`` becomes ``temperature * softplus(x / temperature)`` so curves that are below
    threshold everywhere still get a gradient; the lifetime becomes the number of ages with
    ``sigmoid((SNR - theta) / temperature)`` (a smooth count, equal to lifetime + 1 for a
    curve that crosses the threshold once). As temperature -> 0 the area, log-time area and
    initial SNR tend to the exact metrics; the lifetime's count does only for such a curve:
    one that dips below the threshold and comes back counts the ages above it, not the last
    one (review, session 35: 137.6 against 138 on a trained run's Monte Carlo curve), and an
    age exactly at the threshold counts 1/2.
    """
    check_metric(metric, ("area", "lifetime", "log_area", "initial_snr"))
    excess = snr - threshold
    widths = age_widths(ages.to(snr.dtype))
    if metric == "initial_snr":
        return snr[0]
    if metric == "lifetime":
        return torch.sum(torch.sigmoid(excess / temperature) * widths)
    soft = temperature * torch.nn.functional.softplus(excess / temperature)
    if metric == "area":
        return torch.sum(soft * widths)
    return torch.sum(soft * widths / (ages.to(snr.dtype) + 1.0))


def jackknife_stderr(values: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """Standard error from leave-one-out estimates along dim 0 (differentiable; ``floor`` under
    the square root keeps its gradient finite where the spread is zero)."""
    groups = values.shape[0]
    finite = torch.isfinite(values).all(0)  # an infinite leave-one-out SNR (no noise left in
    # it): an infinite error there, not inf - inf = nan; masked first, so no nan reaches a grad
    values = torch.where(finite, values, torch.zeros_like(values))
    centred = values - values.mean(0, keepdim=True)
    spread = torch.sqrt((groups - 1) / groups * (centred**2).sum(0) + floor)
    return torch.where(finite, spread, torch.full_like(spread, math.inf))


@dataclass
class CurveEstimate:
    """A Monte Carlo SNR curve: ``snr`` ``[T]`` (the tracked kinds combined with their weights),
    ``per_kind`` ``[kinds, T]``, ``leave_one_out`` ``[groups, T]`` and ``stderr`` ``[T]``, all
    tensors that keep the graph of the simulation when it had one."""

    snr: torch.Tensor
    per_kind: torch.Tensor
    leave_one_out: torch.Tensor
    stderr: torch.Tensor


def curve_from_pairs(
    moments: Sequence,
    weights: Sequence[float],
    synapses: float,
    convention: str,
    stderr_floor: float = 0.0,
) -> CurveEstimate:
    """The SNR curve and its jackknife error from simulated pairs (``PairMoments``, one per
    tracked kind, combined with ``weights``)."""
    per_kind = [m.snr(synapses, convention) for m in moments]
    loo = [m.leave_one_out_snr(synapses, convention) for m in moments]
    combined = sum(w * c for w, c in zip(weights, per_kind))
    loo_combined = sum(w * c for w, c in zip(weights, loo))
    return CurveEstimate(
        snr=combined,
        per_kind=torch.stack(per_kind),
        leave_one_out=loo_combined,
        stderr=jackknife_stderr(loo_combined, stderr_floor),
    )


def crossing_age(ages, snr, threshold: float = 1.0) -> float:
    """Where the curve last falls through ``threshold``, interpolated linearly between the
    lifetime's age and the next listed age: a continuous version of ``lifetime`` (which it
    equals at a censored curve, at a curve never above threshold, and where the next value is
    exactly the threshold's). The jackknife needs it: the lifetime is a step function of the
    curve, so its leave-one-group-out values are often all the same integer (an error of 0) or
    jump by a whole age spacing; a jackknife of a non-smooth statistic is inconsistent, like
    that of a median."""
    ages = np.asarray(ages, dtype=np.float64)
    snr = np.asarray(snr, dtype=np.float64)
    above = np.nonzero(snr >= threshold)[0]
    if not len(above):
        return -1.0
    last = int(above[-1])
    if last == len(snr) - 1:
        return float(ages[last])
    fall = snr[last] - snr[last + 1]  # > 0: above, then below the threshold
    if math.isinf(snr[last]):  # from an infinite SNR the line crosses at the next age
        fraction = 1.0
    else:
        fraction = (snr[last] - threshold) / fall if fall > 0 else 0.0
    return float(ages[last] + min(max(fraction, 0.0), 1.0) * (ages[last + 1] - ages[last]))


def leave_one_out_metrics(ages, estimate: CurveEstimate, threshold: float) -> dict[str, list]:
    """Every metric of each leave-one-group-out curve: ``{metric: [groups values]}``, the
    lifetime as its continuous version (``crossing_age``), so that its jackknife error and
    a paired ratio of lifetimes measure the spread of the crossing rather than whether it
    happened to move by a whole age. Two evaluations on the same seed, batch and groups pair
    group by group, which is what ``paired_ratio`` uses; their random numbers are common where
    both draw the same numbers per step (the same burn-in, the same state size where the
    scenario draws per variable, no finite-state side), else the groups are merely
    independent."""
    loo = estimate.leave_one_out.detach().double().cpu()
    per_group = []
    for curve in loo:
        metrics = compute_metrics(ages, curve.numpy(), threshold)
        metrics["lifetime"] = crossing_age(ages, curve.numpy(), threshold)
        per_group.append(metrics)
    return {key: [m[key] for m in per_group] for key in per_group[0]}


def leave_one_out_stderr(loo_metrics: dict[str, list]) -> dict[str, float]:
    """The standard error of every metric: the jackknife of its leave-one-out values, and for
    the lifetime, reported as a whole age, its rounding too (``rounding_error``)."""
    errors = {key: float(jackknife_stderr(torch.tensor(v))) for key, v in loo_metrics.items()}
    if "lifetime" in errors:
        errors["lifetime"] = math.hypot(errors["lifetime"], rounding_error("lifetime", True))
    return errors


def lifetime_stderr(ages, snr, snr_stderr, threshold: float = 1.0) -> float | None:
    """The standard error of a Monte Carlo lifetime by the delta method: the SNR's standard
    error at the lifetime over the curve's slope there (a least-squares line over the ages
    within 10 % of the lifetime, at least 3 age steps, on either side; at most the span of the
    ages), with the rounding to a whole age (``rounding_error``). None where it does not apply
    (no crossing, a censored curve, a curve not falling there, a non-finite error). The
    jackknife of where the leave-one-group-out curves cross is unstable on a flat, noisy
    curve, whose last crossing jumps between groups (serial, 8 states, N = 1000: errors from
    0.6 to 12 ages for a spread of 2.45 over seeds, z with standard deviation 1.55); this one
    reads 1.0-8.8, z 0.94 (session 26)."""
    ages = np.asarray(ages, dtype=np.float64)
    snr = np.asarray(snr, dtype=np.float64)
    above = np.nonzero(snr >= threshold)[0]
    if not len(above) or above[-1] == len(snr) - 1:
        return None
    last = int(above[-1])
    spacing = ages[last + 1] - ages[last]
    near = np.abs(ages - ages[last]) <= max(3 * spacing, math.ceil(0.1 * ages[last]))
    slope = np.polyfit(ages[near], snr[near], 1)[0]
    error = float(snr_stderr[last]) / -slope if slope < 0 else math.inf
    if not math.isfinite(error):
        return None
    # a curve nearly flat at the threshold: its crossing can lie anywhere in the window
    error = min(error, float(ages[-1] - ages[0]))
    return math.hypot(error, rounding_error("lifetime", True))


#: the standard deviation that reporting a Monte Carlo lifetime as a whole age (the last age at
#: or above threshold) rather than where the curve crosses adds, at most (a Bernoulli's 1/2 of
#: one age: Monte Carlo curves list every age); it is independent of the pairs, so no jackknife
#: sees it, and it is as large as the crossing's own error at 16k pairs (measured: 0.17 for the
#: crossing, 0.52 for the lifetime's spread over seeds)
LIFETIME_ROUNDING = 0.5


def rounding_error(metric: str, monte_carlo: bool) -> float:
    """``LIFETIME_ROUNDING`` for a Monte Carlo lifetime, else 0 (the other metrics are smooth
    in the curve, and an exact lifetime is the true one)."""
    return LIFETIME_ROUNDING if metric == "lifetime" and monte_carlo else 0.0
