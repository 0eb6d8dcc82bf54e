"""The leaky integrator: one variable, ``w <- decay * w + amplitude * xi``."""

import numpy as np

from learnsyn.registry import register_model
from learnsyn.synapse import LinearSynapse, ModelInfo, ParamSpec, amplitude_spec, resolve_params


@register_model
class ExponentialSynapse(LinearSynapse):
    """Memory kernel ``r(tau) = amplitude * decay**tau``; stationary variance
    ``amplitude**2 / (1 - decay**2)``."""

    info = ModelInfo(
        name="exponential",
        summary="leaky integrator w <- decay*w + amplitude*xi (memories decay exponentially)",
        reference="Amit & Fusi 1994; Benna & Fusi 2016 (baseline)",
        params=(
            ParamSpec(
                "decay",
                float,
                0.99,
                0.0,
                1.0,
                high_open=True,
                help="per-step decay",
                search=(0.0, 0.999999, "log1m"),
            ),
            amplitude_spec("increment per event"),
        ),
    )

    def __init__(self, **params):
        self.params = resolve_params(self.info.params, params, "model 'exponential'")
        decay, amplitude = self.params["decay"], self.params["amplitude"]
        super().__init__(np.array([[decay]]), np.array([amplitude]), np.array([1.0]))
