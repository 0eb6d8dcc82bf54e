"""Data-parallel meta-training: 2 processes (gloo) give the gradient of 1 process."""

import socket
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from learnsyn.rollout.distributed import (
    GroupedSimulator,
    all_reduce_gradients,
    group_range,
    main,
    objective_with,
)
from learnsyn.scenario import make_scenario
from learnsyn.training import TrainConfig, build_model

# the objective is identical bit for bit; the gradients differ by the order of their sums
TOLERANCE = 1e-5
CONFIG = TrainConfig(
    task="importance",
    state_size=4,
    cell="gru",
    batch=64,
    horizon=30,
    burn_in=20,
    iterations=1,
    device="cpu",
)


def gradients(config: TrainConfig) -> tuple[float, list[torch.Tensor]]:
    """Objective and gradient of iteration 0 (inside a process group when one is initialized)."""
    torch.set_num_threads(1)
    model = build_model(config)
    if dist.is_initialized():
        all_reduce_gradients(model)
    scenario = make_scenario(config.task, config.task_params)
    objective = objective_with(GroupedSimulator())
    result = objective(model, scenario, config, 0, torch.device("cpu"))
    result.value.backward()
    return float(result.value.detach()), [p.grad.clone() for p in model.parameters()]


def _worker(rank: int, world: int, port: int, config: TrainConfig, queue) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        value, grads = gradients(config)
        if rank == 0:  # numpy arrays travel by value (tensors would by shared memory)
            queue.put((value, [grad.numpy() for grad in grads]))
        dist.barrier()  # no rank closes its connections while another still uses them
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_groups_of_one_pair_are_refused_in_one_line():
    # each group is simulated as a batch of its own: a bare StopIteration before (batch 2-31)
    scenario = make_scenario("ideal")
    for pairs in (20, 32, 47):  # (32-47: 2 pairs a group, fewer than a batch may have)
        with pytest.raises(ValueError, match=rf"batch = {pairs} pairs .* \(a batch >= 48\)"):
            GroupedSimulator()(
                build_model(CONFIG), scenario, scenario.tracked_kinds()[0], pairs=pairs,
                burn_in=5, horizon=4, generator=torch.Generator().manual_seed(0),
            )  # fmt: skip
        with pytest.raises(SystemExit):
            main(["--batch", str(pairs)])


def test_more_ranks_than_groups_are_refused_before_any_process_group(monkeypatch, capsys):
    """Review, session 33: a rank that owns no group has no graph, so its backward failed
    while the other ranks waited in all_reduce."""
    monkeypatch.setenv("WORLD_SIZE", "17")
    with pytest.raises(SystemExit):
        main(["--batch", "1024"])
    assert "17 ranks but 16 groups of pairs" in capsys.readouterr().err


def test_group_ranges_partition_the_groups():
    for groups in (2, 5, 16):
        for world in (1, 2, 3):
            owned = [g for rank in range(world) for g in group_range(groups, rank, world)]
            assert owned == list(range(groups))


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_two_processes_give_the_single_process_gradient(cell):
    config = replace(CONFIG, cell=cell)
    value, grads = gradients(config)
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(
        _worker, args=(2, _free_port(), config, queue), nprocs=2, join=True, start_method="spawn"
    )
    value_2, arrays = queue.get()
    grads_2 = [torch.from_numpy(array) for array in arrays]
    assert value_2 == value
    for single, split in zip(grads, grads_2, strict=True):
        scale = float(single.abs().max())
        assert scale > 0
        assert float((single - split).abs().max()) <= TOLERANCE * scale
