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


class NotEnoughMemory(ValueError):
    """A run or evaluation refused before it starts because it would not fit in memory (a
    study prunes the trial and goes on: its size, not the worker, is at fault)."""


def check_memory(needed: float, what: str, hint: str = "") -> None:
    """Raise ``NotEnoughMemory`` when ``needed`` bytes exceed 80 % of the available memory."""
    available = available_bytes()
    if needed > FRACTION * available:
        raise NotEnoughMemory(
            f"{what} would need about {format_bytes(needed)} of memory, more than this machine "
            f"has available ({format_bytes(available)})" + (f"; {hint}" if hint else "")
        )


#: bytes per pair, step and branch of a differentiated rollout on the CPU, as ``(fixed, per state
#: variable)`` (measured in session 31 by peak resident memory of one objective and its
#: backward, 2048-8192 pairs, horizon 200): the reference loop's autograd graph about 57 at
#: m = 2 and 178-289 at m = 8; the fast path's recomputing kernels about 7 at m = 2 and 8, 13
#: at m = 32, and 32 at m = 8 in ``bounded`` (the rounding's uniform numbers). Until then one
#: figure per state variable (0.5 fast, 24 reference) was used for every rollout asked for
TRAINING_BYTES = {"reference": (24.0, 36.0), "fast": (8.0, 1.0), "fast-constrained": (8.0, 4.5)}
#: bytes per pair of an evaluation without gradient (Monte Carlo, forward only: the pair's
#: states and its share of a chunk of random numbers, whatever the horizon), as ``(fixed, per
#: state variable)``: measured in session 35 at m = 2, 1.25 KB per pair (262,144 and 1,048,576
#: pairs, horizon 600). Until then evaluate counted 384 B (3 x too few: it would have accepted
#: 45 M pairs needing 55 GiB) and training 2 x horizon x 5 B (6 KB at horizon 600: 4 x too many)
EVALUATION_PAIR_BYTES = (900.0, 224.0)
#: where the scenario maps its own events (sparse, correlated, importance: the stream's state
#: and its numbers), the fixed part, and where it constrains the state (bounded, noisy: the
#: constraint's numbers), the part per state variable; measured in session 38 by peak resident
#: memory at 65,536 pairs, horizon 600, m = 2 and 8 (per pair and tracked kind: sparse 3.1-3.4
#: KB, correlated 2.7-3.0, importance 3.5-3.8, bounded and noisy 3.0 and 8.3 KB, where the
#: ideal figures counted 1.3-2.7; review, session 38)
STREAM_PAIR_BYTES = 3600.0
CONSTRAINED_VARIABLE_BYTES = 1050.0


def evaluation_bytes(pairs: int, state_size: int, scenario=None) -> float:
    """Bytes of a Monte Carlo evaluation's ``pairs`` pairs of ``state_size`` variables for every
    tracked kind of ``scenario`` (``EVALUATION_PAIR_BYTES``, with ``STREAM_PAIR_BYTES`` and
    ``CONSTRAINED_VARIABLE_BYTES`` where they apply; None: the ideal scenario)."""
    fixed, per_variable = EVALUATION_PAIR_BYTES
    kinds = 1
    if scenario is not None:
        from learnsyn.scenario import Scenario

        kinds = len(scenario.tracked_kinds())
        if type(scenario).next_events is not Scenario.next_events:
            fixed = STREAM_PAIR_BYTES
        if scenario.constrains_state:
            per_variable = CONSTRAINED_VARIABLE_BYTES
    return kinds * pairs * (fixed + per_variable * state_size)


#: bytes per pair, step, branch and hidden unit of the ``mlp`` cell's reference graph (measured
#: in session 35: 204-254 B per pair-step at width 32, 3.3 GiB at width 256 for 1.8 M pair-steps)
MLP_REFERENCE_BYTES_PER_UNIT = 8.0


def _mlp_width(config) -> int:
    from learnsyn.registry import model_class
    from learnsyn.synapse import resolve_params

    specs = model_class("mlp").info.params
    return int(resolve_params(specs, config.cell_params, "cell 'mlp'")["width"])


