"""Why depth makes networks degenerate: singular-value spectra of products and of Jacobians.

Two computations, both seeded and both summarized with the degeneracy measures:

1. Products of L random ``n x n`` matrices (Gaussian 1/sqrt(n), orthogonal, Fold k, any
   ``InitSpec`` name). Facts to see: the mean squared singular value of Gaussian products stays 1
   for every L while, for large n, the variance of the squared singular values is L
   (Fuss-Catalan), so most singular values collapse towards 0 while a few grow; orthogonal
   products have every singular value equal to g^L.
2. Input-output Jacobians ``J = D_L W_L ... D_1 W_1`` (``D_l = diag(phi'(h_l))``) of deep
   networks at criticality (mean squared singular value 1, Pennington, Schoenholz & Ganguli
   2017), with Gaussian or orthogonal weights:
   - ``linear``: weight gain 1, no bias (the reference: orthogonal gives an exact isometry);
   - ``relu``: critical gain sqrt(2), no bias; half the units are off at any input, so
     ``J J^T`` always has about half its eigenvalues at 0 and no gain or bias can make it
     isometric;
   - ``hard_tanh``: for a chosen fixed-point pre-activation variance ``q*``, the gain
     ``sigma_w^2 = 1 / P(|h| < 1)`` (criticality) and the bias variance
     ``sigma_b^2 = q* - sigma_w^2 E[hardtanh(h)^2]`` (so ``q*`` is a fixed point), with
     ``h ~ N(0, q*)``; inputs are drawn at the fixed point. A small ``q*`` keeps almost every unit
     in the linear range, and with orthogonal weights the spectrum stays narrow at any depth.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.degeneracy.measures import (
    DEFAULT_SMALL_VALUE_THRESHOLD,
    singular_values,
    spectrum_degeneracy,
    squared_singular_value_moments,
)
from learnsyn.degeneracy.outputs import progress_bar, run_timed
from learnsyn.degeneracy.spectra_config import (
    NONLINEARITIES,
    WEIGHT_KINDS,
    CriticalNetwork,
    SpectraConfig,
    hard_tanh_critical_parameters,
)
from learnsyn.degeneracy.spectra_report import write_spectra_outputs
from learnsyn.initialization import (
    gaussian_matrix,
    initialize_square_matrix,
    orthogonal_matrix,
    parse_init_spec,
    seeded_generator,
)

_PRODUCT_STREAM, _JACOBIAN_STREAM = 44, 55


def _empty_results(depths: list[int], *keys: str) -> dict[int, dict[str, list[Any]]]:
    """``{L: {"singular_values": [], "statistics": [], key: [] ...}}`` for each distinct L."""
    keys = ("singular_values", "statistics", *keys)
    return {depth: {key: [] for key in keys} for depth in sorted(set(depths))}


def _record_spectrum(entry: dict[str, list[Any]], spectrum: torch.Tensor, threshold: float):
    """Append one trial's singular values and their statistics to a depth's entry."""
    statistics = {
        **squared_singular_value_moments(spectrum),
        **spectrum_degeneracy(spectrum, threshold),
    }
    entry["singular_values"].append(spectrum.numpy())
    entry["statistics"].append({name: float(value) for name, value in statistics.items()})


def _stack_trials(results: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The trials' singular values of each depth as one ``(trials, n)`` array."""
    for entry in results.values():
        entry["singular_values"] = np.stack(entry["singular_values"])
    return results


def product_spectra(
    init_name: str,
    width: int,
    depths: list[int],
    trials: int,
    seed: int,
    fold_axis: str = "rows",
    threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD,
) -> dict[int, dict[str, Any]]:
    """Spectra of products of ``L`` i.i.d. matrices drawn by ``init_name``, for each L in depths.

    Each trial builds one running product, so the products at the listed depths of one trial are
    nested (each depth is still marginally a product of L i.i.d. matrices). Returns
    ``{L: {"singular_values": (trials, n) array, "statistics": [per-trial dicts]}}``.
    """
    spec = parse_init_spec(init_name)
    results = _empty_results(depths)
    for trial in range(trials):
        generator = seeded_generator(seed, trial, _PRODUCT_STREAM)
        product = torch.eye(width, dtype=torch.float64)
        for depth in range(1, max(depths) + 1):
            matrix = initialize_square_matrix(spec, width, generator, fold_axis, torch.float64)
            product = matrix @ product
            if depth in results:
                _record_spectrum(results[depth], singular_values(product), threshold)
    return _stack_trials(results)


