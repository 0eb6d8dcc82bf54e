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
    """Refuse a ``TrainConfig`` whose rollout cannot fit: the batch's states over the tracked
    window (about 24 bytes per pair, step and state variable for the reference loop's autograd
    graph, at least 1 for the fast path's recomputing backward), and the cell's parameters with
    their gradients, Adam moments and kept copies."""
    from learnsyn.scenario import make_scenario

    kinds = len(make_scenario(config.task, config.task_params).tracked_kinds())
    per_value = 24 if config.rollout == "reference" else 1
    batch = max(config.batch, config.eval_batch)
    window = 2 * kinds * batch * config.horizon * config.state_size * per_value
    parameters = 4 * config.state_size**2 * 4 * 6
    check_memory(
        window + parameters,
        f"meta-training with batch {batch}, horizon {config.horizon} and state size "
        f"{config.state_size}",
        "give a smaller --batch, --eval-batch, --horizon or --state-size",
    )
