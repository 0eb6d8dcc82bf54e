"""Oracle tests for learnsyn.degeneracy.spectra: products and Jacobians of deep networks."""

import copy
import math

import numpy as np
import pytest
import torch

from learnsyn.degeneracy.spectra import (
    CriticalNetwork,
    SpectraConfig,
    compute_spectra,
    hard_tanh_critical_parameters,
    jacobian_spectra,
    layer_normalized_variance,
    product_spectra,
)
from learnsyn.degeneracy.spectra_report import check_spectra_facts, summarize_spectra

torch.set_num_threads(1)


def _statistic(entry, name):
    return np.array([trial[name] for trial in entry["statistics"]])


@pytest.mark.parametrize("gain", [1.0, 0.8, 1.1])
def test_orthogonal_products_have_every_singular_value_equal_to_gain_to_the_L(gain):
    name = "orthogonal" if gain == 1.0 else f"orthogonal-x{gain}"
    results = product_spectra(name, width=32, depths=[1, 10, 30], trials=2, seed=0)
    for depth, entry in results.items():
        np.testing.assert_allclose(entry["singular_values"], gain**depth, rtol=1e-10)


def test_gaussian_products_keep_mean_squared_singular_value_near_one():
    results = product_spectra("gaussian", width=128, depths=[1, 4, 16], trials=8, seed=1)
    for entry in results.values():
        means = _statistic(entry, "mean_squared_singular_value")
        standard_error = means.std(ddof=1) / math.sqrt(means.size)
        assert abs(means.mean() - 1.0) < max(0.08, 3 * standard_error)


def test_variance_of_squared_singular_values_grows_about_linearly_in_L_for_large_n():
    depths = [1, 2, 4, 8]
    results = product_spectra("gaussian", width=256, depths=depths, trials=5, seed=2)
    ratios = [
        _statistic(results[depth], "variance_squared_singular_value").mean() / depth
        for depth in depths
    ]
    assert all(0.85 < ratio < 1.2 for ratio in ratios), ratios


def test_gaussian_products_become_degenerate_with_depth_but_orthogonal_do_not():
    gaussian = product_spectra("gaussian", width=64, depths=[1, 30], trials=2, seed=3)
    orthogonal = product_spectra("orthogonal", width=64, depths=[1, 30], trials=2, seed=3)
    assert _statistic(gaussian[30], "effective_rank").mean() < 0.3 * 64
    assert _statistic(gaussian[30], "fraction_below_threshold").mean() > 0.5
    assert _statistic(orthogonal[30], "effective_rank").mean() == pytest.approx(64.0)


def test_fold1_products_have_half_their_singular_values_zero():
    results = product_spectra("fold1", width=32, depths=[1, 5], trials=2, seed=4)
    for entry in results.values():
        tiny = entry["singular_values"] < 1e-8 * entry["singular_values"].max(axis=1, keepdims=True)
        assert tiny.sum(axis=1).tolist() == [16, 16]


def test_orthogonal_linear_network_has_zero_variance_jacobian_spectrum():
    network = CriticalNetwork("linear", "orthogonal")
    results = jacobian_spectra(network, width=64, depths=[1, 8, 32], trials=2, seed=0)
    for entry in results.values():
        np.testing.assert_allclose(entry["singular_values"], 1.0, rtol=1e-10)
        assert _statistic(entry, "variance_squared_singular_value").max() < 1e-20


