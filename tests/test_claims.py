"""Claims of README on stored parameters: the importance GRU (m = 2, `learnsyn train` defaults,
seed 0) is below the linear synapse that sees the flag and far above the flag-blind baselines
that made it look twice as good; the ideal GRU is within 2% of the optimum at m = 4 and is the
optimum at m = 2; in bounded at m = 2 the GRU is level with the strongest linear synapse found
(unstable modes and a drive allowed) with 1200 iterations and 0.8 % above it with 2400, exactly;
at m = 4 it is above the tuner's synapse by more than 2 paired standard errors, but its own
linearization refined along its modes, a better linear synapse than the tuner finds, is level
with it; in noisy a GRU started at the strongest linear synapse found stays level with it; at
bounded m = 4 a linear warm start loses to its start only through a lucky 2048-pair validation
batch; started at the tuned linear synapse, a GRU climbs above it at 8 levels (+7.6 %) and 32;
trained from ``auto`` for 4800 iterations it beats it by more than 8 % at 8 levels in every
seed (by more than 10 % in the seeds that first sit on a plateau) and stays
10 % below it at 32; in noisy m = 4, trained 4800 iterations, the GRU is level with a linear
control trained as long; the mlp cell (a free update) beats linear by 20 % at 8 levels and by
8 % at 16, where it is also above the table found by search, and is level with it at 32; in
noisy m = 2, trained like the GRU, it is level with a linear control trained as long (two seeds
above, one below), and trained the same way (Monte Carlo) in bounded it is below linear at
m = 2 and m = 4 and at 32 levels, where its Monte Carlo gradient (straight through the rounding)
is biased."""

from dataclasses import replace
from pathlib import Path

import pytest

from learnsyn.estimate.ratio import verdict_cutoff
from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.runs import evaluate_trained
from learnsyn.scenario import make_scenario


def test_learned_gru_is_below_the_gated_linear_synapse_and_above_the_flag_blind_ones(stored_run):
    stored, config, model = stored_run("importance-gru-m2-s0")
    learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
    area, stderr = learned.metrics["area"], learned.metrics_stderr["area"]
    scenario = make_scenario("importance")
    kw = dict(synapses=1000, horizon=600, convention="large-n", method="exact")
    gated = evaluate(make_model("optimal-linear", stored["gated_optimal_linear"]), scenario, **kw)
    assert gated.metrics["area"] == pytest.approx(stored["gated_area"], rel=1e-9)
    blind = {key: value for key, value in stored["gated_optimal_linear"].items()}
    blind.pop("b_flagged")  # the same synapse, blind to the flag
    flag_blind = evaluate(make_model("optimal-linear", blind), scenario, **kw).metrics["area"]
    exponential = evaluate(make_model("exponential", {"decay": 0.99755}), scenario, **kw)
    # measured: 1181-1200 +- 10-21 on six seeds of 4096 pairs; the scoreboard's 1202.1 +- 10.4
    assert area == pytest.approx(1190, abs=4 * stderr)
    assert area < gated.metrics["area"] - 3 * stderr  # below the gated optimum, 1265.6
    assert area > 2 * exponential.metrics["area"]  # the best flag-blind exponential: 505.4
    assert gated.metrics["area"] > 2 * flag_blind


@pytest.mark.parametrize(("m", "expected"), [(2, 0.9900), (4, 0.9991)])
def test_importance_gru_trained_900_iterations_matches_the_gated_linear_synapse(
    stored_run, m, expected
):
    """README's importance row (session 37: the runs stored, 3 seeds a size): the GRU trained
    900 iterations is level with the strongest synapse of its size found, the linear synapse
    with a flag-gated increment (1265.6 at m = 2, 1314.9 at m = 4, exact), where 300 iterations
    stay below it (the test above). Mean over seeds on common pairs; the error adds the seeds'
    spread and the Monte Carlo error the seeds share (the README's rule); the verdict at 95 %
    with the Welch-Satterthwaite t. Fails if the mean moves, or if it reads above or below."""
    # its weight's mean is 270 x its spread (seed 0, m = 2): not flagged, the float32 moments
    # lose 0.02 % of the area there (session 37, the same run read out less it)
    ratio, stderr, k = _seeds_over_linear(
        stored_run, f"importance-gru-m{m}-i900", "gated_optimal_linear", "gated_area"
    )
    assert ratio == pytest.approx(expected, abs=2e-3)  # measured, session 37
    assert ratio - k * stderr < 1 < ratio + k * stderr  # level: neither above nor below
    assert stderr < 0.025  # a verdict of level means something: within a few percent


def _seeds_over_linear(stored_run, group: str, params_key: str, area_key: str):
    """``(ratio, stderr, cutoff)`` of the seeds' mean area (``group``-s0..2, on 4096 common
    pairs) over the stored linear synapse's exact area: the error adds the seeds' spread and
    the Monte Carlo error they share (the README's rule), the cutoff is Welch-Satterthwaite's t
    at 95 %. No run may be flagged for float32 moments."""
    import numpy as np

    areas, errors = [], []
    for seed in range(3):
        stored, config, model = stored_run(f"{group}-s{seed}")
        learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
        areas.append(learned.metrics["area"])
        errors.append(learned.metrics_stderr["area"])
        assert "variance_share" not in learned.monte_carlo
    linear = evaluate(
        make_model("optimal-linear", stored[params_key]),
        make_scenario(config.task, config.task_params),
        synapses=1000,
        horizon=600,
        convention="large-n",
        method="exact",
    ).metrics["area"]
    assert linear == pytest.approx(stored[area_key], rel=1e-9)
    spread = float(np.std(areas, ddof=1) / np.sqrt(3))
    shared = float(np.mean(errors))
    k, _ = verdict_cutoff([(spread, 2), (shared, 15)])
    return float(np.mean(areas)) / linear, float(np.hypot(spread, shared)) / linear, k


def test_ideal_m4_gru_from_the_new_start_is_within_two_percent_of_the_optimum(stored_run):
    """The ideal m = 4 GRU (defaults, seed 0) is its own linearization, whose exact area is
    237.4: 0.987 of optimal-linear's 240.64 (from the former start, pairs from 2 steps, the three
    seeds' linearizations scored 229.0, 228.8 and 229.1: the m = 2 optimum, 228.5)."""
    from learnsyn.linearization import LinearizedCell, linearize

    _, config, model = stored_run("ideal-gru-m4-s0")
    scenario = make_scenario("ideal")
    kw = dict(synapses=1000, horizon=600, convention="large-n")
    linear = evaluate(LinearizedCell(linearize(model)), scenario, method="exact", **kw)
    assert linear.metrics["area"] == pytest.approx(237.42, abs=0.05)  # measured
    assert linear.metrics["area"] > 0.98 * 240.64  # optimal-linear, m = 4 (exact; the scoreboard)
    assert linear.metrics["area"] < 240.64  # and not above it: it is a linear synapse
    learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
    assert (
        abs(learned.metrics["area"] - linear.metrics["area"]) < 3 * learned.metrics_stderr["area"]
    )


def test_ideal_m2_gru_is_the_optimal_linear_synapse(stored_run):
    """Issue 11's ideal criterion on a stored run (m = 2, defaults, seed 0): the GRU is its own
    linearization, whose exact area is 228.41, 0.9996 of optimal-linear's 228.50 (seeds 1 and
    2: 227.61 and 228.44); the bar is 0.98."""
    from learnsyn.linearization import LinearizedCell, linearize

    _, config, model = stored_run("ideal-gru-m2-s0")
    kw = dict(synapses=1000, horizon=600, convention="large-n")
    scenario = make_scenario("ideal")
    linear = evaluate(LinearizedCell(linearize(model)), scenario, method="exact", **kw)
    assert linear.metrics["area"] == pytest.approx(228.41, abs=0.05)  # measured
    assert 0.98 * 228.50 < linear.metrics["area"] <= 228.50 + 1e-6  # optimal-linear, exact
    learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
    assert (
        abs(learned.metrics["area"] - linear.metrics["area"]) < 3 * learned.metrics_stderr["area"]
    )


