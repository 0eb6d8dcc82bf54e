"""The optimal general linear synapse of m variables for a metric (science.md section 7).

The family: ``x' = A x + b xi``, ``w = c . x`` with m state variables and A, b, c free (complex
eigenvalues allowed, so the memory kernel ``r(tau) = c A^tau b`` may be a damped oscillation,
which no exponential or Benna-Fusi chain can produce). Wherever the scenario has flags
(``Scenario.has_flags``: importance, where important events are flagged) the family also
includes a flag-dependent increment, ``x' = A x + b_flagged xi`` for flagged events and
``A x + b xi`` for the others: a linear synapse that sees the flag. The reason is fairness: the
learned cells see the flag, and one gated variable (ordinary events written weakly, flagged ones
strongly) already has about twice the area of the best flag-blind synapse of 4 variables
(importance, N = 1000, horizon 600: 1160 against 598), so a flag-blind optimum is not the
strongest linear competitor of the same size. Elsewhere b_flagged is absent and nothing changes.
Wherever the scenario has ``linear_statistics()`` the SNR curve of any member is exact (section
3), so the best member for a metric is found by optimizing that closed form:

1. a modal parameterization: real poles ``lambda = tanh(u)`` and complex-conjugate pairs
   ``rho e^{+-i omega}`` (``rho = sigmoid(s)``, ``omega = pi sigmoid(v)``) as the blocks of a
   block-diagonal A, so every candidate is stable by construction; every number of complex pairs
   0..m//2 is enumerated. Many seeded random candidates (plus single exponentials on a grid of
   decays) are scored by the exact metric and the best ones are optimized by L-BFGS on a smooth
   surrogate of the metric (``estimate.snr.smooth_objective``) whose temperature is annealed
   towards the exact metric;
2. with flags, a second modal search over gated structures follows (every mode's ordinary and
   flagged residues free, c fixed per mode), started from the flag-blind optima of every layout
   (ordinary increments scaled by 1, 0.3, 0.1, 0) besides random and exponential starts; the
   better of the two searches wins (so the gated optimum is never below the flag-blind one) and
   is reported with b_flagged (equal to b if the flag-blind one won);
3. where the scenario adds state noise, the SNR also depends on the realization (the basis of
   the state, in which the noise is isotropic) and on the increments: a polish over the full
   ``(A, b, c) = (G^-1 D G, b, c)`` with G, b (and b_flagged) and c free follows (e.g. two
   identical leaky copies read out as their sum average independent noise, which no single
   variable can);
4. the winner is rebuilt as an ``optimal-linear`` model and evaluated by
   ``learnsyn.evaluate.evaluate``, so its number is the one every other model gets.

The surrogate and the closed form are differentiable torch code (float64): the matrix powers
``A^tau`` for all ages by about 2 sqrt(T) products, the stationary covariance by a Kronecker-form
Lyapunov solve. Correlated events are handled by an augmented state (the event as an AR(1)
variable), state noise by a second Lyapunov solve, importance by the weighted sum of the kinds'
curves and a flag-dependent increment by one kernel and one Lyapunov solve per flag value,
exactly as ``evaluate`` does (``estimate.exact``; correlated events with flags are not
supported there).

For scenarios without linear statistics (bounded; noisy with a range) the model's ``optimize``
starts from the exact optimum in the unconstrained ideal scenario, realized so that every variable
has the same stationary variance, scans the amplitude (the scale of b, which matters under
clipping and rounding), then runs Nelder-Mead over (A, b, c). Its objective: in the bounded
scenario, where clipping and rounding keep the state on a grid of ``levels^m`` points, the exact
SNR of that finite chain (science.md section 7; checked against Monte Carlo in the tests);
elsewhere (or on grids over ``MAX_CHAIN_STATES`` points) a Monte Carlo estimate with one fixed
seed (common random numbers for all candidates). The winner is evaluated by Monte Carlo on
fresh random numbers, through ``evaluate`` like every other model.

Without a range, state noise alone constrains nothing: scaling b up makes the noise negligible.
Under state noise the increments are therefore capped, ``|b_i| <= max_amplitude`` (default 10,
the amplitude range the other baselines are tuned over). The cap makes the problem well posed for
every A: the noise that enters along b is processed exactly like the event, so no gain inside
the synapse can separate the two.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg
import torch

from learnsyn.estimate.exact import variances_given_kind
from learnsyn.estimate.montecarlo import default_burn_in
from learnsyn.estimate.snr import EvalSpec, compute_metrics, smooth_objective, snr_from_moments
from learnsyn.evaluate import Evaluation, evaluate
from learnsyn.registry import register_model
from learnsyn.scenario import InputStatistics, Scenario, make_scenario
from learnsyn.synapse import (
    AMPLITUDE_RANGE,
    AMPLITUDE_SEARCH,
    LinearSynapse,
    ModelInfo,
    ParamSpec,
    resolve_params,
    spectral_radius,
)
from learnsyn.tuning import SearchTarget, TuneRequest, TuneResult

NAME = "optimal-linear"
#: surrogate temperatures of the L-BFGS stages, in units of the threshold (after each stage the
#: exact metric decides whether the point is kept)
TEMPERATURES = (0.3, 0.1, 0.03, 0.01)
#: the most variables the optimizer accepts (the cost grows as m^4 in the Lyapunov solve)
MAX_VARIABLES = 8
DTYPE = torch.float64
#: poles are kept at modulus <= MARGIN < 1 (a pole rounded to 1 would be unstable)
MARGIN = 1.0 - 1e-10


# --------------------------------------------------------------------------------------------
# the registered model
# --------------------------------------------------------------------------------------------


@register_model
class OptimalLinearSynapse(LinearSynapse):
    """A general linear synapse given by its matrices; ``learnsyn tune`` computes the best ones.

    Parameters: ``variables`` (m) and the entries of A (m*m, row-major), b (m) and c (m), as
    lists of numbers (JSON or comma-separated text on the command line). Empty A, b, c: m leaky
    copies with decay 0.99 read out as their average. ``variables`` may be left out when b is
    given (m = len(b)). ``b_flagged`` (m entries, optional): the increment of events with flag 1,
    ``x' = A x + b_flagged xi`` for them; empty (the default, and then left out of the
    parameters): every event uses b, as before the option existed.
    """

    info = ModelInfo(
        name=NAME,
        summary="general linear synapse x' = A x + b xi, w = c.x with m variables (complex "
        "eigenvalues allowed); `tune` computes the optimal A, b, c for the metric",
        reference="science.md sections 3 and 7 (exact linear SNR); Lahiri & Ganguli 2013",
        params=(
            ParamSpec("variables", int, 1, 1, 40, help="number of variables m"),
            ParamSpec(
                "A",
                list,
                (),
                help="m*m entries of A, row-major (empty: 0.99 times the identity)",
                tunable=False,
            ),
            ParamSpec("b", list, (), help="m entries of b (empty: all 1)", tunable=False),
            ParamSpec("c", list, (), help="m entries of c (empty: all 1/m)", tunable=False),
            ParamSpec(
                "b_flagged",
                list,
                (),
                help="m entries of the increment of flagged events (flag 1, in scenarios with "
                "flags); empty: b (every event uses b)",
                tunable=False,
            ),
        ),
    )

    #: the largest spectral radius of A the family admits, and whether it is included (here:
    #: stable only, radius < 1; ``linear-range`` allows unstable modes up to a cap)
    max_radius: float = 1.0
    max_radius_included: bool = False

    #: the most variables ``optimize`` searches (``MAX_VARIABLES``)
    max_state_size = MAX_VARIABLES

    @classmethod
    def radius_allowed(cls, radius: float) -> bool:
        """True when a spectral radius of A is inside the family."""
        return radius <= cls.max_radius if cls.max_radius_included else radius < cls.max_radius

    def __init__(self, **params: Any):
        owner = f"model {self.info.name!r}"
        self.params = resolve_params(self.info.params, params, owner)
        p = self.params
        m = _variables_given(p, params)
        # empty A, b, c: m leaky copies (decay 0.99, increment 1) read out as their average; a
        # constant drive only where the family declares it (``linear-range``)
        defaults = {"A": 0.99 * np.eye(m).reshape(-1), "b": np.ones(m), "c": np.full(m, 1.0 / m)}
        given = {
            key: np.asarray(p[key], dtype=np.float64) if p.get(key) else defaults.get(key)
            for key in ("A", "b", "c", "b_flagged", "drive")
        }
        for name, values in given.items():
            size = m * m if name == "A" else m
            if values is not None and len(values) != size:
                raise ValueError(
                    f"{owner} parameter {name} has {len(values)} entries: expected {size} "
                    f"for variables={m}"
                )
        for name, values in given.items():  # (1e200 read NaN figures, said nowhere; session 37)
            if values is not None and not np.all(np.abs(values) <= MAX_ENTRY):
                raise ValueError(
                    f"{owner} parameter {name} has an entry of magnitude "
                    f"{np.max(np.abs(values)):g}: expected at most {MAX_ENTRY:g}"
                )
        A, b, c, b_flagged, drive = given.values()
        A = A.reshape(m, m)
        radius = spectral_radius(A)
        if not self.radius_allowed(radius):
            relation = "<=" if self.max_radius_included else "<"
            raise ValueError(
                f"{owner} is unstable: A has spectral radius {radius:.6g}, expected {relation} "
                f"{self.max_radius:g}"
            )
        form = params_from_form(A, b, c, b_flagged, drive)
        self.params = {
            key: value if key == "variables" else tuple(value) for key, value in form.items()
        }
        super().__init__(A, b, c, b_flagged, drive)

    @classmethod
    def tuned_state_size(cls, fixed: dict[str, Any] | None, max_state: int | None) -> int:
        """m for ``optimize``: a fixed ``variables``, else ``max_state``, else 2 (A, b and c are
        computed, so nothing else may be fixed)."""
        fixed = dict(fixed or {})
        name = cls.info.name
        extra = sorted(set(fixed) - {"variables"})
        if extra:
            raise ValueError(
                f"model {name!r} computes A, b and c itself; only variables can be fixed when "
                f"tuning (got {', '.join(extra)})"
            )
        if "variables" in fixed:
            m = resolve_params(cls.info.params, fixed, f"model {name!r}")["variables"]
        else:
            m = max_state if max_state is not None else 2
        if max_state is not None and m > max_state:
            raise ValueError(f"variables={m} exceeds the state budget max_state={max_state}")
        if m > cls.max_state_size:  # named as given (it read "state_size = 12"; session 37)
            given = f"variables={m}" if "variables" in fixed else f"the state budget max_state={m}"
            raise ValueError(
                f"model {name!r} searches at most {cls.max_state_size} variables; {given} is "
                f"more (fix variables at {cls.max_state_size} or fewer)"
            )
        return m

    @classmethod
    def optimize(cls, scenario: Scenario, request: TuneRequest) -> TuneResult:
        """``learnsyn.tuning.tune`` for this model: ``optimize_linear_synapse`` where the
        scenario has linear statistics (and the method is not monte-carlo), otherwise
        ``optimize_linear_synapse_monte_carlo`` (the exact chain in the bounded scenario; a Monte
        Carlo search of 5 x ``refine_iterations`` evaluations elsewhere). A fixed ``variables``
        or else ``max_state`` gives m (default 2)."""
        m = cls.tuned_state_size(request.fixed, request.max_state)
        if scenario.linear_statistics() is not None and request.method != "monte-carlo":
            result = optimize_linear_synapse(scenario, state_size=m, **request.search())
            trials = [{"params": result.params, "value": result.value}]
            if request.progress is not None:
                request.progress(result.evaluations, result.params, result.value)
            return TuneResult(
                result.params, result.value, result.evaluation, result.evaluations, trials
            )
        mc = optimize_linear_synapse_monte_carlo(scenario, state_size=m, **request.monte_carlo())
        return TuneResult(mc.params, mc.value, mc.evaluation, mc.evaluations, mc.trials)


def params_from_form(
    A: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    b_flagged: np.ndarray | None = None,
    drive: np.ndarray | None = None,
) -> dict[str, Any]:
    """The ``optimal-linear`` parameters of the synapse ``(A, b, c)`` and, where given, its
    increment of flagged events and (``linear-range`` only) its constant drive (JSON-ready
    lists)."""
    A = np.asarray(A, dtype=np.float64)
    params = {
        "variables": int(A.shape[0]),
        "A": [float(v) for v in A.reshape(-1)],
        "b": [float(v) for v in np.asarray(b, dtype=np.float64).reshape(-1)],
        "c": [float(v) for v in np.asarray(c, dtype=np.float64).reshape(-1)],
    }
    for key, values in (("b_flagged", b_flagged), ("drive", drive)):
        if values is not None:
            params[key] = [float(v) for v in np.asarray(values).reshape(-1)]
    return params


# --------------------------------------------------------------------------------------------
# the exact SNR curve of (A, b, c) in torch (differentiable)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """Everything the objective needs besides the synapse."""

    stats: InputStatistics
    weights: tuple[float, ...]
    spec: EvalSpec


def form_from_params(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, b, c)`` as numpy arrays from ``optimal-linear`` parameters (``params_from_form``'s
    inverse, without ``b_flagged``)."""
    b = np.asarray(params["b"], dtype=np.float64)
    m = len(b)
    return (
        np.asarray(params["A"], dtype=np.float64).reshape(m, m),
        b,
        np.asarray(params["c"], dtype=np.float64),
    )


