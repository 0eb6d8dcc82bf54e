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
import time
from dataclasses import asdict, dataclass
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
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.estimate.snr import compute_metrics, curve_from_pairs, smooth_objective
from learnsyn.io import atomic_torch_save
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.scenario import Scenario

CHECKPOINT_NAME = "checkpoint.pt"


def build_model(config: TrainConfig) -> LearnedSynapse:
    return make_cell(
        config.cell,
        config.state_size,
        init=config.init,
        seed=config.seed,
        timescale=config.resolved_timescale(),
        fold_axis=config.fold_axis,
        cell_params=config.cell_params,
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
    what it does not cover to the reference loop ``montecarlo.simulate_pairs``)."""
    if config.estimator == "grid":
        return grid_objective(model, scenario, config, iteration, device, grad)
    if simulate is None:
        simulate = simulate_pairs if config.rollout == "reference" else fast_simulate_pairs
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
    # The hinge of a noisy estimate is biased upwards, which would reward a synapse for making
    # the estimator noisy; optimizing the lower confidence bound SNR - margin * stderr removes
    # that incentive (the jackknife stderr is differentiable).
    estimate = curve_from_pairs(
        moments, [k.weight for k in kinds], config.synapses, config.convention, 1e-12
    )
    combined, stderr = estimate.snr, estimate.stderr
    value = smooth_objective(
        combined - config.noise_margin * stderr,
        ages,
        config.threshold,
        config.metric,
        temperature_at(config, iteration),
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


def validation_score(model, scenario, config: TrainConfig, device) -> float:
    """The chosen metric (hard, not the surrogate) on a fixed validation batch."""
    with torch.no_grad():
        result = meta_objective(model, scenario, config, VALIDATION_ITERATION, device, grad=False)
    value = result.metrics[config.metric]
    return value if math.isfinite(value) else -math.inf


def make_optimizer(model: torch.nn.Module, config: TrainConfig):
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.iterations, eta_min=config.lr * config.lr_final_fraction
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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; a missing or corrupt file raises one clear line."""
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise ValueError(
            f"checkpoint {path} is corrupt or unreadable ({type(error).__name__})"
        ) from None
    required = {"format", "config", "iteration", "model", "optimizer", "scheduler", "history"}
    if not isinstance(data, dict) or not required <= set(data):
        raise ValueError(f"checkpoint {path} is corrupt: it lacks {sorted(required)}")
    return data
