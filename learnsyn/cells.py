"""Learned synapse cells: a tanh RNN, a GRU, a structured chain and a residual network (mlp), all
behind the one interface.

A cell is shared by all synapses; its input per step is ``(event, flag)`` (flag 0 where the
scenario provides none) and its readout ``w = c . h`` is learned too. ``init`` selects how the
recurrent matrix starts:

- ``chrono``: time scales spread log-uniformly from 2 steps up to ``timescale`` steps: the tanh
  RNN gets a diagonal recurrent matrix ``1 - 1/T_i``; the GRU gets update-gate biases
  ``-log(T_i - 1)`` ("chrono" initialization, Tallec & Ollivier 2018) and an orthogonal candidate
  matrix;
- ``rotation``: the cell's linearization starts as damped rotations (pairs of variables, one
  radian per time scale, time scales log-spaced up to ``timescale``; see ``rotation_blocks``), so
  the linear regime can represent complex eigenvalue pairs from the start, with a small input
  that keeps the state inside tanh's linear range;
- ``default``: the cell's ``default_init`` (``chrono`` for the tanh RNN and the GRU; ``learnsyn
  train`` resolves its own default ``auto`` to ``rotation`` in unconstrained scenarios); the chain
  starts AT the Benna-Fusi chain (canonical parameters), the mlp as described in its class;
- any name of ``learnsyn.initialization`` (``gaussian``, ``fold1``, ``orthogonal``,
  ``orthogonal-x0.8``, ...): that draw for the recurrent matrix (the degeneracy experiments).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from learnsyn.initialization import (
    INIT_NAME_HELP,
    MAX_SEED,
    apply_initialization_,
    check_fold_fits_width,
    generator_seed,
    parse_init_spec,
)
from learnsyn.registry import register_model
from learnsyn.synapse import (
    ModelInfo,
    ParamSpec,
    Synapse,
    amplitude_spec,
    resolve_params,
    spectral_radius,
)

INPUTS = 2  # event value and flag
#: the longest initial time scale a cell takes (above about 1e30 its float32 gates overflow)
MAX_TIMESCALE = 1e12
#: parameters every cell takes (the chain cell adds its starting chain's)
CELL_PARAMS = (
    ParamSpec("state_size", int, 2, 1, 4096, help="state variables m", tunable=False),
    ParamSpec(
        "init",
        str,
        "default",
        help="recurrent init: default (the cell's own), chrono, rotation, or a degeneracy init: "
        + INIT_NAME_HELP,
    ),
    ParamSpec(
        "timescale",
        float,
        1000.0,
        0.0,
        MAX_TIMESCALE,
        low_open=True,
        help="longest initial time scale",
    ),
    ParamSpec("fold_axis", str, "rows", choices=("rows", "columns"), help="axis of Fold k inits"),
    ParamSpec("seed", int, 0, 0, MAX_SEED, help="seed of the initialization", tunable=False),
)


def _timescales(size: int, longest: float) -> torch.Tensor:
    """``size`` time scales log-spaced from 2 steps to ``longest``; one variable gets the
    longest (geomspace gave it 2 steps whatever ``timescale``; review, session 36), as the
    ``rotation`` init's lone variable does."""
    longest = max(longest, 2.0)
    scales = np.geomspace(2.0, longest, size) if size > 1 else np.array([longest])
    return torch.tensor(scales, dtype=torch.float32)


#: the GRU's update gates when it starts at a linear synapse (``--start-from``): open enough
#: that its candidate stays near the state's range, off sigmoid's flat ends so they can learn
LINEAR_START_GATE = 0.9
#: the chain cell's starting saturation logit: alpha = sigmoid(-6) = 0.0025, all but linear
CHAIN_ALPHA_LOGIT_START = -6.0
#: initializations a cell defines itself (any other name is a degeneracy draw)
CELL_INITS = ("default", "chrono", "rotation")
#: the stationary std the ``rotation`` init aims the state at (well inside tanh's linear range)
ROTATION_STATE_STD = 0.1
#: a linear start's slowest mode may lose at most this share of its gap 1 - rho to the tanh's
#: mean slope (``start_at_linear``): its SNR moves by about half of it (0.2 %: 0.1 %)
SLOPE_LOSS = 0.002
#: the rotation init's own parameters (the tanh RNN and the GRU)
ROTATION_PARAMS = (
    ParamSpec(
        "state_std",
        float,
        ROTATION_STATE_STD,
        0.0,
        1.0,
        low_open=True,
        help="rotation init: stationary std of each state variable it aims at",
    ),
    ParamSpec(
        "output_scale",
        float,
        0.0,
        0.0,
        1e12,  # (exp(log s) overflows float32 near 3e38)
        help="starting s of a learnable saturation s tanh(y / s) per variable in place of "
        "tanh(y) (slope 1 at 0, range +-s; 0: plain tanh, range +-1; else at least 1e-06)",
    ),
    ParamSpec(
        "shortest",
        float,
        0.0,
        0.0,
        None,
        help="rotation init: the shortest pair's time scale in steps (pairs log-spaced from it "
        "up to the longest; capped at the longest; 0: a quarter of the longest)",
    ),
)


