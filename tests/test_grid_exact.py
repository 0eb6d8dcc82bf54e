"""Exact SNR of continuous-state synapses on the bounded grid (learnsyn.estimate.grid)."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from learnsyn.cells import make_cell
from learnsyn.cli import main
from learnsyn.estimate.grid import (
    AUTO_MAX_STATES,
    MAX_STATES,
    build_grid_chain,
    burn_in_distribution,
    check_grid_size,
    grid_bench,
    grid_exact_curves,
    grid_signal_and_variance,
    grid_snr,
)
from learnsyn.estimate.montecarlo import default_burn_in
from learnsyn.estimate.snr import smooth_objective
from learnsyn.evaluate import evaluate, resolve_method
from learnsyn.registry import make_model
from learnsyn.scenario import make_scenario
from learnsyn.synapse import ModelInfo, Synapse

N = 1000
#: the bounded Benna-Fusi chain tuned for area (README), a long-lived curve
TUNED_BF = {"variables": 2, "amplitude": 0.1346, "ratio": 16.0}


# --- structure -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model",
    [
        make_model("benna-fusi", {"variables": 2}),
        make_cell("gru", 2, timescale=100),
        make_model("ewc", {"decay": 0.9}),
    ],
    ids=["benna-fusi", "gru", "ewc"],
)
def test_rows_sum_to_one_and_the_stationary_distribution_is_stationary(model):
    with torch.no_grad():
        chain = build_grid_chain(model.double(), 16, 1.0)
    assert chain.states == 256
    for matrix in (chain.plus, chain.minus):
        assert matrix.nnz <= 256 * 4  # at most 2^m entries per row
        assert float(matrix.values.min()) >= 0
        assert torch.allclose(matrix.row_sums(), torch.ones(256, dtype=torch.float64), atol=1e-12)
    background = chain.background()
    pi = background.stationary(tol=1e-13)
    assert float(pi.min()) >= 0 and float(pi.sum()) == pytest.approx(1.0, abs=1e-12)
    moved = background.propagate(pi.unsqueeze(1)).squeeze(1)
    assert float((moved - pi).abs().sum()) < 1e-11
    # and it is what a long burn-in converges to
    dense = background.to_dense()
    long_run = torch.full((256,), 1.0 / 256, dtype=torch.float64) @ torch.linalg.matrix_power(
        dense, 4096
    )
    assert float((long_run - pi).abs().sum()) < 1e-9


def test_dense_squaring_burn_in_is_the_sparse_burn_in():
    model = make_cell("gru", 2, timescale=100).double()
    with torch.no_grad():
        chain = build_grid_chain(model, 16, 1.0)
        background = chain.background()
        dense = burn_in_distribution(chain, 3001, background)  # 256 states: repeated squaring
        sparse = 0.5 * (chain.from_initial(1.0) + chain.from_initial(-1.0))
        sparse = sparse.unsqueeze(1)
        for _ in range(3000):
            sparse = background.propagate(sparse)
    assert float((dense - sparse.squeeze(1)).abs().sum()) < 1e-12


def _hand_built_matrix(decay, amplitude, event, levels, bound):
    """One variable, ``y = decay x + amplitude e``: the simulator's rounding written out."""
    spacing = 2 * bound / (levels - 1)
    values = [-bound + k * spacing for k in range(levels)]
    M = np.zeros((levels, levels))
    for k, x in enumerate(values):
        y = min(max(decay * x + amplitude * event, -bound), bound)
        position = (y + bound) / spacing
        lower = math.floor(position)
        up = position - lower
        M[k, min(lower, levels - 1)] += 1 - up
        if up > 0:
            M[k, lower + 1] += up
    return M


@pytest.mark.parametrize("levels", [3, 4])
def test_one_variable_chain_is_the_hand_built_matrix(levels):
    decay, amplitude = 0.75, 0.625
    model = make_model("exponential", {"decay": decay, "amplitude": amplitude}).double()
    chain = build_grid_chain(model, levels, 1.0)
    for matrix, event in ((chain.plus, 1.0), (chain.minus, -1.0)):
        expected = _hand_built_matrix(decay, amplitude, event, levels, 1.0)
        assert np.allclose(matrix.to_dense().numpy(), expected, atol=1e-15)
    assert np.allclose(chain.weights.numpy(), np.linspace(-1, 1, levels))


