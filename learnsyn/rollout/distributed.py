"""Data-parallel meta-training with ``torch.distributed``: the synapse pairs split across ranks.

The objective needs only the per-age sums of the weights and their squares (``PairMoments``),
so each rank simulates a share of the groups, the ranks add up their sums (one all-reduce of a
``[T, G, 4]`` tensor per tracked kind), every rank computes the same objective from the total,
and the gradients are summed across ranks:

    dL/dtheta = sum over groups g of dL/dS_g . dS_g/dtheta,

where each rank holds dL/dS_g (the same everywhere) and dS_g/dtheta for its own groups. The
sums enter the objective as ``total + (local - local.detach())``: the value of the total, the
gradient of the rank's own part.

For the split to be exact, the random numbers must not depend on it: ``GroupedSimulator`` gives
every group its own generator, seeded from one number drawn from the caller's generator, so one
process with all groups and any number of ranks with a share each simulate the same synapses.
(This is a different draw from the single-generator ``simulate_pairs``; with one process it is
the same estimator.)

Launch: ``torchrun --nproc_per_node=2 -m learnsyn.rollout.distributed --iterations 5`` (gloo on the
CPU, NCCL when every rank has a GPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from learnsyn.config import mixed_seed
from learnsyn.estimate.montecarlo import PairBatch, PairMoments, pair_groups
from learnsyn.estimate.snr import MIN_PAIRS
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.scenario import Scenario, TrackedKind
from learnsyn.synapse import Synapse


def group_range(groups: int, rank: int, world: int) -> range:
    """The groups owned by ``rank``: a contiguous, as-even-as-possible share."""
    return range(rank * groups // world, (rank + 1) * groups // world)


def group_seed(base: int, group: int) -> int:
    """The seed of one group's generator: a pure function of (base, group)."""
    return mixed_seed(base, group) & ((1 << 63) - 1)


def _smallest_divisor(number: int) -> int:
    """The smallest divisor >= 2 (the number itself when prime): sub-groups lose no pair."""
    return next(d for d in range(2, number + 1) if number % d == 0)


def check_grouped_batch(pairs: int, groups: int) -> None:
    """One line unless every group holds at least MIN_PAIRS pairs: each is simulated as a batch of
    its own, split again into sub-groups (a group of 1 pair cannot be; it raised a bare
    StopIteration)."""
    used, per_group = pair_groups(pairs, groups)
    if per_group < MIN_PAIRS:
        raise ValueError(
            f"batch = {pairs} pairs in {used} groups is not allowed for the grouped simulator: "
            f"need at least {MIN_PAIRS} pairs per group (a batch >= {MIN_PAIRS * used})"
        )


class GroupedSimulator:
    """A ``simulate_pairs``-compatible callable whose groups draw from their own generators.

    Inside an initialized process group it simulates this rank's groups only and returns the
    moments of all groups (all-reduced), differentiable through this rank's share; outside one
    (or with ``world=1``) it simulates every group. ``simulate``: the per-group simulator.
    """

    def __init__(self, simulate: Callable = fast_simulate_pairs, group=None):
        self.simulate = simulate
        self.group = group
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank(group) if distributed else 0
        self.world = dist.get_world_size(group) if distributed else 1

    def __call__(
        self, model: Synapse, scenario: Scenario, kind: TrackedKind, **batch
    ) -> PairMoments:
        """``batch``: the keywords of ``montecarlo.PairBatch``."""
        request = PairBatch(**batch)
        device, dtype, horizon = request.device, request.dtype, request.horizon
        check_grouped_batch(request.pairs, request.groups)
        groups, per_group = pair_groups(request.pairs, request.groups)
        generator = request.generator
        base = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        context = torch.enable_grad() if request.grad else torch.no_grad()
        parts = []
        with context:
            for group in group_range(groups, self.rank, self.world):
                group_generator = torch.Generator(device=device)
                group_generator.manual_seed(group_seed(base, group))
                moments = self.simulate(
                    model,
                    scenario,
                    kind,
                    **request.keywords(
                        pairs=per_group,
                        generator=group_generator,
                        groups=_smallest_divisor(per_group),
                    ),
                )
                parts.append(moments.sums.sum(1))
            owned = group_range(groups, self.rank, self.world)
            local = torch.zeros(horizon, groups, 4, device=device, dtype=dtype)
            if parts:
                local = local.index_add(1, torch.tensor(list(owned), device=device),
                                        torch.stack(parts, 1))  # fmt: skip
            if self.world > 1:
                total = local.detach().clone()
                dist.all_reduce(total, group=self.group)
                local = local + (total - local.detach())
        return PairMoments(local, per_group, kind.p_plus)


