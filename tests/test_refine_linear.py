"""`python -m learnsyn.tools.refine_linear`: a learned run's linearization refined along its
modes; the start is the linearization itself, the result a linear-range member whose value is
what the report says, never below the start."""

import json

import numpy as np
import pytest
from learnsyn.baselines.linear_range import ModalFamily, eigen_groups

from learnsyn.tools.refine_linear import main


def test_the_modal_family_starts_at_the_linearization_and_moves_one_mode_at_a_time():
    rng = np.random.default_rng(0)
    A = np.array([[0.9, -0.2, 0.0], [0.2, 0.9, 0.0], [0.0, 0.0, 0.5]]) + 0.01 * rng.normal(
        size=(3, 3)
    )
    b, c, h = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3)
    family = ModalFamily(A, b, c, h)
    assert sorted(map(len, eigen_groups(A))) == [1, 2] and family.size() == 2 + 1 + 2 + 1
    A0, b0, c0, drive0 = family.build(family.start())
    np.testing.assert_allclose(A0, A, atol=1e-12)
    np.testing.assert_allclose(b0, b, atol=1e-12)
    np.testing.assert_allclose(drive0, (np.eye(3) - A) @ h, atol=1e-12)
    # the pair's modulus x 1.01: only the pair's eigenvalues move, and they stay a real matrix's
    x = family.start()
    pair = next(g for g, group in enumerate(family.groups) if len(group) == 2)
    x[pair] = 1.01
    A1 = family.build(x)[0]
    assert np.isrealobj(A1)
    before = sorted(np.abs(np.linalg.eigvals(A)))
    after = sorted(np.abs(np.linalg.eigvals(A1)))
    assert after[0] == pytest.approx(before[0])  # the real eigenvalue (0.5) is the smallest
    assert after[1:] == pytest.approx([1.01 * v for v in before[1:]])


@pytest.fixture(scope="module")
def refined_run(tmp_path_factory):
    """A tiny bounded m = 2 GRU run (trained without TensorBoard baselines), refined once (25
    evaluations, exact)."""
    from learnsyn.config import TrainConfig
    from learnsyn.runs import train

    run = tmp_path_factory.mktemp("refine") / "run"
    config = TrainConfig(task="bounded", synapses=100, state_size=2, cell="gru", iterations=2,
                         batch=16, horizon=20, burn_in=20, eval_batch=32)  # fmt: skip
    train(config.validate(), run, progress=False, log=lambda *_: None, figure_baselines=[])
    assert main(["--run", str(run), "--evaluations", "25"]) == 0
    return run


def test_refining_a_bounded_run_is_exact_and_never_reports_less_than_the_start(refined_run):
    from learnsyn.baselines.optimal_linear import params_from_form

    from learnsyn.config import default_train_burn_in
    from learnsyn.evaluate import evaluate
    from learnsyn.linearization import linearize_in
    from learnsyn.registry import make_model
    from learnsyn.runs import load_run
    from learnsyn.scenario import make_scenario

    run = refined_run
    report = json.loads((run / "refined-linear.json").read_text())
    assert report["method"] == "exact" and report["evaluations"] <= 25
    assert report["refined_value"] > report["start_value"]  # this start is improved
    scenario = make_scenario("bounded")
    # scored after the default burn-in at the run's horizon, as the scoreboard scores it, not
    # the run's own --burn-in 20 (review, session 35)
    burn_in = default_train_burn_in("bounded", scenario.params, 20)
    kw = dict(synapses=100, horizon=20, method="exact", convention="large-n", burn_in=burn_in)
    # the start is the run's linearization as a linear-range member (drive (I - A) h*; it
    # starts at 0 where the held cell starts at h*, which a short burn-in still shows)
    _, model, _ = load_run(run)
    lin = linearize_in(model, scenario)
    drive = (np.eye(2) - lin.A) @ lin.fixed_point
    member = make_model("linear-range", params_from_form(lin.A, lin.b, lin.c, drive=drive))
    assert report["start_value"] == pytest.approx(evaluate(member, scenario, **kw).metrics["area"])
    # the reported synapse is a linear-range member with the reported value
    refined = evaluate(make_model("linear-range", report["params"]), scenario, **kw)
    assert refined.metrics["area"] == pytest.approx(report["refined_value"], rel=1e-9)
    assert report["burn_in"] == burn_in  # said, and part of what makes a report a rival