#: ``linear-range`` tuned by the scoreboard for bounded, N = 1000, horizon 600, area above 1
#: (``learnsyn scoreboard --tasks bounded --state-sizes 2,4``): m = 2 with a learned drive,
#: exact area 177.89 on the grid (optimal-linear: 177.68); m = 4 (the m = 2 optimum embedded,
#: no drive kept), 177.8 +- 3.8 on the scoreboard's 8192 pairs
LINEAR_RANGE_BOUNDED_2 = {
    "A": [0.9945653676986694, -0.20410332083702087, -0.19372862577438354, 0.9952329397201538],
    "b": [0.13122200965881348, -0.13078665733337402],
    "c": [0.7117685079574585, -0.7152509093284607],
    "drive": [0.20883816480636597, 0.19849956035614014],
}
LINEAR_RANGE_BOUNDED_4 = {
    "A": [0.9872981657807574, 0.023995054100363088, 0.0004581304763915084, 0.005458130476391511,
          -0.0033103695327422814, 0.9875042566296958, 0.0004581304763915084,
          0.0004581304763915084, 0.0004581304763915084, 0.0004581304763915084,
          0.5004581304763915, 0.0004581304763915084, 0.0004581304763915084,
          0.0004581304763915084, 0.0004581304763915084, 0.5004581304763915],
    "b": [-0.00543081687513664, -0.1301021757378101, 0.0024019257150564286,
          0.0024019257150564286],
    "c": [-0.3083007819287274, -0.12432147427441392, 0.018325219055660338,
          0.018325219055660338],
}  # fmt: skip


def _best_linear(key: str) -> dict:
    """A linear synapse stored in tests/data/best-linear-bounded.json: the strongest found in
    bounded at m variables (``"m2"``, ``"m4"``; ``"m2_levels8"`` at 8 levels) or the former
    one (``"m2_before_session_22"``)."""
    import json

    path = Path(__file__).parent / "data" / "best-linear-bounded.json"
    return json.loads(path.read_text())[key]


def test_bounded_m2_gru_trained_longer_is_below_the_best_linear_synapse(stored_run):
    """README's bounded m = 2 claim with 1200 iterations (seed 0; seeds 1 and 2: 182.21 and
    182.29): exactly on the level grid the GRU's area is 182.20, 0.9 % below the strongest
    linear synapse found since session 22, the difference integrator (183.88,
    tests/data/best-linear-bounded.json), and within 0.5 % of the one found before it (182.05:
    an unstable mode of radius 1.54 and a drive), against which it read "level". The tuner's
    synapse of three rounds ago, 177.89, is below all three. Exact: no Monte Carlo error, so the
    bar is the margin itself. Fails if either side moves."""
    _, config, model = stored_run("bounded-gru-m2-i1200-s0")
    learned = evaluate(model, make_scenario("bounded"), **BOUNDED_EXACT).metrics["area"]
    linear = _exact_best_linear(2)
    tuned = evaluate(make_model("linear-range", LINEAR_RANGE_BOUNDED_2), make_scenario("bounded"),
                     **BOUNDED_EXACT)  # fmt: skip
    assert tuned.metrics["area"] == pytest.approx(177.89, abs=0.05)
    assert tuned.metrics["area"] < linear
    assert learned == pytest.approx(182.20, abs=0.05)  # measured
    assert 0.985 < learned / linear < 0.995
    assert abs(learned / _best_linear("m2_before_session_22")["value"] - 1) < 0.005


#: ``linear-range`` as the scoreboard retuned it at 2e55215 (session 29, README "Rerun at
#: 2e55215"): bounded m = 2, exact area 183.91 on the grid
LINEAR_RANGE_BOUNDED_2_S29 = {
    "A": [
        -3.3642747984601036e-05,
        -1.0000060131609225,
        -0.9892164778712389,
        -0.0009632697260172379,
    ],
    "b": [-0.0666640238575287, 0.06526929449205594],
    "c": [-0.9561207032512065, 0.9421751502754736],
    "drive": [-0.06666981155234783, -0.06628832794761187],
}


def test_the_retuned_bounded_m2_reference_is_the_difference_integrator_and_the_gru_below_it(
    stored_run,
):
    """README, "Rerun at 2e55215": the scoreboard's retune of ``linear-range`` at bounded m = 2
    ends at the difference integrator's shape (A close to -[[0, 1], [1, 0]]: eigenvalues near
    +-0.99) and value (183.91 against the stored 183.88, exactly), where the table has 182.1;
    the default GRU (seed 0 stored; the rerun's three seeds 179.3-180.0) is 2.3 % below it.
    Fails if the retuned synapse is not that shape or value, or the GRU reaches it."""
    import numpy as np

    scenario = make_scenario("bounded")
    retuned = evaluate(make_model("linear-range", LINEAR_RANGE_BOUNDED_2_S29), scenario,
                       **BOUNDED_EXACT).metrics["area"]  # fmt: skip
    assert retuned == pytest.approx(183.91, abs=0.01)  # measured
    assert abs(retuned / _exact_best_linear(2) - 1) < 0.001
    eigenvalues = np.sort(np.linalg.eigvals(np.reshape(LINEAR_RANGE_BOUNDED_2_S29["A"], (2, 2))))
    assert np.allclose(eigenvalues.real, [-0.995, 0.995], atol=0.01)
    _, _, model = stored_run("bounded-gru-m2-s0")
    learned = evaluate(model, scenario, **BOUNDED_EXACT).metrics["area"]
    assert 0.97 < learned / retuned < 0.985


def test_bounded_m2_gru_trained_longest_is_level_with_the_best_linear_synapse(stored_run):
    """With 2400 iterations (seed 0; the three seeds: 183.49, 183.51, 183.52) the GRU is level
    with the strongest linear synapse found (183.88, exact; 0.2 % below it), where against the
    one found before session 22 (182.05) it read 0.8 % above: README's last margin of a
    nonlinear GRU over linear at 16 levels is gone. Fails if either side moves by 0.5 %."""
    _, _, model = stored_run("bounded-gru-m2-i2400-s0")
    learned = evaluate(model, make_scenario("bounded"), **BOUNDED_EXACT).metrics["area"]
    assert learned == pytest.approx(183.49, abs=0.05)  # measured
    assert abs(learned / _exact_best_linear(2) - 1) < 0.005


def test_a_difference_integrator_is_the_strongest_linear_synapse_found_at_8_and_16_levels(
    stored_run,
):
    """Session 22 (docs/learned-vs-linear.md, "A difference integrator"): a linear synapse with
    A close to -[[0, 1], [1, 0]] integrates the events on x1 - x2 (eigenvalue +1, radius 1.0007
    at 8 levels, 0.994 at 16) while a constant drive keeps x1 + x2 oscillating (eigenvalue -1),
    which makes the rounding of both variables a finer grid for their difference. Exactly
    147.24 at 8 levels (8.8 % above ``linear-range``'s 135.32, against which README's 8-level
    margins had been measured) and 183.88 at 16 (1.0 % above the former 182.05). Against it the
    mlp cell's margins shrink from +20.6 % and +8.7 % to +10.8 % and +7.6 %, and the 8-level GRU
    that converged to 147.33 is level with it. Fails if the integrator or a margin moves."""
    areas = {}
    for key, levels in (("m2_levels8", 8), ("m2", 16)):
        scenario = make_scenario("bounded", {"levels": levels})
        stored = _best_linear(key)
        model = make_model("linear-range", stored["params"])
        areas[levels] = evaluate(model, scenario, **BOUNDED_EXACT).metrics["area"]
        assert areas[levels] == pytest.approx(stored["value"], abs=0.01)
    assert areas[8] > 1.085 * 135.32 and areas[16] > 1.009 * 182.05
    mlp8 = evaluate(stored_run("bounded-L8-mlp-m2-i4800-s0")[2],
                    make_scenario("bounded", {"levels": 8}), **BOUNDED_EXACT)  # fmt: skip
    mlp16 = evaluate(stored_run("bounded-L16-mlp-m2-i4800-s0")[2], make_scenario("bounded"),
                     **BOUNDED_EXACT)  # fmt: skip
    assert 1.10 < mlp8.metrics["area"] / areas[8] < 1.12  # measured 1.108
    assert 1.07 < mlp16.metrics["area"] / areas[16] < 1.08  # measured 1.076
    gru8 = evaluate(stored_run("bounded-L8-gru-m2-i4800-s5")[2],
                    make_scenario("bounded", {"levels": 8}), **BOUNDED_EXACT)  # fmt: skip
    assert abs(gru8.metrics["area"] / areas[8] - 1) < 0.002  # 147.33: level


