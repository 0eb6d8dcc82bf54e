"""Metrics of SNR curves on hand-made examples."""

import math

import numpy as np
import pytest
import torch

from learnsyn.estimate.snr import compute_metrics, smooth_objective, snr_from_moments


def test_metrics_of_a_simple_curve():
    ages = np.arange(5)
    snr = np.array([5.0, 3.0, 2.0, 0.5, 1.0])
    m = compute_metrics(ages, snr, threshold=1.0)
    assert m["area"] == pytest.approx(4 + 2 + 1)
    assert m["lifetime"] == 4.0  # largest age with SNR >= threshold
    assert m["initial_snr"] == 5.0
    assert m["log_area"] == pytest.approx(4 / 1 + 2 / 2 + 1 / 3)


def test_threshold_zero_gives_the_plain_area_and_no_age_gives_minus_one():
    snr = np.array([0.5, 0.25])
    assert compute_metrics(np.arange(2), snr, threshold=0.0)["area"] == pytest.approx(0.75)
    assert compute_metrics(np.arange(2), snr, threshold=1.0)["lifetime"] == -1.0


def test_sparse_ages_count_the_steps_they_stand_for():
    ages = np.array([0, 10, 20])
    m = compute_metrics(ages, np.array([3.0, 2.0, 1.5]), threshold=1.0)
    assert m["area"] == pytest.approx(2 * 10 + 1 * 10 + 0.5 * 1)


def test_conventions_differ_by_the_signal_in_the_noise():
    large = snr_from_moments(np.array([0.5]), 1.0, 100, "large-n")
    exact = snr_from_moments(np.array([0.5]), 1.0, 100, "exact")
    assert large[0] == pytest.approx(5.0) and exact[0] == pytest.approx(10 * 0.5 / np.sqrt(0.75))
    with pytest.raises(ValueError, match="convention"):
        snr_from_moments(np.array([0.5]), 1.0, 100, "big")


def test_smooth_objective_tends_to_the_metric_and_has_gradient_below_threshold():
    ages = torch.arange(4.0)
    snr = torch.tensor([3.0, 2.0, 0.5, 0.2], requires_grad=True)
    value = smooth_objective(snr, ages, 1.0, "area", temperature=1e-3)
    assert float(value.detach()) == pytest.approx(3.0, abs=1e-2)
    low = torch.tensor([0.5, 0.2], requires_grad=True)
    smooth_objective(low, torch.arange(2.0), 1.0, "area", temperature=0.5).backward()
    assert torch.all(low.grad > 0)


def test_the_crossing_age_interpolates_where_the_lifetime_steps():
    from learnsyn.estimate.snr import crossing_age

    ages = np.arange(5)
    assert crossing_age(ages, [3.0, 2.0, 1.5, 0.5, 0.2]) == pytest.approx(2.5)  # lifetime 2
    assert crossing_age(ages, [3.0, 2.0, 1.0, 0.5, 0.2]) == 2.0  # exactly at threshold
    assert crossing_age(ages, [3.0, 2.0, 1.5, 1.2, 1.1]) == 4.0  # censored: the lifetime
    assert crossing_age(ages, [0.5, 0.2, 0.1, 0.0, 0.0]) == -1.0  # never above
    assert crossing_age([0, 10, 100], [2.0, 1.5, 0.5], 1.0) == pytest.approx(55.0)


def test_a_paired_ratio_with_a_zero_side_does_not_raise():
    """A failed run's area of 0 (or a weak baseline's) over a Monte Carlo reference: the ratio
    is 0 with the jackknife's error; a zero denominator gives inf, as before session 24."""
    from learnsyn.estimate.ratio import paired_ratio

    ratio = paired_ratio(0.0, 10.0, [0.0] * 4, [10.0, 10.1, 9.9, 10.0])
    assert ratio.value == 0.0 and ratio.stderr == 0.0 and ratio.paired
    assert paired_ratio(5.0, 0.0, [5.0] * 4, [0.0] * 4).value == math.inf
    lifetimes = paired_ratio(0.0, 10.0, [0.0] * 4, [10.0] * 4, rounding=(0.5, 0.5))
    assert lifetimes.stderr == pytest.approx(0.05)
    assert paired_ratio(5.0, 0.0, [5.0] * 4, [0.0] * 4, rounding=(0.5, 0.5)).value == math.inf


def test_an_unpaired_ratio_with_a_zero_numerator_has_the_numerators_error():
    """Review, session 36: on the unpaired path (group counts differ, or no leave-one-out
    values) a numerator of 0 read an error of NaN, where 1e-300 read 0.05: no verdict could
    be drawn on a failed run's area of 0 against a baseline."""
    from learnsyn.estimate.ratio import paired_ratio

    zero = paired_ratio(0.0, 100.0, None, None, 5.0, 1.0)
    assert not zero.paired and zero.value == 0.0 and zero.stderr == pytest.approx(0.05)
    unequal = paired_ratio(0.0, 100.0, [0.0] * 8, [100.0] * 4, 5.0, 1.0)
    assert unequal.stderr == pytest.approx(0.05)
    # the relative form it replaces, where both sides are non-zero
    both = paired_ratio(50.0, 100.0, None, None, 5.0, 2.0)
    assert both.stderr == pytest.approx(0.5 * math.hypot(5.0 / 50.0, 2.0 / 100.0))
    assert math.isnan(paired_ratio(5.0, 0.0, None, None, 1.0, 1.0).stderr)


def test_a_small_variance_is_not_floored_and_the_bounded_scenario_looks_the_same_at_any_scale():
    """Review, session 37: the torch SNR floored the noise at 1e-30, so a synapse whose weight
    variance is smaller read a wrong SNR (bounded, range 1e-15: 3.08 for 18.0, exact and Monte
    Carlo alike); only a variance of 0 is floored now (the dtype's smallest normal number).
    Ranges and increments float32 cannot square are refused."""
    from learnsyn.evaluate import evaluate
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario

    signal = torch.tensor([1e-17], dtype=torch.float64)
    snr = snr_from_moments(signal, torch.tensor([4e-34], dtype=torch.float64), 100, "large-n")
    assert float(snr) == pytest.approx(10 * 1e-17 / 2e-17)
    areas = []
    for bound in (1.0, 1e-12):
        scenario = make_scenario("bounded", {"bound": bound})
        model = make_model("exponential", {"decay": 0.9, "amplitude": 0.2 * bound})
        kw = dict(synapses=100, horizon=30, convention="large-n")
        exact = evaluate(model, scenario, **kw).metrics["area"]
        mc = evaluate(model, scenario, method="monte-carlo", batch=1024, seed=0, **kw)
        areas.append((exact, mc.metrics["area"]))
    assert areas[1] == pytest.approx(areas[0], rel=1e-6)
    with pytest.raises(ValueError, match=r"bound=1e-15 is out of range"):
        make_scenario("bounded", {"bound": 1e-15})
    with pytest.raises(ValueError, match=r"amplitude=1e-20 is out of range"):
        make_model("exponential", {"amplitude": 1e-20})