# --- brute force ---------------------------------------------------------------------------------
def _rounding_outcomes(y, levels, bound):
    """All outcomes of clip + independent stochastic rounding of a point, with probabilities."""
    spacing = 2 * bound / (levels - 1)
    per_variable = []
    for value in y:
        position = (min(max(value, -bound), bound) + bound) / spacing
        lower = math.floor(position)
        up = position - lower
        options = [(lower * spacing - bound, 1 - up)]
        if up > 0:
            options.append(((lower + 1) * spacing - bound, up))
        per_variable.append([o for o in options if o[1] > 0])
    for combo in itertools.product(*per_variable):
        yield np.array([v for v, _ in combo]), math.prod(p for _, p in combo)


def _brute_force(A, b, c, levels, bound, burn_in, horizon):
    """Enumerate every path (events and rounding outcomes) of ``x' = A x + b e`` from x = 0:
    ``(E+, Q+, E-, Q-)`` per age, with no chain, matrix or merging of states."""
    paths = [(np.zeros(len(b)), 1.0)]

    def background(paths):
        return [
            (z, p * 0.5 * q)
            for x, p in paths
            for e in (1.0, -1.0)
            for z, q in _rounding_outcomes(A @ x + b * e, levels, bound)
        ]

    for _ in range(burn_in):
        paths = background(paths)
    moments = {}
    for sign in (1.0, -1.0):
        branch = [
            (z, p * q)
            for x, p in paths
            for z, q in _rounding_outcomes(A @ x + b * sign, levels, bound)
        ]
        rows = []
        for age in range(horizon):
            if age > 0:
                branch = background(branch)
            rows.append(
                (sum(p * (c @ x) for x, p in branch), sum(p * (c @ x) ** 2 for x, p in branch))
            )
        moments[sign] = np.array(rows)
    e_plus, q_plus = moments[1.0].T
    e_minus, q_minus = moments[-1.0].T
    signal = 0.5 * (e_plus - e_minus)
    variance = 0.5 * q_plus + 0.5 * q_minus - (0.5 * e_plus + 0.5 * e_minus) ** 2
    return signal, variance


@pytest.mark.parametrize(
    "name, params, levels, burn_in",
    [
        ("exponential", {"decay": 0.75, "amplitude": 0.625}, 4, 0),
        ("exponential", {"decay": 0.75, "amplitude": 0.625}, 4, 3),
        ("exponential", {"decay": 0.5, "amplitude": 0.75}, 3, 2),
        ("benna-fusi", {"variables": 2, "amplitude": 0.75}, 3, 2),
    ],
)
def test_tiny_chains_match_brute_force_enumeration(name, params, levels, burn_in):
    model = make_model(name, params)  # all coefficients are exact in float32
    form = model.linear_form()
    scenario = make_scenario("bounded", {"levels": levels, "bound": 1.0})
    horizon = 3
    signal, variance = _brute_force(form.A, form.b, form.c, levels, 1.0, burn_in, horizon)
    exact_signal, exact_variance = grid_signal_and_variance(
        model.double(), scenario, np.arange(horizon), burn_in=burn_in
    )
    assert np.allclose(exact_signal[0].numpy(), signal, rtol=0, atol=1e-13)
    assert np.allclose(exact_variance[0].numpy(), variance, rtol=0, atol=1e-13)
    assert np.all(np.abs(signal) > 1e-3)  # a non-trivial comparison


# --- against Monte Carlo -------------------------------------------------------------------------
def _z_scores(model, horizon, **task):
    """Exact vs Monte Carlo (8192 pairs, the same burn-in): z-scores at ages with a nonzero
    standard error, and the largest exact SNR at ages where every pair has coalesced (the Monte
    Carlo estimate is then exactly 0 with a zero standard error)."""
    scenario = make_scenario("bounded", task)
    burn = default_burn_in(model, scenario, horizon)
    exact = evaluate(model, scenario, synapses=N, horizon=horizon, method="exact", burn_in=burn)
    assert exact.method == "exact" and exact.grid == {"states": 256, "burn_in": burn}
    mc = evaluate(
        model,
        scenario,
        synapses=N,
        horizon=horizon,
        method="monte-carlo",
        batch=8192,
        burn_in=burn,
        groups=64,
    )
    snr, mc_snr, stderr = (np.array(v) for v in (exact.snr, mc.snr, mc.snr_stderr))
    resolved = stderr > 0
    assert np.all(mc_snr[~resolved] == 0)
    z = (mc_snr[resolved] - snr[resolved]) / stderr[resolved]
    return z, np.abs(snr[~resolved]).max(initial=0.0), exact


def _assert_agreement(z):
    assert np.all(np.abs(z) <= 3), f"max |z| = {np.abs(z).max():.2f}"