#: the smallest learnable saturation s: below it s tanh(y / s) is a step of height s, and in
#: float32 exp(log s) reads 0 below 1.4e-45 (NaN states, an infinite GRU start; review,
#: session 35)
MIN_OUTPUT_SCALE = 1e-6


def rotation_blocks(
    size: int, longest: float, shortest: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-variable time scales ``T`` and the block-diagonal matrix of the ``rotation`` init.

    Variables are taken in pairs; pair k is a damped rotation ``(1 - 1/T_k) R(1/T_k)`` (one
    radian per time scale, so the memory kernel is a damped oscillation that crosses zero after
    about 1.6 time scales), with the pairs' time scales log-spaced from ``shortest`` steps (when
    there are several; 0: ``longest / 4``) up to ``longest``; an odd last variable is a plain
    leaky variable at ``longest``. The quarter: the area objective uses ages up to about the
    longest time scale, and a pair far below it starts with nothing to remember (from 2 steps,
    the former start, the ideal m = 4 GRU ended at 0.966 of the optimal linear synapse, whose
    two rotations have time scales 101 and 175; from longest / 4, see docs/learned-vs-linear.md).
    Returns ``(T per variable [m], J [m, m])``: the linearization the init gives the cell."""
    pairs = size // 2
    longest = max(longest, 2.0)
    # every pair at least 2 steps (rho >= 1/2): below 1/2 step 1 - 1/T < -1, a pair that
    # grows instead of decaying (review, session 35: shortest=0.1 gave a radius of 1.7)
    shortest = min(max(shortest if shortest > 0 else longest / 4.0, 2.0), longest)
    scales = np.geomspace(shortest, longest, pairs) if pairs > 1 else [longest]
    per_variable = np.repeat(np.asarray(scales[:pairs], dtype=np.float64), 2)
    if size % 2:
        per_variable = np.append(per_variable, longest)
    target = np.zeros((size, size))
    for k in range(pairs):
        scale = per_variable[2 * k]
        rho, omega = 1.0 - 1.0 / scale, 1.0 / scale
        block = rho * np.array(
            [[math.cos(omega), math.sin(omega)], [-math.sin(omega), math.cos(omega)]]
        )
        target[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = block
    if size % 2:
        target[-1, -1] = 1.0 - 1.0 / per_variable[-1]
    return (
        torch.tensor(per_variable, dtype=torch.float32),
        torch.tensor(target, dtype=torch.float32),
    )


#: how ``learnsyn list`` describes the shared settings a cell without a free recurrent matrix
#: does not use (it refuses any init but ``default``; ``make_cell`` passes every cell a fold axis)
NO_RECURRENT_MATRIX = {
    "init": "default only (the cell has no free recurrent matrix)",
    "fold_axis": "unused (the cell has no free recurrent matrix)",
}


def _cell_info(
    name: str, summary: str, reference: str, extra=(), unused: dict[str, str] | None = None
) -> ModelInfo:
    """The registry entry of a cell; ``unused`` replaces the help of shared settings the cell
    does not use (what ``learnsyn list`` says of them)."""
    unused = unused or {}
    shared = tuple(
        dataclasses.replace(spec, help=unused[spec.name]) if spec.name in unused else spec
        for spec in CELL_PARAMS
    )
    return ModelInfo(name, summary, reference, shared + tuple(extra), family="learned")


class LearnedSynapse(Synapse):
    """Common parts: parameters, the readout, the recurrent-matrix initialization."""

    cell = "base"

    def __init__(self, state_size: int = 2, **given: Any):
        super().__init__()
        params = resolve_params(
            self.info.params, {"state_size": state_size, **given}, f"cell {self.cell!r}"
        )
        # one spelling whatever the case (a run made with FOLD0 refused a resume with fold0)
        init = params["init"] = params["init"].strip().lower()
        if init != "default" and not self.has_recurrent_matrix:
            raise ValueError(f"the {self.cell} cell has no free recurrent matrix: use init=default")
        if init not in CELL_INITS:
            try:
                spec = parse_init_spec(init)
            except ValueError:  # (it listed the degeneracy inits alone; review, session 36)
                raise ValueError(
                    f"unknown init {params['init']!r} for the {self.cell} cell; allowed: "
                    f"{', '.join(CELL_INITS)} (and learnsyn train's auto), or a degeneracy "
                    f"init: {INIT_NAME_HELP}"
                ) from None
            if params["state_size"] < 2:  # (a rank-degenerate matrix needs two rows at least)
                raise ValueError(
                    f"init={init!r} is a degeneracy init, which needs state_size >= 2 (got "
                    f"{params['state_size']}): use init=default, chrono or rotation at m = 1"
                )
            check_fold_fits_width(spec.fold_k, params["state_size"])
        self.state_size = params["state_size"]
        self.init = init
        self.timescale = params["timescale"]
        self.fold_axis = params["fold_axis"]
        self.generator = torch.Generator().manual_seed(generator_seed(params["seed"]))
        self.readout_weights = nn.Parameter(torch.empty(self.state_size))
        hidden = {"seed", "fold_axis"}  # not part of the model's description (as before)
        self.params = {"cell": self.cell, **{k: v for k, v in params.items() if k not in hidden}}

    has_recurrent_matrix = True
    #: True where the step saturates the state (a tanh of range +-1 or +-s): the rnn and gru
    saturating = False
    #: what ``init=default`` means for this cell (``learnsyn train`` picks its own: ``auto``)
    default_init = "chrono"

    def _init_saturation(self) -> None:
        """The learnable scale of ``saturate`` (log-parameterized), where ``output_scale`` > 0."""
        scale = self.params.get("output_scale", 0.0)
        if 0 < scale < MIN_OUTPUT_SCALE:  # exp(log s) is 0 in float32 below 1.4e-45: NaN states
            raise ValueError(
                f"cell {self.cell!r} parameter output_scale={scale!r} is out of range: expected "
                f"0 (a plain tanh) or a number in [{MIN_OUTPUT_SCALE:g}, 1e+12]"
            )
        self.log_scale = (
            nn.Parameter(torch.full((self.state_size,), math.log(scale))) if scale > 0 else None
        )

    def saturate(self, y: torch.Tensor) -> torch.Tensor:
        """``tanh(y)``, or ``s tanh(y / s)`` with the learned scale ``s`` (same slope at 0, range
        +-s: a cell whose state must span a scenario's whole range [-1, 1] can stay linear
        there, or saturate where that pays)."""
        if self.log_scale is None:
            return torch.tanh(y)
        scale = self.log_scale.exp()
        return scale * torch.tanh(y / scale)

    def resolved_init(self) -> str:
        """``chrono``, ``rotation`` or a degeneracy init name (``default`` resolved)."""
        return self.default_init if self.init == "default" else self.init

    def _init_recurrent(self, weight: torch.Tensor) -> bool:
        """Apply a named degeneracy init to ``weight``; False when ``init`` is ``default``."""
        if self.init in CELL_INITS:
            return False
        spec = parse_init_spec(self.init)
        apply_initialization_(weight, spec, self.generator, self.fold_axis)
        return True

    def recurrent_matrix(self) -> torch.Tensor:
        """The matrix that multiplies the state each step (for degeneracy measures)."""
        raise NotImplementedError

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        return state @ self.readout_weights

    @staticmethod
    def _inputs(events: torch.Tensor, flags: torch.Tensor | None) -> torch.Tensor:
        flags = torch.zeros_like(events) if flags is None else flags.to(events.dtype)
        return torch.stack([events, flags], dim=-1)

    def describe(self) -> dict[str, Any]:
        return dict(self.params)


@register_model
class TanhRNNSynapse(LearnedSynapse):
    """``h' = tanh(W h + U x + b)``."""

    cell = "rnn"
    saturating = True
    info = _cell_info(
        "rnn",
        "learned tanh RNN cell h' = tanh(W h + U x + b), readout w = c.h",
        "this project (meta-trained); Elman 1990",
        extra=ROTATION_PARAMS,
    )

    def __init__(self, state_size: int = 2, **kwargs):
        super().__init__(state_size, **kwargs)
        m = self.state_size  # as checked and converted (a command line gives text)
        self.W = nn.Parameter(torch.empty(m, m))
        self.U = nn.Parameter(torch.empty(m, INPUTS))
        self.bias = nn.Parameter(torch.zeros(m))
        self._init_saturation()
        with torch.no_grad():
            signs = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0)
            self.U.zero_()
            if self.resolved_init() == "rotation":
                scales, target = rotation_blocks(m, self.timescale, self.params["shortest"])
                self.W.copy_(target)  # h small: tanh' ~ 1, so the linearization is W
                self.U[:, 0] = signs * self.params["state_std"] * (2.0 / scales).sqrt()
            else:
                if not self._init_recurrent(self.W):
                    self.W.copy_(torch.diag(1.0 - 1.0 / _timescales(m, self.timescale)))
                scale = 1.0 / _timescales(m, self.timescale)
                self.U[:, 0] = signs * scale.sqrt()
            self.readout_weights.copy_(signs / math.sqrt(m))

    def step(self, state, events, flags=None):
        x = self._inputs(events.to(state.dtype), flags)
        return self.saturate(state @ self.W.T + x @ self.U.T + self.bias)

    def recurrent_matrix(self):
        return self.W

    def set_linear(self, A, b, c, drive=None) -> None:
        """Make the cell's pre-activation the linear synapse ``A h + b xi + drive`` with
        readout ``c`` (W = A, the event's input b, the flag's 0, the bias the drive; None: 0).
        The saturation is left as it is: with ``output_scale`` s the step is ``s tanh(y / s)``,
        the linear synapse to ``(|y| / s)^2 / 3`` relative."""
        A, b, c = (torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in (A, b, c))
        with torch.no_grad():
            self.W.copy_(A)
            self.U.zero_()
            self.U[:, 0] = b
            self.bias.zero_()
            if drive is not None and len(drive):
                self.bias.copy_(torch.as_tensor(np.asarray(drive), dtype=torch.float32))
            self.readout_weights.copy_(c)

    def linear_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(A, b, c, drive)`` as float64 arrays (``set_linear``'s inverse)."""
        return tuple(
            t.detach().double().cpu().numpy().copy()
            for t in (self.W, self.U[:, 0], self.readout_weights, self.bias)
        )


@register_model
class GRUSynapse(LearnedSynapse):
    """``z = s(Wz x + Uz h + bz)``, ``r = s(Wr x + Ur h + br)``,
    ``h~ = tanh(Wh x + Uh (r * h) + bh)``, ``h' = (1 - z) h + z h~``."""

    cell = "gru"
    saturating = True
    info = _cell_info(
        "gru",
        "learned GRU cell (chrono-initialized update gates), readout w = c.h",
        "this project (meta-trained); Cho et al. 2014; Tallec & Ollivier 2018",
        extra=ROTATION_PARAMS
        + (
            ParamSpec(
                "update_gate",
                float,
                0.0,
                0.0,
                1.0,
                help="rotation init: every update gate's opening (0: 1 / time scale per pair)",
            ),
        ),
    )

    def __init__(self, state_size: int = 2, **kwargs):
        super().__init__(state_size, **kwargs)
        m = self.state_size  # as checked and converted (a command line gives text)
        self.W_in = nn.Parameter(torch.empty(3 * m, INPUTS))  # z, r, candidate
        self.U_zr = nn.Parameter(torch.empty(2 * m, m))
        self.U_h = nn.Parameter(torch.empty(m, m))
        self.bias = nn.Parameter(torch.zeros(3 * m))
        self._init_saturation()
        with torch.no_grad():
            g = torch.Generator().manual_seed(int(self.generator.initial_seed()) + 1)
            self.W_in.copy_(torch.randn(3 * m, INPUTS, generator=g) * 0.1)
            self.W_in[2 * m :, 0] = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0)
            self.U_zr.copy_(torch.randn(2 * m, m, generator=g) * 0.1 / math.sqrt(m))
            self.bias[m : 2 * m] = 2.0  # reset gate open
            if self.resolved_init() == "rotation":
                # a small candidate input keeps h near 0, where the mean map's Jacobian is
                # I - Z + Z s r U_h (s = tanh'(input), r = the open reset gate): choose U_h so
                # that it equals the damped rotations of ``rotation_blocks``
                scales, target = rotation_blocks(m, self.timescale, self.params["shortest"])
                gate, std = self.params["update_gate"], self.params["state_std"]
                if gate > 0:  # every gate open at ``gate``; each event moves variable k by
                    # std * sqrt(2 / T_k), the increment whose stationary std is ``state_std``
                    z = torch.full_like(scales, gate)
                    drive = (std * (2.0 / scales).sqrt() / z).clamp(max=0.5)
                else:  # gates at 1 / T: the state's std is std / T, far inside tanh's range
                    z = 1.0 / scales
                    drive = torch.full_like(scales, std * math.sqrt(2.0 / float(scales.max())))
                slope = 1.0 - (drive / (self.params["output_scale"] or 1.0)).tanh() ** 2
                gain = slope / (1.0 + math.exp(-2.0))
                self.W_in[2 * m :, 0] *= drive
                self.bias[:m] = torch.log(z / (1.0 - z).clamp(min=1e-6))
                self.U_h.copy_((target - torch.eye(m) + torch.diag(z)) / (z * gain).unsqueeze(1))
            else:
                if not self._init_recurrent(self.U_h):
                    q, _ = torch.linalg.qr(torch.randn(m, m, generator=g))
                    self.U_h.copy_(q * 0.5)
                self.bias[:m] = -torch.log(_timescales(m, self.timescale) - 1.0)
            signs = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0)
            self.readout_weights.copy_(signs / math.sqrt(m))

    def step(self, state, events, flags=None):
        m = self.state_size
        x = self._inputs(events.to(state.dtype), flags)
        projected = x @ self.W_in.T + self.bias
        gates = torch.sigmoid(projected[:, : 2 * m] + state @ self.U_zr.T)
        z, r = gates[:, :m], gates[:, m:]
        candidate = self.saturate(projected[:, 2 * m :] + (r * state) @ self.U_h.T)
        return state + z * (candidate - state)

    def recurrent_matrix(self):
        return self.U_h

    def set_linear(self, A, b, c, drive=None) -> None:
        """Make the cell the linear synapse ``A h + b xi + drive`` with readout ``c`` where its
        candidate is linear: every gate held constant (zero input and state weights), the
        update gates at ``LINEAR_START_GATE`` = z and the reset gates at r = sigmoid(2) as
        built, so ``h' = (1 - z) h + z (U_h (r h) + w xi + b_h)`` with ``U_h = (A - (1 - z) I)
        / (z r)``, ``w = b / z``, ``b_h = drive / z``. Training can then make the gates depend on
        the state and the event (the GRU's own nonlinearity); the candidate's saturation is
        left as it is (``output_scale``)."""
        m = self.state_size
        A, b, c = (torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in (A, b, c))
        z = LINEAR_START_GATE
        with torch.no_grad():
            r = torch.sigmoid(self.bias[m : 2 * m].clone())
            self.W_in.zero_()
            self.U_zr.zero_()
            self.bias[:m] = math.log(z / (1.0 - z))
            self.bias[2 * m :] = 0.0
            if drive is not None and len(drive):
                self.bias[2 * m :] = torch.as_tensor(np.asarray(drive), dtype=torch.float32) / z
            self.W_in[2 * m :, 0] = b / z
            self.U_h.copy_((A - (1.0 - z) * torch.eye(m)) / (z * r.unsqueeze(0)))
            self.readout_weights.copy_(c)


