"""Tests for learnsyn.degeneracy.deep_linear: batching, exact losses, gradient norms, bad input."""

import dataclasses
import json
import math

import pytest
import torch

from learnsyn.degeneracy.deep_linear import (
    DeepLinearConfig,
    activation_and_weight_gradient_norms,
    make_data,
    make_initial_weights,
    measurement_epochs,
    mse_from_product,
    partial_products,
    run_deep_linear,
    suffix_products,
    train_deep_linear,
)
from learnsyn.initialization import fold_matrix

torch.set_num_threads(1)


def _tiny_config(**overrides):
    values = dict(
        depth=4,
        width=8,
        seeds=2,
        epochs=3,
        train_samples=32,
        batch_size=32,
        measure_points=3,
        gradient_epochs=(0, 1),
        show_progress=False,
    )
    values.update(overrides)
    return DeepLinearConfig(**values)


def test_batched_training_matches_training_each_network_alone():
    """Summing per-network losses gives each network its own gradient, and Adam is elementwise,
    so the batch of networks trains exactly like separate runs (full-batch: order-free)."""
    config = _tiny_config(conditions=("fold0", "orthogonal"), epochs=5)
    batched = train_deep_linear(config)
    data = make_data(config)
    initial = make_initial_weights(config)
    for network in range(len(config.conditions) * config.seeds):
        seed_index = network % config.seeds
        weights = [torch.nn.Parameter(layer[network].clone()) for layer in initial]
        optimizer = torch.optim.Adam(weights, lr=config.learning_rate)
        inputs, targets = data.inputs[seed_index], data.targets[seed_index]
        for _ in range(config.epochs):
            hidden = inputs
            for weight in weights:
                hidden = hidden @ weight.T
            loss = ((hidden - targets) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            hidden = inputs
            for weight in weights:
                hidden = hidden @ weight.T
            alone = ((hidden - targets) ** 2).mean().item()
        assert batched["loss"][network, -1].item() == pytest.approx(alone, rel=1e-4)


def test_loss_from_product_equals_loss_from_forward_pass():
    config = _tiny_config()
    data = make_data(config)
    weights = [layer[: config.seeds] for layer in make_initial_weights(config)]
    hidden = data.inputs
    for weight in weights:
        hidden = hidden @ weight.transpose(1, 2)
    direct = ((hidden - data.targets) ** 2).mean(dim=(1, 2))
    product = partial_products(weights)[-1]
    torch.testing.assert_close(
        mse_from_product(product, data.teachers, data.input_covariance), direct, rtol=1e-4, atol=0
    )


def test_suffix_products_are_layer_to_output_jacobians():
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(1, 5, 5, generator=generator) for _ in range(3)]
    suffixes = suffix_products(weights)
    full = partial_products(weights)[-1]
    prefixes = partial_products(weights)
    for layer in range(3):
        torch.testing.assert_close(suffixes[layer] @ prefixes[layer], full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(suffixes[-1], torch.eye(5).expand(1, 5, 5))


def test_scaled_orthogonal_gradient_norms_decay_as_gain_to_the_distance_from_the_output():
    config = _tiny_config(depth=12, width=16, conditions=("orthogonal-x0.8",), seeds=1)
    data = make_data(config)
    activation_norms, _ = activation_and_weight_gradient_norms(
        make_initial_weights(config), data.inputs, data.targets
    )
    ratios = activation_norms[0, :-1] / activation_norms[0, -1]
    distances = range(config.depth - 1, 0, -1)  # layers 1..L-1 are L-1..1 layers from the output
    expected = torch.tensor([0.8**distance for distance in distances])
    torch.testing.assert_close(ratios, expected, rtol=1e-4, atol=0)


def test_initial_weights_are_paired_across_conditions():
    config = _tiny_config(conditions=("fold0", "fold1", "orthogonal", "orthogonal-x0.8"))
    weights = make_initial_weights(config)
    seeds = config.seeds
    for layer in weights:
        for seed_index in range(seeds):
            fold0, fold1 = layer[seed_index], layer[seeds + seed_index]
            orthogonal, scaled = layer[2 * seeds + seed_index], layer[3 * seeds + seed_index]
            torch.testing.assert_close(fold1, fold_matrix(fold0, 1, "rows"))
            torch.testing.assert_close(scaled, 0.8 * orthogonal)


def test_train_returns_measures_for_every_network_and_epoch():
    config = _tiny_config(conditions=("fold0", "fold1"))
    raw = train_deep_linear(config)
    networks = 2 * config.seeds
    assert raw["loss"].shape == (networks, config.epochs + 1)
    assert torch.isfinite(raw["loss"]).all()
    points = len(raw["measure_epochs"])
    product = raw["measures"]["weight_product"]["effective_rank"]
    assert product.shape == (networks, points)
    covariance = raw["measures"]["activation_covariance"]["participation_ratio"]
    assert covariance.shape == (networks, points, config.depth)
    schedule = config.gradient_schedule
    assert raw["gradient_epochs"] == schedule
    assert raw["activation_gradient_norms"].shape == (networks, len(schedule), config.depth)
    # Fold 1 (rows) duplicates units: the activation covariance has rank <= width / 2.
    fold1_rank = raw["measures"]["activation_covariance"]["effective_rank"][config.seeds :, 0]
    assert (fold1_rank <= config.width / 2 + 1e-6).all()


def test_sgd_divergence_is_contained_in_its_own_network():
    """At lr 50 the Fold 0 and orthogonal networks blow up, while orthogonal x 0.1 (gradients
    shrunk by 0.1^3) does not: it must train exactly as it does alone, with finite losses."""
    conditions = ("fold0", "orthogonal", "orthogonal-x0.1")
    config = _tiny_config(conditions=conditions, optimizer="sgd", learning_rate=50.0)
    raw = train_deep_linear(config)
    seeds = config.seeds
    assert not torch.isfinite(raw["loss"][: 2 * seeds, -1]).any()  # every big network diverged
    contained = raw["loss"][2 * seeds :]
    assert torch.isfinite(contained).all()
    assert torch.isfinite(raw["activation_gradient_norms"][2 * seeds :]).all()
    alone = train_deep_linear(dataclasses.replace(config, conditions=("orthogonal-x0.1",)))
    torch.testing.assert_close(contained, alone["loss"], rtol=1e-5, atol=0)


def test_gradient_schedule_is_log_spaced_through_training_with_window_and_early_epochs():
    config = _tiny_config(epochs=500, gradient_epochs=(0, 1, 5), gradient_points=10)
    schedule = config.gradient_schedule
    assert {0, 1, 5, 250, 500} <= set(schedule)
    assert schedule == sorted(set(schedule))
    late = [epoch for epoch in schedule if epoch > 5]
    assert len(late) >= 5 and max(b / a for a, b in zip(late, late[1:])) < 3
    # the last epoch too: the figure's per-layer profile reads it (review, session 34:
    # "KeyError: 'epoch_3'" after training with gradient_points=0)
    assert _tiny_config(epochs=3, gradient_points=0).gradient_schedule == [0, 1, 3]
    # the claims read epoch 0: it is there when no option names it (review, session 30: "0 is
    # not in list" after training)
    bare = _tiny_config(epochs=5, gradient_epochs=(3,), gradient_points=0, judge_window=(1, 5))
    assert bare.gradient_schedule == [0, 1, 3, 5]


def test_measurement_epochs_include_ends_and_extras():
    epochs = measurement_epochs(100, 5, (3,))
    assert epochs[0] == 0 and epochs[-1] == 100 and 3 in epochs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depth": 0}, "depth must be an integer >= 1, got 0"),
        ({"width": 1}, "width must be an integer >= 2, got 1"),
        ({"conditions": ("glorot",)}, "unknown init 'glorot'"),
        ({"width": 12, "conditions": ("fold3",)}, r"fold k=3 needs a width divisible by 2\^3=8"),
        ({"fold_axis": "depth"}, "unknown fold axis 'depth'"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"learning_rate": -1.0}, "learning_rate must be > 0, got -1.0"),
        ({"batch_size": 64}, r"batch_size must be <= train_samples \(32\), got 64"),
        ({"gradient_epochs": (9,)}, "gradient epoch 9 is outside the run; allowed: 0..3 "),
        ({"gradient_epochs": (0, 1.5)}, "gradient epoch 1.5 is not an integer"),  # session 36
        ({"seed": -1}, r"seed = -1 is not allowed: need an integer in \[0, 4611686018427387904\]"),
        ({"conditions": ("fold0", "gaussian")}, "conditions must be distinct"),
        ({"seeds": 0}, "seeds must be > 0, got 0"),
        ({"gradient_points": -1}, "gradient_points must be an integer >= 0, got -1"),
        ({"judge_window": (5, 5)}, r"judge_window must be two epochs \(start, end\)"),
    ],
)
def test_bad_config_gives_one_line_error_before_any_work(overrides, message):
    config = _tiny_config(**overrides)
    with pytest.raises(ValueError, match=message) as error:
        train_deep_linear(config)
    assert "\n" not in str(error.value)


