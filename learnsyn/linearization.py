"""A learned cell's linearization: what linear synapse it is close to, and the ablation.

For a cell ``h' = F(h, xi)`` with balanced +-1 events, the *mean map* ``h -> (F(h, +1) +
F(h, -1)) / 2`` has a fixed point ``h*`` (found by iterating it). Around it the cell is, to first
order in ``h - h*``, the affine synapse

    ``h' = h* + A (h - h*) + b xi``,  ``w = c . h``,

with ``A`` the Jacobian of the mean map at ``h*``, ``b = (F(h*, +1) - F(h*, -1)) / 2`` and ``c``
the readout weights (the readout of every learned cell is linear). For a binary event this is the
exact affine part of ``F`` in ``xi`` at ``h*``; what it drops is the dependence of the increment
on the state (and the curvature of the mean map).

``linearize`` returns ``(h*, A, b, c)`` and the eigenvalues of ``A`` (a complex pair: the cell
found a rotation, a damped oscillation of its memory kernel); ``LinearizedCell`` is that affine
synapse as a model, evaluated like any other: the "same cell held to its linearization" ablation
of a learned synapse (in a constrained scenario the same constraint applies to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learnsyn.synapse import LinearForm, ModelInfo, Synapse

FIXED_POINT_STEPS = 20_000


@dataclass
class Linearization:
    """``h' = h* + A (h - h*) + b xi``, ``w = c . h`` (float64 numpy), and how well ``h*`` is a
    fixed point of the mean map (``residual``: max |mean map(h*) - h*|)."""

    fixed_point: np.ndarray
    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    residual: float

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
            "A": self.A.tolist(),
            "b": self.b.tolist(),
            "c": self.c.tolist(),
            "eigenvalues_real": eig.real.tolist(),
            "eigenvalues_imag": eig.imag.tolist(),
            "moduli": moduli.tolist(),
            "time_scales": [float(1.0 / max(1.0 - r, 1e-300)) for r in moduli],
            "rotation": bool(np.any(np.abs(eig.imag) > 1e-9)),
            "angles": np.abs(np.angle(eig)).tolist(),
        }


def _mean_map(model: Synapse, state: torch.Tensor) -> torch.Tensor:
    ones = torch.ones(state.shape[0], dtype=state.dtype)
    return 0.5 * (model.step(state, ones) + model.step(state, -ones))


def linearize(model: Synapse, steps: int = FIXED_POINT_STEPS) -> Linearization:
    """The linearization of ``model`` around the fixed point of its mean map (float64)."""
    model = _double_copy(model)
    m = model.state_size
    with torch.no_grad():
        state = model.initial_state(1, dtype=torch.float64)
        for _ in range(steps):
            new = _mean_map(model, state)
            if bool(torch.all((new - state).abs() < 1e-15)):
                state = new
                break
            state = new
        residual = float((_mean_map(model, state) - state).abs().max())
        ones = torch.ones(1, dtype=torch.float64)
        b = 0.5 * (model.step(state, ones) - model.step(state, -ones))[0]
        c = model.readout(torch.eye(m, dtype=torch.float64)) - model.readout(
            torch.zeros(1, m, dtype=torch.float64)
        )
    jacobian = torch.autograd.functional.jacobian(
        lambda h: _mean_map(model, h.unsqueeze(0))[0], state[0]
    )
    return Linearization(
        fixed_point=state[0].numpy().copy(),
        A=jacobian.detach().numpy().copy(),
        b=b.numpy().copy(),
        c=c.numpy().copy(),
        residual=residual,
    )


def _double_copy(model: Synapse) -> Synapse:
    import copy

    clone = copy.deepcopy(model).to("cpu").double()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


class LinearizedCell(Synapse):
    """The affine synapse ``h' = h* + A (h - h*) + b xi``, ``w = c . h`` of a linearization.

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
        self.params = {"linearized": True}

    def initial_state(self, batch, *, device=None, dtype=torch.float32):
        return self.h_star.to(device=device, dtype=dtype).expand(batch, -1).clone()

    def step(self, state, events, flags=None):
        h_star = self.h_star.to(state.dtype)
        return (
            h_star
            + (state - h_star) @ self.A_T.to(state.dtype)
            + events.unsqueeze(-1).to(state.dtype) * self.b.to(state.dtype)
        )

    def readout(self, state):
        return state @ self.c.to(state.dtype)

    def linear_form(self) -> LinearForm:
        lin = self.linearization
        return LinearForm(np.asarray(lin.A), np.asarray(lin.b), np.asarray(lin.c))

    def time_scale(self) -> float:
        radius = float(np.max(np.abs(self.linearization.eigenvalues)))
        return float("inf") if radius >= 1 else 1.0 / max(1.0 - radius, 1e-300)


def ablation_report(run_dir, eval_batch: int | None = None, device: str = "cpu") -> dict:
    """The learned synapse of a run directory beside its linearized ablation: eigenvalues of
    the linearization, and both evaluated by Monte Carlo with the comparison's random numbers
    (same seed stream and batch as ``learnsyn compare``, so the difference is paired)."""
    from pathlib import Path

    from learnsyn.config import stream_seed
    from learnsyn.evaluate import evaluate
    from learnsyn.runs import evaluate_trained, load_run
    from learnsyn.scenario import make_scenario

    config, model, _ = load_run(run_dir)
    lin = linearize(model)
    batch = eval_batch or max(config.eval_batch, 8192)
    seed = stream_seed(config.seed, "compare")
    learned = evaluate_trained(model, config, batch=batch, seed=seed, device=device)
    ablation = evaluate_trained(LinearizedCell(lin), config, batch=batch, seed=seed, device=device)
    exact = None
    scenario = make_scenario(config.task, config.task_params)
    if scenario.linear_statistics() is not None:  # the ablation's curve in closed form
        exact = evaluate(
            LinearizedCell(lin),
            scenario,
            synapses=config.synapses,
            horizon=config.horizon,
            method="exact",
            convention=config.convention,
            threshold=config.threshold,
        ).metrics
    from learnsyn.estimate.grid import grid_fits
    from learnsyn.estimate.snr import paired_ratio

    metric = config.metric
    ratio = paired_ratio(
        learned.metrics[metric],
        ablation.metrics[metric],
        learned.monte_carlo["leave_one_out_metrics"][metric],
        ablation.monte_carlo["leave_one_out_metrics"][metric],
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
    }
    return report


def main(argv=None) -> int:
    """``python -m learnsyn.linearization --run DIR``: eigenvalues of the learned cell's
    linearization and the linearized ablation's metrics; writes DIR/linearization.json."""
    import argparse
    import json
    from pathlib import Path

    from learnsyn.io import atomic_write_json

    parser = argparse.ArgumentParser(prog="python -m learnsyn.linearization")
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--eval-batch", type=int, default=None, help="pairs (default: compare's)")
    args = parser.parse_args(argv)
    report = ablation_report(args.run, args.eval_batch)
    atomic_write_json(Path(args.run) / "linearization.json", report)
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
    print(json.dumps({"written": str(Path(args.run) / "linearization.json")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
