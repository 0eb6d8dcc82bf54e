"""The comparison's verdict: the ratio error includes the baseline's own error."""

import math

import pytest

from learnsyn.compare import verdict


def _data(learned, learned_err, base, base_err):
    row = lambda name, v, e: {"name": name, "metrics": {"area": v}, "metrics_stderr": {"area": e}}  # noqa: E731
    return {
        "metric": "area",
        "models": [row("learned", learned, learned_err), row("b", base, base_err)],
    }


def test_ratio_error_propagates_both_sides():
    v = verdict(_data(110.0, 1.1, 100.0, 2.0))
    assert v["ratio"] == pytest.approx(1.1)
    assert v["ratio_stderr"] == pytest.approx(1.1 * math.hypot(0.01, 0.02))
    assert v["best_baseline_stderr"] == 2.0
    exact = verdict(_data(110.0, 1.1, 100.0, 0.0))
    assert exact["ratio_stderr"] == pytest.approx(0.011)  # an exact baseline adds nothing
    assert v["ratio_stderr"] > exact["ratio_stderr"]


def _mc(decay, seed, batch=512, horizon=300):
    from learnsyn.evaluate import evaluate
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario

    model = make_model("exponential", {"decay": decay})
    kw = dict(synapses=1000, horizon=horizon, threshold=1.0, convention="large-n")
    ev = evaluate(model, make_scenario("ideal"), method="monte-carlo", batch=batch, seed=seed,
                  burn_in=1000, **kw)  # fmt: skip
    exact = evaluate(model, make_scenario("ideal"), method="exact", **kw)
    row = {
        "metrics": ev.metrics,
        "metrics_stderr": ev.metrics_stderr,
        "leave_one_out": ev.monte_carlo["leave_one_out_metrics"],
    }
    return row, exact.metrics["area"]


def test_paired_ratio_error_matches_the_spread_over_seeds_and_beats_propagation():
    """Two Monte Carlo evaluations on the same seed share their random numbers: the jackknife
    of the ratio over the paired groups is smaller than the two errors propagated as independent,
    and it is right: it matches the ratio's spread over seeds, around the exact ratio."""
    from learnsyn.compare import row_ratio

    ratios, paired, propagated = [], [], []
    for seed in range(8):
        a, exact_a = _mc(0.99, seed)
        b, exact_b = _mc(0.985, seed)
        r = row_ratio(a, b, "area")
        assert r.paired
        ratios.append(r.value)
        paired.append(r.stderr)
        ea, eb = a["metrics_stderr"]["area"], b["metrics_stderr"]["area"]
        va, vb = a["metrics"]["area"], b["metrics"]["area"]
        propagated.append(r.value * math.hypot(ea / va, eb / vb))
    spread = float(np_std(ratios))
    typical = sum(paired) / len(paired)
    assert typical < 0.6 * sum(propagated) / len(propagated)  # common random numbers pay off
    assert 0.4 < spread / typical < 2.5  # the paired error is the real error
    mean = sum(ratios) / len(ratios)
    assert abs(mean - exact_a / exact_b) < 4 * typical / math.sqrt(len(ratios))


def np_std(values):
    import numpy as np

    return np.std(values, ddof=1)


def test_paired_ratio_with_an_exact_side_and_without_groups():
    from learnsyn.estimate.ratio import paired_ratio

    loo = [9.0, 11.0, 10.0, 10.0]
    r = paired_ratio(10.0, 5.0, loo, None)
    assert r.paired and r.value == 2.0
    assert r.stderr == pytest.approx(math.sqrt(3 / 4 * (0.2**2 + 0.2**2)))
    assert paired_ratio(10.0, 5.0).stderr == 0.0  # both exact
    r = paired_ratio(10.0, 5.0, [9.0, 11.0], [5.0, 5.0, 5.0])  # groups differ: propagate
    assert not r.paired
    # a Monte Carlo side that lost its leave-one-out values is not taken as exact: its error
    # is propagated (it was dropped: 0.0023 in place of 0.050)
    r = paired_ratio(100.0, 100.0, [99.9, 100.1, 100.0, 100.0], None, 0.26, 5.0)
    assert not r.paired and r.stderr == pytest.approx(math.hypot(0.0026, 0.05))
    exact_lifetime = paired_ratio(100.0, 100.0, [99.9, 100.1, 100.0, 100.0], None, 0.26, 0.3,
                                  rounding=(0.0, 0.3))  # fmt: skip
    assert exact_lifetime.paired  # an exact side whose only error is its rounding