@pytest.mark.parametrize("gain", [0.5, 1.0, math.sqrt(2), 2.0, 3.0])
@pytest.mark.parametrize("bias_std", [0.0, 0.3])
def test_relu_cannot_reach_a_zero_variance_spectrum_at_any_gain_or_bias(gain, bias_std):
    """About half the ReLU units are off, so J J^T has about half its eigenvalues at 0: the
    variance of s^2 relative to its squared mean stays near (1 - p) / p ~ 1 or grows."""
    generator = torch.Generator().manual_seed(0)
    width = 64
    state = torch.randn(width, generator=generator, dtype=torch.float64)
    jacobian = torch.eye(width, dtype=torch.float64)
    for _ in range(4):
        q, r = torch.linalg.qr(torch.randn(width, width, generator=generator, dtype=torch.float64))
        weight = q * torch.sign(torch.diagonal(r)) * gain
        bias = bias_std * torch.randn(width, generator=generator, dtype=torch.float64)
        pre_activation = weight @ state + bias
        jacobian = (pre_activation > 0).double().unsqueeze(1) * (weight @ jacobian)
        state = pre_activation.clamp_min(0)
    squared = torch.linalg.svdvals(jacobian) ** 2
    assert (squared.var(unbiased=False) / squared.mean() ** 2).item() > 0.5


def test_critical_relu_and_small_q_hard_tanh_with_orthogonal_weights_differ_in_width():
    depths = [16]
    relu = jacobian_spectra(CriticalNetwork("relu", "orthogonal"), 64, depths, trials=3, seed=0)
    hard_tanh = jacobian_spectra(
        CriticalNetwork("hard_tanh", "orthogonal", 1 / 64), 64, depths, trials=3, seed=0
    )
    relu_variance = _statistic(relu[16], "normalized_variance_squared_singular_value").mean()
    hard_tanh_variance = _statistic(hard_tanh[16], "variance_squared_singular_value").mean()
    assert relu_variance > 2.0
    assert hard_tanh_variance < 1e-3


@pytest.mark.parametrize("q_star", [1 / 64, 1 / 4, 1.0])
def test_hard_tanh_critical_parameters_give_chi_one_and_fixed_point_q_star(q_star):
    sigma_w, sigma_b = hard_tanh_critical_parameters(q_star)
    generator = torch.Generator().manual_seed(0)
    pre_activation = torch.randn(2_000_000, generator=generator, dtype=torch.float64)
    pre_activation = pre_activation * math.sqrt(q_star)
    chi = sigma_w**2 * (pre_activation.abs() < 1).double().mean().item()
    next_q = sigma_w**2 * (pre_activation.clamp(-1, 1) ** 2).mean().item() + sigma_b**2
    assert chi == pytest.approx(1.0, abs=3e-3)
    assert next_q == pytest.approx(q_star, rel=3e-3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"product_depths": (0, 10)}, "depth must be an integer >= 1, got 0"),
        ({"jacobian_width": 1}, "width must be an integer >= 2, got 1"),
        ({"product_inits": ("kaiming",)}, "unknown init 'kaiming'"),
        ({"product_inits": ("fold3",), "product_width": 20}, "fold k=3 needs a width divisible"),
        ({"nonlinearities": ("tanh",)}, "unknown nonlinearity 'tanh'"),
        ({"hard_tanh_q_stars": (0.0,)}, r"q\* must be in \(0, 1\], got 0.0"),
    ],
)
def test_bad_spectra_config_gives_one_line_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        SpectraConfig.quick(**overrides).validate()


@pytest.fixture(scope="module")
def quick_summary():
    config = SpectraConfig.quick(seed=0, show_progress=False)
    return config, summarize_spectra(config, compute_spectra(config))


def test_every_expected_fact_holds_at_a_fixed_seed(quick_summary):
    config, summary = quick_summary
    checks = summary["checks"]
    networks = [network.name for network in config.jacobian_networks()]
    assert [check["fact"].split(":")[0] for check in checks] == [
        "gaussian products",
        "gaussian products",
        "orthogonal products",
        *networks,  # Pennington et al.'s prediction of the normalized variance
        *networks,  # criticality
    ]
    assert [check["holds"] for check in checks] == [True] * len(checks)
    pennington = [check for check in checks if "Pennington" in check["fact"]]
    assert all(check["checked_depths"] for check in pennington)


def _facts_after(summary, config, edit):
    changed = copy.deepcopy(summary)
    edit(changed)
    return {check["fact"]: check["holds"] for check in check_spectra_facts(config, changed)}


