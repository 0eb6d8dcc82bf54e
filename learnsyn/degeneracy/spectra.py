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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import erf

from learnsyn.degeneracy.measures import (
    DEFAULT_SMALL_VALUE_THRESHOLD,
    singular_values,
    spectrum_degeneracy,
    squared_singular_value_moments,
)
from learnsyn.degeneracy.outputs import progress_bar
from learnsyn.initialization import (
    check_depth,
    check_fold_axis,
    check_fold_fits_width,
    check_seed,
    check_width,
    gaussian_matrix,
    initialize_square_matrix,
    orthogonal_matrix,
    parse_init_spec,
    seeded_generator,
)

NONLINEARITIES = ("linear", "hard_tanh", "relu")
WEIGHT_KINDS = ("gaussian", "orthogonal")
_PRODUCT_STREAM, _JACOBIAN_STREAM = 44, 55


@dataclass
class SpectraConfig:
    """Sizes of the product and Jacobian spectra computations (saved as config.json)."""

    product_width: int = 256
    product_depths: tuple[int, ...] = (1, 10, 100)
    product_inits: tuple[str, ...] = ("gaussian", "orthogonal", "fold1")
    product_trials: int = 20
    variance_curve_points: int = 16
    jacobian_width: int = 256
    jacobian_depths: tuple[int, ...] = (1, 4, 16, 64)
    nonlinearities: tuple[str, ...] = NONLINEARITIES
    weight_kinds: tuple[str, ...] = WEIGHT_KINDS
    hard_tanh_q_stars: tuple[float, ...] = (1 / 64, 1 / 4)
    jacobian_trials: int = 8
    fold_axis: str = "rows"
    small_value_threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD
    histogram_bins: int = 60
    seed: int = 0
    threads: int = 1
    show_progress: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> SpectraConfig:
        """A few-second version (narrower, fewer trials, shallower) for tests and demos."""
        values: dict[str, Any] = dict(
            product_width=64,
            product_depths=(1, 4, 16),
            product_trials=4,
            variance_curve_points=6,
            jacobian_width=64,
            jacobian_depths=(1, 4, 16),
            jacobian_trials=3,
        )
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for the first bad setting, before any work."""
        check_width(self.product_width)
        check_width(self.jacobian_width)
        check_seed(self.seed)
        check_fold_axis(self.fold_axis)
        for depth in (*self.product_depths, *self.jacobian_depths):
            check_depth(depth)
        if not self.product_depths or not self.jacobian_depths:
            raise ValueError("product_depths and jacobian_depths must each name a depth")
        for name in self.product_inits:
            check_fold_fits_width(parse_init_spec(name).fold_k, self.product_width)
        for nonlinearity in self.nonlinearities:
            if nonlinearity not in NONLINEARITIES:
                raise ValueError(
                    f"unknown nonlinearity {nonlinearity!r}; allowed: {', '.join(NONLINEARITIES)}"
                )
        for kind in self.weight_kinds:
            if kind not in WEIGHT_KINDS:
                raise ValueError(
                    f"unknown weight kind {kind!r}; allowed: {', '.join(WEIGHT_KINDS)}"
                )
        for q_star in self.hard_tanh_q_stars:
            if not 0 < q_star <= 1:
                raise ValueError(f"hard-tanh q* must be in (0, 1], got {q_star}")
            hard_tanh_critical_parameters(q_star)
        for name in ("product_trials", "jacobian_trials", "variance_curve_points", "threads"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        if self.histogram_bins < 2:
            raise ValueError(f"histogram_bins must be >= 2, got {self.histogram_bins}")
        if not self.small_value_threshold > 0:
            raise ValueError(f"small_value_threshold must be > 0, got {self.small_value_threshold}")

    def jacobian_networks(self) -> list[CriticalNetwork]:
        """Every (nonlinearity, weight kind[, q*]) combination to measure."""
        networks = []
        for nonlinearity in self.nonlinearities:
            q_stars = self.hard_tanh_q_stars if nonlinearity == "hard_tanh" else (1.0,)
            for q_star in q_stars:
                for kind in self.weight_kinds:
                    networks.append(CriticalNetwork(nonlinearity, kind, q_star))
        return networks


def hard_tanh_critical_parameters(q_star: float) -> tuple[float, float]:
    """``(sigma_w, sigma_b)`` that make ``q*`` a fixed point with chi = 1 for hard-tanh.

    With ``h ~ N(0, q*)`` and ``a = 1 / sqrt(q*)``: ``P(|h| < 1) = erf(a / sqrt 2)`` and
    ``E[hardtanh(h)^2] = q* (erf(a / sqrt 2) - 2 a phi(a)) + 1 - erf(a / sqrt 2)``.
    """
    a = 1.0 / math.sqrt(q_star)
    inside = float(erf(a / math.sqrt(2.0)))
    density = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
    mean_square_output = q_star * (inside - 2.0 * a * density) + (1.0 - inside)
    weight_variance = 1.0 / inside
    bias_variance = q_star - weight_variance * mean_square_output
    if bias_variance < -1e-12:
        raise ValueError(f"hard-tanh q*={q_star} has no critical point with a real bias")
    return math.sqrt(weight_variance), math.sqrt(max(bias_variance, 0.0))


@dataclass(frozen=True)
class CriticalNetwork:
    """A deep network at criticality: nonlinearity, weight kind and (hard-tanh only) q*."""

    nonlinearity: str
    weight_kind: str
    q_star: float = 1.0

    @property
    def weight_and_bias_scale(self) -> tuple[float, float]:
        """``(sigma_w, sigma_b)``: the weight gain and the bias standard deviation."""
        if self.nonlinearity == "relu":
            return math.sqrt(2.0), 0.0
        if self.nonlinearity == "hard_tanh":
            return hard_tanh_critical_parameters(self.q_star)
        return 1.0, 0.0

    @property
    def name(self) -> str:
        """A short identifier used as the key in results and TensorBoard tags."""
        if self.nonlinearity == "hard_tanh":
            return f"hard_tanh-q{self.q_star:.4g}-{self.weight_kind}"
        return f"{self.nonlinearity}-{self.weight_kind}"

    @property
    def label(self) -> str:
        """A human-readable label for plots."""
        sigma_w, sigma_b = self.weight_and_bias_scale
        text = f"{self.nonlinearity}, {self.weight_kind}, sigma_w={sigma_w:.3g}"
        if self.nonlinearity == "hard_tanh":
            text += f", sigma_b={sigma_b:.2g}, q*={self.q_star:.3g}"
        return text

    def activation(self, pre_activation: torch.Tensor) -> torch.Tensor:
        """phi(h)."""
        if self.nonlinearity == "relu":
            return pre_activation.clamp_min(0.0)
        if self.nonlinearity == "hard_tanh":
            return pre_activation.clamp(-1.0, 1.0)
        return pre_activation

    def derivative(self, pre_activation: torch.Tensor) -> torch.Tensor:
        """phi'(h) (0 or 1 for ReLU and hard-tanh)."""
        if self.nonlinearity == "relu":
            return (pre_activation > 0).to(pre_activation.dtype)
        if self.nonlinearity == "hard_tanh":
            return (pre_activation.abs() < 1.0).to(pre_activation.dtype)
        return torch.ones_like(pre_activation)


