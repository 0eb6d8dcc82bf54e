"""Meta-training of a learned synapse: the objective, the loop, run directories, checkpoints.

One iteration simulates ``batch`` synapse pairs (the Monte Carlo batch B, not N): a burn-in
without gradient, then the tracked window of ``horizon`` steps with gradient (BPTT). The SNR
curve comes from the paired common-random-number estimator; the objective is a smooth
surrogate of the chosen metric (``learnsyn.estimate.snr.smooth_objective``) maximized with Adam,
gradient clipping and a cosine learning-rate schedule. A non-finite objective or gradient skips
the update and says so.

Every iteration draws its random numbers from a generator seeded by ``(seed, iteration)``, so a
resumed run replays exactly the numbers an uninterrupted run would have drawn; the checkpoint
carries model, optimizer, schedule, history and the global RNG states as well.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.cells import LearnedSynapse, make_cell
from learnsyn.config import (  # noqa: F401  (TrainConfig, TRAIN_METRICS: public here too)
    TRAIN_METRICS,
    VALIDATION_ITERATION,
    TrainConfig,
    iteration_generator,
    resolve_device,
)
from learnsyn.estimate.montecarlo import PairMoments, simulate_pairs
from learnsyn.estimate.snr import (
    compute_metrics,
    curve_from_pairs,
    smooth_objective,
    snr_from_moments,
)
from learnsyn.io import atomic_torch_save
from learnsyn.rollout import fast_simulate_pairs, rollout_path
from learnsyn.scenario import Scenario

CHECKPOINT_NAME = "checkpoint.pt"


def build_model(config: TrainConfig) -> LearnedSynapse:
    from learnsyn.config import resolve_auto_init
    from learnsyn.scenario import make_scenario

    init, cell_params = resolve_auto_init(
        config.init,
        config.cell,
        make_scenario(config.task, config.task_params),
        config.cell_params,
    )
    return make_cell(
        config.cell,
        config.state_size,
        init=init,
        seed=config.seed,
        timescale=config.resolved_timescale(),
        fold_axis=config.fold_axis,
        cell_params=cell_params,
    )


@dataclass
class ObjectiveResult:
    value: torch.Tensor
    snr: np.ndarray
    snr_stderr: np.ndarray
    metrics: dict[str, float]
    synapse_steps: int


def temperature_at(config: TrainConfig, iteration: int) -> float:
    """Geometric annealing from ``temperature`` to ``temperature_final`` (0.1 x when unset)."""
    final = config.resolved_temperature_final()
    fraction = min(1.0, max(0.0, iteration / max(config.iterations - 1, 1)))
    return config.temperature * (final / config.temperature) ** fraction


def training_rollout(model, scenario: Scenario, config: TrainConfig, device) -> str:
    """What runs ``meta_objective``'s rollouts for ``config``: ``grid`` (the exact objective on
    the bounded grid), ``reference`` (asked for, or where the fast path does not cover the
    model, scenario or device) or the fast path's kernel (``native``, ``triton``, ``eager``)."""
    if config.resolved_estimator() == "grid":
        return "grid"
    if config.rollout == "reference":
        return "reference"
    return rollout_path(model, scenario, pairs=config.batch, grad=True, device=device)


