"""Tests of the synapse degeneracy experiment: Jacobian products, paired inits, CLI, bad input."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from learnsyn.cells import make_cell
from learnsyn.cli.degeneracy import main
from learnsyn.degeneracy.recurrent_jacobians import (
    spectrum_measures,
    step_with_jacobian,
    tanh_rnn_jacobian,
    window_jacobian_products,
    window_jacobians,
)
from learnsyn.degeneracy.synapse import (
    SynapseDegeneracyConfig,
    train_config,
    train_synapse_degeneracy,
)
from learnsyn.degeneracy.synapse_report import iterations_to_fraction
from learnsyn.degeneracy.verdicts import VERDICTS
from learnsyn.initialization import fold_matrix
from learnsyn.scenario import make_scenario
from learnsyn.training import build_model


def test_tanh_rnn_jacobian_matches_a_hand_computation():
    recurrent = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    next_state = torch.tensor([[0.5, 0.0]])
    # diag(1 - h^2) W with 1 - h^2 = (0.75, 1)
    expected = torch.tensor([[[0.375, -0.75], [2.0, 0.25]]])
    assert torch.allclose(tanh_rnn_jacobian(recurrent, next_state), expected)


def test_orthogonal_rnn_at_zero_state_has_isometric_window_products():
    # With no input drive and no bias the state stays at h = 0, so every J_t = W and
    # P_L = W^L is orthogonal: all singular values 1, effective rank = participation ratio = n.
    size = 8
    model = make_cell("rnn", size, init="orthogonal", seed=1)
    with torch.no_grad():
        model.U.zero_()
        model.bias.zero_()
    config = train_config(SynapseDegeneracyConfig.quick(hidden_size=size, horizon=6), "fold0", 0)
    products = window_jacobian_products(
        model, make_scenario("ideal"), config, 3, (1, 3, 6), torch.Generator().manual_seed(0)
    )
    weight = model.W.detach().double()
    for length, product in products.items():
        assert torch.allclose(product, torch.linalg.matrix_power(weight, length).expand(3, -1, -1))
        measures = spectrum_measures(product, threshold=0.1)
        assert torch.allclose(measures["rms_singular_value"], torch.ones(3, dtype=torch.float64))
        assert torch.allclose(measures["effective_rank"], torch.full((3,), float(size)).double())
        assert torch.allclose(measures["participation_ratio"], torch.full((3,), 8.0).double())
        assert torch.all(measures["fraction_below_threshold"] == 0)


def test_scaled_orthogonal_products_shrink_as_gain_to_the_power_l():
    model = make_cell("rnn", 4, init="orthogonal-x0.8", seed=2)
    with torch.no_grad():
        model.U.zero_()
        model.bias.zero_()
    config = train_config(SynapseDegeneracyConfig.quick(hidden_size=4, horizon=10), "fold0", 0)
    products = window_jacobian_products(
        model, make_scenario("ideal"), config, 2, (10,), torch.Generator().manual_seed(0)
    )
    rms = spectrum_measures(products[10], threshold=0.1)["rms_singular_value"]
    assert torch.allclose(rms, torch.full((2,), 0.8**10, dtype=torch.float64), rtol=1e-5)


def test_long_window_products_keep_their_direction_where_float64_underflows():
    # P_L = (0.5 Q)^L: its entries fall below 1e-308 at L = 2000 (0.5^2000 = 1e-602), so the
    # plain product is exactly zero and its effective rank undefined. Renormalized at every
    # step the direction is Q^L (all singular values equal: effective rank n, no small ones)
    # and the scale is L log 0.5 up to the largest entry of Q^L.
    size, length = 4, 2000
    model = make_cell("rnn", size, init="orthogonal", seed=3)
    with torch.no_grad():
        model.W.mul_(0.5)
        model.U.zero_()
        model.bias.zero_()
    config = train_config(SynapseDegeneracyConfig.quick(hidden_size=size, horizon=6), "fold0", 0)
    scenario, lengths = make_scenario("ideal"), (3, length)
    plain = window_jacobian_products(model, scenario, config, 2, lengths, torch.Generator())
    assert torch.all(plain[length] == 0)
    products, log_scales, _ = window_jacobians(
        model, scenario, config, 2, lengths, torch.Generator().manual_seed(0)
    )
    weight = model.W.detach().double() / 0.5
    power = torch.linalg.matrix_power(weight, length)
    expected_log = length * math.log(0.5) + math.log(power.abs().max().item())
    assert torch.allclose(log_scales[length], torch.full((2,), expected_log, dtype=torch.float64))
    assert torch.allclose(products[length], (power / power.abs().max()).expand(2, -1, -1))
    measures = spectrum_measures(products[length], 0.1, log_scales[length])
    assert torch.allclose(measures["effective_rank"], torch.full((2,), float(size)).double())
    assert torch.all(measures["fraction_below_threshold"] == 0)
    assert torch.all(measures["rms_singular_value"] == 0)  # 0.5^2000 underflows, as it is
    short = spectrum_measures(products[3], 0.1, log_scales[3])["rms_singular_value"]
    assert torch.allclose(short, torch.full((2,), 0.5**3, dtype=torch.float64))
    assert torch.allclose(plain[3], products[3] * log_scales[3].exp()[:, None, None])
    # an exactly zero map has no direction: its scale-free measures are undefined (NaN)
    zero = spectrum_measures(torch.zeros(1, size, size, dtype=torch.float64), 0.1)
    assert math.isnan(zero["effective_rank"].item())
    assert math.isnan(zero["fraction_below_threshold"].item())


def test_every_init_gets_the_range_sizing_where_the_scenario_constrains_the_state():
    """In bounded and noisy the post's inits get the sizing ``auto`` gives (a learnable
    saturation s = 4, ...), so that the inits differ only in the recurrent matrix; a given
    ``--cell-param`` wins; the ideal scenario adds nothing."""
    from learnsyn.config import CONSTRAINED_CELL_PARAMS, CONSTRAINED_GRU_PARAMS

    bounded = SynapseDegeneracyConfig.quick(cells=("gru",), task="bounded")
    sized = {**CONSTRAINED_CELL_PARAMS, **CONSTRAINED_GRU_PARAMS}
    for init in ("fold0", "orthogonal", "default", "isometric"):
        assert train_config(bounded, init, 0).cell_params == sized
    given = SynapseDegeneracyConfig.quick(task="noisy", cell_params={"output_scale": 2.0})
    assert train_config(given, "fold0", 0).cell_params == {"state_std": 0.8, "output_scale": 2.0}
    assert train_config(SynapseDegeneracyConfig.quick(), "fold0", 0).cell_params == {}
    model = build_model(train_config(bounded, "fold0", 0))
    assert model.log_scale is not None  # the saturation s tanh(y / s), not a plain tanh


def test_stream_means_leave_out_the_streams_whose_product_is_zero():
    """In bounded a state clipped in every direction inside the window has a zero window
    product, whose scale-free measures are NaN; the stream mean is over the other streams (it
    was NaN for the whole point, and the mechanism claim then read "training diverged")."""
    from learnsyn.degeneracy.synapse import stream_mean

    values = torch.tensor([[1.0, math.nan, 3.0], [math.nan, math.nan, math.nan]])
    means = stream_mean(values)
    assert means[0].item() == 2.0 and math.isnan(means[1].item())
    products = torch.stack([torch.eye(2), torch.zeros(2, 2), torch.diag(torch.tensor([1.0, 0.0]))])
    ranks = spectrum_measures(products[None].double(), 0.1)["effective_rank"]
    assert stream_mean(ranks).item() == pytest.approx(1.5)  # (2 + 1) / 2, the zero left out


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_step_jacobian_matches_autograd_per_synapse(cell):
    torch.manual_seed(0)
    model = make_cell(cell, 6, init="fold0", seed=3)
    state = torch.randn(3, 6) * 0.5
    events = torch.tensor([1.0, -1.0, 1.0])
    scenario = make_scenario("ideal")
    next_state, jacobian = step_with_jacobian(model, scenario, state, events, None, None)
    for synapse in range(3):

        def one_step(hidden, synapse=synapse):
            return model.step(hidden.unsqueeze(0), events[synapse : synapse + 1])[0]

        expected = torch.autograd.functional.jacobian(one_step, state[synapse])
        assert torch.allclose(jacobian[synapse], expected, atol=1e-6)
    assert torch.allclose(next_state, model.step(state, events))


def test_inits_share_their_seed_draws():
    config = SynapseDegeneracyConfig.quick()
    fold0 = build_model(train_config(config, "fold0", 1)).W.detach()
    fold1 = build_model(train_config(config, "fold1", 1)).W.detach()
    orthogonal = build_model(train_config(config, "orthogonal", 1)).W.detach()
    scaled = build_model(train_config(config, "orthogonal-x0.8", 1)).W.detach()
    assert torch.equal(fold1, fold_matrix(fold0, 1, "rows"))
    assert torch.allclose(scaled, 0.8 * orthogonal)
    other_seed = build_model(train_config(config, "fold0", 2)).W.detach()
    assert not torch.equal(fold0, other_seed)


def test_iterations_to_fraction_reports_runs_that_never_reach_it():
    evaluation = np.array(
        [[[1.0, 5.0, 10.0], [1.0, 9.0, 10.0]], [[1.0, 2.0, 4.0], [1.0, 9.5, 6.0]]]
    )  # (inits, seeds, points)
    final = evaluation[..., -1]
    target, best, reach = iterations_to_fraction(evaluation, [0, 10, 20], final, 0.9)
    assert best == 0 and target == pytest.approx(9.0)
    assert reach[0].tolist() == [20.0, 10.0]
    assert math.isnan(reach[1, 0]) and reach[1, 1] == 10.0


def test_gru_cell_runs_and_records_every_series():
    config = SynapseDegeneracyConfig.quick(
        cell="gru", inits=("orthogonal", "default"), seeds=1, iterations=2, horizon=4, batch=8
    )
    trained = train_synapse_degeneracy(dataclasses.replace(config, show_progress=False))
    raw = trained["points"]["gru-m16-h4"]  # the grid's one point
    assert raw["objective"].shape == (2, 1, 2)
    assert np.all(np.isfinite(raw["recurrent_grad_norm"]))
    points, lengths = len(config.measurement_iterations), len(config.resolved_window_lengths)
    assert raw["jacobian"]["effective_rank"].shape == (2, 1, points, lengths)


def test_synapse_quick_writes_figures_json_tensorboard_and_config(tmp_path, capsys):
    out_dir = tmp_path / "synapse"
    code = main(["synapse", "--quick", "--seed", "3", "--out", str(out_dir), "--no-progress"])
    assert code == 0
    config = json.loads((out_dir / "config.json").read_text())
    assert config["experiment"] == "synapse"
    assert config["config"]["seed"] == 3 and config["config"]["threads"] == 1
    assert config["config"]["inits"] == [
        "fold0",
        "fold1",
        "orthogonal",
        "orthogonal-x0.8",
        "default",
    ]
    results = json.loads((out_dir / "results.json").read_text())
    assert len(results["figures"]) == 5
    for figure in results["figures"]:
        assert (out_dir / figure).read_bytes().startswith(b"\x89PNG")
    assert results["fold_axis"] == "rows" and results["hidden_size"] == 16
    assert len(results["evaluation"]["fold0"]["per_seed"]) == 3
    assert set(results["iterations_to_fraction"]["by_init"]) == set(results["inits"])
    assert len(results["claims"]) == 6
    assert all(claim["verdict"] in VERDICTS for claim in results["claims"])
    accumulator = EventAccumulator(str(out_dir / "tensorboard"))
    accumulator.Reload()
    events = accumulator.Scalars("evaluation/fold0")
    assert events[0].step == 0
    assert events[0].value == pytest.approx(results["evaluation"]["fold0"]["mean"][0], rel=1e-5)
    assert (
        "jacobian_products/effective_rank/iteration_0/orthogonal" in accumulator.Tags()["scalars"]
    )
    assert "claim:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--inits", "he"], "learnsyn: error: unknown init 'he'; allowed: fold<k>"),
        (
            ["--inits", "fold0", "fold5"],
            "learnsyn: error: init 'fold5' (hidden size 16): fold k=5 needs a width divisible by 2^5=32",  # noqa: E501
        ),
        (["--hidden-size", "1"], "learnsyn: error: hidden size must be an integer >= 2, got 1"),
        (["--seeds", "0"], "learnsyn: error: seeds must be an integer >= 1, got 0"),
        (["--workers", "0"], "learnsyn: error: workers must be an integer >= 1, got 0"),
        (["--inits", "fold0", "gaussian"], "learnsyn: error: inits must be distinct"),
        # review, session 32: a repeated point trained its runs twice
        (["--hidden-size", "4", "4"], "learnsyn: error: hidden sizes must be distinct, got [4, 4]"),
        (["--cell", "rnn", "rnn"], "learnsyn: error: cells must be distinct"),
        (
            ["--gain", "0.9", "--inits", "fold0"],
            "learnsyn: error: --gain sets the scaled orthogonal init",
        ),
        (["--task", "nope"], "learnsyn: error: unknown scenario 'nope'"),
        (["--window-lengths", "0"], "learnsyn: error: window length 0 is not allowed"),
        (["--iterations", "0"], "learnsyn: error: iterations must be an integer >= 1, got 0"),
        (["--horizon", "0"], "learnsyn: error: horizon must be an integer >= 1, got 0"),
        # a learned cell passed validation and then lost the gap (review, session 25)
        (["--gap-baseline", "gru"], "learnsyn: error: gap baseline 'gru' is not a hand-crafted"),
        # review, session 30: every init started at the same linear synapse, verdicts printed
        (
            ["--start-from", "tuned:optimal-linear"],
            "learnsyn: error: --start-from tuned:optimal-linear is not allowed here",
        ),
        # review, session 30: a math domain error in the isometric run, mid-grid
        (
            ["--cell", "gru", "--controls", "isometric", "--isometric-timescale", "0.05"],
            "learnsyn: error: isometric_timescale 0.05 x horizon 12 = 0.6 steps is not allowed",
        ),
        (  # review, session 33: named among the inits, it went unchecked
            [
                "--cell",
                "gru",
                "--inits",
                "orthogonal",
                "isometric",
                "--controls",
                "none",
                "--isometric-timescale",
                "0.05",
            ],
            "learnsyn: error: isometric_timescale 0.05 x horizon 12 = 0.6 steps is not allowed",
        ),
    ],
)
def test_bad_input_prints_one_line_error_and_exits_2(tmp_path, capsys, arguments, message):
    out_dir = tmp_path / "never"
    code = main(["synapse", "--quick", "--out", str(out_dir), *arguments])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1
    assert not out_dir.exists()


def test_chain_cell_is_refused_with_one_line():
    with pytest.raises(ValueError, match="allowed: rnn, gru"):
        SynapseDegeneracyConfig.quick(cell="chain").validate()


def test_a_grid_whose_runs_all_diverged_says_no_verdict(tmp_path, capsys):
    """Review, session 30: with every run diverged the report ended in numpy's "All-NaN slice
    encountered" (no target to reach), then in a log-scaled figure without data; no
    results.json was written."""
    from learnsyn.degeneracy.verdicts import NO_VERDICT_DIVERGED

    out_dir = tmp_path / "diverged"
    args = ["synapse", "--quick", "--no-progress", "--out", str(out_dir), "--inits", "fold0",
            "orthogonal", "--seeds", "2", "--pilot-seeds", "0", "--iterations", "15",
            "--lr", "1e30", "--grad-clip", "1e30"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out_dir / "results.json").read_text())
    assert results["iterations_to_fraction"]["best_init"] is None
    claims = {c["statement"]: c["verdict"] for c in results["claims"]}
    trained = [v for s, v in claims.items() if "at initialization" not in s]
    assert NO_VERDICT_DIVERGED in trained
    assert not {"confirmed", "not confirmed", "contradicted"} & set(trained)
    assert len(results["figures"]) == 5


def test_a_run_too_short_gets_no_verdict_on_its_training_claims(tmp_path):
    """Review, session 30: after one Adam update, "orthogonal x g still trains well under Adam:
    confirmed". Claims about training need 3 validations after the start; the mechanism's,
    judged at initialization, keeps its verdict."""
    from learnsyn.degeneracy.synapse_claims import MECHANISM_STATEMENT
    from learnsyn.degeneracy.verdicts import NO_VERDICT_TOO_SHORT

    for iterations, short in ((10, True), (15, False)):  # validations every 5
        out_dir = tmp_path / f"i{iterations}"
        args = ["synapse", "--quick", "--no-progress", "--out", str(out_dir), "--iterations",
                str(iterations), "--seeds", "2", "--pilot-seeds", "0"]  # fmt: skip
        assert main(args) == 0
        claims = json.loads((out_dir / "results.json").read_text())["claims"]
        verdicts = {c["statement"]: c["verdict"] for c in claims}
        assert verdicts.pop(MECHANISM_STATEMENT) in VERDICTS[:3]
        assert all(v == NO_VERDICT_TOO_SHORT for v in verdicts.values()) == short, verdicts


def test_the_table_names_what_it_shows_and_a_pilot_that_cannot_run_is_said(tmp_path, capsys):
    """Review, session 30: the table was headed "final area (evaluation batch)" but showed the
    validation curve's last tenth, while the claims judge the selected parameters' evaluation;
    --pilot-seeds not below --seeds gave no pilot statement, silently."""
    out_dir = tmp_path / "table"
    args = ["synapse", "--quick", "--no-progress", "--out", str(out_dir), "--seeds", "2",
            "--pilot-seeds", "2", "--iterations", "2"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "no pilot statement: --pilot-seeds 2 is not below --seeds 2" in captured.err
    results = json.loads((out_dir / "results.json").read_text())
    selected = results["selected_objective"]["orthogonal"]
    label = results["inits"]["orthogonal"]
    line = next(line for line in captured.out.splitlines() if line.strip().startswith(label))
    assert f"selected {selected['mean']:.4g}" in line and "last tenth" in line


def test_window_lengths_given_without_the_horizon_still_measure_p_t():
    """Review, session 33: lengths given without the horizon were taken as they were, and the
    report and the claims read the last of them as P_T (P_3 labelled P_12)."""
    config = SynapseDegeneracyConfig.quick(window_lengths=(1, 3), horizon=12)
    assert config.resolved_window_lengths == (1, 3, 12)
    assert SynapseDegeneracyConfig.quick(horizon=12).resolved_window_lengths[-1] == 12


def test_rejudge_leaves_another_grid_and_a_stale_pilot_alone(tmp_path, capsys):
    """Review, session 33: ``rejudge A --out B`` replaced grid B's report (B's runs stayed, under
    A's config), and a rerun without a pilot statement left the former pilot.json, which
    rejudge then read as the grid's."""
    from learnsyn.io import read_json

    tiny = ["--quick", "--no-progress", "--seeds", "3", "--iterations", "5",
            "--gap-baseline", "none", "--inits", "fold0", "orthogonal"]  # fmt: skip
    grid, other = tmp_path / "grid", tmp_path / "other"
    assert main(["synapse", *tiny, "--pilot-seeds", "2", "--out", str(grid)]) == 0
    assert (grid / "pilot.json").is_file()
    assert main(["synapse", *tiny, "--pilot-seeds", "0", "--out", str(grid)]) == 0
    assert not (grid / "pilot.json").exists()  # this grid states no pilot now
    assert main(["rejudge", str(grid), "--out", str(tmp_path / "again")]) == 0
    assert read_json(tmp_path / "again" / "results.json")["pilot"] is None
    assert main(["synapse", *tiny, "--pilot-seeds", "0", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["rejudge", str(grid), "--out", str(other)]) == 2
    assert "is a grid with runs of its own" in capsys.readouterr().err
