"""``learnsyn train``, ``compare`` and ``demo``: meta-train a learned synapse, compare it with
tuned baselines, and the two together with embedded defaults (``make demo``).

``train``'s options are generated from ``TrainConfig`` (``learnsyn.cli.options``), plus the
options of the run directory (``--out``, ``--resume``, ``--overwrite``, ``--no-progress``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from learnsyn.cli.options import add_config_options, config_from_args, interrupt_status, log
from learnsyn.config import TrainConfig
from learnsyn.estimate.snr import check_pairs
from learnsyn.io import check_output_dir, check_output_file, write_json_output


def add_training_commands(sub) -> None:
    """train, compare, demo."""
    from learnsyn.cli.demo import cmd_demo

    p = sub.add_parser("train", help="meta-train a learned synapse")
    add_config_options(p, TrainConfig)
    p.add_argument("--out", default=None, help="run directory (default runs/<task>/<name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="compare a trained synapse with tuned baselines")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--baselines", default=None, help="comma-separated names (default: all fit)")
    p.add_argument(
        "--eval-batch",
        type=int,
        default=None,
        help="Monte Carlo pairs of the evaluations (default: the run's, at least 8192)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--json", metavar="PATH|-", help="also write comparison.json here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="the main job on the CPU with embedded defaults")
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--quick", action="store_true", help="a smaller run (for tests)")
    p.set_defaults(func=cmd_demo)


def _gone_start_file(args: argparse.Namespace) -> None:
    """A resumed run whose start file is gone (moved, deleted) resumes from its checkpoint: the
    run's own record of its start, start-synapse.json, stands for the file (the same synapse,
    so the same start)."""
    from learnsyn.runs import CHECKPOINT_NAME, START_NAME, default_run_dir
    from learnsyn.warm_start import tuned_model

    start = args.start_from
    if not (args.resume and start) or tuned_model(start) or Path(start).exists():
        return
    run_dir = args.out
    if run_dir is None:  # the default directory, named without the start (review, session 33)
        try:
            without = argparse.Namespace(**{**vars(args), "start_from": None})
            run_dir = default_run_dir(config_from_args(without, TrainConfig))
        except ValueError:  # the config's own error comes next, with the start named
            return
    record = Path(run_dir) / START_NAME
    if record.exists() and (Path(run_dir) / CHECKPOINT_NAME).exists():
        log(f"note: --start-from {start} is gone; the run's record of its start, {record}, "
            "stands for it")  # fmt: skip
        args.start_from = str(record)


def cmd_train(args: argparse.Namespace) -> int:
    from learnsyn.runs import RunInterrupted, default_run_dir, train

    _gone_start_file(args)
    config = config_from_args(args, TrainConfig)
    run_dir = args.out if args.out is not None else default_run_dir(config)
    check_output_dir(run_dir, "--out", locked=True)  # ("" refused: it meant the default)
    run_dir = Path(run_dir)
    try:
        result = train(
            config,
            run_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            log=log,
        )
    except RunInterrupted as interrupted:  # train said where its checkpoint is
        return interrupt_status(interrupted)
    except KeyboardInterrupt as interrupt:
        from learnsyn.runs import CHECKPOINT_NAME

        if (Path(run_dir) / CHECKPOINT_NAME).exists():
            log(
                f"learnsyn: interrupted; {run_dir} keeps its last checkpoint (continue with "
                "--resume)"
            )
        elif (Path(run_dir) / "config.json").exists():  # --resume then starts at iteration 0
            log(
                f"learnsyn: interrupted before the first checkpoint; continue {run_dir} with "
                "--resume (it starts from iteration 0) or start over with --overwrite"
            )
        else:
            log(f"learnsyn: interrupted before {run_dir} was written; run the command again")
        return interrupt_status(interrupt)
    final = result.get("evaluation", {})
    evaluation = final.get("metrics", {})
    errors = final.get("metrics_stderr") or {}
    log(
        f"run: {run_dir}  ({result['iterations_done']} iterations, "
        f"{result['skipped_updates']} skipped updates, "
        f"{result['synapse_steps_per_second']:.3g} synapse-steps/s forward+backward)"
    )
    if evaluation:
        selected = result.get("selected", {}).get("iteration")
        log(
            f"final evaluation of the parameters selected at iteration {selected} "
            + (
                f"(exact on the level grid, {config.convention} convention): "
                if final.get("method") == "exact"
                else f"(Monte Carlo, {final.get('batch_pairs')} pairs, its own seed, "
                f"{config.convention} convention; +- one standard error): "
            )
            + ", ".join(
                f"{k} {v:.4g}" + (f" +- {errors[k]:.2g}" if k in errors else "")
                for k, v in evaluation.items()
            )
        )
    check = final.get("stationarity")
    if check and not check["stationary"]:
        log(
            f"warning: not stationary: {check['metric']} {check['value']:.4g} after "
            f"{check['burn_in']} burn-in steps against {evaluation.get(check['metric'], 0):.4g} "
            "after the run's; training scored the transient from the initial state: use a "
            "longer --burn-in"
        )
    log(f"TensorBoard: tensorboard --logdir {run_dir}")
    log(f"compare: learnsyn compare --run {run_dir}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from learnsyn.compare import compare_run, print_table

    if args.eval_batch is not None:
        check_pairs(args.eval_batch, "--eval-batch")
    check_output_file(args.json, "--json")
    check_output_dir(args.run, "--run")
    data = compare_run(args.run, args.baselines, args.eval_batch, args.device, log=log)
    write_json_output(args.json, data)
    print_table(data, sys.stderr if args.json == "-" else sys.stdout)
    from learnsyn.runs import read_run_config

    run_config = read_run_config(Path(args.run))
    batch = args.eval_batch or max(run_config.eval_batch, 8192)
    log(
        f"measured on: the run's selected parameters by Monte Carlo with {batch} pairs and the "
        "compare seed (fresh numbers: they differ from train's final evaluation within the "
        "errors); baselines tuned for the run, exact where possible; +- one standard error"
    )
    log(
        f"written: {Path(args.run) / 'comparison.json'}, "
        f"{Path(args.run) / 'snr_curves.png'}, {Path(args.run) / 'comparison.md'}"
    )
    return 0
