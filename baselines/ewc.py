"""EWC-style consolidation (Kirkpatrick et al. 2017) as a synapse.

Each synapse keeps its weight ``w`` and an importance (precision) ``omega``. Every event is a new
"task" with loss ``(amplitude*xi - w)^2 / 2``; the new weight minimizes that loss plus the
consolidation penalty ``(omega/2) (w - w_old)^2``:

    w' = (amplitude*xi + omega*w) / (1 + omega),   omega' = min(decay * (omega + 1), cap).

Without decay or cap (decay = 1, cap = inf) ``omega`` counts the events and ``w`` is the running
average of all of them: the synapse never becomes stationary and a memory's signal falls as
``1/(omega_0 + L + tau + 1)`` after a stream of length ``L``, its SNR as ``1/sqrt(age)`` relative
to the stream length. With decay < 1 ``omega`` settles at ``decay/(1-decay)`` and the synapse
becomes the exponential with the same decay; with a cap, the exponential with decay
``cap/(1+cap)``. The family is evaluated by Monte Carlo after a stated stream (burn-in) length.
``omega`` changes only on steps with an event, so ``time_scale`` counts events (the burn-in in
``sparse`` is 1 / rate times longer in steps). In ``bounded`` and ``noisy`` the constraint acts on
``omega`` too, as on every internal variable (science.md): ``omega`` stays within the range
(default 1), so there every decay above 1/2 is the same synapse, ``w' = (xi + w) / 2`` at most.
Rounding or state noise can also take ``omega`` below 0; an importance is a precision, so the
weight's update reads it as 0 there (review, session 33: at 2 levels it reached -1, and
``1 + omega = 0`` made the weight NaN, which Monte Carlo read as an area of 0).
"""

import math

import torch

from learnsyn.registry import register_model
from learnsyn.synapse import ModelInfo, ParamSpec, Synapse, amplitude_spec, resolve_params


@register_model
class EWCSynapse(Synapse):
    state_size = 2
    moves_only_on_events = True
    info = ModelInfo(
        name="ewc",
        summary="precision-weighted running average: w' = (xi + omega*w)/(1+omega), "
        "omega' = min(decay*(omega+1), cap)",
        reference="Kirkpatrick et al. 2017, PNAS 114:3521",
        params=(
            ParamSpec(
                "decay",
                float,
                1.0,
                0.0,
                1.0,
                low_open=True,
                help="importance decay",
                # (its end, not 0: decay 0 is outside the model, and the tuner evaluated it)
                search=(1e-6, 0.999999, "log1m"),
            ),
            ParamSpec(
                "cap",
                float,
                math.inf,
                0.0,
                None,
                low_open=True,
                help="importance cap (inf: none)",
                tunable=False,
            ),
            ParamSpec(
                "initial_importance", float, 0.0, 0.0, None, help="omega at start", tunable=False
            ),
            amplitude_spec("event amplitude"),
        ),
    )

    def __init__(self, **params):
        super().__init__()
        self.params = resolve_params(self.info.params, params, "model 'ewc'")

    def initial_state(self, batch, *, device=None, dtype=torch.float32):
        state = torch.zeros(batch, 2, device=device, dtype=dtype)
        state[:, 1] = self.params["initial_importance"]
        return state

    def step(self, state, events, flags=None):
        w, omega = state[:, 0], state[:, 1]
        target = self.params["amplitude"] * events.to(state.dtype)
        occurred = events != 0
        precision = omega.clamp_min(0.0)  # (the constraint may take omega below 0)
        new_w = torch.where(occurred, (target + precision * w) / (1.0 + precision), w)
        grown = (self.params["decay"] * (omega + 1.0)).clamp_max(self.params["cap"])
        new_omega = torch.where(occurred, grown, omega)
        return torch.stack([new_w, new_omega], dim=-1)

    def readout(self, state):
        return state[:, 0]

    def time_scale(self):
        """In events: omega (and so w's memory) changes only when an event occurs."""
        decay, cap = self.params["decay"], self.params["cap"]
        settled = min(decay / (1 - decay) if decay < 1 else math.inf, cap)
        return settled + 1.0

    def time_scale_in(self, scenario):
        """Where the scenario keeps the state in a range, omega is clipped to it too, and the
        synapse relaxes in about ``range + 1`` events (decay 0.99999 in bounded took the
        200,000-step burn-in cap for an area that 100 steps give; review, session 37)."""
        scale, bound = self.time_scale(), scenario.state_range()
        return scale if bound is None else min(scale, bound + 1.0)
