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


@pytest.mark.parametrize(
    "variables, reference",
    [(12, 33.2792831128698), (16, 43.2647364723325), (20, 53.2496275672328),
     (24, 63.2344835234066)],
)  # fmt: skip
def test_benna_fusi_variance_of_long_chains_matches_a_50_digit_reference(variables, reference):
    """Var w = sum_jk u_j^2 u_k^2 / (1 - mu_j mu_k) from the chain's symmetric form in 50-digit
    arithmetic (mpmath, session 25's review). The slowest mode's 1 - lambda is 1.3e-8 at m = 12
    and 7.6e-16 at m = 24, where the eigenbasis sum read 62.36 (1.4 % low): a gap below
    float64's resolution goes to the Lyapunov solver."""
    form = make_model("benna-fusi", {"variables": variables}).linear_form()
    assert stationary_linear_variance(form, IDEAL) == pytest.approx(reference, rel=1e-7)


def test_benna_fusi_chains_that_are_not_heat_chains_are_refused_in_one_line():
    """An Euler step that overshoots (a negative eigenvalue: the memory zig-zags, r(1) < r(2)) is
    not a heat chain; a slowest mode float64 cannot resolve is not 'unstable'. Every chain
    accepted from a sweep of the tuner's box decays monotonically."""
    from baselines.benna_fusi import chain_eigenvalue_range

    with pytest.raises(ValueError, match="not a heat chain.*overshoots.*-0.924"):
        make_model("benna-fusi", {"variables": 3, "ratio": 1.5, "first_conductance": 1.0})
    with pytest.raises(ValueError, match="variables=25.*cannot resolve.*fewer variables"):
        make_model("benna-fusi", {"variables": 25})
    accepted = 0
    for m in (2, 4, 8):
        for ratio in (1.05, 1.5, 2.0, 4.0, 16.0):
            for conductance in (1e-3, 0.05, 0.3, 0.6, 1.0):
                params = {"variables": m, "ratio": ratio, "first_conductance": conductance}
                try:
                    form = make_model("benna-fusi", params).linear_form()
                except ValueError:
                    continue
                accepted += 1
                assert chain_eigenvalue_range(form.A, ratio)[0] >= -1e-12
                kernel = memory_kernel(form, np.arange(60.0))
                assert np.all(np.diff(kernel) <= 1e-12) and np.all(kernel > 0), params
    assert accepted > 40


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


def _gated_brute_force(form: LinearForm, stats: InputStatistics, ages: np.ndarray):
    """Signals and variances given the kind by explicit sums over the past events: kernel
    r_j(tau) = c A^tau b_j of input kind j (b, or b_flagged for flag 1), stationary variance
    sum_j P(j) E[xi^2 | j] sum_tau r_j(tau)^2, the tracked event's share swapped for its kind's."""
    lags = np.arange(3000)
    powers = [np.eye(len(form.b))]
    for _ in lags[1:]:
        powers.append(form.A @ powers[-1])
    kernels = [np.array([form.c @ P @ b for P in powers]) for b in (form.b, form.b_flagged)]
    total = sum(v * np.sum(r**2) for v, r in zip(stats.flag_variances, kernels))
    signals, variances = [], []
    for index, flag in enumerate(stats.tracked_flags):
        own = kernels[flag][ages]
        signals.append(stats.gains[index] * own)
        others = sum(v * r[ages] ** 2 for v, r in zip(stats.flag_variances, kernels))
        variances.append(total - others + stats.tracked_variance(index) * own**2)
    return np.array(signals), np.array(variances)


@pytest.mark.parametrize(
    "A",
    [
        [[0.95, 0.1, 0.0], [-0.2, 0.9, 0.05], [0.0, 0.3, 0.5]],
        [[0.9, 1.0, 0.0], [0.0, 0.9, 1.0], [0.0, 0.0, 0.9]],  # defective: matrix powers
    ],
)
def test_flag_gated_synapse_matches_brute_force_sums(A):
    """A linear synapse whose increment depends on the flag (b for ordinary events, b_flagged
    for important ones) in the importance scenario."""
    rng = np.random.default_rng(4)
    form = LinearForm(np.array(A), rng.normal(size=3), rng.normal(size=3), rng.normal(size=3))
    stats = make_scenario("importance", {"fraction": 0.25, "boost": 3.0}).linear_statistics()
    assert stats.flag_variances == pytest.approx((0.75, 0.25 * 9))
    assert sum(stats.flag_variances) == pytest.approx(stats.variance)
    ages = np.arange(0, 200, 7)
    signals, variances = linear_signal_and_variance(form, stats, ages)
    brute_signals, brute_variances = _gated_brute_force(form, stats, ages)
    assert np.allclose(signals, brute_signals, rtol=1e-9, atol=1e-12)
    assert np.allclose(variances, brute_variances, rtol=1e-9)


