"""A learned cell's linearization: what linear synapse it is close to, and the ablation.

For a cell ``h' = F(h, xi)`` with balanced +-1 events, the *mean map* ``h -> (F(h, +1) +
F(h, -1)) / 2`` has a fixed point ``h*`` (found by iterating it). Around it the cell is, to first
order in ``h - h*``, the affine synapse

    ``h' = h* + A (h - h*) + b xi``,  ``w = c . h``,

with ``A`` the Jacobian of the mean map at ``h*``, ``b = (F(h*, +1) - F(h*, -1)) / 2`` and ``c``
the readout weights (the readout of every learned cell is linear). For a binary event this is the
exact affine part of ``F`` in ``xi`` at ``h*``; what it drops is the dependence of the increment
on the state (and the curvature of the mean map). Where steps without an event occur
(``sparse``) the mean map is over the scenario's events, 0 included (``scenario_events``), and
``b`` the least-squares increment over them.

``linearize`` returns ``(h*, A, b, c)`` and the eigenvalues of ``A`` (a complex pair: the cell
found a rotation, a damped oscillation of its memory kernel); ``LinearizedCell`` is that affine
synapse as a model, evaluated like any other: the "same cell held to its linearization" ablation
of a learned synapse (in a constrained scenario the same constraint applies to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learnsyn.estimate.snr import check_pairs
from learnsyn.initialization import generator_seed
from learnsyn.synapse import LinearForm, ModelInfo, Synapse, spectral_radius

FIXED_POINT_STEPS = 20_000
#: iterating that leaves a larger residual (or a non-finite one) is followed by Newton steps
NEWTON_ABOVE, NEWTON_STEPS = 1e-9, 50


@dataclass
class Linearization:
    """``h' = h* + A (h - h*) + b xi``, ``w = c . h`` (float64 numpy), and how well ``h*`` is a
    fixed point of the mean map (``residual``: max |mean map(h*) - h*|)."""

    fixed_point: np.ndarray
    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    residual: float
    #: the mean event the linearization was taken at (``sparse``: ``rate (2 p_plus - 1)``);
    #: the affine synapse adds ``b (xi - event_mean)``, so that ``h*`` stays its mean state
    event_mean: float = 0.0

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvals(self.A)

    def summary(self) -> dict:
        """JSON-ready: eigenvalues (real and imaginary parts), their moduli and time scales."""
        eig = self.eigenvalues
        order = np.argsort(-np.abs(eig))
        eig = eig[order]
        moduli = np.abs(eig)
        return {
            "fixed_point": self.fixed_point.tolist(),
            "fixed_point_residual": self.residual,
            **({"event_mean": self.event_mean} if self.event_mean else {}),
            "A": self.A.tolist(),
            "b": self.b.tolist(),
            "c": self.c.tolist(),
            "eigenvalues_real": eig.real.tolist(),
            "eigenvalues_imag": eig.imag.tolist(),
            "moduli": moduli.tolist(),
            # a mode of modulus >= 1 never forgets: inf ("inf" in JSON), not a finite-looking
            # 1e300 (review, session 30)
            "time_scales": [float(1.0 / (1.0 - r)) if r < 1 else math.inf for r in moduli],
            "rotation": bool(np.any(np.abs(eig.imag) > 1e-9)),
            "angles": np.abs(np.angle(eig)).tolist(),
        }


#: ``(event value, probability)`` of balanced +-1 events (ideal, correlated, bounded, noisy)
BALANCED_EVENTS = ((1.0, 0.5), (-1.0, 0.5))


def scenario_events(scenario) -> tuple[tuple[float, float], ...]:
    """The events of ``scenario``'s background stream with their probabilities: ``sparse``
    adds the steps without an event (0) and its ``p_plus``; balanced +-1 where the scenario
    gives no event statistics or its events carry flags (``importance``: the cell's flag input
    is not linearized, see the scoreboard's note)."""
    stats = None if scenario is None else scenario.markov_statistics()
    if stats is None or scenario.has_flags:
        return BALANCED_EVENTS
    rate, plus = stats.event_probability, stats.p_plus
    events = ((1.0, rate * plus), (-1.0, rate * (1.0 - plus)), (0.0, 1.0 - rate))
    return tuple(event for event in events if event[1] > 0)


def _event_response(step, events) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean map ``sum p F(xi)`` and the least-squares increment ``Cov(xi, F(xi)) /
    Var(xi)`` over ``events`` (``(value, probability)`` pairs), ``step(xi)`` giving ``F(xi)``:
    ``(F(+1) + F(-1)) / 2`` and ``(F(+1) - F(-1)) / 2`` for balanced +-1 events."""
    mean = sum(value * p for value, p in events)
    spread = sum(p * (value - mean) ** 2 for value, p in events)
    outcomes = [(value, p, step(value)) for value, p in events]
    mean_map = sum(p * new for _, p, new in outcomes)
    increment = sum(p * (value - mean) * new for value, p, new in outcomes) / spread
    return mean_map, increment


def _mean_map(model: Synapse, state: torch.Tensor, events=BALANCED_EVENTS) -> torch.Tensor:
    ones = torch.ones(state.shape[0], dtype=state.dtype)
    return sum(p * model.step(state, value * ones) for value, p in events)


def _mean_map_jacobian(model: Synapse, state: torch.Tensor, events=BALANCED_EVENTS):
    """The Jacobian of the mean map at ``state`` (``[1, m]``), ``[m, m]``."""
    return torch.autograd.functional.jacobian(
        lambda h: _mean_map(model, h.unsqueeze(0), events)[0], state[0]
    )


def _readout_weights(model: Synapse, m: int) -> torch.Tensor:
    """``c`` of the (affine) readout ``w = c . h + w0``, float64."""
    return model.readout(torch.eye(m, dtype=torch.float64)) - model.readout(
        torch.zeros(1, m, dtype=torch.float64)
    )


def _newton_fixed_point(
    model: Synapse, state: torch.Tensor, residual: float, events=BALANCED_EVENTS
) -> tuple[torch.Tensor, float]:
    """Newton's method on ``f(h) - h`` from ``state`` (the initial state where iterating left
    no finite one): a fixed point that iterating the mean map cannot reach, e.g. of a mode of
    modulus > 1 (review, session 32: the linearization was NaN, said nowhere). Raises one
    line where no finite fixed point is found."""
    if not bool(torch.isfinite(state).all()):
        state = model.initial_state(1, dtype=torch.float64)
    best, best_residual = state, residual if math.isfinite(residual) else math.inf
    eye = torch.eye(state.shape[1], dtype=torch.float64)
    for _ in range(NEWTON_STEPS):
        jacobian = _mean_map_jacobian(model, state, events)
        with torch.no_grad():
            gap = _mean_map(model, state, events)[0] - state[0]
            step = torch.linalg.lstsq(jacobian - eye, gap.unsqueeze(1)).solution[:, 0]
            state = state - step.unsqueeze(0)
            current = float((_mean_map(model, state, events) - state).abs().max())
        if not math.isfinite(current):
            break
        if current < best_residual:
            best, best_residual = state, current
        if current < 1e-15:
            break
    if not math.isfinite(best_residual):
        raise ValueError("the model's mean map has no finite fixed point to linearize around")
    return best, best_residual


def linearize(
    model: Synapse, steps: int = FIXED_POINT_STEPS, events=BALANCED_EVENTS
) -> Linearization:
    """The linearization of ``model`` around the fixed point of its mean map over ``events``
    (``(value, probability)`` pairs: ``scenario_events``; float64). ``b`` is the least-squares
    increment over the events at ``h*``, ``Cov(xi, F(h*, xi)) / Var(xi)``: ``(F(h*, +1) -
    F(h*, -1)) / 2`` for balanced +-1 events. With steps without an event (``sparse``) the
    mean map over +-1 alone was the wrong operating point (review, session 36: the cell moved
    where its linearization stood still)."""
    model = _double_copy(model)
    m = model.state_size
    with torch.no_grad():
        state = model.initial_state(1, dtype=torch.float64)
        for _ in range(steps):
            new = _mean_map(model, state, events)
            if bool(torch.all((new - state).abs() < 1e-15)):
                state = new
                break
            state = new
        residual = float((_mean_map(model, state, events) - state).abs().max())
    if not residual <= NEWTON_ABOVE:  # iterating diverged (a mode of modulus > 1) or stalled
        state, residual = _newton_fixed_point(model, state, residual, events)
    with torch.no_grad():
        ones = torch.ones(1, dtype=torch.float64)
        _, b = _event_response(lambda value: model.step(state, value * ones)[0], events)
        c = _readout_weights(model, m)
    jacobian = _mean_map_jacobian(model, state, events)
    return Linearization(
        fixed_point=state[0].numpy().copy(),
        A=jacobian.detach().numpy().copy(),
        b=b.numpy().copy(),
        c=c.numpy().copy(),
        residual=residual,
        event_mean=float(sum(value * p for value, p in events)),
    )


def linearize_on_states(model: Synapse, states: torch.Tensor) -> Linearization:
    """The affine synapse closest to ``model`` on the given states (least squares): the mean
    map fitted as ``a + A h``, ``b`` the mean event increment, ``h*`` the fit's fixed point
    ``(I - A)^-1 a``; ``residual``: the RMS of the fit's error. For a cell that leans on a
    scenario's range (its unconstrained fixed point can lie far outside [-1, 1]) this, on its
    stationary states, is the linear synapse it behaves like; for a linear one it is itself."""
    model = _double_copy(model)
    h = states.to(torch.float64)
    m = h.shape[1]
    with torch.no_grad():
        ones = torch.ones(h.shape[0], dtype=torch.float64)
        up, down = model.step(h, ones), model.step(h, -ones)
        c = _readout_weights(model, m)
    design = np.hstack([np.ones((h.shape[0], 1)), h.numpy()])
    mean_map = (0.5 * (up + down)).numpy()
    coef, *_ = np.linalg.lstsq(design, mean_map, rcond=None)
    offset, A = coef[0], coef[1:].T
    fixed_point = np.linalg.lstsq(np.eye(m) - A, offset, rcond=None)[0]
    residual = float(np.sqrt(np.mean((design @ coef - mean_map) ** 2)))
    return Linearization(
        fixed_point=fixed_point,
        A=A,
        b=(0.5 * (up - down)).numpy().mean(axis=0),
        c=c.numpy().copy(),
        residual=residual,
    )


def linearize_in(model: Synapse, scenario, states: torch.Tensor | None = None) -> Linearization:
    """The ablation's linearization: around the mean map's fixed point where the scenario leaves
    the state free, on the model's stationary states where it constrains it (``states``: a
    sample of them already drawn, else ``stationary_states``)."""
    if scenario.constrains_state:
        if states is None:
            states = stationary_states(model, scenario)
        return linearize_on_states(model, states)
    return linearize(model, events=scenario_events(scenario))


def _double_copy(model: Synapse) -> Synapse:
    import copy

    clone = copy.deepcopy(model).to("cpu").double()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


class LinearizedCell(Synapse):
    """The affine synapse ``h' = h* + A (h - h*) + b xi``, ``w = c . (h - h*)`` of a
    linearization (the cell's readout less the constant ``c . h*``, which no SNR sees).

    Its state lives where the cell's does (around ``h*``), so a scenario's range and precision
    constrain it as they constrain the cell. In an unconstrained scenario it is exactly the linear
    synapse ``linear_form()`` (in the shifted state ``h - h*``; the constant ``c . h*`` of the
    readout carries no signal)."""

    info = ModelInfo(
        "linearized",
        "a learned cell held to its linearization around the fixed point of its mean map",
        "this project (ablation of a learned synapse)",
        family="learned",
    )

    def __init__(self, linearization: Linearization):
        super().__init__()
        self.linearization = linearization
        self.state_size = len(linearization.b)
        as_tensor = lambda x: torch.tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        self.register_buffer("A_T", as_tensor(linearization.A.T))
        self.register_buffer("b", as_tensor(linearization.b))
        self.register_buffer("c", as_tensor(linearization.c))
        self.register_buffer("h_star", as_tensor(linearization.fixed_point))
        self.event_mean = float(linearization.event_mean)
        self.params = {"linearized": True}

    def initial_state(self, batch, *, device=None, dtype=torch.float32):
        return self.h_star.to(device=device, dtype=dtype).expand(batch, -1).clone()

    def step(self, state, events, flags=None):
        h_star = self.h_star.to(state.dtype)
        return (
            h_star
            + (state - h_star) @ self.A_T.to(state.dtype)
            + (events.unsqueeze(-1).to(state.dtype) - self.event_mean) * self.b.to(state.dtype)
        )

    def readout(self, state):
        # c . (h - h*): the constant c . h* carries no signal, and where it dwarfs the spread of
        # the weight the float32 Monte Carlo moments cancelled it away (importance, m = 2: an
        # area of 764 +- 243 where the closed form gives 550.7; review, session 37)
        return (state - self.h_star.to(state.dtype)) @ self.c.to(state.dtype)

    def linear_form(self) -> LinearForm:
        lin = self.linearization
        return LinearForm(np.asarray(lin.A), np.asarray(lin.b), np.asarray(lin.c))

    def time_scale(self) -> float:
        radius = float(np.max(np.abs(self.linearization.eigenvalues)))
        return float("inf") if radius >= 1 else 1.0 / max(1.0 - radius, 1e-300)


def ablation_report(run_dir, eval_batch: int | None = None, device: str = "cpu") -> dict:
    """The learned synapse of a run directory beside its linearized ablation: eigenvalues of
    the linearization, and both evaluated by Monte Carlo with the comparison's random numbers
    (same seed stream and batch as ``learnsyn compare``, so the difference is paired); the
    summary of its response profile under ``response``."""
    return _ablation(run_dir, eval_batch, device)[0]


def _ablation(run_dir, eval_batch: int | None, device: str):
    """``(report, response profile, linearization, config)``: one load of the run and one
    sample of its stationary states serve the ablation and the response figure."""
    from learnsyn.config import stream_seed
    from learnsyn.evaluate import evaluate
    from learnsyn.runs import evaluate_trained, load_run
    from learnsyn.scenario import make_scenario

    config, model, _ = load_run(run_dir)
    scenario = make_scenario(config.task, config.task_params)
    states = stationary_states(model, scenario)
    lin = linearize_in(model, scenario, states)
    profile = response_profile(model, lin, states, scenario_events(scenario))
    batch = max(config.eval_batch, 8192) if eval_batch is None else eval_batch
    seed = stream_seed(config.seed, "compare")
    learned = evaluate_trained(model, config, batch=batch, seed=seed, device=device)
    ablation = evaluate_trained(LinearizedCell(lin), config, batch=batch, seed=seed, device=device)
    exact = None
    # the ablation's curve in closed form, where it has one: not for a mode of modulus >= 1
    # (evaluated by Monte Carlo above; the closed form's refusal lost the report: review,
    # session 35)
    if scenario.linear_statistics() is not None and spectral_radius(lin.A) < 1:
        spec = config.eval_spec().keywords()
        exact = evaluate(LinearizedCell(lin), scenario, method="exact", **spec).metrics
    from learnsyn.estimate.grid import grid_fits
    from learnsyn.estimate.ratio import paired_ratio
    from learnsyn.estimate.snr import rounding_error

    metric = config.metric
    ratio = paired_ratio(
        learned.metrics[metric],
        ablation.metrics[metric],
        learned.monte_carlo["leave_one_out_metrics"][metric],
        ablation.monte_carlo["leave_one_out_metrics"][metric],
        rounding=(rounding_error(metric, True),) * 2,
    )
    grid = None
    if grid_fits(model, scenario):  # bounded: both exactly on the level grid, no noise at all
        grid = {
            name: evaluate_trained(
                synapse, config, batch=batch, seed=seed, device=device, method="exact"
            ).metrics
            for name, synapse in (("learned", model), ("linearized", LinearizedCell(lin)))
        }
    report = {
        "run": str(Path(run_dir)),
        "task": config.task,
        "learned_over_linearized": {"metric": metric, **ratio.to_json()},
        "exact_on_grid": grid,
        "linearization": lin.summary(),
        "eval_batch": batch,
        "learned": {"metrics": learned.metrics, "metrics_stderr": learned.metrics_stderr},
        "linearized": {"metrics": ablation.metrics, "metrics_stderr": ablation.metrics_stderr},
        "linearized_exact": exact,
        "response": {
            key: profile[key] for key in ("state_dependence", "drift_residual", "state_std")
        },
    }
    return report, profile, lin, config


def stationary_states(
    model: Synapse, scenario, batch: int = 2048, steps: int = 3000, seed: int = 0
) -> torch.Tensor:
    """States ``[batch, m]`` of the model after ``steps`` events with the scenario's constraint
    applied after every step (a sample of its stationary distribution): balanced +-1 events
    where the scenario's are (the numbers as before), else the scenario's own stream (sparse,
    correlated: balanced events sampled states the cell never visits there; review, session
    36), with its flags (importance: its boosted, flagged events; review, session 38)."""
    generator = torch.Generator().manual_seed(generator_seed(seed))
    stats = scenario.markov_statistics()
    own = (
        scenario.has_flags
        or scenario_events(scenario) != BALANCED_EVENTS
        or (stats is not None and stats.repeat)
    )
    stream = scenario.new_stream(batch, "cpu") if own else None
    with torch.no_grad():
        state = model.initial_state(batch)
        for _ in range(steps):
            flags = None
            if own:
                u = torch.rand(batch, scenario.uniforms_per_step, generator=generator)
                events, flags, stream = scenario.next_events(stream, u)
            else:
                events = torch.where(torch.rand(batch, generator=generator) < 0.5, 1.0, -1.0)
            state = model.step(state, events, flags)
            if scenario.constrains_state:
                noise = scenario.constraint_noise(batch, state.shape[1], generator, state.device)
                state = scenario.constrain(state, noise)
    return state


def response_profile(
    model: Synapse, lin: Linearization, states: torch.Tensor, events=BALANCED_EVENTS
) -> dict:
    """What the synapse does to an event, as a function of its state, on ``states`` (a sample
    of its stationary states, ``stationary_states``): per variable, the event's increment (the
    least-squares one over ``events``: ``(F(h, +1) - F(h, -1)) / 2`` for balanced +-1 events)
    and the drift ``mean map(h) - h`` over ``events``, beside what the linearization predicts.
    ``state_dependence``: the spread of the increment over the states relative to its mean
    size (0 for a linear synapse); ``drift_residual``: the part of the drift the linearization
    misses, relative to the drift's spread."""
    ones = torch.ones(states.shape[0])
    with torch.no_grad():
        mean_map, increment = _event_response(
            lambda value: model.step(states, value * ones).double(), events
        )
    h = states.double().numpy()
    increment = increment.numpy()
    drift = mean_map.numpy() - h
    predicted = (h - lin.fixed_point) @ (lin.A - np.eye(len(lin.b))).T  # (A - I)(h - h*)
    size = np.abs(increment).mean(axis=0)
    return {
        "states": h,
        "increment": increment,
        "drift": drift,
        "drift_linear": predicted,
        "state_dependence": (increment.std(axis=0) / np.maximum(size, 1e-300)).tolist(),
        "drift_residual": (
            (drift - predicted).std(axis=0) / np.maximum(drift.std(axis=0), 1e-300)
        ).tolist(),
        "state_std": h.std(axis=0).tolist(),
    }


