"""The verdicts a claim can get, and the rule that turns its parts into one.

Every claim of the degeneracy experiments ends in exactly one of:

- ``confirmed``: every part of the claim holds (each comparison by more than the stated number
  of standard errors of the paired difference over seeds, each threshold as stated);
- ``not confirmed``: some part does not hold, but the training outcome the claim predicts is not
  significantly reversed either (too few seeds, too small an effect, or a failed side condition);
- ``contradicted``: the training outcome the claim predicts is significantly reversed (for
  example the supposedly worse condition trains significantly better);
- ``no verdict: training diverged``: a network the claim compares has a non-finite loss or
  gradient norm, so no comparison is meaningful;
- ``no verdict: run too short to judge``: the run ends before the epochs at which the claim is
  judged;
- ``no verdict: measure undefined``: a claim about a measure at initialization (no training
  involved) meets a measure that is not defined there, e.g. the effective rank of a window
  product that is exactly zero in every stream (a state clipped at its bound in every direction
  inside the window has a zero Jacobian);
- ``no verdict: too few seeds``: fewer than two seeds, so no paired difference has a spread;
- ``not evaluated``: a condition the claim needs was not run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from learnsyn.initialization import parse_init_spec

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"
CONTRADICTED = "contradicted"
NO_VERDICT_DIVERGED = "no verdict: training diverged"
NO_VERDICT_TOO_SHORT = "no verdict: run too short to judge"
NO_VERDICT_UNDEFINED = "no verdict: measure undefined"
NO_VERDICT_TOO_FEW_SEEDS = "no verdict: too few seeds"
NOT_EVALUATED = "not evaluated"
VERDICTS = (
    CONFIRMED,
    NOT_CONFIRMED,
    CONTRADICTED,
    NO_VERDICT_DIVERGED,
    NO_VERDICT_TOO_SHORT,
    NO_VERDICT_UNDEFINED,
    NO_VERDICT_TOO_FEW_SEEDS,
    NOT_EVALUATED,
)
#: the fewest paired seeds a verdict is drawn from (one seed: "not confirmed" read as a null)
MIN_SEEDS = 2
CONTRADICTION_RULE = "contradicted when the predicted training outcome is significantly reversed"
SIGNIFICANCE = (
    "the 95 % Student t cutoff of the paired difference over seeds (2.04 s.e. at 32 seeds, "
    "4.30 at 3)"
)


def combine(holds: bool, reversed_outcome: bool) -> str:
    """``contradicted`` if the predicted outcome is reversed, else ``confirmed`` if every part
    holds, else ``not confirmed``."""
    if reversed_outcome:
        return CONTRADICTED
    return CONFIRMED if holds else NOT_CONFIRMED


def combine_directions(directions: Iterable[int]) -> str:
    """``combine`` for a claim that each paired direction is +1 (``paired_direction``): it is
    reversed when one is -1. No directions at all: ``not evaluated`` (``all([])`` is True, which
    confirmed a claim with nothing compared: review, session 37)."""
    directions = list(directions)
    if not directions:
        return NOT_EVALUATED
    return combine(all(d > 0 for d in directions), any(d < 0 for d in directions))


def all_finite(*values: Any) -> bool:
    """Whether every value in every (nested) array is finite."""
    return all(bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64)))) for value in values)


def too_few_seeds(*values: Any) -> bool:
    """Whether a seed-indexed array among ``values`` has fewer than ``MIN_SEEDS`` seeds."""
    shapes = [np.shape(value) for value in values]
    return any(not shape or shape[0] < MIN_SEEDS for shape in shapes)


def unjudged(statement: str, diverged: str, *values: Any) -> dict[str, Any] | None:
    """The entry of a claim whose per-seed ``values`` cannot be judged, else None: a
    non-finite number (a diverged run; ``diverged`` says what was not finite), or fewer than
    two seeds (no spread, where "not confirmed" would read as a measured null)."""
    if not all_finite(*values):
        return no_verdict(statement, NO_VERDICT_DIVERGED, diverged)
    if too_few_seeds(*values):
        return no_verdict(
            statement, NO_VERDICT_TOO_FEW_SEEDS, "a paired difference needs two seeds or more"
        )
    return None


def no_verdict(statement: str, verdict: str, reason: str, **numbers: Any) -> dict[str, Any]:
    """A claim entry without a verdict on the claim itself (diverged, too short, not run)."""
    return {"statement": statement, "verdict": verdict, "reason": reason, **numbers}


def not_evaluated(statement: str, missing: str) -> dict[str, Any]:
    """The entry of a claim whose conditions were not all run."""
    return no_verdict(statement, NOT_EVALUATED, f"needs {missing}")


def post_inits(names: Iterable[str], skip: Iterable[str] = ()) -> tuple[str | None, ...]:
    """The post's four inits among ``names`` (None where not run), each the first of its kind:
    Fold 0, Fold 1, orthogonal (gain exactly 1) and orthogonal x g (g < 1). Names in ``skip``
    (not ``parse_init_spec`` names) are passed over."""
    specs = {name: parse_init_spec(name) for name in names if name not in skip}

    def first(kind: str, fold_k: int, scaled: bool) -> str | None:
        for name, spec in specs.items():
            gain_fits = spec.gain < 1.0 if scaled else spec.gain == 1.0
            if spec.kind == kind and spec.fold_k == fold_k and gain_fits:
                return name
        return None

    return (
        first("gaussian", 0, False),
        first("gaussian", 1, False),
        first("orthogonal", 0, False),
        first("orthogonal", 0, True),
    )