def _exact_best_linear(m: int) -> float:
    """The strongest linear synapse found in bounded at m variables, evaluated exactly and
    checked against the stored value."""
    best = _best_linear(f"m{m}")
    linear = evaluate(make_model("linear-range", best["params"]), make_scenario("bounded"),
                      **BOUNDED_EXACT)  # fmt: skip
    assert linear.method == "exact"
    assert linear.metrics["area"] == pytest.approx(best["value"], abs=0.01)
    return linear.metrics["area"]


#: the exact evaluation of README's bounded claims (N = 1000, horizon 600, the runs' burn-in)
BOUNDED_EXACT = dict(synapses=1000, horizon=600, convention="large-n", method="exact",
                     burn_in=1500)  # fmt: skip


def test_bounded_m4_gru_beats_the_best_linear_synapse_on_the_same_pairs(stored_run):
    """The scoreboard's bounded m = 4 verdict on one stored run (`--batch 2048 --iterations
    600`, seed 0; five seeds give 1.075 +- 0.024 there): on the same 8192 pairs the GRU is above
    ``linear-range``'s tuned synapse (m = 4) by more than 2 paired standard errors of the ratio
    (the next test shows why README does not stop there)."""
    from learnsyn.compare import row_ratio

    _, config, model = stored_run("bounded-gru-m4-b2048-i600-s0")
    scenario = make_scenario("bounded")
    kw = dict(synapses=1000, horizon=600, convention="large-n", method="monte-carlo",
              batch=8192, seed=7, burn_in=config.resolved_burn_in())  # fmt: skip
    rows = []
    for synapse in (model, make_model("linear-range", LINEAR_RANGE_BOUNDED_4)):
        ev = evaluate(synapse, scenario, **kw)
        rows.append({"metrics": ev.metrics, "metrics_stderr": ev.metrics_stderr,
                     "leave_one_out": ev.monte_carlo["leave_one_out_metrics"]})  # fmt: skip
    ratio = row_ratio(rows[0], rows[1], "area")  # measured: 191.8 / 176.4 = 1.088 +- 0.025
    assert ratio.paired and ratio.stderr > 0
    assert ratio.value - 2 * ratio.stderr > 1, (ratio, rows[0]["metrics"], rows[1]["metrics"])


def test_bounded_m4_gru_is_above_its_own_linearization_but_level_with_a_refined_one(
    stored_run,
):
    """Exactly on the 16^4 level grid (the stored run of the test above): the GRU scores 190.30,
    its own linearization 183.86 and ``linear-range``'s tuned synapse 177.10. The linearization is
    an affine synapse with an unstable pair (radius 1.010), i.e. a ``linear-range`` member with a
    drive that the tuner's search does not reach; refined along its modes
    (``tools.refine_linear``), seed 4's linearization reaches 189.45, which the stored GRU is
    within 1 % of (the five seeds' mean, 187.53, is 0.990 of it): a match, not a win."""
    from learnsyn.linearization import LinearizedCell, linearize_in

    _, config, model = stored_run("bounded-gru-m4-b2048-i600-s0")
    scenario = make_scenario("bounded")
    kw = dict(synapses=1000, horizon=600, convention="large-n", method="exact", burn_in=1500)
    learned = evaluate(model, scenario, **kw).metrics["area"]
    linearized = evaluate(LinearizedCell(linearize_in(model, scenario)), scenario, **kw)
    tuned = evaluate(make_model("linear-range", LINEAR_RANGE_BOUNDED_4), scenario, **kw)
    best = _best_linear("m4")
    refined = evaluate(make_model("linear-range", best["params"]), scenario, **kw)
    assert learned == pytest.approx(190.30, abs=0.05)  # measured
    assert linearized.metrics["area"] == pytest.approx(183.86, abs=0.05)
    assert tuned.metrics["area"] == pytest.approx(177.10, abs=0.05)
    assert refined.metrics["area"] == pytest.approx(best["value"], abs=0.01)  # 189.45
    assert learned > 1.03 * linearized.metrics["area"] > 1.03 * tuned.metrics["area"]
    assert abs(learned / refined.metrics["area"] - 1) < 0.01


def _exact_warm_start(model, stored, scenario):
    """A stored exact warm-start run on the bounded grid: (its area, its own linearization's,
    the linear synapse's it started at), all exact."""
    from learnsyn.linearization import LinearizedCell, linearize_in

    def area(synapse):
        return evaluate(synapse, scenario, **BOUNDED_EXACT).metrics["area"]

    linearized = LinearizedCell(linearize_in(model, scenario))
    return area(model), area(linearized), area(make_model("linear-range", stored["start"]))


def _common_pairs_row(model, config, scenario, batch: int = 65536) -> dict:
    """``model``'s Monte Carlo row on ``batch`` common fresh pairs (seed 7; ``config``'s
    burn-in): metrics, errors and leave-one-out values, as ``row_ratio`` takes them."""
    kw = dict(synapses=1000, horizon=600, convention="large-n", method="monte-carlo",
              batch=batch, seed=7, burn_in=config.resolved_burn_in())  # fmt: skip
    ev = evaluate(model, scenario, **kw)
    return {"metrics": ev.metrics, "metrics_stderr": ev.metrics_stderr,
            "leave_one_out": ev.monte_carlo["leave_one_out_metrics"]}  # fmt: skip


def _paired_ratio(synapse, other, config, scenario, other_row: dict | None = None):
    """``synapse`` against ``other``: the paired ratio of areas on 65,536 common fresh pairs
    (seed 7; ``config``'s burn-in), both sides' errors; ``other_row``: ``other``'s row already
    made on them (``_common_pairs_row``)."""
    from learnsyn.compare import row_ratio

    if other_row is None:
        other_row = _common_pairs_row(other, config, scenario)
    return row_ratio(_common_pairs_row(synapse, config, scenario), other_row, "area")


def _against_start(model, stored, config, scenario):
    """A stored warm-start run's kept parameters against the linear synapse it started at."""
    return _paired_ratio(model, make_model("linear-range", stored["start"]), config, scenario)


def test_noisy_m2_gru_started_at_the_strongest_linear_synapse_stays_level_with_it(stored_run):
    """The warm-start verdict (README, docs/learned-vs-linear.md): a GRU started exactly at the
    strongest linear synapse found in noisy m = 2 (``--start-from``, gates held constant) and
    meta-trained for 600 iterations finds no nonlinear ascent: on 65,536 common pairs it is level
    with its start (measured 1.006 +- 0.004; 0.999 on another 65,536; three seeds 1.001 +-
    0.004). Fails if training had found a gain (or a loss) beyond 2 paired standard errors."""

    stored, config, model = stored_run("noisy-gru-m2-warm-s0")
    ratio = _against_start(model, stored, config, make_scenario("noisy"))
    assert ratio.paired and 0 < ratio.stderr < 0.006
    assert ratio.value == pytest.approx(1.0059, abs=1e-3)  # measured
    assert ratio.value - 2 * ratio.stderr < 1 < ratio.value + 2 * ratio.stderr


