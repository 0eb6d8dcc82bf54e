"""The rollout benchmark's quick mode: documented keys, a speedup per fast path, agreement."""

import io

from learnsyn.tools.bench import print_report
from learnsyn.tools.rollout_bench import bench_rollouts

ENTRY_KEYS = {
    "path",
    "cell",
    "state_size",
    "pairs",
    "horizon",
    "device",
    "threads",
    "fwd_steps_per_second",
    "fwd_bwd_steps_per_second",
    "backward_memory_bytes",
}


def test_quick_bench_reports_every_path_with_speedup_and_agreement():
    results = bench_rollouts("cpu", quick=True)
    assert {"device", "threads", "torch", "kernels", "tolerance", "entries"} <= set(results)
    entries = results["entries"]
    paths = {entry["path"] for entry in entries}
    assert "reference" in paths and set(results["kernels"]) <= paths
    for entry in entries:
        assert ENTRY_KEYS <= set(entry)
        assert entry["fwd_steps_per_second"] > 0 and entry["fwd_bwd_steps_per_second"] > 0
        assert entry["backward_memory_bytes"] > 0
        if entry["path"] != "reference":
            assert entry["speedup"] > 0
            assert entry["agreement"]["ok"], entry["agreement"]
    report = {
        "torch": results["torch"],
        "threads": results["threads"],
        "machine": "test",
        "exact": {"what": "exact", "median_seconds": 0.0, "ages": 1},
        "monte_carlo": [],
        "rollout": results,
    }
    out = io.StringIO()
    print_report(report, out)
    text = out.getvalue()
    assert "meta-training rollout" in text and "speedup" in text and "agreement ok" in text


def test_cell_evaluation_bench_reports_both_paths_and_their_agreement():
    from learnsyn.tools.bench import _cell_evaluation_line, bench_cell_evaluation

    entry = bench_cell_evaluation("gru", "ideal", pairs=64, steps=40, device="cpu", repeats=1)
    assert entry["speedup"] > 0 and entry["threads"] >= 1
    assert entry["reference_synapse_steps_per_second"] > 0
    assert entry["snr_max_relative_difference"] < 1e-4
    assert "speedup" in _cell_evaluation_line(entry)


def test_markov_evaluation_bench_reports_both_paths_and_their_agreement():
    from learnsyn.tools.bench import _cell_evaluation_line, bench_model_evaluation

    entry = bench_model_evaluation("cascade", {}, "ideal", pairs=64, steps=40, device="cpu")
    assert entry["speedup"] > 0 and entry["fast_synapse_steps_per_second"] > 0
    assert entry["snr_max_relative_difference"] == 0.0  # the same state indices on both paths
    assert "cascade" in entry["what"] and "speedup" in _cell_evaluation_line(entry)


def test_the_monte_carlo_figure_times_warm_calls_and_names_its_rollout(monkeypatch):
    # the first figure timed one call, which could include compiling the native kernel
    import learnsyn.tools.bench as bench

    calls = []
    original = bench.evaluate

    def counted(*arguments, **keywords):
        calls.append(keywords["batch"])
        # the path the figure names, whatever $LEARNSYN_ROLLOUT says (review, session 33)
        assert keywords["rollout"] == "fast"
        return original(*arguments, **keywords)

    monkeypatch.setattr(bench, "evaluate", counted)
    entry = bench.bench_monte_carlo("exponential", {"decay": 0.9}, 64, 40, "cpu", repeats=2)
    assert len(calls) == 3 and entry["repeats"] == 2  # one untimed, then the timed ones
    assert entry["rollout"] in ("native", "reference") and entry["synapse_steps_per_second"] > 0
    assert f"{entry['rollout']} rollout, median of 2" in bench._monte_carlo_line(entry)