def meta_objective(
    model: LearnedSynapse,
    scenario: Scenario,
    config: TrainConfig,
    iteration: int,
    device: torch.device,
    grad: bool = True,
    simulate=None,
) -> ObjectiveResult:
    """Simulate one batch and return the smooth objective (with gradient) and the curve.

    ``simulate``: the rollout (default: the fast path of ``learnsyn.rollout``, which hands
    what it does not cover to the reference loop ``montecarlo.simulate_pairs``); any simulator
    takes ``montecarlo.PairBatch``'s keywords, the burn-in tail (``gradient_burn_in``) too."""
    if config.resolved_estimator() == "grid":
        return grid_objective(model, scenario, config, iteration, device, grad)
    if simulate is None:
        simulate = simulate_pairs if config.rollout == "reference" else fast_simulate_pairs
    simulate = partial(simulate, tail=config.resolved_gradient_burn_in())
    generator = iteration_generator(config.seed, iteration, device)
    ages = torch.arange(config.horizon, device=device, dtype=torch.float32)
    burn_in = config.resolved_burn_in()
    kinds = scenario.tracked_kinds()
    moments = [
        simulate(
            model,
            scenario,
            kind,
            pairs=config.batch,
            burn_in=burn_in,
            horizon=config.horizon,
            generator=generator,
            device=device,
            grad=grad,
        )
        for kind in kinds
    ]
    weights = [k.weight for k in kinds]
    if config.late_variance > 0:
        start = late_variance_start(config.horizon, config.late_variance)
        moments = [LateVarianceMoments(m.sums, m.count, m.p_plus, start) for m in moments]
    estimate = curve_from_pairs(moments, weights, config.synapses, config.convention, 1e-12)
    combined, stderr = estimate.snr, estimate.stderr
    temperature = temperature_at(config, iteration)
    if config.objective == "cross-fit":
        value = cross_fitted_objective(
            [split_groups(m) for m in moments], weights, ages, config, temperature
        )
    else:
        # The hinge of a noisy estimate is biased upwards, which would reward a synapse for
        # making the estimator noisy; optimizing the lower confidence bound SNR - margin *
        # stderr removes that incentive (the jackknife stderr is differentiable).
        bound = combined - config.noise_margin * stderr if config.noise_margin else combined
        value = smooth_objective(
            bound,
            ages,
            config.threshold,
            config.metric,
            temperature,
        )
    snr = combined.detach().double().cpu().numpy()
    steps = len(kinds) * config.batch * (burn_in + 2 * config.horizon)
    return ObjectiveResult(
        value=value,
        snr=snr,
        snr_stderr=stderr.detach().double().cpu().numpy(),
        metrics=compute_metrics(np.arange(config.horizon), snr, config.threshold),
        synapse_steps=steps,
    )


def grid_objective(
    model: LearnedSynapse,
    scenario: Scenario,
    config: TrainConfig,
    iteration: int,
    device: torch.device,
    grad: bool = True,
) -> ObjectiveResult:
    """The objective on the exact SNR curve of the model's chain on the bounded scenario's level
    grid (``learnsyn.estimate.grid``): no sampling, so no noise margin and the same value at
    every iteration for the same parameters; exact gradients through the rounding
    probabilities. Burn-in from the model's initial state, as in the Monte Carlo estimate."""
    from learnsyn.estimate.grid import grid_snr

    ages = np.arange(config.horizon)
    kinds = scenario.tracked_kinds()
    weights = torch.tensor([k.weight for k in kinds], device=device)
    context = torch.enable_grad() if grad else torch.no_grad()
    with context:
        curves = grid_snr(
            model,
            scenario,
            ages,
            config.synapses,
            config.convention,
            burn_in=config.resolved_burn_in(),
            device=device,
        )
        combined = weights.to(curves.dtype) @ curves
        value = smooth_objective(
            combined,
            torch.as_tensor(ages, device=device, dtype=combined.dtype),
            config.threshold,
            config.metric,
            temperature_at(config, iteration),
        )
    snr = combined.detach().double().cpu().numpy()
    states = scenario.params["levels"] ** config.state_size
    return ObjectiveResult(
        value=value,
        snr=snr,
        snr_stderr=np.zeros_like(snr),
        metrics=compute_metrics(ages, snr, config.threshold),
        synapse_steps=len(kinds) * states * (config.resolved_burn_in() + 2 * config.horizon),
    )


def late_variance_start(horizon: int, fraction: float) -> int:
    """The first age of the last ``fraction`` of the window (at least the last age)."""
    return min(horizon - 1, max(0, int(round(horizon * (1.0 - fraction)))))


