"""The Benna-Fusi chain ("heat chain"): m coupled variables whose memories decay as 1/sqrt(t).

``C_k du_k/dt = g_{k-1,k} (u_{k-1} - u_k) + g_{k,k+1} (u_{k+1} - u_k)``, ``w = u_1``, each event
adds ``amplitude * xi`` to ``u_1`` and the last variable leaks to ``u_{m+1} = 0``. Canonical
parameters: ``C_k = ratio**(k-1)``, ``g_{k,k+1} = first_conductance * ratio**-(k-1)`` with
``ratio = 2`` and ``first_conductance = 1/8`` (so ``g_{k,k+1} = 2**(-k-2)``), Euler step dt = 1.
Its bounded/discretized version is this chain evaluated in the ``bounded`` scenario, which
limits every variable to a range and a number of levels (stochastic rounding).
"""

import numpy as np

from learnsyn.registry import register_model
from learnsyn.synapse import (
    LinearSynapse,
    ModelInfo,
    ParamSpec,
    amplitude_spec,
    resolve_params,
    spectral_radius,
)


def chain_matrices(
    variables: int, ratio: float = 2.0, first_conductance: float = 0.125, amplitude: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, b, c)`` of the Euler-discretized chain (dt = 1)."""
    k = np.arange(variables)
    capacity = ratio**k
    # conductance[k] couples u_k and u_{k+1}; the last one couples u_m to the ground
    conductance = first_conductance * ratio ** (-k)
    A = np.eye(variables)
    for i in range(variables):
        A[i, i] -= conductance[i] / capacity[i]
        if i > 0:
            A[i, i] -= conductance[i - 1] / capacity[i]
            A[i, i - 1] += conductance[i - 1] / capacity[i]
        if i < variables - 1:
            A[i, i + 1] += conductance[i] / capacity[i]
    b = np.zeros(variables)
    b[0] = amplitude
    c = np.zeros(variables)
    c[0] = 1.0
    return A, b, c


def chain_eigenvalue_range(A: np.ndarray, ratio: float) -> tuple[float, float]:
    """The smallest and largest eigenvalue of the chain's ``A = I - C^-1 L``: real, computed on
    its symmetric form ``C^(1/2) A C^(-1/2)`` (``L`` symmetric). All of them in ``[0, 1)``
    means a memory ``r(t) = sum_k u_k^2 lambda_k^t`` that decreases as a heat chain's does; a
    negative one is an Euler step that overshoots (r(t) zig-zags)."""
    root = np.sqrt(float(ratio)) ** np.arange(len(A))
    symmetric = root[:, None] * A / root[None, :]
    values = np.linalg.eigvalsh((symmetric + symmetric.T) / 2)
    return float(values[0]), float(values[-1])


@register_model
class BennaFusiChain(LinearSynapse):
    info = ModelInfo(
        name="benna-fusi",
        summary="heat chain of `variables` coupled variables, r(t) ~ 1/sqrt(t) up to ~4^m "
        "(bounded/discretized: evaluate in the `bounded` scenario)",
        reference="Benna & Fusi 2016, Nat. Neurosci. 19:1697",
        params=(
            ParamSpec("variables", int, 4, 1, 40, help="number of variables m"),
            ParamSpec(
                "ratio",
                float,
                2.0,
                1.0,
                64.0,
                low_open=True,
                help="capacity ratio",
                search=(1.05, 16.0, "log"),
            ),
            ParamSpec(
                "first_conductance",
                float,
                0.125,
                0.0,
                1.0,
                low_open=True,
                search=(1e-4, 0.5, "log"),
                help="g_{1,2}",
            ),
            amplitude_spec("increment per event"),
        ),
    )

    def __init__(self, **params):
        self.params = resolve_params(self.info.params, params, "model 'benna-fusi'")
        p = self.params
        A, b, c = chain_matrices(p["variables"], p["ratio"], p["first_conductance"], p["amplitude"])
        low, high = chain_eigenvalue_range(A, p["ratio"])
        setting = (
            f"model 'benna-fusi' with variables={p['variables']}, ratio={p['ratio']} and "
            f"first_conductance={p['first_conductance']}"
        )
        if low < -1e-12:
            raise ValueError(
                f"{setting} is not a heat chain: the dt = 1 Euler step overshoots (an eigenvalue "
                f"of A is {low:.3g} < 0), so its memory oscillates instead of decaying; use a "
                "smaller first_conductance or a larger ratio"
            )
        if high >= 1.0 or spectral_radius(A) >= 1.0:  # the exact evaluation's own test
            raise ValueError(
                f"{setting} has a slowest mode that float64 cannot resolve (1 - lambda below "
                "1e-16, about ratio^(-2 m)); use fewer variables or a smaller ratio"
            )
        super().__init__(A, b, c)
