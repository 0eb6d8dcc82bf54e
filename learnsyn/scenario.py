"""What a memory scenario is: the event stream, the tracked memories, and state constraints.

A scenario turns uniform random numbers into plasticity events. The simulator draws those
numbers once per synapse pair and feeds the same numbers to both branches of a pair (the tracked
event +1 in one branch, -1 in the other): common random numbers, so half the difference of the
two readouts estimates the memory signal with little variance (exactly, for linear models).

The memory signal of a tracked event xi(t') at age tau is the covariance of the weight with it,
``S(tau) = E[(w - E w) xi(t')] = 2 f+ f- (E[w | +] - E[w | -])``; for balanced +-1 events this is
the seed's ``E[w xi(t')]``. Where later events depend on earlier ones (the correlated scenario)
the tracked event is set by intervention and the stream continues from it, so the signal counts
the repeats the event causes, not the past events it happens to resemble.

Scenarios whose statistics make linear models exactly solvable return ``linear_statistics()``;
those that make finite-state models solvable return ``markov_statistics()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from learnsyn.synapse import ParamSpec, resolve_params


@dataclass(frozen=True)
class TrackedKind:
    """One kind of tracked memory: its name, its weight in the objective, the event value it is
    written with (sign applied by the simulator), its flag, and P(+1) for such an event."""

    name: str
    weight: float = 1.0
    amplitude: float = 1.0
    flag: float = 0.0
    p_plus: float = 0.5


@dataclass(frozen=True)
class InputStatistics:
    """Second-order statistics that make a linear synapse exactly solvable.

    ``variance``: variance of the background event value; ``correlation``: event autocorrelation
    per step (an AR(1) structure, 0 for independent events); ``state_noise``: std of independent
    noise added to every state variable each step. ``gains[k]``: S_k(tau) = gain * sum_j
    correlation^j r(tau - j) for tracked kind k; ``tracked_variances[k]``: variance of that kind's
    tracked event value (the noise is the weight's variance given the memory's kind).

    Scenarios with flags (``Scenario.has_flags``) also give, per flag value j = 0, 1,
    ``flag_variances[j] = P(flag j) E[xi^2 | flag j]`` (events of zero mean given the flag; the
    two sum to ``variance``) and ``tracked_flags[k]``, the flag of tracked kind k: a synapse whose
    increment depends on the flag (``LinearForm.b_flagged``) is exactly solvable from them.
    """

    variance: float
    correlation: float
    state_noise: float
    gains: tuple[float, ...]
    tracked_variances: tuple[float, ...] | None = None
    flag_variances: tuple[float, ...] | None = None
    tracked_flags: tuple[int, ...] | None = None

    def tracked_variance(self, index: int) -> float:
        return self.variance if self.tracked_variances is None else self.tracked_variances[index]

    def input_kinds(self, gated: bool) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """The kinds of input a linear synapse tells apart: ``P(j) E[xi^2 | j]`` per kind j and
        the kind of every tracked kind. One kind (``variance``; every tracked kind belongs to it)
        unless the synapse is ``gated`` (its increment depends on the flag) and the scenario has
        flags; then one kind per flag value."""
        if not gated or self.flag_variances is None:
            return (self.variance,), (0,) * len(self.gains)
        if self.correlation != 0:
            raise ValueError(
                "a flag-dependent increment with correlated events is not supported by the "
                "exact linear statistics"
            )
        if self.tracked_flags is None or len(self.tracked_flags) != len(self.gains):
            raise ValueError("flag_variances needs tracked_flags: one flag per tracked kind")
        return self.flag_variances, self.tracked_flags


@dataclass(frozen=True)
class MarkovStatistics:
    """Event statistics for exact finite-state evaluation: P(event per step), P(+1 | event)."""

    event_probability: float
    p_plus: float
    #: P(an event repeats the previous one) for Markov-correlated events; None: independent
    repeat: float | None = None


@dataclass
class ScenarioInfo:
    name: str
    summary: str
    reference: str
    params: tuple[ParamSpec, ...]
    tags: tuple[str, ...] = ()


class Scenario:
    """Base scenario: balanced, independent +-1 events, no constraint (the ideal scenario)."""

    info: ClassVar[ScenarioInfo]
    #: uniforms consumed per synapse per background step
    uniforms_per_step: ClassVar[int] = 1
    #: True when the state is constrained (then discrete-state models are not applicable)
    constrains_state: ClassVar[bool] = False

    def __init__(self, **params: Any):
        self.params = resolve_params(self.info.params, params, f"scenario {self.info.name!r}")
        self.validate()

    def validate(self) -> None:
        """Cross-parameter checks; raise ValueError with one clear line."""

    def amplitude_unit(self) -> float:
        """The unit in which an increment per event is searched when a baseline is tuned
        (``synapse.AMPLITUDE_SEARCH`` times it): 1, or the range where the scenario is the same
        at every scale of it (bounded: a synapse scaled with the bound behaves alike)."""
        return 1.0

    # --- event stream -------------------------------------------------------------------------
    def new_stream(self, batch: int, device: torch.device | str) -> torch.Tensor:
        """Per-synapse stream state (the previous event for Markov streams)."""
        return torch.zeros(batch, device=device)

    def next_events(
        self, stream: torch.Tensor, uniforms: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Map ``uniforms [batch, uniforms_per_step]`` to ``(events, flags, new_stream)``."""
        events = torch.where(uniforms[:, 0] < 0.5, 1.0, -1.0).to(uniforms.dtype)
        return events, None, stream

    def tracked_kinds(self) -> tuple[TrackedKind, ...]:
        return (TrackedKind("all"),)

    def tracked_events(
        self, kind: TrackedKind, signs: torch.Tensor, stream: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The tracked event with the given signs (+1 / -1 per synapse)."""
        flags = None if kind.flag == 0 and not self.has_flags else torch.full_like(signs, kind.flag)
        return signs * kind.amplitude, flags, self.stream_after_tracked(stream, signs)

    def stream_after_tracked(self, stream: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        return stream

    @property
    def has_flags(self) -> bool:
        return False

    #: the default training burn-in in units of 2.5 x the horizon (``TrainConfig``): more where a
    #: synapse can hold its memories far longer than the horizon in steps
    burn_in_factor: ClassVar[float] = 1.0

    # --- constraints ---------------------------------------------------------------------------
    def constraint_noise(
        self, batch: int, size: int, generator: torch.Generator, device
    ) -> torch.Tensor | None:
        """Random numbers the constraint needs for one step, or None."""
        return None

    def constrain(self, state: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return state

    def state_range(self) -> float | None:
        """The half-width of the range every state variable is clipped to, or None (no range;
        then a linear synapse with an unstable mode diverges)."""
        return None

    # --- exact statistics ----------------------------------------------------------------------
    def linear_statistics(self) -> InputStatistics | None:
        return InputStatistics(1.0, 0.0, 0.0, (1.0,))

    def markov_statistics(self) -> MarkovStatistics | None:
        return MarkovStatistics(1.0, 0.5)

    def describe(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.info.name}({values})"


SCENARIOS: dict[str, type[Scenario]] = {}


def register_scenario(cls: type[Scenario]) -> type[Scenario]:
    """Class decorator: make a scenario available by its name."""
    SCENARIOS[cls.info.name] = cls
    return cls


def make_scenario(name: str, params: dict[str, Any] | None = None) -> Scenario:
    """Build a registered scenario; unknown names and bad parameters raise one clear line."""
    import learnsyn.tasks  # noqa: F401  (registers the scenarios)

    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(SCENARIOS)}")
    return SCENARIOS[name](**(params or {}))
