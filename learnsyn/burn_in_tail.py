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
slowest mode ``lambda``). Both branches of a pair share those steps. Both simulators take the
tail themselves (their ``tail`` argument): the fast path (tanh RNN and GRU, in unconstrained
scenarios and, on the native CPU kernel, in ``bounded`` and ``noisy``) runs the tail and the
window in one kernel call, with the tracked event as row ``tail``; everything else runs the
reference loop ``montecarlo.simulate_pairs`` with gradient over the tail.
"""

from __future__ import annotations

import torch

from learnsyn.estimate.montecarlo import PairMoments, simulate_pairs
from learnsyn.scenario import Scenario, TrackedKind
from learnsyn.synapse import Synapse


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
    returns them, differentiated through the last ``tail`` burn-in steps too (``fast``: on the
    fast path where it applies, else the reference loop)."""
    from learnsyn.rollout import fast_simulate_pairs

    simulate = fast_simulate_pairs if fast else simulate_pairs
    return simulate(
        model,
        scenario,
        kind,
        pairs=pairs,
        burn_in=burn_in,
        horizon=horizon,
        generator=generator,
        groups=groups,
        device=device,
        grad=grad,
        dtype=dtype,
        tail=tail,
    )