def test_without_a_flagged_increment_the_flags_change_nothing():
    """b_flagged None: the one-kind statistics to the last bit (every scenario's numbers as
    before); b_flagged equal to b: the same synapse, to rounding."""
    from dataclasses import replace

    rng = np.random.default_rng(5)
    A = rng.normal(size=(3, 3))
    A *= 0.97 / np.max(np.abs(np.linalg.eigvals(A)))
    b, c = rng.normal(size=3), rng.normal(size=3)
    stats = make_scenario("importance").linear_statistics()
    one_kind = replace(stats, flag_variances=None, tracked_flags=None)
    ages = np.arange(300.0)
    plain = linear_signal_and_variance(LinearForm(A, b, c), stats, ages)
    for x, y in zip(plain, linear_signal_and_variance(LinearForm(A, b, c), one_kind, ages)):
        assert np.array_equal(x, y)
    same = linear_signal_and_variance(LinearForm(A, b, c, b.copy()), stats, ages)
    for x, y in zip(plain, same):
        assert np.allclose(x, y, rtol=1e-12, atol=1e-14)
    model = make_model("optimal-linear", {"A": list(A.ravel()), "b": list(b), "c": list(c)})
    assert "b_flagged" not in model.params and model.linear_form().b_flagged is None


def test_flagged_increment_with_correlated_events_is_refused():
    stats = InputStatistics(1.0, 0.5, 0.0, (1.0, 1.0), None, (0.5, 0.5), (1, 0))
    form = LinearForm(np.array([[0.9]]), np.ones(1), np.ones(1), np.full(1, 2.0))
    with pytest.raises(ValueError, match="correlated events"):
        linear_signal_and_variance(form, stats, np.arange(5.0))
    plain = LinearForm(np.array([[0.9]]), np.ones(1), np.ones(1))
    assert linear_signal_and_variance(plain, stats, np.arange(5.0))[0].shape == (2, 5)


@pytest.mark.parametrize("gap", [1e-5, 1e-6, 1e-7])
def test_nearly_coincident_poles_do_not_cancel_the_variance_away(gap):
    """Two poles ``gap`` apart get residues of about 1/gap with opposite signs; the eigenbasis
    sum of the stationary variance lost up to 8e-6 of it to cancellation (gap 1e-7, measured;
    the review of session 22 found such a synapse inflated). Against the sum of the squared
    kernel taken step by step, which no eigenbasis enters."""
    A = np.array([[0.99, 1.0], [0.0, 0.99 + gap]])
    form = LinearForm(A, np.array([0.0, 0.01]), np.array([1.0, 0.0]))
    vector, direct = form.b.copy(), 0.0
    for _ in range(12_000):  # the kernel t 0.99^t is below 1e-48 of its peak by then
        direct += float(form.c @ vector) ** 2
        vector = A @ vector
    assert stationary_linear_variance(form, IDEAL) == pytest.approx(direct, rel=1e-10)
    _, variances = linear_signal_and_variance(form, IDEAL, np.array([0, 10, 1000]))
    assert np.allclose(variances[0], direct, rtol=1e-10)  # the SNR's noise at every age


@pytest.mark.parametrize("rho", [0.3, -0.5, 0.9])
def test_nearly_coincident_poles_under_correlated_events(rho):
    """The same poles 1e-7 apart under AR(1) events: the stationary variance ``sum_{l, l'} r(l)
    r(l') rho^|l - l'|`` from the Lyapunov solver on the state extended by the event, against
    that double sum taken directly; and the extended solver against the eigenbasis where the
    basis is well conditioned."""
    from learnsyn.estimate.exact import _lyapunov_correlated

    A = np.array([[0.99, 1.0], [0.0, 0.99 + 1e-7]])
    form = LinearForm(A, np.array([0.0, 0.01]), np.array([1.0, 0.0]))
    kernel, vector = [], form.b.copy()
    for _ in range(6000):
        kernel.append(float(form.c @ vector))
        vector = A @ vector
    r = np.array(kernel)
    direct = r @ r + 2 * sum(rho**k * (r[:-k] @ r[k:]) for k in range(1, 400))
    stats = InputStatistics(1.0, rho, 0.0, (1.0,))
    assert stationary_linear_variance(form, stats) == pytest.approx(direct, rel=1e-10)
    rng = np.random.default_rng(1)
    B = rng.normal(size=(3, 3))
    B *= 0.9 / np.max(np.abs(np.linalg.eigvals(B)))
    well = LinearForm(B, rng.normal(size=3), rng.normal(size=3))
    noisy = InputStatistics(1.0, rho, 0.1, (1.0,))
    assert stationary_linear_variance(well, noisy) == pytest.approx(
        _lyapunov_correlated(well, 1.0, rho, 0.1), rel=1e-10
    )


def test_a_stable_mode_within_1e_15_of_1_is_evaluated_exactly():
    """Review, session 33: ``method="auto"`` chose the closed form for a stable mode a = 1 -
    3e-16 (spectral radius < 1), which then refused it as "an eigenvalue has modulus 1"
    (1 - a^2 < 1e-15). It takes the Lyapunov path: SNR = sqrt(N) / sqrt(1 / (1 - a^2))."""
    a = 1 - 3e-16
    model = make_model("optimal-linear", {"variables": 1, "A": (a,), "b": (1.0,), "c": (1.0,)})
    result = evaluate(model, make_scenario("ideal"), synapses=1000, horizon=3,
                      convention="large-n")  # fmt: skip
    assert result.method == "exact"
    assert result.snr[0] == pytest.approx(np.sqrt(1000 * (1 - a * a)), rel=1e-6)
