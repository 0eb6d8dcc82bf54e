"""Rank correlations across initializations, with errors from a bootstrap over seeds.

The synapse experiment asks whether a property of a run at initialization (a degeneracy index:
the fraction of near-zero singular values of the window map; or the meta-gradient norm)
predicts how fast the run trains (time to threshold). Each is one number per run, and runs are
laid out ``(inits, seeds)``: seed index s of every init shares its training batches, so the seed
is the unit of resampling. ``bootstrap_spearman`` resamples whole seeds (all inits of a seed
together) with replacement and recomputes Spearman's rho over the resampled runs; the error is
the bootstrap standard deviation and the interval the 2.5 / 97.5 percentiles.

``correlation_direction`` reads the interval: ``positive`` when it lies above 0, ``negative``
below 0, ``none resolved`` when it contains 0 (too few seeds, or no correlation), and also
when |rho| is within the 95 % Student t cutoff for the seeds of its bootstrap standard error
(``seed_statistics.significance_cutoff``): the percentile interval alone resolved a direction
between independent numbers 18 % of the time with 4 seeds, 11 % with 8 and 7 % with 32 (7
inits, a simulation of session 30; with the cutoff 5 %, 7 % and 5 %). Ties (e.g. runs that
never reach the threshold, counted at one evaluation past the end) get average ranks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
POSITIVE, NEGATIVE, NONE_RESOLVED = "positive", "negative", "none resolved"
INTERVAL = (2.5, 97.5)


def spearman(x: Any, y: Any) -> float:
    """Spearman's rho of paired 1-d samples (average ranks for ties); non-finite pairs are
    dropped; NaN with fewer than 3 pairs or when either side is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return math.nan
    from scipy.stats import rankdata  # scipy.stats takes 1 s to import: only when used

    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denominator) if denominator > 0 else math.nan


