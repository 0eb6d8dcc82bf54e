"""Tests for learnsyn.initialization: Fold k, Gaussian, orthogonal x g, bad names."""

import math

import pytest
import torch

from learnsyn.initialization import (
    InitSpec,
    apply_initialization_,
    fold_matrix,
    gaussian_matrix,
    initialize_square_matrix,
    orthogonal_matrix,
    parse_init_spec,
    seeded_generator,
)

torch.set_num_threads(1)


def test_fold1_rows_has_rank_half_and_copies_first_half_of_rows():
    weight = gaussian_matrix(64, seeded_generator(1))
    folded = fold_matrix(weight, 1, "rows")
    assert torch.equal(folded[32:], weight[:32])
    assert torch.equal(folded[:32], weight[:32])
    assert torch.linalg.matrix_rank(folded.double()).item() == 32


def test_fold1_columns_copies_first_half_of_columns():
    weight = gaussian_matrix(64, seeded_generator(2))
    folded = fold_matrix(weight, 1, "columns")
    assert torch.equal(folded[:, 32:], weight[:, :32])
    assert torch.linalg.matrix_rank(folded.double()).item() == 32


@pytest.mark.parametrize("fold_k", [0, 2, 3])
def test_fold_k_tiles_the_first_block_and_has_rank_n_over_2_to_the_k(fold_k):
    weight = gaussian_matrix(64, seeded_generator(3))
    folded = fold_matrix(weight, fold_k, "rows")
    block = 64 // 2**fold_k
    for copy in range(2**fold_k):
        assert torch.equal(folded[copy * block : (copy + 1) * block], weight[:block])
    assert torch.linalg.matrix_rank(folded.double()).item() == block


def test_fold_does_not_modify_its_input():
    weight = gaussian_matrix(8, seeded_generator(4))
    original = weight.clone()
    fold_matrix(weight, 2, "columns")
    assert torch.equal(weight, original)


def test_fold_k_that_does_not_divide_width_names_value_and_allowed_range():
    message = r"fold k=3 .* 2\^3=8, but width is 12; allowed k .*: 0..2"
    with pytest.raises(ValueError, match=message):
        initialize_square_matrix(InitSpec(fold_k=3), 12, seeded_generator(0))


def test_unknown_fold_axis_is_rejected():
    with pytest.raises(ValueError, match="unknown fold axis 'diagonal'"):
        fold_matrix(torch.eye(4), 1, "diagonal")


def test_orthogonal_matrix_times_gain_has_all_singular_values_equal_to_gain():
    weight = orthogonal_matrix(32, seeded_generator(5), gain=0.8, dtype=torch.float64)
    torch.testing.assert_close(weight @ weight.T, 0.64 * torch.eye(32, dtype=torch.float64))


def test_gaussian_matrix_has_variance_one_over_n():
    weight = gaussian_matrix(256, seeded_generator(6), gain=2.0)
    assert weight.var().item() == pytest.approx(4.0 / 256, rel=0.02)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gaussian", InitSpec("gaussian", 0, 1.0)),
        ("fold0", InitSpec("gaussian", 0, 1.0)),
        ("fold1", InitSpec("gaussian", 1, 1.0)),
        ("orthogonal", InitSpec("orthogonal", 0, 1.0)),
        ("orthogonal-x0.8", InitSpec("orthogonal", 0, 0.8)),
        ("orthogonal-fold1", InitSpec("orthogonal", 1, 1.0)),
        ("gaussian-x1.4142", InitSpec("gaussian", 0, 1.4142)),
    ],
)
def test_parse_init_spec_round_trips_names(name, expected):
    spec = parse_init_spec(name)
    assert spec == expected
    assert parse_init_spec(spec.name) == spec


def test_a_gain_of_more_than_six_digits_round_trips_through_its_name():
    """Review, session 32: the name wrote the gain with 6 significant digits."""
    for gain in (math.sqrt(2), 1234567.0):
        spec = InitSpec("gaussian", 0, gain)
        assert parse_init_spec(spec.name) == spec
    assert InitSpec("orthogonal", 0, 0.8).name == "orthogonal-x0.8"


@pytest.mark.parametrize("bad", ["xavier", "fold", "orthogonal-x", "orthogonal*0.8", ""])
def test_unknown_init_gives_one_line_error_listing_allowed_names(bad):
    with pytest.raises(ValueError) as error:
        parse_init_spec(bad)
    message = str(error.value)
    assert "\n" not in message and repr(bad) in message and "allowed: fold<k>" in message


def test_zero_gain_is_rejected():
    with pytest.raises(ValueError, match="gain must be a finite number > 0, got 0.0"):
        parse_init_spec("orthogonal-x0")


def test_labels_state_fold_axis():
    assert parse_init_spec("fold1").label("columns") == "Fold 1 (columns)"
    assert parse_init_spec("orthogonal-x0.8").label() == "orthogonal x 0.8"


def test_apply_initialization_overwrites_a_square_parameter_in_place():
    weight = torch.nn.Parameter(torch.zeros(16, 16))
    apply_initialization_(weight, parse_init_spec("orthogonal-x0.5"), seeded_generator(7))
    singular = torch.linalg.svdvals(weight.detach())
    torch.testing.assert_close(singular, torch.full((16,), 0.5), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        apply_initialization_(torch.zeros(3, 4), InitSpec(), seeded_generator(0))


def test_seeded_generators_are_reproducible_and_distinct():
    first = torch.randn(4, generator=seeded_generator(0, 1, 2))
    again = torch.randn(4, generator=seeded_generator(0, 1, 2))
    other = torch.randn(4, generator=seeded_generator(0, 2, 1))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_width_below_two_is_rejected():
    with pytest.raises(ValueError, match="width must be an integer >= 2, got 1"):
        initialize_square_matrix(InitSpec(), 1, seeded_generator(0))


def test_gain_scales_fold_and_gaussian_alike():
    generator_a, generator_b = seeded_generator(9), seeded_generator(9)
    plain = initialize_square_matrix(InitSpec(fold_k=1), 8, generator_a)
    scaled = initialize_square_matrix(InitSpec(fold_k=1, gain=math.sqrt(2)), 8, generator_b)
    torch.testing.assert_close(scaled, plain * math.sqrt(2))
