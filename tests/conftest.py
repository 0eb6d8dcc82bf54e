"""Shared test setup: one torch thread (the suite runs on 2 shared cores), seeded helpers."""

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
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
