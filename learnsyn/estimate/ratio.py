"""Ratios of two metrics with errors that include both sides, and the verdicts on them.

Not an estimator: the fingerprints of cached results (``scoreboard.evaluation_code``,
``tuning.baseline_code``) hash ``learnsyn/estimate`` but this module, so a change of the
verdict rule (``VERDICT_LEVEL``, ``verdict_cutoff``) recomputes verdicts from cached rows and
retunes nothing (review, session 35: it retuned every baseline of a board).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from learnsyn.estimate.snr import jackknife_stderr


def ratio_rounding(ratio: float, denominator: float, rounding: tuple[float, float]) -> float:
    """What the two sides' ``rounding`` (independent) add to the error of ``ratio``:
    ``d(num / den) = (d num - ratio d den) / den``."""
    if not any(rounding):
        return 0.0
    if not denominator:
        return math.inf
    return math.hypot(rounding[0], ratio * rounding[1]) / abs(denominator)


@dataclass
class Ratio:
    """``value`` = numerator / denominator with its standard error; ``paired`` says whether the
    error came from a group-by-group jackknife of both sides (one Monte Carlo seed, batch and
    groups) rather than from independent errors propagated."""

    value: float
    stderr: float
    paired: bool

    def to_json(self) -> dict[str, float | bool]:
        return {"ratio": self.value, "ratio_stderr": self.stderr, "paired": self.paired}


def paired_ratio(
    numerator: float,
    denominator: float,
    numerator_loo: Sequence[float] | None = None,
    denominator_loo: Sequence[float] | None = None,
    numerator_stderr: float = 0.0,
    denominator_stderr: float = 0.0,
    rounding: tuple[float, float] = (0.0, 0.0),
) -> Ratio:
    """The ratio of two metrics with an error that includes BOTH sides.

    Where each side has leave-one-group-out values (a Monte Carlo estimate) or is exact (None),
    the ratio's leave-one-out values ``num_g / den_g`` are jackknifed: with common random numbers
    the two sides' errors partly cancel, without them the jackknife still counts both; each
    side's ``rounding`` (``rounding_error``: a lifetime reported as a whole age), which no
    jackknife sees, is added as independent. Otherwise (group counts differ) the two standard
    errors, which hold their rounding already, are propagated as independent.
    """
    if denominator:
        value = numerator / denominator
    else:  # 0 / 0 says nothing (both sides below the threshold everywhere)
        value = math.copysign(math.inf, numerator) if numerator else math.nan
    lengths = {len(v) for v in (numerator_loo, denominator_loo) if v is not None}
    if not lengths and not (numerator_stderr or denominator_stderr):
        return Ratio(value, 0.0, paired=True)  # both exact
    # a side without leave-one-out values is exact only if its error is its rounding; one
    # with a Monte Carlo error but no values cannot be paired (its error would be dropped)
    hidden = any(
        loo is None and error > 1.000001 * abs(rounded) + 1e-12
        for loo, error, rounded in zip(
            (numerator_loo, denominator_loo), (numerator_stderr, denominator_stderr), rounding
        )
    )
    if not hidden and len(lengths) == 1 and (groups := lengths.pop()) >= 2:  # same groups
        num = np.full(groups, numerator) if numerator_loo is None else np.asarray(numerator_loo)
        den = (
            np.full(groups, denominator) if denominator_loo is None else np.asarray(denominator_loo)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = num / den
        rounded = ratio_rounding(value, denominator, rounding)
        if np.all(np.isfinite(ratios)) and math.isfinite(rounded):
            error = float(jackknife_stderr(torch.tensor(ratios)))
            return Ratio(value, math.hypot(error, rounded), paired=True)
    if not denominator:
        return Ratio(value, math.nan, paired=False)
    # (the absolute form: a numerator of 0 has the error num_stderr / |den|, where the relative
    # form divided by it and read NaN; review, session 36)
    error = math.hypot(numerator_stderr, value * denominator_stderr) / abs(denominator)
    return Ratio(value, error, paired=False)


#: the two-sided confidence of every "above" / "below" verdict on a ratio
VERDICT_LEVEL = 0.95


def verdict_cutoff(parts: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """How many standard errors a ratio must be from 1 for a verdict at ``VERDICT_LEVEL``, and
    the degrees of freedom behind it, for an error that adds independent parts in quadrature:
    ``parts`` = ``(standard error, degrees of freedom)``, e.g. the spread over n training seeds
    (n - 1) and a jackknife over G groups of pairs (G - 1). Student's t with the
    Welch-Satterthwaite degrees of freedom: with 3 seeds whose spread dominates, 4.30 (2
    degrees of freedom), not the 2 of a normal error, which would call 18 % of level ratios
    above or below. An error of zero (exact on both sides) needs no cut-off: 1.96."""
    from scipy.stats import norm, t

    variance = sum(error**2 for error, _ in parts)
    spread = sum(error**4 / dof for error, dof in parts if error > 0 and math.isfinite(dof))
    quantile = 0.5 + VERDICT_LEVEL / 2
    if not (variance > 0 and spread > 0):
        return float(norm.ppf(quantile)), math.inf
    dof = variance**2 / spread
    return float(t.ppf(quantile, dof)), float(dof)