@pytest.mark.parametrize(
    "params, horizon",
    [({"variables": 2}, 30), (TUNED_BF, 200)],
    ids=["canonical-h30", "tuned-h200"],
)
def test_benna_fusi_agrees_with_monte_carlo_at_every_age(params, horizon):
    z, unresolved, exact = _z_scores(make_model("benna-fusi", params), horizon)
    _assert_agreement(z)
    assert len(z) == horizon
    assert exact.snr[0] > 5 and exact.metrics["lifetime"] >= 4  # a curve worth comparing


def test_gru_agrees_with_monte_carlo_at_every_age():
    z, unresolved, exact = _z_scores(make_cell("gru", 2, timescale=100), 200)
    _assert_agreement(z)
    assert len(z) == 200


def test_the_monte_carlo_comparison_detects_a_wrong_curve():
    # the same Monte Carlo rejects the exact curve of a chain with an 8% larger increment, and
    # the right curve read one age late (an off-by-one in the age convention)
    model = make_model("benna-fusi", TUNED_BF)
    scenario = make_scenario("bounded")
    burn = default_burn_in(model, scenario, 60)
    mc = evaluate(
        model, scenario, synapses=N, horizon=60, method="monte-carlo", batch=8192, burn_in=burn
    )
    ages = np.arange(60)
    wrong_model = make_model("benna-fusi", dict(TUNED_BF, amplitude=0.145))
    late = grid_exact_curves(model, scenario, ages + 1, N, "exact", burn_in=burn)[0]
    right = grid_exact_curves(model, scenario, ages, N, "exact", burn_in=burn)[0]
    wrong = grid_exact_curves(wrong_model, scenario, ages, N, "exact", burn_in=burn)[0]
    for curve, rejected in ((right, False), (late, True), (wrong, True)):
        z = (np.array(mc.snr) - curve) / np.array(mc.snr_stderr)
        assert (np.abs(z).max() > 5) == rejected and (np.abs(z).max() <= 3) != rejected


def test_a_coalescing_tail_is_below_monte_carlo_resolution():
    # canonical chain: the branches of every pair meet within ~100 steps, then Monte Carlo reads
    # exactly 0; the exact SNR there is below what a single pair of 8192 could show (its signal
    # is at most 2 f+ f- |w+ - w-| / 8192 = 1 / 8192, the readout being in [-1, 1])
    model = make_model("benna-fusi", {"variables": 2})
    z, unresolved, exact = _z_scores(model, 200)
    assert 30 < len(z) < 200 and unresolved > 0
    _, variance = grid_signal_and_variance(
        model.double(), make_scenario("bounded"), [199], burn_in=exact.grid["burn_in"]
    )
    one_pair = math.sqrt(N) * (1.0 / 8192) / math.sqrt(float(variance[0, 0]))
    assert unresolved < one_pair


# --- gradients -----------------------------------------------------------------------------------
def _area(model, scenario, burn_in, smooth):
    ages = torch.arange(40, dtype=torch.float64)
    snr = grid_snr(model, scenario, ages.numpy(), 60.0, "large-n", burn_in=burn_in, tol=1e-15)[0]
    if smooth:
        return smooth_objective(snr, ages, 1.0, "area", 0.5)
    return torch.relu(snr - 1.0).sum()


def test_a_distribution_on_few_states_gives_no_round_off_snr():
    """Session 24's multi-start search found a ``linear-range`` synapse whose exact area was
    1967.7, far above the bound N / (4 theta) = 250 that every synapse obeys: both variables
    run into a corner of the grid and stay there, the weight's variance E[w^2] - E[w]^2 cancelled
    to round-off, and round-off over round-off made SNRs of 28 at single ages. The moments are
    now taken about the weight's mean: the SNR stays near 1e-7 at every age (Monte Carlo, which
    never leaves the corner: exactly 0), far below sqrt(N) at every age."""
    params = {
        "variables": 2,
        "A": [1.010131852811237, -0.00012053794994715462, 0.000647877521100873,
              1.0042628076770566],
        "b": [-0.00103517925410095, -0.13733183505920837],
        "c": [-0.6179506223550963, -0.18297012130941562],
        "drive": [0.003379667427234431, 0.13762966306808466],
    }  # fmt: skip
    kw = dict(synapses=1000, horizon=600, convention="large-n", burn_in=1500)
    model, scenario = make_model("linear-range", params), make_scenario("bounded")
    exact = evaluate(model, scenario, method="exact", **kw)
    assert exact.metrics["area"] == 0.0
    assert max(exact.snr) < 1e-6
    monte_carlo = evaluate(model, scenario, method="monte-carlo", batch=1024, seed=1, **kw)
    assert monte_carlo.metrics["area"] == 0.0


