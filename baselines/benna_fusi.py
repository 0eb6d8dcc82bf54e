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
        if spectral_radius(A) >= 1.0:
            raise ValueError(
                f"model 'benna-fusi' with first_conductance={p['first_conductance']} and "
                f"ratio={p['ratio']} is unstable under the dt = 1 Euler step; use a smaller "
                "first_conductance"
            )
        super().__init__(A, b, c)
