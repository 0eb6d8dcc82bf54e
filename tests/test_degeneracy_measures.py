"""Tests for learnsyn.degeneracy.measures: known spectra, scale invariance, batches, NaN."""

import math

import pytest
import torch

from learnsyn.degeneracy.measures import (
    activation_covariance,
    covariance_degeneracy,
    covariance_eigenvalues,
    effective_rank,
    fraction_below_threshold,
    matrix_degeneracy,
    participation_ratio,
    squared_singular_value_moments,
)

torch.set_num_threads(1)


def test_isometry_is_least_degenerate_at_any_scale():
    for scale in (1e-3, 1.0, 7.0):
        measures = matrix_degeneracy(scale * torch.eye(10))
        assert measures["effective_rank"].item() == pytest.approx(10.0)
        assert measures["participation_ratio"].item() == pytest.approx(10.0)
        assert measures["fraction_below_threshold"].item() == 0.0


def test_rank_one_matrix_has_effective_rank_and_participation_ratio_one():
    vector = torch.arange(1.0, 7.0)
    measures = matrix_degeneracy(torch.outer(vector, vector))
    assert measures["effective_rank"].item() == pytest.approx(1.0)
    assert measures["participation_ratio"].item() == pytest.approx(1.0)
    assert measures["fraction_below_threshold"].item() == pytest.approx(5 / 6)


def test_measures_of_a_known_spectrum():
    spectrum = torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    probabilities = torch.tensor([0.5, 0.25, 0.25])
    expected_rank = math.exp(-(probabilities * probabilities.log()).sum().item())
    assert effective_rank(spectrum).item() == pytest.approx(expected_rank)
    # (sum s^2)^2 / sum s^4 = (4 + 1 + 1)^2 / (16 + 1 + 1)
    assert participation_ratio(spectrum).item() == pytest.approx(36 / 18)
    # RMS = sqrt(6/4) = 1.22: thresholds 0.1 and 0.5 leave only the zero below; 1.0 adds the ones
    assert fraction_below_threshold(spectrum, 0.1).item() == pytest.approx(0.25)
    assert fraction_below_threshold(spectrum, 0.5).item() == pytest.approx(0.25)
    assert fraction_below_threshold(spectrum, 1.0).item() == pytest.approx(0.75)
    assert fraction_below_threshold(spectrum, 2.0).item() == pytest.approx(1.0)


def test_batched_matrices_give_one_value_per_matrix():
    batch = torch.stack([torch.eye(4), torch.diag(torch.tensor([1.0, 0.0, 0.0, 0.0]))])
    measures = matrix_degeneracy(batch)
    torch.testing.assert_close(
        measures["effective_rank"], torch.tensor([4.0, 1.0], dtype=torch.float64)
    )


def test_non_finite_matrix_gives_nan_without_spoiling_the_batch():
    batch = torch.stack([torch.eye(3), torch.full((3, 3), math.nan)])
    measures = matrix_degeneracy(batch)
    for values in measures.values():
        assert math.isfinite(values[0].item()) and math.isnan(values[1].item())


def test_covariance_measures_use_eigenvalues_as_the_usual_participation_ratio():
    generator = torch.Generator().manual_seed(0)
    activity = torch.randn(20000, 3, generator=generator, dtype=torch.float64)
    activity = activity * torch.tensor([3.0, 1.0, 1.0], dtype=torch.float64)
    covariance = activation_covariance(activity)
    eigenvalues = covariance_eigenvalues(covariance)
    expected_eigenvalues = torch.tensor([9.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(eigenvalues, expected_eigenvalues, rtol=0.05, atol=0)
    expected = 11.0**2 / (81.0 + 1.0 + 1.0)
    ratio = covariance_degeneracy(covariance)["participation_ratio"].item()
    assert ratio == pytest.approx(expected, rel=0.05)


def test_squared_singular_value_moments():
    moments = squared_singular_value_moments(torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert moments["mean_squared_singular_value"].item() == pytest.approx(0.5)
    assert moments["variance_squared_singular_value"].item() == pytest.approx(0.25)
    assert moments["normalized_variance_squared_singular_value"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [1, 7, 64])
def test_participation_ratio_of_a_flat_spectrum_is_its_size_at_any_scale(size):
    for scale in (1e-4, 1.0, 3.0):
        flat = torch.full((size,), scale, dtype=torch.float64)
        assert participation_ratio(flat).item() == pytest.approx(size)


def test_a_map_and_the_covariance_it_makes_from_white_noise_score_the_same():
    """The participation ratio is that of s^2 = eigenvalues of M M^T, so M and C = M M^T
    (the covariance of M x for white x) give equal measures; for C it is the usual
    (sum lambda)^2 / sum lambda^2."""
    generator = torch.Generator().manual_seed(1)
    matrix = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    matrix = matrix @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1, 0.0], dtype=torch.float64))
    covariance = matrix @ matrix.T
    from_map, from_covariance = matrix_degeneracy(matrix), covariance_degeneracy(covariance)
    for name in from_map:
        assert from_covariance[name].item() == pytest.approx(from_map[name].item(), rel=1e-6)
    eigenvalues = torch.linalg.eigvalsh(covariance)
    usual = (eigenvalues.sum() ** 2 / (eigenvalues**2).sum()).item()
    assert from_covariance["participation_ratio"].item() == pytest.approx(usual)
