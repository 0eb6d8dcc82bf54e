"""The GPU check script's plan (runs without a GPU): a failure skips only the larger sizes of
the same variant, the budget stops the rest, and its JSON file is strict."""

import json
import math

from learnsyn.tools.gpu_checks import Recorder, walk_plan

PLAN = [
    ("triton", "gru", 8, 2**20, 2000),
    ("triton", "rnn", 8, 2**20, 2000),
    ("triton", "gru", 8, 4096, 2000),
    ("triton", "gru", 8, 2**18, 2000),
    ("triton", "gru", 8, 2**20, 2000, "noisy"),
    ("triton", "gru", 32, 2**18, 2000),
]


def test_a_failure_skips_only_larger_sizes_of_the_same_variant():
    failing = {PLAN[0]}  # out of memory at the largest batch
    attempted = walk_plan(PLAN, lambda item: item in failing, lambda: False)
    assert attempted == PLAN  # smaller sizes, other cells, scenarios and state sizes still run
    failing = {PLAN[2]}  # fails at 4096 pairs: 2^18 pairs of the same variant is not tried
    attempted = walk_plan(PLAN, lambda item: item in failing, lambda: False)
    assert attempted == [p for p in PLAN if p != PLAN[3]]


def test_the_budget_stops_the_plan():
    calls = iter(range(100))
    attempted = walk_plan(PLAN, lambda item: False, lambda: next(calls) >= 2)
    assert attempted == PLAN[:2]


def test_the_record_is_strict_json(tmp_path):
    record = Recorder(tmp_path, budget=10)
    record.add("timing", {"path": "triton", "fwd_steps_per_second": math.nan})
    data = json.loads(
        (tmp_path / "gpu_checks.json").read_text(), parse_constant=lambda c: 1 / 0
    )  # a bare NaN raises
    assert data["timing"][0]["fwd_steps_per_second"] == "nan"


def test_a_source_checkout_s_tasks_are_found_where_they_are():
    """On a machine without the package installed, gpu_checks registers the checkout's tasks/
    itself; since the tools moved to learnsyn/tools/ it looked in learnsyn/tasks/ and stopped at
    its first call on an H200."""
    from learnsyn.tools.gpu_checks import CHECKOUT_TASKS

    assert (CHECKOUT_TASKS / "__init__.py").is_file(), CHECKOUT_TASKS


def test_every_planned_timing_names_a_known_path_and_a_size():
    """The plans (full and ``--quick``) unpack as ``time_path`` takes them, and every path
    resolves to a simulator without a GPU (a typo would only show on a borrowed one)."""
    from learnsyn.scenario import make_scenario
    from learnsyn.tools.gpu_checks import LANES, _simulator, timing_plan

    for quick in (False, True):
        plan = timing_plan(quick)
        assert plan
        for path, cell, state, pairs, horizon, *task in plan:
            assert callable(_simulator(path)), path
            assert cell in ("gru", "rnn", "mlp") and state >= 1 and pairs % 16 == 0
            assert len(task) <= 1 and (not task or make_scenario(task[0]))
            if quick:
                assert pairs <= 4096 and horizon <= 300
    assert all(callable(_simulator(name)) for name in [*LANES, "triton-tiles"])


def test_the_lane_sweep_places_the_crossover_first(monkeypatch, tmp_path):
    """``run_lanes`` times states 3 and 4 (tiles and lanes) before the sweeps at 2 and 8, then
    the fastest lane setting of 2 and of 8 at the full size; every path name resolves."""
    from learnsyn.tools import gpu_checks

    timed = []

    def fake(record, device, path, cell, state, pairs, horizon):
        assert callable(gpu_checks._simulator(path))
        timed.append((state, path, pairs))
        rate = 2.0 if path == "lanes-b128w4p1r1" else 1.0
        return {"path": path, "fwd_bwd_steps_per_second": rate}

    monkeypatch.setattr(gpu_checks, "time_path", fake)
    gpu_checks.run_lanes(gpu_checks.Recorder(tmp_path, 1e9), "cpu", pairs=64, full=128)
    assert [s for s, _, _ in timed[:6]] == [3, 3, 3, 4, 4, 4]
    assert timed[0][1] == "triton-tiles"
    full = [(s, p) for s, p, n in timed if n == 128]
    assert full == [(2, "lanes-b128w4p1r1"), (8, "lanes-b128w4p1r1")]
    assert len(timed) == 6 + 2 * (1 + len(gpu_checks.LANES)) + 2


def test_every_failed_or_raised_agreement_is_counted(tmp_path):
    """Review, session 37: a fast path that disagreed with the reference left the script's
    exit status at 0, with nothing in its last lines; ``main`` exits 1 on these."""
    from learnsyn.tools.gpu_checks import agreement_failures

    record = Recorder(tmp_path, budget=10)
    record.add("agreement", dict(cell="gru", task="ideal", path="triton", state=8, ok=True))
    assert agreement_failures(record) == []
    record.add("agreement", dict(cell="gru", task="noisy", path="triton", state=8, ok=False))
    record.add("agreement", dict(cell="rnn", task="bounded", error="RuntimeError('x')"))
    failures = agreement_failures(record)
    assert len(failures) == 2
    assert failures[0].startswith("triton gru m=8 noisy") and "reference rnn" in failures[1]
