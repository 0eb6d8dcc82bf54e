"""Where ``--start-from`` takes a run's linear start: a file, or a linear baseline tuned for it.

``--start-from FILE`` starts an rnn, gru or mlp cell at the linear synapse in FILE
(``cells.read_linear_start``). ``--start-from tuned:MODEL`` (MODEL a linear family:
``linear-range`` or ``optimal-linear``) first tunes MODEL for the run itself, with the run's
scenario, N, metric, horizon, threshold, convention, seed, burn-in and state budget m
(``tuning.tune_baselines_for_run``, exactly where the grid fits), caches it in the run's
``baselines.json`` (the TensorBoard figure and ``compare`` reuse it) and starts there. This is the
route that found the nonlinear margin in bounded m = 2 at 8 levels (docs/learned-vs-linear.md),
now one command instead of ``learnsyn tune --json`` followed by ``--start-from FILE``.

The start is kept in the run as ``start-synapse.json``: its source, its parameters and, for a
tuned start, the tuned model's metrics, so a run's gain over its start reads off one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: prefix of a ``--start-from`` value that names a linear baseline to tune for the run
TUNED_PREFIX = "tuned:"


def linear_families() -> list[str]:
    """Hand-crafted families whose tuned parameters are a linear synapse (A, b, c)."""
    from learnsyn.cells import LINEAR_KEYS
    from learnsyn.registry import model_class, model_names

    return [
        name
        for name in model_names("hand-crafted")
        if set(LINEAR_KEYS) <= {spec.name for spec in model_class(name).info.params}
    ]


def tuned_model(start_from: str | None) -> str | None:
    """The baseline a ``tuned:MODEL`` start names, None for a file (or no start)."""
    if start_from is None or not start_from.startswith(TUNED_PREFIX):
        return None
    return start_from[len(TUNED_PREFIX) :]


def start_path(start_from: str | None) -> str | None:
    """A start file as an absolute path (a ``tuned:MODEL`` start, or none, as it is)."""
    if start_from is None or tuned_model(start_from) is not None:
        return start_from
    return str(Path(start_from).expanduser().resolve())


def check_start(config) -> None:
    """One line, before any work, for a start that cannot be: a cell without a linear form, a
    MODEL that is not a linear family or does not apply to the run's scenario, a bad file."""
    from learnsyn.cells import check_linear_start_cell, read_linear_start

    name = tuned_model(config.start_from)
    if name is None:
        read_linear_start(config.start_from, config.cell, config.state_size)
        return
    check_linear_start_cell(config.start_from, config.cell)
    allowed = linear_families()
    if name not in allowed:
        raise ValueError(
            f"--start-from {config.start_from}: {name!r} is not allowed: need a linear family "
            f"({', '.join(TUNED_PREFIX + n for n in allowed)}) or a JSON file"
        )
    from learnsyn.evaluate import check_compatible
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario

    scenario = make_scenario(config.task, config.task_params)
    try:
        check_compatible(make_model(name), scenario)
    except ValueError as error:
        raise ValueError(f"--start-from {config.start_from}: {error}") from None
    if scenario.has_flags:  # its optimum there gives flagged events their own increment
        raise ValueError(
            f"--start-from {config.start_from}: in {config.task}, whose events carry flags, "
            f"{name} is tuned with an increment of its own for flagged events (b_flagged), "
            "which no cell starts at (it would start elsewhere than the synapse it records); "
            "start from a JSON file without b_flagged"
        )
    from learnsyn.registry import model_class

    # before the run directory is written (review, session 33: the tuning failed after it,
    # and the same command then met "already exists")
    limit = getattr(model_class(name), "max_state_size", None)
    if limit is not None and config.state_size > limit:
        raise ValueError(
            f"--start-from {config.start_from}: {name} searches at most {limit} variables, "
            f"the run has --state-size {config.state_size}; start from a file, or m <= {limit}"
        )


def linear_start_for_run(
    config, scenario, run_dir: Path, log=print, tune=None
) -> tuple[dict, dict]:
    """The linear synapse a run starts at (``read_linear_start``'s dict) and what the run keeps
    of it in ``start-synapse.json`` (source, parameters; for a tuned start its metrics).
    ``tune(names)``: how a tuned start's family is tuned (rows of ``tune_baselines_for_run``);
    by default for this run's setting, cached in its ``baselines.json``. A study passes its own,
    cached per setting with the study's seed, so that its trials tune the start once."""
    from learnsyn.cells import linear_start, read_linear_start

    name = tuned_model(config.start_from)
    if name is None:
        start = read_linear_start(config.start_from, config.cell, config.state_size)
        return start, {"source": config.start_from, "params": start}
    if tune is None:
        from learnsyn.tuning import tune_baselines_for_run

        cache = Path(run_dir) / "baselines.json"
        tune = lambda names: tune_baselines_for_run(config, scenario, names, cache, log)  # noqa: E731
    log(f"start: {name} tuned for this run (m = {config.state_size}; read from the cache if done)")
    rows = tune([name])
    if not rows:
        raise ValueError(f"--start-from {config.start_from}: {name} could not be tuned here")
    row = rows[0]
    start = linear_start(row, config.start_from, config.state_size)
    value = row["metrics"].get(config.metric)
    log(f"start: {name} tuned, {config.metric} {value:.6g} ({row['method']})")
    record: dict[str, Any] = {
        "source": config.start_from,
        "params": start,
        "model": name,
        "method": row["method"],
        "metrics": row["metrics"],
        "metrics_stderr": row["metrics_stderr"],
    }
    return start, record
