"""The ``learnsyn degeneracy`` command: one subcommand per experiment.

``add_degeneracy_commands(subparsers)`` adds ``degeneracy`` to the main ``learnsyn`` parser, with
the subcommands ``deep-linear``, ``spectra``, ``hessian`` and ``synapse``. Each subcommand sets
``func``: it takes the parsed ``argparse.Namespace`` and returns an exit code.
``main(argv)`` is the same command standalone (``python -m learnsyn.degeneracy deep-linear``).

Every subcommand takes ``--quick`` (a size that finishes in seconds), ``--seed``, ``--out``,
``--threads`` and ``--no-progress``, plus its experiment options, generated from the fields of
its config dataclass (``learnsyn.cli.options.add_config_options``, as ``learnsyn train``'s from
``TrainConfig``); ``synapse`` also takes every ``learnsyn train`` setting that a run does not
set itself (``--snr-threshold`` is ``train``'s ``--threshold``, ``--evaluate-every`` its
``--validate-every``). An option left out keeps the default of the chosen size. A bad value is
reported as one line, ``learnsyn: error: <message>``, on stderr with exit code 2, before any
work is done.
"""

from __future__ import annotations  # noqa: E501

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from learnsyn.cli.options import (
    Parser,
    add_config_options,
    environment_threads,
    given_options,
    log,
    positive_int,
)
from learnsyn.config import TrainConfig
from learnsyn.degeneracy.deep_linear import DeepLinearConfig, run_deep_linear
from learnsyn.degeneracy.hessian import HessianConfig, run_hessian
from learnsyn.degeneracy.spectra import SpectraConfig, run_spectra
from learnsyn.degeneracy.synapse import (
    EXPERIMENT_TRAIN_DEFAULTS,
    PER_RUN_SETTINGS,
    TRAIN_OPTION_NAMES,
    SynapseDegeneracyConfig,
    check_no_replaced_runs,
    run_synapse_degeneracy,
    synapse_init_help,
)
from learnsyn.io import (
    check_output_dir,
    check_output_file,
    directory_is_empty,
    output_owner,
    read_json,
    write_json_output,
)

EXIT_BAD_INPUT = 2
DESCRIPTION = (
    "Degeneracy, not vanishing gradients: one subcommand per experiment "
    "(deep-linear, spectra, hessian, synapse). Each writes PNG figures, results.json, TensorBoard "
    "logs and config.json to --out."
)


def add_degeneracy_commands(subparsers: Any) -> None:
    """Add the ``degeneracy`` command (deep-linear, spectra, hessian, synapse) to ``subparsers``."""
    parser = subparsers.add_parser(
        "degeneracy",
        help="degeneracy, not vanishing gradients: deep linear nets, spectra, the synapse RNN",
        description=DESCRIPTION,
    )
    _add_experiment_subcommands(parser)


def main(argv: list[str] | None = None) -> int:
    """``python -m learnsyn.degeneracy <experiment> ...``: the command without ``learnsyn``."""
    parser = Parser(prog="python -m learnsyn.degeneracy", description=DESCRIPTION)
    _add_experiment_subcommands(parser)
    arguments = parser.parse_args(argv)
    return arguments.func(arguments)


def _add_experiment_subcommands(parser: argparse.ArgumentParser) -> None:
    experiments = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    _add_deep_linear_parser(experiments)
    _add_spectra_parser(experiments)
    _add_hessian_parser(experiments)
    _add_synapse_parser(experiments)
    _add_overview_parser(experiments)
    _add_rejudge_parser(experiments)


def _add_rejudge_parser(experiments: Any) -> None:
    parser = experiments.add_parser(
        "rejudge",
        help="judge a finished synapse grid again with today's rules, from its recorded runs",
        description="Read every run a finished synapse grid recorded (runs/*/*/s*/"
        "degeneracy-run.json, whatever code trained it) and write today's report of them to "
        "--out: results.json, summary.md, figures, claims and rank correlations, with "
        "'rejudged' naming the source and the code that made the runs. Nothing is trained "
        "(a grid reads back only runs of its own code, so a changed rule would retrain it).",
    )
    parser.add_argument("grid", metavar="GRID", help="a finished synapse grid directory")
    parser.add_argument("--out", required=True, help="where the new report goes (not GRID)")
    parser.set_defaults(func=_rejudge_command)


