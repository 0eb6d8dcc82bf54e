"""Refusing, before any work, a request whose arrays cannot fit in memory.

``check_memory(needed, what)`` compares a command's estimate of the bytes it would allocate with
the memory this machine has available now (``MemAvailable`` of ``/proc/meminfo``, else the
physical memory) and raises one clear line naming the size when the estimate is more than
80 % of it. The estimates are deliberately generous: a refused request would have failed (or
pushed the machine into swap), an accepted one may still be slow.
"""

from __future__ import annotations

import os

FRACTION = 0.8


def available_bytes() -> int:
    """Memory available to a new allocation now (bytes)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def format_bytes(count: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:.0f} B"


def check_memory(needed: float, what: str, hint: str = "") -> None:
    """Raise ``ValueError`` when ``needed`` bytes exceed 80 % of the available memory."""
    available = available_bytes()
    if needed > FRACTION * available:
        raise ValueError(
            f"{what} would need about {format_bytes(needed)} of memory, more than this machine "
            f"has available ({format_bytes(available)})" + (f"; {hint}" if hint else "")
        )


def check_training_memory(config) -> None:
    """Refuse a ``TrainConfig`` whose rollout cannot fit in this machine's memory (on the CPU;
    on a GPU only the parameters are counted here): the batch's states over the tracked
    window and the gradient's burn-in tail (about 24 bytes per pair, step and state variable
    for the reference loop's autograd graph; 0.5 for the fast path's recomputing backward,
    which measured 0.77), and the cell's parameters with their gradients, Adam moments and
    kept copies."""
    import torch

    from learnsyn.scenario import make_scenario

    kinds = len(make_scenario(config.task, config.task_params).tracked_kinds())
    per_value = 24 if config.rollout == "reference" else 0.5
    # the training batch keeps the gradient's burn-in tail too; the evaluations only the window
    training = config.batch * (config.horizon + config.resolved_gradient_burn_in())
    evaluated = max(config.eval_batch, config.resolved_validation_batch())
    evaluation = evaluated * config.horizon
    batch = config.batch if training >= evaluation else evaluated
    window = 2 * kinds * max(training, evaluation) * config.state_size * per_value
    device = str(config.device)
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():  # the rollout lives in the GPU's memory
            index = torch.device(device if device != "auto" else "cuda").index
            free, _ = torch.cuda.mem_get_info(index)
            if window > FRACTION * free:
                raise ValueError(
                    f"meta-training with batch {batch}, horizon {config.horizon} and state "
                    f"size {config.state_size} would need about {format_bytes(window)} of GPU "
                    f"memory, more than is free ({format_bytes(free)}); give a smaller --batch, "
                    "--eval-batch, --validation-batch, --horizon or --state-size"
                )
        window = 0
    parameters = 4 * config.state_size**2 * 4 * 6
    check_memory(
        window + parameters,
        f"meta-training with batch {batch}, horizon {config.horizon} and state size "
        f"{config.state_size}",
        "give a smaller --batch, --eval-batch, --validation-batch, --horizon or --state-size",
    )
