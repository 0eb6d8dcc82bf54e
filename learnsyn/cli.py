"""The ``learnsyn`` command: list, evaluate, tune, train, compare, study, bench, degeneracy, demo.

Every command checks its input before doing any work: a bad value ends the command with exit
code 2 and one line ``learnsyn: error: ...`` naming the value and what is allowed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from learnsyn import commands


def parse_assignments(items: list[str] | None, what: str) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; malformed items raise one clear line."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"{what} {item!r} is not allowed: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _positive_int(name: str, minimum: int = 1) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} {text!r} is not allowed: expected an integer >= {minimum}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} {value} is not allowed: expected an integer >= {minimum}"
            )
        return value

    return convert


def _number(name: str, minimum: float | None = None, open_low: bool = False):
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(
                f"{name} {text!r} is not allowed: need a finite number"
            )
        if minimum is not None and (value < minimum or (open_low and value == minimum)):
            sign = ">" if open_low else ">="
            raise argparse.ArgumentTypeError(
                f"{name} {value:g} is not allowed: expected a number {sign} {minimum:g}"
            )
        return value

    return convert


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"learnsyn: error: {message}\n")


def add_model_task_options(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="model name (see `learnsyn list`)")
        p.add_argument("--param", action="append", metavar="KEY=VALUE", help="model parameter")
    p.add_argument("--task", required=True, help="scenario name (see `learnsyn list`)")
    p.add_argument("--task-param", action="append", metavar="KEY=VALUE", help="scenario parameter")
    p.add_argument(
        "--synapses",
        type=_positive_int("synapses (N)"),
        required=True,
        help="N, the number of synapses of the memory system (scales SNR by sqrt(N))",
    )


def add_evaluation_options(p: argparse.ArgumentParser, convention: str) -> None:
    p.add_argument("--method", default="auto", help="auto | exact | monte-carlo")
    p.add_argument(
        "--convention",
        default=convention,
        help=f"noise convention: exact (seed) | large-n (default here: {convention})",
    )
    p.add_argument("--horizon", type=_positive_int("horizon"), default=1000, help="ages 0..T-1")
    p.add_argument("--threshold", type=_number("threshold", 0.0), default=1.0)
    p.add_argument(
        "--batch",
        type=_positive_int("batch", 2),
        default=1024,
        help="Monte Carlo batch B: synapse pairs simulated (not N)",
    )
    p.add_argument("--burn-in", type=_positive_int("burn-in", 0), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--json", metavar="PATH|-", help="write the result as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="PNG", help="write the SNR curve plot")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="learnsyn", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=_positive_int("threads"),
        default=None,
        help="torch CPU threads (default 1: the hot loop's small ops lose to thread overhead)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="models and scenarios with their parameters")
    p.add_argument("--json", metavar="PATH|-")
    p.set_defaults(func=commands.cmd_list)

    p = sub.add_parser("evaluate", help="SNR curve and metrics of one model")
    add_model_task_options(p)
    add_evaluation_options(p, convention="exact")
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("tune", help="tune a baseline's parameters for one metric")
    add_model_task_options(p)
    add_evaluation_options(p, convention="large-n")
    p.add_argument("--metric", default="area", help="area | lifetime | initial_snr | log_area")
    p.add_argument(
        "--max-state",
        type=_positive_int("max-state"),
        default=None,
        help="state budget m: at most m variables",
    )
    p.set_defaults(func=commands.cmd_tune)

    commands.add_training_commands(sub)
    try:
        from learnsyn.degeneracy.cli import add_degeneracy_parser
    except ImportError:  # pragma: no cover - the module is optional while it is being written
        pass
    else:
        add_degeneracy_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads or int(os.environ.get("LEARNSYN_THREADS", "1")))
    try:
        return int(args.func(args) or 0)
    except ValueError as error:
        print(f"learnsyn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("learnsyn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
