"""``learnsyn scoreboard``: every scenario x m x N with its tuned baselines, the bound and the
learned runs given (``learnsyn.scoreboard``)."""

from __future__ import annotations

import argparse
import math
import sys

from learnsyn.cli.options import positive_int
from learnsyn.estimate.snr import MIN_PAIRS


def add_scoreboard_command(sub) -> None:
    from learnsyn import scoreboard

    p = sub.add_parser(
        "scoreboard",
        help="tune every baseline for every scenario x m x N cell, add the bound and the given "
        "learned runs; cached and resumable (N = 1000 cells: about 30 min on one core; the "
        "default also runs N = 10000, about 10 x that)",
    )
    p.add_argument(
        "--tasks",
        default=",".join(scoreboard.TASKS),
        help=f"scenarios, comma-separated (default {','.join(scoreboard.TASKS)})",
    )
    p.add_argument(
        "--state-sizes",
        default=",".join(map(str, scoreboard.STATE_SIZES)),
        help="state budgets m, comma-separated (default 1,2,4)",
    )
    p.add_argument(
        "--synapses",
        default=",".join(map(str, scoreboard.SYNAPSES)),
        help="N values, comma-separated (default 1000,10000; 10000 costs about 10x more)",
    )
    p.add_argument(
        "--horizon", type=positive_int("horizon"), help="ages 0..T-1 (default 0.6 N per cell)"
    )
    p.add_argument("--metric", default="area", help="area | lifetime | log_area")
    p.add_argument("--threshold", type=float, default=1.0, help="SNR threshold theta")
    p.add_argument(
        "--runs", nargs="+", default=[], metavar="DIR", help="training runs (or folders of runs)"
    )
    p.add_argument(
        "--eval-batch",
        type=positive_int("eval-batch", MIN_PAIRS),
        default=scoreboard.EVAL_BATCH,
        help="Monte Carlo pairs of every final evaluation (learned and baselines)",
    )
    p.add_argument("--out", default="runs/scoreboard", help="output and cache directory")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a board in --out that holds cells or learned runs this call leaves out "
        "(without it such a call is refused; the cached cells and runs are kept either way)",
    )
    p.set_defaults(func=cmd_scoreboard)


def _items(text: str, option: str) -> list[str]:
    """The comma-separated items of ``text``; none at all is one clear line."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise ValueError(f"{option} {text!r} is empty: expected values separated by commas")
    return items


def _ints(text: str, option: str) -> list[int]:
    """Integers (``1e4`` allowed); a fraction, inf or a word is refused, never truncated."""
    values = []
    for item in _items(text, option):
        try:
            number = float(item)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number != int(number):
            raise ValueError(
                f"{option} {text!r}: {item!r} is not an integer; expected integers separated "
                "by commas"
            )
        values.append(int(number))
    return values


def cmd_scoreboard(args: argparse.Namespace) -> int:
    from learnsyn import scoreboard
    from learnsyn.io import check_output_dir

    check_output_dir(args.out, "--out")
    cells = scoreboard.plan_cells(
        tasks=_items(args.tasks, "--tasks"),
        state_sizes=_ints(args.state_sizes, "--state-sizes"),
        synapses=_ints(args.synapses, "--synapses"),
        horizon=args.horizon,
        metric=args.metric,
        threshold=args.threshold,
    )
    result = scoreboard.build_scoreboard(
        cells,
        args.out,
        runs=args.runs,
        eval_batch=args.eval_batch,
        device=args.device,
        overwrite=args.overwrite,
    )
    sys.stdout.write(scoreboard.markdown(result))
    print(f"wrote {args.out}/scoreboard.json, scoreboard.md, scoreboard.png", file=sys.stderr)
    return 0
