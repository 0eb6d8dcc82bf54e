"""The one synapse interface shared by hand-crafted and learned models.

Every model is a ``torch.nn.Module`` that simulates a batch of independent synapses:

- ``initial_state(batch, device=..., dtype=...)`` returns the state tensor ``[batch, m]``;
- ``step(state, events, flags)`` applies one plasticity event per synapse (``events``: ``[batch]``
  values, usually +-1 or 0; ``flags``: ``[batch]`` per-event flags a scenario provides, or None)
  and returns the new state;
- ``readout(state)`` returns the synaptic weight ``[batch]``.

Models that are linear (``x' = A x + b xi``, ``w = c . x``) also expose ``linear_form()`` and
models with a finite number of discrete states expose ``markov_form()``; the evaluation path uses
them for exact, simulation-free SNR curves. A model that exposes neither is evaluated by Monte
Carlo. Constraints of a scenario (bounded range and precision, state noise) are applied by the
simulator to the state of every model alike, after each step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ParamSpec:
    """A tunable model or scenario parameter: its type, default, allowed range and meaning."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""
    tunable: bool = True
    #: (low, high, scale) searched when tuned; scale: "linear", "log", or "log1m" (log of 1 - x,
    #: for decays close to 1). None: the allowed range on a linear scale.
    search: tuple[float, float, str] | None = None
    #: allowed values of a ``str`` parameter (empty: any name, checked by the model)
    choices: tuple[str, ...] = ()

    @property
    def infinite_allowed(self) -> bool:
        """``inf`` is a value only of an unbounded number whose default is ``inf`` (EWC's cap:
        none); everywhere else a range's open end is not a value."""
        return self.kind is float and self.high is None and self.default == math.inf

    def describe_range(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "one of " + ", ".join(self.choices) if self.choices else "a name"
        if self.kind is list:
            return "a list of numbers (JSON or comma-separated)"
        lo = "(" if self.low_open or self.low is None else "["
        hi = ")" if self.high_open or (self.high is None and not self.infinite_allowed) else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        what = "an integer" if self.kind is int else "a number"
        return f"{what} in {lo}{low}, {high}{hi}"

    def coerce(self, value: Any, owner: str) -> Any:
        """Convert ``value`` (possibly a command-line string) and check its range."""
        where = f"{owner} parameter {self.name}={value}"
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{where} is not allowed: expected true or false")
        if self.kind is str:
            if self.choices and str(value) not in self.choices:
                raise ValueError(f"{where} is not allowed: expected {self.describe_range()}")
            return str(value)
        if self.kind is list:
            return _number_list(value, where)
        try:
            if self.kind is int:
                number = float(value)
                if not number.is_integer():
                    raise ValueError
                converted: Any = int(number)
            else:
                converted = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} is not allowed: expected {self.describe_range()}") from None
        if not (math.isfinite(converted) or (converted == math.inf and self.infinite_allowed)):
            raise ValueError(f"{where} is not allowed: expected {self.describe_range()}")
        too_low = self.low is not None and (
            converted < self.low or (self.low_open and converted == self.low)
        )
        too_high = self.high is not None and (
            converted > self.high or (self.high_open and converted == self.high)
        )
        if too_low or too_high:
            raise ValueError(f"{where} is out of range: expected {self.describe_range()}")
        return converted


def _number_list(value: Any, where: str) -> tuple[float, ...]:
    """A list parameter: a sequence of numbers, or text in JSON (``[0.9, 0.1]``) or
    comma-separated (``0.9,0.1``); returned as a tuple of floats."""
    expected = f"{where} is not allowed: expected a list of finite numbers"
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                json.loads(text)
                if text.startswith("[")
                else [v for v in text.split(",") if v.strip()]
            )
        except json.JSONDecodeError:
            raise ValueError(expected) from None
    try:
        numbers = tuple(float(v) for v in np.asarray(value, dtype=object).reshape(-1))
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if not all(np.isfinite(numbers)):
        raise ValueError(expected)
    return numbers


#: where every family's increment per event is searched when tuned; under state noise its top is
#: a cap shared by every family (``optimal-linear``'s ``max_amplitude``): without a range, noise
#: alone would reward ever larger increments
AMPLITUDE_SEARCH = (1e-3, 10.0, "log")
#: the increments a baseline takes: the weight variance sums their squares in float64, which
#: overflowed at 1e155 (NaN figures, said nowhere) and underflowed at 1e-170 (review, session 35);
#: the Monte Carlo moments sum them in float32, whose squares underflow below about 1e-19 (an
#: amplitude of 1e-20 read an area of 0 by Monte Carlo, 19.6 exactly; review, session 37)
AMPLITUDE_RANGE = (1e-18, 1e15)