def test_noisy_m4_gru_trained_4800_iterations_is_level_with_a_linear_control_trained_as_long(
    stored_run,
):
    """The noisy m = 4 verdict (README, docs/learned-vs-linear.md "Noisy, trained 4800
    iterations"): trained 4800 iterations, the best of three GRU seeds is level with the
    strongest linear synapse found, the linear control (a tanh cell linear over the range,
    ``output_scale=1000``) trained as long: 1.005 +- 0.007 on these pairs, 0.996 on the
    verdict's, where the seeds' mean is 0.987 +- 0.009. Against the shorter-trained linear side
    the same GRUs had read 2.3 % above. Fails if the GRU is above the linear control by 2 paired
    standard errors, or if it reaches the former +2.3 % within them."""
    _, config, gru = stored_run("noisy-gru-m4-i4800-s2")
    _, linear_config, linear = stored_run("noisy-linrnn-m4-i4800-s1")
    assert linear_config.resolved_burn_in() == config.resolved_burn_in()
    assert linear.log_scale.exp().min() > 500  # s tanh(y / s): linear over the range [-1, 1]
    ratio = _paired_ratio(gru, linear, config, make_scenario("noisy"))
    assert ratio.paired and 0 < ratio.stderr < 0.01
    assert ratio.value == pytest.approx(1.0053, abs=1e-3)  # measured
    assert ratio.value - 2 * ratio.stderr < 1
    assert ratio.value + 2 * ratio.stderr < 1.023


def test_bounded_m2_gru_started_at_a_strong_linear_synapse_climbs_above_it(stored_run):
    """The bounded m = 2 warm start (docs/learned-vs-linear.md): a GRU started exactly at the
    strongest linear synapse found before session 22 (182.05, ``--start-from``, gates held
    constant, a linear candidate) and trained 600 exact updates at lr 0.005 reaches 183.49,
    while its own linearization falls to 181.07: the gain over its start is its gates'
    nonlinearity (the rnn held linear, trained the same way, stays at 182.05). Exact, so the bar
    is the margin itself. It does not reach the difference integrator found since (183.88):
    level with it, 0.2 % below. Fails if the gain goes, turns out linear, or passes 183.88."""
    stored, _, model = stored_run("bounded-gru-m2-warm-s0")
    learned, linearized, start = _exact_warm_start(model, stored, make_scenario("bounded"))
    former = _best_linear("m2_before_session_22")["value"]
    assert start == pytest.approx(former, abs=0.01)  # it started at the former best
    assert learned == pytest.approx(183.49, abs=0.05)  # measured
    assert learned > 1.005 * former > linearized
    assert abs(learned / _exact_best_linear(2) - 1) < 0.005


def test_at_32_levels_the_gru_started_at_the_tuned_linear_synapse_climbs_above_it(stored_run):
    """The same warm start on a 32-level grid (docs/learned-vs-linear.md), where the GRU trained
    from ``auto`` ends 10 % below the tuned linear synapse: started at ``linear-range``'s 206.82
    (the tuner with the current cap and modal rounds gives 206.817), its gates climb to 208.17
    in 2400 exact updates, still rising, while its linearization falls to 206.64 (a linear cell
    trained the same way stays at 206.82). So the 32-level deficit is the training from
    ``auto``, not the architecture. Fails if the gain goes or turns out linear."""
    stored, _, model = stored_run("bounded-L32-gru-m2-warm-s0")
    scenario = make_scenario("bounded", {"levels": 32})
    learned, linearized, start = _exact_warm_start(model, stored, scenario)
    assert start == pytest.approx(206.816, abs=0.01)  # measured
    assert learned == pytest.approx(208.17, abs=0.05)  # measured
    assert learned > 1.005 * start > linearized


def test_at_32_levels_longer_training_from_auto_stays_10_percent_below_linear(stored_run):
    """The negative side of the level counts (docs/learned-vs-linear.md, "Longer training from
    auto"): at 32 levels the GRU from ``auto`` converges to a local optimum below the tuned
    linear synapse (186.49 in all 3 seeds with 4800 iterations, as with 1200), where the warm
    start passes it (208.17, the test above). Stored: seed 0. Exact. Fails if longer training
    from ``auto`` had reached the linear synapse after all."""
    stored, _, model = stored_run("bounded-L32-gru-m2-i4800-s0")
    scenario = make_scenario("bounded", {"levels": 32})
    learned, _, start = _exact_warm_start(model, stored, scenario)
    assert start == pytest.approx(206.816, abs=0.01)  # measured
    assert learned == pytest.approx(186.49, abs=0.05)  # measured
    assert learned < 0.91 * start


def test_at_8_levels_a_gru_started_at_the_tuned_linear_synapse_beats_it_by_7_percent(stored_run):
    """The 8-level warm start (docs/learned-vs-linear.md): started at ``linear-range``'s
    synapse (135.32, where a linear cell trained the same way stays) with only its gates free,
    the GRU reaches 145.61 in 4800 exact updates (lr 0.005; 0.01 and 0.002 give 145.38 and
    138.23 in 2400), 1.076 x the linear synapse, while its own linearization falls to 134.52;
    the GRU trained from ``auto`` is at 136.3-136.5 after 2400 iterations (3 seeds), a plateau
    it leaves later (the 4800-iteration test below). Cross-checked by Monte Carlo on 65,536
    common pairs, a method independent of the grid chain (paired ratio 1.066 +- 0.008, above
    1.03 at 2 s.e.). Fails if the gain shrinks below 5 %, turns out linear, or the exact figure
    disagrees with the simulation."""
    _check_8_level_margin(stored_run("bounded-L8-gru-m2-warm-s0"), 145.61, 1.05, 1.03)


def test_at_8_levels_the_gru_trained_from_auto_for_4800_iterations_beats_linear_by_13_percent(
    stored_run,
):
    """Training from ``auto`` for 4800 iterations (16 x the default; docs/learned-vs-linear.md,
    section "Longer training from auto"): on the 8-level grid the GRU sits on a plateau level
    with the tuned linear synapse (about 136) for 2000-3600 iterations in seeds 0-4, then leaves
    it; they end at 147.7-153.6, 1.09-1.13 x ``linear-range``'s 135.32, far above their own
    linearizations (129-130). Stored: seed 1 (152.85). Exact on the grid, and cross-checked by
    Monte Carlo on 65,536 common pairs against the linear synapse (both sides' errors). Fails if
    the margin shrinks below 10 %, turns out linear, or the simulation disagrees."""
    _check_8_level_margin(stored_run("bounded-L8-gru-m2-i4800-s1"), 152.85, 1.10, 1.07)


def test_at_8_levels_a_seed_that_skips_the_plateau_converges_lower_but_still_beats_linear(
    stored_run,
):
    """The other branch (docs/learned-vs-linear.md, "The plateau depends on the seed"): seeds
    5-15 pass the linear level within 400 updates, and seeds 5, 6, 7 trained 4800 updates all
    converge to 147.33-147.34, 1.089 x ``linear-range``, with linearizations at 68-78: a
    different, strongly nonlinear synapse. With the plateau seeds, all 8 seeds of 4800 updates
    are above 1.08 (1.105 +- 0.007). Stored: seed 5. Fails if that branch falls below 8 %
    above the linear synapse, turns out linear, or the simulation disagrees."""
    _check_8_level_margin(stored_run("bounded-L8-gru-m2-i4800-s5"), 147.33, 1.08, 1.05)


