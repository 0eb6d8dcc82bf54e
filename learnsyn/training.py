"""Meta-training of a learned synapse: the objective, the loop, run directories, checkpoints.

One iteration simulates ``batch`` synapse pairs (the Monte Carlo batch B, not N): a burn-in
without gradient, then the tracked window of ``horizon`` steps with gradient (BPTT). The SNR
curve comes from the paired common-random-number estimator; the objective is a smooth
surrogate of the chosen metric (``learnsyn.metrics.smooth_objective``) maximized with Adam,
gradient clipping and a cosine learning-rate schedule. A non-finite objective or gradient skips
the update and says so.

Every iteration draws its random numbers from a generator seeded by ``(seed, iteration)``, so a
resumed run replays exactly the numbers an uninterrupted run would have drawn; the checkpoint
carries model, optimizer, schedule, history and the global RNG states as well.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.cells import CELLS, LearnedSynapse, make_cell
from learnsyn.metrics import (
    check_convention,
    check_metric,
    compute_metrics,
    smooth_objective,
)
from learnsyn.montecarlo import simulate_pairs
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.scenario import Scenario, make_scenario

TRAIN_METRICS = ("area", "lifetime", "log_area")
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Everything that defines a meta-training run (saved, resolved, as ``config.json``)."""

    task: str = "ideal"
    task_params: dict[str, Any] = field(default_factory=dict)
    synapses: int = 1000
    state_size: int = 2
    cell: str = "gru"
    metric: str = "area"
    iterations: int = 300
    batch: int = 512
    horizon: int = 600
    burn_in: int | None = None  # None: 2.5 x horizon
    lr: float = 0.005
    lr_final_fraction: float = 0.05
    grad_clip: float = 1.0
    threshold: float = 1.0
    convention: str = "large-n"
    temperature: float = 0.3
    temperature_final: float = 0.03
    noise_margin: float = 1.0  # objective on SNR - margin * stderr (a lower confidence bound)
    init: str = "default"
    cell_params: dict[str, Any] = field(default_factory=dict)  # chain: starting chain
    fold_axis: str = "rows"
    timescale: float | None = None  # None: the horizon
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 50
    validate_every: int = 25  # model selection on a fixed validation batch
    rollout: str = "fast"  # "fast": learnsyn.rollout (falls back by itself), "reference"
    log_every: int = 10
    figure_every: int = 100
    eval_batch: int = 4096

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**data)

    def resolved_burn_in(self) -> int:
        return int(2.5 * self.horizon) if self.burn_in is None else int(self.burn_in)

    def resolved_timescale(self) -> float:
        return float(self.horizon if self.timescale is None else self.timescale)

    def validate(self) -> None:
        """Check every value before any work; one clear line per problem."""
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; allowed: {', '.join(CELLS)}")
        check_metric(self.metric, TRAIN_METRICS)
        check_convention(self.convention)
        checks = [
            ("state size m", self.state_size, 1),
            ("batch B", self.batch, 2),
            ("synapses N", self.synapses, 1),
            ("horizon", self.horizon, 1),
            ("iterations", self.iterations, 1),
            ("checkpoint-every", self.checkpoint_every, 1),
            ("eval batch", self.eval_batch, 2),
            ("validate-every", self.validate_every, 1),
        ]
        for name, value, low in checks:
            if int(value) != value or value < low:
                raise ValueError(f"{name} = {value} is not allowed: need an integer >= {low}")
        for name, value in (
            ("learning rate", self.lr),
            ("temperature", self.temperature),
            ("final temperature", self.temperature_final),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} = {value} is not allowed: need a number > 0")
        if self.burn_in is not None and self.burn_in < 0:
            raise ValueError(f"burn-in = {self.burn_in} is not allowed: need >= 0")
        if self.rollout not in ("fast", "reference"):
            raise ValueError(f"rollout {self.rollout!r} is not allowed: expected fast or reference")
        if not (math.isfinite(self.noise_margin) and self.noise_margin >= 0):
            raise ValueError(f"noise margin = {self.noise_margin} is not allowed: need >= 0")
        if self.grad_clip <= 0:
            raise ValueError(f"grad clip = {self.grad_clip} is not allowed: need > 0")
        make_scenario(self.task, self.task_params)
        make_cell(
            self.cell,
            self.state_size,
            init=self.init,
            fold_axis=self.fold_axis,
            cell_params=self.cell_params,
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device {name!r} is not allowed: expected auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} is not available here (no CUDA): use auto or cpu")
    return torch.device(name)


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


