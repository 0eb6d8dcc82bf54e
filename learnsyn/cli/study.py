"""``learnsyn study``: the command's options, ``--summary``, and starting the workers' trials
(the study itself: ``learnsyn.study.run``; what it searches: ``learnsyn.study.space``)."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from learnsyn.cli.options import interrupt_status, study_seed_int
from learnsyn.cli.options import log as _log
from learnsyn.io import check_output_dir, check_output_file, output_owner, write_json_output
from learnsyn.study.run import STUDY_NAME_PATTERN, check_sampler_and_pruner, run_study
from learnsyn.study.space import study_settings
from learnsyn.study.storage import parse_storage


def default_study_name(target: str, task: str, synapses: int) -> str:
    return f"{target.replace(':', '-')}-{task}-N{synapses}"


def _check_study_name(name: str) -> str:
    if not STUDY_NAME_PATTERN.match(name):
        raise ValueError(
            f"study name {name!r} is not allowed: letters, digits, '.', '_' and '-' only "
            "(it names the study's run directory)"
        )
    return name


def cmd_study(args: argparse.Namespace) -> int:
    """``learnsyn study``: run trials, or ``--summary`` of a study."""
    import optuna

    # every trial's outcome is logged below; Optuna's own warnings would repeat failures with a
    # traceback (even for Ctrl-C)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out = Path(check_output_dir(args.out, "--out"))  # ("" is refused: it meant here)
    location = parse_storage(args.storage or f"sqlite:///{out / 'optuna.db'}")
    if args.summary:
        from learnsyn.study.storage import print_summary, study_summary

        check_output_file(args.json, "--json")
        data = study_summary(location, args.study_name)
        path = args.json or str(out / data["study"] / "summary.json")
        check_output_file(path, "summary file")
        write_json_output(path, data)
        print_summary(data, path, sys.stderr if path == "-" else sys.stdout)
        return 0
    check_sampler_and_pruner(args.sampler, args.pruner)
    if args.n_trials < 1:
        raise ValueError(f"--n-trials {args.n_trials} is not allowed: expected an integer >= 1")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout {args.timeout} is not allowed: expected seconds > 0")
    if args.heartbeat < 0:
        raise ValueError(f"--heartbeat {args.heartbeat} is not allowed: expected seconds >= 0")
    settings = study_settings(args)
    name = _check_study_name(
        args.study_name or default_study_name(args.target, args.task, args.synapses)
    )
    check_output_dir(out, "--out")
    check_output_dir(out / name, "study directory")
    if output_owner(out / name) is not None:
        raise ValueError(
            f"{out / name} holds the outputs of `learnsyn {output_owner(out / name)}`, not a "
            "study's trials; choose another --out or --study-name"
        )
    if location.path is not None:
        check_output_file(location.path, "--storage", stdout=False)
    try:
        run_study(
            settings,
            location,
            name,
            n_trials=args.n_trials,
            out=out,
            timeout=args.timeout,
            sampler=args.sampler,
            pruner=args.pruner,
            heartbeat=args.heartbeat,
        )
    except KeyboardInterrupt as interrupt:
        _log(f"interrupted: run the same command again to continue study {name}")
        return interrupt_status(interrupt)
    _log(f"summary: learnsyn study --summary --storage {location.given} --study-name {name}")
    return 0


def add_study_commands(subparsers) -> None:
    """Register ``learnsyn study``."""
    p = subparsers.add_parser(
        "study",
        help="Optuna study over meta-training runs or baseline parameters",
        description="An Optuna study whose trials are meta-training runs or baseline tunings; "
        "every worker runs the same command (docs/studies.md).",
    )
    what = p.add_argument_group("what to optimize")
    what.add_argument("--target", help="learned | baseline:NAME (see `learnsyn list`)")
    what.add_argument("--task", help="scenario name")
    what.add_argument(
        "--task-param", action="append", metavar="KEY=VALUE", help="scenario parameter"
    )
    what.add_argument("--synapses", type=int, help="N (scales SNR by sqrt(N))")
    what.add_argument("--metric", default="area", help="area | lifetime | log_area | initial_snr")
    what.add_argument(
        "--space",
        action="append",
        metavar="KEY=LOW:HIGH[:SCALE]|A,B|VALUE",
        help="narrow a search dimension (a single value fixes it)",
    )
    what.add_argument("--space-file", metavar="JSON", help="the same entries as a JSON object")
    what.add_argument(
        "--fixed",
        action="append",
        metavar="KEY=VALUE",
        help="hold a setting: a TrainConfig field (learned) or a model parameter (baseline)",
    )
    what.add_argument(
        "--horizon",
        type=int,
        help="evaluation horizon (default: learned, the fixed training horizon, else 600; "
        "baselines, 1000)",
    )
    what.add_argument(
        "--threshold", type=float, default=1.0, help="SNR threshold theta of the metric (1)"
    )
    what.add_argument("--convention", default="large-n", help="large-n (default) | exact")
    what.add_argument("--eval-batch", type=int, help="Monte Carlo pairs of the evaluation")
    what.add_argument("--method", default="auto", help="baselines: auto | exact | monte-carlo")
    what.add_argument("--max-state", type=int, help="baselines: at most m state variables")
    how = p.add_argument_group("how to run")
    how.add_argument(
        "--storage",
        help="sqlite:///PATH (default <out>/optuna.db), journal:PATH, "
        "or a SQLAlchemy URL such as postgresql://USER@HOST:PORT/DB",
    )
    how.add_argument("--study-name", help="default <target>-<task>-N<synapses>")
    how.add_argument("--n-trials", type=int, default=20, help="trials of the whole study")
    how.add_argument("--timeout", type=float, help="seconds after which no trial starts")
    how.add_argument("--sampler", default="tpe", help="tpe | random | cmaes")
    how.add_argument("--pruner", default="median", help="median | none")
    how.add_argument(
        "--seed",
        type=study_seed_int,
        default=0,
        help="the study's seed: the trials' training seeds and the sampler's are mixed from it "
        "(adjacent seeds share no trial)",
    )
    how.add_argument("--heartbeat", type=int, default=60, help="seconds; 0: off (databases)")
    how.add_argument("--out", default="runs", help="trials go to <out>/<study>/trial_<k>/")
    report = p.add_argument_group("summary")
    report.add_argument("--summary", action="store_true", help="print the best trial and more")
    report.add_argument("--json", metavar="PATH|-", help="default <out>/<study>/summary.json")
    p.set_defaults(func=cmd_study)
