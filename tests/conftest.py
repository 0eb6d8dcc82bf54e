"""Shared test setup: one torch thread (the suite runs on 2 shared cores), seeded helpers."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run only part K of N (K = 1..N): every N-th collected test from the K-th on; "
        "tests/run_shards.py runs all N parts side by side",
    )


def shard_of(value: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N; a clear error otherwise."""
    try:
        k, n = (int(part) for part in value.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise pytest.UsageError(f"--shard {value!r}: expected K/N with 1 <= K <= N, e.g. 1/2")
    return k, n


def pytest_collection_modifyitems(config, items):
    if config.getoption("shard"):
        k, n = shard_of(config.getoption("shard"))
        config.hook.pytest_deselected(items=[t for i, t in enumerate(items) if i % n != k - 1])
        items[:] = items[k - 1 :: n]
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


#: the smallest training run that exercises every stage (train, checkpoint, final evaluation)
TINY_TRAIN = [
    "--task", "ideal", "--synapses", "100", "--state-size", "2", "--cell", "gru",
    "--iterations", "4", "--batch", "16", "--horizon", "30", "--burn-in", "30",
    "--eval-batch", "32", "--no-progress", "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Three tiny training runs (seeds 0, 1, 2) in one folder, trained once per test session;
    tests must not write into them."""
    from learnsyn.cli import main

    root = tmp_path_factory.mktemp("tiny_runs")
    for seed in range(3):
        assert (
            main(["train", *TINY_TRAIN, "--seed", str(seed), "--out", str(root / f"s{seed}")]) == 0
        )
    return root


@pytest.fixture
def stored_run():
    """``load(name)`` -> ``(stored, config, model)`` for ``tests/data/<name>.json``: a trained
    run's resolved config and selected parameters, kept for the README claims' tests."""
    from learnsyn.config import TrainConfig
    from learnsyn.training import build_model

    def load(name: str):
        stored = json.loads((Path(__file__).parent / "data" / f"{name}.json").read_text())
        config = TrainConfig.from_dict(stored["config"])
        model = build_model(config)
        model.load_state_dict({k: torch.tensor(v) for k, v in stored["state_dict"].items()})
        return stored, config, model

    return load


@dataclass
class CommandResult:
    """What a ``learnsyn`` command printed and returned (like ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def learnsyn_command(capfd, monkeypatch):
    """``learnsyn_command(args)`` runs ``learnsyn ARGS`` in this process (``learnsyn.cli.main``,
    which the console script calls) and returns its exit code and output: what reaches file
    descriptors 1 and 2 (C-level writes too), plus the warnings a fresh interpreter would print.
    In-process saves the 2-4 s of a fresh interpreter per call;
    ``test_entry_point_prints_what_main_prints`` compares the two."""
    import warnings

    from learnsyn.cli import main

    monkeypatch.delenv("LEARNSYN_THREADS", raising=False)

    def command(args):
        capfd.readouterr()
        threads = torch.get_num_threads()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                code = main([str(arg) for arg in args])
            except SystemExit as stop:  # argparse's own exits (usage errors, --help)
                if isinstance(stop.code, int) or stop.code is None:
                    code = stop.code or 0
                else:  # as the interpreter does: the message on stderr, exit code 1
                    print(stop.code, file=sys.stderr)
                    code = 1
            finally:
                torch.set_num_threads(threads)
        out, err = capfd.readouterr()
        err += "".join(
            warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
            for w in caught
        )
        return CommandResult(code, out, err)

    return command


def learnsyn_subprocess(args, timeout=300, **kwargs):
    """``learnsyn ARGS`` in a fresh interpreter (``python -m learnsyn.cli``, which runs the
    ``main`` the console script calls): for what needs one (signals, what imports print)."""
    return subprocess.run(
        [sys.executable, "-m", "learnsyn.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
