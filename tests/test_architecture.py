"""The architecture's promises: imports point one way, one registry, options generated from the
config, one estimator, strict JSON everywhere."""

import ast
import json
import math
import sys
from dataclasses import make_dataclass
from pathlib import Path

import pytest

import learnsyn
from learnsyn.cli.options import Parser, add_config_options, config_from_args
from learnsyn.config import TrainConfig, setting
from learnsyn.io import json_text, read_json

ROOT = Path(learnsyn.__file__).parent
PACKAGE_DIRS = {
    "learnsyn": ROOT,
    "learnsyn.tasks": ROOT.parent / "tasks",
    "learnsyn.baselines": ROOT.parent / "baselines",
}
#: self-registration: the registries load the packages whose modules register themselves; these
#: edges (and a package __init__ importing its own modules) are the only cycles allowed
REGISTRATION_EDGES = {
    ("learnsyn.registry", "learnsyn.baselines"),
    ("learnsyn.registry", "learnsyn.cells"),
    ("learnsyn.scenario", "learnsyn.tasks"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> modules of the project it imports (anywhere in the file, lazy imports too)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        tree = ast.parse(path.read_text())
        for block in ast.walk(tree):  # annotation-only imports never run: not an edge
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
                block.body = []
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle_but_self_registration():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    for module, edges in graph.items():
        registering = {e for e in edges if (module, e) in REGISTRATION_EDGES}
        own = {e for e in edges if module in ("learnsyn.tasks", "learnsyn.baselines")}
        graph[module] = edges - registering - own
    assert _cycles(graph) == [], f"import cycles: {_cycles(graph)}"


def test_the_cycle_finder_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_nothing_imports_the_command_line_or_the_degeneracy_module():
    graph = import_graph()
    for module, edges in graph.items():
        if module.startswith("learnsyn.cli") or module.endswith("__main__"):
            continue
        assert not any(e.startswith("learnsyn.cli") for e in edges), module
        if not module.startswith("learnsyn.degeneracy"):
            assert not any(e.startswith("learnsyn.degeneracy") for e in edges), module


def test_a_new_config_field_is_a_train_option_and_a_study_dimension():
    extended = make_dataclass(
        "ExtendedConfig",
        [("new_knob", float, setting(0.5, "a setting added to the config"))],
        bases=(TrainConfig,),
    )
    parser = Parser(prog="test")
    add_config_options(parser, extended)
    options = {a.dest: a for a in parser._actions}
    for field_name in [f for f in extended.__dataclass_fields__]:
        assert field_name in options, field_name
    args = parser.parse_args(
        ["--task", "ideal", "--synapses", "10", "--state-size", "2", "--cell", "gru"]
        + ["--new-knob", "0.25", "--lr", "0.01", "--task-param", "sigma=0.2", "--task", "noisy"]
    )
    config = config_from_args(args, extended)
    assert config.new_knob == 0.25 and config.lr == 0.01
    assert config.task_params == {"sigma": 0.2, "bound": 1.0}  # resolved by the scenario
    defaults = config_from_args(
        parser.parse_args(
            ["--task", "ideal", "--synapses", "1", "--state-size", "1"] + ["--cell", "rnn"]
        ),
        extended,
    )
    assert defaults.new_knob == 0.5 and defaults.temperature_final == pytest.approx(0.03)

    from learnsyn.study.space import config_dimension, narrow_space, with_config_dimensions

    assert config_dimension(extended, "new_knob").kind == "float"
    space = with_config_dimensions({}, ["new_knob"], extended)
    narrowed, fixed = narrow_space(space, {"new_knob": "0.1:0.9"}, "test")
    assert (narrowed["new_knob"].low, narrowed["new_knob"].high) == (0.1, 0.9) and not fixed


def test_the_train_command_has_an_option_for_every_config_field():
    from learnsyn.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions}
    assert set(TrainConfig.__dataclass_fields__) <= dests


def test_one_registry_lists_learned_cells_with_parameters(capsys):
    from learnsyn.cli import main

    assert main(["list", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    families = {m["name"]: m["family"] for m in data["models"]}
    assert families["gru"] == families["rnn"] == families["chain"] == "learned"
    assert families["exponential"] == "hand-crafted"
    chain = next(m for m in data["models"] if m["name"] == "chain")
    assert {"state_size", "amplitude", "ratio", "first_conductance"} <= {
        p["name"] for p in chain["params"]
    }


def test_the_state_budget_comes_from_each_model_state_size():
    from learnsyn.scenario import make_scenario
    from learnsyn.tuning import tune

    with pytest.raises(ValueError, match="needs 2 state variables, more than the state budget"):
        tune("ewc", make_scenario("ideal"), synapses=100, max_state=1, horizon=10)
    with pytest.raises(ValueError, match="unknown hand-crafted model 'gru'"):
        tune("gru", make_scenario("ideal"), synapses=100, horizon=10)
    result = tune("benna-fusi", make_scenario("ideal"), synapses=100, max_state=1, horizon=50)
    assert result.best_params["variables"] == 1


def test_training_and_evaluation_share_the_estimator(monkeypatch):
    import learnsyn.estimate.snr as snr
    import learnsyn.evaluate as evaluate_module
    import learnsyn.training as training_module
    from learnsyn.cells import make_cell
    from learnsyn.scenario import make_scenario

    calls = []
    original = snr.curve_from_pairs

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    assert evaluate_module.curve_from_pairs is original is training_module.curve_from_pairs
    monkeypatch.setattr(evaluate_module, "curve_from_pairs", spy)
    monkeypatch.setattr(training_module, "curve_from_pairs", spy)
    model, scenario = make_cell("gru", 2), make_scenario("ideal")
    config = TrainConfig(batch=16, horizon=8, burn_in=8).validate()
    training_module.meta_objective(model, scenario, config, 0, "cpu", grad=False)
    evaluate_module.evaluate(
        model, scenario, synapses=10, horizon=8, batch=16, burn_in=8, method="monte-carlo"
    )
    assert len(calls) == 2


BAD_EVALUATION_VALUES = [
    ({"synapses": 0}, "synapses = 0 is not allowed: need N >= 1"),
    ({"synapses": 2.5}, "synapses = 2.5 is not allowed: need N >= 1"),
    ({"horizon": 0}, "horizon = 0 is not allowed: need horizon >= 1"),
    ({"threshold": -1.0}, "threshold = -1.0 is not allowed: need a number >= 0"),
    ({"threshold": math.nan}, "threshold = nan is not allowed: need a number >= 0"),
    ({"convention": "small-n"}, "unknown convention 'small-n'; allowed: exact, large-n"),
    ({"burn_in": -3}, "burn-in = -3 is not allowed: need an integer >= 0"),
]


@pytest.mark.parametrize("bad, message", BAD_EVALUATION_VALUES)
def test_one_evaluation_spec_checks_each_value_in_the_same_words_everywhere(bad, message):
    """N, horizon, threshold, convention and burn-in are checked by ``EvalSpec`` alone, so an
    evaluation, a tuning and a training run refuse a bad value with one and the same line."""
    from learnsyn.estimate.snr import EvalSpec
    from learnsyn.evaluate import evaluate
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario
    from learnsyn.tuning import tune

    values = {"synapses": 100, "horizon": 50, **bad}
    scenario = make_scenario("ideal")
    for call in (
        lambda: EvalSpec(**values),
        lambda: evaluate(make_model("exponential", {"decay": 0.9}), scenario, **values),
        lambda: tune("exponential", scenario, **values),
        lambda: TrainConfig(**values).validate(),
    ):
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message


def test_a_run_s_evaluation_spec_is_its_settings_with_the_resolved_burn_in():
    config = TrainConfig(task="importance", synapses=300, horizon=40, threshold=0.5).validate()
    spec = config.eval_spec()
    assert (spec.synapses, spec.horizon, spec.threshold) == (300, 40, 0.5)
    assert (spec.convention, spec.metric) == (config.convention, config.metric)
    assert spec.burn_in == config.resolved_burn_in() == 400  # 2.5 T x importance's factor 4
    assert config.eval_spec(horizon=20).burn_in == config.resolved_burn_in(20) == 200
    from learnsyn.estimate.snr import EvalSpec

    read_back = EvalSpec(600.0, 1000.0, 1, burn_in=20.0)  # numbers from JSON: one type each
    assert {key: (value, type(value)) for key, value in read_back.keywords().items()} == {
        "synapses": (600, int), "horizon": (1000, int), "threshold": (1.0, float),
        "convention": ("large-n", str), "burn_in": (20, int),
    }  # fmt: skip
    for bad, message in (  # checked as given, before a burn-in is derived from them
        ({"burn_in": 2.5}, "burn-in = 2.5 is not allowed"),
        ({"burn_in": -0.5}, "burn-in = -0.5 is not allowed"),
        ({"horizon": math.nan}, "horizon = nan is not allowed"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainConfig(task="ideal", **bad).validate()


def test_a_run_s_evaluations_are_handed_its_spec(monkeypatch):
    """The final evaluation of a trained synapse and compare's re-evaluation of a Monte Carlo
    baseline (the two sides of a ratio) evaluate with the run's N, threshold, convention and
    resolved burn-in at the horizon they ask for."""
    import learnsyn.compare as compare_module
    import learnsyn.evaluate as evaluate_module
    from learnsyn.cells import make_cell
    from learnsyn.runs import evaluate_trained
    from learnsyn.scenario import make_scenario

    seen, original = [], evaluate_module.evaluate

    def spy(model, scenario, **keywords):
        seen.append(keywords)
        return original(model, scenario, **keywords)

    monkeypatch.setattr(evaluate_module, "evaluate", spy)
    monkeypatch.setattr(compare_module, "evaluate", spy)
    config = TrainConfig(
        task="ideal", synapses=300, horizon=8, threshold=0.5, convention="exact"
    ).validate()
    evaluate_trained(make_cell("gru", 2), config, batch=16, seed=0, device="cpu", horizon=6)
    row = {"name": "exponential", "params": {"decay": 0.9}, "method": "monte-carlo",
           "metrics": {"area": 1.0}}  # fmt: skip
    fresh = compare_module.reevaluated(row, config, make_scenario("ideal"), 16, 1, "cpu")
    assert len(seen) == 3  # the baseline on the comparison's pairs and on its selection stream
    # the best baseline is chosen on numbers of its own: neither the pairs it is judged on nor
    # the tuning's (the best of many candidates on one batch)
    chosen_on = fresh["selection"]
    assert chosen_on["eval_seed"] == 40_000 and seen[2]["seed"] == 40_000 and seen[1]["seed"] == 1
    assert chosen_on["metrics"]["area"] not in (1.0, fresh["metrics"]["area"])
    for keywords, horizon in zip(seen, (6, 8, 8)):
        spec = {"synapses": 300, "horizon": horizon, "threshold": 0.5, "convention": "exact",
                "burn_in": config.resolved_burn_in(horizon)}  # fmt: skip
        assert {key: keywords.get(key) for key in spec} == spec
    assert seen[0]["burn_in"] == 15 and seen[1]["burn_in"] == seen[2]["burn_in"] == 20  # 2.5 T


def test_json_is_strict_and_non_finite_numbers_round_trip(tmp_path):
    data = {"a": math.inf, "b": [math.nan, -math.inf, 1.5], "c": "text"}
    text = json_text(data)
    json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in JSON"))
    (tmp_path / "x.json").write_text(text)
    back = read_json(tmp_path / "x.json")
    assert back["a"] == math.inf and back["b"][1] == -math.inf and math.isnan(back["b"][0])
    with pytest.raises(ValueError, match="x.json"):
        (tmp_path / "x.json").write_text("{broken")
        read_json(tmp_path / "x.json")
    # review, session 32: bytes that are not UTF-8 raised UnicodeDecodeError, naming no file
    (tmp_path / "x.json").write_bytes(b"\x80\x81\x82")
    with pytest.raises(ValueError, match="x.json is not readable JSON"):
        read_json(tmp_path / "x.json")


def test_every_json_a_command_writes_is_strict(learnsyn_command, tmp_path):
    """evaluate's JSON (a lifetime metric of -1, a huge initial SNR in the exact convention)
    and an Evaluation holding non-finite numbers both parse with a strict parser."""
    out = tmp_path / "e.json"
    command = ["evaluate", "--model", "exponential", "--param", "decay=0.0", "--task", "ideal"]
    command += ["--synapses", "10", "--horizon", "5"]
    completed = learnsyn_command([*command, "--json", out])
    assert completed.returncode == 0, completed.stderr
    json.loads(out.read_text(), parse_constant=lambda token: pytest.fail(f"bare {token}"))
    from learnsyn.evaluate import Evaluation
    from learnsyn.io import write_json_output

    evaluation = Evaluation(**{**read_json(out), "metrics": {"initial_snr": math.inf}})
    write_json_output(str(tmp_path / "inf.json"), evaluation.to_json())
    text = (tmp_path / "inf.json").read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token}"))
    assert '"initial_snr": "inf"' in text
    assert read_json(tmp_path / "inf.json")["metrics"]["initial_snr"] == math.inf
