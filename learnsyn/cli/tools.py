"""``learnsyn bench``: speed figures of exact evaluation, simulation and the meta-training
rollouts (``learnsyn.tools.bench``)."""

from __future__ import annotations

import argparse
import sys

from learnsyn.config import resolve_device
from learnsyn.io import check_output_file, write_json_output


def add_tool_commands(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="print speed figures (exact evaluation, simulation, rollouts); "
        "--quick for a short run",
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument(
        "--quick", action="store_true", help="small sizes (about 1 minute; full: about 22)"
    )
    p.add_argument("--json", metavar="PATH|-", help="write the figures as JSON ('-' = stdout)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from learnsyn.tools import bench

    check_output_file(args.json, "--json")
    out = sys.stderr if args.json == "-" else sys.stdout
    results = bench.run_benchmarks(str(resolve_device(args.device)), args.quick, out=out)
    write_json_output(args.json, results)
    return 0
