"""``make demo``: the main job on the CPU with embedded defaults, no server.

Meta-trains a small learned synapse (a GRU with m = 2 state variables) in the ideal scenario for
N = 1000 synapses, then compares it with the hand-crafted baselines tuned for the same scenario,
N, state budget and metric, prints the table and says where the plot and TensorBoard logs are.
Run twice, it reuses a finished run and resumes an interrupted one; a run made with other
settings (an older demo's) is trained again. ``--quick`` keeps its run apart (``gru-m2-quick``).
"""

from __future__ import annotations

import argparse
import sys

from learnsyn.compare import compare_run, print_table
from learnsyn.io import check_output_dir, read_json
from learnsyn.runs import is_run_dir, settings_changed, train
from learnsyn.training import CHECKPOINT_NAME, TrainConfig

DEMO_CONFIG = TrainConfig(
    task="ideal",
    synapses=1000,
    state_size=2,
    cell="gru",
    metric="area",
    iterations=300,
    batch=512,
    horizon=600,
    device="cpu",
)
QUICK_CONFIG = TrainConfig(
    task="ideal",
    synapses=200,
    state_size=2,
    cell="gru",
    metric="area",
    iterations=4,
    batch=16,
    horizon=40,
    eval_batch=64,
    validate_every=2,
    device="cpu",
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    config = QUICK_CONFIG if args.quick else DEMO_CONFIG
    out = check_output_dir(args.out, "--out")
    # the quick demo keeps its own run: it never replaces a finished full one
    run_dir = check_output_dir(out / ("gru-m2-quick" if args.quick else "gru-m2"), "--out")
    _log(
        f"learnsyn demo: meta-training a GRU synapse (m={config.state_size}) in the "
        f"{config.task} scenario, N={config.synapses}, {config.iterations} iterations of "
        f"{config.batch} synapse pairs on the CPU; objective: area above threshold "
        f"({config.convention} convention)"
    )
    changed = settings_changed(run_dir, config)
    if changed:
        _log(f"the run in {run_dir} has other settings ({', '.join(changed)}); training again")
    done = (run_dir / "result.json").exists() and read_json(run_dir / "result.json").get("complete")
    if done and not changed:
        _log(f"reusing the finished run in {run_dir} (delete it to train again)")
    else:
        resume = is_run_dir(run_dir) and (run_dir / CHECKPOINT_NAME).exists() and not changed
        train(
            config,
            run_dir,
            resume=resume,
            overwrite=is_run_dir(run_dir) and not resume,
            progress=not args.quick,
            log=_log,
        )
    _log("comparing with tuned baselines (same scenario, N, state budget, metric) ...")
    baselines = "exponential,binary" if args.quick else None
    data = compare_run(
        run_dir, baselines, eval_batch=128 if args.quick else None, device="cpu", log=_log
    )
    print_table(data)
    _log(
        f"plot: {run_dir / 'snr_curves.png'}\ntable: {run_dir / 'comparison.md'}\n"
        f"TensorBoard: tensorboard --logdir {out}"
    )
    return 0