def _rejudge_command(arguments: argparse.Namespace) -> int:
    from learnsyn.degeneracy.synapse_rejudge import rejudge

    try:
        summary = rejudge(arguments.grid, arguments.out, log=_notes_only)
    except (ValueError, TypeError, KeyError) as error:
        print(f"learnsyn: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in _synapse_report(summary):
        print(line)
    print(f"outputs in {arguments.out}: results.json, config.json, PNG figures, tensorboard/")
    return 0


def _notes_only(message: str) -> None:
    """A log that shows only notes (``note: ...``) on stderr, not a tuning's progress."""
    if message.startswith("note:"):
        log(message)


def _add_overview_parser(experiments: Any) -> None:
    parser = experiments.add_parser(
        "overview",
        help="one table over several synapse grids: a row per (cell, m, horizon) point",
        description="Read the results.json of synapse grids (`learnsyn degeneracy synapse "
        "--out GRID`) and print one markdown row per point: seeds, burn-in and runs the "
        "stationarity check flagged, gaps to the optimal linear synapse (auto, the best of "
        "the post's inits, the near-isometric control), the rank correlations of the "
        "degeneracy index and of the gradient norm with training time, and the claims' "
        "verdicts. A point in several grids is taken from the last one given.",
    )
    parser.add_argument("grids", nargs="+", metavar="GRID", help="synapse grid directories")
    parser.add_argument(
        "--json",
        default=None,
        metavar="PATH|-",
        help="also write the rows as JSON to PATH (- prints only the JSON, to stdout)",
    )
    parser.set_defaults(func=_overview_command)


def _overview_command(arguments: argparse.Namespace) -> int:
    from learnsyn.degeneracy.synapse_overview import overview, overview_markdown

    try:
        check_output_file(arguments.json, "--json")
        rows = overview(arguments.grids, log=log)
    except ValueError as error:
        print(f"learnsyn: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write_json_output(arguments.json, {"points": rows})
    if arguments.json != "-":  # with --json -, stdout is the JSON alone
        print(overview_markdown(rows), end="")
    return 0


def _add_common_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="a small size that finishes in seconds on a CPU"
    )
    parser.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    parser.add_argument(
        "--out",
        default=None,
        help=f"output directory (default {default_out}, with -quick appended for --quick)",
    )
    # SUPPRESS: a main parser's own --threads (given before the command) is not overwritten.
    parser.add_argument(
        "--threads",
        type=positive_int("--threads"),
        default=argparse.SUPPRESS,
        help="torch threads (default $LEARNSYN_THREADS, else 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out that this experiment did not write, or over "
        "deep-linear's, spectra's and hessian's results made with other settings (its files "
        "of the same names are replaced; synapse still reads back the runs there that "
        "finished with the same settings and code, and trains again and replaces those made "
        "with others, which it otherwise refuses)",
    )
    parser.set_defaults(default_out=default_out)


def _add_experiment_parser(
    experiments: Any,
    name: str,
    help_text: str,
    description: str,
    config_type: type,
    func: Callable[[argparse.Namespace], int],
    **option_arguments: Any,
) -> argparse.ArgumentParser:
    """One experiment's subcommand: the common options, then one option per field of its
    config (``add_config_options``; ``seed``, ``threads`` and ``show_progress`` come from the
    common options)."""
    parser = experiments.add_parser(name, help=help_text, description=description)
    _add_common_options(parser, f"runs/degeneracy-{name}")
    skip = ("seed", "threads", "show_progress", *option_arguments.pop("skip", ()))
    add_config_options(parser, config_type, skip=skip, **option_arguments)
    parser.set_defaults(func=func)
    return parser


def _add_deep_linear_parser(experiments: Any) -> None:
    _add_experiment_parser(
        experiments,
        "deep-linear",
        "the post's 30-layer linear network under Fold k / orthogonal x g initializations",
        "Train depth-layer linear networks on a random linear teacher for every condition "
        "and seed; write the loss curves, gradient norms w.r.t. every layer's activations, "
        "degeneracy measures and the verdict on the post's four claims.",
        DeepLinearConfig,
        _deep_linear_command,
    )


def _add_spectra_parser(experiments: Any) -> None:
    _add_experiment_parser(
        experiments,
        "spectra",
        "singular values of random matrix products and of critical networks' Jacobians",
        "Singular-value spectra of products of L Gaussian / orthogonal / folded matrices, and "
        "input-output Jacobian spectra of deep linear, hard-tanh and ReLU networks at "
        "criticality with Gaussian and orthogonal weights, over depth.",
        SpectraConfig,
        _spectra_command,
    )


def _add_hessian_parser(experiments: Any) -> None:
    _add_experiment_parser(
        experiments,
        "hessian",
        "Hessian spectra and gradient sharing of deep linear nets, with and without skips",
        "The exact Hessian of a deep linear network's loss at initialization for every "
        "architecture (plain, residual) x init x seed: the fractions of near-zero, negative "
        "and positive eigenvalues (Orhan & Pitkow's measures), their curves over the "
        "tolerance, and the effective rank of the per-example gradients.",
        HessianConfig,
        _hessian_command,
    )


def _add_synapse_parser(experiments: Any) -> None:
    parser = _add_experiment_parser(
        experiments,
        "synapse",
        "the same initializations for the learned synapse's recurrent matrix, meta-trained",
        "Meta-train the learned synapse (learnsyn.runs.train, with its model selection) for "
        "every cell x m x horizon of a grid, with its recurrent matrix initialized as Fold k / "
        "orthogonal x g, the cell's own default, learnsyn train's default (auto) and a "
        "near-isometric control, over several seeds; write the meta-objective curves, "
        "iterations to a fraction of the best final objective, meta-gradient norms, "
        "degeneracy of the window Jacobian products and time scales used along training, the "
        "gap to the optimal linear synapse, rank correlations across inits, and the verdict "
        "on the post's claims.",
        SynapseDegeneracyConfig,
        _synapse_command,
        skip=("train",),
        helps={"inits": synapse_init_help()},
    )
    # Every learnsyn train setting a run does not set itself, generated from TrainConfig.
    add_config_options(
        parser,
        TrainConfig,
        skip=PER_RUN_SETTINGS,
        names=TRAIN_OPTION_NAMES,
        dest_prefix=TRAIN_DEST,
        defaults=EXPERIMENT_TRAIN_DEFAULTS,
        required=False,
    )


def _config_from_arguments(config_type: type, arguments: argparse.Namespace) -> Any:
    """The quick or full default config with every option that was given applied.

    Only the config's own fields are read from the namespace, so options the main ``learnsyn``
    parser adds cannot leak in.
    """
    given = vars(arguments)
    options = {
        field.name: (
            tuple(given[field.name]) if isinstance(given[field.name], list) else given[field.name]
        )
        for field in dataclasses.fields(config_type)
        if given.get(field.name) is not None
    }
    options["show_progress"] = not arguments.no_progress
    options["threads"] = getattr(arguments, "threads", None) or environment_threads()
    base = config_type.quick() if arguments.quick else config_type()
    return dataclasses.replace(base, **options)


#: where the parsed ``learnsyn train`` settings of the synapse experiment land in the namespace
TRAIN_DEST = "train__"


def _synapse_config_from_arguments(
    config_type: type, arguments: argparse.Namespace
) -> SynapseDegeneracyConfig:
    """The quick or full config with every given option applied: the experiment's own fields
    and the ``learnsyn train`` settings (into ``train``)."""
    values = {
        **given_options(arguments, config_type),
        **given_options(arguments, TrainConfig, TRAIN_DEST),
    }
    for name in ("seed", "threads"):
        if getattr(arguments, name, None) is not None:
            values[name] = getattr(arguments, name)
    values["show_progress"] = not arguments.no_progress
    values["threads"] = values.get("threads") or environment_threads()
    base = config_type.quick() if arguments.quick else config_type()
    return config_type.from_options(base, **values)


def _output_directory(arguments: argparse.Namespace) -> str:
    if arguments.out is not None:
        return arguments.out
    return arguments.default_out + ("-quick" if arguments.quick else "")


def _run_experiment(
    arguments: argparse.Namespace,
    config_type: type,
    run: Callable[[Any, str], dict[str, Any]],
    report: Callable[[dict[str, Any]], list[str]],
    build: Callable[[type, argparse.Namespace], Any] | None = None,
) -> int:
    """Build and validate the config (one-line error, exit 2), run, print a short report."""
    try:
        config = (build or _config_from_arguments)(config_type, arguments)
        config.validate()
        out_dir = _output_directory(arguments)
        _check_out_dir(
            out_dir, arguments.experiment, getattr(arguments, "overwrite", False), config
        )
    except (ValueError, TypeError) as error:
        print(f"learnsyn: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = run(config, out_dir)
    for line in report(summary):
        print(line)
    print(f"outputs in {out_dir}: results.json, config.json, PNG figures, tensorboard/")
    return 0


#: settings that change how a run goes, not what it computes
_HOW_SETTINGS = {"threads", "show_progress", "workers"}


def _check_out_dir(out_dir: str, experiment: str, overwrite: bool, config=None) -> None:
    """``--out`` must be writable, and empty or this experiment's own with the same settings (a
    rerun replaces its outputs; ``synapse`` reads its finished runs back and may add seeds);
    another command's directory (a training run, another experiment), one with other files, or
    deep-linear's and spectra's results with other settings need ``--overwrite``."""
    path = check_output_dir(out_dir, "--out")
    if directory_is_empty(path) or overwrite:
        return
    owner = output_owner(path)
    if owner == f"degeneracy {experiment}":
        if experiment != "synapse" and config is not None:
            _check_same_settings(path, out_dir, config)
        elif config is not None:  # finished runs of other settings or code: not replaced silently
            check_no_replaced_runs(config.resolved(), out_dir)
        return
    what = f"the outputs of `learnsyn {owner}`" if owner else "other files"
    raise ValueError(
        f"--out {out_dir} already holds {what}; choose another --out, or pass --overwrite to "
        "write into it anyway"
    )


def _check_same_settings(path, out_dir: str, config) -> None:
    """Results of this experiment with other settings are replaced only with ``--overwrite``."""
    import json

    from learnsyn.degeneracy.outputs import to_jsonable

    saved = (read_json(path / "config.json") or {}).get("config") or {}
    wanted = json.loads(json.dumps(to_jsonable(config)))
    keys = set(saved) - _HOW_SETTINGS  # a setting added since the results were made: not asked
    changed = sorted(k for k in keys if saved.get(k) != wanted.get(k))
    if changed:
        what = ", ".join(f"{k}: {saved.get(k)} -> {wanted.get(k)}" for k in changed[:4])
        raise ValueError(
            f"--out {out_dir} holds this experiment's results with other settings ({what}); "
            "choose another --out, or pass --overwrite to replace them"
        )


def _deep_linear_report(summary: dict[str, Any]) -> list[str]:
    lines = [f"final training loss (mean +- s.e. over {summary['seeds_per_condition']} seeds):"]
    for name, final in summary["final_loss"].items():
        label = summary["conditions"][name]
        lines.append(f"  {label:28s} {final['mean']:.4g} +- {final['standard_error']:.2g}")
    lines += [f"  claim: {claim['statement']}: {claim['verdict']}" for claim in summary["claims"]]
    return lines


def _spectra_report(summary: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in summary["jacobians"]["by_network"].items():
        depths = summary["jacobians"]["depths"]
        variances = [
            entry["by_depth"][str(depth)]["variance_squared_singular_value"]["mean"]
            for depth in depths
        ]
        text = ", ".join(f"L={depth}: {value:.3g}" for depth, value in zip(depths, variances))
        lines.append(f"  Jacobian var(s^2) {name}: {text}")
    lines += [
        f"  check: {check['fact']}: {check['holds']}"
        + (
            ""
            if check.get("resolved", True)
            else " (within its noise only: 3 s.e. > tolerance)"
            if check["holds"]
            else " (unresolved: 3 s.e. > tolerance)"
        )
        for check in summary["checks"]
    ]
    return lines


def _hessian_report(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"Hessian at initialization, {summary['parameters']} weights; fractions of eigenvalues "
        f"(tolerance {summary['zero_tolerance']:g} x max|lambda|) and effective rank of the "
        f"per-example gradients, mean over {summary['seeds_per_init']} seeds:"
    ]
    for architecture, per_init in summary["by_architecture"].items():
        for init, entry in per_init.items():
            fractions, sharing = entry["fractions"], entry["gradient_sharing"]
            lines.append(
                f"  {architecture:8s} {summary['inits'][init]:28s} near zero "
                f"{fractions['near_zero']['mean']:.3f}, negative "
                f"{fractions['negative']['mean']:.3f}, gradient rank "
                f"{sharing['effective_rank']['mean']:.1f}"
            )
    return lines


def _synapse_report(summary: dict[str, Any]) -> list[str]:
    if "iterations_to_fraction" not in summary:  # a grid of several points
        return _synapse_grid_report(summary)
    reach = summary["iterations_to_fraction"]
    # (review, session 30: the first column was headed the final evaluation, but is the mean of
    # the validation curve's last tenth; the claims judge the selected parameters' evaluation)
    lines = [
        f"{summary['metric']} of the selected parameters (final evaluation; what the claims "
        f"judge) and over the last tenth of the validation curve, mean +- s.e. over "
        f"{summary['seeds_per_init']} seeds; iterations to {reach['fraction']:g} x best final "
        f"({reach['target']:.4g}):"
    ]
    for name, final in summary["final_objective"].items():
        label = summary["inits"][name]
        entry = reach["by_init"][name]
        selected = summary["selected_objective"][name]
        speed = "never" if not entry["reached"] else f"{entry['mean']:.0f}"
        if entry["reached"] > 1:
            speed += f" +- {entry['standard_error']:.2g}"
        lines.append(
            f"  {label:28s} selected {selected['mean']:.4g} +- {selected['standard_error']:.2g}, "
            f"last tenth {final['mean']:.4g} +- {final['standard_error']:.2g}   "
            f"{speed} ({entry['reached']}/{entry['seeds']} reached)"
        )
    lines += [f"  claim: {claim['statement']}: {claim['verdict']}" for claim in summary["claims"]]
    return lines


def _synapse_grid_report(summary: dict[str, Any]) -> list[str]:
    lines = [
        "selected objective, gap to the baseline, iterations to the target (mean +- s.e.; a "
        "run that never reached it counts as one evaluation past the end) and the runs that "
        "reached it:"
    ]
    for name, point in summary["analysis"].items():
        for init, entry in point["by_init"].items():
            selected, speed = entry["selected_objective"], entry["iterations_to_target"]
            gap = entry.get("gap_to_baseline")
            gap_text = f"gap {gap['mean']:.3f} +- {gap['standard_error']:.2g}" if gap else ""
            lines.append(
                f"  {name} {init:18s} {selected['mean']:.4g} +- {selected['standard_error']:.2g}"
                f"  {gap_text}  {speed['mean']:.0f} +- {speed['standard_error']:.2g} iterations"
                f" ({entry['reached_target']}/{len(speed['per_seed'])} reached)"
            )
        for key, entry in point["rank_correlations"].items():
            lines.append(
                f"  {name} rho({key}) = {entry['rho']:.2f} +- {entry['standard_error']:.2f}: "
                f"{entry['direction']}"
            )
    return lines


def _deep_linear_command(arguments: argparse.Namespace) -> int:
    return _run_experiment(arguments, DeepLinearConfig, run_deep_linear, _deep_linear_report)


def _hessian_command(arguments: argparse.Namespace) -> int:
    return _run_experiment(arguments, HessianConfig, run_hessian, _hessian_report)


def _spectra_command(arguments: argparse.Namespace) -> int:
    return _run_experiment(arguments, SpectraConfig, run_spectra, _spectra_report)


def _synapse_command(arguments: argparse.Namespace) -> int:
    return _run_experiment(
        arguments,
        SynapseDegeneracyConfig,
        # (its finished runs were checked by _check_out_dir, unless --overwrite: not again)
        lambda config, out: run_synapse_degeneracy(config, out, overwrite=True),
        _synapse_report,
        build=_synapse_config_from_arguments,
    )
