"""`python -m learnsyn.tools.linear_multistart`: random starts polished on the exact grid; each
start reproducible on its own (so a resumed search equals an uninterrupted one), the best's
value what an evaluation of its parameters gives, bad input refused in one line."""

import json

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
        multistart(**TINY, out=tmp_path / "part.json", resume=True, log=lambda line: None)
    part = json.loads((tmp_path / "part.json").read_text())
    part["settings"]["starts"] = TINY["starts"]  # a longer search of the same settings
    (tmp_path / "part.json").write_text(json.dumps(part))
    resumed = multistart(**TINY, out=tmp_path / "part.json", resume=True, log=lambda line: None)
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
    ],
)
def test_bad_input_is_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_an_existing_report_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "report.json"
    out.write_text("{}")
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--levels", "4", "--starts", "1", "--evaluations", "5"])
    assert "--resume" in capsys.readouterr().err and out.read_text() == "{}"
