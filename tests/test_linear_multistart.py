"""`python -m learnsyn.tools.linear_multistart`: random starts polished on the exact grid; each
start reproducible on its own (so a resumed search equals an uninterrupted one), the best's
value what an evaluation of its parameters gives, bad input refused in one line."""

import pytest

from learnsyn.evaluate import evaluate
from learnsyn.registry import make_model
from learnsyn.scenario import make_scenario
from learnsyn.tools.linear_multistart import main, multistart

TINY = dict(levels=4, starts=2, evaluations=25, seed=3, min_start=0.5, synapses=100,
            horizon=60, burn_in=100)  # fmt: skip


def test_a_resumed_search_is_the_uninterrupted_one_and_its_best_evaluates_to_its_value(tmp_path):
    whole = multistart(**TINY, out=tmp_path / "whole.json", log=lambda line: None)
    multistart(**{**TINY, "starts": 1}, out=tmp_path / "part.json", log=lambda line: None)
    with pytest.raises(ValueError, match="differ"):  # another setting than the file's
        multistart(**{**TINY, "evaluations": 26}, out=tmp_path / "part.json", resume=True)
    resumed = multistart(**TINY, out=tmp_path / "part.json", resume=True, log=lambda line: None)
    with pytest.raises(ValueError, match="more than --starts 1"):  # (grown to 2 now)
        multistart(**{**TINY, "starts": 1}, out=tmp_path / "part.json", resume=True)
    assert [r["value"] for r in resumed["runs"]] == [r["value"] for r in whole["runs"]]
    assert len(whole["runs"]) == 2
    assert all(r["value"] >= r["start_value"] for r in whole["runs"])
    best = whole["best"]
    assert best["value"] == max(r["value"] for r in whole["runs"])
    again = evaluate(make_model("linear-range", best["params"]),
                     make_scenario("bounded", {"levels": 4}), synapses=100, horizon=60,
                     convention="large-n", method="exact", burn_in=100)  # fmt: skip
    assert again.metrics["area"] == pytest.approx(best["value"], rel=1e-9)
    text = (tmp_path / "whole.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--levels", "1"], "--levels 1"),
        (["--starts", "0"], "--starts 0"),
        (["--levels", "64", "--variables", "4"], "grid"),
        (["--synapses", "0"], "--synapses 0"),
        (["--burn-in", "-5"], "--burn-in -5"),
        (["--seed", "-1"], "--seed -1"),
        (["--synapses", "100", "--min-start", "60"], "N / 4 = 25"),
        (["--min-start", "nan"], "--min-start nan"),
        (["--moduli", "1.1", "0.9"], "--moduli 1.1 0.9"),
        # review, session 30: every draw outside the family ("no start above --min-start"), or
        # an OverflowError traceback
        (["--moduli", "4.5", "5"], "--moduli 4.5 5.0 is not allowed: need 0 < LOW <= HIGH <= 4"),
        (["--moduli", "0.9", "inf"], "--moduli 0.9 inf is not allowed"),
        (["--moduli", "nan", "1"], "--moduli nan 1.0 is not allowed"),
        (["--resume"], "--resume needs --out"),
        # review, session 33: a file named "-" was written in the working directory
        (["--out", "-"], "--out - is not allowed here"),
    ],
)
def test_bad_input_is_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_an_existing_report_is_not_overwritten_and_a_foreign_one_not_resumed(tmp_path, capsys):
    out = tmp_path / "report.json"
    out.write_text("[]")
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--levels", "4", "--starts", "1", "--evaluations", "5"])
    assert "--resume" in capsys.readouterr().err and out.read_text() == "[]"
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--resume", "--levels", "4", "--starts", "1"])
    assert "not a linear_multistart report" in capsys.readouterr().err
