"""``learnsyn list``, ``evaluate`` and ``tune``: the registered models and scenarios, one model's
SNR curve, a baseline tuned for a metric."""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import warnings

from learnsyn.cli.options import (
    add_evaluation_options,
    add_model_task_options,
    positive_int,
)
from learnsyn.config import check_device, parse_assignments, resolve_device, stream_seed
from learnsyn.estimate.snr import EvalSpec
from learnsyn.evaluate import (
    MERGED_PAIRS,
    NEVER_STATIONARY,
    SHORT_BURN_IN,
    VARIANCE_LOST,
    evaluate,
    resolve_method,
    uses_grid,
)
from learnsyn.io import check_figure_file, check_output_file, json_text, write_json_output
from learnsyn.registry import load_builtin_models, make_model
from learnsyn.scenario import SCENARIOS, make_scenario


def _spec_json(spec) -> dict:
    default = spec.default
    if isinstance(default, float) and not math.isfinite(default):
        default = str(default)
    return {
        "name": spec.name,
        "default": default,
        "allowed": spec.describe_range(),
        "help": spec.help,
    }


def cmd_list(args: argparse.Namespace) -> int:
    import learnsyn.tasks  # noqa: F401

    check_output_file(args.json, "--json")

    models = load_builtin_models()
    data = {
        "models": [
            {
                "name": cls.info.name,
                "family": cls.info.family,
                "summary": cls.info.summary,
                "reference": cls.info.reference,
                "params": [_spec_json(s) for s in cls.info.params],
            }
            for cls in models.values()
        ],
        "scenarios": [
            {
                "name": cls.info.name,
                "summary": cls.info.summary,
                "reference": cls.info.reference,
                "tags": list(cls.info.tags),
                "params": [_spec_json(s) for s in cls.info.params],
            }
            for cls in SCENARIOS.values()
        ],
    }
    if args.json:
        write_json_output(args.json, data)
        if args.json == "-":
            return 0
    for title, entries in (("Models", data["models"]), ("Scenarios", data["scenarios"])):
        print(f"{title}:")
        for entry in entries:
            family = f" [{entry['family']}]" if "family" in entry else ""
            print(f"  {entry['name']}{family}: {entry['summary']}")
            print(f"      reference: {entry['reference']}")
            for p in entry["params"]:
                print(
                    f"      --{'param' if title == 'Models' else 'task-param'} "
                    f"{p['name']}=... default {p['default']}, {p['allowed']}. {p['help']}"
                )
        print()
    return 0


def _model_and_task(args):
    params = parse_assignments(args.param, "--param")
    task_params = parse_assignments(args.task_param, "--task-param")
    scenario = make_scenario(args.task, task_params)
    model = make_model(args.model, params)
    return model, scenario, params


def _check_burn_in_applies(args, model, scenario) -> None:
    """``--burn-in`` where the method is an exact closed form (the stationary curve, an
    infinite burn-in) is refused: evaluate and tune dropped it without a word (review, session
    36: exponential, --burn-in 10 read the stationary 4.51 where 10 steps give about 11)."""
    method = resolve_method(model, scenario, args.method)
    if args.burn_in is not None and method == "exact" and not uses_grid(model, scenario):
        raise ValueError(
            f"--burn-in {args.burn_in} does not apply to {args.model}'s exact closed form, which "
            "is the stationary curve (an infinite burn-in): leave it out, or pass --method "
            "monte-carlo for the curve after a finite burn-in"
        )


def _check_common(args) -> EvalSpec:
    """The output paths, the evaluation spec (returned) and the method, checked."""
    check_output_file(args.json, "--json")
    check_figure_file(args.plot)
    spec = EvalSpec(args.synapses, args.horizon, args.threshold, args.convention,
                    getattr(args, "metric", "area"), args.burn_in)  # fmt: skip
    from learnsyn.evaluate import METHODS

    if args.method not in METHODS:
        raise ValueError(f"unknown method {args.method!r}; allowed: {', '.join(METHODS)}")
    return spec


def _print_summary(result: dict, out=None) -> None:
    out = sys.stderr if out is None else out
    m = result["metrics"]
    err = result.get("metrics_stderr") or {}

    def fmt(key):  # (a JSON-able result: a non-finite number is the string "inf" or "nan")
        text = f"{float(m[key]):.4g}"
        return text + (f" +- {float(err[key]):.2g}" if key in err else "")

    print(
        f"{result['model']} {result['params']} in {result['task']} {result['task_params']}, "
        f"N={result['synapses']}, {result['method']}, {result['convention']} convention, "
        f"threshold {result['threshold']:g}, horizon {result['horizon']}:\n"
        f"  area {fmt('area')}  lifetime {fmt('lifetime')}"
        f"{' (censored at horizon)' if result.get('lifetime_censored') else ''}  "
        f"initial SNR {fmt('initial_snr')}  log-time area {fmt('log_area')}",
        file=out,
    )


def _plot_one(result: dict, path: str, label: str) -> None:
    from learnsyn.plotting import plot_snr_curves, save_figure

    fig = plot_snr_curves(
        [
            {
                "label": label,
                "ages": result["ages"],
                "snr": result["snr"],
                "snr_stderr": result["snr_stderr"],
            }
        ],
        synapses=result["synapses"],
        threshold=result["threshold"],
        convention=result["convention"],
        title=f"{label} in {result['task']}",
    )
    save_figure(fig, path)
    print(f"plot written to {path}", file=sys.stderr)


