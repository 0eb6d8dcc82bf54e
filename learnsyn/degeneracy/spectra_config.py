"""The settings of the spectra experiment, shared by the computation (``spectra``) and its report
(``spectra_report``), so that the report never imports the computation.

- ``SpectraConfig``: sizes of the product and Jacobian computations (saved as config.json);
- ``CriticalNetwork``: a deep network at criticality (nonlinearity, weight kind, q*), with its
  weight gain and bias scale, activation and derivative;
- ``hard_tanh_critical_parameters``: the hard-tanh gain and bias that make q* a fixed point with
  mean squared singular value 1 per layer (chi = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from scipy.special import erf

from learnsyn.config import setting
from learnsyn.degeneracy.measures import DEFAULT_SMALL_VALUE_THRESHOLD
from learnsyn.initialization import (
    INIT_NAME_HELP,
    check_depth,
    check_fold_axis,
    check_fold_fits_width,
    check_seed,
    check_width,
    parse_init_spec,
)

NONLINEARITIES = ("linear", "hard_tanh", "relu")
WEIGHT_KINDS = ("gaussian", "orthogonal")


@dataclass
class SpectraConfig:
    """Sizes of the product and Jacobian spectra computations (saved as config.json)."""

    product_width: int = setting(256, "matrix size for products")
    product_depths: tuple[int, ...] = setting((1, 10, 100), "L for the histograms")
    product_inits: tuple[str, ...] = setting(
        ("gaussian", "orthogonal", "fold1"), f"matrix kinds; names: {INIT_NAME_HELP}"
    )
    product_trials: int = setting(20, "products per kind")
    variance_curve_points: int = setting(16, "depths of the var(s^2) against L curve")
    jacobian_width: int = setting(256, "network width")
    jacobian_depths: tuple[int, ...] = setting((1, 4, 16, 64), "network depths")
    nonlinearities: tuple[str, ...] = setting(NONLINEARITIES, " | ".join(NONLINEARITIES))
    weight_kinds: tuple[str, ...] = setting(WEIGHT_KINDS, " | ".join(WEIGHT_KINDS))
    hard_tanh_q_stars: tuple[float, ...] = setting(
        (1 / 64, 1 / 4),
        "hard-tanh fixed-point pre-activation variances q*",
        option="--q-stars",
    )
    jacobian_trials: int = setting(8, "networks per setting")
    fold_axis: str = setting("rows", "axis Fold k copies: rows | columns")
    small_value_threshold: float = setting(
        DEFAULT_SMALL_VALUE_THRESHOLD,
        "small singular value threshold, relative to the RMS singular value",
        option="--threshold",
    )
    histogram_bins: int = setting(60, "bins of the singular value histograms")
    seed: int = setting(0, "base random seed", cli=False)
    threads: int = setting(1, "torch threads", cli=False)
    show_progress: bool = setting(True, "", cli=False)

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
        for what, names, allowed in (
            ("nonlinearity", self.nonlinearities, NONLINEARITIES),
            ("weight kind", self.weight_kinds, WEIGHT_KINDS),
        ):
            for name in names:
                if name not in allowed:
                    raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")
        for q_star in self.hard_tanh_q_stars:
            if not 0 < q_star <= 1:
                raise ValueError(f"hard-tanh q* must be in (0, 1], got {q_star}")
            hard_tanh_critical_parameters(q_star)
        for name in ("product_trials", "jacobian_trials", "variance_curve_points", "threads"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        if int(self.histogram_bins) != self.histogram_bins or self.histogram_bins < 2:
            raise ValueError(f"histogram_bins must be an integer >= 2, got {self.histogram_bins}")
        if not (math.isfinite(self.small_value_threshold) and self.small_value_threshold > 0):
            raise ValueError(  # inf made every singular value "small" (review, session 30)
                f"small_value_threshold must be a finite number > 0, got "
                f"{self.small_value_threshold}"
            )

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
