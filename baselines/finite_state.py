"""Finite-state (Markov) synapses: binary switch, serial chain, cascade.

Each is a set of discrete states with readout weights +-1 and transition matrices for a
potentiating (+1) and a depressing (-1) event; their SNR curves are exact via those matrices.
"""

import numpy as np

from learnsyn.registry import register_model
from learnsyn.synapse import MarkovForm, MarkovSynapse, ModelInfo, ParamSpec, resolve_params


def binary_switch_form(q: float) -> MarkovForm:
    """Two states w = -1, +1; an event flips the weight towards its sign with probability q."""
    M_plus = np.array([[1 - q, q], [0.0, 1.0]])
    M_minus = np.array([[1.0, 0.0], [q, 1 - q]])
    return MarkovForm(M_plus, M_minus, np.array([-1.0, 1.0]))


def serial_form(states: int, q: float = 1.0) -> MarkovForm:
    """States in a line; +1 moves one step up, -1 one step down, with probability q; the lower
    half has weight -1, the upper half +1 (Lahiri & Ganguli's serial model)."""
    M_plus = np.eye(states) * (1 - q)
    M_minus = np.eye(states) * (1 - q)
    for i in range(states):
        M_plus[i, min(i + 1, states - 1)] += q
        M_minus[i, max(i - 1, 0)] += q
    weights = np.where(np.arange(states) < states // 2, -1.0, 1.0)
    return MarkovForm(M_plus, M_minus, weights)


def cascade_form(depth: int, x: float = 0.5) -> MarkovForm:
    """Fusi, Drew & Abbott (2005): ``depth`` states per weight value. In state (w, d) an event of
    the opposite sign switches the weight, landing at depth 1, with probability ``x**(d-1)``
    (``x**(n-1)/(1-x)`` at the deepest level); an event of the same sign moves one level deeper
    with probability ``x**d/(1-x)``. Index order: (-, n) ... (-, 1), (+, 1) ... (+, n)."""
    n = depth
    size = 2 * n
    switch = np.array([x**d for d in range(n)])  # d = 0..n-1 is depth 1..n
    switch[-1] = min(1.0, x ** (n - 1) / (1 - x))
    deepen = np.array([min(1.0, x ** (d + 1) / (1 - x)) for d in range(n)])
    deepen[-1] = 0.0

    def index(sign: int, d: int) -> int:  # d: 0-based depth
        return n + d if sign > 0 else n - 1 - d

    M_plus = np.zeros((size, size))
    M_minus = np.zeros((size, size))
    for sign in (-1, 1):
        for d in range(n):
            i = index(sign, d)
            same, opposite = (M_plus, M_minus) if sign > 0 else (M_minus, M_plus)
            same[i, index(sign, min(d + 1, n - 1))] += deepen[d]
            same[i, i] += 1 - deepen[d]
            opposite[i, index(-sign, 0)] += switch[d]
            opposite[i, i] += 1 - switch[d]
    weights = np.where(np.arange(size) < n, -1.0, 1.0)
    return MarkovForm(M_plus, M_minus, weights)


@register_model
class BinarySwitch(MarkovSynapse):
    info = ModelInfo(
        name="binary",
        summary="stochastic binary switch: w = +-1 flips towards the event with probability q",
        reference="Amit & Fusi 1994, Neural Comput. 6:957; Fusi & Abbott 2007",
        params=(
            ParamSpec(
                "q", float, 0.1, 0.0, 1.0, low_open=True, help="P(flip)", search=(1e-4, 1.0, "log")
            ),
        ),
    )

    def __init__(self, **params):
        self.params = resolve_params(self.info.params, params, "model 'binary'")
        super().__init__(binary_switch_form(self.params["q"]), initial=0)


@register_model
class SerialSynapse(MarkovSynapse):
    info = ModelInfo(
        name="serial",
        summary="M-state linear chain: events move one state up/down with probability q, "
        "weight -1 on the lower half, +1 on the upper half",
        reference="Lahiri & Ganguli 2013, NeurIPS (serial model)",
        params=(
            ParamSpec("states", int, 8, 2, 512, help="number of states M (even)"),
            ParamSpec(
                "q", float, 1.0, 0.0, 1.0, low_open=True, help="P(move)", search=(1e-4, 1.0, "log")
            ),
        ),
    )

    def __init__(self, **params):
        self.params = resolve_params(self.info.params, params, "model 'serial'")
        if self.params["states"] % 2:
            raise ValueError(
                f"model 'serial' parameter states={self.params['states']} is not allowed: "
                "expected an even number of states"
            )
        super().__init__(serial_form(self.params["states"], self.params["q"]))


@register_model
class CascadeSynapse(MarkovSynapse):
    info = ModelInfo(
        name="cascade",
        summary="cascade of `depth` metaplastic states per weight value, switching probability "
        "x^(d-1) at depth d: power-law forgetting up to ~2^depth",
        reference="Fusi, Drew & Abbott 2005, Neuron 45:599",
        params=(
            ParamSpec("depth", int, 5, 1, 40, help="states per weight value n"),
            # at most 1/2: above it x^d/(1-x) exceeds 1 and was clipped to 1, so the deepest
            # level was less stable than the one above it, a chain that is not the cascade
            # (the tuner chose x = 0.705; review, session 37)
            ParamSpec(
                "x",
                float,
                0.5,
                0.0,
                0.5,
                True,
                False,
                help="probability ratio per level (at most 1/2)",
                search=(0.05, 0.5, "linear"),
            ),
        ),
    )

    def __init__(self, **params):
        self.params = resolve_params(self.info.params, params, "model 'cascade'")
        super().__init__(cascade_form(self.params["depth"], self.params["x"]))
