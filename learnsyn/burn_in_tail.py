"""Paired rollouts whose gradient reaches into the burn-in: the unbiased training gradient.

``simulate_pairs`` and ``fast_simulate_pairs`` run the burn-in without gradient, so the state the
tracked event finds is treated as if it did not depend on the parameters. It does: its
distribution is the synapse's stationary distribution. The gradient that ignores this is biased,
and measured to be large (docs/learned-vs-linear.md): for a linear synapse it sees a larger
increment raise the signal of early ages but not their noise (the SNR of a linear synapse does not
depend on the increment's scale at all), and longer time scales raise the signal without the
noise they bring; for the GRU it drove the update gates and the input weights at Adam's full rate
into a regime whose true area was lower, from every initialization tried.

``simulate_pairs_with_tail`` keeps the last ``tail`` steps of the burn-in inside the window that
is differentiated (BPTT through ``tail + horizon`` steps); the remaining bias is what the state
``tail`` steps before the tracked event still carries (a factor ``lambda^tail`` for a synapse of
slowest mode ``lambda``). Both branches of a pair share those steps. The fast path (tanh RNN and
GRU in unconstrained scenarios, through the compiled kernels of ``learnsyn.rollout``) runs the
tail and the window in one kernel call, with the tracked event as row ``tail``; everything else
runs the reference loop with gradient over the tail.
"""

from __future__ import annotations

import torch

from learnsyn.estimate.montecarlo import PairMoments, pair_groups, simulate_pairs
from learnsyn.scenario import Scenario, TrackedKind
from learnsyn.synapse import MarkovSynapse, Synapse


def simulate_pairs_with_tail(
    model: Synapse,
    scenario: Scenario,
    kind: TrackedKind,
    *,
    pairs: int,
    burn_in: int,
    horizon: int,
    generator: torch.Generator,
    tail: int,
    groups: int = 16,
    device: torch.device | str = "cpu",
    grad: bool = False,
    dtype: torch.dtype = torch.float32,
    fast: bool = True,
) -> PairMoments:
    """Per-group moments of ``horizon`` ages after the tracked event, as ``simulate_pairs``
    returns them, differentiated through the last ``tail`` burn-in steps too."""
    from learnsyn.rollout import fast_simulate_pairs, supports_fast_path

    tail = max(0, min(int(tail), int(burn_in)))
    common = dict(
        pairs=pairs,
        burn_in=burn_in,
        horizon=horizon,
        generator=generator,
        groups=groups,
        device=device,
        grad=grad,
        dtype=dtype,
    )
    if not grad or tail == 0:
        simulate = fast_simulate_pairs if fast else simulate_pairs
        return simulate(model, scenario, kind, **common)
    if fast and supports_fast_path(model, scenario) and _tail_fast_path(model, scenario):
        return _fast_with_tail(model, scenario, kind, tail=tail, **common)
    return _reference_with_tail(model, scenario, kind, tail=tail, **common)


def _tail_fast_path(model, scenario) -> bool:
    """The compiled tail covers learned cells in scenarios without state constraints (the
    constrained kernels draw the constraint's numbers window by window, which the tail does not
    yet do); elsewhere the reference loop runs the tail."""
    from learnsyn.rollout import linear_model, unconstrained

    return unconstrained(scenario) and not linear_model(model)


