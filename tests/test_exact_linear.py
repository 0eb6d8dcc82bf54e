"""Exact SNR of linear synapses against closed forms and independent solvers."""

import numpy as np
import pytest
import scipy.linalg

from learnsyn.estimate.exact import (
    linear_signal_and_variance,
    lyapunov_variance,
    memory_kernel,
    stationary_linear_variance,
)
from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.scenario import InputStatistics, make_scenario
from learnsyn.synapse import LinearForm

IDEAL = InputStatistics(1.0, 0.0, 0.0, (1.0,))


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 0.999])
def test_exponential_closed_form(decay):
    form = make_model("exponential", {"decay": decay}).linear_form()
    ages = np.array([0, 1, 5, 100, 10**6])
    signals, variances = linear_signal_and_variance(form, IDEAL, ages)
    assert np.allclose(signals[0], decay ** ages.astype(float), rtol=1e-10, atol=1e-300)
    assert np.allclose(variances, 1.0 / (1.0 - decay**2), rtol=1e-10)
    variance = stationary_linear_variance(form, IDEAL)
    assert variance == pytest.approx(1.0 / (1.0 - decay**2), rel=1e-10)


def test_benna_fusi_single_variable_variance_is_64_over_15():
    form = make_model("benna-fusi", {"variables": 1}).linear_form()
    variance = stationary_linear_variance(form, IDEAL)
    assert variance == pytest.approx(64.0 / 15.0, rel=1e-12)


@pytest.mark.parametrize("variables", [2, 4, 8, 12])
def test_eigen_variance_matches_lyapunov_solver(variables):
    form = make_model("benna-fusi", {"variables": variables}).linear_form()
    variance = stationary_linear_variance(form, IDEAL)
    assert variance == pytest.approx(lyapunov_variance(form), rel=1e-6)


def test_kernel_matches_matrix_powers_on_random_stable_system():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 5))
    A *= 0.95 / np.max(np.abs(np.linalg.eigvals(A)))  # complex eigenvalues included
    form = LinearForm(A, rng.normal(size=5), rng.normal(size=5))
    ages = np.array([0, 1, 2, 7, 30, 200])
    direct = [form.c @ np.linalg.matrix_power(A, int(t)) @ form.b for t in ages]
    assert np.allclose(memory_kernel(form, ages), direct, atol=1e-10)
    assert stationary_linear_variance(form, IDEAL) == pytest.approx(
        lyapunov_variance(form), rel=1e-8
    )


def test_benna_fusi_decays_as_inverse_sqrt_over_its_range():
    form = make_model("benna-fusi", {"variables": 12}).linear_form()
    ages = np.logspace(1, 7, 13)
    scaled = memory_kernel(form, ages) * np.sqrt(ages)
    assert scaled.max() / scaled.min() < 1.15  # r(t) ~ 1/sqrt(t) for t = 10 .. ~4^m


def test_benna_fusi_variance_grows_about_linearly_in_m():
    variances = []
    for m in (4, 8, 12, 16):
        v = stationary_linear_variance(
            make_model("benna-fusi", {"variables": m}).linear_form(), IDEAL
        )
        variances.append(v)
    steps = np.diff(variances)
    assert np.all(steps > 0) and steps.max() / steps.min() < 1.2


def test_ages_up_to_1e8_without_stepping():
    model = make_model("benna-fusi", {"variables": 12})
    ages = np.unique(np.round(np.logspace(0, 8, 1000)))
    result = evaluate(model, make_scenario("ideal"), synapses=1000, ages=ages, horizon=10**8)
    assert np.all(np.isfinite(result.snr)) and result.method == "exact"
    assert result.seconds < 1.0


def test_noisy_scenario_variance_matches_lyapunov_with_identity_noise():
    sigma = 0.3
    form = make_model("benna-fusi", {"variables": 4}).linear_form()
    stats = make_scenario("noisy", {"sigma": sigma, "bound": 0}).linear_statistics()
    variance = stationary_linear_variance(form, stats)
    P_noise = scipy.linalg.solve_discrete_lyapunov(form.A, np.eye(4))
    expected = lyapunov_variance(form) + sigma**2 * form.c @ P_noise @ form.c
    assert variance == pytest.approx(expected, rel=1e-8)


def test_correlated_scenario_matches_brute_force_sums():
    rho, decay = 0.4, 0.9
    form = make_model("exponential", {"decay": decay}).linear_form()
    stats = make_scenario("correlated", {"repeat": (1 + rho) / 2}).linear_statistics()
    ages = np.arange(6)
    signals, variances = linear_signal_and_variance(form, stats, ages)
    lags = np.arange(400)
    r = decay**lags
    cov = rho ** np.abs(lags[:, None] - lags[None, :])
    brute_var = np.sum(np.outer(r, r) * cov)
    brute_signal = [sum(rho**j * decay ** (t - j) for j in range(t + 1)) for t in ages]
    assert stationary_linear_variance(form, stats) == pytest.approx(brute_var, rel=1e-9)
    assert np.allclose(signals[0], brute_signal)
    # under intervention the tracked event (lag tau) and later ones lose their correlation with
    # the earlier ones: the variance given the intervention drops the cross terms
    for t, v in zip(ages, variances[0]):
        split = cov.copy()
        split[: t + 1, t + 1 :] = 0
        split[t + 1 :, : t + 1] = 0
        assert v == pytest.approx(np.sum(np.outer(r, r) * split), rel=1e-9)


def test_sparse_and_importance_statistics():
    sparse = make_scenario("sparse", {"rate": 0.3, "p_plus": 0.8}).linear_statistics()
    mean = 0.3 * 0.6
    assert sparse.variance == pytest.approx(0.3 - mean**2)
    assert sparse.gains == pytest.approx((4 * 0.8 * 0.2,))
    imp = make_scenario("importance", {"fraction": 0.25, "boost": 3.0}).linear_statistics()
    assert imp.variance == pytest.approx(0.25 * 9 + 0.75)
    assert imp.gains == (3.0, 1.0)