@register_model
class ChainSynapse(LearnedSynapse):
    """A learnable linear chain followed by a learnable pointwise nonlinearity.

    The chain keeps the Benna-Fusi structure with learnable log-capacities ``C_k`` and
    log-conductances ``g_k`` (``g_m`` leaks to ground): ``A = I - C^-1 L(g)``, always a chain of
    coupled leaky variables. Then ``h' = phi(A h + b x)`` with
    ``phi(y) = y + alpha * (s tanh(y / s) - y)`` per variable, ``alpha = sigmoid(alpha_logit)`` in
    (0, 1) (linear towards 0, saturating at 1; starts at 0.0025, all but linear);
    ``init=default`` starts exactly at the canonical Benna-Fusi chain.
    """

    cell = "chain"
    has_recurrent_matrix = False
    info = _cell_info(
        "chain",
        "learned Benna-Fusi chain (log-capacities, log-conductances, input and readout "
        "weights) followed by a learnable pointwise saturation; starts at the chain",
        "this project (meta-trained); Benna & Fusi 2016 for its starting point",
        unused={**NO_RECURRENT_MATRIX, "timescale": "unused (the cell starts at its chain)"},
        extra=(  # the benna-fusi baseline's ranges: a chain beyond them does not start well
            amplitude_spec("starting increment per event"),
            ParamSpec(
                "ratio", float, 2.0, 1.0, 64.0, low_open=True, help="starting capacity ratio"
            ),
            ParamSpec(
                "first_conductance", float, 0.125, 0.0, 1.0, low_open=True, help="starting g_{1,2}"
            ),
        ),
    )

    def __init__(self, state_size: int = 2, **kwargs):
        super().__init__(state_size, **kwargs)
        amplitude, ratio, first_conductance = (
            self.params[k] for k in ("amplitude", "ratio", "first_conductance")
        )
        m = self.state_size
        k = torch.arange(m, dtype=torch.float32)
        self.log_capacity = nn.Parameter(k * math.log(ratio))
        self.log_conductance = nn.Parameter(math.log(first_conductance) - k * math.log(ratio))
        self.B = nn.Parameter(torch.zeros(m, INPUTS))
        self.alpha_logit = nn.Parameter(torch.full((m,), CHAIN_ALPHA_LOGIT_START))
        self.log_scale = nn.Parameter(torch.zeros(m))
        with torch.no_grad():
            self.B[0, 0] = amplitude
            self.readout_weights.zero_()
            self.readout_weights[0] = 1.0
            lowest = float(torch.linalg.eigvals(self.recurrent_matrix().double()).real.min())
        if lowest < -1e-9:  # as the benna-fusi baseline refuses it: an overshooting Euler step
            raise ValueError(
                f"cell 'chain' with ratio={ratio} and first_conductance={first_conductance} "
                f"(m = {m}) does not start as a heat chain: an eigenvalue of its A is "
                f"{lowest:.3g} < 0, so its memory oscillates (and grows beyond -1) instead of "
                "decaying; use a smaller first_conductance or a larger ratio"
            )

    def recurrent_matrix(self) -> torch.Tensor:
        g = self.log_conductance.exp()
        inv_c = (-self.log_capacity).exp()
        m = self.state_size
        left = torch.cat([g.new_zeros(1), g[:-1]])  # conductance to the previous variable
        laplacian = torch.diag(g + left)
        if m > 1:
            laplacian = laplacian - torch.diag(g[:-1], 1) - torch.diag(g[:-1], -1)
        return torch.eye(m, dtype=g.dtype, device=g.device) - inv_c.unsqueeze(1) * laplacian

    def step(self, state, events, flags=None):
        x = self._inputs(events.to(state.dtype), flags)
        y = state @ self.recurrent_matrix().T + x @ self.B.T
        scale = self.log_scale.exp()
        # alpha = sigmoid(logit) in (0, 1): between linear and saturating, never expanding;
        # unlike a clamp it keeps a gradient everywhere, so the saturation can switch on
        return y + self.alpha * (scale * torch.tanh(y / scale) - y)

    @property
    def alpha(self) -> torch.Tensor:
        """The saturation weight per variable, ``sigmoid(alpha_logit)``."""
        return torch.sigmoid(self.alpha_logit)


