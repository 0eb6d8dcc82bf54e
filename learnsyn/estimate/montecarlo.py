"""Monte Carlo SNR of any synapse: paired streams with common random numbers.

``pairs`` synapse pairs (the Monte Carlo batch B, unrelated to the number N of synapses in the
memory system) run a burn-in of background events, then receive the tracked event, +1 in the
first branch and -1 in the second, then ``horizon - 1`` further background events drawn from the
SAME random numbers in both branches (scenario constraints draw theirs in common too). For a
linear synapse half the difference of the readouts is then exactly the memory kernel.

Only per-group sums of ``w+, w+^2, w-, w-^2`` are kept at every age (``groups`` groups of pairs),
so memory does not grow with the batch; the groups give jackknife standard errors of the SNR and
of every metric. The same code runs with gradients for meta-training: through the tracked window
and, with ``tail``, the last ``tail`` steps of the burn-in; the rest of the burn-in runs without
them.

Why the tail: the burn-in run without gradient treats the state the tracked event finds as if
it did not depend on the parameters. It does (its distribution is the synapse's stationary
distribution), and the gradient that ignores this is biased, measured to be large
(docs/learned-vs-linear.md): for a linear synapse it sees a larger increment raise the signal of
early ages but not their noise (a linear synapse's SNR does not depend on the increment's
scale), and longer time scales raise the signal without the noise they bring. With ``tail``
steps differentiated (BPTT through ``tail + horizon`` steps) the remaining bias is what the state
``tail`` steps before the tracked event still carries (``lambda^tail`` for a slowest mode
``lambda``). ``TrainConfig.gradient_burn_in`` sets it for training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from learnsyn.estimate.snr import MIN_PAIRS, check_pairs, snr_from_moments
from learnsyn.scenario import Scenario, TrackedKind
from learnsyn.synapse import MarkovSynapse, Synapse


@dataclass
class PairMoments:
    """Per-age, per-group sums ``[T, G, 4]`` of (w+, w+^2, w-, w-^2), ``count`` pairs per group."""

    sums: torch.Tensor
    count: int
    p_plus: float

    def moments(self, sums: torch.Tensor, count: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal ``2 f+ f- (E+ - E-)`` and stationary variance of the pooled branches."""
        mean_p, sq_p, mean_m, sq_m = (sums[..., i] / count for i in range(4))
        var_p = (sq_p - mean_p**2).clamp_min(0)
        var_m = (sq_m - mean_m**2).clamp_min(0)
        f = self.p_plus
        gap = mean_p - mean_m
        signal = 2 * f * (1 - f) * gap
        variance = f * var_p + (1 - f) * var_m + f * (1 - f) * gap**2
        return signal, variance

    def variance_share(self) -> float:
        """The smallest, over ages and branches, of the weight's variance over its mean square
        (from the whole batch): where it is tiny (a mean far above the spread, e.g. a large
        drive) the float32 sums of w and w^2 cancel in ``sq - mean^2`` and lose the variance
        (review, session 36: an SNR of sqrt(N) at some ages, the area 2.5 x too high)."""
        total = self.sums.detach().double().sum(1) / (self.count * self.sums.shape[1])
        share = math.inf
        for mean, square in ((total[:, 0], total[:, 1]), (total[:, 2], total[:, 3])):
            positive = square > 0
            if positive.any():
                ratio = ((square - mean**2).clamp_min(0) / square)[positive]
                share = min(share, float(ratio.min()))
        return share

    def snr(self, synapses: float, convention: str) -> torch.Tensor:
        """SNR at every age from the whole batch (differentiable)."""
        signal, variance = self.moments(self.sums.sum(1), self.count * self.sums.shape[1])
        return snr_from_moments(signal, variance, synapses, convention)

    def leave_one_out_snr(self, synapses: float, convention: str) -> torch.Tensor:
        """``[G, T]`` SNR curves with one group left out each (for jackknife errors)."""
        groups = self.sums.shape[1]
        total = self.sums.sum(1, keepdim=True)
        rest = (total - self.sums).transpose(0, 1)  # [G, T, 4]
        signal, variance = self.moments(rest, self.count * (groups - 1))
        return snr_from_moments(signal, variance, synapses, convention)