def _fast_with_tail(
    model, scenario, kind, *, pairs, burn_in, horizon, generator, groups, device, grad, dtype, tail
) -> PairMoments:
    from learnsyn.rollout import (
        STREAM_CHUNK,
        EventRows,
        GroupMoments,
        _burn_in,
        _triton,
        cell_matrices,
        choose_kernel,
        moments_by_group,
        write_inputs,
    )
    from learnsyn.rollout.kernels import DEFAULT_CHUNK, TrackedWindow
    from learnsyn.rollout.native import NativeWindow

    groups, per_group = pair_groups(pairs, groups)
    device = torch.device(device)
    pairs = per_group * groups
    size = model.state_size
    inputs = 2 if (scenario.has_flags or kind.flag != 0) else 1
    source = EventRows(scenario, generator, pairs, device, dtype)
    steps = tail + horizon
    with torch.no_grad():
        start = model.initial_state(pairs, device=device, dtype=dtype).T
        backend = choose_kernel(start, size, pairs, groups, "auto")
        if backend == "eager":  # the eager kernel carries u = (h + 1) / 2
            start = start.add(1).mul(0.5)
        plain = cell_matrices(model, inputs, dtype, device, backend).detached()
        start = _burn_in(plain, source, start.contiguous(), burn_in - tail, inputs, backend)
        rows = start.new_empty(steps, inputs, 2 * pairs)
        for begin in range(0, tail, STREAM_CHUNK):
            source.fill(rows[begin : min(begin + STREAM_CHUNK, tail), :, :pairs], branches=1)
        rows[:tail, :, pairs:] = rows[:tail, :, :pairs]
        start = torch.cat([start, start], 1)
        signs = torch.cat([torch.ones(pairs, device=device), -torch.ones(pairs, device=device)])
        stream = torch.cat([source.stream, source.stream])
        events, flags, source.stream = scenario.tracked_events(kind, signs.to(dtype), stream)
        write_inputs(rows[tail], events, flags)
        for begin in range(tail + 1, steps, STREAM_CHUNK):
            source.fill(rows[begin : min(begin + STREAM_CHUNK, steps)], branches=2)
    with torch.enable_grad():
        mats = cell_matrices(model, inputs, dtype, device, backend)
        if backend != "eager":
            cells = (pairs, groups)
            if backend == "native":  # no constraint (``_tail_fast_path``)
                moments = NativeWindow.apply(
                    mats.cell, DEFAULT_CHUNK, cells, None, rows, None, start, *mats.tensors()
                )
            else:
                moments = _triton().TritonWindow.apply(
                    mats.cell, DEFAULT_CHUNK, cells, rows, None, start, *mats.tensors()
                )
            sums = moments_by_group(moments, groups)
        else:
            readouts = TrackedWindow.apply(mats.cell, DEFAULT_CHUNK, rows, start, *mats.tensors())
            sums = GroupMoments.apply(readouts, mats.offset, groups, per_group)
    return PairMoments(sums[tail:], per_group, kind.p_plus)


def _reference_with_tail(
    model, scenario, kind, *, pairs, burn_in, horizon, generator, groups, device, grad, dtype, tail
) -> PairMoments:
    """The reference loop (``montecarlo.simulate_pairs``) with gradient over the last ``tail``
    burn-in steps; the tail runs once for both branches of a pair."""
    groups, per_group = pair_groups(pairs, groups)
    pairs = per_group * groups
    if isinstance(model, MarkovSynapse):
        model.use_generator(generator, paired=False)
    k = scenario.uniforms_per_step
    size = model.state_size
    state = model.initial_state(pairs, device=device, dtype=dtype)
    stream = scenario.new_stream(pairs, device)
    for step in range(burn_in):
        with torch.set_grad_enabled(step >= burn_in - tail):
            u = torch.rand(pairs, k, generator=generator, device=device, dtype=dtype)
            events, flags, stream = scenario.next_events(stream, u)
            state = model.step(state, events, flags)
            noise = scenario.constraint_noise(pairs, size, generator, device)
            state = scenario.constrain(state, noise)
    state = torch.cat([state, state])
    if isinstance(model, MarkovSynapse):
        model.use_generator(generator, paired=True)
    stream = torch.cat([stream, stream])
    signs = torch.cat([torch.ones(pairs, device=device), -torch.ones(pairs, device=device)])
    records = []
    with torch.enable_grad():
        events, flags, stream = scenario.tracked_events(kind, signs.to(dtype), stream)
        for age in range(horizon):
            if age > 0:
                u = torch.rand(pairs, k, generator=generator, device=device, dtype=dtype)
                events, flags, stream = scenario.next_events(stream, u.repeat(2, 1))
            state = model.step(state, events, flags)
            noise = scenario.constraint_noise(pairs, size, generator, device)
            state = scenario.constrain(state, None if noise is None else noise.repeat(2, 1))
            w = model.readout(state).view(2, groups, per_group)
            records.append(torch.stack([w[0], w[0] ** 2, w[1], w[1] ** 2], -1).sum(1))
    return PairMoments(torch.stack(records), per_group, kind.p_plus)