@register_model
class MLPSynapse(LearnedSynapse):
    """A linear synapse plus a learned nonlinear correction: a residual one-hidden-layer net.

    ``h' = h + D h + B x + d + V tanh(W [h, x] + a) / width``: the affine part ``(I + D, B,
    d)`` is a linear synapse, and the hidden layer of ``width`` tanh units, read by ``V``, adds
    any smooth function of the state and the event to it. Unlike the GRU, whose only
    nonlinearity is a gated saturation of each variable, the correction can move each variable
    by an amount that depends on the other variables and the event jointly (in ``bounded``, the
    update table of a 2-variable synapse on its grid, ``learnsyn.tools.grid_table``, is this
    kind of function). The ``1 / width``: Adam moves every entry of ``V`` by about the learning
    rate per update, in the same direction along a hidden unit's sign, so without it one update
    would move the correction by ``lr x width`` (measured at width 32, lr 0.02 on the 8-level
    grid: runs that collapse to area 0 or fall off a warm start); with it, by about ``lr``
    whatever the width, as it moves ``D`` and ``B``. ``init=default`` starts the affine part as
    the chrono tanh RNN's linearization (time scales log-spaced from 2 to ``timescale``,
    increments ``1/sqrt(T)``), ``W`` with entries of std ``hidden_gain`` (so the hidden units
    cut the state's range [-1, 1] at places spread over it), ``a`` standard normal and ``V`` with
    entries of std ``correction x sqrt(width)`` (a correction of std about ``correction``);
    ``set_linear`` (``--start-from``) starts it AT a linear synapse with ``V = 0``.
    """

    cell = "mlp"
    has_recurrent_matrix = False
    info = _cell_info(
        "mlp",
        "learned linear synapse plus a residual tanh network of the state and the event, "
        "h' = h + D h + B x + d + V tanh(W [h, x] + a) / width, readout w = c.h",
        "this project (meta-trained); the update table of learnsyn.tools.grid_table",
        unused=NO_RECURRENT_MATRIX,
        extra=(
            ParamSpec("width", int, 32, 1, 4096, help="hidden tanh units of the correction"),
            ParamSpec(
                "hidden_gain",
                float,
                2.0,
                0.0,
                1e12,  # (1e39 made non-finite weights; review, session 36)
                low_open=True,
                help="starting std of the hidden layer's weights",
            ),
            ParamSpec(
                "correction",
                float,
                0.1,
                0.0,
                1e12,
                help="starting std of the correction (its output weights': this x sqrt(width))",
            ),
        ),
    )

    def __init__(self, state_size: int = 2, **kwargs):
        super().__init__(state_size, **kwargs)
        m, width = self.state_size, self.params["width"]
        self.D = nn.Parameter(torch.empty(m, m))
        self.B = nn.Parameter(torch.zeros(m, INPUTS))
        self.drive = nn.Parameter(torch.zeros(m))
        self.W = nn.Parameter(torch.empty(width, m + INPUTS))
        self.a = nn.Parameter(torch.empty(width))
        self.V = nn.Parameter(torch.empty(m, width))
        with torch.no_grad():
            g = torch.Generator().manual_seed(int(self.generator.initial_seed()) + 1)
            scales = _timescales(m, self.timescale)
            signs = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0)
            self.D.copy_(-torch.diag(1.0 / scales))
            self.B[:, 0] = signs / scales.sqrt()
            self.W.copy_(torch.randn(width, m + INPUTS, generator=g) * self.params["hidden_gain"])
            self.a.copy_(torch.randn(width, generator=g))
            spread = self.params["correction"] * math.sqrt(width)
            self.V.copy_(torch.randn(m, width, generator=g) * spread)
            self.readout_weights.copy_(signs / math.sqrt(m))

    def step(self, state, events, flags=None):
        x = self._inputs(events.to(state.dtype), flags)
        hidden = torch.tanh(torch.cat([state, x], dim=-1) @ self.W.T + self.a)
        correction = hidden @ self.V.T / self.V.shape[1]
        return state + state @ self.D.T + x @ self.B.T + self.drive + correction

    def set_linear(self, A, b, c, drive=None) -> None:
        """Make the cell the linear synapse ``A h + b xi + drive`` with readout ``c``: ``D = A -
        I``, the event's input ``b``, the flag's 0, and no correction (``V = 0``; ``W`` and
        ``a`` are kept, so the correction's gradient is not zero and training can grow it)."""
        m = self.state_size
        A, b, c = (torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in (A, b, c))
        with torch.no_grad():
            self.D.copy_(A - torch.eye(m))
            self.B.zero_()
            self.B[:, 0] = b
            self.drive.zero_()
            if drive is not None and len(drive):
                self.drive.copy_(torch.as_tensor(np.asarray(drive), dtype=torch.float32))
            self.V.zero_()
            self.readout_weights.copy_(c)


