"""Scenarios that constrain the state of every synapse model alike: bounded and noisy.

The constraint is applied by the simulator after every step, to every continuous state variable
of every model (hand-crafted or learned), so comparisons are made under the same limits.
Discrete-state (Markov) models have no continuous variables to constrain and are rejected.
"""

import torch

from learnsyn.scenario import InputStatistics, Scenario, ScenarioInfo, register_scenario
from learnsyn.synapse import ParamSpec

#: the largest range half-width: the float32 state's squares and their sums over a batch must
#: stay finite (at 1e30 a run ended "complete" with NaN figures; review, session 34)
BOUND_HIGH = 1e15
#: the smallest range half-width: below float32's normal numbers the native kernel, which
#: flushes subnormals to zero, read a bound of 1e-40 as no range at all (review, session 35);
#: the Monte Carlo moments square the state in float32, which underflows below about 1e-19
#: (a bound of 1e-25 read an infinite SNR; review, session 37)
BOUND_LOW = 1e-12


@register_scenario
class BoundedScenario(Scenario):
    """Each variable kept in [-bound, bound] and on ``levels`` evenly spaced values, reached by
    stochastic rounding to the two neighbouring levels (unbiased). A range alone would constrain
    nothing: any linear synapse fits it with a small enough increment; finite precision does."""

    info = ScenarioInfo(
        name="bounded",
        summary="ideal events; every state variable clipped to [-bound, bound] and stochastically "
        "rounded to `levels` levels after each step",
        reference="Fusi & Abbott 2007 (bounded synapses); Benna & Fusi 2016 (discretized chain)",
        params=(
            # float32 state: a larger range overflows the level arithmetic (review, session 32)
            ParamSpec("bound", float, 1.0, BOUND_LOW, BOUND_HIGH, help="range half-width"),
            ParamSpec("levels", int, 16, 2, 1e6, help="number of levels per variable"),
        ),
        tags=("constrained",),
    )
    constrains_state = True

    def constraint_noise(self, batch, size, generator, device):
        return torch.rand(batch, size, generator=generator, device=device)

    def constrain(self, state, noise):
        bound = self.params["bound"]
        spacing = 2.0 * bound / (self.params["levels"] - 1)
        clipped = state.clamp(-bound, bound)
        position = (clipped.detach() + bound) / spacing
        lower = position.floor()
        rounded = (lower + (noise < position - lower).to(state.dtype)) * spacing - bound
        rounded = rounded.clamp(-bound, bound)
        # straight-through: the rounding is unbiased, its gradient is taken as the identity
        return clipped + (rounded - clipped).detach()

    def state_range(self):
        return self.params["bound"]

    def amplitude_unit(self):
        # the clip and the levels scale with the bound: at bound 100 the tuned exponential sat
        # at the searched amplitude's cap, 10, and read 128.7 where 151.4 is its optimum
        # (review, session 35)
        return self.params["bound"]

    def linear_statistics(self):
        return None

    def markov_statistics(self):
        return None


@register_scenario
class NoisyScenario(Scenario):
    """Ideal events plus independent Gaussian noise of std ``sigma`` on every state variable,
    which is then kept in [-bound, bound]. Noise alone would constrain nothing (a synapse could
    scale its increments up until the noise is negligible); with the range it limits precision.
    ``bound = 0`` drops the range (then linear synapses are solved exactly)."""

    info = ScenarioInfo(
        name="noisy",
        summary="ideal events; N(0, sigma^2) noise added to every state variable each step, "
        "then clipped to [-bound, bound] (bound 0: no range)",
        reference="science.md section 5",
        params=(
            # (at most the largest bound: 1e20 read NaN, 1e300 an OverflowError; session 36)
            ParamSpec("sigma", float, 0.1, 0.0, BOUND_HIGH, help="noise std per variable per step"),
            ParamSpec("bound", float, 1.0, 0.0, BOUND_HIGH, help="range half-width (0: none)"),
        ),
        tags=("constrained",),
    )
    constrains_state = True

    def validate(self):
        bound = self.params["bound"]
        if 0 < bound < BOUND_LOW:
            raise ValueError(
                f"scenario 'noisy' parameter bound={bound!r} is out of range: expected 0 (no "
                f"range) or a number in [{BOUND_LOW:g}, {BOUND_HIGH:g}]"
            )

    def constraint_noise(self, batch, size, generator, device):
        return torch.randn(batch, size, generator=generator, device=device)

    def constrain(self, state, noise):
        noisy = state + self.params["sigma"] * noise
        bound = self.params["bound"]
        return noisy.clamp(-bound, bound) if bound > 0 else noisy

    def state_range(self):
        return self.params["bound"] if self.params["bound"] > 0 else None

    def amplitude_unit(self):
        # with a range the scenario is the same at every scale of (sigma, bound) together: a
        # tuned exponential at (1000, 1e4) sat at the searched amplitude's cap, 10, and read an
        # area of 0 where (0.1, 1) reads 18.6 (review, session 37); without one, the cap of
        # ``synapse.AMPLITUDE_SEARCH`` is in absolute units (the design's choice)
        return self.params["bound"] if self.params["bound"] > 0 else 1.0

    def linear_statistics(self):
        if self.params["bound"] > 0:
            return None
        return InputStatistics(1.0, 0.0, self.params["sigma"], (1.0,))

    def markov_statistics(self):
        return None


def standard_constraint(scenario: Scenario) -> str | None:
    """``bounded`` or ``noisy`` when ``scenario`` constrains the state exactly as the scenario
    of that name here does (a subclass that overrides its constraint, noise or events is
    another chain: the fast kernels and the exact grid do not apply to it; review, session 37:
    the grid method was chosen by the scenario's name), else None."""
    for name, known in (("bounded", BoundedScenario), ("noisy", NoisyScenario)):
        kind = type(scenario)
        if (
            isinstance(scenario, known)
            and kind.constrain is known.constrain
            and kind.constraint_noise is known.constraint_noise
            and kind.next_events is Scenario.next_events
        ):
            return name
    return None