def plot_response(profile: dict, lin: Linearization, title: str = ""):
    """Per state variable: the event's increment and the drift against the variable's value,
    the cell's (dots) beside its linearization's (lines / crosses)."""
    from learnsyn.plotting import plt

    h, m = profile["states"], profile["states"].shape[1]
    rows = 3 if m >= 2 else 2
    fig, axes = plt.subplots(rows, max(m, 2), figsize=(4.2 * max(m, 2), 3.2 * rows), squeeze=False)
    for i in range(m):
        order = np.argsort(h[:, i])
        top, bottom = axes[0, i], axes[1, i]
        top.plot(h[:, i], profile["increment"][:, i], ".", ms=2, alpha=0.4, label="learned")
        top.axhline(lin.b[i], color="k", lw=1, label="linearization")
        top.set_title(f"variable {i + 1}: increment per event")
        bottom.plot(h[:, i], profile["drift"][:, i], ".", ms=2, alpha=0.4, label="learned")
        bottom.plot(
            h[order, i],
            profile["drift_linear"][order, i],
            "x",
            ms=2,
            alpha=0.3,
            color="k",
            label="linearization",
        )
        bottom.set_title(f"variable {i + 1}: drift (mean map - h)")
        bottom.set_xlabel(f"h{i + 1} (stationary states)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    if rows == 3:  # where the synapse lives: the joint stationary distribution of h1, h2
        joint = axes[2, 0]
        joint.hist2d(h[:, 0], h[:, 1], bins=40, cmap="viridis", cmin=1)
        joint.set_xlabel("h1")
        joint.set_ylabel("h2")
        joint.set_title("stationary states (h1, h2)")
        for ax in axes[2, 1:]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_response(run_dir, config, profile: dict, lin: Linearization) -> Path:
    """``run_dir/response.png`` from the ablation's response profile."""
    from learnsyn.plotting import save_figure

    path = Path(run_dir) / "response.png"
    title = (
        f"{config.cell}, m = {config.state_size}, {config.task}, N = {config.synapses}: what the "
        "learned synapse does to an event, on its stationary states"
    )
    save_figure(plot_response(profile, lin, title), path)
    return path


def main(argv=None) -> int:
    """``python -m learnsyn.linearization --run DIR``: eigenvalues of the learned cell's
    linearization and the linearized ablation's metrics; writes DIR/linearization.json."""
    import argparse
    import json

    from learnsyn.io import atomic_write_json

    parser = argparse.ArgumentParser(prog="python -m learnsyn.linearization")
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--eval-batch", type=int, default=None, help="pairs (default: compare's)")
    args = parser.parse_args(argv)
    if args.eval_batch is not None:  # (0 meant the default)
        try:
            check_pairs(args.eval_batch, "--eval-batch")
        except ValueError as error:
            parser.exit(2, f"error: {error}\n")
    try:  # a run that is not one, a checkpoint that does not load: one line (exit 2)
        report, profile, linearization, config = _ablation(args.run, args.eval_batch, "cpu")
        figure = write_response(args.run, config, profile, linearization)
        atomic_write_json(Path(args.run) / "linearization.json", report)
    except (ValueError, OSError) as error:
        parser.exit(2, f"error: {error}\n")
    lin = report["linearization"]
    eig = ", ".join(
        f"{re:.5f}{im:+.5f}i" for re, im in zip(lin["eigenvalues_real"], lin["eigenvalues_imag"])
    )
    print(f"linearization around h* = {lin['fixed_point']}: eigenvalues {eig}")
    for name in ("learned", "linearized"):
        metrics, errors = report[name]["metrics"], report[name]["metrics_stderr"]
        print(f"{name}: area {metrics['area']:.1f} +- {errors['area']:.1f}")
    if report["linearized_exact"] is not None:
        print(f"linearized, exact: area {report['linearized_exact']['area']:.2f}")
    r = report["learned_over_linearized"]
    print(
        f"learned / linearized ({r['metric']}, paired jackknife on the same random numbers): "
        f"{r['ratio']:.4f} +- {r['ratio_stderr']:.4f}"
    )
    if report["exact_on_grid"] is not None:
        grid = report["exact_on_grid"]
        print(
            f"exact on the level grid: learned {grid['learned']['area']:.2f}, linearized "
            f"{grid['linearized']['area']:.2f}"
        )
    response = report["response"]
    print(
        "response (stationary states): increment spread / size per variable "
        f"{[round(x, 3) for x in response['state_dependence']]} (0: linear); drift the "
        f"linearization misses {[round(x, 3) for x in response['drift_residual']]}"
    )
    print(json.dumps({"written": [str(Path(args.run) / "linearization.json"), str(figure)]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