def make_cell(
    cell: str,
    state_size: int,
    *,
    init: str = "default",
    timescale: float = 1000.0,
    seed: int = 0,
    fold_axis: str = "rows",
    cell_params: dict | None = None,
) -> LearnedSynapse:
    """Build a learned cell from the registry; bad names, sizes and parameters raise one clear
    line. ``cell_params``: the cell's own parameters (the chain cell's starting chain:
    ``amplitude``, ``ratio``, ``first_conductance``, e.g. a tuned baseline's values)."""
    from learnsyn.registry import model_class

    own = {spec.name for spec in CELL_PARAMS}
    for name in cell_params or {}:
        if name in own:
            raise ValueError(f"cell parameter {name!r} is a setting of its own, not a cell param")
    cls = model_class(cell, "learned")
    return cls(
        state_size,
        init=init,
        timescale=timescale,
        seed=seed,
        fold_axis=fold_axis,
        **(cell_params or {}),
    )


#: the cells ``--start-from`` can start at a linear synapse
LINEAR_START_CELLS = ("rnn", "gru", "mlp")
#: the entries a linear start must have (``drive`` is optional)
LINEAR_KEYS = ("A", "b", "c")


def read_linear_start(path: str, cell: str, state_size: int) -> dict[str, list[float]]:
    """The linear synapse in the JSON file ``path`` that ``--start-from`` starts an rnn or gru
    cell at: ``A`` (m x m, flat or nested), ``b``, ``c`` and an optional ``drive``, at the top
    level or under ``"params"`` (a ``refined-linear.json``, ``learnsyn tune --json`` of
    ``optimal-linear`` or ``linear-range``). Every problem is one line naming the file and the
    value: another cell, a missing or non-finite entry, another m than ``state_size``."""
    from learnsyn.io import read_json

    check_linear_start_cell(path, cell)
    try:
        data = read_json(path)
    except ValueError as error:
        raise ValueError(f"--start-from: {error}") from None
    return linear_start(data, path, state_size)


