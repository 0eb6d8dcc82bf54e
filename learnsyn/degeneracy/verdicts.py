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
- ``not evaluated``: a condition the claim needs was not run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"
CONTRADICTED = "contradicted"
NO_VERDICT_DIVERGED = "no verdict: training diverged"
NO_VERDICT_TOO_SHORT = "no verdict: run too short to judge"
NOT_EVALUATED = "not evaluated"
VERDICTS = (
    CONFIRMED,
    NOT_CONFIRMED,
    CONTRADICTED,
    NO_VERDICT_DIVERGED,
    NO_VERDICT_TOO_SHORT,
    NOT_EVALUATED,
)
CONTRADICTION_RULE = "contradicted when the predicted training outcome is significantly reversed"


def combine(holds: bool, reversed_outcome: bool) -> str:
    """``contradicted`` if the predicted outcome is reversed, else ``confirmed`` if every part
    holds, else ``not confirmed``."""
    if reversed_outcome:
        return CONTRADICTED
    return CONFIRMED if holds else NOT_CONFIRMED


def all_finite(*values: Any) -> bool:
    """Whether every value in every (nested) array is finite."""
    return all(bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64)))) for value in values)


def no_verdict(statement: str, verdict: str, reason: str, **numbers: Any) -> dict[str, Any]:
    """A claim entry without a verdict on the claim itself (diverged, too short, not run)."""
    return {"statement": statement, "verdict": verdict, "reason": reason, **numbers}