def _spectrum_statistics(spectrum: torch.Tensor, threshold: float) -> dict[str, float]:
    statistics = {
        **squared_singular_value_moments(spectrum),
        **spectrum_degeneracy(spectrum, threshold),
    }
    return {name: float(value) for name, value in statistics.items()}


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
    wanted = sorted(set(depths))
    results: dict[int, dict[str, Any]] = {
        depth: {"singular_values": [], "statistics": []} for depth in wanted
    }
    for trial in range(trials):
        generator = seeded_generator(seed, trial, _PRODUCT_STREAM)
        product = torch.eye(width, dtype=torch.float64)
        for depth in range(1, wanted[-1] + 1):
            matrix = initialize_square_matrix(spec, width, generator, fold_axis, torch.float64)
            product = matrix @ product
            if depth in results:
                spectrum = singular_values(product)
                results[depth]["singular_values"].append(spectrum.numpy())
                results[depth]["statistics"].append(_spectrum_statistics(spectrum, threshold))
    for entry in results.values():
        entry["singular_values"] = np.stack(entry["singular_values"])
    return results


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
    ``h_0 ~ N(0, q*)``. Returns the same structure as ``product_spectra``, plus the fraction of
    units in the linear range (``phi' = 1``) per depth.
    """
    sigma_w, sigma_b = network.weight_and_bias_scale
    wanted = sorted(set(depths))
    results: dict[int, dict[str, Any]] = {
        depth: {"singular_values": [], "statistics": [], "active_fraction": []} for depth in wanted
    }
    for trial in range(trials):
        generator = seeded_generator(seed, trial, _JACOBIAN_STREAM)
        pre_activation = torch.randn(width, generator=generator, dtype=torch.float64)
        state = network.activation(pre_activation * math.sqrt(network.q_star))
        jacobian = torch.eye(width, dtype=torch.float64)
        for depth in range(1, wanted[-1] + 1):
            if network.weight_kind == "orthogonal":
                weight = orthogonal_matrix(width, generator, sigma_w, torch.float64)
            else:
                weight = gaussian_matrix(width, generator, sigma_w, torch.float64)
            bias = torch.randn(width, generator=generator, dtype=torch.float64) * sigma_b
            pre_activation = weight @ state + bias
            slope = network.derivative(pre_activation)
            state = network.activation(pre_activation)
            jacobian = slope.unsqueeze(1) * (weight @ jacobian)
            if depth in results:
                spectrum = singular_values(jacobian)
                results[depth]["singular_values"].append(spectrum.numpy())
                results[depth]["statistics"].append(_spectrum_statistics(spectrum, threshold))
                results[depth]["active_fraction"].append(float(slope.mean()))
    for entry in results.values():
        entry["singular_values"] = np.stack(entry["singular_values"])
    return results


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