def check_linear_start_cell(source: str, cell: str) -> None:
    if cell not in LINEAR_START_CELLS:
        raise ValueError(
            f"--start-from {source}: cell {cell!r} cannot start at a linear synapse; allowed: "
            f"{', '.join(LINEAR_START_CELLS)}"
        )


def linear_start(data: Any, source: str, state_size: int) -> dict[str, list[float]]:
    """``read_linear_start``'s checks on parsed data (``source`` names it in errors)."""
    params = data.get("params", data) if isinstance(data, dict) else None
    if not isinstance(params, dict) or not all(k in params for k in LINEAR_KEYS):
        raise ValueError(
            f"--start-from {source}: no linear synapse in it (expected A, b and c at the top "
            "level or under 'params')"
        )
    flagged = params.get("b_flagged")
    if flagged is not None and flagged != params.get("b"):
        # the cells take one increment b for every event: the start would silently be another
        # synapse than the one the run records (review, session 35)
        raise ValueError(
            f"--start-from {source}: b_flagged = {flagged!r} is not allowed: a cell starts at "
            "one increment b for every event; remove b_flagged (or set it equal to b)"
        )
    m = state_size
    shapes = {"A": m * m, "b": m, "c": m, "drive": m}
    out = {}
    for key, size in shapes.items():
        value = params.get(key)
        if key == "drive" and (value is None or (isinstance(value, list) and not value)):
            continue
        try:  # a dict, a word or a ragged list: the one message below, not numpy's
            array = np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            array = np.array([np.nan])
        if array.size != size or not np.all(np.isfinite(array)):
            raise ValueError(
                f"--start-from {source}: {key} = {value!r} is not allowed: need {size} finite "
                f"numbers for state size m = {m}"
            )
        out[key] = array.tolist()
    return out