def test_a_baseline_named_twice_is_refused():
    """Review, session 33: ``--baselines exponential,exponential`` tuned and showed it twice."""
    from learnsyn.compare import parse_baselines
    from learnsyn.scenario import make_scenario

    assert parse_baselines("exponential,benna-fusi", make_scenario("ideal"), 2)
    with pytest.raises(ValueError, match="names exponential more than once"):
        parse_baselines("exponential, benna-fusi,exponential", make_scenario("ideal"), 2)


def test_the_learned_row_names_the_selected_iteration(tiny_runs, tmp_path):
    """Review, session 35: the learned row was labelled with the last iteration (iterations=800)
    while it evaluates the parameters model selection kept (iteration 125)."""
    import json
    import shutil

    from learnsyn.compare import compare_run

    run = tmp_path / "run"
    shutil.copytree(tiny_runs / "s0", run)
    selected = json.loads((run / "result.json").read_text())["selected"]["iteration"]
    report = compare_run(run, baselines="exponential", eval_batch=32, log=lambda *a: None)
    learned = next(row for row in report["models"] if row["name"] == "learned")
    assert learned["params"]["iterations"] == 4
    assert learned["params"]["selected_iteration"] == selected
    # review, session 38: a burn-in shorter than the default is said (a run trained with 0 read
    # 2.3 x the best baseline, above the bound N / (4 theta)); the tiny runs have 30 of 75
    assert any("shorter than the default 75" in c for c in report["cautions"]), report["cautions"]


def test_a_nan_baseline_is_never_the_best_and_a_lifetime_of_minus_one_is_no_ratio():
    """Review, session 38: ``max`` kept a NaN first row as the best baseline (every comparison
    with NaN is False), which blanked the verdict beside a finite baseline; and a lifetime of
    -1 (never above threshold) was divided like an age: learned 4-6 over -1 read -5, "below"."""
    import math

    from learnsyn.compare import best_baseline
    from learnsyn.scoreboard import learned_groups, strongest_found

    rows = [
        {"name": "linear-range", "metrics": {"area": math.nan}, "metrics_stderr": {"area": 0.0}},
        {"name": "exponential", "metrics": {"area": 150.0}, "metrics_stderr": {"area": 0.0}},
    ]
    assert best_baseline(rows, "area")["name"] == "exponential"
    assert strongest_found(rows, [], "area")["name"] == "exponential"
    runs = [dict(label="gru", seed=s, run=f"r{s}", metrics={"area": 160.0 + s},
                 metrics_stderr={"area": 0.0}) for s in range(3)]  # fmt: skip
    group = learned_groups({"baselines": rows}, runs, "area")[0]
    assert group["best_baseline"] == "exponential" and group["ratio"] == pytest.approx(161 / 150)
    never = [{"name": "exponential", "metrics": {"lifetime": -1.0},
              "metrics_stderr": {"lifetime": 0.0}}]  # fmt: skip
    lifetimes = enumerate((4.0, 5.0, 6.0))
    runs = [dict(label="gru", seed=s, run=f"r{s}", metrics={"lifetime": v},
                 metrics_stderr={"lifetime": 0.0}) for s, v in lifetimes]  # fmt: skip
    group = learned_groups({"baselines": never}, runs, "lifetime")[0]
    assert math.isnan(group["ratio"]) and group["verdict"].startswith("no verdict")
    # a learned synapse never above threshold is below one that is (the diff review)
    from learnsyn.compare import row_ratio

    some = {"metrics": {"lifetime": 50.0}, "metrics_stderr": {"lifetime": 0.0}}
    assert row_ratio(never[0], some, "lifetime").value == 0.0
