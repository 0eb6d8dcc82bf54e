"""One table over several synapse grids: a row per (cell, m, horizon) point.

The synapse experiment is run as several grids (one per burn-in, per seed count, per session),
each in its own directory. ``read_grid`` takes the per-point summary a grid wrote to its
``results.json`` (and its claims, from ``<grid>/<point>/results.json`` when the grid has several
points); ``overview`` keeps, for each point, the row of the last grid given that has it, so a
rerun with more seeds or a longer burn-in replaces the earlier one; ``overview_markdown`` is the
table ``learnsyn degeneracy overview GRID...`` prints.

A row: seeds; the burn-in (``burn_in_horizons`` x T, a fixed number of steps, or
``learnsyn train``'s default) and how many runs the stationarity check flagged; the gap to the
optimal linear synapse (``1 - selected / baseline``) of ``auto``, of the best of the post's
inits and of the near-isometric control; the rank correlations across inits of the degeneracy
index (fraction of small singular values of the window map) and of the gradient norm at the
start with iterations to the target; and the counts of the post's claims confirmed,
contradicted and neither.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learnsyn.degeneracy.rank_correlation import NEGATIVE, POSITIVE
from learnsyn.degeneracy.synapse import DEFAULT_GAIN, default_inits
from learnsyn.degeneracy.synapse_labels import AUTO_INIT, ISOMETRIC_INIT, SPECIAL_INITS
from learnsyn.degeneracy.verdicts import post_inits as find_post_inits
from learnsyn.io import read_json

POINT_NAME = re.compile(r"^(?P<cell>.+)-m(?P<size>\d+)-h(?P<horizon>\d+)$")
DEGENERACY_INDEX = "fraction_below_threshold_vs_iterations_to_target"
GRADIENT_NORM = "early_grad_norm_vs_iterations_to_target"


def _burn_in(config: dict[str, Any]) -> str:
    horizons = config.get("burn_in_horizons")
    if horizons:
        return f"{horizons:g} T"
    steps = (config.get("train") or {}).get("burn_in")
    return f"{steps} steps" if steps is not None else "train default"


def _finite_gap(entry: dict[str, Any]) -> float | None:
    gap = (entry.get("gap_to_baseline") or {}).get("mean")
    return gap if isinstance(gap, (int, float)) and math.isfinite(gap) else None


def read_grid(directory: str | Path) -> dict[str, dict[str, Any]]:
    """``{point: row}`` of the synapse grid written to ``directory``."""
    root = Path(directory)
    if not (root / "results.json").is_file():
        raise ValueError(f"{root} is not a synapse grid: it has no results.json")
    results = read_json(root / "results.json")
    analysis = results.get("analysis") if isinstance(results, dict) else None
    if not isinstance(analysis, dict) or "by_init" in analysis:
        raise ValueError(
            f"{root} is not a synapse grid: its results.json has no grid analysis"
            + (" (it is one point of a grid; give the grid's directory)" if analysis else "")
        )
    config = read_json(root / "config.json").get("config", {})
    # the post's four inits as the grid ran them (config.json holds the resolved list, its
    # gain null): the default names missed e.g. gaussian and orthogonal-x0.5 (review, session 30)
    inits = config.get("inits") or default_inits(DEFAULT_GAIN)
    post_inits = [name for name in find_post_inits(inits, skip=SPECIAL_INITS) if name]
    burn_in = _burn_in(config)
    one_point = len(analysis) == 1
    rows = {}
    for name, point in analysis.items():
        if not POINT_NAME.match(name) or not {"by_init", "rank_correlations"} <= set(point):
            raise ValueError(f"{root}: point {name!r} of its results.json is not a grid point")
        # a one-point grid's claims are in its own results.json; a point folder beside it is
        # left from an earlier grid in the same --out (review, session 30)
        per_point = root / name / "results.json"
        claims = (
            read_json(per_point).get("claims") if per_point.exists() and not one_point else None
        )
        verdicts = [c["verdict"].split(":")[0] for c in claims or results.get("claims") or []]
        by_init = point["by_init"]
        gaps = {i: _finite_gap(by_init[i]) for i in post_inits if i in by_init}
        best = min((i for i in gaps if gaps[i] is not None), key=gaps.get, default=None)
        confirmed, contradicted = verdicts.count("confirmed"), verdicts.count("contradicted")
        rows[name] = {
            "point": name,
            "grid": str(root),
            "seeds": point["seeds"],
            "burn_in": burn_in,
            "non_stationary_runs": sum(e.get("non_stationary_runs", 0) for e in by_init.values()),
            "gap_auto": by_init.get(AUTO_INIT, {}).get("gap_to_baseline"),
            "best_post_init": best,
            "gap_best_post_init": by_init[best]["gap_to_baseline"] if best else None,
            "gap_isometric": by_init.get(ISOMETRIC_INIT, {}).get("gap_to_baseline"),
            "rho_degeneracy_index": point["rank_correlations"].get(DEGENERACY_INDEX),
            "rho_gradient_norm": point["rank_correlations"].get(GRADIENT_NORM),
            # among runs of one init (session 31; absent from older grids: rejudge adds it)
            "rho_within_degeneracy_index": point.get("rank_correlations_within_init", {}).get(
                DEGENERACY_INDEX
            ),
            "rho_within_gradient_norm": point.get("rank_correlations_within_init", {}).get(
                GRADIENT_NORM
            ),
            "claims": {
                "confirmed": confirmed,
                "contradicted": contradicted,
                "neither": len(verdicts) - confirmed - contradicted,
            }
            if verdicts
            else None,
        }
    return rows


def point_order(name: str) -> tuple[str, int, int]:
    """Sort key of a point name ``<cell>-m<m>-h<T>``: by cell, then m and T as numbers."""
    match = POINT_NAME.match(name)
    return match["cell"], int(match["size"]), int(match["horizon"])


def is_unfinished_grid(directory: str | Path) -> bool:
    """Whether ``directory`` holds a synapse grid that has not written its results.json yet
    (still running, or interrupted: its config.json says ``"experiment": "synapse"``)."""
    root = Path(directory)
    if (root / "results.json").exists() or not (root / "config.json").is_file():
        return False
    try:
        return read_json(root / "config.json").get("experiment") == "synapse"
    except (ValueError, AttributeError):
        return False


def overview(
    directories: list[str | Path], log: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Rows of every point in ``directories``; a later grid replaces an earlier one's point. A
    grid not finished yet is left out, said through ``log`` (review, session 31: it stopped
    the whole overview), unless every grid given is unfinished."""
    rows: dict[str, dict[str, Any]] = {}
    unfinished = [str(d) for d in directories if is_unfinished_grid(d)]
    if unfinished and len(unfinished) == len(directories):
        raise ValueError(
            f"no grid given is finished: {', '.join(unfinished)} (no results.json yet; the "
            "same `learnsyn degeneracy synapse` command resumes it)"
        )
    for directory in directories:
        if str(directory) in unfinished:
            if log is not None:
                log(f"note: {directory} is a synapse grid not finished yet: left out")
            continue
        rows.update(read_grid(directory))
    return [rows[name] for name in sorted(rows, key=point_order)]


