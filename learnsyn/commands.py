"""Implementations of the ``learnsyn`` subcommands (argument parsing lives in ``cli.py``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from learnsyn.evaluate import evaluate
from learnsyn.io import write_json_output
from learnsyn.metrics import check_convention, check_metric
from learnsyn.registry import load_builtin_models, make_model
from learnsyn.scenario import SCENARIOS, make_scenario


def resolve_device(name: str) -> str:
    """The device name for ``--device`` (auto, cpu, cuda[:N]); one rule, in training."""
    from learnsyn.training import resolve_device as resolve

    return str(resolve(name))


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
    from learnsyn.cli import parse_assignments

    params = parse_assignments(args.param, "--param")
    task_params = parse_assignments(args.task_param, "--task-param")
    scenario = make_scenario(args.task, task_params)
    model = make_model(args.model, params)
    return model, scenario, params


def _check_common(args) -> None:
    check_convention(args.convention)
    from learnsyn.evaluate import METHODS

    if args.method not in METHODS:
        raise ValueError(f"unknown method {args.method!r}; allowed: {', '.join(METHODS)}")


def _print_summary(result: dict, out=None) -> None:
    out = sys.stderr if out is None else out
    m = result["metrics"]
    err = result.get("metrics_stderr") or {}

    def fmt(key):
        return f"{m[key]:.4g}" + (f" +- {err[key]:.2g}" if key in err else "")

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
    device = resolve_device(args.device)
    result = evaluate(
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
    ).to_json()
    write_json_output(args.json, result)
    _print_summary(result)
    if args.plot:
        _plot_one(result, args.plot, args.model)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from learnsyn.tuning import tune

    _check_common(args)
    check_metric(args.metric)
    model, scenario, params = _model_and_task(args)
    start = time.perf_counter()

    def progress(count, trial_params, value):
        if count % 25 == 0:
            print(f"  tuning {args.model}: {count} evaluations, last {value:.4g}", file=sys.stderr)

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
        progress=progress,
    )
    data = result.to_json()
    write_json_output(args.json, data)
    print(
        f"tuned {args.model} for {args.metric} in {time.perf_counter() - start:.1f} s "
        f"({result.evaluations} evaluations): {json.dumps(result.best_params)}",
        file=sys.stderr,
    )
    _print_summary(data)
    if args.plot:
        _plot_one(data, args.plot, f"{args.model} (tuned)")
    return 0


def add_training_commands(sub) -> None:
    """train, compare, demo, bench (and study when present)."""
    from learnsyn import demo

    p = sub.add_parser("train", help="meta-train a learned synapse")
    p.add_argument("--task", required=True, help="scenario name")
    p.add_argument("--task-param", action="append", metavar="KEY=VALUE")
    p.add_argument("--synapses", type=int, required=True, help="N (scales SNR by sqrt(N))")
    p.add_argument("--state-size", type=int, required=True, help="state variables m")
    p.add_argument("--cell", required=True, help="rnn | gru | chain")
    p.add_argument("--metric", default="area", help="area | lifetime | log_area")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--batch", type=int, default=512, help="Monte Carlo batch B (pairs), not N")
    p.add_argument("--horizon", type=int, default=600, help="tracked window T (ages 0..T-1)")
    p.add_argument("--burn-in", type=int, default=None, help="default 2.5 x horizon")
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--temperature", type=float, default=0.3, help="surrogate smoothness, start")
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--convention", default="large-n", help="large-n (default) | exact")
    p.add_argument("--init", default="default", help="default or a degeneracy init name")
    p.add_argument(
        "--cell-param",
        action="append",
        metavar="KEY=VALUE",
        help="chain cell's starting chain: amplitude, ratio, first_conductance",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--out", default=None, help="run directory (default runs/<task>/<name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run first")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--figure-every", type=int, default=100)
    p.add_argument("--eval-batch", type=int, default=4096)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="compare a trained synapse with tuned baselines")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--baselines", default=None, help="comma-separated names (default: all fit)")
    p.add_argument("--eval-batch", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", metavar="PATH|-")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="the main job on the CPU with embedded defaults")
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--quick", action="store_true", help="a smaller run (for tests)")
    p.set_defaults(func=demo.cmd_demo)

    p = sub.add_parser("bench", help="print speed figures (exact evaluation, simulation)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="PATH|-")
    p.set_defaults(func=cmd_bench)

    try:
        from learnsyn.study import add_study_parser
    except ImportError:  # pragma: no cover
        pass
    else:
        add_study_parser(sub)


def train_config_from_args(args: argparse.Namespace):
    from learnsyn.cli import parse_assignments
    from learnsyn.training import TrainConfig

    scenario_params = parse_assignments(args.task_param, "--task-param")
    scenario = make_scenario(args.task, scenario_params)
    config = TrainConfig(
        task=args.task,
        task_params=dict(scenario.params),
        synapses=args.synapses,
        state_size=args.state_size,
        cell=args.cell,
        metric=args.metric,
        iterations=args.iterations,
        batch=args.batch,
        horizon=args.horizon,
        burn_in=args.burn_in,
        lr=args.lr,
        temperature=args.temperature,
        temperature_final=min(args.temperature, 0.1 * args.temperature),
        threshold=args.threshold,
        convention=args.convention,
        init=args.init,
        cell_params=parse_assignments(args.cell_param, "--cell-param"),
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        figure_every=args.figure_every,
        eval_batch=args.eval_batch,
    )
    config.validate()
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from learnsyn.runs import default_run_dir, train

    config = train_config_from_args(args)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    log = _stderr_log
    try:
        result = train(
            config,
            run_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            log=log,
        )
    except KeyboardInterrupt:
        return 130
    evaluation = result.get("evaluation", {}).get("metrics", {})
    log(
        f"run: {run_dir}  ({result['iterations_done']} iterations, "
        f"{result['skipped_updates']} skipped updates, "
        f"{result['synapse_steps_per_second']:.3g} synapse-steps/s forward+backward)"
    )
    if evaluation:
        log(
            f"final evaluation ({config.convention} convention): "
            + ", ".join(f"{k} {v:.4g}" for k, v in evaluation.items())
        )
    log(f"TensorBoard: tensorboard --logdir {run_dir}")
    log(f"compare: learnsyn compare --run {run_dir}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from learnsyn.compare import compare_run, print_table

    data = compare_run(args.run, args.baselines, args.eval_batch, args.device, log=_stderr_log)
    write_json_output(args.json, data)
    print_table(data, sys.stderr if args.json == "-" else sys.stdout)
    _stderr_log(
        f"written: {Path(args.run) / 'comparison.json'}, "
        f"{Path(args.run) / 'snr_curves.png'}, {Path(args.run) / 'comparison.md'}"
    )
    return 0


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from learnsyn import bench

    results = bench.run_benchmarks(resolve_device(args.device), args.quick)
    bench.print_report(results, sys.stderr if args.json == "-" else sys.stdout)
    write_json_output(args.json, results)
    return 0


def ensure_directory(path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