def pair_groups(pairs: int, groups: int) -> tuple[int, int]:
    """The batch layout every simulator uses: ``(groups, pairs per group)``; pairs beyond
    ``groups * per_group`` are dropped. Fewer than ``MIN_PAIRS`` pairs is one clear error."""
    check_pairs(pairs)
    groups = max(2, min(groups, pairs))
    if groups * (pairs // groups) < MIN_PAIRS:  # 3 pairs in 2 groups: one each, one dropped,
        groups = pairs  # and each leave-one-out curve on one pair (review, session 33)
    return groups, pairs // groups


@dataclass(frozen=True)
class PairBatch:
    """The keywords of one paired rollout, the one protocol every simulator takes
    (``simulate_pairs``, ``learnsyn.rollout.fast_simulate_pairs``, the grouped simulator of
    ``learnsyn.rollout.distributed``): ``pairs`` synapse pairs in ``groups`` groups, ``burn_in``
    background events, then ``horizon`` tracked ages; ``grad``: keep the graph of the tracked
    window and of the last ``tail`` burn-in steps (at most ``burn_in``), run once for both
    branches of a pair. A missing or unknown keyword is a ``TypeError`` naming it."""

    pairs: int
    burn_in: int
    horizon: int
    generator: torch.Generator
    groups: int = 16
    device: torch.device | str = "cpu"
    grad: bool = False
    dtype: torch.dtype = torch.float32
    tail: int = 0

    def __post_init__(self):  # one line here, not an IndexError deep in a kernel
        if self.horizon < 1 or self.burn_in < 0:
            raise ValueError(
                f"horizon = {self.horizon}, burn-in = {self.burn_in} are not allowed: need a "
                "horizon >= 1 and a burn-in >= 0"
            )

    def keywords(self, **changes) -> dict:
        """The batch as keywords for another simulator, with ``changes`` applied."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | changes

    def differentiated_tail(self) -> int:
        """The burn-in steps run with gradient: ``tail`` clipped to the burn-in, 0 without
        ``grad``."""
        return max(0, min(int(self.tail), int(self.burn_in))) if self.grad else 0


def simulate_pairs(model: Synapse, scenario: Scenario, kind: TrackedKind, **batch) -> PairMoments:
    """Simulate ``pairs`` synapse pairs (``batch``: the keywords of ``PairBatch``) and return
    the per-group readout moments."""
    request = PairBatch(**batch)
    pairs, burn_in, horizon = request.pairs, request.burn_in, request.horizon
    generator, device, dtype = request.generator, request.device, request.dtype
    groups, per_group = pair_groups(pairs, request.groups)
    pairs = per_group * groups
    tail = request.differentiated_tail()
    if isinstance(model, MarkovSynapse):
        model.use_generator(generator, paired=False)
    k = scenario.uniforms_per_step
    size = model.state_size
    with torch.no_grad():
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
    signs = signs.to(dtype)
    context = torch.enable_grad() if request.grad else torch.no_grad()
    records = []
    with context:
        events, flags, stream = scenario.tracked_events(kind, signs, stream)
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


def slowest_time_scale(model: Synapse, scenario: Scenario) -> float | None:
    """The model's slowest known time scale in steps (a model that moves only on events relaxes
    1 / event rate times slower): infinite for one that never becomes stationary (``ewc`` with
    decay 1), None where none is known (learned cells)."""
    from learnsyn.estimate.exact import markov_time_scale

    scale = None
    form = model.markov_form()
    stats = scenario.markov_statistics()
    if form is not None and stats is not None:
        scale = markov_time_scale(form, stats)
    elif form is None:
        scale = _visible_time_scale(model, scenario)
        if scale is None:
            scale = model.time_scale_in(scenario)
        if scale is not None and model.moves_only_on_events:  # events -> steps
            scale = scale / (stats.event_probability if stats is not None else 1.0)
    return scale


def _visible_time_scale(model: Synapse, scenario: Scenario) -> float | None:
    """A linear synapse's slowest time scale among the modes an event drives and the readout
    sees (``exact.visible_eigenvalues``): a mode neither touches never changes the weight, so
    an unstable one there gave an infinite scale and a burn-in of 4 x horizon, far too short
    for a slow visible mode (review, session 30: 33 % too high, silently). Where the scenario
    constrains the state, its rounding or noise drives every variable and the clip couples
    them: every mode counts (review, session 35: a slow mode b did not drive left a burn-in of
    100 where the area needed 10,000, 2.4 x too high). None where the model is not linear or
    its eigenbasis is too ill-conditioned to tell."""
    from learnsyn.estimate.exact import visible_eigenvalues

    form = model.linear_form()
    if form is not None and scenario.constrains_state:
        seen = np.linalg.eigvals(np.asarray(form.A, dtype=np.float64))
    else:
        seen = None if form is None else visible_eigenvalues(form)
    if seen is None:
        return None
    radius = max((abs(complex(value)) for value in seen), default=0.0)
    return math.inf if radius >= 1 else 1.0 / max(1.0 - radius, 1e-300)


def relaxation_steps(model: Synapse, scenario: Scenario) -> float | None:
    """Steps for the model's slowest known time scale to relax: 5 time constants; None when no
    finite time scale is known (learned cells; a synapse that never becomes stationary)."""
    return steps_to_relax(slowest_time_scale(model, scenario))


def steps_to_relax(scale: float | None) -> float | None:
    """5 time constants of a time scale in steps; None when it is unknown or infinite."""
    if scale is None or not math.isfinite(scale):
        return None
    return 5 * scale


def default_burn_in(model: Synapse, scenario: Scenario, horizon: int, cap: int = 200_000) -> int:
    """``relaxation_steps``, at least the horizon, at most ``cap``; models with no finite time
    scale get ``4 * horizon``."""
    steps = relaxation_steps(model, scenario)
    if steps is None:
        return min(cap, 4 * horizon)
    return int(min(cap, max(horizon, math.ceil(steps))))