def bootstrap_spearman(
    x: Any, y: Any, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Spearman's rho of ``x`` and ``y`` (both ``(inits, seeds)``, or 1-d over seeds) over all
    runs, with a bootstrap over seeds: ``rho``, ``standard_error``, ``interval`` (95 %),
    ``direction``, ``runs`` (finite pairs) and ``resamples``."""
    return _seed_bootstrap(spearman, x, y, resamples, seed)


def _seed_bootstrap(statistic, x: Any, y: Any, resamples: int, seed: int) -> dict[str, Any]:
    """``statistic(x, y)`` over ``(inits, seeds)`` arrays, with a bootstrap of whole seeds (the
    same seed columns for every init) and the entry ``bootstrap_spearman`` describes."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    seeds = x.shape[-1]
    rho = statistic(x, y)
    generator = np.random.default_rng(seed)
    values = []
    for _ in range(resamples if seeds >= 2 else 0):
        chosen = generator.integers(0, seeds, size=seeds)
        values.append(statistic(x[:, chosen], y[:, chosen]))
    return _bootstrap_entry(rho, values, x, y, seeds, resamples)


def _mean_within(x: np.ndarray, y: np.ndarray) -> float:
    """The mean over inits (rows) of Spearman's rho over seeds; rows whose rho is undefined
    (constant, or fewer than 3 finite pairs) are left out; NaN when none is defined."""
    rows = [spearman(a, b) for a, b in zip(x, y)]
    rows = [value for value in rows if math.isfinite(value)]
    return float(np.mean(rows)) if rows else math.nan


def within_init_spearman(
    x: Any, y: Any, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Whether ``x`` predicts ``y`` among runs of the same init: the mean over inits of
    Spearman's rho over seeds, with the bootstrap over seeds of ``bootstrap_spearman`` and its
    direction rule. The pooled rho over every run also ranks the inits against each other
    (each init's level of both numbers), which the seed bootstrap holds fixed: a simulation
    (session 31) of 7 inits x 32 seeds whose x predicts nothing but whose inits differ in both
    resolved a pooled direction 52 % of the time (86 % with 3x the spread between inits),
    this mean 5 %. ``per_init``: each init's rho; ``degenerate_resamples``: resamples without
    a defined rho (too many make the direction ``none resolved``)."""
    entry = _seed_bootstrap(_mean_within, x, y, resamples, seed)
    x, y = np.atleast_2d(np.asarray(x, dtype=np.float64)), np.atleast_2d(np.asarray(y, float))
    entry["per_init"] = [spearman(a, b) for a, b in zip(x, y)]
    return entry


def between_init_spearman(x: Any, y: Any) -> dict[str, Any]:
    """Spearman's rho of the inits' mean ``x`` and mean ``y`` (over seeds): how the inits rank
    against each other, ``inits`` points, with no error (a handful of inits, each chosen, not
    drawn: descriptive only)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    paired = np.isfinite(x) & np.isfinite(y)  # an init's means over the same runs on both sides
    x, y = np.where(paired, x, np.nan), np.where(paired, y, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # an init without a pair
        means_x, means_y = np.nanmean(x, axis=1), np.nanmean(y, axis=1)
    return {"rho": spearman(means_x, means_y), "inits": int(x.shape[0])}


#: above this fraction of resamples without a defined rho the bootstrap does not resolve a
#: direction (session 31: dropping them resolved 71 % of null correlations at 3 seeds with ties)
MAX_DEGENERATE_FRACTION = 0.05


def _bootstrap_entry(rho, values, x, y, seeds: int, resamples: int) -> dict[str, Any]:
    finite = np.asarray([value for value in values if math.isfinite(value)])
    if math.isfinite(rho) and len(finite) >= 2:
        standard_error = float(finite.std(ddof=1))
        interval = [float(v) for v in np.percentile(finite, INTERVAL)]
    else:
        standard_error, interval = math.nan, [math.nan, math.nan]
    entry = {
        "rho": rho,
        "standard_error": standard_error,
        "interval": interval,
        "runs": int((np.isfinite(x) & np.isfinite(y)).sum()),
        "seeds": int(seeds),
        "resamples": int(resamples),
        "degenerate_resamples": int(len(values) - len(finite)),
    }
    entry["direction"] = correlation_direction(entry)
    return entry


def correlation_direction(entry: dict[str, Any]) -> str:
    """``positive`` / ``negative`` when the 95 % bootstrap interval excludes 0 and |rho| is
    beyond the t cutoff for its seeds in bootstrap standard errors, else ``none resolved``."""
    from learnsyn.degeneracy.seed_statistics import significance_cutoff

    cutoff = significance_cutoff(entry["seeds"]) * entry["standard_error"]
    if not abs(entry["rho"]) > cutoff:  # (nan fails too)
        return NONE_RESOLVED
    degenerate = entry.get("degenerate_resamples", 0)
    if degenerate > MAX_DEGENERATE_FRACTION * max(entry.get("resamples", 1), 1):
        return NONE_RESOLVED
    low, high = entry["interval"]
    if math.isfinite(low) and low > 0:
        return POSITIVE
    if math.isfinite(high) and high < 0:
        return NEGATIVE
    return NONE_RESOLVED


def resolvable_rho(runs: int, standard_errors: float = 2.8) -> float:
    """The smallest |rho| that ``runs`` runs resolve: ``standard_errors`` x the large-sample
    s.e. of Spearman's rho under no correlation, ``sqrt(1.06 / (runs - 3))`` (Fieller et al.
    1957 give the variance of Fisher's z as 1.06 / (n - 3); until session 31 this read
    1.06 / sqrt(n - 3), 3 % larger); 2.8 = 2 s.e. for significance + 0.8 for 80 % power. It
    treats the runs as independent and is the pooled rho's: a planning figure only."""
    return standard_errors * math.sqrt(1.06 / (runs - 3)) if runs > 3 else math.nan