@pytest.mark.parametrize(
    "burn_in, smooth, levels",
    [(30, True, 8), (30, False, 8), (None, True, 8), (30, True, 16)],
    ids=["smooth", "hard", "stationary", "sparse-burn-in"],
)
def test_area_gradient_matches_central_differences(burn_in, smooth, levels):
    # 64 states: the burn-in is taken by dense squaring; 256 states: by sparse steps
    model = make_cell("gru", 2, timescale=20, seed=3).double()
    scenario = make_scenario("bounded", {"levels": levels})
    params = list(model.parameters())
    area = _area(model, scenario, burn_in, smooth)
    assert 0.5 < area.item() < 100  # the curve crosses the threshold
    gradients = torch.autograd.grad(area, params)
    eps = 1e-6
    analytic, numeric = [], []
    with torch.no_grad():
        for param, gradient in zip(params, gradients):
            for index in range(param.numel()):
                flat = param.view(-1)
                saved = float(flat[index])
                flat[index] = saved + eps
                up = float(_area(model, scenario, burn_in, smooth))
                flat[index] = saved - eps
                down = float(_area(model, scenario, burn_in, smooth))
                flat[index] = saved
                analytic.append(float(gradient.view(-1)[index]))
                numeric.append((up - down) / (2 * eps))
    analytic, numeric = np.array(analytic), np.array(numeric)
    assert np.abs(analytic).max() > 1e-2
    assert np.allclose(analytic, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


# --- evaluation path, limits, CLI ----------------------------------------------------------------
def test_auto_picks_the_grid_in_bounded_and_monte_carlo_above_the_limit():
    bounded = make_scenario("bounded")
    assert resolve_method(make_model("benna-fusi", {"variables": 2}), bounded, "auto") == "exact"
    assert resolve_method(make_cell("gru", 3), bounded, "auto") == "exact"
    assert resolve_method(make_model("ewc"), bounded, "auto") == "exact"
    # 65536 states: exact when asked, Monte Carlo for auto (tuning would be slow)
    assert 16**4 > AUTO_MAX_STATES
    assert resolve_method(make_model("benna-fusi"), bounded, "auto") == "monte-carlo"
    assert resolve_method(make_model("benna-fusi"), bounded, "exact") == "exact"
    big = make_model("benna-fusi", {"variables": 6})  # 16^6 states
    assert resolve_method(big, bounded, "auto") == "monte-carlo"
    with pytest.raises(ValueError, match=r"16777216 states .* limit of 262144 states") as error:
        resolve_method(big, bounded, "exact")
    assert "\n" not in str(error.value)
    # the ideal scenario is unchanged: linear models stay on the closed form
    assert evaluate(make_model("benna-fusi"), make_scenario("ideal"), synapses=N).grid is None


class _BrokenBelow(Synapse):
    """``x' = x / 2 + e / 2``, but not a number at the lowest level (reachable from 0); with a
    ``drift`` d, ``x' = x / 2 + d + (1 / 2 - d) e``."""

    info = ModelInfo("broken", "test model", "none")
    state_size = 1

    def __init__(self, drift: float = 0.0):
        super().__init__()
        self.drift = drift

    def step(self, state, events, flags=None):
        move = (0.5 - self.drift) * events.unsqueeze(-1).to(state.dtype)
        moved = 0.5 * state + self.drift + move
        return torch.where(state < -0.9, torch.nan, moved)

    def readout(self, state):
        return state[:, 0]


def test_reachable_undefined_states_are_an_error_unreachable_ones_are_not():
    scenario = make_scenario("bounded", {"levels": 4})
    with pytest.raises(ValueError, match="not a number at 1 grid states"):
        grid_signal_and_variance(_BrokenBelow(), scenario, np.arange(5), burn_in=10)
    # the same synapse with a drift up, x' = x / 2 + 1 / 4 + e / 4, never leaves [-1/3, 1/3]
    # from 0 on this grid: its undefined lowest level is not reachable (until session 33 the
    # example was EWC at importance -1, which now reads a negative importance as 0)
    unreached = _BrokenBelow(drift=0.25)
    assert bool(build_grid_chain(unreached, 4, 1.0).undefined.any())
    signal, _ = grid_signal_and_variance(unreached, scenario, np.arange(5), burn_in=50)
    assert torch.isfinite(signal).all() and float(signal[0, 0]) > 0


def test_ewc_reads_a_negative_importance_as_zero():
    """Review, session 33: in bounded at 2 levels (and in noisy with large sigma) the
    constraint took EWC's importance to -1, where ``1 + omega = 0`` made the weight NaN, which
    Monte Carlo read as an area of 0 and the grid refused. An importance is a precision: the
    update reads one below 0 as 0. The Monte Carlo figure agrees with the now-defined grid."""
    ewc = make_model("ewc", {"decay": 0.9}).double()
    scenario = make_scenario("bounded", {"levels": 2})
    assert not bool(build_grid_chain(ewc, 2, 1.0).undefined.any())
    exact = evaluate(ewc, scenario, synapses=100, horizon=20, method="exact", burn_in=50,
                     convention="large-n")  # fmt: skip
    mc = evaluate(ewc.float(), scenario, synapses=100, horizon=20, method="monte-carlo",
                  batch=4096, burn_in=50, convention="large-n")  # fmt: skip
    assert np.isfinite(mc.snr).all() and exact.metrics["area"] > 0
    assert abs(mc.metrics["area"] - exact.metrics["area"]) < 4 * mc.metrics_stderr["area"]


def test_check_grid_size_names_the_count_and_the_limit():
    assert check_grid_size(16, 4) == 65536
    with pytest.raises(ValueError, match=f"{5**8} states .*{MAX_STATES} states"):
        check_grid_size(5, 8)


def test_cli_evaluate_exact_in_bounded(tmp_path, capsys):
    path = tmp_path / "r.json"
    argv = "evaluate --model benna-fusi --param variables=2 --task bounded --synapses 1000 "
    argv += f"--horizon 600 --method exact --json {path}"
    assert main(argv.split()) == 0
    result = json.loads(path.read_text())
    assert result["method"] == "exact" and result["snr_stderr"] is None
    assert result["grid"] == {"states": 256, "burn_in": 600}
    assert len(result["snr"]) == 600 and result["snr"][0] > 50


def test_grid_bench_reports_states_and_seconds():
    results = grid_bench(quick=True, sizes=((16, 2),))
    (entry,) = results["entries"]
    assert entry["states"] == 256 and entry["seconds"] > 0


@pytest.mark.gpu
def test_grid_on_cuda_matches_cpu():
    scenario = make_scenario("bounded")
    model = make_cell("gru", 2, timescale=100)
    ages = np.arange(100)
    cpu = grid_exact_curves(model, scenario, ages, N, "exact", burn_in=200)
    cuda = grid_exact_curves(model.cuda(), scenario, ages, N, "exact", burn_in=200)
    assert np.allclose(cpu, cuda, rtol=1e-9, atol=1e-9)


def test_the_grid_takes_ages_in_any_order_and_refuses_what_is_not_an_age():
    # one rule with evaluate's (estimate.snr.integer_ages), less the order: inf passed the
    # grid's own check and became an int64 garbage age
    model = make_model("benna-fusi", {"variables": 2}).double()
    scenario = make_scenario("bounded")
    forward = grid_signal_and_variance(model, scenario, [0, 3, 7], burn_in=50)[0]
    shuffled = grid_signal_and_variance(model, scenario, [7, 0, 3], burn_in=50)[0]
    torch.testing.assert_close(shuffled[:, [1, 2, 0]], forward)
    for ages in ([], [1, math.inf], [-1, 2], [0.5], [math.nan]):
        with pytest.raises(ValueError, match=r"are not allowed: need non-negative integers$"):
            grid_signal_and_variance(model, scenario, ages, burn_in=50)


def test_a_bounded_scenario_with_a_constraint_of_its_own_is_not_the_grid():
    """Review, session 37: the grid method was chosen by the scenario's name, so a subclass
    of the bounded scenario with its own ``constrain`` was evaluated exactly on the standard
    grid, a chain that is not its own."""
    from learnsyn.tasks.constrained import BoundedScenario

    from learnsyn.estimate.grid import grid_applies

    class Narrower(BoundedScenario):
        def constrain(self, state, noise):
            return state.clamp(-0.5, 0.5)

    from learnsyn.baselines.optimal_linear import chain_applies

    cell = make_cell("gru", 2)
    assert grid_applies(cell, BoundedScenario())
    assert not grid_applies(cell, Narrower())
    assert chain_applies(BoundedScenario(), 2) and not chain_applies(Narrower(), 2)


def test_grid_chain_refuses_a_dtype_other_than_the_models_with_a_clear_error():
    """A float32 cell asked for a float64 chain crashed inside its matrix product; now one line."""
    model = make_cell("gru", 2)
    with pytest.raises(ValueError, match=r"dtype torch.float64 differs from the model's"):
        build_grid_chain(model, 4, 1.0, dtype=torch.float64)
    chain = build_grid_chain(model.double(), 4, 1.0, dtype=torch.float64)
    assert chain.points.dtype == torch.float64