@dataclass
class LateVarianceMoments(PairMoments):
    """Pair moments whose SNR keeps every age's value but takes the gradient of every age's
    weight variance from ONE stationary variance: the pooled (unconditional) variance averaged
    over the ages from ``start`` on (``--late-variance``; superseded by ``--gradient-burn-in``,
    which removes the bias below for nonlinear cells too).

    Why: the burn-in runs without gradient, so the per-age variance at an early age, which is
    mostly the variance of the state the burn-in left, is treated as if it did not depend on the
    parameters; the gradient then sees a larger increment raise the signal but not the noise
    (for a linear synapse the SNR does not depend on the increment's scale at all) and drives
    increments, gates and the fixed point away (measured: the GRU's update gates and input
    weights drifted at Adam's full rate while the true area fell). At late ages the variance
    comes from events inside the window, so its gradient is right up to the part the burn-in
    state still carries there. For a stationary synapse the unconditional variance is the same
    at every age, so its derivative is too."""

    start: int = 0

    def _snr(self, sums: torch.Tensor, count: float, synapses: float, convention: str):
        signal, variance = self.moments(sums, count)
        late = variance[..., self.start :].mean(-1, keepdim=True).clamp_min(1e-30).log()
        variance = variance.detach() * torch.exp(late - late.detach())
        return snr_from_moments(signal, variance, synapses, convention)

    def snr(self, synapses: float, convention: str) -> torch.Tensor:
        return self._snr(self.sums.sum(1).T, self.count * self.sums.shape[1], synapses, convention)

    def leave_one_out_snr(self, synapses: float, convention: str) -> torch.Tensor:
        groups = self.sums.shape[1]
        rest = (self.sums.sum(1, keepdim=True) - self.sums).permute(1, 2, 0)  # [G, 4, T]
        return self._snr(rest, self.count * (groups - 1), synapses, convention)

    def moments(self, sums: torch.Tensor, count: float):
        """As ``PairMoments.moments`` with the four sums along dim -2 (ages last)."""
        return PairMoments.moments(self, sums.movedim(-2, -1), count)


def _like(moments: PairMoments, sums: torch.Tensor) -> PairMoments:
    """The same kind of moments (and options) with other sums."""
    if isinstance(moments, LateVarianceMoments):
        return LateVarianceMoments(sums, moments.count, moments.p_plus, moments.start)
    return PairMoments(sums, moments.count, moments.p_plus)


def split_groups(moments: PairMoments) -> tuple[PairMoments, PairMoments]:
    """The pair groups of one simulation cut into two independent halves."""
    half = moments.sums.shape[1] // 2
    if half < 1:
        raise ValueError("cross-fitting needs at least 2 pair groups")
    return _like(moments, moments.sums[:, :half]), _like(moments, moments.sums[:, half:])


def cross_fitted_objective(
    halves: list[tuple[PairMoments, PairMoments]],
    weights: list[float],
    ages: torch.Tensor,
    config: TrainConfig,
    temperature: float,
) -> torch.Tensor:
    """The smooth surrogate with a cross-fitted gradient (no lower confidence bound).

    The surrogate ``sum_t g(SNR_t)`` has the gradient ``sum_t g'(SNR_t) dSNR_t``; on a noisy
    estimate the weight ``g'`` (for the area: how surely age t is above threshold) is correlated
    with the noise of ``dSNR_t``, which biases the hinge upwards and rewards a noisy estimator.
    Here the weights come from one half of the pair groups and the derivative from the other
    half, and the other way round (averaged): the two halves are independent, so the expected
    gradient is ``E[g'(SNR_A)] dE[SNR_B]``, with no reward for noise. The value is the
    surrogate of the whole batch (for the logs); only the gradient is cross-fitted."""
    curves = [
        curve_from_pairs(
            [pair[side] for pair in halves], weights, config.synapses, config.convention
        ).snr
        for side in (0, 1)
    ]

    def surrogate(snr: torch.Tensor) -> torch.Tensor:
        return smooth_objective(snr, ages, config.threshold, config.metric, temperature)

    slopes = []
    for curve in curves:
        point = curve.detach().requires_grad_(True)
        with torch.enable_grad():
            (slope,) = torch.autograd.grad(surrogate(point), point)
        slopes.append(slope)
    correction = 0.5 * (
        torch.sum(slopes[0] * (curves[1] - curves[1].detach()))
        + torch.sum(slopes[1] * (curves[0] - curves[0].detach()))
    )
    whole = curve_from_pairs(
        [_like(a, torch.cat([a.sums, b.sums], 1)) for a, b in halves],
        weights,
        config.synapses,
        config.convention,
    ).snr
    return surrogate(whole.detach()) + correction