def all_reduce_gradients(model: torch.nn.Module, group=None) -> list:
    """Sum every parameter's gradient across ranks as soon as the backward has produced it
    (post-accumulate hooks, so ``training.training_step`` needs no change); returns the hook
    handles (``handle.remove()`` undoes it)."""

    def reduce(parameter: torch.Tensor) -> None:
        dist.all_reduce(parameter.grad, group=group)

    return [p.register_post_accumulate_grad_hook(reduce) for p in model.parameters()]


def objective_with(simulate: Callable) -> Callable:
    """``training.meta_objective`` with ``simulate`` in place of the default rollout."""
    from learnsyn import training

    def objective(model, scenario, config, iteration, device, grad: bool = True):
        return training.meta_objective(
            model, scenario, config, iteration, device, grad=grad, simulate=simulate
        )

    return objective


def broadcast_parameters(model: torch.nn.Module, source: int = 0) -> None:
    """Start every rank from rank ``source``'s parameters."""
    for parameter in model.parameters():
        dist.broadcast(parameter.data, source)


def main(argv: list[str] | None = None) -> int:
    """A few data-parallel meta-training iterations (run under torchrun)."""
    from learnsyn.scenario import make_scenario
    from learnsyn.training import TrainConfig, build_model, make_optimizer, training_step

    parser = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node=N -m learnsyn.rollout.distributed",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--task", default="ideal")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--state-size", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1024, help="pairs over all ranks")
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--burn-in", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    args = parser.parse_args(argv)
    try:  # before any process group: one line, not a traceback per rank
        check_grouped_batch(args.batch, PairBatch.groups)
    except ValueError as error:
        parser.error(str(error))
    groups = pair_groups(args.batch, PairBatch.groups)[0]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > groups:  # a rank without a group has no graph: its backward failed while the
        parser.error(  # others waited in all_reduce (review, session 33)
            f"{world} ranks but {groups} groups of pairs: each rank needs a group; run at most "
            f"{groups} processes"
        )
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    config = TrainConfig(
        task=args.task,
        cell=args.cell,
        state_size=args.state_size,
        batch=args.batch,
        horizon=args.horizon,
        burn_in=args.burn_in,
        iterations=args.iterations,
        seed=args.seed,
        device=str(device),
    )
    config.validate()
    scenario = make_scenario(config.task, config.task_params)
    model = build_model(config).to(device)
    broadcast_parameters(model)
    all_reduce_gradients(model)
    optimizer, scheduler = make_optimizer(model, config)
    objective = objective_with(GroupedSimulator())
    for iteration in range(config.iterations):
        start = time.perf_counter()
        outcome = training_step(
            model, scenario, config, optimizer, scheduler, iteration, device, objective
        )
        if rank == 0:
            steps = outcome.result.synapse_steps
            print(
                f"iteration {iteration}: objective {outcome.objective:.4f}, "
                f"grad norm {outcome.grad_norm:.3g}, {world} ranks, "
                f"{steps / (time.perf_counter() - start):.3g} synapse-steps/s"
                + (" (skipped: not finite)" if outcome.skipped else ""),
                flush=True,
            )
    dist.barrier()  # no rank closes its connections while another still uses them
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