def test_a_check_that_holds_only_through_its_noise_says_so(quick_summary):
    """Review, session 37: the criticality check allows max(0.25, 3 s.e.), so a mean s^2 of
    1.8 +- 0.3 "held"; it still holds, marked not resolved (the fixed tolerance did not
    decide it), and a precise estimate is resolved."""
    config, summary = quick_summary
    changed = copy.deepcopy(summary)
    deepest = str(max(summary["jacobians"]["depths"]))
    network = next(iter(changed["jacobians"]["by_network"].values()))
    network["by_depth"][deepest]["mean_squared_singular_value"].update(mean=1.8, standard_error=0.3)
    critical = [c for c in check_spectra_facts(config, changed) if "critical" in c["fact"]]
    noisy = critical[0]
    assert noisy["holds"] and not noisy["resolved"]
    # an orthogonal linear network's mean s^2 is 1 to 1e-16: the fixed tolerance decides it
    exact = [c for c in critical if c["fact"].startswith("linear-orthogonal")]
    assert exact and exact[0]["resolved"] and exact[0]["standard_error"] < 1e-12


def test_the_fact_checks_can_fail(quick_summary):
    """Each kind of check turns False when its statistic is off by a factor of two."""
    config, summary = quick_summary
    products = summary["products"]["by_init"]
    depth = str(summary["products"]["depths"][1])

    def double(entry, depth, name):
        entry["by_depth"][depth][name]["mean"] = 2 * entry["by_depth"][depth][name]["mean"]

    facts = _facts_after(
        summary,
        config,
        lambda s: double(
            s["products"]["by_init"]["gaussian"], depth, "variance_squared_singular_value"
        ),
    )
    assert [fact for fact, holds in facts.items() if not holds] == [
        "gaussian products: var(s^2) is about L (Fuss-Catalan, large n)"
    ]
    facts = _facts_after(
        summary,
        config,
        lambda s: double(
            s["products"]["by_init"]["gaussian"], depth, "mean_squared_singular_value"
        ),
    )
    assert sum(not holds for holds in facts.values()) == 1
    largest = str(max(summary["products"]["depths"]))

    def spread_orthogonal(s):
        s["products"]["by_init"]["orthogonal"]["by_depth"][largest][
            "variance_squared_singular_value"
        ]["mean"] = 1e-3

    facts = _facts_after(summary, config, spread_orthogonal)
    assert not facts["orthogonal products: every singular value equals g^L"]
    relu = "relu-orthogonal"
    facts = _facts_after(
        summary,
        config,
        lambda s: double(
            s["jacobians"]["by_network"][relu], "4", "normalized_variance_squared_singular_value"
        ),
    )
    failed = [fact for fact, holds in facts.items() if not holds]
    assert len(failed) == 1 and failed[0].startswith(f"{relu}: var(s^2)/mean(s^2)^2 matches")
    assert products["orthogonal"]["by_depth"][largest]  # the original summary is untouched


def test_layer_normalized_variance_is_pennington_per_layer_term():
    # Orthogonal: (1 - p) / p; Gaussian: 1 / p (Marchenko-Pastur adds 1); linear units: p = 1.
    assert layer_normalized_variance("orthogonal", 0.5) == pytest.approx(1.0)
    assert layer_normalized_variance("orthogonal", 1.0) == 0.0
    assert layer_normalized_variance("gaussian", 0.5) == pytest.approx(2.0)
    assert layer_normalized_variance("gaussian", 1.0) == pytest.approx(1.0)
    assert layer_normalized_variance("orthogonal", 0.8) == pytest.approx(0.25)


