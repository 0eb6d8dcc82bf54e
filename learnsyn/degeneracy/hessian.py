"""Orhan & Pitkow's degeneracy measures at initialization: the loss Hessian and gradient sharing.

Orhan & Pitkow (2018, "Skip connections eliminate singularities") argue that degenerate
initializations put a network near singular points of its loss, where many directions of
parameter space are flat, and that skip connections break those degeneracies. This experiment
measures that directly at initialization, for a ``depth``-layer, ``width``-unit linear network
(no biases) on the deep-linear task (a random linear teacher, Gaussian inputs, mean squared
error), for several initializations (``InitSpec`` names: Gaussian, Fold k, orthogonal x g) and
two architectures:

- ``plain``     ``h_{l+1} = W_l h_l``;
- ``residual``  ``h_{l+1} = h_l + W_l h_l`` (a skip connection around every layer).

Per network (``seeds`` seeds per init; seeds are paired: the same task and underlying draws):

- the exact Hessian of the training loss with respect to all ``depth x width^2`` weights
  (``torch.autograd.functional.hessian`` on the flattened parameters; 2560 x 2560 at the default
  depth 10, width 16) and its eigenvalues: the fraction of near-zero eigenvalues
  ``|lambda| <= tolerance x max|lambda|``, of negative ones ``lambda < -tolerance x max|lambda|``
  (a saddle), and the same fractions over a range of tolerances;
- the gradient-sharing measure: the per-example gradients ``(samples, parameters)`` and the
  effective rank and participation ratio of their singular values. Low values mean the examples
  pull the weights along few shared directions. For a linear network each per-example gradient
  is linear in ``x x^T``, so the rank is at most ``width (width + 1) / 2``.

``hessian_report`` writes the figures and results.json; it never imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.func import grad, vmap

from learnsyn.config import setting
from learnsyn.degeneracy.deep_linear_config import check_linear_network
from learnsyn.degeneracy.hessian_report import write_hessian_outputs
from learnsyn.degeneracy.measures import effective_rank, participation_ratio
from learnsyn.degeneracy.outputs import progress_bar, run_timed
from learnsyn.initialization import (
    INIT_NAME_HELP,
    initialize_square_matrix,
    parse_init_spec,
    seeded_generator,
)
from learnsyn.memory import check_memory

ARCHITECTURES = ("plain", "residual")
DEFAULT_INITS = ("gaussian", "fold1", "fold2", "orthogonal", "orthogonal-x0.8")
# Relative tolerances for the near-zero / negative fraction curves (the table uses
# ``zero_tolerance``).
TOLERANCE_CURVE = tuple(10.0**exponent for exponent in range(-14, 0))
_DATA_STREAM, _INIT_STREAM = 66, 77


@dataclass
class HessianConfig:
    """Everything that defines one Hessian run (saved as config.json next to the outputs)."""

    depth: int = setting(10, "number of layers")
    width: int = setting(16, "units per layer")
    inits: tuple[str, ...] = setting(DEFAULT_INITS, f"initializations; names: {INIT_NAME_HELP}")
    architectures: tuple[str, ...] = setting(
        ARCHITECTURES, "plain (h' = W h) and/or residual (h' = h + W h, skip connections)"
    )
    seeds: int = setting(5, "seeds per (architecture, init)")
    seed: int = setting(0, "base random seed", cli=False)
    samples: int = setting(256, "training examples of the teacher task")
    input_std: float = setting(1.0, "inputs ~ N(0, std^2 I)")
    teacher_gain: float = setting(1.0, "teacher entries ~ N(0, gain^2/width)")
    fold_axis: str = setting("rows", "axis Fold k copies: rows | columns")
    zero_tolerance: float = setting(
        1e-6, "an eigenvalue is near zero when |lambda| <= this x max|lambda|"
    )
    threads: int = setting(1, "torch threads", cli=False)
    show_progress: bool = setting(True, "", cli=False)

    @classmethod
    def quick(cls, **overrides: Any) -> HessianConfig:
        """A run of seconds (depth 4, width 8, 2 seeds) for tests and demos."""
        values: dict[str, Any] = dict(depth=4, width=8, seeds=2, samples=64)
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for the first bad setting, before any work."""
        check_linear_network(self, "inits")
        if not self.architectures or any(a not in ARCHITECTURES for a in self.architectures):
            raise ValueError(
                f"architectures must be among {', '.join(ARCHITECTURES)}, got "
                f"{list(self.architectures)}"
            )
        if len(set(self.architectures)) != len(self.architectures):  # (each seed counted twice)
            raise ValueError(f"architectures must be distinct, got {list(self.architectures)}")
        for name in ("seeds", "samples", "threads"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        for name in ("input_std", "teacher_gain"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if not 0 < self.zero_tolerance < 1:
            raise ValueError(f"zero_tolerance must be in (0, 1), got {self.zero_tolerance}")
        check_memory(
            self.memory_bytes(),
            f"the Hessian of {self.parameters} weights (depth {self.depth} x width {self.width}^2)",
            "a smaller --depth or --width (the Hessian grows as (depth x width^2)^2)",
        )

    def memory_bytes(self) -> float:
        """What one network's measures hold at once, in float64: the dense P x P Hessian, its
        symmetrized copy and the eigensolver's workspace, and the samples x P per-example
        gradients (P = depth x width^2)."""
        return 8.0 * (3 * self.parameters**2 + self.samples * self.parameters)

    @property
    def parameters(self) -> int:
        """Weights per network: depth x width^2."""
        return self.depth * self.width**2


def network_output(weights: torch.Tensor, inputs: torch.Tensor, residual: bool) -> torch.Tensor:
    """Outputs ``(samples, width)`` of the network with ``weights (depth, width, width)``."""
    hidden = inputs
    for weight in weights:
        step = hidden @ weight.transpose(-1, -2)
        hidden = hidden + step if residual else step
    return hidden


def training_loss(
    weights: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, residual: bool
) -> torch.Tensor:
    """Mean squared error over samples and output units."""
    return ((network_output(weights, inputs, residual) - targets) ** 2).mean()


def loss_hessian(
    weights: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, residual: bool
) -> torch.Tensor:
    """The exact ``(P, P)`` Hessian of ``training_loss`` in the flattened weights (row-major:
    layer, then output unit, then input unit), by ``torch.autograd.functional.hessian``."""
    shape = weights.shape

    def loss_of_flat(flat: torch.Tensor) -> torch.Tensor:
        return training_loss(flat.view(shape), inputs, targets, residual)

    return torch.autograd.functional.hessian(loss_of_flat, weights.detach().flatten())


def per_example_gradients(
    weights: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, residual: bool
) -> torch.Tensor:
    """``(samples, P)``: the gradient of each example's squared error (mean over output units)
    in the flattened weights; their mean is the gradient of ``training_loss``."""
    shape = weights.shape

    def example_loss(flat: torch.Tensor, one_input: torch.Tensor, one_target: torch.Tensor):
        return training_loss(flat.view(shape), one_input[None], one_target[None], residual)

    return vmap(grad(example_loss), in_dims=(None, 0, 0))(
        weights.detach().flatten(), inputs, targets
    )


def eigenvalue_fractions(eigenvalues: torch.Tensor, tolerance: float) -> dict[str, float]:
    """Fractions of near-zero (``|lambda| <= tolerance x max|lambda|``), negative
    (``lambda < -tolerance x max|lambda|``) and positive eigenvalues. An all-zero spectrum is
    all near zero."""
    values = eigenvalues.detach().to(torch.float64)
    scale = float(values.abs().max())
    cutoff = tolerance * scale
    near_zero = values.abs() <= cutoff
    negative = values < -cutoff
    return {
        "near_zero": float(near_zero.double().mean()),
        "negative": float(negative.double().mean()),
        "positive": float((~near_zero & ~negative).double().mean()),
    }


def gradient_sharing(gradients: torch.Tensor) -> dict[str, float]:
    """Effective rank and participation ratio of the singular values of the per-example
    gradient matrix ``(samples, P)``, and the largest possible rank ``min(samples, P)``."""
    spectrum = torch.linalg.svdvals(gradients.detach().to(torch.float64))
    return {
        "effective_rank": float(effective_rank(spectrum)),
        "participation_ratio": float(participation_ratio(spectrum)),
        "max_rank": int(min(gradients.shape)),
    }


def make_task(config: HessianConfig, seed_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(samples, width)`` ~ N(0, input_std^2) and targets ``T x`` with teacher entries
    N(0, teacher_gain^2 / width), in float64."""
    generator = seeded_generator(config.seed, seed_index, _DATA_STREAM)
    width = config.width
    teacher = torch.randn(width, width, generator=generator, dtype=torch.float64)
    teacher = teacher * (config.teacher_gain / math.sqrt(width))
    inputs = torch.randn(config.samples, width, generator=generator, dtype=torch.float64)
    inputs = inputs * config.input_std
    return inputs, inputs @ teacher.T


def initial_weights(config: HessianConfig, init: str, seed_index: int) -> torch.Tensor:
    """``(depth, width, width)`` float64; the same underlying draws for every init of a kind."""
    spec = parse_init_spec(init)
    kind_tag = 0 if spec.kind == "gaussian" else 1
    generator = seeded_generator(config.seed, seed_index, _INIT_STREAM, kind_tag)
    return torch.stack(
        [
            initialize_square_matrix(spec, config.width, generator, config.fold_axis, torch.float64)
            for _ in range(config.depth)
        ]
    )


def measure_network(
    weights: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    residual: bool,
    tolerance: float,
) -> dict[str, Any]:
    """Every measure of one network at its initial weights; NaN measures where its Hessian or
    gradients are not finite (an exploding init at depth: eigvalsh failed and lost every
    other network's results; review, session 36)."""
    hessian = loss_hessian(weights, inputs, targets, residual)
    gradients = per_example_gradients(weights, inputs, targets, residual)
    if not (torch.isfinite(hessian).all() and torch.isfinite(gradients).all()):
        nan = math.nan
        fractions = {"near_zero": nan, "negative": nan, "positive": nan}
        return {
            "loss": float(training_loss(weights, inputs, targets, residual)),
            "gradient_norm": nan,
            "eigenvalues": torch.full((hessian.shape[0],), nan, dtype=torch.float64).numpy(),
            "max_abs_eigenvalue": nan,
            "fractions": fractions,
            "fraction_curves": {
                key: [nan] * len(TOLERANCE_CURVE) for key in ("near_zero", "negative")
            },
            "gradient_sharing": {
                "effective_rank": nan,
                "participation_ratio": nan,
                "max_rank": int(min(gradients.shape)),
            },
        }
    eigenvalues = torch.linalg.eigvalsh((hessian + hessian.T) / 2)
    return {
        "loss": float(training_loss(weights, inputs, targets, residual)),
        "gradient_norm": float(gradients.mean(dim=0).norm()),
        "eigenvalues": eigenvalues.numpy(),
        "max_abs_eigenvalue": float(eigenvalues.abs().max()),
        "fractions": eigenvalue_fractions(eigenvalues, tolerance),
        "fraction_curves": {
            key: [eigenvalue_fractions(eigenvalues, value)[key] for value in TOLERANCE_CURVE]
            for key in ("near_zero", "negative")
        },
        "gradient_sharing": gradient_sharing(gradients),
    }


def compute_hessian_spectra(config: HessianConfig) -> dict[str, Any]:
    """Measure every (architecture, init, seed); returns ``{"runs": {arch: {init: [per-seed
    measure dicts]}}, "tolerance_curve": [...]}``."""
    config.validate()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        architecture: {init: [] for init in config.inits} for architecture in config.architectures
    }
    bar = progress_bar(
        total=len(config.architectures) * len(config.inits) * config.seeds,
        description="hessian",
        enabled=config.show_progress,
    )
    for seed_index in range(config.seeds):
        inputs, targets = make_task(config, seed_index)
        for init in config.inits:
            weights = initial_weights(config, init, seed_index)
            for architecture in config.architectures:
                runs[architecture][init].append(
                    measure_network(
                        weights, inputs, targets, architecture == "residual", config.zero_tolerance
                    )
                )
                bar.update()
    bar.close()
    return {"runs": runs, "tolerance_curve": list(TOLERANCE_CURVE)}


def run_hessian(config: HessianConfig, out_dir: str | Path) -> dict[str, Any]:
    """Validate, compute, and write figures, results.json, TensorBoard logs and config.json."""
    raw, seconds = run_timed(config, lambda: compute_hessian_spectra(config))
    return write_hessian_outputs(config, raw, out_dir, compute_seconds=seconds)


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_INITS",
    "HessianConfig",
    "compute_hessian_spectra",
    "eigenvalue_fractions",
    "gradient_sharing",
    "loss_hessian",
    "per_example_gradients",
    "run_hessian",
]
