"""``--start-from``: a tanh RNN cell started at a given linear synapse (warm start)."""

import json

import numpy as np
import pytest
import torch

from learnsyn.cells import make_cell, read_linear_start, start_at_linear
from learnsyn.config import TrainConfig
from learnsyn.runs import START_NAME, train

SYNAPSE = {
    "A": [0.99, -0.05, 0.04, 0.98],
    "b": [0.2, -0.1],
    "c": [0.7, -0.7],
    "drive": [0.03, -0.02],
}
SYNAPSE_NO_DRIVE = {key: value for key, value in SYNAPSE.items() if key != "drive"}


def _write(tmp_path, data, name="start.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("cell_name", ["rnn", "gru"])
def test_a_cell_held_at_a_large_scale_steps_as_the_linear_synapse(tmp_path, cell_name):
    path = _write(tmp_path, {"params": {"variables": 2, **SYNAPSE}})
    start = read_linear_start(path, cell_name, 2)
    cell = make_cell(cell_name, 2, cell_params={"output_scale": 1000.0})
    start_at_linear(cell, start)
    state = torch.tensor([[0.5, -0.9], [-1.0, 0.3]])
    events = torch.tensor([1.0, -1.0])
    A, b, drive = np.reshape(SYNAPSE["A"], (2, 2)), np.array(SYNAPSE["b"]), SYNAPSE["drive"]
    expected = state.numpy() @ A.T + events.numpy()[:, None] * b + drive
    np.testing.assert_allclose(cell.step(state, events).detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(cell.readout_weights.detach().numpy(), SYNAPSE["c"], atol=1e-7)
    if cell_name == "rnn":
        A_back, b_back, c_back, drive_back = cell.linear_parts()
        np.testing.assert_allclose(A_back, A, atol=1e-7)
        np.testing.assert_allclose(drive_back, drive, atol=1e-7)


def _linear_parts_at_start(config, run_dir):
    """Train ``config`` for its iterations in ``run_dir``; the cell's (A, b, c, drive) before
    the first update."""
    seen = {}

    def observe(updates, model):
        if updates == 0:
            seen["start"] = model.linear_parts()

    train(config, run_dir, progress=False, final_evaluation=False, log=lambda *_: None,
          observe=observe, figure_baselines=[])  # fmt: skip
    return seen["start"]


def test_a_run_starts_at_the_file_and_keeps_it(tmp_path):
    path = _write(tmp_path, SYNAPSE_NO_DRIVE)  # top-level keys, no drive: a zero bias
    config = TrainConfig(
        task="bounded", synapses=100, state_size=2, cell="rnn", iterations=1, batch=8,
        horizon=20, burn_in=20, eval_batch=8, estimator="monte-carlo", device="cpu",
        figure_every=10**6, start_from=path, cell_params={"output_scale": 1000.0},
    )  # fmt: skip
    A, b, c, drive = _linear_parts_at_start(config, tmp_path / "run")
    np.testing.assert_allclose(A.ravel(), SYNAPSE["A"], atol=1e-7)
    np.testing.assert_allclose(b, SYNAPSE["b"], atol=1e-7)
    np.testing.assert_allclose(drive, 0.0)
    kept = json.loads((tmp_path / "run" / START_NAME).read_text())
    assert kept["source"] == path and kept["params"]["c"] == SYNAPSE["c"]


@pytest.mark.parametrize(
    ("cell", "m", "data", "message"),
    [
        ("chain", 2, SYNAPSE, "'chain' cannot start at a linear synapse; allowed: rnn, gru, mlp"),
        ("rnn", 4, SYNAPSE, "A = [0.99, -0.05, 0.04, 0.98] is not allowed: need 16 finite"),
        ("rnn", 2, {"A": [1, 0, 0, 1], "b": [0.1]}, "no linear synapse in it"),
        ("rnn", 2, {**SYNAPSE, "c": [0.7, "nan"]}, "c = [0.7, nan] is not allowed"),
        ("rnn", 2, {**SYNAPSE, "drive": [0.1]}, "drive = [0.1] is not allowed: need 2"),
        ("rnn", 2, None, "--start-from: "),
        # review, session 30: numpy's words naming neither file nor key, a TypeError, and a
        # scalar 0 (m = 1) read as None
        ("rnn", 2, {**SYNAPSE, "A": {"x": 1}}, "A = {'x': 1} is not allowed: need 4 finite"),
        ("rnn", 2, {**SYNAPSE, "A": "abcd"}, "A = 'abcd' is not allowed: need 4 finite"),
        ("rnn", 2, {**SYNAPSE, "A": [[1, 0], [0]]}, "A = [[1, 0], [0]] is not allowed"),
        ("rnn", 2, {**SYNAPSE, "drive": "x"}, "drive = 'x' is not allowed: need 2"),
        # review, session 35: dropped, so the run started elsewhere than the synapse it kept
        ("mlp", 2, {**SYNAPSE, "b_flagged": [1.0, 0.0]}, "b_flagged = [1.0, 0.0] is not allowed"),
    ],
)
def test_a_bad_start_is_one_line_before_any_work(tmp_path, cell, m, data, message):
    path = str(tmp_path / "missing.json") if data is None else _write(tmp_path, data)
    config = TrainConfig(task="noisy", synapses=100, state_size=m, cell=cell, start_from=path)
    with pytest.raises(ValueError, match="--start-from") as error:
        config.validate()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_tuned_start_tunes_the_linear_family_for_the_run_and_starts_there(tmp_path):
    """``--start-from tuned:optimal-linear``: the run tunes the family with its own setting,
    caches the row in baselines.json, starts the cell at it and keeps its metrics."""
    from learnsyn.scenario import make_scenario
    from learnsyn.tuning import tune

    config = TrainConfig(
        task="ideal", synapses=100, state_size=2, cell="rnn", iterations=1, batch=8,
        horizon=50, eval_batch=8, device="cpu", figure_every=10**6,
        start_from="tuned:optimal-linear", cell_params={"output_scale": 1000.0},
    )  # fmt: skip
    A, b, c, _ = _linear_parts_at_start(config, tmp_path / "run")
    kept = json.loads((tmp_path / "run" / START_NAME).read_text())
    expected = tune(
        "optimal-linear", make_scenario("ideal"), synapses=100, max_state=2, horizon=50,
        burn_in=config.resolved_burn_in(),
    )  # fmt: skip
    assert kept["source"] == "tuned:optimal-linear" and kept["model"] == "optimal-linear"
    assert kept["metrics"]["area"] == pytest.approx(expected.best_value, rel=1e-9)
    np.testing.assert_allclose(A.ravel(), expected.best_params["A"], atol=1e-6)
    np.testing.assert_allclose(b, expected.best_params["b"], atol=1e-6)
    np.testing.assert_allclose(kept["params"]["c"], expected.best_params["c"], atol=1e-12)
    cached = json.loads((tmp_path / "run" / "baselines.json").read_text())
    assert [row["name"] for row in cached] == ["optimal-linear"]


@pytest.mark.parametrize(
    ("task", "cell", "start", "message"),
    [
        ("noisy", "rnn", "tuned:exponential", "'exponential' is not allowed: need a linear family"),
        ("noisy", "rnn", "tuned:nope", "tuned:linear-range, tuned:optimal-linear) or a JSON"),
        ("ideal", "gru", "tuned:linear-range", "'ideal' has no range"),
        ("noisy", "chain", "tuned:optimal-linear", "cell 'chain' cannot start at a linear"),
        # review, session 33: failed after the run directory was written
        ("ideal", "rnn", "tuned:optimal-linear", "searches at most 8 variables"),
        # review, session 35: tuned with a b_flagged the cell dropped
        ("importance", "mlp", "tuned:optimal-linear", "no cell starts at"),
    ],
)
def test_a_bad_tuned_start_is_one_line_before_any_work(task, cell, start, message):
    m = 9 if "at most 8" in message else 2
    config = TrainConfig(task=task, synapses=100, state_size=m, cell=cell, start_from=start)
    with pytest.raises(ValueError, match="--start-from tuned:") as error:
        config.validate()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_scalar_zero_is_a_one_variable_entry(tmp_path):
    from learnsyn.cells import linear_start

    start = linear_start({"A": 0, "b": [0.5], "c": 1.0, "drive": 0}, "f.json", 1)
    assert start == {"A": [0.0], "b": [0.5], "c": [1.0], "drive": [0.0]}


#: optimal-linear tuned for ideal, m = 2, N = 100, horizon 50 (large-n area 22.86); its state's
#: stationary std is about 2.6, far outside a plain tanh's range +-1
WIDE = {
    "A": [0.9333459005602647, -0.07439568641437523, 0.07439568641437523, 0.9333459005602647],
    "b": [1.0, 0.0],
    "c": [0.20909369103906672, 0.6060205110733591],
}


@pytest.mark.parametrize("cell_name", ["rnn", "gru"])
def test_without_a_range_a_plain_tanh_cell_starts_at_the_synapse_itself(tmp_path, cell_name):
    """Review, session 34: in ideal a default rnn or gru (tanh of range +-1) started at a tuned
    linear synapse flattened its state and read 29 % below it. Without a range the state's
    scale is free: the cell holds the same synapse with its state scaled into tanh's linear
    range, and the run's start record says by how much."""
    from learnsyn.evaluate import evaluate
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario

    path = _write(tmp_path, {"params": {"variables": 2, **WIDE}})
    config = TrainConfig(
        task="ideal", synapses=100, state_size=2, cell=cell_name, iterations=1, batch=8,
        horizon=50, eval_batch=8, device="cpu", figure_every=10**6, start_from=path,
    )  # fmt: skip
    train(config, tmp_path / "run", progress=False, final_evaluation=False,
          log=lambda *_: None, figure_baselines=[])  # fmt: skip
    kept = json.loads((tmp_path / "run" / START_NAME).read_text())
    assert 0.0 < kept["state_scale"] < 0.1
    cell = make_cell(cell_name, 2)
    assert (
        start_at_linear(cell, read_linear_start(path, cell_name, 2), free_scale=True)
        == (kept["state_scale"])
    )
    kw = dict(synapses=100, horizon=50)
    exact = evaluate(make_model("optimal-linear", {"variables": 2, **WIDE}), make_scenario("ideal"),
                     **kw).metrics["area"]  # fmt: skip
    started = evaluate(cell, make_scenario("ideal"), method="monte-carlo", batch=4096, seed=3,
                       **kw)  # fmt: skip
    assert abs(started.metrics["area"] - exact) < 3 * started.metrics_stderr["area"] + 0.01 * exact


def test_state_noise_fixes_the_scale_even_without_a_range(tmp_path):
    """Review, session 34: noisy at ``bound=0`` has no range, but its state noise would be
    1 / alpha times larger in rescaled coordinates (a worse synapse: 11.9 where the start is
    21.1); there the synapse is taken as it is."""
    path = _write(tmp_path, {"params": {"variables": 1, "A": [0.95], "b": [1.0], "c": [1.0]}})
    config = TrainConfig(
        task="noisy", task_params={"sigma": 0.1, "bound": 0.0}, synapses=100, state_size=1,
        cell="rnn", iterations=1, batch=8, horizon=20, burn_in=20, eval_batch=8, device="cpu",
        figure_every=10**6, start_from=path, estimator="monte-carlo",
    )  # fmt: skip
    A, b, c, _ = _linear_parts_at_start(config, tmp_path / "run")
    np.testing.assert_allclose([A.item(), b.item(), c.item()], [0.95, 1.0, 1.0], atol=1e-6)
    assert "state_scale" not in json.loads((tmp_path / "run" / START_NAME).read_text())


def test_a_start_the_cells_saturation_bends_is_said(tmp_path):
    """Review, session 35: in bounded the default saturation s tanh(y / s), s = 4, bends the
    start's states by 2 % at the range's ends, so a GRU started at a refined synapse read 181.9
    where the synapse reads 185.5, without a word. The run says so, and how to start at it."""
    path = _write(tmp_path, SYNAPSE_NO_DRIVE)
    said = []
    config = TrainConfig(
        task="bounded", synapses=100, state_size=2, cell="gru", iterations=1, batch=8,
        horizon=20, burn_in=20, eval_batch=8, estimator="monte-carlo", device="cpu",
        figure_every=10**6, start_from=path,
    )  # fmt: skip
    train(config.validate(), tmp_path / "bent", progress=False, log=said.append)
    assert any("s = 4, bends the start's states by up to 2 %" in line for line in said), said
    said.clear()
    exact = TrainConfig(**{**config.to_dict(), "cell_params": {"output_scale": 1000.0}})
    train(exact.validate(), tmp_path / "at", progress=False, log=said.append)
    assert not any("bends" in line for line in said)


def test_without_a_range_a_start_whose_states_the_saturation_clamps_is_said(tmp_path):
    """Review, session 36: in noisy with bound=0 the start is not rescaled (the noise sets the
    scale) and there is no range, so no note was given, while a tuned synapse's states reach
    thousands and s = 4 clamps them: the run started at a synapse of lifetime 1."""
    path = _write(tmp_path, {"params": {"variables": 1, "A": [0.999], "b": [10.0], "c": [1.0]}})
    said = []
    config = TrainConfig(
        task="noisy", task_params={"sigma": 0.1, "bound": 0.0}, synapses=100, state_size=1,
        cell="rnn", iterations=1, batch=8, horizon=20, burn_in=20, eval_batch=8, device="cpu",
        figure_every=10**6, start_from=path, estimator="monte-carlo",
        cell_params={"output_scale": 4.0},
    )  # fmt: skip
    train(config.validate(), tmp_path / "run", progress=False, log=said.append)
    assert any("where they reach 224: the run starts far from the synapse" in line
               for line in said), said  # fmt: skip


@pytest.mark.parametrize(
    "task, params",
    [("sparse", {"rate": 0.2, "p_plus": 0.8}), ("correlated", {"repeat": 0.8}), ("ideal", {})],
)
def test_the_start_state_extent_follows_the_scenarios_events(task, params):
    """Review, session 36: the extent a free-scale start is held in assumed independent events
    of mean 0 (sparse's mean and correlated's correlation ignored: the rnn start read 437 where
    the synapse reads 498). Checked against a simulation of the scenario's own events."""
    from learnsyn.cells import linear_state_extent
    from learnsyn.scenario import make_scenario

    A, b = np.array([[0.97, 0.1], [-0.1, 0.9]]), np.array([1.0, 0.5])
    scenario = make_scenario(task, params)
    generator = torch.Generator().manual_seed(0)
    stream = scenario.new_stream(256, "cpu")
    x, samples = np.zeros((256, 2)), []
    for step in range(3000):
        u = torch.rand(256, scenario.uniforms_per_step, generator=generator)
        events, _, stream = scenario.next_events(stream, u)
        x = x @ A.T + events.double().numpy().reshape(256, 1) * b
        if step >= 1000:
            samples.append(x.copy())
    states = np.concatenate(samples)
    simulated = float((np.abs(states.mean(0)) + states.std(0)).max())
    assert linear_state_extent(A, b, None, scenario) == pytest.approx(simulated, rel=0.03)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_a_cell_started_at_a_slow_linear_synapse_in_ideal_is_that_synapse(cell):
    """Review, session 38: the state was rescaled to 0.1 of tanh's range, where its mean slope
    (about 0.99) shortens a mode of 0.9875 to 0.981: a GRU started at optimal-linear in ideal
    read 175.9 where the synapse reads 184.1. The scale now also keeps that loss below 0.2 % of
    the mode's gap; on common random numbers the started cell is the synapse to 0.2 % (at 2 %
    of the gap the SNR read 0.85 % high at every age: a faster decay starts higher)."""
    import numpy as np

    from learnsyn.cells import start_at_linear
    from learnsyn.config import TrainConfig
    from learnsyn.evaluate import evaluate
    from learnsyn.registry import make_model
    from learnsyn.scenario import make_scenario
    from learnsyn.training import build_model

    scenario = make_scenario("ideal")
    params = {"variables": 1, "A": [0.9875138577633447], "b": [1.0], "c": [0.2644556303293035]}
    start = {"A": params["A"], "b": params["b"], "c": params["c"]}
    options = dict(synapses=1000, horizon=100, batch=4096, burn_in=1000, method="monte-carlo")
    linear = evaluate(make_model("optimal-linear", params), scenario, **options)
    model = build_model(TrainConfig(task="ideal", cell=cell, state_size=1, synapses=1000))
    start_at_linear(model, start, free_scale=True, scenario=scenario)
    started = evaluate(model, scenario, **options)
    assert started.metrics["area"] == pytest.approx(linear.metrics["area"], rel=1e-3)
    np.testing.assert_allclose(started.snr[:10], linear.snr[:10], rtol=2e-3)