def amplitude_spec(help: str = "increment per event") -> ParamSpec:
    """The ``amplitude`` parameter of a continuous-state baseline (its scale matters only where
    the scenario constrains the state)."""
    return ParamSpec(
        "amplitude",
        float,
        1.0,
        AMPLITUDE_RANGE[0],
        AMPLITUDE_RANGE[1],
        search=AMPLITUDE_SEARCH,
        help=f"{help} (matters only under bounded/noisy constraints)",
    )


def resolve_params(
    specs: tuple[ParamSpec, ...], given: dict[str, Any] | None, owner: str
) -> dict[str, Any]:
    """Defaults updated by ``given``; unknown names and bad values raise one clear ValueError."""
    given = dict(given or {})
    known = {spec.name: spec for spec in specs}
    for name in given:
        if name not in known:
            allowed = ", ".join(known) or "none"
            raise ValueError(f"{owner} has no parameter {name!r}; its parameters are: {allowed}")
    return {
        name: spec.coerce(given[name], owner) if name in given else spec.default
        for name, spec in known.items()
    }


def spectral_radius(A: np.ndarray) -> float:
    """The largest eigenvalue modulus of A (below 1: a stable linear synapse)."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(A, dtype=np.float64)))))


@dataclass(frozen=True)
class LinearForm:
    """``x_{t+1} = A x_t + b xi_t``, ``w_t = c . x_t`` (numpy float64 arrays). ``b_flagged``: the
    increment of flagged events (flag 1) where it differs from ``b``; None: every event uses b."""

    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    b_flagged: np.ndarray | None = None

    def increments(self, gated: bool) -> tuple[np.ndarray, ...]:
        """The increment of every input kind (``InputStatistics.input_kinds``): ``(b,)``, or
        ``(b, b_flagged)`` when ``gated``."""
        return (self.b, self.b_flagged) if gated else (self.b,)


@dataclass(frozen=True)
class MarkovForm:
    """Finite-state synapse: row-stochastic transition matrices for a +1 and a -1 event, the
    readout weight of each state. ``p_next = p M`` (row-vector convention)."""

    M_plus: np.ndarray
    M_minus: np.ndarray
    weights: np.ndarray


#: model families: hand-crafted baselines and meta-trained cells
FAMILIES = ("hand-crafted", "learned")


@dataclass
class ModelInfo:
    """Registry metadata for a model family: name, summary, reference, parameters, and
    ``family`` (``hand-crafted`` or ``learned``)."""

    name: str
    summary: str
    reference: str
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)
    family: str = "hand-crafted"


class Synapse(nn.Module):
    """Base class: a batch of independent synapses sharing one set of (meta-)parameters."""

    info: ClassVar[ModelInfo]
    state_size: int
    #: True for models that only make sense where the scenario clips the state to a range
    #: (``Scenario.state_range``), e.g. linear synapses with unstable modes (``linear-range``)
    needs_state_range: ClassVar[bool] = False

    def initial_state(
        self, batch: int, *, device: torch.device | str | None = None, dtype=torch.float32
    ) -> torch.Tensor:
        return torch.zeros(batch, self.state_size, device=device, dtype=dtype)

    def step(
        self, state: torch.Tensor, events: torch.Tensor, flags: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def linear_form(self) -> LinearForm | None:
        """Exact linear description, or None for a nonlinear model."""
        return None

    def markov_form(self) -> MarkovForm | None:
        """Exact finite-state description, or None."""
        return None

    @property
    def discrete_state(self) -> bool:
        """True when the state is a discrete index that range/noise constraints do not apply to."""
        return self.markov_form() is not None

    #: True for a model whose state changes only on steps with an event (EWC): its
    #: ``time_scale`` counts events, and a burn-in in steps divides it by the event rate
    moves_only_on_events: ClassVar[bool] = False

    def time_scale(self) -> float | None:
        """Slowest relaxation time in steps when known (used to choose a burn-in); in events
        where ``moves_only_on_events``."""
        return None

    def time_scale_in(self, scenario) -> float | None:
        """``time_scale`` where ``scenario`` runs the synapse (a model whose time scale a
        scenario's range shortens says so here); the same by default."""
        return self.time_scale()

    def params_dict(self) -> dict[str, Any]:
        return dict(getattr(self, "params", {}))


class LinearSynapse(Synapse):
    """A synapse defined by ``(A, b, c)``; simulated with the same matrices it is solved with.
    ``b_flagged`` (optional): the increment of events with flag 1 (the others use b; so do all
    events where the scenario has no flags). ``drive`` (optional): a constant added at every
    step, ``x' = A x + b xi + drive``; without a range it only shifts the mean state (the
    closed forms, which ignore it, stay exact), where the scenario clips the state it moves the
    operating point against the bounds."""

    def __init__(
        self,
        A: np.ndarray,
        b: np.ndarray,
        c: np.ndarray,
        b_flagged: np.ndarray | None = None,
        drive: np.ndarray | None = None,
    ):
        super().__init__()
        A = np.atleast_2d(np.asarray(A, dtype=np.float64))
        self.state_size = A.shape[0]
        if b_flagged is not None:
            b_flagged = np.asarray(b_flagged, dtype=np.float64).reshape(-1)
        self._form = LinearForm(
            A,
            np.asarray(b, dtype=np.float64).reshape(-1),
            np.asarray(c, dtype=np.float64),
            b_flagged,
        )
        self.register_buffer("A_T", torch.tensor(A.T, dtype=torch.float32))
        self.register_buffer("b", torch.tensor(self._form.b, dtype=torch.float32))
        self.register_buffer("c", torch.tensor(self._form.c.reshape(-1), dtype=torch.float32))
        self.b_flagged: torch.Tensor | None
        if b_flagged is None:
            self.b_flagged = None
        else:
            self.register_buffer("b_flagged", torch.tensor(b_flagged, dtype=torch.float32))
        self.drive: torch.Tensor | None
        if drive is None:
            self.drive = None
        else:
            drive = np.asarray(drive, dtype=np.float64).reshape(-1)
            self.register_buffer("drive", torch.tensor(drive, dtype=torch.float32))

    def step(self, state, events, flags=None):
        b = self.b
        if self.b_flagged is not None and flags is not None:
            b = torch.where((flags != 0).unsqueeze(-1), self.b_flagged, self.b)
        nxt = state @ self.A_T + events.unsqueeze(-1).to(state.dtype) * b
        return nxt if self.drive is None else nxt + self.drive

    def readout(self, state):
        return state @ self.c

    def linear_form(self) -> LinearForm:
        return self._form

    def time_scale(self) -> float:
        radius = spectral_radius(self._form.A)
        return float("inf") if radius >= 1 else 1.0 / max(1.0 - radius, 1e-300)


class MarkovSynapse(Synapse):
    """A synapse with discrete states; the state tensor holds the state index as a float."""

    state_size = 1

    def __init__(self, form: MarkovForm, initial: int | None = None):
        super().__init__()
        self._form = form
        self.register_buffer("cum_plus", torch.tensor(np.cumsum(form.M_plus, 1)).float())
        self.register_buffer("cum_minus", torch.tensor(np.cumsum(form.M_minus, 1)).float())
        self.register_buffer("weights", torch.tensor(form.weights, dtype=torch.float32))
        self.n_states = len(form.weights)
        self.initial = self.n_states // 2 if initial is None else initial
        self._uniform_source: torch.Generator | None = None
        self._paired = False

    def initial_state(self, batch, *, device=None, dtype=torch.float32):
        return torch.full((batch, 1), float(self.initial), device=device, dtype=dtype)

    def use_generator(self, generator: torch.Generator | None, paired: bool = False) -> None:
        """The simulator hands its generator over so that transitions are seeded; ``paired``:
        the batch is two branches of equal size that share their random numbers."""
        self._uniform_source = generator
        self._paired = paired

    def step(self, state, events, flags=None):
        index = state[:, 0].long()
        rows = torch.where((events > 0).unsqueeze(-1), self.cum_plus[index], self.cum_minus[index])
        rows_needed = index.shape[0] // 2 if self._paired else index.shape[0]
        u = torch.rand(rows_needed, 1, generator=self._uniform_source, device=state.device)
        if self._paired:
            u = u.repeat(2, 1)
        # the first state whose cumulative probability exceeds u: u = 0 (drawn with probability
        # 2^-24) took state 0 where rows open with zeros (review, session 33)
        moved = (u >= rows).sum(-1).clamp_max(self.n_states - 1)
        new_index = torch.where(events == 0, index, moved)
        return new_index.to(state.dtype).unsqueeze(-1)

    def readout(self, state):
        return self.weights[state[:, 0].long()]

    def markov_form(self) -> MarkovForm:
        return self._form
