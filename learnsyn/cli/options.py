"""Command-line options shared by the ``learnsyn`` commands, and the ones generated from configs.

``add_config_options`` turns every field of a config dataclass (``TrainConfig``) into an option:
``--field-name`` with the field's type and the help in its metadata (``dict`` fields become
repeatable ``KEY=VALUE`` options, ``required`` ones must be given); ``config_from_args`` builds
and validates the config back from the parsed options. The options are therefore the config,
never a copy of it. Values are checked once, by the config's ``validate``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import MISSING
from typing import Any

from learnsyn.config import config_fields, field_kind, option_name, parse_assignments


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``learnsyn: error: ...``) and exit code 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"learnsyn: error: {message}\n")


def positive_int(name: str, minimum: int = 1) -> Callable[[str], int]:
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


def number(name: str, minimum: float | None = None, open_low: bool = False):
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


def _typed(kind: type, name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if text.strip().lower() == "none":
            return None
        try:
            value = float(text) if kind is float else int(text)
        except ValueError:
            what = "a number" if kind is float else "an integer"
            raise argparse.ArgumentTypeError(
                f"{name} {text!r} is not allowed: expected {what}"
            ) from None
        return value

    return convert


def add_config_options(parser: argparse.ArgumentParser, config_type: type) -> None:
    """One option per field of ``config_type`` (defaults shown; None means "derived")."""
    for f in config_fields(config_type):
        kind = field_kind(config_type, f.name)
        meta = f.metadata
        help_text = meta.get("help", "")
        if f.default is not MISSING and f.default is not None and not meta.get("required"):
            help_text += f" (default {f.default})"
        options: dict[str, Any] = {"dest": f.name, "help": help_text}
        if kind is dict:
            options.update(action="append", metavar=meta.get("metavar", "KEY=VALUE"))
        else:
            options.update(default=None, required=bool(meta.get("required")))
            if kind in (int, float):
                options["type"] = _typed(kind, option_name(f).lstrip("-"))
        parser.add_argument(option_name(f), **options)


def config_from_args(args: argparse.Namespace, config_type: type):
    """The validated config from options made by ``add_config_options`` (unset options keep
    the config's defaults)."""
    values: dict[str, Any] = {}
    for f in config_fields(config_type):
        given = getattr(args, f.name)
        if field_kind(config_type, f.name) is dict:
            values[f.name] = parse_assignments(given, option_name(f))
        elif given is not None:
            values[f.name] = given
    return config_type(**values).validate()


def add_model_task_options(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="model name (see `learnsyn list`)")
        p.add_argument("--param", action="append", metavar="KEY=VALUE", help="model parameter")
    p.add_argument("--task", required=True, help="scenario name (see `learnsyn list`)")
    p.add_argument("--task-param", action="append", metavar="KEY=VALUE", help="scenario parameter")
    p.add_argument(
        "--synapses",
        type=positive_int("synapses (N)"),
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
    p.add_argument("--horizon", type=positive_int("horizon"), default=1000, help="ages 0..T-1")
    p.add_argument(
        "--threshold", type=number("threshold", 0.0), default=1.0, help="SNR threshold theta"
    )
    p.add_argument(
        "--batch",
        type=positive_int("batch", 2),
        default=1024,
        help="Monte Carlo batch B: synapse pairs simulated (not N)",
    )
    p.add_argument(
        "--burn-in",
        type=positive_int("burn-in", 0),
        default=None,
        help="Monte Carlo: background steps before the tracked event (default: 5 time constants)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo random numbers")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--json", metavar="PATH|-", help="write the result as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="PNG", help="write the SNR curve plot")


def log(message: str) -> None:
    """Progress and results for people go to stderr (stdout may carry JSON)."""
    import sys

    print(message, file=sys.stderr, flush=True)
