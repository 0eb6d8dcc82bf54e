"""Developer tools: ``bench`` (``learnsyn bench``), ``rollout_bench`` (fast vs reference
rollouts), ``gpu_checks`` (``python -m learnsyn.tools.gpu_checks``) and ``refine_linear`` (a
learned run's linearization refined along its modes into a stronger linear synapse).

``write_unless_weaker``: the rule of the reports a tool keeps in a run (``refine_linear``'s
refined-linear.json, ``grid_table``'s grid-table.json), which the scoreboard reads."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def write_unless_weaker(
    target: Path,
    report: dict[str, Any],
    same: Iterable[str],
    value: str,
    budget: str,
    log: Callable[[str], Any],
    hint: str = "",
) -> dict[str, Any]:
    """Write ``report`` to ``target`` unless the report already there is of the same search
    (the keys ``same`` equal: model, metric, method, ...) and stronger (its ``value``): a
    shorter search must not replace a stronger one (review, session 30). Returns the report
    that stands at ``target``; ``budget`` names the key of a search's size, for the log."""
    from learnsyn.io import atomic_write_json, read_json

    try:
        earlier = read_json(target)
    except ValueError:  # none yet, or unreadable: replaced
        earlier = None
    if (
        isinstance(earlier, dict)
        and all(earlier.get(key) == report.get(key) for key in same)
        and earlier.get(value, -math.inf) > report[value]
    ):
        log(
            f"kept {target}: its result ({earlier[value]:.4g}, {earlier.get(budget)} {budget}) "
            f"beats this one ({report[value]:.4g}){hint}"
        )
        return earlier
    atomic_write_json(target, report)
    return report
