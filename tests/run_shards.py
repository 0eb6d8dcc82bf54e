"""Run the test suite as N interleaved parts side by side (``make test``): one process per core.

Each test is single-threaded (``conftest`` sets one torch thread), so one pytest process leaves
the second of the machine's two cores idle. ``python tests/run_shards.py [--shards N] [PYTEST
ARGS]`` starts ``pytest --shard K/N`` for K = 1..N, prints each part's output when it ends, and
exits with the first non-zero status (0 when every part passed; a part that selected no test
counts as passed). Each part keeps its own pytest cache; their failures are merged into the
usual one, so a later ``pytest --lf`` reruns every failed test. Options that read the last
failures or the cache (``--lf``, ``--ff``, ``--sw``, ``--nf``) run as one part.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_TESTS_COLLECTED = 5  # pytest's exit code when a part selected nothing
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".pytest_cache"
LAST_FAILED = Path("v") / "cache" / "lastfailed"
ONE_PART = {"--lf", "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise",
            "--sw-skip", "--stepwise-skip", "--nf", "--new-first"}  # fmt: skip


def default_shards() -> int:
    """One part per usable core, at most 4 (each part holds its own copy of the fixtures)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def part_command(k: int, n: int, pytest_args: list[str]) -> list[str]:
    """Part ``k`` of ``n``: pytest on its share, with a cache folder of its own."""
    cache = ["-o", f"cache_dir={CACHE / f'part-{k}'}"] if n > 1 else []
    return [sys.executable, "-m", "pytest", f"--shard={k}/{n}", *cache, *pytest_args]


def _read_last_failed(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def seed_part_caches(n: int) -> None:
    """Start every part's cache from the usual last failures, so that each part's pytest drops
    the ones it ran and passed, and keeps the others."""
    old = _read_last_failed(CACHE / LAST_FAILED) or {}
    for k in range(1, n + 1):
        path = CACHE / f"part-{k}" / LAST_FAILED
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(old))


def merge_last_failed(n: int) -> None:
    """The last failures after the run, where a plain ``pytest --lf`` reads them: an old one
    stays unless the part that ran it passed it (it is then gone from that part's cache), and
    every part's new failures are added."""
    parts = [_read_last_failed(CACHE / f"part-{k}" / LAST_FAILED) for k in range(1, n + 1)]
    if any(part is None for part in parts):
        return  # a part wrote no cache (e.g. -p no:cacheprovider): leave the usual one
    old = set(_read_last_failed(CACHE / LAST_FAILED) or {})
    kept = set.intersection(*(set(part) for part in parts))
    new = set().union(*(set(part) for part in parts)) - old
    (CACHE / LAST_FAILED).parent.mkdir(parents=True, exist_ok=True)
    merged = dict.fromkeys(sorted(kept | new), True)
    (CACHE / LAST_FAILED).write_text(json.dumps(merged, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shards",
        type=int,
        default=default_shards(),
        help="parts run side by side (default: usable cores, at most 4)",
    )
    args, pytest_args = parser.parse_known_args(argv)
    if args.shards < 1:
        parser.error(f"--shards {args.shards}: expected at least 1")
    shards = args.shards
    if shards > 1 and ONE_PART & set(pytest_args):
        print("note: --lf, --ff and --sw read the last failures: one part", flush=True)
        shards = 1
    started = time.monotonic()
    if shards > 1:
        seed_part_caches(shards)
    parts = []
    for k in range(1, shards + 1):
        log = tempfile.TemporaryFile(mode="w+")
        command = part_command(k, shards, pytest_args)
        parts.append((k, log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
    codes = []
    try:
        for k, log, process in parts:
            codes.append(process.wait())
            log.seek(0)
            print(f"===== part {k} of {shards}: exit {codes[-1]} =====", flush=True)
            sys.stdout.write(log.read())
            sys.stdout.flush()
    except KeyboardInterrupt:
        for _, _, process in parts:
            process.terminate()
        raise
    if shards > 1:
        merge_last_failed(shards)
    print(f"===== {shards} parts in {time.monotonic() - started:.0f} s: exit {codes} =====")
    failed = [code for code in codes if code not in (0, NO_TESTS_COLLECTED)]
    if failed:
        return failed[0]
    return 0 if 0 in codes else NO_TESTS_COLLECTED


if __name__ == "__main__":
    sys.exit(main())