def _mean_error(entry: dict[str, Any] | None, digits: int = 3) -> str:
    if not entry:
        return "-"
    return f"{entry['mean']:.{digits}f} ± {entry['standard_error']:.{digits}f}"


def _rho(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    if not math.isfinite(entry["rho"]):  # e.g. a measure constant within every init
        return "undefined"
    sign = {POSITIVE: " +", NEGATIVE: " −"}.get(entry.get("direction"), "")
    return f"{entry['rho']:+.2f} ± {entry['standard_error']:.2f}{sign}"


def overview_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| point | seeds | burn-in [flagged runs] | gap: auto | gap: best of the post's inits "
        "| gap: isometric | degeneracy index vs time (all runs; within inits) "
        "| gradient norm vs time (all runs; within inits) "
        "| claims confirmed / contradicted / neither | grid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        flagged = f" [{row['non_stationary_runs']}]" if row["non_stationary_runs"] else ""
        best = _mean_error(row["gap_best_post_init"])
        if row["best_post_init"]:
            best += f" ({row['best_post_init']})"
        claims = row["claims"] or {"confirmed": "-", "contradicted": "-", "neither": "-"}
        lines.append(
            f"| {row['point']} | {row['seeds']} | {row['burn_in']}{flagged} "
            f"| {_mean_error(row['gap_auto'])} | {best} | {_mean_error(row['gap_isometric'])} "
            f"| {_rho(row['rho_degeneracy_index'])}; {_rho(row['rho_within_degeneracy_index'])} "
            f"| {_rho(row['rho_gradient_norm'])}; {_rho(row['rho_within_gradient_norm'])} "
            f"| {claims['confirmed']} / {claims['contradicted']} / {claims['neither']} "
            f"| {Path(row['grid']).name} |"
        )
    return "\n".join(lines) + "\n"
