"""Exact SNR of continuous-state synapses in the ``bounded`` scenario: the grid Markov chain.

In the ``bounded`` scenario every state variable is clipped to ``[-b, b]`` and stochastically
rounded to ``L`` evenly spaced levels ``v_k = -b + k h`` (``h = 2b / (L - 1)``) after each step,
each variable independently. A continuous-state synapse with ``m`` variables then lives on the
``S = L^m`` grid points and is a finite Markov chain. Grid point ``x`` (flat index
``s = sum_i k_i L^i``, variable 0 fastest) moves under an event ``e`` to ``y = F(x, e)``
(the model's own ``step``); per variable, with ``q_i = (clip(y_i) + b) / h``,
``l_i = min(floor(q_i), L - 2)`` and ``r_i = q_i - l_i``, the variable goes to level ``l_i + 1``
with probability ``r_i`` and to ``l_i`` otherwise (the simulator's unbiased stochastic rounding).
So the row of ``x`` in the transition matrix ``M_e`` has ``2^m`` entries,

    M_e[x, sum_i (l_i + c_i) L^i] = prod_i (c_i r_i + (1 - c_i)(1 - r_i)),   c in {0, 1}^m,

and the values are differentiable functions of the model's parameters (through ``y``; ``l`` is a
piecewise-constant index, so the entries are the piecewise-linear "hat" interpolation weights).

The SNR curve follows the Monte Carlo estimator of ``estimate.montecarlo.simulate_pairs`` step
by step, without sampling. With ``f = 1/2`` (balanced events) the background chain is
``M_F = f M_+ + (1 - f) M_-``. From the model's initial state ``x_0`` (off the grid in general)
one constrained step gives ``p_1 = f R_+(x_0) + (1 - f) R_-(x_0)`` (``R_e(x_0)``: the rounding
row of ``F(x_0, e)``), then ``p_B = p_1 M_F^(B - 1)`` after a burn-in of ``B`` steps (``B = 0``:
the tracked event acts on ``x_0`` itself). ``burn_in=None`` uses the stationary distribution
``pi = pi M_F`` instead (power iteration to a tolerance; its gradient by implicit
differentiation). The tracked event of kind ``k`` (value ``+-a_k``, P(+) = ``f_k``) splits
``p_B`` into ``p_+ = p_B M_{+a}`` and ``p_- = p_B M_{-a}``; at age ``tau`` (age 0 is right after
the tracked event) the branch distributions are ``p_+- M_F^tau`` and, with readout ``w(x)``,

    E_+-(tau) = p_+- M_F^tau w,   Q_+-(tau) = p_+- M_F^tau w^2,
    signal = 2 f_k (1 - f_k) (E_+ - E_-),
    variance = f_k (Q_+ - E_+^2) + (1 - f_k)(Q_- - E_-^2) + f_k (1 - f_k)(E_+ - E_-)^2,

exactly ``PairMoments.moments`` of the simulator with infinitely many pairs, so
``learnsyn.estimate.snr.snr_from_moments`` gives the SNR in either convention.

Products ``p M`` use sparse CSR matrices (CPU and CUDA; the device follows the model) inside a
custom autograd function whose backward gives the gradient with respect to the matrix values,
so the SNR, and any metric of it, has exact gradients with respect to the model's parameters.
Cost: O(S 2^m) per age and per burn-in step; grids above ``MAX_STATES`` states or
``MAX_TRANSITIONS`` transitions per event matrix are refused.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from learnsyn.estimate.montecarlo import PairMoments
from learnsyn.estimate.snr import integer_ages, snr_from_moments
from learnsyn.scenario import Scenario, TrackedKind
from learnsyn.synapse import Synapse

#: largest grid (states) the exact method accepts
MAX_STATES = 1 << 18
#: largest number of stored transitions (states x 2^variables) per event matrix
MAX_TRANSITIONS = 1 << 23
#: largest grid that method "auto" evaluates exactly (larger grids: Monte Carlo, unless asked)
AUTO_MAX_STATES = 4096
#: largest grid whose burn-in may use dense repeated squaring
DENSE_STATES = 2048
#: the scenario whose constraint makes a continuous-state synapse a chain on a grid
GRID_SCENARIO = "bounded"
#: P(+1) of a background event in the bounded scenario (balanced events)
BACKGROUND_P_PLUS = 0.5


# --- sizes and grid ------------------------------------------------------------------------------
def grid_size(levels: int, variables: int) -> tuple[int, int]:
    """``(states, transitions per event matrix) = (L^m, L^m 2^m)``."""
    states = int(levels) ** int(variables)
    return states, states * 2 ** int(variables)


def check_grid_size(
    levels: int,
    variables: int,
    *,
    max_states: int = MAX_STATES,
    max_transitions: int = MAX_TRANSITIONS,
) -> int:
    """The number of grid states; one-line ValueError when the grid is too large."""
    if levels < 2 or variables < 1:
        raise ValueError(f"a grid needs levels >= 2 and variables >= 1 (got {levels}, {variables})")
    states, transitions = grid_size(levels, variables)
    if states > max_states or transitions > max_transitions:
        raise ValueError(
            f"the bounded grid has {states} states ({levels} levels ^ {variables} variables, "
            f"{transitions} transitions per event), above the exact method's limit of "
            f"{max_states} states and {max_transitions} transitions; use --method monte-carlo"
        )
    return states


def level_values(
    levels: int,
    bound: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The ``levels`` values ``-bound + k * spacing`` (as the scenario's rounding produces)."""
    spacing = 2.0 * bound / (levels - 1)
    return torch.arange(levels, device=device, dtype=dtype) * spacing - bound