def test_at_8_levels_the_strongest_2_variable_synapse_found_is_nonlinear_and_31_percent_above(
    stored_run,
):
    """The search without a form (docs/learned-vs-linear.md, "The strongest 2-variable synapse
    on the grid"): every 2-variable synapse of the 8-level grid is a table of targets and a
    readout; optimized on the exact chain from the strongest linear synapse found (135.32), the
    table reaches 176.85, 1.307 x it (from the GRU trained 9600 updates, 159.49: 175.89), far
    above the GRU runs stored here (152.85 and 147.33). The stored table is evaluated by the
    one evaluation path, exactly on the grid and by Monte Carlo with the scenario's own
    simulator on 65,536 pairs common with the linear synapse (measured 1.291 +- 0.013). Fails
    if the table is not a synapse of the scenario (targets off the range, the simulation
    disagreeing) or its margin over linear falls below 25 %."""
    from learnsyn.tools.grid_table import load_grid_synapse

    stored, config, gru = stored_run("bounded-L8-gru-m2-i4800-s1")
    scenario = make_scenario("bounded", {"levels": 8})
    table = load_grid_synapse(Path(__file__).parent / "data" / "bounded-L8-grid-table.json")
    assert table.targets.abs().max() <= 1.0 and table.levels == 8 and table.state_size == 2
    linear = make_model("linear-range", stored["start"])
    area, linear_area, gru_area = (
        evaluate(model, scenario, **BOUNDED_EXACT).metrics["area"] for model in (table, linear, gru)
    )
    assert linear_area == pytest.approx(135.32, abs=0.01)  # measured
    assert area == pytest.approx(176.85, abs=0.05)  # measured
    assert area > 1.25 * linear_area and area > 1.1 * gru_area
    ratio = _paired_ratio(table, linear, config, scenario)
    assert ratio.paired and ratio.value - 2 * ratio.stderr > 1.2
    assert abs(ratio.value - area / linear_area) < 2 * ratio.stderr


def test_at_16_and_32_levels_a_search_without_a_form_finds_a_nonlinear_synapse_5_percent_above(
    stored_run,
):
    """The same search on the default 16-level grid and on 32 levels (docs/learned-vs-linear.md):
    from the GRU trained 9600 updates (183.94, 1.010 x linear) the 16-level table reaches 193.39,
    1.062 x the strongest linear synapse found (182.05), where every GRU run stays within 1 % of
    it; from ``linear-range``'s 32-level synapse (206.82, where the GRU from ``auto`` converges
    10 % below) the 32-level table reaches 217.30 at lr 0.002, 1.051 x it. Exact. Fails if
    either margin falls below 4 % or a table leaves the scenario's range."""
    from learnsyn.tools.grid_table import load_grid_synapse

    data = Path(__file__).parent / "data"
    stored, _, _ = stored_run("bounded-L32-gru-m2-i4800-s0")  # its start: linear-range, 32 levels
    linear_32 = evaluate(make_model("linear-range", stored["start"]),
                         make_scenario("bounded", {"levels": 32}), **BOUNDED_EXACT)  # fmt: skip
    assert linear_32.metrics["area"] == pytest.approx(206.816, abs=0.01)  # measured
    for levels, measured, linear in (
        (16, 193.39, _exact_best_linear(2)),
        (32, 217.30, linear_32.metrics["area"]),
    ):
        table = load_grid_synapse(data / f"bounded-L{levels}-grid-table.json")
        assert table.targets.abs().max() <= 1.0 and table.levels == levels
        scenario = make_scenario("bounded", {"levels": levels})
        area = evaluate(table, scenario, **BOUNDED_EXACT).metrics["area"]
        assert area == pytest.approx(measured, abs=0.05)  # measured
        assert area > 1.04 * linear


def test_at_8_levels_the_mlp_cell_meta_trained_from_its_default_beats_linear_by_20_percent(
    stored_run,
):
    """The ``mlp`` cell (a linear synapse plus a residual tanh network of the state and the
    event; docs/learned-vs-linear.md, "A learned synapse with a free update"), trained with
    ``learnsyn train`` defaults but 4800 iterations on the 8-level grid: seeds 0, 1, 2 end at
    163.36, 163.14, 163.10, 1.206 x ``linear-range``'s 135.32 and above every GRU run (best
    159.49, 9600 updates), with linearizations at 126-131, below the linear synapse. Stored:
    seed 0. Cross-checked by Monte Carlo on 65,536 common pairs (measured 1.194 +- 0.012). The
    table found by search (176.85) stays above it: a bound that could have failed the other way,
    and fails this test if a later cell passes it. Fails if the margin over linear falls below
    15 %, the gain turns out linear, or the simulation disagrees."""
    from learnsyn.tools.grid_table import load_grid_synapse

    loaded = stored_run("bounded-L8-mlp-m2-i4800-s0")
    _check_8_level_margin(loaded, 163.36, 1.15, 1.12)
    scenario = make_scenario("bounded", {"levels": 8})
    table = load_grid_synapse(Path(__file__).parent / "data" / "bounded-L8-grid-table.json")
    table_area = evaluate(table, scenario, **BOUNDED_EXACT).metrics["area"]
    assert table_area > 1.05 * evaluate(loaded[2], scenario, **BOUNDED_EXACT).metrics["area"]


def test_at_16_levels_the_mlp_cell_beats_linear_the_gru_and_the_table_found_by_search(
    stored_run,
):
    """On the default 16-level grid the same training (4800 iterations, seed 0) reaches 198.09,
    1.088 x the strongest linear synapse found (182.05), above every GRU run (183.94 at 9600
    updates) and above the table the search without a form found from the GRU (193.39). The
    same search started from the mlp's own table goes on to 200.90 (1000 steps): the strongest
    2-variable synapse found at 16 levels is that table, and the mlp is 0.986 of it. Exact.
    Fails if the margin over linear falls below 6 %, the mlp falls below the first table or
    more than 3 % below the second, or the gain turns out linear (its own linearization is
    checked below the linear synapse)."""
    from learnsyn.linearization import LinearizedCell, linearize_in
    from learnsyn.tools.grid_table import load_grid_synapse

    _, _, model = stored_run("bounded-L16-mlp-m2-i4800-s0")
    scenario = make_scenario("bounded")
    assert scenario.params["levels"] == 16

    def area(synapse):
        return evaluate(synapse, scenario, **BOUNDED_EXACT).metrics["area"]

    learned, linear = area(model), _exact_best_linear(2)
    data = Path(__file__).parent / "data"
    table = area(load_grid_synapse(data / "bounded-L16-grid-table.json"))
    from_mlp = area(load_grid_synapse(data / "bounded-L16-grid-table-from-mlp.json"))
    assert learned == pytest.approx(198.09, abs=0.05)  # measured
    assert table == pytest.approx(193.39, abs=0.05)  # measured
    assert from_mlp == pytest.approx(200.90, abs=0.05)  # measured
    assert learned > 1.06 * linear and learned > table and 0.97 * from_mlp < learned < from_mlp
    assert area(LinearizedCell(linearize_in(model, scenario))) < linear


def test_at_32_levels_the_mlp_cell_is_level_with_linear_depending_on_the_seed(stored_run):
    """At 32 levels (``--lr 0.005``, 4800 iterations) the mlp's seeds end at 210.14, 208.36 and
    187.57 against ``linear-range``'s 206.82: 0.977 +- 0.035, level, not above (README says so).
    Stored: seed 0 (above linear, 1.016) and seed 2 (in the basin
    where the GRU from ``auto`` ends, 0.907). Exact. Fails if either stored run moves, so that
    the "level" verdict would need restating."""
    scenario = make_scenario("bounded", {"levels": 32})
    best, _, model_0 = stored_run("bounded-L32-mlp-m2-i4800-s0")
    _, _, model_2 = stored_run("bounded-L32-mlp-m2-i4800-s2")

    def area(synapse):
        return evaluate(synapse, scenario, **BOUNDED_EXACT).metrics["area"]

    linear = area(make_model("linear-range", best["start"]))
    assert linear == pytest.approx(206.816, abs=0.01)  # measured
    assert area(model_0) == pytest.approx(210.14, abs=0.05)  # measured
    assert area(model_2) == pytest.approx(187.57, abs=0.05)  # measured
    assert area(model_0) > 1.01 * linear and area(model_2) < 0.92 * linear


