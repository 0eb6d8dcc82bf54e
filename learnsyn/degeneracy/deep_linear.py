"""The post's deep linear experiment: does degeneracy, not gradient size, decide training?

A ``depth``-layer linear network (``width x width`` matrices, no biases) learns a fixed random
linear teacher ``y = T x`` from Gaussian inputs with mean squared error, for several initial
conditions (Fold 0, Fold 1, orthogonal, orthogonal x 0.8 by default) and ``seeds`` independent
seeds each. Training is unconstrained after initialization.

All ``conditions x seeds`` networks are trained at once as a batch of independent networks: each
layer's weights are one ``(networks, width, width)`` tensor and the loss is the *sum* of the
per-network losses, so every network receives exactly its own gradient, and Adam / SGD (both
elementwise) update each one exactly as if it were trained alone. This makes the full run fit
the CPU budget (one batched matmul per layer instead of one per network).

Seeds are paired across conditions: seed index s has the same teacher, data and minibatch order
in every condition, Fold k uses the same underlying Gaussian draws as Fold 0, and orthogonal x g
the same orthogonal draws as orthogonal. Differences between conditions are then due to the
initialization alone.

Hyper-parameters the post never published are chosen here (see ``DeepLinearConfig``) and stated
in every output. Because the network is linear, the full-training-set loss and every layer's
activation covariance follow exactly from the partial weight products and the input covariance,
so they are computed without extra passes over the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from learnsyn.degeneracy.deep_linear_config import (
    DEFAULT_CONDITIONS,
    OPTIMIZERS,
    DeepLinearConfig,
    log_spaced_epochs,
)
from learnsyn.degeneracy.deep_linear_report import write_deep_linear_outputs
from learnsyn.degeneracy.measures import (
    MEASURE_NAMES,
    activation_covariance,
    covariance_degeneracy,
    matrix_degeneracy,
)
from learnsyn.degeneracy.outputs import progress_bar, run_timed
from learnsyn.initialization import (
    FOLD_AXES,
    initialize_square_matrix,
    seeded_generator,
)

# Stream tags for seeded_generator, so data, initial weights and minibatch order never share a
# random stream.
_DATA_STREAM, _INIT_STREAM, _SHUFFLE_STREAM = 11, 22, 33


@dataclass
class DeepLinearData:
    """Per-seed teachers and training sets: ``teachers (seeds, n, n)``, ``inputs (seeds, N, n)``."""

    teachers: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor
    input_covariance: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        # Uncentered second moment: the MSE is an average of (P - T) x x^T (P - T)^T.
        self.input_covariance = self.inputs.transpose(1, 2) @ self.inputs / self.inputs.shape[1]


def make_data(config: DeepLinearConfig) -> DeepLinearData:
    """Draw one teacher (entries N(0, teacher_gain^2 / n)) and one training set per seed."""
    teachers, inputs = [], []
    for seed_index in range(config.seeds):
        generator = seeded_generator(config.seed, seed_index, _DATA_STREAM)
        teachers.append(
            torch.randn(config.width, config.width, generator=generator)
            * (config.teacher_gain / math.sqrt(config.width))
        )
        inputs.append(
            torch.randn(config.train_samples, config.width, generator=generator) * config.input_std
        )
    teacher_stack, input_stack = torch.stack(teachers), torch.stack(inputs)
    return DeepLinearData(teacher_stack, input_stack, input_stack @ teacher_stack.transpose(1, 2))


def make_initial_weights(config: DeepLinearConfig) -> list[torch.Tensor]:
    """One ``(conditions * seeds, n, n)`` tensor per layer; network index = condition * seeds + s.

    The generator depends on (seed, seed index, base kind) only, so conditions that differ by
    fold or gain start from the same underlying draws (a paired design).
    """
    per_layer: list[list[torch.Tensor]] = [[] for _ in range(config.depth)]
    for spec in config.init_specs:
        kind_tag = 0 if spec.kind == "gaussian" else 1
        for seed_index in range(config.seeds):
            generator = seeded_generator(config.seed, seed_index, _INIT_STREAM, kind_tag)
            for layer in range(config.depth):
                per_layer[layer].append(
                    initialize_square_matrix(spec, config.width, generator, config.fold_axis)
                )
    return [torch.stack(matrices) for matrices in per_layer]


def partial_products(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[W_1, W_2 W_1, ..., W_L ... W_1]``: the map from the input to each layer's output."""
    products, current = [], weights[0]
    products.append(current)
    for weight in weights[1:]:
        current = weight @ current
        products.append(current)
    return products