def linear_state_extent(
    A: np.ndarray, b: np.ndarray, drive: np.ndarray | None, scenario=None
) -> float:
    """The largest ``|mean| + std`` of a stationary state variable of ``x' = A x + b xi +
    drive`` under the scenario's events: their variance and step correlation and the state
    noise (``linear_statistics``), and their mean (``markov_statistics``: ``sparse`` with
    ``p_plus`` != 0.5); unit-variance independent events of mean 0 where the scenario gives
    none (or is None). It assumed those everywhere, so a warm start in ``sparse`` and
    ``correlated`` was held in a scale that saturated (review, session 36: 437 where the
    synapse reads 498). Inf where A has a mode of modulus >= 1."""
    import scipy.linalg

    if spectral_radius(A) >= 1.0:
        return math.inf
    stats = None if scenario is None else scenario.linear_statistics()
    events = None if scenario is None else scenario.markov_statistics()
    variance, rho, noise = (
        (1.0, 0.0, 0.0) if stats is None else (stats.variance, stats.correlation, stats.state_noise)
    )
    event_mean = 0.0 if events is None else events.event_probability * (2 * events.p_plus - 1)
    m = len(b)
    # z = [x; xi]: x' = A x + b xi, xi' = rho xi + an innovation of variance (1 - rho^2) var
    dynamics = np.zeros((m + 1, m + 1))
    dynamics[:m, :m], dynamics[:m, m], dynamics[m, m] = A, b, rho
    innovations = np.zeros((m + 1, m + 1))
    innovations[:m, :m] = noise**2 * np.eye(m)
    innovations[m, m] = (1.0 - rho**2) * variance
    covariance = scipy.linalg.solve_discrete_lyapunov(dynamics, innovations)[:m, :m]
    offset = event_mean * b + (0.0 if drive is None else drive)
    mean = np.linalg.solve(np.eye(m) - A, offset)
    extent = np.abs(mean) + np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return float(extent.max()) if np.all(np.isfinite(extent)) else math.inf


