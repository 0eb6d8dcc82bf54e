"""Degeneracy measures of a spectrum: effective rank, participation ratio, small-value fraction.

All three are computed from the singular values ``s`` of the linear map being measured (a weight
product, a layer-to-output Jacobian) and are invariant to its overall scale, so they measure the
*shape* of the spectrum, not its size. A covariance ``C`` is measured through the map that
produces it from white noise, ``C^(1/2)``: its "singular values" are ``s = sqrt(eigenvalues of
C)`` (the singular values of the centered activity, up to a common factor). So a layer's
activity and the map that produced it from white inputs score the same.

- effective rank  ``exp(H(p))`` with ``p = s / sum(s)`` and H the Shannon entropy (Roy &
  Vetterli 2007); n for an isometry, 1 for a rank-1 matrix;
- participation ratio  ``(sum s^2)^2 / sum(s^4)``: the participation ratio of the eigenvalues
  ``s^2`` of ``M M^T``; for a covariance ``(sum lambda)^2 / sum(lambda^2)``, the usual
  participation ratio of the activity. n for a flat spectrum, 1 for rank 1;
- fraction below threshold  the fraction of ``s`` smaller than ``threshold`` times the RMS
  singular value. Relative to the RMS so that, as in the post, matrices are compared at a
  fixed Frobenius norm: an orthogonal matrix times any gain has fraction 0.

Every function works on a batch: the spectrum is the last dimension.
"""

from __future__ import annotations

import math

import torch

DEFAULT_SMALL_VALUE_THRESHOLD = 0.1
MEASURE_NAMES = ("effective_rank", "participation_ratio", "fraction_below_threshold")


def _finite_matrices(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 copies with non-finite matrices zeroed, and the mask of the finite ones.

    A diverged network (e.g. SGD with too large a step) must not stop the measurement of the
    others in the same batch; its spectrum is reported as NaN.
    """
    values = matrices.detach().to(torch.float64)
    finite = torch.isfinite(values).flatten(-2).all(dim=-1)
    return torch.where(finite[..., None, None], values, torch.zeros_like(values)), finite


def singular_values(matrices: torch.Tensor) -> torch.Tensor:
    """Singular values (descending, float64) of a matrix or a batch of matrices ``(..., m, n)``.

    Matrices with non-finite entries get all-NaN singular values.
    """
    values, finite = _finite_matrices(matrices)
    spectrum = torch.linalg.svdvals(values)
    return torch.where(finite[..., None], spectrum, torch.full_like(spectrum, math.nan))


def covariance_eigenvalues(covariances: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending, float64, clipped at 0) of symmetric PSD matrices ``(..., n, n)``.

    Their square roots are the spectrum ``covariance_degeneracy`` measures. Matrices with
    non-finite entries get all-NaN eigenvalues.
    """
    values, finite = _finite_matrices(covariances)
    eigenvalues = torch.linalg.eigvalsh(values).clamp_min(0.0).flip(-1)
    return torch.where(finite[..., None], eigenvalues, torch.full_like(eigenvalues, math.nan))


def activation_covariance(activations: torch.Tensor) -> torch.Tensor:
    """Covariance over samples: activations ``(..., samples, units)`` -> ``(..., units, units)``"""
    centered = activations - activations.mean(dim=-2, keepdim=True)
    return centered.transpose(-1, -2) @ centered / max(activations.shape[-2] - 1, 1)


def effective_rank(spectrum: torch.Tensor) -> torch.Tensor:
    """``exp`` of the entropy of the spectrum normalized by its sum (last dim); NaN if all zero."""
    spectrum = spectrum.to(torch.float64)
    probabilities = spectrum / spectrum.sum(dim=-1, keepdim=True)
    safe = torch.where(probabilities > 0, probabilities, torch.ones_like(probabilities))
    entropy = -(probabilities * torch.log(safe)).sum(dim=-1)
    return torch.exp(entropy)


def participation_ratio(spectrum: torch.Tensor) -> torch.Tensor:
    """``(sum s^2)^2 / sum(s^4)`` over the last dim (singular values s); NaN if all zero."""
    squared = spectrum.to(torch.float64) ** 2
    return squared.sum(dim=-1) ** 2 / (squared**2).sum(dim=-1)


def fraction_below_threshold(
    spectrum: torch.Tensor, threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD
) -> torch.Tensor:
    """Fraction of values below ``threshold`` x the RMS value of the spectrum (last dim); NaN
    if all zero (no size to be small against), as the effective rank is."""
    spectrum = spectrum.to(torch.float64)
    rms = torch.sqrt((spectrum**2).mean(dim=-1, keepdim=True))
    fraction = (spectrum < threshold * rms).to(torch.float64).mean(dim=-1)
    undefined = torch.isnan(spectrum).any(dim=-1) | (rms[..., 0] == 0)
    return torch.where(undefined, math.nan, fraction)


def spectrum_degeneracy(
    spectrum: torch.Tensor, threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD
) -> dict[str, torch.Tensor]:
    """All three measures of a spectrum (or batch of spectra), keyed by ``MEASURE_NAMES``."""
    return {
        "effective_rank": effective_rank(spectrum),
        "participation_ratio": participation_ratio(spectrum),
        "fraction_below_threshold": fraction_below_threshold(spectrum, threshold),
    }


def matrix_degeneracy(
    matrices: torch.Tensor, threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD
) -> dict[str, torch.Tensor]:
    """The three measures of the singular values of a matrix or batch ``(..., m, n)``."""
    return spectrum_degeneracy(singular_values(matrices), threshold)


def covariance_degeneracy(
    covariances: torch.Tensor, threshold: float = DEFAULT_SMALL_VALUE_THRESHOLD
) -> dict[str, torch.Tensor]:
    """The three measures of covariance matrices ``(..., n, n)``, from ``s = sqrt(eigenvalues)``
    (the participation ratio is then the usual one of the eigenvalues)."""
    return spectrum_degeneracy(covariance_eigenvalues(covariances).sqrt(), threshold)


def squared_singular_value_moments(singular: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and variance of ``s^2`` over the last dim, and the variance over the squared mean.

    For a product of L i.i.d. N(0, 1/n) matrices the mean is 1 and, for large n, the variance
    is L (Fuss-Catalan); for orthogonal products the variance is 0.
    """
    squared = singular.to(torch.float64) ** 2
    mean = squared.mean(dim=-1)
    variance = squared.var(dim=-1, unbiased=False)
    return {
        "mean_squared_singular_value": mean,
        "variance_squared_singular_value": variance,
        "normalized_variance_squared_singular_value": variance / mean**2,
    }