def test_quick_config_is_valid_and_small():
    config = DeepLinearConfig.quick()
    config.validate()
    assert config.depth * config.width * config.epochs < DeepLinearConfig().depth * 64 * 100
    assert math.isclose(config.learning_rate, DeepLinearConfig().learning_rate)


def test_a_run_whose_options_name_no_epoch_0_still_reports(tmp_path):
    """Review, session 30: ``--gradient-epochs 3 --gradient-points 0`` trained, then failed on
    the claims' and the figure's epoch 0, leaving only config.json."""
    from learnsyn.cli.degeneracy import main

    out = tmp_path / "dl"
    args = ["deep-linear", "--quick", "--no-progress", "--out", str(out), "--gradient-epochs",
            "3", "--gradient-points", "0", "--epochs", "5", "--judge-window", "1", "5",
            "--seeds", "2"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["claims"] and all(c["verdict"] for c in results["claims"])


def test_a_run_without_log_spaced_gradient_points_writes_its_outputs(tmp_path):
    """``gradient_points=0`` is allowed; the per-layer figure reads the last epoch's gradients,
    which the schedule now always holds (it raised KeyError after training)."""
    config = _tiny_config(gradient_points=0, depth=3, width=4, epochs=3, train_samples=64)
    run_deep_linear(config, tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["claims"]