def saturation_scale(model: LearnedSynapse) -> float:
    """The smallest ``s`` of a saturating cell's ``s tanh(y / s)`` (1: a plain tanh)."""
    log_scale = getattr(model, "log_scale", None)
    return 1.0 if log_scale is None else float(log_scale.detach().exp().min())


def start_arrays(
    start: dict[str, list[float]], m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(A [m, m], b, drive or None)`` of ``read_linear_start``'s synapse, float64."""
    drive = start.get("drive")
    return (
        np.asarray(start["A"], dtype=np.float64).reshape(m, m),
        np.asarray(start["b"], dtype=np.float64),
        None if drive is None else np.asarray(drive, dtype=np.float64),
    )


def start_at_linear(
    model: LearnedSynapse, start: dict[str, list[float]], free_scale: bool = False, scenario=None
) -> float:
    """Set a tanh RNN, GRU or mlp cell to ``read_linear_start``'s synapse (``set_linear``; its
    saturation kept). Returns the state scale ``alpha`` the cell holds it in.

    ``free_scale``: nothing but the synapse acts on the state (no range, no state noise: the
    scenario does not constrain it), so the state's scale is the cell's to choose: a cell that
    saturates (rnn, gru: a plain tanh's range is +-1) takes the synapse in the
    coordinates ``x' = alpha x`` (``b``, ``drive`` times alpha, ``c`` over alpha: the same
    synapse) where no stationary state variable's ``|mean| + std`` exceeds
    ``ROTATION_STATE_STD`` of its range, nor ``sqrt(SLOPE_LOSS (1 - rho(A)))`` of it: the tanh's
    mean slope ``1 - E[(y / s)^2]`` multiplies every mode, and shortens a slow one's time scale
    by that share of its gap ``1 - rho`` at most (review, session 38: at 0.1 of the range a mode
    of 0.9875 decayed as 0.981, and a GRU started at optimal-linear in ideal read 175.9 where
    the synapse reads 184.1). A tuned linear synapse's state is wider than +-1, and an rnn or
    gru started at optimal-linear in ideal read 29 % below it (review, session 34).
    Where the scenario constrains the state (bounded's range; noisy's noise, which a rescaled
    state would carry 1 / alpha times larger, even at ``bound=0``; review, session 34) the scale
    is the scenario's: nothing is rescaled. ``scenario``: whose events set the state's extent
    (``linear_state_extent``; None: independent unit-variance events of mean 0)."""
    A, b, drive = start_arrays(start, model.state_size)
    alpha = 1.0
    if free_scale and model.saturating:
        scale = saturation_scale(model)
        extent = linear_state_extent(A, b, drive, scenario)
        if math.isfinite(extent) and extent > 0:
            reach = min(ROTATION_STATE_STD, math.sqrt(SLOPE_LOSS * (1.0 - spectral_radius(A))))
            alpha = min(1.0, reach * scale / extent)
    model.set_linear(
        A,
        alpha * b,
        np.asarray(start["c"], dtype=np.float64) / alpha,
        None if drive is None else alpha * drive,
    )
    return alpha