def test_a_scenario_without_a_range_is_refused_in_one_line(tiny_runs, capsys):
    assert main(["--run", str(tiny_runs / "s0")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model 'linear-range'") and "has no range" in err
    assert not (tiny_runs / "s0" / "refined-linear.json").exists()
    assert main(["--run", str(tiny_runs / "s0"), "--evaluations", "0"]) == 2
    assert "--evaluations 0 is not allowed" in capsys.readouterr().err


def test_the_scoreboard_takes_a_refined_linearization_as_a_candidate(
    refined_run, tmp_path, monkeypatch
):
    from learnsyn import runs, scoreboard

    out = tmp_path / "board"
    report = json.loads((refined_run / "refined-linear.json").read_text())
    row = scoreboard.evaluate_learned_run(refined_run, out, eval_batch=64)
    row = scoreboard.ablate_learned_run(refined_run, row, out, log=lambda text: None)
    row = scoreboard.add_refined(refined_run, row, out, log=lambda text: None)
    refined = row["refined"]
    assert refined["method"] == "exact" and refined["params"] == report["params"]
    assert refined["metrics"]["area"] == pytest.approx(report["refined_value"], rel=1e-9)
    assert refined["selection"]["metrics"]["area"] == report["refined_value"]
    strongest = scoreboard.strongest_found([], [row], "area")
    assert strongest["kind"] == "refined linearization" and strongest["candidates"] == 2
    assert strongest["name"] == f"refined linearization of {row['label']} seed 0"
    # cached while the synapse is the same: nothing is evaluated again
    monkeypatch.setattr(runs, "evaluate_trained", lambda *a, **k: pytest.fail("evaluated again"))
    cached = scoreboard.evaluate_learned_run(refined_run, out, eval_batch=64)
    assert scoreboard.add_refined(refined_run, cached, out)["refined"] == refined
    # a file that does not parse, or lacks the synapse, is left out in one line
    lines = []
    kept = (refined_run / "refined-linear.json").read_text()
    for broken in ("{not json", json.dumps({"params": {"A": [1.0]}})):
        (refined_run / "refined-linear.json").write_text(broken)
        assert "refined" not in scoreboard.add_refined(refined_run, cached, out, log=lines.append)
    # refined from other parameters (the run trained again in place since): left out, even
    # where the cached row holds its synapse (review, session 35)
    stale = json.loads(kept) | {"model_sha1": "0" * 40}
    (refined_run / "refined-linear.json").write_text(json.dumps(stale))
    assert "refined" not in scoreboard.add_refined(refined_run, cached, out, log=lines.append)
    assert "refined from other parameters" in lines[-1]
    # scored after another burn-in than the cell's: left out (review, session 35)
    (refined_run / "refined-linear.json").write_text(json.dumps(json.loads(kept) | {"burn_in": 7}))
    assert "refined" not in scoreboard.add_refined(refined_run, cached, out, log=lines.append)
    assert "scored after burn-in 7" in lines[-1]
    (refined_run / "refined-linear.json").write_text(kept)
    assert len(lines) == 4 and all("left out" in line for line in lines)
    # without the tool's file the candidate is gone, from the cache too
    moved = refined_run.parent / "kept.json"
    (refined_run / "refined-linear.json").rename(moved)
    try:
        dropped = scoreboard.add_refined(refined_run, cached, out)
        assert "refined" not in dropped
        assert "refined" not in scoreboard.evaluate_learned_run(refined_run, out, eval_batch=64)
    finally:
        moved.rename(refined_run / "refined-linear.json")


def test_a_shorter_search_does_not_replace_a_stronger_refinement(refined_run, tmp_path, capsys):
    """Review, session 30: ``--evaluations 1`` after 25 wrote its weaker synapse over the
    stronger one, which the scoreboard then read. A refinement of the same model, metric and
    method is replaced only by a stronger one; a bad --batch is refused before the search."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(refined_run, run)
    before = json.loads((run / "refined-linear.json").read_text())
    assert main(["--run", str(run), "--evaluations", "1"]) == 0
    assert f"kept {run / 'refined-linear.json'}" in capsys.readouterr().out
    assert json.loads((run / "refined-linear.json").read_text()) == before
    for batch in ("0", "1"):
        assert main(["--run", str(run), "--batch", batch]) == 2
        assert f"--batch {batch} is not allowed" in capsys.readouterr().err


def test_a_report_that_cannot_be_written_is_refused_before_the_search(
    refined_run, tmp_path, capsys, monkeypatch
):
    """Review, session 33: the report's path was checked only when written, after the whole
    search (minutes at m = 4), and a failure there was a traceback."""
    import shutil

    import learnsyn.tools.refine_linear as refine

    copy = tmp_path / "run"
    shutil.copytree(refined_run, copy)
    (copy / "refined-linear.json").unlink()
    (copy / "refined-linear.json").mkdir()  # a directory where the report goes
    monkeypatch.setattr(refine, "ModalFamily", None)  # the search would fail on it
    assert main(["--run", str(copy), "--evaluations", "3"]) == 2
    err = capsys.readouterr().err
    assert "error: the report" in err and "is a directory" in err


def test_a_linearization_that_never_evaluates_finite_is_one_clear_error(
    refined_run, tmp_path, capsys, monkeypatch
):
    """Review, session 37: a non-finite start read "linearization 0.000" (the objective's 0.0
    for it), and with no finite candidate the search ended in a KeyError."""
    import shutil
    from types import SimpleNamespace

    import learnsyn.runs

    copy = tmp_path / "run"
    shutil.copytree(refined_run, copy)
    before = (copy / "refined-linear.json").read_text()
    monkeypatch.setattr(
        learnsyn.runs,
        "evaluate_trained",
        lambda *a, **k: SimpleNamespace(metrics={"area": float("nan")}),
    )
    assert main(["--run", str(copy), "--evaluations", "3"]) == 2
    assert "non-finite area: nothing to refine" in capsys.readouterr().err
    assert (copy / "refined-linear.json").read_text() == before