def validation_score(model, scenario, config: TrainConfig, device) -> float:
    """The chosen metric (hard, not the surrogate) on the fixed validation batch
    (``resolved_validation_batch`` pairs of the reserved iteration's random numbers)."""
    if config.resolved_validation_batch() != config.batch:
        config = replace(config, batch=config.resolved_validation_batch())
    with torch.no_grad():
        result = meta_objective(model, scenario, config, VALIDATION_ITERATION, device, grad=False)
    value = result.metrics[config.metric]
    # a curve with NaN ages (moments that overflowed) is no candidate whatever its metric: the
    # lifetime skips NaN ages and read finite, above a sound curve's (review, session 36)
    if math.isnan(value) or np.isnan(np.asarray(result.snr, dtype=float)).any():
        return -math.inf
    return value  # (+inf: a perfect memory's, exact)


def make_optimizer(model: torch.nn.Module, config: TrainConfig):
    lr = config.resolved_lr()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.iterations, eta_min=lr * config.lr_final_fraction
    )
    return optimizer, scheduler


def gradients_finite(model: torch.nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


@dataclass
class StepOutcome:
    objective: float
    grad_norm: float
    skipped: bool
    result: ObjectiveResult
    seconds: float = 0.0


def training_step(model, scenario, config, optimizer, scheduler, iteration, device, objective_fn):
    """One Adam update (or a skipped one, if the objective or a gradient is not finite)."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    result = objective_fn(model, scenario, config, iteration, device)
    value = result.value
    skipped = not bool(torch.isfinite(value))
    grad_norm = float("nan")
    if not skipped:
        (-value).backward()
        skipped = not gradients_finite(model)
        if not skipped:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            # finite entries whose norm overflows float32: the clip zeroed them all (review,
            # session 31), and Adam would still have moved on its old moments
            skipped = not math.isfinite(grad_norm)
        if not skipped:
            try:
                optimizer.step()
            except RuntimeError as error:  # a step too large for the float type (a huge lr)
                if "overflow" not in str(error):
                    raise
                skipped = True  # the caller restores parameters the step may have changed
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return StepOutcome(
        float(value.detach()), grad_norm, skipped, result, time.perf_counter() - start
    )


def save_checkpoint(path: Path, model, optimizer, scheduler, config, iteration, history, extra):
    atomic_torch_save(
        path,
        {
            "format": 1,
            "config": asdict(config),
            "iteration": iteration,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},  # noqa: NPY002
            **extra,
        },
    )


#: the paths NumPy 1.x and 2.x pickle an array's rebuilding function under (a checkpoint saved
#: under one and read under the other names the other's)
_RECONSTRUCT_PATHS = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")


def _checkpoint_globals() -> list:
    """What a checkpoint holds besides tensors and plain containers: NumPy's random state (an
    array of uint32), under the names of the NumPy installed and, where torch takes a path
    beside an object (2.5 on), under NumPy 1.x's and 2.x's both (review of session 36's diff:
    a checkpoint saved under NumPy 1.x would be refused under 2.x)."""
    array = np.zeros(1, dtype=np.uint32)
    reconstruct = array.__reduce__()[0]
    named = []
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5):
        named = [(reconstruct, path) for path in _RECONSTRUCT_PATHS]
    return [np.ndarray, reconstruct, np.dtype, type(array.dtype), *named]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; a missing or corrupt file raises one clear line. Nothing in it is
    executed: only tensors, numbers, containers and NumPy's random state are unpickled
    (``weights_only``), so a file that holds anything else is refused, not run."""
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}")
    torch.serialization.add_safe_globals(_checkpoint_globals())
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if found:  # a well-formed pickle that names a class or function: it could run code
            raise ValueError(
                f"checkpoint {path} holds {found.group(1)}, which learnsyn does not write "
                "(only tensors, numbers and NumPy's random state): refused rather than "
                "unpickled, since unpickling it could run code"
            ) from None
        raise ValueError(
            f"checkpoint {path} is corrupt or unreadable ({type(error).__name__})"
        ) from None
    required = {"format", "config", "iteration", "model", "optimizer", "scheduler", "history"}
    if not isinstance(data, dict) or not required <= set(data):
        raise ValueError(f"checkpoint {path} is corrupt: it lacks {sorted(required)}")
    return data