#: bytes per pair, step, branch and state variable on a GPU, where the kernels were not
#: measured: the lenient figure used before session 31, so that no run that fits is refused
GPU_BYTES = 0.5
#: bytes per grid state, branch, kind and step (burn-in and window) of the exact grid objective
#: (16 levels, measured: m = 3, horizon 300 and 600, 95 and 121 MiB against 132 and 265
#: estimated; m = 2 is below a fixed 10 MiB)
GRID_BYTES = 24


def likely_rollout(config) -> str:
    """What a ``TrainConfig``'s training will run, as far as the config alone says: ``grid``,
    ``reference`` (asked for; the chain cell, which the fast path never differentiates) or
    ``fast``. A run that has built its model passes the rollout it found instead
    (``training.training_rollout``)."""
    if config.resolved_estimator() == "grid":
        return "grid"
    if config.rollout == "reference" or config.cell == "chain":
        return "reference"
    return "fast"


def check_training_memory(config, rollout: str | None = None) -> None:
    """Refuse a ``TrainConfig`` whose rollout cannot fit in this machine's memory (on the CPU;
    on a GPU only the parameters are counted here): the batch's states over the tracked
    window and the gradient's burn-in tail (``TRAINING_BYTES`` per pair, step and branch of the
    ``rollout`` that runs, ``likely_rollout`` when not given; a native or Triton kernel counts as
    ``fast``), the evaluations' pairs (``EVALUATION_PAIR_BYTES``), or for
    the exact grid objective its distributions over ``levels ** m`` states at every step, and
    the cell's parameters with their gradients, Adam moments and kept copies."""
    import torch

    from learnsyn.scenario import make_scenario

    scenario = make_scenario(config.task, config.task_params)
    kinds = len(scenario.tracked_kinds())
    constrained = bool(scenario.constrains_state)
    rollout = likely_rollout(config) if rollout is None else rollout
    # the training batch keeps the gradient's burn-in tail too; the evaluations only the window
    training = 2 * kinds * config.batch * (config.horizon + config.resolved_gradient_burn_in())
    evaluated = max(config.eval_batch, config.resolved_validation_batch())
    evaluation = 2 * kinds * evaluated * config.horizon
    m = config.state_size
    if rollout == "reference":
        fixed, per_variable = TRAINING_BYTES["reference"]
        if config.cell == "mlp":  # its hidden units' activations are in the graph too (review,
            # session 35: 3.67 GiB at width 256 where 169 MiB was counted)
            fixed += MLP_REFERENCE_BYTES_PER_UNIT * _mlp_width(config)
    else:
        fixed, per_variable = TRAINING_BYTES["fast-constrained" if constrained else "fast"]
    train_bytes = training * (fixed + per_variable * m)
    evaluated_bytes = evaluation_bytes(evaluated, m, scenario)
    window = max(train_bytes, evaluated_bytes)
    what = f"batch {config.batch if train_bytes >= evaluated_bytes else evaluated}"
    if rollout == "grid":
        states = float(scenario.params["levels"]) ** m
        steps = config.horizon + (config.resolved_burn_in() or 0)
        window = GRID_BYTES * states * 2 * kinds * steps
        what = f"the exact grid ({scenario.params['levels']}^{m} states)"
    device = str(config.device)
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():  # the rollout lives in the GPU's memory
            index = torch.device(device if device != "auto" else "cuda").index
            free, _ = torch.cuda.mem_get_info(index)
            if rollout not in ("grid", "reference"):  # (the kernels' use there is not measured)
                window = GPU_BYTES * m * max(training, evaluation)
            if window > FRACTION * free:
                raise NotEnoughMemory(
                    f"meta-training with {what}, horizon {config.horizon} and state "
                    f"size {config.state_size} would need about {format_bytes(window)} of GPU "
                    f"memory, more than is free ({format_bytes(free)}); give a smaller --batch, "
                    "--eval-batch, --validation-batch, --horizon or --state-size"
                )
        window = 0
    parameters = 4 * config.state_size**2 * 4 * 6
    check_memory(
        window + parameters,
        f"meta-training with {what}, horizon {config.horizon} and state size {config.state_size}",
        "give a smaller --batch, --eval-batch, --validation-batch, --horizon or --state-size",
    )