def grid_points(
    levels: int,
    bound: float,
    variables: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """All ``L^m`` grid points ``[S, m]``; point ``s`` has level ``(s // L^i) % L`` in variable
    ``i`` (variable 0 varies fastest)."""
    states = levels**variables
    flat = torch.arange(states, device=device)
    powers = levels ** torch.arange(variables, device=device)
    digits = (flat.unsqueeze(1) // powers) % levels
    return level_values(levels, bound, device=device, dtype=dtype)[digits]


def rounding_rows(y: torch.Tensor, levels: int, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Distribution of ``round(clip(y))`` for unconstrained points ``y [n, m]``: flat grid
    indices ``[n, 2^m]`` (all distinct within a row) and their probabilities ``[n, 2^m]``
    (differentiable in ``y``)."""
    n, m = y.shape
    spacing = 2.0 * bound / (levels - 1)
    position = (y.clamp(-bound, bound) + bound) / spacing
    lower = position.detach().floor().clamp(0, levels - 2)
    upper_share = (position - lower).clamp(0.0, 1.0)
    corners = 2**m
    bits = (
        torch.arange(corners, device=y.device).unsqueeze(1) >> torch.arange(m, device=y.device)
    ) & 1
    index = torch.zeros(n, corners, dtype=torch.long, device=y.device)
    prob = torch.ones(n, corners, dtype=y.dtype, device=y.device)
    for i in range(m):
        up = bits[:, i].bool()
        index += (lower[:, i : i + 1].long() + bits[:, i]) * levels**i
        share = upper_share[:, i : i + 1]
        prob = prob * torch.where(up, share, 1.0 - share)
    return index, prob


# --- sparse stochastic matrices ------------------------------------------------------------------
class _RowProduct(torch.autograd.Function):
    """``D' = M^T D`` for distributions stored as columns ``D [S, B]`` (i.e. ``p M`` per column)."""

    @staticmethod
    def forward(ctx, dist, values, matrix):
        ctx.matrix = matrix
        ctx.save_for_backward(dist)
        return matrix.csr_transposed @ dist

    @staticmethod
    def backward(ctx, grad):
        (dist,) = ctx.saved_tensors
        matrix = ctx.matrix
        grad_dist = matrix.csr @ grad if ctx.needs_input_grad[0] else None
        grad_values = None
        if ctx.needs_input_grad[1]:
            grad_values = (dist[matrix.rows] * grad[matrix.cols]).sum(-1)
        return grad_dist, grad_values, None


class _Stationary(torch.autograd.Function):
    """``pi = pi M`` by power iteration; backward by implicit differentiation: with
    ``(I - M) u = g - (pi . g) 1`` (solved by iteration), ``dL/dM[s, j] = pi[s] u[j]``."""

    @staticmethod
    def forward(ctx, values, matrix, start, tol, max_iter):
        pi = _power_iteration(
            lambda d: matrix.csr_transposed @ d, start.detach().unsqueeze(1), tol, max_iter
        )
        ctx.matrix, ctx.tol, ctx.max_iter = matrix, tol, max_iter
        ctx.save_for_backward(pi)
        return pi.squeeze(1)

    @staticmethod
    def backward(ctx, grad):
        (pi,) = ctx.saved_tensors
        matrix = ctx.matrix
        pi = pi.squeeze(1)
        term = grad - (pi @ grad)
        u = term.clone().unsqueeze(1)
        increment, history = u, []
        scale = max(1.0, float(term.abs().max()))
        for _ in range(ctx.max_iter):
            increment = matrix.csr @ increment  # M^j term -> 0 as pi . term = 0; keep it so
            increment = increment - pi @ increment
            u = u + increment
            history.append(float(increment.abs().max()))
            if _converged(history, ctx.tol * max(scale, float(u.abs().max())), 1e-14 * scale):
                break
        else:
            raise ValueError(
                f"the stationary distribution's adjoint did not converge in {ctx.max_iter} "
                "iterations (more than one recurrent class?); use a finite burn-in"
            )
        u = u.squeeze(1)
        return pi[matrix.rows] * u[matrix.cols], None, None, None, None


def _converged(history: list[float], tol: float, floor: float, window: int = 10) -> bool:
    """Geometric convergence test on a history of step sizes ``d_t``: with the contraction
    ``r`` estimated over the last ``window`` steps, the remaining distance ``d_t r / (1 - r)``
    is at most ``tol``; or the last step is at the rounding-noise ``floor``."""
    last = history[-1]
    if last <= floor:
        return True
    if len(history) <= window or history[-1 - window] <= 0:
        return False
    ratio = (last / history[-1 - window]) ** (1.0 / window)
    return ratio < 1.0 and last * ratio / (1.0 - ratio) <= tol


def _power_iteration(step, dist: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Iterate ``dist <- step(dist)`` until the estimated L1 distance to the fixed point is
    below ``tol`` (see ``_converged``)."""
    history: list[float] = []
    with torch.no_grad():
        for _ in range(max_iter):
            new = step(dist)
            history.append(float((new - dist).abs().sum()))
            dist = new
            if _converged(history, tol, 1e-15):
                return dist
    raise ValueError(
        f"power iteration did not reach tolerance {tol:g} in {max_iter} iterations (last change "
        f"{history[-1]:.3g}); use a finite burn-in or raise max_iter"
    )


class SparseStochastic:
    """A sparse row-stochastic ``[size, size]`` matrix with differentiable ``values`` at
    ``(rows, cols)`` (sorted, no repeats). Repeated input entries are summed; zero entries are
    kept when the values require a gradient (a zero can still move) and dropped otherwise."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: int):
        key, values = rows.reshape(-1) * size + cols.reshape(-1), values.reshape(-1)
        if not values.requires_grad:  # no gradient wanted: drop the exact zeros (~30% at a bound)
            keep = values != 0
            key, values = key[keep], values[keep]
        unique, inverse = torch.unique(key, return_inverse=True)
        merged = values.new_zeros(len(unique)).index_add(0, inverse, values)
        self.size = size
        self.rows = unique // size
        self.cols = unique % size
        self.values = merged
        detached = merged.detach()
        by_col = torch.argsort(self.cols * size + self.rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            self.csr = torch.sparse_csr_tensor(
                _crow(self.rows, size), self.cols, detached, (size, size), check_invariants=False
            )
            self.csr_transposed = torch.sparse_csr_tensor(
                _crow(self.cols[by_col], size),
                self.rows[by_col],
                detached[by_col],
                (size, size),
                check_invariants=False,
            )

    @classmethod
    def from_rows(cls, index: torch.Tensor, prob: torch.Tensor) -> SparseStochastic:
        """From per-row column indices and probabilities ``[S, K]``."""
        size, width = index.shape
        rows = torch.arange(size, device=index.device).repeat_interleave(width)
        return cls(rows, index.reshape(-1), prob.reshape(-1), size)

    @classmethod
    def mixture(cls, parts: list[tuple[float, SparseStochastic]]) -> SparseStochastic:
        """``sum_k weight_k M_k`` (weights summing to 1 keep the matrix stochastic)."""
        rows = torch.cat([m.rows for _, m in parts])
        cols = torch.cat([m.cols for _, m in parts])
        values = torch.cat([w * m.values for w, m in parts])
        return cls(rows, cols, values, parts[0][1].size)

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.values.numel())

    def propagate(self, dist: torch.Tensor) -> torch.Tensor:
        """One step of distributions stored as columns ``[S, B]`` (``p -> p M``), differentiable
        in ``dist`` and in the matrix values."""
        return _RowProduct.apply(dist, self.values, self)

    def row_sums(self) -> torch.Tensor:
        """``M 1`` (all ones for a stochastic matrix), differentiable."""
        return self.values.new_zeros(self.size).index_add(0, self.rows, self.values)

    def to_dense(self) -> torch.Tensor:
        """The dense ``[S, S]`` matrix, differentiable (small grids only)."""
        dense = self.values.new_zeros(self.size, self.size)
        return dense.index_put((self.rows, self.cols), self.values, accumulate=True)

    def stationary(
        self, *, start: torch.Tensor | None = None, tol: float = 1e-12, max_iter: int = 1_000_000
    ) -> torch.Tensor:
        """The stationary distribution ``pi = pi M`` ``[S]``: the limit of power iteration from
        ``start`` (uniform by default), to an estimated L1 error ``tol``; differentiable in the
        values by implicit differentiation. Needs an aperiodic chain; its gradient needs a single
        recurrent class (otherwise the adjoint iteration fails with a clear error)."""
        if start is None:
            start = self.values.new_full((self.size,), 1.0 / self.size)
        return _Stationary.apply(self.values, self, start, tol, max_iter)


def _crow(sorted_rows: torch.Tensor, size: int) -> torch.Tensor:
    counts = torch.bincount(sorted_rows, minlength=size)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


# --- the chain of a model ------------------------------------------------------------------------
def model_device(model: Synapse) -> torch.device:
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: Synapse) -> torch.dtype | None:
    """The dtype of the model's first floating parameter or buffer (None when none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _event_tensors(points, value: float, flag: float | None):
    events = points.new_full((points.shape[0],), value)
    flags = None if flag is None else points.new_full((points.shape[0],), flag)
    return events, flags


def step_rows(
    model: Synapse,
    points: torch.Tensor,
    value: float,
    levels: int,
    bound: float,
    flag: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rounding rows (``index``, ``prob``, each ``[n, 2^m]``) of the constrained step of grid
    ``points [n, m]`` under event ``value`` (and ``flag``), and a mask ``[n]`` of the points
    where the step is not a number (their rows keep the point where it is: such states are made
    absorbing, and any probability that reaches them is reported as an error)."""
    events, flags = _event_tensors(points, value, flag)
    moved = model.step(points, events, flags)
    undefined = torch.isnan(moved).any(-1)
    if bool(undefined.any()):
        moved = torch.where(undefined.unsqueeze(-1), points, moved)
    index, prob = rounding_rows(moved, levels, bound)
    return index, prob, undefined


def _check_defined(dist: torch.Tensor, undefined: torch.Tensor, what: str) -> None:
    """One clear error when probability reaches states where the model's step is undefined."""
    if bool(undefined.any()):
        mass = float(dist.detach()[undefined].sum())
        if mass > 1e-12:
            raise ValueError(
                f"the model's step is not a number at {int(undefined.sum())} grid states, which "
                f"{what} reaches with probability {mass:.3g}; the grid method cannot evaluate it"
            )


@dataclass
class GridChain:
    """A model on the bounded grid: its points ``[S, m]``, the event matrices (``plus``,
    ``minus``: events +1 and -1), the readout weight of every point ``[S]`` and the initial
    state ``[1, m]``. Build it with ``build_grid_chain``."""

    model: Synapse
    levels: int
    bound: float
    points: torch.Tensor
    plus: SparseStochastic
    minus: SparseStochastic
    weights: torch.Tensor
    initial: torch.Tensor
    undefined: torch.Tensor

    @property
    def states(self) -> int:
        """Number of grid points ``S = L^m``."""
        return self.points.shape[0]

    def background(self, p_plus: float = BACKGROUND_P_PLUS) -> SparseStochastic:
        """``M_F = f M_+ + (1 - f) M_-``."""
        return SparseStochastic.mixture([(p_plus, self.plus), (1.0 - p_plus, self.minus)])

    def event_matrix(self, value: float, flag: float | None = None) -> SparseStochastic:
        """The matrix of an event ``value`` (with ``flag``); +-1 without flag are cached."""
        if flag is None and value == 1.0:
            return self.plus
        if flag is None and value == -1.0:
            return self.minus
        index, prob, undefined = step_rows(
            self.model, self.points, value, self.levels, self.bound, flag
        )
        self.undefined = self.undefined | undefined
        return SparseStochastic.from_rows(index, prob)

    def from_initial(self, value: float, flag: float | None = None) -> torch.Tensor:
        """Distribution ``[S]`` after one constrained step of event ``value`` from the initial
        state (which need not lie on the grid)."""
        index, prob, undefined = step_rows(
            self.model, self.initial, value, self.levels, self.bound, flag
        )
        if bool(undefined.any()):
            raise ValueError("the model's step from its initial state is not a number")
        return prob.new_zeros(self.states).index_add(0, index[0], prob[0])


def build_grid_chain(
    model: Synapse,
    levels: int,
    bound: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    max_states: int = MAX_STATES,
) -> GridChain:
    """The finite chain of ``model`` on the ``levels^m`` grid of ``[-bound, bound]^m``, from the
    model's own batched ``step`` over all grid points (differentiable in its parameters).
    ``dtype``/``device`` default to the model's; a ``dtype`` other than that of the model's
    parameters is refused (convert the model first, e.g. ``model.double()``)."""
    m = model.state_size
    check_grid_size(levels, m, max_states=max_states)
    own = model_dtype(model)
    if dtype is not None and own is not None and dtype != own:
        raise ValueError(
            f"dtype {dtype} differs from the model's parameters ({own}): convert the model "
            f"first (model.to({dtype})) or leave dtype out"
        )
    dtype = dtype or own or torch.float64  # float64 for a model without floating parameters
    device = model_device(model) if device is None else torch.device(device)
    points = grid_points(levels, bound, m, device=device, dtype=dtype)
    matrices, undefined = [], torch.zeros(points.shape[0], dtype=torch.bool, device=device)
    for value in (1.0, -1.0):
        index, prob, not_a_number = step_rows(model, points, value, levels, bound)
        matrices.append(SparseStochastic.from_rows(index, prob))
        undefined = undefined | not_a_number
    weights = model.readout(points)
    undefined = undefined | ~torch.isfinite(weights.detach())
    return GridChain(
        model=model,
        levels=int(levels),
        bound=float(bound),
        points=points,
        plus=matrices[0],
        minus=matrices[1],
        weights=torch.where(undefined, torch.zeros_like(weights), weights),
        initial=model.initial_state(1, device=device, dtype=dtype),
        undefined=undefined,
    )


# --- the SNR curve -------------------------------------------------------------------------------
def grid_applies(model: Synapse, scenario: Scenario) -> bool:
    """True for a continuous-state model in the bounded scenario (whatever the grid's size),
    its constraint the bounded scenario's own (``tasks.constrained.standard_constraint``)."""
    from learnsyn.tasks.constrained import standard_constraint

    return standard_constraint(scenario) == GRID_SCENARIO and not model.discrete_state


def grid_fits(model: Synapse, scenario: Scenario, max_states: int = MAX_STATES) -> bool:
    """True when the grid method applies and the grid is within the limits."""
    if not grid_applies(model, scenario):
        return False
    try:
        check_grid_size(scenario.params["levels"], model.state_size, max_states=max_states)
    except ValueError:
        return False
    return True


def _kind_flag(scenario: Scenario, kind: TrackedKind) -> float | None:
    return None if kind.flag == 0 and not scenario.has_flags else float(kind.flag)


def burn_in_distribution(
    chain: GridChain,
    burn_in: int | None,
    background: SparseStochastic,
    *,
    tol: float = 1e-12,
    max_iter: int = 1_000_000,
) -> torch.Tensor | None:
    """The distribution ``[S]`` after ``burn_in`` background steps from the initial state
    (None for ``burn_in = 0``: the state is still the off-grid initial state), or its limit as
    the burn-in grows, the stationary distribution, for ``burn_in = None``. Long burn-ins of small
    grids use dense repeated squaring (exact, differentiable), others sparse steps."""
    f = BACKGROUND_P_PLUS
    if burn_in is not None and burn_in < 0:
        raise ValueError(f"burn_in = {burn_in} is not allowed: need >= 0 (or None: stationary)")
    if burn_in == 0:
        return None
    first = f * chain.from_initial(1.0) + (1 - f) * chain.from_initial(-1.0)
    if burn_in is None:
        return background.stationary(start=first.detach(), tol=tol, max_iter=max_iter)
    steps = burn_in - 1
    if _dense_is_cheaper(background, steps):
        dist, power = first, background.to_dense()
        while steps:  # p M^n by repeated squaring: log2(n) dense products instead of n sparse
            if steps & 1:
                dist = dist @ power
            steps >>= 1
            if steps:
                power = power @ power
        return dist
    dist = first.unsqueeze(1)
    for _ in range(steps):
        dist = background.propagate(dist)
    return dist.squeeze(1)


def _dense_is_cheaper(matrix: SparseStochastic, steps: int) -> bool:
    """Rough cost model: ``log2(n) S^3`` flops for squaring against ``n`` sparse products of
    ``4 nnz`` flops plus a fixed overhead (~3e5 flops' worth of call time) each."""
    if matrix.size > DENSE_STATES or steps < 2:
        return False
    dense = math.ceil(math.log2(steps)) * 2 * matrix.size**3
    return dense < steps * (4 * matrix.nnz + 300_000)


def grid_signal_and_variance(
    model: Synapse,
    scenario: Scenario,
    ages,
    *,
    burn_in: int | None,
    chain: GridChain | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    tol: float = 1e-12,
    max_iter: int = 1_000_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact signals and pooled weight variances ``[kinds, ages]`` of ``model`` in the bounded
    ``scenario`` at integer ``ages``, with the meaning of ``PairMoments.moments`` (the Monte
    Carlo estimator's limit). ``burn_in``: background steps before the tracked event (as
    ``simulate_pairs``), or None for the stationary distribution (power iteration to ``tol``).
    Differentiable in the model's parameters; cost O(max(ages) + burn_in) sparse products."""
    if not grid_applies(model, scenario):
        raise ValueError(
            f"the grid method needs a continuous-state model in the {GRID_SCENARIO!r} scenario "
            f"(got model {model.info.name!r} in {scenario.info.name!r})"
        )
    ages_int = integer_ages(ages, increasing=False)
    if chain is None:
        chain = build_grid_chain(
            model, scenario.params["levels"], scenario.params["bound"], dtype=dtype, device=device
        )
    background = chain.background()
    start = burn_in_distribution(chain, burn_in, background, tol=tol, max_iter=max_iter)
    kinds = scenario.tracked_kinds()
    columns = []
    for kind in kinds:
        flag = _kind_flag(scenario, kind)
        for sign in (1.0, -1.0):
            value = sign * kind.amplitude
            if start is None:
                columns.append(chain.from_initial(value, flag))
            else:
                matrix = chain.event_matrix(value, flag)
                columns.append(matrix.propagate(start.unsqueeze(1)).squeeze(1))
    if start is not None:
        _check_defined(start, chain.undefined, "the burn-in")
    dist = torch.stack(columns, 1)  # [S, 2 * kinds]: (+, -) per kind
    # moments of the weight about its mean after the first event (a constant: the signal and the
    # variance do not depend on it): E[w^2] - E[w]^2 about 0 cancelled to round-off where the
    # distribution sits on a few states, and an SNR of round-off over round-off rose to 28 at
    # single ages (an area of 1968, above the bound N / (4 theta) = 250; session 24)
    centre = (chain.weights @ dist[:, 0]).detach()
    centred = chain.weights - centre
    readouts = torch.stack([centred, centred**2])  # [2, S]
    order = np.argsort(ages_int, kind="stable")
    records: list[torch.Tensor | None] = [None] * len(ages_int)
    age = 0
    for position in order:
        while age < ages_int[position]:
            dist = background.propagate(dist)
            age += 1
        records[position] = readouts @ dist  # [2, 2 * kinds]: (E, Q) x (+, -) per kind
    # undefined states are absorbing: the last distributions hold all mass that ever reached them
    _check_defined(dist.sum(1), chain.undefined, "the tracked window")
    stacked = torch.stack(records)  # [T, 2, 2 * kinds]
    signals, variances = [], []
    for k, kind in enumerate(kinds):
        e_plus, e_minus = stacked[:, 0, 2 * k], stacked[:, 0, 2 * k + 1]
        q_plus, q_minus = stacked[:, 1, 2 * k], stacked[:, 1, 2 * k + 1]
        sums = torch.stack([e_plus, q_plus, e_minus, q_minus], -1)
        signal, variance = PairMoments(sums, 1, kind.p_plus).moments(sums, 1.0)
        signals.append(signal)
        variances.append(variance)
    return torch.stack(signals), torch.stack(variances)


def grid_snr(
    model: Synapse,
    scenario: Scenario,
    ages,
    synapses: float,
    convention: str,
    *,
    burn_in: int | None,
    **options,
) -> torch.Tensor:
    """Exact SNR curves ``[kinds, ages]`` (differentiable); ``options`` as for
    ``grid_signal_and_variance``."""
    signals, variances = grid_signal_and_variance(model, scenario, ages, burn_in=burn_in, **options)
    return snr_from_moments(signals, variances, synapses, convention)


def grid_exact_curves(
    model: Synapse,
    scenario: Scenario,
    ages: np.ndarray,
    synapses: float,
    convention: str,
    *,
    burn_in: int | None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """``[kinds, ages]`` exact SNR curves as float64 numpy, for the evaluation path: the model
    is copied to float64 (on ``device``, default the model's) and evaluated without gradient."""
    device = model_device(model) if device is None else torch.device(device)
    exact_model = copy.deepcopy(model).to(device=device, dtype=torch.float64)
    with torch.no_grad():
        snr = grid_snr(
            exact_model,
            scenario,
            ages,
            synapses,
            convention,
            burn_in=burn_in,
            dtype=torch.float64,
            device=device,
        )
    return snr.cpu().numpy()


# --- benchmark -----------------------------------------------------------------------------------
def grid_bench(
    quick: bool = False,
    device: str = "cpu",
    sizes: tuple[tuple[int, int], ...] = ((16, 2), (16, 3), (16, 4)),
) -> dict:
    """Time the exact grid SNR of the Benna-Fusi chain in bounded for grids of ``(levels,
    variables)`` (default 256, 4096 and 65536 states): chain construction, then a curve of
    ``horizon`` ages after a ``burn_in``-step burn-in (600 and 600; ``quick``: 100 and 100).
    Returns states, transitions and seconds per grid."""
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario

    horizon, burn = (100, 100) if quick else (600, 600)
    entries = []
    for levels, variables in sizes:
        scenario = make_scenario(GRID_SCENARIO, {"levels": levels, "bound": 1.0})
        model = make_model("benna-fusi", {"variables": variables}).to(device).double()
        start = time.perf_counter()
        chain = build_grid_chain(model, levels, 1.0)
        built = time.perf_counter() - start
        with torch.no_grad():
            grid_signal_and_variance(model, scenario, np.arange(horizon), burn_in=burn, chain=chain)
        total = time.perf_counter() - start
        entries.append(
            {
                "levels": levels,
                "variables": variables,
                "states": chain.states,
                "transitions": chain.plus.nnz,
                "build_seconds": built,
                "seconds": total,
                "steps": horizon + burn,
                "ms_per_step": 1e3 * (total - built) / (horizon + burn),
            }
        )
    return {
        "what": f"exact grid SNR, benna-fusi in bounded, burn-in {burn}, horizon {horizon}",
        "device": device,
        "threads": torch.get_num_threads(),
        "entries": entries,
    }


def describe_grid_bench(results: dict) -> list[str]:
    """Report lines for ``grid_bench``'s results."""
    lines = [f"{results['what']} ({results['device']}, {results['threads']} thread(s)):"]
    for e in results["entries"]:
        lines.append(
            f"  {e['states']} states ({e['levels']} levels, m={e['variables']}): "
            f"{e['seconds']:.3g} s "
            f"(build {e['build_seconds']:.3g} s, {e['ms_per_step']:.3g} ms per step)"
        )
    return lines


__all__ = [
    "AUTO_MAX_STATES",
    "MAX_STATES",
    "MAX_TRANSITIONS",
    "GridChain",
    "SparseStochastic",
    "build_grid_chain",
    "burn_in_distribution",
    "check_grid_size",
    "describe_grid_bench",
    "grid_applies",
    "grid_bench",
    "grid_exact_curves",
    "grid_fits",
    "grid_points",
    "grid_signal_and_variance",
    "grid_size",
    "grid_snr",
    "level_values",
    "rounding_rows",
    "step_rows",
]