def _check_8_level_margin(loaded, measured: float, margin: float, simulated_floor: float):
    """A stored 8-level run against ``linear-range`` tuned for that grid (135.32, its
    ``start``): exactly ``measured``, above ``margin`` x the linear synapse and x its own
    linearization; on 65,536 common pairs the paired ratio above ``simulated_floor`` at 2 s.e.
    and consistent with the exact one."""
    stored, config, model = loaded
    scenario = make_scenario("bounded", {"levels": 8})
    learned, linearized, start = _exact_warm_start(model, stored, scenario)
    assert start == pytest.approx(135.32, abs=0.01)  # measured
    assert learned == pytest.approx(measured, abs=0.05)
    assert learned > margin * start > margin * linearized
    ratio = _against_start(model, stored, config, scenario)
    assert ratio.paired and ratio.value - 2 * ratio.stderr > simulated_floor
    assert abs(ratio.value - learned / start) < 2 * ratio.stderr


def test_bounded_m4_linear_warm_start_loses_only_through_a_lucky_validation_batch(stored_run):
    """The validation-batch verdict (docs/learned-vs-linear.md): a tanh RNN held linear
    (``output_scale`` 1000), started at the strongest bounded m = 4 linear synapse found and
    trained 600 iterations, drifts below its start, and the 2048-pair validation batch keeps the
    drifted iterate (iteration 300) because on those pairs it scores 6 % above the start. On
    32,768 validation pairs (``--validation-batch 32768``) the start scores higher, which is why
    all three seeds then keep it (ratio to the start 0.978 -> 1.001). Fails if the drifted
    iterate was not worse (65,536 common fresh pairs, 2 paired s.e.) or if the larger
    validation batch would not have preferred the start."""
    import torch

    from learnsyn.cells import start_at_linear
    from learnsyn.training import build_model, validation_score

    stored, config, drifted = stored_run("bounded-linrnn-m4-warm-s0")
    start = build_model(config)
    start_at_linear(start, stored["start"])
    scenario, cpu = make_scenario("bounded"), torch.device("cpu")

    def scores(pairs):
        chosen = replace(config, validation_batch=pairs)
        return [validation_score(m, scenario, chosen, cpu) for m in (drifted, start)]

    small, large = scores(2048), scores(32768)
    # measured (190.152 and 179.432 until the native kernel's tanh was made exact near 0 for
    # a wide saturation in session 33: this cell's output_scale is 1000; 189.484 until its
    # level division was made exact in session 35, which moved a few states a level)
    assert small == pytest.approx([189.522, 178.757], abs=0.01)
    assert small[0] > small[1] and large[1] > large[0]
    ratio = _against_start(drifted, stored, config, scenario)
    assert ratio.paired and ratio.value == pytest.approx(0.9648, abs=1e-3)  # measured (0.9658)
    assert ratio.value + 2 * ratio.stderr < 1


def test_noisy_m2_mlp_is_level_with_the_strongest_linear_synapse_over_six_seeds(stored_run):
    """The mlp cell in noisy m = 2 (README, docs/learned-vs-linear.md "The mlp cell in noisy"
    and "Six seeds"), trained like the GRU (``--batch 2048 --validation-batch 32768
    --iterations 4800``, seeds 0-5), against the strongest linear synapse found, the linear
    control trained as long (``--cell rnn --cell-param output_scale=1000``, seed 0, stored): on
    65,536 common pairs 1.022 +- 0.005, 1.032 +- 0.007, 0.981 +- 0.007, then (seeds 3-5, run
    after the first three had read 1.012 +- 0.015) 0.995 +- 0.006, 0.996 +- 0.006, 0.992 +-
    0.008 (measured). Two seeds above by more than 2 paired standard errors, one below, three
    level; the seed mean level (1.003 +- 0.008), the upper end of its 95 % interval (Student's
    t, 5 degrees of freedom: mean + 2.57 s.e. = 1.024) below 1.025; the
    best seed far above its own linearization (a nonlinear synapse) but less than 5 % above
    linear, where at 16 levels in bounded the same cell gains 8.7 %. Fails if a seed's verdict
    changes, if the seed mean leaves "level" either way or its bound reaches 2.5 %, or if the
    best seed's gain reaches 5 %."""
    import statistics

    from learnsyn.linearization import LinearizedCell, linearize_in

    noisy = make_scenario("noisy")
    _, linear_config, linear = stored_run("noisy-linrnn-m2-i4800-s0")
    assert linear.log_scale.exp().min() > 500  # s tanh(y / s): linear over the range [-1, 1]
    linear_row = _common_pairs_row(linear, linear_config, noisy)  # the same pairs for every seed
    ratios, models = [], []
    for seed in range(6):
        _, config, model = stored_run(f"noisy-mlp-m2-i4800-s{seed}")
        assert config.resolved_burn_in() == linear_config.resolved_burn_in()
        ratios.append(_paired_ratio(model, linear, config, noisy, linear_row))
        models.append((config, model))
    values = [ratio.value for ratio in ratios]
    measured = [1.0218, 1.0318, 0.9814, 0.9953, 0.9964, 0.9917]
    assert values == pytest.approx(measured, abs=1e-3)
    assert all(ratio.paired and 0 < ratio.stderr < 0.01 for ratio in ratios)
    above = [ratio.value - 2 * ratio.stderr > 1 for ratio in ratios]
    below = [ratio.value + 2 * ratio.stderr < 1 for ratio in ratios]
    assert above == [True, True, False, False, False, False]
    assert below == [False, False, True, False, False, False]
    spread = statistics.stdev(values) / len(values) ** 0.5
    k, _ = verdict_cutoff([(spread, len(values) - 1)])  # t, 5 degrees of freedom: 2.57
    assert statistics.mean(values) - k * spread < 1 < statistics.mean(values) + k * spread
    assert statistics.mean(values) + k * spread < 1.025  # measured 1.003 + 2.57 x 0.008
    assert ratios[1].value + 2 * ratios[1].stderr < 1.05
    config, model = models[1]
    own = LinearizedCell(linearize_in(model, noisy))
    area = [_common_pairs_row(m, config, noisy, 8192)["metrics"]["area"] for m in (model, own)]
    assert area[0] > 1.05 * area[1]  # measured 1.10


def test_noisy_m2_gru_trained_4800_iterations_is_above_the_linear_controls_trained_as_long(
    stored_run,
):
    """Noisy m = 2, session 37 (README's noisy row; the runs stored at last): three GRUs trained
    ``--batch 2048 --validation-batch 32768 --iterations 4800`` (seeds 0-2) against the two
    linear controls trained the same way (``--cell rnn --cell-param output_scale=1000 --lr
    0.005``, seeds 0 and 1, each its own linearization), on 65,536 common pairs: 1.019, 1.012,
    1.017 and 1.016, 1.008, 1.014 (measured). Against the stronger control the seed mean is
    1.013 +- 0.002 (spread), and with the Monte Carlo error the seeds share added (the README's
    rule, Welch t) its 95 % interval stays above 1 (1.002-1.023): a nonlinear gain of about 1.3 %
    over the linear synapses trained as long, where each GRU is 10-20 % above its own
    linearization. This set's lower end is borderline: of ten independent sets (seeds 7-16, an
    audit, /work/runs-s37/noisy-pooled) five read above and five level, and pooled they give
    1.013, 95 % 1.009-1.017; the test pins this set's values and verdict as a regression check.
    Fails if the gain vanishes or reaches 3 %, or if a GRU comes near its linearization."""
    import statistics

    from learnsyn.compare import row_ratio
    from learnsyn.linearization import LinearizedCell, linearize_in

    noisy = make_scenario("noisy")
    controls = []
    for seed in (0, 1):
        _, linear_config, linear = stored_run(f"noisy-linrnn-m2-i4800-s{seed}")
        assert linear.log_scale.exp().min() > 500  # s tanh(y / s): linear over [-1, 1]
        controls.append(_common_pairs_row(linear, linear_config, noisy))
    stronger = max(controls, key=lambda row: row["metrics"]["area"])
    ratios, errors, grus = {0: [], 1: []}, [], []
    for seed in range(3):
        _, config, gru = stored_run(f"noisy-gru-m2-i4800-s{seed}")
        assert config.resolved_burn_in() == linear_config.resolved_burn_in()
        row = _common_pairs_row(gru, config, noisy)
        for index, control in enumerate(controls):
            ratios[index].append(row_ratio(row, control, "area").value)
        errors.append(row_ratio(row, stronger, "area").stderr)
        grus.append((config, gru, row))
    assert ratios[0] == pytest.approx([1.0194, 1.0116, 1.0172], abs=1e-3)
    assert ratios[1] == pytest.approx([1.0160, 1.0082, 1.0137], abs=1e-3)
    values = ratios[controls.index(stronger)]
    mean = statistics.mean(values)
    spread = statistics.stdev(values) / len(values) ** 0.5
    shared = statistics.mean(errors)
    k, _ = verdict_cutoff([(spread, len(values) - 1), (shared, 15)])
    stderr = (spread**2 + shared**2) ** 0.5
    assert mean - k * stderr > 1  # above, at 95 %
    assert mean + k * stderr < 1.03  # by less than 3 %
    config, gru, row = grus[1]  # the seed nearest its linearization
    own = _common_pairs_row(LinearizedCell(linearize_in(gru, noisy)), config, noisy)
    assert row_ratio(row, own, "area").value > 1.09  # measured 1.097