def test_jacobian_normalized_variance_follows_pennington_for_relu_and_hard_tanh():
    """Width 128, depth 8: orthogonal ReLU about L (1-p)/p = L, Gaussian ReLU about L/p = 2L."""
    for nonlinearity, q_star in (("relu", 1.0), ("hard_tanh", 0.25)):
        for kind in ("orthogonal", "gaussian"):
            network = CriticalNetwork(nonlinearity, kind, q_star)
            entry = jacobian_spectra(network, 128, [8], trials=3, seed=0)[8]
            measured = _statistic(entry, "normalized_variance_squared_singular_value").mean()
            predicted = np.mean(entry["predicted_normalized_variance"])
            assert measured == pytest.approx(predicted, rel=0.2), (nonlinearity, kind)
            if nonlinearity == "relu":
                assert predicted == pytest.approx(8 if kind == "orthogonal" else 16, rel=0.15)


def test_gaussian_product_checks_hold_for_a_gain_other_than_one():
    """A product of L matrices N(0, g^2 / n) has mean s^2 = g^(2L) and var(s^2) about L g^(4L):
    the facts are judged relative to those (they read False at g = 0.9 when held to g^2 and L)."""
    from learnsyn.degeneracy.spectra_config import SpectraConfig

    config = SpectraConfig.quick(
        product_inits=("gaussian-x0.9",),
        nonlinearities=("linear",),
        weight_kinds=("orthogonal",),
        show_progress=False,
        product_width=64,
        product_depths=(1, 4),
        variance_curve_points=3,
        product_trials=20,
        jacobian_width=16,
        jacobian_depths=(1, 2),
        jacobian_trials=2,
    )
    checks = summarize_spectra(config, compute_spectra(config))["checks"]
    facts = {check["fact"]: check for check in checks if "gaussian-x0.9" in check["fact"]}
    assert len(facts) == 2
    assert all(check["holds"] for check in facts.values()), facts
    variance = next(c for c in facts.values() if "variance_over_depth" in c)
    assert all(0.8 < ratio < 1.25 for ratio in variance["variance_over_depth"].values())


def test_pennington_is_not_checked_on_one_orthogonal_layer_alone():
    """Review, session 36: at depth 1 with orthogonal weights J J^T = sigma^2 D^2, so the
    measured var/mean^2 equals (1-p)/p whatever the data; with deeper depths skipped it made
    `holds` true with no evidence. Depth 1 of orthogonal weights is no longer a checked depth."""
    from learnsyn.degeneracy.spectra_report import check_pennington_prediction

    def entry(kind):
        def depth(measured, predicted):
            return {
                "normalized_variance_squared_singular_value": {
                    "mean": measured,
                    "standard_error": 0.01,
                },
                "predicted_normalized_variance": {"mean": predicted, "standard_error": 0.0},
            }

        # depth 16's prediction (18.3) is above n / 4 = 4: reported, not checked
        return {
            "weight_kind": kind,
            "by_depth": {"1": depth(1.066, 1.066), "16": depth(11.77, 18.3)},
        }

    jacobians = {"width": 16, "depths": [1, 16]}
    orthogonal = check_pennington_prediction("relu orthogonal", entry("orthogonal"), jacobians)
    assert orthogonal["checked_depths"] == [] and orthogonal["holds"] is False
    gaussian = check_pennington_prediction("relu gaussian", entry("gaussian"), jacobians)
    assert gaussian["checked_depths"] == [1] and gaussian["holds"] is True


@pytest.mark.parametrize("init", ["gaussian-x0.1", "gaussian-x10", "orthogonal-x10"])
def test_product_facts_at_a_depth_whose_gain_power_leaves_the_float_range(init):
    """Review, session 36: g^(2L) and g^(4L) as Python floats raised ZeroDivisionError or
    OverflowError after the whole computation (g = 0.1 or 10 at L = 100-200)."""
    from learnsyn.degeneracy.spectra_config import SpectraConfig

    config = SpectraConfig.quick(
        product_inits=(init,),
        nonlinearities=("linear",),
        weight_kinds=("orthogonal",),
        show_progress=False,
        product_width=8,
        product_depths=(1, 200),
        variance_curve_points=2,
        product_trials=2,
        jacobian_width=8,
        jacobian_depths=(1,),
        jacobian_trials=1,
    )
    checks = summarize_spectra(config, compute_spectra(config))["checks"]
    assert any(init in check["fact"] for check in checks)