def suffix_products(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[W_L ... W_2, ..., W_L, I]``: the layer-to-output Jacobian of each layer's output 1..L."""
    identity = torch.eye(weights[0].shape[-1], dtype=weights[0].dtype).expand_as(weights[0])
    suffixes, current = [identity], identity
    for weight in reversed(weights[1:]):
        current = current @ weight
        suffixes.append(current)
    return suffixes[::-1]


def mse_from_product(
    product: torch.Tensor, teachers: torch.Tensor, input_moment: torch.Tensor
) -> torch.Tensor:
    """Exact MSE over a data set from the end-to-end map: tr((P-T) S (P-T)^T) / n per network."""
    error = product - teachers
    return torch.einsum("mij,mjk,mik->m", error, input_moment, error) / product.shape[-1]


def activation_and_weight_gradient_norms(
    weights: list[torch.Tensor], inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-network norms of dLoss/dh_l (layer outputs l = 1..L) and dLoss/dW_l on a data set.

    Returns two ``(networks, depth)`` tensors. ``torch.autograd.grad`` is used so the
    optimizer's ``.grad`` buffers are untouched.
    """
    leaves = [weight.detach().requires_grad_(True) for weight in weights]
    hidden, activations = inputs, []
    for weight in leaves:
        hidden = hidden @ weight.transpose(1, 2)
        activations.append(hidden)
    loss = ((hidden - targets) ** 2).mean(dim=(1, 2)).sum()
    gradients = torch.autograd.grad(loss, activations + leaves)
    norms = torch.stack([gradient.flatten(1).norm(dim=1) for gradient in gradients], dim=1)
    return norms[:, : len(weights)], norms[:, len(weights) :]


@torch.no_grad()
def degeneracy_snapshot(
    weights: list[torch.Tensor], input_covariance: torch.Tensor, threshold: float
) -> dict[str, dict[str, torch.Tensor]]:
    """Measures of the end-to-end product ``(networks,)`` and of every layer's activation
    covariance and layer-to-output Jacobian ``(networks, depth)``."""
    products = partial_products(weights)
    product_measures = matrix_degeneracy(products[-1], threshold)
    stacked = torch.stack(products, dim=1)  # (networks, depth, n, n)
    covariances = stacked @ input_covariance.unsqueeze(1) @ stacked.transpose(-1, -2)
    jacobians = torch.stack(suffix_products(weights), dim=1)
    return {
        "weight_product": product_measures,
        "activation_covariance": covariance_degeneracy(covariances, threshold),
        "layer_to_output_jacobian": matrix_degeneracy(jacobians, threshold),
    }


measurement_epochs = log_spaced_epochs


def train_deep_linear(config: DeepLinearConfig) -> dict[str, Any]:
    """Train every network and return raw arrays (network axis first, condition-major order).

    Keys: ``loss`` and ``population_loss`` ``(networks, epochs + 1)``; ``measure_epochs`` and
    ``measures[group][measure]`` ``(networks, points[, depth])``; ``gradient_epochs`` (the
    config's ``gradient_schedule``) with ``activation_gradient_norms`` / ``weight_gradient_norms``
    ``(networks, len, depth)``.
    """
    config.validate()
    data = make_data(config)
    networks = len(config.conditions) * config.seeds
    weights = [torch.nn.Parameter(matrix) for matrix in make_initial_weights(config)]

    def per_network(tensor: torch.Tensor) -> torch.Tensor:
        # Data are per seed; networks are condition-major, so repeat the seed block per condition.
        return tensor.repeat(len(config.conditions), *([1] * (tensor.dim() - 1)))

    teachers, inputs, targets = map(per_network, (data.teachers, data.inputs, data.targets))
    input_moment = per_network(data.input_covariance)
    centered_covariance = per_network(activation_covariance(data.inputs))
    population_moment = torch.eye(config.width) * config.input_std**2

    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(weights, lr=config.learning_rate)
    else:
        optimizer = torch.optim.SGD(weights, lr=config.learning_rate)

    loss_history = torch.full((networks, config.epochs + 1), math.nan, dtype=torch.float64)
    population_history = torch.full_like(loss_history, math.nan)
    gradient_schedule = config.gradient_schedule
    epochs_to_measure = measurement_epochs(
        config.epochs, config.measure_points, tuple(config.gradient_epochs)
    )
    snapshots: list[dict[str, dict[str, torch.Tensor]]] = []
    activation_norms, weight_norms = [], []
    shuffle_generator = seeded_generator(config.seed, 0, _SHUFFLE_STREAM)

    def record(epoch: int) -> None:
        with torch.no_grad():
            product = partial_products([weight.detach() for weight in weights])[-1]
            loss_history[:, epoch] = mse_from_product(product, teachers, input_moment).double()
            population_history[:, epoch] = mse_from_product(
                product, teachers, population_moment.expand_as(product)
            ).double()
        if epoch in epochs_to_measure:
            snapshots.append(
                degeneracy_snapshot(
                    [weight.detach() for weight in weights],
                    centered_covariance,
                    config.small_value_threshold,
                )
            )
        if epoch in gradient_schedule:
            activation_norm, weight_norm = activation_and_weight_gradient_norms(
                weights, inputs, targets
            )
            activation_norms.append(activation_norm)
            weight_norms.append(weight_norm)

    record(0)
    bar = progress_bar(
        range(1, config.epochs + 1), description="deep-linear", enabled=config.show_progress
    )
    for epoch in bar:
        order = torch.randperm(config.train_samples, generator=shuffle_generator)
        for step in range(config.steps_per_epoch):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            hidden = inputs[:, batch]
            for weight in weights:
                hidden = torch.bmm(hidden, weight.transpose(1, 2))
            # Sum (not mean) over networks so each one gets exactly its own gradient.
            loss = ((hidden - targets[:, batch]) ** 2).mean(dim=(1, 2)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        record(epoch)
        bar.set_postfix(loss=f"{loss_history[:, epoch].nanmean().item():.3g}", refresh=False)
    bar.close()

    measures = {
        group: {
            name: torch.stack([snapshot[group][name] for snapshot in snapshots], dim=1)
            for name in MEASURE_NAMES
        }
        for group in snapshots[0]
    }
    return {
        "teacher_measures": matrix_degeneracy(data.teachers, config.small_value_threshold),
        "loss": loss_history,
        "population_loss": population_history,
        "measure_epochs": epochs_to_measure,
        "measures": measures,
        "gradient_epochs": gradient_schedule,
        "activation_gradient_norms": torch.stack(activation_norms, dim=1),
        "weight_gradient_norms": torch.stack(weight_norms, dim=1),
    }


def run_deep_linear(config: DeepLinearConfig, out_dir: str | Path) -> dict[str, Any]:
    """Validate, train, and write figures, results.json, TensorBoard logs and config.json.

    Returns the summary dict that is also written to ``<out_dir>/results.json``.
    """
    raw, seconds = run_timed(config, lambda: train_deep_linear(config))
    return write_deep_linear_outputs(
        config, raw, out_dir, training_seconds=seconds, torch_threads=config.threads
    )


__all__ = [
    "DEFAULT_CONDITIONS",
    "FOLD_AXES",
    "OPTIMIZERS",
    "DeepLinearConfig",
    "run_deep_linear",
    "train_deep_linear",
]