def layer_normalized_variance(weight_kind: str, linear_fraction: float) -> float:
    """One layer's contribution to var(s^2) / mean(s^2)^2 of the input-output Jacobian.

    Pennington, Schoenholz & Ganguli (2017): for a wide network the squared singular values of
    ``J`` follow the free multiplicative convolution of the layers' ``W^T D^2 W``, and for
    mean-one free factors the normalized variances add. With a fraction ``p`` of units in the
    linear regime (``phi' = 1``, the rest ``phi' = 0``, as for ReLU and hard-tanh), ``D^2`` has
    normalized variance ``(1 - p) / p``; an orthogonal ``W`` adds nothing and a Gaussian one the
    Marchenko-Pastur variance 1. So each layer adds ``(1 - p) / p`` (orthogonal) or ``1 / p``
    (Gaussian): ``L (1 - p) / p`` and ``L / p`` for L layers with the same p (ReLU: p = 1/2;
    hard-tanh: p = P(|h| < 1); linear: p = 1, giving 0 and L).
    """
    if linear_fraction <= 0:
        return math.inf
    if weight_kind == "orthogonal":
        return (1.0 - linear_fraction) / linear_fraction
    return 1.0 / linear_fraction


def jacobian_spectra(
    network: CriticalNetwork,
    width: int,
    depths: list[int],
    trials: int,
    seed: int,
    threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD,
) -> dict[int, dict[str, Any]]:
    """Singular values of the input-output Jacobian at each depth (nested, like the products).

    Each trial draws a new network and a new input at the fixed point: ``x_0 = phi(h_0)``,
    ``h_0 ~ N(0, q*)``. Returns the same structure as ``product_spectra``, plus per depth the
    fraction of units in the linear range (``phi' = 1``) at that layer and the predicted
    ``var(s^2) / mean(s^2)^2`` (``layer_normalized_variance`` summed over the layers so far,
    with each layer's measured fraction).
    """
    sigma_w, sigma_b = network.weight_and_bias_scale
    results = _empty_results(depths, "active_fraction", "predicted_normalized_variance")
    for trial in range(trials):
        generator = seeded_generator(seed, trial, _JACOBIAN_STREAM)
        pre_activation = torch.randn(width, generator=generator, dtype=torch.float64)
        state = network.activation(pre_activation * math.sqrt(network.q_star))
        jacobian = torch.eye(width, dtype=torch.float64)
        prediction = 0.0
        for depth in range(1, max(depths) + 1):
            if network.weight_kind == "orthogonal":
                weight = orthogonal_matrix(width, generator, sigma_w, torch.float64)
            else:
                weight = gaussian_matrix(width, generator, sigma_w, torch.float64)
            bias = torch.randn(width, generator=generator, dtype=torch.float64) * sigma_b
            pre_activation = weight @ state + bias
            slope = network.derivative(pre_activation)
            state = network.activation(pre_activation)
            jacobian = slope.unsqueeze(1) * (weight @ jacobian)
            prediction += layer_normalized_variance(network.weight_kind, float(slope.mean()))
            if depth in results:
                _record_spectrum(results[depth], singular_values(jacobian), threshold)
                results[depth]["active_fraction"].append(float(slope.mean()))
                results[depth]["predicted_normalized_variance"].append(prediction)
    return _stack_trials(results)


def variance_curve_depths(max_depth: int, points: int, extra: tuple[int, ...] = ()) -> list[int]:
    """About ``points`` log-spaced depths in 1..max_depth, plus ``extra``."""
    spaced = np.unique(np.round(np.geomspace(1, max_depth, num=points)).astype(int))
    return sorted({*spaced.tolist(), *extra})


def compute_spectra(config: SpectraConfig) -> dict[str, Any]:
    """Run both computations; returns raw per-trial spectra and statistics keyed by name/depth."""
    config.validate()
    product_depths = variance_curve_depths(
        max(config.product_depths), config.variance_curve_points, tuple(config.product_depths)
    )
    networks = config.jacobian_networks()
    bar = progress_bar(
        total=len(config.product_inits) + len(networks),
        description="spectra",
        enabled=config.show_progress,
    )
    products = {}
    for init_name in config.product_inits:
        products[init_name] = product_spectra(
            init_name,
            config.product_width,
            product_depths,
            config.product_trials,
            config.seed,
            config.fold_axis,
            config.small_value_threshold,
        )
        bar.update()
    jacobians = {}
    for network in networks:
        jacobians[network.name] = jacobian_spectra(
            network,
            config.jacobian_width,
            list(config.jacobian_depths),
            config.jacobian_trials,
            config.seed,
            config.small_value_threshold,
        )
        bar.update()
    bar.close()
    return {
        "product_depths": product_depths,
        "products": products,
        "jacobian_networks": networks,
        "jacobians": jacobians,
    }


def run_spectra(config: SpectraConfig, out_dir: str | Path) -> dict[str, Any]:
    """Validate, compute, and write figures, results.json, TensorBoard logs and config.json."""
    raw, seconds = run_timed(config, lambda: compute_spectra(config))
    return write_spectra_outputs(config, raw, out_dir, compute_seconds=seconds)


__all__ = [
    "NONLINEARITIES",
    "WEIGHT_KINDS",
    "CriticalNetwork",
    "SpectraConfig",
    "compute_spectra",
    "hard_tanh_critical_parameters",
    "jacobian_spectra",
    "layer_normalized_variance",
    "product_spectra",
    "run_spectra",
]
