"""Statistics over seeds: means, standard errors and paired comparisons for judging claims.

A claim is never judged from one run. Conditions in the degeneracy experiments share their seeds
(same teacher, data and base draws for seed index s), so two conditions are compared through the
per-seed *paired* difference, and a difference counts only when it exceeds the two-sided 95 %
Student t cutoff for its seeds (``significance_cutoff``: n - 1 degrees of freedom) in standard
errors of that paired difference: 2.04 at 32 seeds, 2.13 at 16, 4.30 at 3, 12.7 at 2. Until
session 30 the cutoff was 2 s.e. whatever the seeds, which with 3 seeds called a difference of
nothing significant 18 % of the time (a review's simulation; 5 % now).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the two-sided level of every paired comparison
SIGNIFICANCE_LEVEL = 0.05


def significance_cutoff(seeds: int) -> float:
    """How many standard errors of a paired difference over ``seeds`` seeds make it significant:
    Student's t at ``1 - SIGNIFICANCE_LEVEL / 2`` with ``seeds - 1`` degrees of freedom (inf for
    fewer than 2 seeds: nothing is significant)."""
    if seeds < 2:
        return math.inf
    from scipy.stats import t

    return float(t.ppf(1 - SIGNIFICANCE_LEVEL / 2, seeds - 1))


#: the power of the pilot's planning figure: the difference found significant 80 % of the time
PLANNED_POWER = 0.8


def resolvable_multiplier(seeds: int) -> float:
    """How many standard errors of a paired difference over ``seeds`` seeds it must be to be
    found significant with ``PLANNED_POWER``: the t cutoff plus t's ``PLANNED_POWER`` quantile,
    with ``seeds - 1`` degrees of freedom (2.89 at 32 seeds, 3.26 at 8, 4.16 at 4; the normal
    2.8 understated it by 16 % at 8 seeds; review, session 36); inf below 2 seeds."""
    if seeds < 2:
        return math.inf
    from scipy.stats import t

    return significance_cutoff(seeds) + float(t.ppf(PLANNED_POWER, seeds - 1))


def mean_and_standard_error(values: Any, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean along ``axis`` (NaN s.e. with fewer than 2 samples)."""
    array = np.asarray(values, dtype=np.float64)
    count = array.shape[axis]
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged run: inf, nan
        mean = array.mean(axis=axis)
        if count < 2:
            return mean, np.full_like(mean, np.nan)
        return mean, array.std(axis=axis, ddof=1) / math.sqrt(count)


def summarize_over_seeds(values: Any, axis: int = 0) -> dict[str, Any]:
    """``{"mean", "standard_error", "per_seed"}`` for values with the seed along ``axis``."""
    mean, standard_error = mean_and_standard_error(values, axis)
    return {"mean": mean, "standard_error": standard_error, "per_seed": np.asarray(values)}


def paired_difference(first: Any, second: Any) -> dict[str, float]:
    """Mean +- s.e. over seeds of ``first - second`` (1-d arrays indexed by seed), with the
    ``cutoff`` in standard errors that makes it significant (``significance_cutoff``)."""
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged run: inf - inf
        difference = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
        mean, standard_error = mean_and_standard_error(difference)
    return {
        "mean": float(mean),
        "standard_error": float(standard_error),
        "cutoff": significance_cutoff(difference.size),
    }


#: the fewest seeds whose differences, all of one sign, are significant by the two-sided sign
#: test at ``SIGNIFICANCE_LEVEL`` (2 x 0.5^6 = 0.031; 5 seeds: 0.0625)
SIGN_TEST_SEEDS = 6


def significantly_greater(first: Any, second: Any, standard_errors: float | None = None) -> bool:
    """True when the paired difference ``first - second`` exceeds ``standard_errors`` s.e.
    (None: ``significance_cutoff`` for its seeds). With a single seed nothing is significant.
    Differences that are all equal (an s.e. of 0: stepped values such as iterations in
    multiples of the evaluation interval) count only where the sign test could resolve them,
    ``SIGN_TEST_SEEDS`` seeds or more: any positive mean beat ``cutoff x 0`` (review, session
    31: 11-12 % false directions at 2 seeds)."""
    difference = paired_difference(first, second)
    if not math.isfinite(difference["standard_error"]) or not math.isfinite(difference["mean"]):
        return False
    if difference["standard_error"] == 0:
        return difference["mean"] > 0 and np.size(first) >= SIGN_TEST_SEEDS
    cutoff = difference["cutoff"] if standard_errors is None else standard_errors
    return difference["mean"] > cutoff * difference["standard_error"]


def paired_direction(first: Any, second: Any, standard_errors: float | None = None) -> int:
    """+1 when ``first - second`` is significantly positive, -1 when significantly negative,
    0 otherwise (within the cutoff, a single seed, or non-finite values)."""
    if significantly_greater(first, second, standard_errors):
        return 1
    if significantly_greater(second, first, standard_errors):
        return -1
    return 0