def cmd_evaluate(args: argparse.Namespace) -> int:
    _check_common(args)
    model, scenario, _ = _model_and_task(args)
    device = str(resolve_device(args.device))
    _check_burn_in_applies(args, model, scenario)
    with warnings.catch_warnings():  # a short burn-in, merged pairs: said below in one line
        for said in (SHORT_BURN_IN, MERGED_PAIRS, NEVER_STATIONARY, VARIANCE_LOST):
            warnings.filterwarnings("ignore", message=re.escape(said))
        evaluation = evaluate(
            model,
            scenario,
            synapses=args.synapses,
            horizon=args.horizon,
            method=args.method,
            convention=args.convention,
            threshold=args.threshold,
            batch=args.batch,
            seed=args.seed,
            burn_in=args.burn_in,
            device=device,
        )
    result = evaluation.to_json()
    # the numbers as evaluate gave them (the JSON's are strings where not finite)
    record = evaluation.monte_carlo or {}
    if record.get("burn_in_needed"):
        print(
            f"warning: the burn-in ({record['burn_in']} steps) is shorter than the "
            f"{record['burn_in_needed']} steps this synapse needs to relax (5 time constants "
            "of its slowest mode): the figures include the transient from the initial state "
            "and can be biased, mostly upward",
            file=sys.stderr,
        )
    if "variance_share" in record:
        print(
            f"warning: the weight's variance is {record['variance_share']:.2g} of its mean "
            "square (a large drive or bias): float32 moment sums lose it, so the SNR and its "
            "error are unreliable; the exact method, or the synapse without the offset, is not "
            "affected",
            file=sys.stderr,
        )
    if record.get("stationary") is False:
        print(
            f"warning: this synapse never becomes stationary (an infinite time scale): the "
            f"figures are those of a memory stored after the burn-in ({record['burn_in']} "
            "steps), and change with --burn-in",
            file=sys.stderr,
        )
    # (an exact evaluation, or no merged pairs, has no bound: threshold 0 read a missing age)
    if "snr_bound_after_merge" in record and record["snr_bound_after_merge"] >= args.threshold:
        print(
            f"warning: every pair's two branches have met by age "
            f"{record['pairs_merged_from_age']}: from there the curve reads 0 +- 0, yet SNRs up "
            f"to {record['snr_bound_after_merge']:.3g} are not ruled out by {record['batch_pairs']}"
            " pairs; use a larger --batch or --method exact",
            file=sys.stderr,
        )
    write_json_output(args.json, result)
    _print_summary(result)
    if args.plot:
        _plot_one(result, args.plot, args.model)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from learnsyn.tuning import progress_lines, tune

    spec = _check_common(args)
    model, scenario, params = _model_and_task(args)
    _check_burn_in_applies(args, model, scenario)
    check_device(args.device)  # a bad name is refused (review, session 33); none is needed
    import torch

    if args.device != "cpu" and not (args.device == "auto" and not torch.cuda.is_available()):
        print(
            f"note: tune evaluates on the CPU (as the tuning for compare and the scoreboard "
            f"does); --device {args.device} is not used",
            file=sys.stderr,
        )
    start = time.perf_counter()
    result = tune(
        args.model,
        scenario,
        synapses=args.synapses,
        metric=args.metric,
        fixed=params,
        max_state=args.max_state,
        horizon=args.horizon,
        threshold=args.threshold,
        convention=args.convention,
        method=args.method,
        batch=args.batch,
        seed=args.seed,
        burn_in=args.burn_in,
        progress=progress_lines(args.model, args.metric, lambda line: print(line, file=sys.stderr)),
    )
    data, fresh_note = result.to_json(), None
    if result.evaluation.method == "monte-carlo":
        # the search's best is the luckiest of its candidates on its own pairs (biased upward:
        # 17.7 +- 0.6 where fresh pairs read 15.9 +- 0.2, review, session 34): the figures
        # written are the winner's on fresh pairs, as compare and the scoreboard evaluate it
        fresh_seed = stream_seed(args.seed, "tune-evaluation")
        fresh = evaluate(make_model(args.model, result.best_params), scenario,
                         method="monte-carlo", batch=args.batch, seed=fresh_seed,
                         **spec.keywords())  # fmt: skip
        data = {**fresh.to_json(), "best_params": data["best_params"], "tuning": data["tuning"]}
        data["tuning"]["evaluation_seed"] = fresh_seed
        fresh_note = (
            f"the search's best read {args.metric} {result.best_value:.4g} on its own pairs "
            f"(biased upward); below, the winner on fresh pairs (seed {fresh_seed})"
        )
    write_json_output(args.json, data)
    print(
        f"tuned {args.model} for {args.metric} in {time.perf_counter() - start:.1f} s "
        f"({result.evaluations} evaluations): {json_text(result.best_params, indent=None)}",
        file=sys.stderr,
    )
    if fresh_note is not None:
        print(fresh_note, file=sys.stderr)
    for line in result.boundary:
        print(f"note: {line}", file=sys.stderr)
    _print_summary(data)
    if args.plot:
        _plot_one(data, args.plot, f"{args.model} (tuned)")
    return 0


def add_model_commands(sub) -> None:
    """list, evaluate, tune."""
    p = sub.add_parser("list", help="models (baselines and learned cells) and scenarios")
    p.add_argument("--json", metavar="PATH|-", help="write the list as JSON ('-' = stdout)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("evaluate", help="SNR curve and metrics of one model")
    add_model_task_options(p)
    add_evaluation_options(p, convention="exact")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tune", help="tune a baseline's parameters for one metric")
    add_model_task_options(p)
    add_evaluation_options(p, convention="large-n")
    p.add_argument("--metric", default="area", help="area | lifetime | initial_snr | log_area")
    p.add_argument(
        "--max-state",
        type=positive_int("max-state"),
        default=None,
        help="state budget m: at most m state variables",
    )
    p.set_defaults(func=cmd_tune)