def embed_smaller(params: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smaller synapse's ``(A, b, c)`` embedded in ``size`` variables: the extra variables get
    no input and no readout (and decay by half per step), so the synapse is the same."""
    A_small, b_small, c_small = form_from_params(params)
    k = len(b_small)
    A = 0.5 * np.eye(size)
    A[:k, :k] = A_small
    b, c = np.zeros(size), np.zeros(size)
    b[:k], c[:k] = b_small, c_small
    return A, b, c


def power_stack(M: torch.Tensor, count: int) -> torch.Tensor:
    """``[M^0, ..., M^(count-1)]`` as ``[count, n, n]`` with about ``2 sqrt(count)`` products."""
    n = M.shape[0]
    block = max(1, math.isqrt(max(count - 1, 0)) + 1)
    small = [torch.eye(n, dtype=M.dtype)]
    for _ in range(block - 1):
        small.append(small[-1] @ M)
    stride = small[-1] @ M
    big = [torch.eye(n, dtype=M.dtype)]
    for _ in range(-(-count // block) - 1):
        big.append(big[-1] @ stride)
    stack = torch.stack(big)[:, None] @ torch.stack(small)[None]
    return stack.reshape(-1, n, n)[:count]


def lyapunov(A: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``P = A P A^T + Q`` by the Kronecker form ``(I - A (x) A) vec P = vec Q``."""
    n = A.shape[0]
    system = torch.eye(n * n, dtype=A.dtype) - torch.kron(A, A)
    return torch.linalg.solve(system, Q.reshape(-1)).reshape(n, n)


def snr_curve(
    A: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    setting: Setting,
    powers: torch.Tensor | None = None,
    b_flagged: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (kind-weighted) SNR at ages ``0..horizon-1``, exactly as ``evaluate`` computes it;
    ``powers``: ``A^0..A^(horizon-1)`` when already known (used without correlation);
    ``b_flagged``: the increment of flagged events (None: b), as in
    ``estimate.exact.linear_signal_and_variance``: per input kind j (``input_kinds``) the kernel
    ``r_j = c A^tau b_j``, the stationary variance ``sum_j P(j) E[xi^2 | j] sum_tau r_j^2``."""
    stats, count = setting.stats, setting.spec.horizon
    m = A.shape[0]
    rho = float(stats.correlation)
    weights, tracked = stats.input_kinds(b_flagged is not None)
    increments = (b, b_flagged) if len(weights) > 1 else (b,)
    if rho == 0:
        powers = power_stack(A, count) if powers is None else powers
        kernels = [torch.einsum("i,tij,j->t", c, powers, inc) for inc in increments]
        base = kernels[0]
        variance = sum(
            w * (c @ lyapunov(A, torch.outer(inc, inc)) @ c) for w, inc in zip(weights, increments)
        )
    else:
        # the event as an AR(1) variable u: x' = A x + b u, u' = rho u + innovation
        top = torch.cat([A, b[:, None]], 1)
        bottom = torch.cat(
            [torch.zeros(1, m, dtype=A.dtype), torch.full((1, 1), rho, dtype=A.dtype)], 1
        )
        augmented = torch.cat([top, bottom], 0)
        powers = power_stack(augmented, count + 1)
        kernels = [torch.einsum("i,tij,j->t", c, powers[:count, :m, :m], b)]
        base = torch.einsum("i,ti->t", c, powers[1:, :m, m])
        Q = torch.zeros(m + 1, m + 1, dtype=A.dtype)
        Q[m, m] = stats.variance * (1.0 - rho**2)
        P = lyapunov(augmented, Q)[:m, :m]
        variance = c @ P @ c
    if stats.state_noise > 0:
        noise = lyapunov(A, torch.eye(m, dtype=A.dtype))
        variance = variance + stats.state_noise**2 * (c @ noise @ c)
    variance = variance + 0 * kernels[0]
    if rho != 0:
        # the intervention drops the tracked event's correlation with the later events:
        # later(tau) = sum_{k >= 1} rho^k r(tau + k) = c A^tau rho A (I - rho A)^-1 b
        eye = torch.eye(m, dtype=A.dtype)
        b_later = rho * A @ torch.linalg.solve(eye - rho * A, b)
        later = torch.einsum("i,tij,j->t", c, powers[:count, :m, :m], b_later)
        variance = variance - 2 * base * later
    curve = torch.zeros(count, dtype=A.dtype)
    kind_variances = variances_given_kind(variance, kernels, weights, tracked, stats)
    for gain, weight, own, kind_variance in zip(
        stats.gains, setting.weights, tracked, kind_variances
    ):
        signal = gain * (base if own == 0 else kernels[own])
        snr = snr_from_moments(
            signal, kind_variance, setting.spec.synapses, setting.spec.convention
        )
        curve = curve + weight * snr
    return curve


#: metrics that a perfect memory of the newest event makes infinite in the exact convention
UNBOUNDED_IN_EXACT = ("area", "initial_snr", "log_area")


def unbounded_in_exact(target) -> bool:
    """The target's metric is unbounded over linear synapses without state noise."""
    return target.convention == "exact" and target.metric in UNBOUNDED_IN_EXACT


def exact_metric(curve: torch.Tensor, setting: Setting) -> float:
    """The exact metric of a curve (``estimate.snr.compute_metrics``); -inf if not finite."""
    values = curve.detach().cpu().numpy()
    if not np.all(np.isfinite(values)):
        return -math.inf
    value = compute_metrics(np.arange(setting.spec.horizon), values, setting.spec.threshold)[
        setting.spec.metric
    ]
    return value if math.isfinite(value) else -math.inf


# --------------------------------------------------------------------------------------------
# parameterizations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Structure:
    """The block layout of a modal A: ``pairs`` complex-conjugate pairs, ``reals`` real poles;
    ``amplitude_cap``: None (b's scale does not matter), or the largest |b_i|, and then b carries
    a free amplitude ``cap * sigmoid(a)`` (the scale matters under state noise). ``gated``: the
    synapse has a second increment, for flagged events; then c is fixed per mode and both
    increments are free (``modal_form``)."""

    pairs: int
    reals: int
    amplitude_cap: float | None = None
    gated: bool = False

    @property
    def size(self) -> int:
        return 2 * self.pairs + self.reals

    @property
    def pair_width(self) -> int:
        """Per pair (s, v, c1, c2); gated: (s, v, b1, b2, f1, f2)."""
        return 6 if self.gated else 4

    @property
    def real_width(self) -> int:
        """Per real pole (u, c); gated: (u, b, f)."""
        return 3 if self.gated else 2

    @property
    def modal_length(self) -> int:
        """The parameters of the poles and residues (without the amplitude)."""
        return self.pair_width * self.pairs + self.real_width * self.reals

    @property
    def amplitude(self) -> bool:
        """True when the vector ends with the amplitude (ungated, under a cap)."""
        return self.amplitude_cap is not None and not self.gated

    @property
    def length(self) -> int:
        return self.modal_length + int(self.amplitude)

    def pole_indices(self) -> tuple[list[int], list[int]]:
        """Where the (s, v) of every pair and the u of every real pole sit in the vector."""
        pairs = [self.pair_width * k for k in range(self.pairs)]
        offset = self.pair_width * self.pairs
        return pairs, [offset + self.real_width * k for k in range(self.reals)]


def _capped(raw: torch.Tensor, cap: float | None) -> torch.Tensor:
    return raw if cap is None else cap * torch.tanh(raw)


def modal_form(theta: torch.Tensor, structure: Structure):
    """``(A, b, c, b_flagged)`` of a modal parameter vector: block-diagonal A. Ungated: b =
    amplitude * (1, 0) per pair and 1 per real pole, c free, b_flagged None. Gated: c = (1, 0)
    per pair and 1 per real pole, b and b_flagged free (``cap * tanh`` of them under a cap), so
    each mode's two residues (ordinary and flagged) are free, 0 included."""
    m = structure.size
    pair_at, real_at = structure.pole_indices()
    blocks, b_parts, c_parts, f_parts = [], [], [], []
    one_zero = torch.tensor([1.0, 0.0], dtype=theta.dtype)
    for k in pair_at:
        s, v = theta[k], theta[k + 1]
        radius = torch.sigmoid(s) * MARGIN
        angle = math.pi * torch.sigmoid(v)
        cos, sin = radius * torch.cos(angle), radius * torch.sin(angle)
        blocks.append(torch.stack([torch.stack([cos, -sin]), torch.stack([sin, cos])]))
        if structure.gated:
            b_parts.append(theta[k + 2 : k + 4])
            f_parts.append(theta[k + 4 : k + 6])
            c_parts.append(one_zero)
        else:
            b_parts.append(one_zero)
            c_parts.append(theta[k + 2 : k + 4])
    for k in real_at:
        blocks.append((torch.tanh(theta[k]) * MARGIN).reshape(1, 1))
        if structure.gated:
            b_parts.append(theta[k + 1 : k + 2])
            f_parts.append(theta[k + 2 : k + 3])
            c_parts.append(torch.ones(1, dtype=theta.dtype))
        else:
            b_parts.append(torch.ones(1, dtype=theta.dtype))
            c_parts.append(theta[k + 1 : k + 2])
    A = torch.block_diag(*blocks) if blocks else torch.zeros(m, m, dtype=theta.dtype)
    b, c = torch.cat(b_parts), torch.cat(c_parts)
    if structure.gated:
        cap = structure.amplitude_cap
        return A, _capped(b, cap), c, _capped(torch.cat(f_parts), cap)
    if structure.amplitude_cap is not None:
        b = b * structure.amplitude_cap * torch.sigmoid(theta[-1])
    return A, b, c, None


def modal_powers(theta: torch.Tensor, structure: Structure, count: int) -> torch.Tensor:
    """``A^0..A^(count-1)`` of ``modal_form``'s block-diagonal A in closed form: ``rho^t`` times
    a rotation by ``omega t`` per pair, ``lambda^t`` per real pole (``[count, m, m]``)."""
    m = structure.size
    ages = torch.arange(count, dtype=theta.dtype)
    powers = torch.zeros(count, m, m, dtype=theta.dtype)
    pair_at, real_at = structure.pole_indices()
    for index, k in enumerate(pair_at):
        s, v = theta[k], theta[k + 1]
        log_radius = torch.nn.functional.logsigmoid(s) + math.log(MARGIN)
        angle = math.pi * torch.sigmoid(v)
        scale = torch.exp(ages * log_radius)
        cos, sin = scale * torch.cos(angle * ages), scale * torch.sin(angle * ages)
        i = 2 * index
        powers[:, i, i], powers[:, i, i + 1] = cos, -sin
        powers[:, i + 1, i], powers[:, i + 1, i + 1] = sin, cos
    for index, k in enumerate(real_at):
        pole = torch.tanh(theta[k]) * MARGIN
        magnitude = torch.exp(ages * torch.log(pole.abs().clamp_min(1e-300)))
        odd = torch.remainder(ages, 2) == 1
        sign = torch.where(odd & (pole < 0), -1.0, 1.0).to(theta.dtype)
        i = 2 * structure.pairs + index
        powers[:, i, i] = sign * magnitude
    return powers


def full_form(theta: torch.Tensor, structure: Structure):
    """``(G^-1 D G, cap * tanh(beta), c, b_flagged)``: the modal vector (only its poles are
    used: D), then G (m*m), beta (m), gated also beta_f (m, b_flagged = cap * tanh(beta_f)), and
    c (m), all free; every diagonalizable A with that pole layout and every b with
    ``|b_i| < cap`` is reachable (without a cap, b = beta)."""
    m = structure.size
    D = modal_form(theta[: structure.length], structure)[0]
    rest = theta[structure.length :]
    G = rest[: m * m].reshape(m, m)
    cap = structure.amplitude_cap
    b = _capped(rest[m * m : m * m + m], cap)
    b_flagged = _capped(rest[m * m + m : m * m + 2 * m], cap) if structure.gated else None
    c = rest[-m:]
    return torch.linalg.solve(G, D @ G), b, c, b_flagged


def full_start(theta_modal: torch.Tensor, structure: Structure) -> torch.Tensor:
    """The full parameter vector equal to a modal one (G = I)."""
    _, b, c, b_flagged = modal_form(theta_modal, structure)
    cap = structure.amplitude_cap

    def raw(values: torch.Tensor) -> torch.Tensor:
        return values if cap is None else torch.atanh((values / cap).clamp(-1 + 1e-9, 1 - 1e-9))

    increments = [raw(b)] + ([raw(b_flagged)] if structure.gated else [])
    eye = torch.eye(structure.size, dtype=theta_modal.dtype).reshape(-1)
    return torch.cat([theta_modal, eye, *increments, c]).detach()


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _raw(values: np.ndarray, cap: float | None) -> np.ndarray:
    """The inverse of ``_capped`` (values clipped just inside the cap)."""
    values = np.asarray(values, dtype=np.float64)
    if cap is None:
        return values
    return np.arctanh(np.clip(values / cap, -1 + 1e-9, 1 - 1e-9))


def random_modal(structure: Structure, rng: np.random.Generator, horizon: int) -> np.ndarray:
    """A random modal parameter vector: time scales log-uniform in [1, 20 horizon], periods
    log-uniform in [2, 40 horizon], residues normal (gated: both increments)."""
    theta = []
    longest = 20.0 * max(horizon, 2)
    residues = 4 if structure.gated else 2
    for _ in range(structure.pairs):
        radius = 1.0 - 1.0 / np.exp(rng.uniform(0.0, math.log(longest)))
        period = np.exp(rng.uniform(math.log(2.0), math.log(2 * longest)))
        angle = min(2 * math.pi / period, math.pi * (1 - 1e-6))
        theta += [_logit(max(radius, 1e-6)), _logit(angle / math.pi), *rng.normal(size=residues)]
    for _ in range(structure.reals):
        decay = 1.0 - 1.0 / np.exp(rng.uniform(0.0, math.log(longest)))
        sign = 1.0 if rng.uniform() < 0.9 else -1.0
        theta += [math.atanh(sign * decay), *rng.normal(size=residues // 2)]
    if structure.amplitude:
        theta.append(3.0)
    return np.array(theta, dtype=np.float64)


def exponential_modal(
    structure: Structure, decay: float, copies: bool = False, ordinary: float = 1.0
) -> np.ndarray | None:
    """A single exponential embedded in the structure (other residues 0), or with ``copies``
    every real pole at that decay, read out with equal weights; None without a real pole.
    Gated: flagged events enter with 1 (the cap's tanh(1) under a cap), ordinary ones with
    ``ordinary`` times that."""
    if structure.reals == 0:
        return None
    theta = np.zeros(structure.length)
    pair_at, real_at = structure.pole_indices()
    for k in pair_at:
        theta[k : k + 2] = (_logit(0.5), _logit(0.25))
    for index, k in enumerate(real_at):
        theta[k] = math.atanh(decay if copies else decay ** (2.0**index))
        residue = 1.0 if copies or index == 0 else 0.0
        if structure.gated:
            theta[k + 1 : k + 3] = (ordinary * residue, residue)
        else:
            theta[k + 1] = residue
    if structure.amplitude:
        theta[-1] = 3.0
    return theta


def gate_modal(theta: np.ndarray, structure: Structure, ordinary: float = 1.0) -> np.ndarray:
    """The gated vector of an ungated one (same poles, same kernel): c moved into b, and
    ``b_flagged`` = b; then b scaled by ``ordinary`` (1: the same synapse, which ignores the
    flag; below 1: ordinary events written more weakly). Under a cap the increments are clipped
    to it (there the realization differs, so the curve may too)."""
    gated = Structure(structure.pairs, structure.reals, structure.amplitude_cap, True)
    with torch.no_grad():
        A, b, c, _ = modal_form(torch.tensor(theta, dtype=DTYPE), structure)
    b, c = b.numpy(), c.numpy()
    cap = structure.amplitude_cap
    out = np.zeros(gated.length)
    pair_at, real_at = structure.pole_indices()
    gated_pairs, gated_reals = gated.pole_indices()
    for index, (k, g) in enumerate(zip(pair_at, gated_pairs)):
        # c R^t (a, 0) = (1, 0) R^t a (c1, -c2): the residue moves into the increment
        i = 2 * index
        residue = b[i] * np.array([c[i], -c[i + 1]])
        out[g : g + 2] = theta[k : k + 2]
        out[g + 2 : g + 4] = _raw(ordinary * residue, cap)
        out[g + 4 : g + 6] = _raw(residue, cap)
    for index, (k, g) in enumerate(zip(real_at, gated_reals)):
        i = 2 * structure.pairs + index
        residue = b[i] * c[i]
        out[g] = theta[k]
        out[g + 1 : g + 3] = (_raw(ordinary * residue, cap), _raw(residue, cap))
    return out


# --------------------------------------------------------------------------------------------
# the exact optimizer
# --------------------------------------------------------------------------------------------


@dataclass
class OptimalLinear:
    """The outcome of ``optimize_linear_synapse``: the parameters of the ``optimal-linear`` model,
    its exact metric value from ``evaluate``, the evaluation itself and what the search did."""

    params: dict[str, Any]
    value: float
    evaluation: Evaluation
    complex_pairs: int
    poles: list[complex]
    evaluations: int
    seconds: float
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def form(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, b, c)`` as numpy arrays."""
        return form_from_params(self.params)


#: the largest magnitude of an entry of A, b, c, b_flagged or the drive: the exact variance sums
#: squares of products of them in float64, and the Monte Carlo moments in float32 (the
#: baselines' largest increment, ``synapse.AMPLITUDE_RANGE``)
MAX_ENTRY = AMPLITUDE_RANGE[1]


def _variables_given(params: dict[str, Any], given: dict[str, Any]) -> int:
    """m: ``variables`` where given, else the length of b, else the side of A (its square
    root), else the length of c, else the default (it read m from b alone, so A alone with
    4 entries "had 4 entries: expected 1 for variables=1"; review, session 37)."""
    if "variables" in given:
        return params["variables"]
    if params["b"]:
        return len(params["b"])
    if params["A"] and math.isqrt(len(params["A"])) ** 2 == len(params["A"]):
        return math.isqrt(len(params["A"]))
    if params["c"]:
        return len(params["c"])
    return params["variables"]


def _check_state_size(state_size: int) -> int:
    try:
        valid = not isinstance(state_size, bool) and int(state_size) == state_size
    except (TypeError, ValueError):
        valid = False
    if not valid or not (1 <= state_size <= MAX_VARIABLES):
        raise ValueError(
            f"state_size = {state_size} is not allowed: expected an integer in [1, {MAX_VARIABLES}]"
        )
    return int(state_size)


class _Objective:
    """Counts evaluations; maps a parameter vector to the curve through a form function."""

    def __init__(self, setting: Setting, form: Callable, structure: Structure):
        self.setting, self.form, self.structure = setting, form, structure
        self.count = 0

    def curve(self, theta: torch.Tensor) -> torch.Tensor:
        self.count += 1
        powers = None
        if self.form is modal_form and self.setting.stats.correlation == 0:
            powers = modal_powers(theta, self.structure, self.setting.spec.horizon)
        A, b, c, b_flagged = self.form(theta, self.structure)
        return snr_curve(A, b, c, self.setting, powers, b_flagged)

    def exact(self, theta: np.ndarray | torch.Tensor) -> float:
        with torch.no_grad():
            try:
                return exact_metric(self.curve(torch.as_tensor(theta, dtype=DTYPE)), self.setting)
            except (RuntimeError, ValueError):  # a singular solve at a degenerate point
                return -math.inf

    def polish(self, theta: np.ndarray, iterations: int) -> tuple[np.ndarray, float]:
        """L-BFGS on the surrogate at decreasing temperatures; the best exact point seen."""
        setting = self.setting
        ages = torch.arange(setting.spec.horizon, dtype=DTYPE)
        best_theta, best_value = np.array(theta, dtype=np.float64), self.exact(theta)
        for temperature in TEMPERATURES:
            tensor = torch.tensor(best_theta, dtype=DTYPE, requires_grad=True)
            optimizer = torch.optim.LBFGS(
                [tensor],
                lr=1.0,
                max_iter=iterations,
                tolerance_grad=1e-10,
                tolerance_change=1e-12,
                history_size=20,
                line_search_fn="strong_wolfe",
            )
            scale = temperature * max(setting.spec.threshold, 1e-3)

            def closure(tensor=tensor, scale=scale, optimizer=optimizer) -> torch.Tensor:
                optimizer.zero_grad()
                curve = self.curve(tensor)
                loss = -smooth_objective(
                    curve, ages, setting.spec.threshold, setting.spec.metric, scale
                )
                if not torch.isfinite(loss):
                    loss = torch.nan_to_num(loss, nan=1e30, posinf=1e30, neginf=-1e30)
                loss.backward()
                return loss

            try:
                optimizer.step(closure)
            except (RuntimeError, ValueError):
                continue
            candidate = tensor.detach().numpy().copy()
            value = self.exact(candidate)
            if np.all(np.isfinite(candidate)) and value >= best_value:
                best_theta, best_value = candidate, value
        return best_theta, best_value


def embed_modal(
    theta: np.ndarray, small: Structure, big: Structure, pole: float, angle: float, residue: float
) -> np.ndarray:
    """A smaller modal vector inside a larger structure (both gated or both not): the new pairs
    get radius ``pole`` and ``angle``, the new real poles ``pole``, all with residue
    ``residue`` (gated: in both increments)."""
    pair_end = small.pair_width * small.pairs
    old_pairs = theta[:pair_end]
    old_reals = theta[pair_end : small.modal_length]
    residues = [residue, 0.0, residue, 0.0] if big.gated else [residue, 0.0]
    new_pair = [_logit(pole), _logit(angle / math.pi), *residues]
    new_real = [math.atanh(pole), *residues[::2]]
    parts = [
        old_pairs,
        np.array(new_pair * (big.pairs - small.pairs)),
        old_reals,
        np.array(new_real * (big.reals - small.reals)),
    ]
    if big.amplitude:
        parts.append(theta[-1:] if small.amplitude else np.array([3.0]))
    return np.concatenate(parts).astype(np.float64)


#: the gated search's starts from an ungated optimum: ordinary events' increment times these
#: (1: the ungated synapse itself, so the gated optimum is never below it)
ORDINARY_SCALES = (1.0, 0.3, 0.1, 0.0)


class _ModalSearch:
    """Multi-start modal search, size by size; ``best[size]`` = (value, theta, structure) and
    ``by_layout[(pairs, reals)]`` = (value, theta). ``ungated``: a finished ungated search whose
    optima (converted by ``gate_modal``, with ``ORDINARY_SCALES``) seed this one, which is then
    a search over gated structures (a second increment for flagged events)."""

    def __init__(
        self,
        setting: Setting,
        rng: np.random.Generator,
        restarts: int,
        candidates: int,
        iterations: int,
        cap: float | None,
        ungated: _ModalSearch | None = None,
    ):
        self.setting, self.rng, self.cap = setting, rng, cap
        self.restarts, self.candidates, self.iterations = restarts, candidates, iterations
        self.ungated = ungated
        self.gated = ungated is not None
        self.best: dict[int, tuple[float, np.ndarray, Structure]] = {}
        self.by_layout: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        self.evaluations = 0
        self.summary: list[dict[str, Any]] = []

    def warm_starts(self, structure: Structure) -> list[np.ndarray]:
        horizon = max(self.setting.spec.horizon, 2)
        starts = []
        for size in (structure.size - 1, structure.size - 2):
            if size not in self.best:
                continue
            _, theta, small = self.best[size]
            if small.pairs > structure.pairs or small.reals > structure.reals:
                continue
            scale = 0.01 * float(np.max(np.abs(theta[: small.modal_length])))
            slow = max(0.5, 1 - 2 / horizon)
            for pole, angle in ((slow, 2 * math.pi / horizon), (0.5, math.pi / 8)):
                for sign in (1.0, -1.0):
                    starts.append(embed_modal(theta, small, structure, pole, angle, sign * scale))
        return starts

    def gated_starts(self, structure: Structure) -> list[np.ndarray]:
        """The ungated optimum of the same layout with ordinary increments scaled down."""
        if self.ungated is None:
            return []
        found = self.ungated.by_layout.get((structure.pairs, structure.reals))
        if found is None:
            return []
        ungated = Structure(structure.pairs, structure.reals, structure.amplitude_cap)
        return [gate_modal(found[1], ungated, scale) for scale in ORDINARY_SCALES]

    def run(self, size: int) -> None:
        setting, noisy = self.setting, self.cap is not None
        decays = 1.0 - np.geomspace(1.0, 1.0 / (20.0 * max(setting.spec.horizon, 2)), 24)[1:]
        ordinary = ORDINARY_SCALES if self.gated else (1.0,)
        for pairs in range(size // 2 + 1):
            structure = Structure(pairs, size - 2 * pairs, self.cap, self.gated)
            objective = _Objective(setting, modal_form, structure)
            pool = [
                random_modal(structure, self.rng, setting.spec.horizon)
                for _ in range(self.candidates)
            ]
            for copies in (False, True) if noisy else (False,):
                for decay in decays:
                    for scale in ordinary:
                        theta = exponential_modal(structure, decay, copies, scale)
                        if theta is not None:
                            pool.append(theta)
            warm = self.warm_starts(structure)
            scores = [objective.exact(theta) for theta in pool]
            warm_scores = [objective.exact(theta) for theta in warm]
            chosen = [pool[i] for i in np.argsort(scores)[::-1][: self.restarts]]
            chosen += [warm[i] for i in np.argsort(warm_scores)[::-1][:2]]
            gated = self.gated_starts(structure)
            if gated:  # the ungated optimum itself, and the best of its gated variants
                gated_scores = [objective.exact(theta) for theta in gated[1:]]
                chosen += [gated[0], gated[1 + int(np.argmax(gated_scores))]]
            local_best = (-math.inf, chosen[0])
            for theta in chosen:
                theta, value = objective.polish(theta, self.iterations)
                if value > local_best[0]:
                    local_best = (value, theta)
            self.evaluations += objective.count
            self.summary.append(
                {"variables": size, "complex_pairs": pairs, "value": local_best[0]}
                | ({"gated": True} if self.gated else {})
            )
            self.by_layout[(pairs, size - 2 * pairs)] = local_best
            if size not in self.best or local_best[0] > self.best[size][0]:
                self.best[size] = (local_best[0], local_best[1], structure)


def optimize_linear_synapse(
    scenario: Scenario,
    *,
    state_size: int,
    restarts: int = 4,
    candidates: int = 64,
    iterations: int = 60,
    max_amplitude: float = AMPLITUDE_SEARCH[1],
    as_start: bool = False,
    **target: Any,
) -> OptimalLinear:
    """The best m-variable linear synapse for ``metric`` in ``scenario`` (exact statistics);
    ``target``: the keywords of ``tuning.SearchTarget`` (synapses, horizon, metric, threshold,
    convention, seed).

    Sizes 1..m are searched in turn. For every number of complex pairs, ``candidates`` seeded
    random modal vectors (and single exponentials on a grid of decays) are scored by the exact
    metric; the best ``restarts`` of them, and the two best embeddings of the optima of sizes
    m - 1 and m - 2 (one added pole or pair with a small residue), are optimized by L-BFGS
    (``iterations`` per surrogate temperature), so the optimum never falls below that of a
    smaller size. In a scenario with flags a second search over gated structures (b_flagged
    free) follows from the flag-blind optima (module docstring). Under state noise the best
    point is polished over the full (A, b, c), with increments ``|b_i| <= max_amplitude`` (see
    the module docstring). Deterministic for a seed. The returned value is ``evaluate``'s exact
    metric of the rebuilt ``optimal-linear`` model. The exact convention's unbounded metrics
    without state noise are refused (no finite optimum), unless ``as_start``: the point the
    search stops at then starts another search (the Monte Carlo one's, in bounded).
    """
    start = time.perf_counter()
    target = SearchTarget(**target)
    stats = scenario.linear_statistics()
    if stats is None:
        raise ValueError(
            f"scenario {scenario.info.name!r} has no exact linear statistics, so the exact "
            "optimizer has no path there; use optimize_linear_synapse_monte_carlo (learnsyn "
            "tune does)"
        )
    weights = tuple(float(kind.weight) for kind in scenario.tracked_kinds())
    setting = Setting(stats, weights, target.spec())
    m = _check_state_size(state_size)
    if restarts < 1 or candidates < 1 or iterations < 1:
        raise ValueError(
            f"restarts = {restarts}, candidates = {candidates}, iterations = {iterations}: "
            "each must be at least 1"
        )
    noisy = setting.stats.state_noise > 0
    if unbounded_in_exact(target) and not noisy and not as_start:
        # a synapse that keeps only its newest event (A = 0) has infinite SNR at age 0 there,
        # the supremum of the family, which a search of finite points stopped short of: 216.2
        # where its own member A = 0.01 reads 3161 (review, session 35)
        raise ValueError(
            f"the exact convention's {target.metric} has no finite optimum over linear synapses "
            "without state noise (one that keeps only its newest event, A = 0, has infinite SNR "
            "at age 0); optimize in the large-n convention"
        )
    if not max_amplitude > 0:
        raise ValueError(f"max_amplitude = {max_amplitude} is not allowed: need a positive number")
    cap = float(max_amplitude) if noisy else None
    rng = np.random.default_rng(target.seed)
    search = _ModalSearch(setting, rng, restarts, candidates, iterations, cap)
    for size in range(1, m + 1):  # smaller sizes first: their optima seed the larger ones
        search.run(size)
    value, theta, structure = search.best[m]
    evaluations, summary = search.evaluations, search.summary
    if scenario.has_flags and setting.stats.flag_variances is not None:
        # the synapse may see the flag: a second increment for flagged events, searched from
        # the ungated optima (kept where the gated search does not beat them)
        gated = _ModalSearch(setting, rng, restarts, candidates, iterations, cap, search)
        for size in range(1, m + 1):
            gated.run(size)
        evaluations, summary = evaluations + gated.evaluations, summary + gated.summary
        if gated.best[m][0] > value:
            value, theta, structure = gated.best[m]
    with torch.no_grad():
        form = modal_form(torch.tensor(theta, dtype=DTYPE), structure)
    if noisy:
        objective = _Objective(setting, full_form, structure)
        full = full_start(torch.tensor(theta, dtype=DTYPE), structure).numpy()
        full, full_value = objective.polish(full, iterations)
        evaluations += objective.count
        if full_value > value:
            with torch.no_grad():
                form = full_form(torch.tensor(full, dtype=DTYPE), structure)
    A, b, c, b_flagged = (None if t is None else t.numpy() for t in form)
    if scenario.has_flags and b_flagged is None:  # the ungated one won: say it ignores the flag
        b_flagged = b.copy()
    model = OptimalLinearSynapse(**params_from_form(A, b, c, b_flagged))
    evaluation = evaluate(model, scenario, method="exact", **setting.spec.keywords())
    return OptimalLinear(
        params=_json_params(model.params_dict()),
        value=float(evaluation.metrics[setting.spec.metric]),
        evaluation=evaluation,
        complex_pairs=structure.pairs,
        poles=[complex(p) for p in np.linalg.eigvals(A)],
        evaluations=evaluations,
        seconds=time.perf_counter() - start,
        candidates=summary,
    )


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, so that the parameters read the same before and after JSON."""
    return json.loads(json.dumps(params))


# --------------------------------------------------------------------------------------------
# scenarios without linear statistics: the bounded chain, and the Monte Carlo path
# --------------------------------------------------------------------------------------------

#: the largest grid (levels^m states) on which the bounded scenario is solved as a finite chain
MAX_CHAIN_STATES = 1024


def _bounded_levels(scenario: Scenario) -> bool:
    """Whether ``scenario`` is the bounded one with its own constraint, levels and range
    (``standard_constraint``: not a subclass's; the diff review of session 37)."""
    from learnsyn.tasks.constrained import standard_constraint

    return standard_constraint(scenario) == "bounded"


def chain_applies(scenario: Scenario, state_size: int) -> bool:
    """True when ``scenario`` is the bounded one (``_bounded_levels``) and its grid has at most
    ``MAX_CHAIN_STATES`` states for m = ``state_size`` variables."""
    if not _bounded_levels(scenario):
        return False
    return scenario.params["levels"] ** state_size <= MAX_CHAIN_STATES


def bounded_chain(
    A: np.ndarray, b: np.ndarray, c: np.ndarray, bound: float, levels: int
) -> tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix, np.ndarray]:
    """A linear synapse in the bounded scenario as a finite chain (science.md section 7).

    After every step each variable is clipped to [-bound, bound] and rounded to one of the two
    neighbouring levels with the probability that makes the rounding unbiased (the bounded
    scenario's constraint), so the state lives on the ``levels^m`` grid. Returns the sparse
    transition matrices after a +1 and after a -1 event (row-stochastic, ``p_next = p M``) and
    the readout ``c . x`` of every grid state (states in C order of the variables' levels).
    """
    A, b, c = (np.asarray(v, dtype=np.float64) for v in (A, b, c))
    m = len(b)
    spacing = 2.0 * bound / (levels - 1)
    digits = np.indices((levels,) * m).reshape(m, -1).T
    states = -bound + spacing * digits
    count = len(states)
    radix = levels ** np.arange(m - 1, -1, -1)
    rows = np.tile(np.arange(count), 2**m)
    matrices = []
    for event in (1.0, -1.0):
        moved = np.clip(states @ A.T + event * b, -bound, bound)
        position = (moved + bound) / spacing
        lower = np.clip(np.floor(position), 0, levels - 1)
        up = np.clip(position - lower, 0.0, 1.0)
        columns, probabilities = [], []
        for corner in itertools.product((0, 1), repeat=m):
            corner = np.array(corner)
            probabilities.append(np.prod(np.where(corner == 1, up, 1.0 - up), axis=1))
            columns.append(np.clip(lower + corner, 0, levels - 1).astype(np.int64) @ radix)
        matrix = scipy.sparse.csr_matrix(
            (np.concatenate(probabilities), (rows, np.concatenate(columns))), shape=(count, count)
        )
        matrices.append(matrix)
    return matrices[0], matrices[1], states @ c


def bounded_chain_snr(
    A: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    bound: float,
    levels: int,
    synapses: int,
    horizon: int,
    convention: str = "large-n",
) -> np.ndarray:
    """The exact SNR at ages ``0..horizon-1`` of the linear synapse ``(A, b, c)`` in the bounded
    scenario (balanced +-1 events), from its finite chain: the stationary distribution pi of
    ``M = (M+ + M-) / 2``, the signal ``(pi M+ - pi M-) M^tau w / 2`` and the stationary
    variance of w, as for any finite-state synapse (``learnsyn.estimate.exact``)."""
    M_plus, M_minus, weights = bounded_chain(A, b, c, bound, levels)
    M = (M_plus + M_minus) * 0.5
    count = M.shape[0]
    ones = scipy.sparse.csr_matrix(np.ones((1, count)))
    system = scipy.sparse.bmat(
        [[M.T - scipy.sparse.identity(count), ones.T], [ones, None]], format="csc"
    )
    rhs = np.zeros(count + 1)
    rhs[-1] = 1.0
    # several closed classes make the system singular; spsolve said so only when exactly
    # singular, and otherwise returned one of many solutions, with negative masses (review,
    # session 33: an area of 94.7 where the chain's is 16.2, which searches then climbed). A
    # pivot at round-off, or a negative mass, is refused: a unique chain's smallest pivot falls
    # with its slowest time scale (about 1e-12 of the largest at 1e9 steps; 1e-3 at the
    # searches' optima), a singular one's was 2e-16 and 4e-18.
    try:
        factors = scipy.sparse.linalg.splu(system)
        pivots = np.abs(factors.U.diagonal())
        raw = factors.solve(rhs)[:count]
        unique = pivots.min() > 1e-14 * pivots.max() and raw.min() > -1e-9
    except RuntimeError:  # exactly singular
        unique = False
    if not unique:  # searches rank it last
        raise ValueError(
            "the bounded chain has no unique stationary distribution (several closed "
            "classes: e.g. an unstable mode that the increment cannot bring back from the "
            "bound, or an increment too small to leave a level)"
        )
    pi = np.clip(raw, 0.0, None)
    pi /= pi.sum()
    vector = 0.5 * (M_plus.T @ pi - M_minus.T @ pi)
    propagate = M.T.tocsr()
    signal = np.empty(horizon)
    for age in range(horizon):
        signal[age] = vector @ weights
        vector = propagate @ vector
    variance = pi @ weights**2 - (pi @ weights) ** 2
    return snr_from_moments(signal, variance + 0 * signal, synapses, convention)


@dataclass
class MonteCarloLinear:
    """The outcome of ``optimize_linear_synapse_monte_carlo``. ``evaluation`` (and ``value``) come
    from a Monte Carlo evaluation on fresh random numbers; ``search_value`` is what the search
    saw (the exact chain value, or the Monte Carlo value on the search's seed); ``search`` names
    the objective: "exact chain" or "monte-carlo"."""

    params: dict[str, Any]
    value: float
    search_value: float
    search: str
    evaluation: Evaluation
    start_params: dict[str, Any]
    evaluations: int
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def equal_variance_realization(
    A: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same kernel in the basis where the stationary covariance (unit events) is the
    identity: every variable then uses the same share of a bounded range."""
    A, b, c = (np.asarray(v, dtype=np.float64) for v in (A, b, c))
    n = A.shape[0]  # P = A P A^T + b b^T (``lyapunov``)
    P = np.linalg.solve(np.eye(n * n) - np.kron(A, A), np.outer(b, b).reshape(-1)).reshape(n, n)
    eigenvalues, vectors = np.linalg.eigh((P + P.T) / 2)
    eigenvalues = np.maximum(eigenvalues, 1e-12 * max(eigenvalues.max(), 1e-300))
    L = vectors * np.sqrt(eigenvalues)  # P = L L^T
    L_inv = np.linalg.inv(L)
    c_new = c @ L
    return L_inv @ A @ L, L_inv @ b, c_new / np.max(np.abs(c_new))


def optimize_linear_synapse_monte_carlo(
    scenario: Scenario,
    *,
    state_size: int,
    batch: int = 512,
    burn_in: int | None = None,
    evaluations: int = 300,
    chain_evaluations: int = 3000,
    final_batch: int = 8192,
    progress: Callable[[int, dict[str, Any], float], None] | None = None,
    model_class: type[OptimalLinearSynapse] = OptimalLinearSynapse,
    starts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    refine_starts: int | None = None,
    **target: Any,
) -> MonteCarloLinear:
    """The best m-variable linear synapse where the scenario has no linear statistics (bounded,
    noisy with a range); ``target``: the keywords of ``tuning.SearchTarget``.

    Start: the exact optimum in the ideal scenario, in the equal-variance realization, with a
    scan of the amplitude (max |b_i|: multiples of the level spacing in the bounded scenario, a
    log grid otherwise). Search: Nelder-Mead over (A, b, c) from the best scan points. The
    objective is the exact SNR of the finite chain where ``chain_applies`` (bounded, at most
    ``MAX_CHAIN_STATES`` grid states; budget ``chain_evaluations``), and otherwise a Monte Carlo
    estimate with ``batch`` pairs and one fixed ``seed`` (common random numbers for every
    candidate; budget ``evaluations``) after ``burn_in`` steps (None: 5 time constants of the
    start, at least the horizon). Either way the winner is then evaluated through ``evaluate``
    with ``method="auto"``: exactly on the bounded grid where it fits, otherwise by Monte Carlo on
    fresh random numbers (``seed + 10007``, ``max(batch, final_batch)`` pairs); that gives
    ``value`` and ``evaluation``.

    ``model_class`` (a subclass of ``OptimalLinearSynapse``) sets the family searched, through
    its admitted spectral radius (``linear-range`` admits unstable modes). ``starts``: given
    ``(A, b, c)`` starting points instead of the ideal optimum's amplitude scan (and without the
    smaller-size embedding); the Nelder-Mead runs then start from the best ``refine_starts``
    (default: 2 on the exact chain, else 1) and share the budget.
    """
    start = time.perf_counter()
    target = SearchTarget(**target)
    horizon, metric, seed = target.horizon, target.metric, target.seed
    m = _check_state_size(state_size)
    if evaluations < 1 or chain_evaluations < 1:
        raise ValueError(
            f"evaluations = {evaluations}, chain_evaluations = {chain_evaluations}: each must "
            "be at least 1"
        )
    search = target.keywords()  # what the ideal start and the smaller size's search share
    if starts is None:
        # a start only: in the exact convention the ideal scenario's area has no finite optimum
        # (a perfect memory of the newest event), and the point its search stops at is still a
        # start (review, session 35: refusing it failed every exact-convention bounded tuning)
        ideal = optimize_linear_synapse(
            make_scenario("ideal"), state_size=m, as_start=True, **search
        )
        start_params = ideal.params
        A0, b0, c0 = equal_variance_realization(*ideal.form())
        b0 = b0 / np.max(np.abs(b0))
        if _bounded_levels(scenario):
            spacing = 2.0 * scenario.params["bound"] / (scenario.params["levels"] - 1)
            amplitudes = spacing * np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
        else:
            # in the scenario's unit (noisy: its range; review, session 37)
            amplitudes = np.geomspace(1.0 / 64.0, 2.0, 8) * scenario.amplitude_unit()
            amplitudes = amplitudes[amplitudes <= MAX_ENTRY]  # (a range near 1e15)
        scan = [np.concatenate([A0.reshape(-1), amplitude * b0, c0]) for amplitude in amplitudes]
    elif not starts:
        raise ValueError("starts is empty: give at least one (A, b, c)")
    else:
        start_params = _json_params(params_from_form(*starts[0]))
        scan = [np.concatenate([np.reshape(v, -1) for v in start]) for start in starts]
    if burn_in is None:
        burn_in = default_burn_in(model_class(**start_params), scenario, horizon)
    chain = chain_applies(scenario, m)
    budget = chain_evaluations if chain else evaluations
    trials: list[dict[str, Any]] = []
    cache: dict[bytes, float] = {}

    def unpack(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return z[: m * m].reshape(m, m), z[m * m : m * m + m], z[m * m + m :]

    def monte_carlo(
        z: np.ndarray, seed: int, pairs: int, method: str = "monte-carlo"
    ) -> tuple[float, Evaluation | None]:
        try:
            model = model_class(**params_from_form(*unpack(z)))
            result = evaluate(
                model,
                scenario,
                method=method,
                batch=pairs,
                seed=seed,
                burn_in=burn_in,
                **target.evaluation(),
            )
        except ValueError:  # unstable A
            return -math.inf, None
        value = float(result.metrics[metric])
        return (value if math.isfinite(value) else -math.inf), result

    def exact_chain(z: np.ndarray) -> float:
        A, b, c = unpack(z)
        if not np.all(np.isfinite(z)) or not model_class.radius_allowed(spectral_radius(A)):
            return -math.inf
        try:
            snr = bounded_chain_snr(
                A,
                b,
                c,
                bound=scenario.params["bound"],
                levels=scenario.params["levels"],
                synapses=target.synapses,
                horizon=horizon,
                convention=target.convention,
            )
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            return -math.inf
        if not np.all(np.isfinite(snr)):
            return -math.inf
        return compute_metrics(np.arange(horizon), snr, target.threshold)[metric]

    def objective(z: np.ndarray) -> float:
        key = np.asarray(z, dtype=np.float64).tobytes()
        if key not in cache:
            cache[key] = exact_chain(z) if chain else monte_carlo(z, seed, batch)[0]
            params = params_from_form(*unpack(z))
            trials.append({"params": params, "value": cache[key]})
            if progress is not None:
                progress(len(trials), params, cache[key])
        return cache[key]

    smaller = max((k for k in range(1, m) if chain_applies(scenario, k)), default=None)
    if smaller is None and m > 2:
        smaller = m // 2
    if not chain and smaller is not None and starts is None:
        # the optimum of a smaller size (the largest whose grid the exact chain handles, else
        # m // 2), embedded (its extra variables get no input and no readout): so m variables
        # do not end below it, whatever the start from the ideal optimum gives
        small = optimize_linear_synapse_monte_carlo(
            scenario,
            state_size=smaller,
            **search,
            burn_in=burn_in,
            evaluations=evaluations,
            chain_evaluations=chain_evaluations,
        )
        scan.append(np.concatenate([np.reshape(v, -1) for v in embed_smaller(small.params, m)]))
    values = [objective(z) for z in scan[:budget]]
    order = np.argsort(values)[::-1]
    best_z = scan[int(order[0])]
    refined, rounds = (2, 2) if chain else (1, 1)  # the chain is cheap: restart Nelder-Mead
    refined = refined if refine_starts is None else max(1, int(refine_starts))
    runs_left = min(refined, len(scan)) * rounds
    for index in order[:refined]:
        z = scan[int(index)]
        for _ in range(rounds):
            remaining = budget - len(cache)
            runs_left -= 1
            if remaining <= 0:
                break
            if refine_starts is not None or chain:  # the budget shared evenly by the runs left
                # (a quarter of what remained each time, as until session 24, left 32 % unused)
                maxfev = max(remaining // (runs_left + 1), 1)
            else:
                maxfev = remaining
            amplitude = max(float(np.max(np.abs(unpack(z)[1]))), 1e-12)
            steps = np.concatenate(
                [0.005 * np.ones(m * m), 0.2 * amplitude * np.ones(m), 0.2 * np.ones(m)]
            )
            simplex = [z] + [z + step * e for step, e in zip(steps, np.eye(len(z)))]
            outcome = scipy.optimize.minimize(
                lambda x: -objective(x),
                z,
                method="Nelder-Mead",
                options={
                    "initial_simplex": np.array(simplex),
                    "maxfev": maxfev,
                    "xatol": 1e-8,
                    "fatol": 1e-7,
                    "adaptive": True,
                },
            )
            if np.all(np.isfinite(outcome.x)) and objective(outcome.x) >= objective(z):
                z = outcome.x
        if objective(z) > objective(best_z):
            best_z = z
    search_value = objective(best_z)
    # the winner: exactly on the grid where it fits, else on fresh random numbers
    value, evaluation = monte_carlo(best_z, seed + 10007, max(batch, final_batch), "auto")
    if evaluation is None:
        raise ValueError(f"no stable linear synapse found for scenario {scenario.info.name!r}")
    return MonteCarloLinear(
        params=_json_params(evaluation.params),
        value=value,
        search_value=search_value,
        search="exact chain" if chain else "monte-carlo",
        evaluation=evaluation,
        start_params=start_params,
        evaluations=len(cache) + 1,
        seconds=time.perf_counter() - start,
        trials=trials,
    )
