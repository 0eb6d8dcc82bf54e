"""Judge a finished synapse grid again with today's rules, from the runs it recorded.

A grid's runs record the arrays its report reads (``degeneracy-run.json`` in each run folder:
validation curves, gradient norms, Jacobian measures along training), while the verdicts, the
rank correlations and their rules live in the report (``synapse_report``, ``synapse_claims``,
``seed_statistics``, ``rank_correlation``). A grid reads back only the runs made by its own code
(``synapse.run_key``: a changed engine retrains), so a grid of days would be retrained to apply
a changed rule. ``rejudge(source, out)`` instead reads every run of ``source`` back whatever code
trained it and writes today's report of them to ``out``: the grid's outputs (results.json,
summary.md, figures, TensorBoard), with ``rejudged`` in config.json and results.json naming the
source and the code fingerprints that made its runs. Nothing is trained; the gap baseline is
read from the source's cache (tuned again only where its code changed); a run missing from the
source (a grid not finished) is one clear error before anything is written.

``learnsyn degeneracy rejudge SOURCE --out DIR`` runs it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from learnsyn.degeneracy.outputs import save_resolved_config
from learnsyn.degeneracy.synapse import (
    RUN_RESULT,
    SynapseDegeneracyConfig,
    _arrays,
    _stack_runs,
    run_directory,
    tune_gap_baseline,
)
from learnsyn.io import check_output_dir, directory_is_empty, output_owner, read_json


def _drop_settings_added_since(saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Drop from ``wanted`` the settings of a part (``train``, ...) that ``saved`` does not
    hold: fields added to the code after the run was recorded, which the grid's own
    config.json (written by the same old code) leaves at today's defaults. Without this a
    grid could not be judged again after any new setting (review, session 36)."""
    for part, settings in wanted.items():
        old = saved.get(part)
        if isinstance(settings, dict) and isinstance(old, dict):
            for name in [name for name in settings if name not in old]:
                del settings[name]


def read_grid_config(source: Path) -> SynapseDegeneracyConfig:
    """The resolved config a synapse grid saved in ``source/config.json``."""
    data = read_json(source / "config.json")
    if not isinstance(data, dict) or data.get("experiment") != "synapse":
        raise ValueError(f"{source} holds no synapse grid (its config.json is not one)")
    config = SynapseDegeneracyConfig(**{**data["config"], "show_progress": False})
    config.validate()
    return config


#: parts of a run's key that may differ from the grid's config: the code (the reason to
#: rejudge), and what decides only how the run was computed
_KEY_PARTS_ALLOWED_TO_DIFFER = ("code", "threads", "versions")


def read_recorded_runs(
    source: Path, config: SynapseDegeneracyConfig, log: Any = print
) -> tuple[dict, set[str]]:
    """Every run of the grid, ``{point: [init][seed] run}``, and the code fingerprints that
    made them (from each run's key). A run whose key holds other settings than the grid's
    config (an interrupted rerun with other options leaves such a mix) is refused, naming
    them. A run recorded before the stationarity check existed counts as not flagged, said."""
    from learnsyn.degeneracy.synapse import _key_differences, run_key

    runs: dict[str, list[list[dict[str, Any]]]] = {}
    codes: set[str] = set()
    unchecked = 0
    for cell, size, horizon in config.points:
        point = config.point(cell, size, horizon)
        per_init = []
        for init in config.init_names:
            seeds = []
            for seed_index in range(config.seeds):
                path = run_directory(source, point, init, seed_index) / RUN_RESULT
                if not path.is_file():
                    raise ValueError(
                        f"{path} is missing: the grid in {source} is not finished (run its "
                        "command again to finish it, then judge it again)"
                    )
                recorded = read_json(path)
                key = json.loads(recorded["key"])
                codes.add(key["code"])
                wanted = json.loads(run_key(point, init, seed_index, key["code"]))
                for part in _KEY_PARTS_ALLOWED_TO_DIFFER:
                    key.pop(part, None)
                    wanted.pop(part, None)
                _drop_settings_added_since(key, wanted)
                if key != wanted:
                    differences = "; ".join(_key_differences(key, wanted)[:4])
                    raise ValueError(
                        f"{path} was made with other settings than the grid's config.json "
                        f"({differences}): a rerun with other options left a mix; judge a "
                        "grid whose runs share their settings"
                    )
                run = _arrays(recorded["run"])
                if "stationary" not in run:  # recorded before the check (session 26)
                    run["stationary"] = True
                    unchecked += 1
                seeds.append(run)
            per_init.append(seeds)
        runs[point.point_name] = per_init
    if unchecked:
        log(
            f"note: {unchecked} run(s) were recorded before the stationarity check existed: "
            "counted as not flagged"
        )
    return runs, codes


def rejudge(source: str | Path, out: str | Path, log: Any = print) -> dict[str, Any]:
    """Today's report of the runs the grid in ``source`` recorded, written to ``out``
    (module docstring); returns the summary written to ``out/results.json``."""
    from learnsyn.degeneracy.synapse_report import write_synapse_grid_outputs

    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the grid itself; judge it into another directory")
    if not directory_is_empty(check_output_dir(out, "--out")):
        if output_owner(out) != "degeneracy synapse":
            raise ValueError(
                f"--out {out} is not empty and holds no synapse report; choose an empty or new "
                "directory"
            )
        if (out / "runs").exists():  # another grid: its report would no longer be its runs'
            raise ValueError(  # (review, session 33)
                f"--out {out} is a grid with runs of its own; judge into an empty directory "
                "or a report rejudge wrote"
            )
    config = read_grid_config(source)
    runs, codes = read_recorded_runs(source, config, log)
    out.mkdir(parents=True, exist_ok=True)
    baselines = {}
    for cell, size, horizon in config.points:
        key = f"m{size}-h{horizon}"
        cache = out / "baselines" / f"{key}.json"
        if (source / "baselines" / f"{key}.json").is_file() and not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / "baselines" / f"{key}.json", cache)
        name = config.point(cell, size, horizon).point_name
        baselines[name] = tune_gap_baseline(config, size, horizon, cache, log)
    pilot = source / "pilot.json"
    trained = {
        "points": {name: _stack_runs(per_init) for name, per_init in runs.items()},
        "pilot": read_json(pilot) if pilot.is_file() else None,
        "gap_baselines": baselines,
    }
    if pilot.is_file():  # the judged grid's own files, as the grid writes them (session 31)
        shutil.copyfile(pilot, out / "pilot.json")
    else:  # (not a former report's)
        (out / "pilot.json").unlink(missing_ok=True)
    rejudged = {"source": str(source), "run_codes": sorted(codes)}
    summary = write_synapse_grid_outputs(
        config, trained, out, rejudged=rejudged, torch_threads=config.threads
    )
    save_resolved_config(out, config, experiment="synapse", rejudged=rejudged)  # (last: the
    return summary  # grid's writer saves one without the record)
