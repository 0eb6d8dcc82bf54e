"""The learnsyn command: models, training, comparisons, studies, benchmarks, degeneracy.

Subcommands: list, evaluate, tune, train, compare, scoreboard, demo, study, bench, degeneracy.

One parser, built here from one module per command group (``models``, ``training``, ``study``,
``tools``, ``degeneracy``); ``train``'s options are generated from ``TrainConfig``. Every
command checks its input before doing any work: a bad value ends the command with exit code 2
and one line ``learnsyn: error: ...`` naming the value and what is allowed.
"""

from __future__ import annotations

import signal
import sys


def build_parser():
    from learnsyn.cli.degeneracy import add_degeneracy_commands
    from learnsyn.cli.models import add_model_commands
    from learnsyn.cli.options import Parser, positive_int
    from learnsyn.cli.scoreboard import add_scoreboard_command
    from learnsyn.cli.study import add_study_commands
    from learnsyn.cli.tools import add_tool_commands
    from learnsyn.cli.training import add_training_commands

    parser = Parser(prog="learnsyn", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=positive_int("threads"),
        default=None,
        help="torch CPU threads (default 1: the hot loop's small ops lose to thread overhead)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_model_commands(sub)
    add_training_commands(sub)
    add_study_commands(sub)
    add_scoreboard_command(sub)
    add_tool_commands(sub)
    add_degeneracy_commands(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as a Ctrl-C; the command exits with 143 (128 + 15), not 130."""

    signum = int(signal.SIGTERM)


def _terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """The command; imports happen in here, so a Ctrl-C at any moment is one line, exit 130
    (this module imports nothing heavy at its top). SIGTERM (a scheduler ending a job) is a
    Ctrl-C too: locks are released and a run says where its checkpoint is; exit 143."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread: the caller's handling stands
        previous = None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):  # a bare `learnsyn`: the usage
            parser.print_help(sys.stderr)
            return 2
        args = parser.parse_args(argv)
        import torch

        from learnsyn.cli.options import environment_threads

        torch.set_num_threads(args.threads or environment_threads())
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `learnsyn list | head -1`: the reader has all it wanted
        # (review, session 35: "error: Broken pipe", exit 1); stdout is gone, so point it at
        # devnull for the interpreter's own flush at exit
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValueError as error:
        print(f"learnsyn: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder without write permission: what was
        # written before stays (checkpoints and results are replaced atomically)
        where = f" ({error.filename})" if error.filename else ""
        print(f"learnsyn: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        from learnsyn.cli.options import interrupt_status

        print("learnsyn: interrupted", file=sys.stderr)
        return interrupt_status(interrupt)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