def iteration_generator(seed: int, iteration: int, device: torch.device) -> torch.Generator:
    """The generator of one iteration: a pure function of (seed, iteration)."""
    mixed = np.random.SeedSequence([seed, iteration]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(mixed) & ((1 << 63) - 1))


@dataclass
class ObjectiveResult:
    value: torch.Tensor
    snr: np.ndarray
    snr_stderr: np.ndarray
    metrics: dict[str, float]
    synapse_steps: int


def temperature_at(config: TrainConfig, iteration: int) -> float:
    """Geometric annealing from ``temperature`` to ``temperature_final``."""
    fraction = min(1.0, max(0.0, iteration / max(config.iterations - 1, 1)))
    return config.temperature * (config.temperature_final / config.temperature) ** fraction


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
    if simulate is None:
        simulate = simulate_pairs if config.rollout == "reference" else fast_simulate_pairs
    generator = iteration_generator(config.seed, iteration, device)
    ages = torch.arange(config.horizon, device=device, dtype=torch.float32)
    combined, loo_combined = 0.0, 0.0
    burn_in = config.resolved_burn_in()
    for kind in scenario.tracked_kinds():
        moments = simulate(
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
        combined = combined + kind.weight * moments.snr(config.synapses, config.convention)
        loo = moments.leave_one_out_snr(config.synapses, config.convention)
        loo_combined = loo_combined + kind.weight * loo
    # The hinge of a noisy estimate is biased upwards, which would reward a synapse for making
    # the estimator noisy; optimizing the lower confidence bound SNR - margin * stderr removes
    # that incentive (the jackknife stderr is differentiable).
    stderr = _differentiable_jackknife(loo_combined)
    value = smooth_objective(
        combined - config.noise_margin * stderr,
        ages,
        config.threshold,
        config.metric,
        temperature_at(config, iteration),
    )
    snr = combined.detach().double().cpu().numpy()
    kinds = len(scenario.tracked_kinds())
    steps = kinds * config.batch * (burn_in + 2 * config.horizon)
    return ObjectiveResult(
        value=value,
        snr=snr,
        snr_stderr=stderr.detach().double().cpu().numpy(),
        metrics=compute_metrics(np.arange(config.horizon), snr, config.threshold),
        synapse_steps=steps,
    )


VALIDATION_ITERATION = 10**9  # the validation batch's random numbers: never a training batch's


def validation_score(model, scenario, config: TrainConfig, device) -> float:
    """The chosen metric (hard, not the surrogate) on a fixed validation batch."""
    with torch.no_grad():
        result = meta_objective(model, scenario, config, VALIDATION_ITERATION, device, grad=False)
    value = result.metrics[config.metric]
    return value if math.isfinite(value) else -math.inf


def _differentiable_jackknife(loo: torch.Tensor) -> torch.Tensor:
    groups = loo.shape[0]
    centred = loo - loo.mean(0, keepdim=True)
    return torch.sqrt((groups - 1) / groups * (centred**2).sum(0) + 1e-12)


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
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return StepOutcome(
        float(value.detach()), grad_norm, skipped, result, time.perf_counter() - start
    )


def save_checkpoint(path: Path, model, optimizer, scheduler, config, iteration, history, extra):
    from learnsyn.io import atomic_torch_save

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