def test_bounded_m4_mlp_trained_by_monte_carlo_is_below_the_strongest_linear_synapse(stored_run):
    """The mlp cell at bounded m = 4 (16 levels; README, docs/learned-vs-linear.md "The mlp cell
    in noisy"), trained by Monte Carlo (the 16^4 grid is too large to train on): its best seed
    of three (``--batch 2048 --validation-batch 32768 --iterations 4800``) is exactly 181.78 on
    the grid, 0.959 of the strongest m = 4 linear synapse found (189.45; the seeds 0.952, 0.959,
    0.927) and below the m = 2 mlp trained on the exact grid (198.09). Fails if it reaches the
    linear synapse."""
    _, config, model = stored_run("bounded-mlp-m4-i4800-s1")
    scenario = make_scenario("bounded")
    area = evaluate(model, scenario, **BOUNDED_EXACT).metrics["area"]
    assert area == pytest.approx(181.78, abs=0.05)  # measured
    assert area < 0.97 * _best_linear("m4")["value"] < 198.09


def test_bounded_m2_mlp_trained_by_monte_carlo_falls_far_short_of_its_exact_training(stored_run):
    """The control of the noisy verdict (docs/learned-vs-linear.md "The mlp cell in noisy"):
    the mlp at bounded m = 2 (16 levels) trained by Monte Carlo like the noisy runs
    (``--estimator monte-carlo --batch 2048 --validation-batch 32768 --iterations 4800``) ends
    below the linear synapse (182.05) in every seed; its highest seed, stored, is exactly 170.38,
    14 % below the same cell trained on the exact grid (198.09, stored). Fails if Monte Carlo
    training reaches the linear synapse."""
    scenario = make_scenario("bounded")
    _, _, model = stored_run("bounded-mlp-m2-mc-i4800-s0")
    _, _, exact_trained = stored_run("bounded-L16-mlp-m2-i4800-s0")
    area = evaluate(model, scenario, **BOUNDED_EXACT).metrics["area"]
    assert area == pytest.approx(170.38, abs=0.05)  # measured
    assert area < 182.05 < evaluate(exact_trained, scenario, **BOUNDED_EXACT).metrics["area"]


def test_bounded_l32_mlp_trained_by_monte_carlo_falls_short_where_the_bias_is_smaller(stored_run):
    """At 32 levels the straight-through bias is smaller (chi2 1270 on 202 entries at the
    exact-trained mlp against 2232 at 16 levels) but the Monte Carlo-trained mlp (the noisy
    runs' budget, lr 0.005) still ends below the strongest 32-level linear synapse found
    (206.82): seeds 0, 1, 2 at 187.02, 180.53, 184.82 exactly, where the cell trained on the grid
    reaches 210.14 (stored), 208.36 and 187.57. Fails if the stored Monte Carlo run reaches
    linear or its exact-trained twin."""
    scenario = make_scenario("bounded", {"levels": 32})
    _, _, model = stored_run("bounded-L32-mlp-m2-mc-i4800-s0")
    _, _, exact_trained = stored_run("bounded-L32-mlp-m2-i4800-s0")
    area = evaluate(model, scenario, **BOUNDED_EXACT).metrics["area"]
    assert area == pytest.approx(187.02, abs=0.05)  # measured
    assert area < 0.95 * 206.82
    assert area < 0.9 * evaluate(exact_trained, scenario, **BOUNDED_EXACT).metrics["area"]


def test_at_the_exact_trained_mlp_the_monte_carlo_gradient_is_biased(stored_run):
    """Why Monte Carlo training in bounded falls short of exact training (README): started AT the
    exact-trained mlp (198.09) it falls to 170-177 whatever the learning rate (0.005 or 0.0005),
    while the grid objective with the same optimizer keeps it, because the Monte Carlo gradient,
    straight through the rounding, is biased there: measured with 16 batches of 4096 pairs, the
    bias chi2 is 710 on 202 entries, 17 per entry for the event's input weights B and 5.6 for the
    correction's V, while the readout's gradient (no rounding on its path) is unbiased (0.7).
    Noisy has no rounding, so this bias, unlike the noise, is not in its training. Fails if the
    Monte Carlo gradient at the optimum is the exact one."""
    from learnsyn.tools.gradient_check import gradient_check

    _, config, model = stored_run("bounded-L16-mlp-m2-i4800-s0")
    report = gradient_check(model, config, batches=16, batch=4096, noise_margin=0.0)

    def per_entry(name: str) -> float:
        return report["groups"][name]["chi2"] / report["groups"][name]["dof"]

    assert report["chi2"] > 2 * report["dof"]
    assert per_entry("B") > 6
    assert per_entry("readout_weights") < 3


def test_noisy_m4_mlp_leans_below_the_strongest_linear_synapse_over_five_seeds(stored_run):
    """The mlp cell in noisy m = 4 (README, docs/learned-vs-linear.md "The mlp cell in noisy at
    m = 4" and "... with six seeds"), trained like the GRU (``--batch 2048 --validation-batch
    32768 --iterations 4800``, seeds 0-4), against the strongest m = 4 linear synapse found, the
    linear control trained as long (``noisy-linrnn-m4-i4800-s1``): on 65,536 common pairs (seed
    7) seeds 0 and 1 level, seeds 2, 3, 4 below (95 %: 2.13 paired s.e. over 16 groups); the
    five-seed mean 0.976 +- 0.011 is below at 2 standard errors but level at 95 % (Student's t
    with 4 degrees of freedom: 2.78 s.e., upper end 1.007): it leans below (three seeds had read
    0.977 +- 0.020); no seed above, so the best seed bounds a nonlinear gain here below 2 %. Each
    seed is above its own linearization (a nonlinear synapse, not a better one). Fails if a
    seed's verdict changes, the mean leaves "level at 95 %, below at 2 s.e." or a seed gains 2 %."""
    import statistics

    from learnsyn.compare import row_ratio
    from learnsyn.linearization import LinearizedCell, linearize_in

    noisy = make_scenario("noisy")
    _, linear_config, linear = stored_run("noisy-linrnn-m4-i4800-s1")
    linear_row = _common_pairs_row(linear, linear_config, noisy)
    ratios = []
    for seed in range(5):
        _, config, model = stored_run(f"noisy-mlp-m4-i4800-s{seed}")
        assert config.resolved_burn_in() == linear_config.resolved_burn_in()
        row = _common_pairs_row(model, config, noisy)
        ratios.append(row_ratio(row, linear_row, "area"))
        if seed == 1:  # the seed furthest from its linearization (1.10 on 65,536 pairs)
            own = LinearizedCell(linearize_in(model, noisy))
            own_row = _common_pairs_row(own, config, noisy, 8192)
            assert row["metrics"]["area"] > 1.05 * own_row["metrics"]["area"]
    values = [ratio.value for ratio in ratios]
    assert values == pytest.approx([1.0010, 0.9937, 0.9368, 0.9655, 0.9814], abs=1e-3)
    assert all(ratio.paired and 0 < ratio.stderr < 0.01 for ratio in ratios)
    k = verdict_cutoff([(ratios[0].stderr, 15)])[0]  # a jackknife over 16 groups: 2.13
    below = [ratio.value + k * ratio.stderr < 1 for ratio in ratios]
    above = [ratio.value - k * ratio.stderr > 1 for ratio in ratios]
    assert below == [False, False, True, True, True] and not any(above)
    spread = statistics.stdev(values) / len(values) ** 0.5
    mean = statistics.mean(values)
    assert mean + 2 * spread < 1  # measured 0.976 + 2 x 0.011: below at 2 s.e. ...
    k, dof = verdict_cutoff([(spread, len(values) - 1)])
    assert dof == pytest.approx(4)
    assert mean - k * spread < 1 < mean + k * spread  # ... level at 95 % (t: 2.78)
    assert mean + k * spread < 1.01
    assert max(values) < 1.02


