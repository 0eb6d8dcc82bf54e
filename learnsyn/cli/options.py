"""Command-line options shared by the ``learnsyn`` commands, and the ones generated from configs.

``add_config_options`` turns every field of a config dataclass (``TrainConfig``, the degeneracy
experiments' configs) into an option: ``--field-name`` with the field's type and the help in its
metadata (``dict`` fields become repeatable ``KEY=VALUE`` options, ``tuple`` fields take several
values, ``required`` ones must be given); ``config_from_args`` builds and validates the config
back from the parsed options, ``given_options`` reads what was given. The options are therefore
the config, never a copy of it. Values are checked once, by the config's ``validate``.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING
from typing import Any

from learnsyn.config import config_fields, field_kind, option_name, parse_assignments
from learnsyn.estimate.snr import MIN_PAIRS


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``learnsyn: error: ...``) and exit code 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"learnsyn: error: {message}\n")


def environment_threads() -> int:
    """``$LEARNSYN_THREADS`` (default 1): an integer >= 1, else one line naming it."""
    import os

    text = os.environ.get("LEARNSYN_THREADS", "1")
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"LEARNSYN_THREADS={text!r} is not allowed: need an integer >= 1")
    return value


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


def seed_int(text: str, study: bool = False) -> int:
    """``--seed``: an integer in [0, MAX_SEED] (a study's: MAX_STUDY_SEED), checked before any
    work or storage."""
    from learnsyn.initialization import MAX_SEED, MAX_STUDY_SEED, check_seed

    try:
        value = int(text)
        check_seed(value, maximum=MAX_STUDY_SEED if study else MAX_SEED)
    except ValueError as error:
        maximum = MAX_STUDY_SEED if study else MAX_SEED
        reason = (
            error.args[0]
            if "allowed" in str(error)
            else f"seed = {text!r} is not allowed: need an integer in [0, {maximum}]"
        )
        raise argparse.ArgumentTypeError(reason) from None
    return value


def study_seed_int(text: str) -> int:
    return seed_int(text, study=True)


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


def _typed(kind: type, name: str, optional: bool) -> Callable[[str], Any]:
    """A number option's converter; ``none`` (the derived default) only where the field may be
    None, so that ``--iterations none`` is an error, not the default in disguise."""

    def convert(text: str) -> Any:
        if optional and text.strip().lower() == "none":
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


def _option_kind(config_type: type, name: str) -> Any:
    """``field_kind``, except that a ``tuple[X, ...]`` field (or ``| None``) stays a tuple."""
    hint = typing.get_type_hints(config_type)[name]
    for candidate in (hint, *typing.get_args(hint)):
        if typing.get_origin(candidate) is tuple:
            return candidate
    return field_kind(config_type, name)


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_config_options(
    parser: argparse.ArgumentParser,
    config_type: type,
    *,
    skip: Iterable[str] = (),
    names: dict[str, str] | None = None,
    dest_prefix: str = "",
    defaults: dict[str, Any] | None = None,
    helps: dict[str, str] | None = None,
    required: bool = True,
) -> None:
    """One option per field of ``config_type`` (defaults shown; None means "derived").

    ``skip``: fields without an option; ``names``: another option name for a field (the other
    fields keep theirs); ``dest_prefix``: prepended to each option's ``dest``; ``defaults``:
    the default to show where the caller's differs from the field's; ``helps``: help texts
    that replace the metadata's; ``required=False`` makes no option required."""
    names, defaults, helps = names or {}, defaults or {}, helps or {}
    for f in config_fields(config_type):
        if f.name in skip:
            continue
        kind = _option_kind(config_type, f.name)
        meta = f.metadata
        help_text = helps.get(f.name, meta.get("help", ""))
        default = defaults.get(f.name, f.default)
        must = bool(meta.get("required")) and required
        if default is not MISSING and default is not None and not must:
            help_text += f" (default {_shown(default)})"
        options: dict[str, Any] = {"dest": dest_prefix + f.name, "help": help_text}
        name = names.get(f.name) or option_name(f)
        if kind is dict:
            options.update(action="append", metavar=meta.get("metavar", "KEY=VALUE"))
        else:
            options.update(default=None, required=must)
            options["metavar"] = meta.get("metavar") or name.lstrip("-").replace("-", "_").upper()
            element = kind
            if typing.get_origin(kind) is tuple:
                element = typing.get_args(kind)[0]
                options["nargs"] = "+"
            if element in (int, float):
                hint = typing.get_type_hints(config_type)[f.name]
                optional = type(None) in typing.get_args(hint)
                options["type"] = _typed(element, name.lstrip("-"), optional)
        parser.add_argument(name, **options)


def given_options(
    args: argparse.Namespace, config_type: type, dest_prefix: str = ""
) -> dict[str, Any]:
    """The fields of ``config_type`` whose options made by ``add_config_options`` were given
    (several values as a tuple, ``KEY=VALUE`` items as a dict)."""
    values: dict[str, Any] = {}
    for f in config_fields(config_type):
        given = getattr(args, dest_prefix + f.name, None)
        if given is None:
            continue
        if field_kind(config_type, f.name) is dict:
            values[f.name] = parse_assignments(given, option_name(f))
        else:
            values[f.name] = tuple(given) if isinstance(given, list) else given
    return values


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
        type=positive_int("batch", MIN_PAIRS),
        default=1024,
        help="Monte Carlo batch B: synapse pairs simulated (not N)",
    )
    p.add_argument(
        "--burn-in",
        type=positive_int("burn-in", 0),
        default=None,
        help="Monte Carlo: background steps before the tracked event (default: 5 time constants)",
    )
    p.add_argument(
        "--seed", type=seed_int, default=0, help="seed of the Monte Carlo random numbers"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--json", metavar="PATH|-", help="write the result as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="FILE", help="write the SNR curve plot (.png, .pdf or .svg)")


def interrupt_status(interrupt: BaseException) -> int:
    """A command's exit status after ``interrupt``: 128 + the signal's number, 130 for
    SIGINT (Ctrl-C) and 143 for SIGTERM (an interrupt that names no signal is a Ctrl-C)."""
    return 128 + int(getattr(interrupt, "signum", 2))


def log(message: str) -> None:
    """Progress and results for people go to stderr (stdout may carry JSON)."""
    import sys

    print(message, file=sys.stderr, flush=True)
