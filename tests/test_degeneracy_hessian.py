"""Tests of the Hessian and gradient-sharing measures against cases with a known answer."""

import json
import math

import numpy as np
import pytest
import torch

from learnsyn.degeneracy.hessian import (
    HessianConfig,
    compute_hessian_spectra,
    eigenvalue_fractions,
    gradient_sharing,
    initial_weights,
    loss_hessian,
    per_example_gradients,
    run_hessian,
    training_loss,
)

torch.set_num_threads(1)


def _random(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("residual", [False, True])
def test_one_layer_hessian_is_the_kronecker_product_of_identity_and_input_moment(residual):
    """L = mean_i,a (W x_i - y_i)_a^2 / m: d2L / dW_ab dW_cd = (2/m) delta_ac S_bd with
    S = X^T X / N, i.e. (2/m) I kron S in row-major order; a skip connection only shifts W."""
    outputs, samples = 5, 40
    inputs, targets = _random(samples, outputs, seed=1), _random(samples, outputs, seed=2)
    weights = _random(1, outputs, outputs, seed=3)
    hessian = loss_hessian(weights, inputs, targets, residual)
    moment = inputs.T @ inputs / samples
    expected = (2 / outputs) * torch.kron(torch.eye(outputs, dtype=torch.float64), moment)
    torch.testing.assert_close(hessian, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_at_a_global_minimum_the_rescaling_symmetry_leaves_exactly_l_minus_1_over_l_flat(depth):
    """A realizable teacher T = W_L ... W_1 gives zero loss; the Hessian is then the
    Gauss-Newton matrix, positive semi-definite with rank width^2 (the end-to-end map), so
    (L - 1) width^2 of its L width^2 eigenvalues are zero (W_{l+1} A^-1, A W_l leave the map
    unchanged) and none is negative."""
    width, samples = 4, 32
    weights = _random(depth, width, width, seed=4) / 2 + torch.eye(width, dtype=torch.float64)
    inputs = _random(samples, width, seed=5)
    product = torch.linalg.multi_dot(list(weights.flip(0)))
    targets = inputs @ product.T
    assert training_loss(weights, inputs, targets, False).item() < 1e-25
    eigenvalues = torch.linalg.eigvalsh(loss_hessian(weights, inputs, targets, False))
    fractions = eigenvalue_fractions(eigenvalues, 1e-9)
    assert fractions["near_zero"] == pytest.approx((depth - 1) / depth)
    assert fractions["negative"] == 0.0


def test_a_deep_net_at_the_origin_saddle_has_negative_eigenvalues():
    """At W = 0 a 2-layer net's Hessian is [[0, B], [B^T, 0]]: eigenvalues +-sigma(B), so as many
    negative as positive. At depth 3 every second derivative vanishes at the origin."""
    width, samples = 4, 32
    inputs = _random(samples, width, seed=6)
    targets = inputs @ _random(width, width, seed=7).T
    zero = torch.zeros(2, width, width, dtype=torch.float64)
    fractions = eigenvalue_fractions(
        torch.linalg.eigvalsh(loss_hessian(zero, inputs, targets, False)), 1e-9
    )
    assert fractions["negative"] == pytest.approx(fractions["positive"])
    assert fractions["negative"] == pytest.approx(0.5)  # B is full rank: width^2 of 2 width^2
    flat = torch.linalg.eigvalsh(
        loss_hessian(torch.zeros(3, width, width, dtype=torch.float64), inputs, targets, False)
    )
    assert eigenvalue_fractions(flat, 1e-9) == {"near_zero": 1.0, "negative": 0.0, "positive": 0.0}


def test_eigenvalue_fractions_of_a_known_spectrum():
    eigenvalues = torch.tensor([-2.0, -1e-9, 0.0, 1e-4, 1.0, 10.0], dtype=torch.float64)
    assert eigenvalue_fractions(eigenvalues, 1e-3) == pytest.approx(
        {"near_zero": 3 / 6, "negative": 1 / 6, "positive": 2 / 6}
    )


def test_per_example_gradients_average_to_the_full_gradient():
    weights = _random(3, 4, 4, seed=8) / 2
    inputs, targets = _random(10, 4, seed=9), _random(10, 4, seed=10)
    for residual in (False, True):
        gradients = per_example_gradients(weights, inputs, targets, residual)
        leaf = weights.clone().requires_grad_(True)
        (full,) = torch.autograd.grad(training_loss(leaf, inputs, targets, residual), leaf)
        torch.testing.assert_close(gradients.mean(dim=0), full.flatten())


def test_gradient_sharing_of_disjoint_and_of_identical_examples():
    """One layer at W = 0 with orthonormal inputs e_i and an orthogonal teacher: example i's
    gradient is -(2/n) T e_i e_i^T, nonzero only in column i, all of equal norm, so the
    gradients share nothing (effective rank = participation ratio = n). Identical examples share
    one gradient (rank 1)."""
    width = 6
    teacher = torch.linalg.qr(_random(width, width, seed=11))[0]
    inputs = torch.eye(width, dtype=torch.float64)
    zero = torch.zeros(1, width, width, dtype=torch.float64)
    sharing = gradient_sharing(per_example_gradients(zero, inputs, inputs @ teacher.T, False))
    assert sharing["effective_rank"] == pytest.approx(width)
    assert sharing["participation_ratio"] == pytest.approx(width)
    same = inputs[:1].repeat(5, 1)
    sharing = gradient_sharing(per_example_gradients(zero, same, same @ teacher.T, False))
    assert sharing["effective_rank"] == pytest.approx(1.0)
    assert sharing["max_rank"] == 5


def test_linear_network_gradients_have_rank_at_most_width_width_plus_one_over_two():
    width, depth = 4, 3
    weights = _random(depth, width, width, seed=12) / 2
    inputs = _random(50, width, seed=13)
    gradients = per_example_gradients(weights, inputs, inputs @ _random(width, width).T, False)
    singular = torch.linalg.svdvals(gradients)
    assert int((singular > 1e-10 * singular.max()).sum()) == width * (width + 1) // 2


def _tiny(**overrides):
    values = dict(
        depth=3,
        width=4,
        inits=("gaussian", "fold1", "fold2", "orthogonal", "orthogonal-x0.8"),
        seeds=2,
        samples=16,
        show_progress=False,
    )
    values.update(overrides)
    return HessianConfig(**values)


def test_folded_inits_are_flatter_and_skip_connections_remove_the_flat_directions():
    """Fold k repeats rows: whole rows of weights are tied, which leaves flat directions at
    initialization; Fold 2 more than Fold 1. With h' = h + W h the flat directions go."""
    config = _tiny(seeds=1)
    runs = compute_hessian_spectra(config)["runs"]
    plain = {init: runs["plain"][init][0]["fractions"]["near_zero"] for init in config.inits}
    residual = {init: runs["residual"][init][0]["fractions"]["near_zero"] for init in config.inits}
    assert plain["fold2"] > plain["fold1"] > plain["gaussian"]
    assert plain["orthogonal"] == 0.0
    assert residual["fold2"] < plain["fold2"] / 2


def test_paired_initial_weights_fold_the_same_draws():
    config = _tiny()
    gaussian, fold2 = initial_weights(config, "gaussian", 1), initial_weights(config, "fold2", 1)
    torch.testing.assert_close(fold2[:, 1], gaussian[:, 0])  # row 1 repeats row 0 (n/4 = 1)
    torch.testing.assert_close(
        initial_weights(config, "orthogonal-x0.8", 1),
        0.8 * initial_weights(config, "orthogonal", 1),
    )


def test_run_writes_figures_json_tensorboard_and_config(tmp_path):
    config = _tiny(inits=("gaussian", "fold1"), seed=3)
    summary = run_hessian(config, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["figures"] == [
        "hessian_fractions.png",
        "hessian_tolerance_curves.png",
        "hessian_spectra.png",
    ]
    for figure in results["figures"]:
        assert (tmp_path / figure).read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "config.json").read_text())["config"]["seed"] == 3
    entry = results["by_architecture"]["residual"]["fold1"]
    assert len(entry["fractions"]["near_zero"]["per_seed"]) == 2
    total = sum(entry["fractions"][key]["mean"] for key in ("near_zero", "negative", "positive"))
    assert total == pytest.approx(1.0)
    assert results["parameters"] == 3 * 16 and summary["zero_tolerance"] == 1e-6
    assert math.isfinite(entry["gradient_sharing"]["effective_rank"]["mean"])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert np.all(np.diff(results["tolerance_curve"]) > 0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depth": 0}, "depth must be an integer >= 1, got 0"),
        ({"inits": ("fold3",)}, r"fold k=3 needs a width divisible by 2\^3=8"),
        ({"architectures": ("dense",)}, "architectures must be among plain, residual"),
        ({"zero_tolerance": 0.0}, r"zero_tolerance must be in \(0, 1\), got 0.0"),
        ({"samples": 0}, "samples must be an integer >= 1, got 0"),
    ],
)
def test_bad_config_gives_one_line_error(overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        _tiny(**overrides).validate()
    assert "\n" not in str(error.value)


def test_the_command_runs_the_hessian_and_refuses_one_that_cannot_fit(tmp_path, capsys):
    from learnsyn.cli import main

    out = tmp_path / "hessian"
    arguments = ["degeneracy", "hessian", "--quick", "--depth", "3", "--width", "4",
                 "--seeds", "1", "--samples", "16", "--inits", "gaussian", "fold2",
                 "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "plain    Fold 2 (rows)" in printed and "residual" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["parameters"] == 48 and set(results["by_architecture"]["plain"]) == {
        "gaussian",
        "fold2",
    }
    # the same --out with other settings needs --overwrite, as deep-linear's and spectra's
    assert main([*arguments, "--seeds", "2"]) == 2
    assert "other settings (seeds: 1 -> 2)" in capsys.readouterr().err
    # a Hessian that cannot fit: one line before any work (P = 40 x 256^2: 150 TiB)
    assert main(["degeneracy", "hessian", "--depth", "40", "--width", "256",
                 "--out", str(tmp_path / "big")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("learnsyn: error: the Hessian of 2621440 weights") and "TiB" in err
    assert not (tmp_path / "big" / "results.json").exists()
    with pytest.raises(ValueError, match="a smaller --depth or --width"):
        _tiny(depth=40, width=256).validate()


def test_a_network_whose_hessian_overflows_is_recorded_as_nan_not_a_crash(tmp_path):
    """Review, session 36: eigvalsh on an inf/NaN Hessian raised and lost every other
    network's results; duplicate architectures counted each seed twice."""
    from learnsyn.degeneracy.hessian import HessianConfig, run_hessian

    inits = ("gaussian-x1e6", "orthogonal")
    config = HessianConfig(
        depth=60, width=2, seeds=1, samples=4, inits=inits, architectures=("plain",)
    )
    config.show_progress = False
    result = run_hessian(config, tmp_path / "out")
    text = (tmp_path / "out" / "results.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in results.json"))
    runs = compute_hessian_spectra(config)["runs"]["plain"]
    assert math.isnan(runs["gaussian-x1e6"][0]["fractions"]["near_zero"])
    assert runs["orthogonal"][0]["fractions"]["near_zero"] >= 0
    assert result is not None
    with pytest.raises(ValueError, match="architectures must be distinct"):
        HessianConfig(depth=2, width=4, architectures=("plain", "plain")).validate()