def test_random_multistart_searches_find_no_linear_synapse_above_the_stored_references(
    stored_run,
):
    """Session 24 (`python -m learnsyn.tools.linear_multistart`, commands in
    tests/data/linear-multistart-bounded.json): 150 random starts at 8 levels and 100 at 16
    (moduli 0.9-1.1), 60 more at 16 with moduli 0.5-2, each polished by 2000-2500 exact
    evaluations, end at 147.03, 182.88 and 177.68: below the difference integrators (147.24,
    183.88) that README's bounded margins are measured against. The best at 8 and 16 levels are
    difference integrators again (eigenvalues near +1 and -1), found by 1 and 3 starts.
    Session 25, 32 levels (where the mlp is level with linear-range's 206.82): 30 starts end at
    206.8169, linear-range's own optimum (206.8161) found again by 6 of them and polished 0.0008
    further, no other synapse above it; 24 more with moduli 0.5-2 end at the same 206.8169.
    Fails if a stored search's best is not what its parameters evaluate to, or exceeds a
    reference (at 32 levels by more than 0.002: a search that converges onto the reference's
    own optimum ends within that)."""
    import json

    stored = json.loads((Path(__file__).parent / "data" / "linear-multistart-bounded.json")
                        .read_text())  # fmt: skip
    start_32, _, _ = stored_run("bounded-L32-gru-m2-i4800-s0")  # linear-range at 32 levels
    linear_32 = evaluate(make_model("linear-range", start_32["start"]),
                         make_scenario("bounded", {"levels": 32}), **BOUNDED_EXACT)  # fmt: skip
    references = {"L8": _best_linear("m2_levels8")["value"], "L16": _best_linear("m2")["value"],
                  "L16_wide": _best_linear("m2")["value"],
                  "L32": linear_32.metrics["area"] + 0.002,
                  "L32_wide": linear_32.metrics["area"] + 0.002}  # fmt: skip
    for key, reference in references.items():
        search = stored[key]
        best = search["best"]
        assert max(search["values"]) == pytest.approx(best["value"], abs=1e-4)
        scenario = make_scenario("bounded", {"levels": search["levels"]})
        area = evaluate(make_model("linear-range", best["params"]), scenario, **BOUNDED_EXACT)
        assert area.metrics["area"] == pytest.approx(best["value"], abs=1e-6)
        assert best["value"] < reference
    assert stored["L8"]["best"]["value"] > 0.995 * references["L8"]  # it finds the shape
    assert stored["L16"]["best"]["value"] > 0.99 * references["L16"]
    assert sum(v > linear_32.metrics["area"] - 0.002 for v in stored["L32"]["values"]) >= 3


@pytest.mark.parametrize(
    ("task", "m", "expected"),
    [
        ("sparse", 2, 1.0042),
        ("sparse", 4, 0.9973),
        ("correlated", 2, 1.0245),
        ("correlated", 4, 1.0064),
    ],  # fmt: skip
)
def test_sparse_and_correlated_gru_matches_the_optimal_linear_synapse(
    stored_run, task, m, expected
):
    """README's sparse and correlated rows (session 38: three default GRU runs a cell, trained
    again and stored; the scoreboard's figures came out as before, 1045.7 +- 12.9 in sparse m =
    2): the GRU is level with optimal-linear, the strongest synapse of its size found (exact).
    Mean over seeds on common pairs, the error adding the seeds' spread and the Monte Carlo error
    they share, the verdict at 95 % (Welch-Satterthwaite t). Fails if the mean moves, or if it
    reads above or below."""
    ratio, stderr, k = _seeds_over_linear(
        stored_run, f"{task}-gru-m{m}", "optimal_linear", "optimal_linear_area"
    )
    assert ratio == pytest.approx(expected, abs=2e-3)  # measured, session 38
    assert ratio - k * stderr < 1 < ratio + k * stderr  # level: neither above nor below
    assert stderr < 0.03  # a verdict of level means something: within a few percent


@pytest.mark.parametrize(("m", "optimum", "expected"), [(2, 228.50, 0.9983), (4, 240.64, 0.9864)])
def test_ideal_gru_three_seeds_are_linear_synapses_at_or_just_below_the_optimum(
    stored_run, m, optimum, expected
):
    """README's ideal row with all three seeds stored (session 38: the default GRU runs trained
    again): each run is its own linearization (its Monte Carlo area within 3 s.e. of the
    linearization's exact one), no linearization exceeds optimal-linear (228.50 at m = 2,
    240.64 at m = 4, exact: none may), and their mean is 0.998 and 0.986 of it (the earlier
    runs' 0.9985 and 0.986). Fails if a cell leaves its linearization, if the mean moves, or
    if a linear synapse reads above the optimum."""
    import numpy as np

    from learnsyn.linearization import LinearizedCell, linearize

    scenario = make_scenario("ideal")
    keywords = dict(synapses=1000, horizon=600, convention="large-n")
    linear = []
    for seed in range(3):
        _, config, model = stored_run(f"ideal-gru-m{m}-r38-s{seed}")
        exact = evaluate(LinearizedCell(linearize(model)), scenario, method="exact", **keywords)
        learned = evaluate_trained(model, config, batch=4096, seed=0, device="cpu")
        gap = abs(learned.metrics["area"] - exact.metrics["area"])
        assert gap < 3 * learned.metrics_stderr["area"]
        assert exact.metrics["area"] <= optimum + 0.01
        linear.append(exact.metrics["area"])
    assert float(np.mean(linear)) / optimum == pytest.approx(expected, abs=5e-4)  # measured


def test_bounded_m4_gru_five_seeds_trained_today_are_level_with_the_refined_linear_synapse(
    stored_run,
):
    """README's bounded m = 4 row with today's code (session 38: `--batch 2048 --iterations
    600`, seeds 0-4, trained again and stored): exactly on the 16^4 grid the five GRUs read
    183.04, 184.77, 187.74, 185.23 and 191.17, 0.984 +- 0.007 of the refined linear synapse
    (189.45; session 22's five runs: 0.990 +- 0.009), level at 95 % (Student's t, 4 degrees of
    freedom); exact on both sides, so the error is the seeds' spread alone. Fails if the mean
    moves or if the verdict reads above or below."""
    import numpy as np
    from scipy.stats import t

    scenario = make_scenario("bounded")
    kw = dict(synapses=1000, horizon=600, convention="large-n", method="exact", burn_in=1500)
    areas = []
    for seed in range(5):
        _, _, model = stored_run(f"bounded-gru-m4-b2048-i600-r38-s{seed}")
        areas.append(evaluate(model, scenario, **kw).metrics["area"])
    assert areas[0] == pytest.approx(183.04, abs=0.05)  # measured
    refined = _best_linear("m4")["value"]  # 189.45
    ratio = float(np.mean(areas)) / refined
    stderr = float(np.std(areas, ddof=1) / np.sqrt(5)) / refined
    k = float(t.ppf(0.975, 4))
    assert ratio == pytest.approx(0.9839, abs=1e-3)
    assert ratio - k * stderr < 1 < ratio + k * stderr  # level
    assert stderr < 0.015
