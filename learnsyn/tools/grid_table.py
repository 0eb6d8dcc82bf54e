"""The strongest synapse of its size on the bounded grid, searched without a parametric form.

In the ``bounded`` scenario every state variable is clipped and stochastically rounded to ``L``
levels after each step, so after its first step a continuous-state synapse with ``m`` variables
lives on the ``S = L^m`` grid points and everything it does is a table: the target ``F(x, e)``
of each grid point ``x`` under each event ``e = +-1`` (which the scenario then clips and
rounds), and its readout ``w = c . x`` (the readout of the cells and of the linear synapses).
``python -m learnsyn.tools.grid_table --run DIR`` starts from the run's own table (its trained
cell's targets on the grid, its readout) and optimizes every entry with Adam on the exact SNR of
the grid chain (``estimate.grid``, stationary, the run's N, metric, horizon, threshold and
convention; the same smooth surrogate and temperature schedule as training). The result is a
synapse of the scenario with the run's m, with no form imposed: what the learned cell's form,
or its training, leaves on the table. ``--start random:SEED`` starts from random targets,
``--start FILE`` from a linear synapse (a JSON file as ``learnsyn train --start-from`` reads:
the tuned ``linear-range``, a ``refined-linear.json``).

``--free-transitions`` relaxes the scenario's rule instead: any Markov chain on the ``S`` grid
states (each row of each event's transition matrix free, a softmax; a free readout per state),
the family of finite-state synapses with the same number of states. No ``m``-variable synapse of
the scenario is such a chain in general (its rounding moves each variable to one of two
neighbouring levels, independently), so this is a larger family, not a competitor inside the
scenario: it measures what the per-variable rounding costs.

Both searches are local (Adam from one start), so their values are lower bounds on the best of
each family. The final value is computed by ``learnsyn.evaluate``: the table as a synapse of the
scenario (exact on the grid at the run's burn-in; ``--check-batch P`` adds a Monte Carlo
evaluation by the scenario's own simulator), the free chain as a finite-state synapse in the
scenario's events without the constraint (its closed form, a method independent of the grid).

Writes ``DIR/grid-table.json`` or ``DIR/grid-markov.json`` (atomically; ``--out`` elsewhere):
the start's and the found value, the search's history, and the table or chain itself
(``load_grid_synapse`` rebuilds the synapse from it).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learnsyn.estimate.snr import check_pairs
from learnsyn.synapse import MarkovForm, MarkovSynapse, ModelInfo, Synapse

#: the free-transitions search keeps dense S x S matrices: grids up to this many states
MAX_FREE_STATES = 1024


class GridTableSynapse(Synapse):
    """A synapse given by its targets on the bounded level grid: ``targets[0]`` (event +1) and
    ``targets[1]`` (event -1), ``[S, m]`` each, at the flat grid index of ``estimate.grid``
    (variable 0 fastest); a state is looked up at its nearest grid point (in float64, so that
    the simulator and the exact chain agree). ``first`` ``[2, m]``: the targets of the first
    step from ``initial`` where it lies off the grid (a cell's own first step; by default those
    of the nearest grid point); on the grid its table entry applies. Readout ``c . x``."""

    info = ModelInfo(
        name="grid-table",
        summary="targets F(x, e) on the bounded level grid, readout c . x",
        reference="learnsyn.tools.grid_table",
        family="learned",
    )
    needs_state_range = True

    def __init__(self, targets, readout, levels: int, bound: float, initial=None, first=None):
        super().__init__()
        targets = torch.as_tensor(targets, dtype=torch.float64)
        self.state_size = targets.shape[-1]
        self.levels, self.bound = int(levels), float(bound)
        if targets.shape != (2, self.levels**self.state_size, self.state_size):
            raise ValueError(
                f"grid table of shape {tuple(targets.shape)} is not allowed: expected "
                f"(2, {self.levels}^{self.state_size}, {self.state_size})"
            )
        self.targets = torch.nn.Parameter(targets.clone())
        self.c = torch.nn.Parameter(torch.as_tensor(readout, dtype=torch.float64).clone())
        initial = torch.zeros(self.state_size) if initial is None else initial
        self.register_buffer("initial", torch.as_tensor(initial, dtype=torch.float64).clone())
        if first is None:
            flat = self._flat(self.initial[None])[0]
            first = self.targets.detach()[:, flat]
        self.register_buffer("first", torch.as_tensor(first, dtype=torch.float64).clone())
        # on the grid, the initial state is a grid point like any other: its table entry applies
        nearest = self._level(self.initial) * self._spacing - self.bound
        self.initial_off_grid = not torch.allclose(self.initial, nearest, atol=1e-9, rtol=0)
        self.clip_()

    @property
    def _spacing(self) -> float:
        return 2.0 * self.bound / (self.levels - 1)

    def _level(self, state: torch.Tensor) -> torch.Tensor:
        """Level of the nearest grid point per variable (half-way rounds up, in float64)."""
        position = (state.double().clamp(-self.bound, self.bound) + self.bound) / self._spacing
        return torch.floor(position + 0.5).clamp(0, self.levels - 1)

    def _flat(self, state: torch.Tensor) -> torch.Tensor:
        """Flat index of the nearest grid point."""
        level = self._level(state).long()
        return (level * self.levels ** torch.arange(self.state_size, device=state.device)).sum(-1)

    def initial_state(self, batch, *, device=None, dtype=torch.float32):
        return self.initial.to(device=device, dtype=dtype).expand(batch, -1).clone()

    def step(self, state, events, flags=None):
        flat = self._flat(state)
        targets = self.targets.to(state.dtype)
        plus, minus = targets[0][flat], targets[1][flat]
        if self.initial_off_grid:
            at_start = (state == self.initial.to(state.dtype)).all(-1, keepdim=True)
            first = self.first.to(state.dtype)
            plus = torch.where(at_start, first[0], plus)
            minus = torch.where(at_start, first[1], minus)
        return torch.where((events > 0).unsqueeze(-1), plus, minus)

    def readout(self, state):
        return state @ self.c.to(state.dtype)

    def clip_(self) -> None:
        """Targets beyond the range are clipped anyway; keep them on it (they keep a gradient)."""
        with torch.no_grad():
            self.targets.clamp_(-self.bound, self.bound)
            self.first.clamp_(-self.bound, self.bound)


class GridMarkovSynapse(MarkovSynapse):
    """A finite-state synapse found by ``--free-transitions`` (its states are the grid's)."""

    info = ModelInfo(
        name="grid-markov",
        summary="any Markov chain on the states of a bounded level grid, free readout",
        reference="learnsyn.tools.grid_table --free-transitions",
        family="learned",
    )


def table_of(model: Synapse, levels: int, bound: float) -> GridTableSynapse:
    """``model``'s table on the grid: its targets from its own ``step`` at every grid point and
    from its initial state (computed in float64), and its readout ``c`` (the readout must be
    affine in the state: ``c . x`` plus a constant, which the SNR ignores)."""
    from learnsyn.estimate.grid import grid_points

    model = copy.deepcopy(model).double()
    points = grid_points(levels, bound, model.state_size)
    with torch.no_grad():
        initial = model.initial_state(1, dtype=torch.float64)
        ones = torch.ones(len(points), dtype=torch.float64)
        targets = torch.stack([model.step(points, ones), model.step(points, -ones)])
        first = torch.cat([model.step(initial, ones[:1]), model.step(initial, -ones[:1])])
        weights = model.readout(points)
    design = torch.cat([points, torch.ones(len(points), 1, dtype=torch.float64)], 1)
    fit = torch.linalg.lstsq(design, weights[:, None]).solution[:, 0]
    if not torch.allclose(design @ fit, weights, atol=1e-6 * (1 + weights.abs().max())):
        raise ValueError("the model's readout is not affine in its state: no table c . x")
    return GridTableSynapse(targets, fit[:-1], levels, bound, initial[0], first)


#: ``--start random:SEED``: torch's generator takes a seed below 2**64
MAX_TABLE_SEED = 2**64 - 1


def random_table(seed: int, levels: int, bound: float, state_size: int) -> GridTableSynapse:
    """Targets uniform in the range, a Gaussian readout."""
    g = torch.Generator().manual_seed(seed)
    states = levels**state_size
    targets = (torch.rand(2, states, state_size, generator=g, dtype=torch.float64) * 2 - 1) * bound
    readout = torch.randn(state_size, generator=g, dtype=torch.float64)
    return GridTableSynapse(targets, readout, levels, bound)


class _FreeChain(torch.nn.Module):
    """Transition logits per event ``[S, S]`` and a readout per state, started at a table's
    chain (zero entries at log 1e-9, so that they can grow)."""

    def __init__(self, table: GridTableSynapse):
        from learnsyn.estimate.grid import build_grid_chain

        super().__init__()
        with torch.no_grad():
            self._base = build_grid_chain(table, table.levels, table.bound, dtype=torch.float64)
        self.logits = torch.nn.Parameter(
            torch.stack([(m.to_dense() + 1e-9).log() for m in (self._base.plus, self._base.minus)])
        )
        self.weights = torch.nn.Parameter(self._base.weights.detach().clone())

    def chain(self):
        """The ``GridChain`` of the current values (for ``estimate.grid``'s SNR); the table's
        chain (kept, not a submodule: its parameters are not searched) lends its points and its
        first step, which only seeds the stationary distribution's power iteration."""
        from learnsyn.estimate.grid import SparseStochastic

        size = self._base.states
        rows = torch.arange(size).repeat_interleave(size)
        cols = torch.arange(size).repeat(size)
        plus, minus = (
            SparseStochastic(rows, cols, torch.softmax(self.logits[k], -1).reshape(-1), size)
            for k in (0, 1)
        )
        return dataclasses.replace(self._base, plus=plus, minus=minus, weights=self.weights)

    def form(self) -> MarkovForm:
        matrices = torch.softmax(self.logits.detach(), -1).numpy()
        return MarkovForm(matrices[0], matrices[1], self.weights.detach().numpy().copy())


def search(
    run_dir,
    *,
    start: str = "run",
    free_transitions: bool = False,
    iterations: int = 3000,
    lr: float = 0.01,
    check_batch: int = 0,
    out=None,
    log=print,
) -> dict[str, Any]:
    """The search of the module docstring; the report as written."""
    from learnsyn.estimate.grid import GRID_SCENARIO, grid_snr
    from learnsyn.estimate.snr import compute_metrics, smooth_objective
    from learnsyn.evaluate import evaluate
    from learnsyn.io import atomic_write_json, check_output_file
    from learnsyn.runs import evaluate_trained, load_run
    from learnsyn.scenario import make_scenario
    from learnsyn.training import temperature_at

    if iterations < 0 or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"--iterations {iterations} / --lr {lr} is not allowed: need >= 0 and > 0")
    if check_batch != 0:  # 0: no check
        try:
            check_pairs(check_batch, "--check-batch")
        except ValueError as error:
            raise ValueError(f"{error}; or 0 for no check") from None
        if free_transitions:  # (review, session 32: the check was skipped without a word)
            raise ValueError(
                "--check-batch simulates a grid table in the scenario; a --free-transitions "
                "chain is evaluated by its closed form only: leave --check-batch out"
            )
    run_dir = Path(run_dir)
    name = "grid-markov.json" if free_transitions else "grid-table.json"
    if out is None:  # checked before the search, not after it (review, session 32)
        check_output_file(run_dir / name, "the report")
    config, model, _ = load_run(run_dir)
    scenario = make_scenario(config.task, config.task_params)
    if scenario.info.name != GRID_SCENARIO:
        raise ValueError(f"a grid table needs the {GRID_SCENARIO} scenario (run: {config.task})")
    levels, bound, m = scenario.params["levels"], scenario.params["bound"], config.state_size
    if free_transitions and levels**m > MAX_FREE_STATES:
        raise ValueError(
            f"--free-transitions keeps dense matrices: {levels}^{m} = {levels**m} states, more "
            f"than {MAX_FREE_STATES}"
        )
    if start == "run":
        table = table_of(model, levels, bound)
    elif start.startswith("random:") and start[7:].isdigit():
        if int(start[7:]) > MAX_TABLE_SEED:
            raise ValueError(f"--start {start!r}: the seed must lie in [0, {MAX_TABLE_SEED}]")
        table = random_table(int(start[7:]), levels, bound, m)
    elif start.endswith(".json") and not Path(start).is_file():
        raise ValueError(f"--start {start!r} does not exist (or is not a file)")
    elif start.endswith(".json"):
        from learnsyn.cells import linear_start
        from learnsyn.io import read_json
        from learnsyn.synapse import LinearSynapse

        linear = linear_start(read_json(start), start, m)  # the checks --start-from makes
        A = np.reshape(linear["A"], (m, m))
        synapse = LinearSynapse(A, linear["b"], linear["c"], drive=linear.get("drive"))
        table = table_of(synapse, levels, bound)
    else:
        raise ValueError(
            f"--start {start!r} is not allowed: expected run, random:SEED or a linear synapse's "
            "JSON file (as --start-from reads)"
        )
    free = _FreeChain(table) if free_transitions else None
    searched = free if free is not None else table
    ages = torch.arange(config.horizon, dtype=torch.float64)

    def curve() -> torch.Tensor:
        chain = free.chain() if free is not None else None
        snr = grid_snr(table, scenario, ages, config.synapses, config.convention,
                       burn_in=None, chain=chain)  # fmt: skip
        return snr[0]

    def value(snr: torch.Tensor) -> float:
        metrics = compute_metrics(ages.numpy(), snr.detach().numpy(), config.threshold)
        return float(metrics[config.metric])

    schedule = dataclasses.replace(config, iterations=max(iterations, 1))  # training's annealing
    optimizer = torch.optim.Adam(searched.parameters(), lr=lr)
    best, history, clock = -math.inf, [], time.perf_counter()
    best_state = copy.deepcopy(searched.state_dict())
    for iteration in range(iterations + 1):
        snr = curve()
        current = value(snr)
        if iteration == 0:
            start_value = current
        if current > best:
            best, best_state = current, copy.deepcopy(searched.state_dict())
        if iteration % 50 == 0 or iteration == iterations:
            history.append([iteration, current])
        if iteration % 250 == 0:
            log(f"  iteration {iteration}: {config.metric} {current:.3f}, best {best:.3f} "
                f"({time.perf_counter() - clock:.0f} s)")  # fmt: skip
        if iteration == iterations:
            break
        temperature = temperature_at(schedule, iteration)
        loss = -smooth_objective(snr, ages, config.threshold, config.metric, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if free is None:
            table.clip_()
    searched.load_state_dict(best_state)
    report: dict[str, Any] = {
        "run": str(run_dir),
        "family": "free-transitions" if free is not None else "grid-table",
        "start": start,
        "metric": config.metric,
        "iterations": iterations,
        "lr": lr,
        "seconds": time.perf_counter() - clock,
        "start_value": start_value,
        "value": best,
        "history": history,
    }
    if free is None:
        final = evaluate_trained(table, config, batch=4096, seed=0, device="cpu",
                                 scenario=scenario, method="exact")  # fmt: skip
        report["evaluation"] = {"method": final.method, "burn_in": config.resolved_burn_in(),
                                "metrics": final.metrics}  # fmt: skip
        if check_batch:
            mc = evaluate_trained(table, config, batch=check_batch, seed=0, device="cpu",
                                  scenario=scenario, method="monte-carlo")  # fmt: skip
            report["monte_carlo"] = {"pairs": check_batch, "metrics": mc.metrics,
                                     "metrics_stderr": mc.metrics_stderr}  # fmt: skip
        report["table"] = {
            "levels": levels,
            "bound": bound,
            "targets": table.targets.detach().tolist(),
            "readout": table.c.detach().tolist(),
            "initial": table.initial.tolist(),
            "first": table.first.tolist(),
        }
    else:
        form = free.form()
        final = evaluate(GridMarkovSynapse(form), make_scenario("ideal"), synapses=config.synapses,
                         horizon=config.horizon, method="exact", convention=config.convention,
                         threshold=config.threshold)  # fmt: skip
        report["evaluation"] = {"method": f"{final.method} (finite-state closed form)",
                                "metrics": final.metrics}  # fmt: skip
        report["chain"] = {"M_plus": form.M_plus.tolist(), "M_minus": form.M_minus.tolist(),
                           "weights": form.weights.tolist()}  # fmt: skip
    from learnsyn.scoreboard import model_fingerprint
    from learnsyn.tools import write_unless_weaker

    report["model_sha1"] = model_fingerprint(model)
    own = run_dir / name
    if out is not None and Path(out).resolve() != own.resolve():
        atomic_write_json(Path(out), report)
        return report
    # the run's own report: the strongest of its searches, whatever their start (review, session
    # 32: a weaker search from another start replaced a stronger one)
    same = ("family", "metric", "model_sha1")
    hint = "; --out writes elsewhere"
    write_unless_weaker(own, report, same, "value", "iterations", log, hint)
    return report  # this search's (the file may keep a stronger one: said by the line above)


def load_grid_synapse(path) -> Synapse:
    """The synapse of a ``grid-table.json`` or ``grid-markov.json`` report."""
    from learnsyn.io import read_json

    return grid_synapse(read_json(path), path)


def grid_synapse(report: dict[str, Any], source="the report") -> Synapse:
    """The synapse of a ``search`` report (a table or a chain)."""
    if "table" in report:
        t = report["table"]
        return GridTableSynapse(t["targets"], t["readout"], t["levels"], t["bound"], t["initial"],
                                t.get("first"))  # fmt: skip
    if "chain" in report:
        c = report["chain"]
        form = MarkovForm(*(np.asarray(c[k]) for k in ("M_plus", "M_minus", "weights")))
        return GridMarkovSynapse(form)
    raise ValueError(f"{source} holds neither a grid table nor a chain")


def plot_table(table: GridTableSynapse, path, title: str = "") -> None:
    """What a 2-variable table does: for each event, an arrow from every grid point to its
    target (before the rounding), the points sized by their stationary probability and coloured
    by their readout."""
    from learnsyn.estimate.grid import build_grid_chain
    from learnsyn.plotting import plt, save_figure

    if table.state_size != 2:
        raise ValueError(f"--plot draws 2-variable tables (this one has m = {table.state_size})")
    with torch.no_grad():
        chain = build_grid_chain(table, table.levels, table.bound, dtype=torch.float64)
        stationary = chain.background().stationary().numpy()
        points, weights = chain.points.numpy(), chain.weights.numpy()
        targets = table.targets.detach().numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
    for ax, event, name in zip(axes, (0, 1), ("event +1", "event -1")):
        moves = targets[event] - points
        ax.quiver(points[:, 0], points[:, 1], moves[:, 0], moves[:, 1], angles="xy",
                  scale_units="xy", scale=1, width=0.004, color="0.4")  # fmt: skip
        dots = ax.scatter(points[:, 0], points[:, 1], s=20 + 2000 * stationary, c=weights,
                          cmap="coolwarm", edgecolors="k", linewidths=0.3, zorder=3)  # fmt: skip
        ax.set_title(name)
        ax.set_xlabel("variable 1")
        ax.set_aspect("equal")
    axes[0].set_ylabel("variable 2")
    fig.colorbar(dots, ax=axes, label="readout c . x", shrink=0.8)
    fig.suptitle(title or "grid table: target of each grid point; size = stationary probability")
    save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m learnsyn.tools.grid_table",
        description="search the bounded grid's synapses of a run's size without a form",
    )
    parser.add_argument("--run", required=True, help="run directory (bounded scenario)")
    parser.add_argument(
        "--start", default="run", help="run (its cell's table) | random:SEED | linear FILE.json"
    )
    parser.add_argument(
        "--free-transitions", action="store_true", help="any Markov chain on the grid's states"
    )
    parser.add_argument("--iterations", type=int, default=3000, help="Adam steps")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    parser.add_argument("--check-batch", type=int, default=0, help="Monte Carlo pairs (0: none)")
    parser.add_argument("--out", help="report path (default: in the run directory)")
    parser.add_argument("--plot", metavar="PNG", help="draw the table found (2 variables)")
    args = parser.parse_args(argv)
    try:
        from learnsyn.io import check_figure_file, check_output_file

        check_output_file(args.out, "--out", stdout=False)
        check_figure_file(args.plot)
        if args.plot and args.free_transitions:
            raise ValueError("--plot draws a grid table, not a --free-transitions chain")
        if args.plot:  # before the search, which takes hours at m = 4 (review, session 35)
            from learnsyn.runs import read_run_config

            m = read_run_config(Path(args.run)).state_size
            if m != 2:
                raise ValueError(f"--plot draws 2-variable tables (this run has m = {m})")
        report = search(args.run, start=args.start, free_transitions=args.free_transitions,
                        iterations=args.iterations, lr=args.lr, check_batch=args.check_batch,
                        out=args.out)  # fmt: skip
        if args.plot:
            plot_table(grid_synapse(report), args.plot)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    final = report["evaluation"]["metrics"][report["metric"]]
    print(f"{report['family']}: {report['metric']} {report['start_value']:.3f} at the start -> "
          f"{report['value']:.3f} (stationary), {final:.3f} by learnsyn.evaluate "
          f"({report['evaluation']['method']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
