"""One short script for a borrowed GPU: agreement and speed of every CUDA rollout path.

``python -m learnsyn.tools.gpu_checks --out DIR`` (from an installed package or a source checkout)
prints the device, torch, CUDA and Triton versions, checks each CUDA path's objective and
gradients against the reference simulator, times the reference, the eager kernel and the Triton
kernel forward and forward plus backward at a few sizes up to a batch that fills the GPU, and
writes everything to ``DIR/gpu_checks.json`` (after every measurement, so a run cut short still
leaves its figures). Every variant runs in its own ``try``: an error is recorded and the script
goes on. Sizes stop early when ``--budget`` seconds have passed (default 200).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch

from learnsyn.io import atomic_write_json, check_output_dir

# a source checkout's tasks/ (this file is learnsyn/tools/gpu_checks.py)
CHECKOUT_TASKS = Path(__file__).resolve().parents[2] / "tasks"


def _ensure_tasks_importable() -> None:
    """A source checkout that is not installed has ``tasks/`` at the top, not ``learnsyn.tasks``
    (pyproject maps it at install time): register it under that name."""
    try:
        import learnsyn.tasks  # noqa: F401
    except ImportError:
        root = CHECKOUT_TASKS
        spec = importlib.util.spec_from_file_location(
            "learnsyn.tasks", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["learnsyn.tasks"] = module
        spec.loader.exec_module(module)


def say(message: str) -> None:
    print(message, flush=True)


def environment() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
        properties = torch.cuda.get_device_properties(0)
        info["multiprocessors"] = properties.multi_processor_count
        info["memory_bytes"] = properties.total_memory
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError as error:
        info["triton"] = f"not importable: {error}"
    return info


class Recorder:
    """Collects results and rewrites the JSON file after each one."""

    def __init__(self, out: Path, budget: float):
        self.path = out / "gpu_checks.json"
        self.started = time.perf_counter()
        self.budget = budget
        self.data: dict = {"environment": environment(), "agreement": [], "timing": []}
        self.save()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def over_budget(self) -> bool:
        return self.elapsed() > self.budget

    def add(self, section: str, entry: dict) -> None:
        entry["elapsed_seconds"] = round(self.elapsed(), 1)
        self.data[section].append(entry)
        self.save()
        say(f"[{entry['elapsed_seconds']:6.1f}s] {section}: {json.dumps(entry)}")

    def save(self) -> None:
        atomic_write_json(self.path, self.data)  # strict JSON; a kill leaves the last whole file


def _simulators():
    from learnsyn.estimate.montecarlo import simulate_pairs
    from learnsyn.rollout import fast_simulate_pairs

    def with_kernel(kernel):
        return lambda *a, **k: fast_simulate_pairs(*a, kernel=kernel, **k)

    return {
        "reference": simulate_pairs,
        "eager": with_kernel("eager"),
        "triton": with_kernel("triton"),
    }


# the lane-per-thread GRU kernels (``learnsyn.rollout.triton_lanes``, issue 12), by name:
# lanes per program, warps per program, backward launches, weights re-read every step
LANES = {
    f"lanes-b{block}w{warps}p{parts}r{reload}": dict(
        block=block, warps=warps, parts=parts, reload=reload
    )
    for block, warps, parts, reload in (
        (32, 1, 1, 1), (32, 1, 3, 1), (64, 2, 3, 1), (128, 4, 1, 1), (128, 4, 3, 1),
        (32, 1, 1, 0), (128, 1, 1, 1), (128, 4, 1, 0),
    )
}  # fmt: skip


@contextmanager
def _lane_settings(max_state: int, options: dict | None = None):
    """``triton_lanes.MAX_STATE`` and ``OPTIONS`` for the windows launched inside (a launch
    keeps its settings for its backward)."""
    from learnsyn.rollout import triton_lanes

    saved = triton_lanes.MAX_STATE, triton_lanes.OPTIONS
    triton_lanes.MAX_STATE = max_state
    triton_lanes.OPTIONS = {**saved[1], **(options or {})}
    try:
        yield
    finally:
        triton_lanes.MAX_STATE, triton_lanes.OPTIONS = saved


def _triton_simulator(max_state: int, options: dict | None = None):
    """``fast_simulate_pairs`` on the Triton path: the lane kernels for GRU states up to
    ``max_state`` (0: the tiles always) with these launch ``options``."""
    from learnsyn.rollout import fast_simulate_pairs

    def simulate(*arguments, **keywords):
        with _lane_settings(max_state, options):
            return fast_simulate_pairs(*arguments, kernel="triton", **keywords)

    return simulate


def _simulator(path: str):
    """``triton-tiles``: the tile kernels at every state size; a name of ``LANES``: that lane
    variant at every GRU state size; else ``_simulators()``'s (``triton`` as dispatched)."""
    from learnsyn.rollout import triton as rollout_triton

    if path == "triton-tiles":
        return _triton_simulator(0)
    if path in LANES:
        return _triton_simulator(rollout_triton.MAX_STATE, LANES[path])
    return _simulators()[path]


def check_lanes_agreement(record: Recorder, device, pairs=4096, horizon=200) -> None:
    """The lane kernels against the reference in ideal, importance (flags), bounded and noisy:
    states 1 and 2 as dispatched (``triton``), state 8 in two lane settings."""
    for state in (1, 2, 8):
        paths = ("triton",) if state <= 2 else ("lanes-b32w1p1r1", "lanes-b128w4p3r1")
        for task in ("ideal", "importance", "bounded", "noisy"):
            _check_paths(record, device, "gru", state, task, pairs, horizon, paths, True)


def run_lanes(record: Recorder, device, pairs: int = 2**18, full: int = 2**20) -> None:
    """First the crossover: the tiles and the lanes (one and three backward launches) at states
    3 and 4; then every lane variant and the tiles at states 2 and 8 (``pairs``, horizon
    2000), and the fastest variant of each of these at ``full`` pairs."""
    sweeps = [(3, ("triton-tiles", "lanes-b32w1p1r1", "lanes-b32w1p3r1"))]
    sweeps += [(4, sweeps[0][1]), (2, ("triton-tiles", *LANES)), (8, ("triton-tiles", *LANES))]
    for state, paths in sweeps:
        entries = []
        for path in paths:
            if record.over_budget():
                say(f"time budget spent: skipping {path} m={state}")
                continue
            entries.append(time_path(record, device, path, "gru", state, pairs, 2000))
        timed = [e for e in entries if "fwd_bwd_steps_per_second" in e and e["path"] in LANES]
        if state in (2, 8) and timed and not record.over_budget():
            best = max(timed, key=lambda e: e["fwd_bwd_steps_per_second"])
            time_path(record, device, best["path"], "gru", state, full, 2000)


def check_agreement(record: Recorder, device: torch.device) -> None:
    """Objective and gradients of each CUDA path against the reference, small sizes."""
    from learnsyn.scenario import make_scenario

    tasks = ("ideal", "importance", "bounded", "noisy")
    cases = [(cell, 8, task, 1024, 200) for cell in ("gru", "rnn") for task in tasks]
    cases += [(cell, 8, "ideal", 4096, 2000) for cell in ("gru", "rnn")]
    cases += [("mlp", 2, task, 1024, 200) for task in tasks]  # the size of its runs
    for cell, state, task, pairs, horizon in cases:
        # the eager kernel applies no state constraints and has no mlp cell (it refuses them)
        eager = not make_scenario(task).constrains_state and cell != "mlp"
        paths = ("eager", "triton") if eager else ("triton",)
        _check_paths(record, device, cell, state, task, pairs, horizon, paths)


def _check_paths(record, device, cell, state, task, pairs, horizon, paths, by_scenario=False):
    """An agreement entry for each of ``paths`` (``_simulator``'s names) against the reference
    at one size; an error is recorded, not raised. ``by_scenario``: the scenario's tolerance
    (``rollout_bench._tolerance``: the Monte Carlo error in bounded) rather than float
    rounding's."""
    from learnsyn.cells import make_cell
    from learnsyn.scenario import make_scenario
    from learnsyn.tools.rollout_bench import _agreement, _run, _tolerance

    scenario = make_scenario(task)
    model = make_cell(cell, state, timescale=horizon).to(device)
    size = dict(cell=cell, state=state, pairs=pairs, horizon=horizon)
    tolerance = _tolerance(scenario) if by_scenario else None
    try:
        reference = _run(_simulator("reference"), model, scenario, size, device, True)
    except Exception as error:  # noqa: BLE001 - record it and go on
        record.add("agreement", dict(cell=cell, task=task, error=repr(error)))
        return
    for path in paths:
        entry = dict(cell=cell, task=task, path=path, pairs=pairs, horizon=horizon, state=state)
        try:
            fast = _run(_simulator(path), model, scenario, size, device, True)
            entry.update(_agreement(reference, fast, tolerance))
        except Exception as error:  # noqa: BLE001 - record it and go on
            entry["error"] = repr(error)
            entry["trace"] = traceback.format_exc()[-1500:]
        record.add("agreement", entry)


def time_path(
    record: Recorder, device, path: str, cell: str, state: int, pairs: int, horizon, task="ideal"
):
    """Compile/warm-up once, then two timed repeats each of forward and forward plus backward."""
    from learnsyn.cells import make_cell
    from learnsyn.scenario import make_scenario
    from learnsyn.tools.rollout_bench import _run, _timed

    simulate = _simulator(path)
    say(f"timing {path} {cell} m={state} B={pairs} T={horizon} {task}")
    scenario = make_scenario(task)
    model = make_cell(cell, state, timescale=horizon).to(device)
    size = dict(cell=cell, state=state, pairs=pairs, horizon=horizon)
    entry = dict(path=path, cell=cell, state_size=state, pairs=pairs, horizon=horizon, task=task)
    steps = 2 * pairs * horizon
    try:
        entry["warmup_seconds"] = _timed(
            lambda: _run(simulate, model, scenario, size, device, True), device
        )
        torch.cuda.reset_peak_memory_stats(device)
        held = torch.cuda.memory_allocated(device)  # before the run: not the run's own
        forward = [
            _timed(lambda: _run(simulate, model, scenario, size, device, False), device)
            for _ in range(2)
        ]
        both = [
            _timed(lambda: _run(simulate, model, scenario, size, device, True), device)
            for _ in range(2)
        ]
        entry["fwd_steps_per_second"] = steps / min(forward)
        entry["fwd_bwd_steps_per_second"] = steps / min(both)
        entry["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device) - held
    except Exception as error:  # noqa: BLE001 - record it and go on
        entry["error"] = repr(error)
        entry["trace"] = traceback.format_exc()[-1500:]
    finally:
        torch.cuda.empty_cache()
    rates = {k: f"{v:.3g}" for k, v in entry.items() if k.endswith("per_second")}
    say(f"  {rates or entry.get('error')}")
    record.add("timing", entry)
    return entry


HEADLINE = 5  # the plan's first items: state 8 filling the GPU, state 2 constrained


def timing_plan(quick: bool) -> list[tuple]:
    """The headline first (a batch that fills the GPU), then the comparisons, then the rest."""
    plan = [
        ("triton", "gru", 8, 2**20, 2000),
        ("triton", "rnn", 8, 2**20, 2000),
        # GRU state 2 (lane kernels) in the constrained scenarios, then on the tiles
        ("triton", "gru", 2, 2**20, 2000, "bounded"),
        ("triton", "gru", 2, 2**20, 2000, "noisy"),
        ("triton-tiles", "gru", 2, 2**18, 2000, "noisy"),
        ("reference", "gru", 8, 4096, 300),
        ("reference", "rnn", 8, 4096, 300),
        ("triton", "gru", 8, 4096, 2000),
        ("triton", "rnn", 8, 4096, 2000),
        ("eager", "gru", 8, 4096, 2000),
        ("eager", "rnn", 8, 4096, 2000),
        ("triton", "gru", 8, 2**18, 2000),
        ("eager", "gru", 8, 2**18, 500),
        ("triton", "gru", 32, 2**18, 2000),
        ("triton", "rnn", 32, 2**18, 2000),
        # the constrained scenarios (Triton applies their constraint; the reference to compare)
        ("triton", "gru", 8, 2**18, 2000, "noisy"),
        ("triton", "rnn", 8, 2**18, 2000, "bounded"),
        ("reference", "gru", 8, 4096, 300, "noisy"),
        # the mlp cell (width 32) at the size of its runs, m = 2
        ("triton", "mlp", 2, 2**20, 2000, "noisy"),
        ("reference", "mlp", 2, 4096, 300, "noisy"),
    ]
    if quick:
        plan = [(p, c, s, min(b, 4096), min(h, 300), *t) for p, c, s, b, h, *t in plan[:6]]
    return plan


def run_timings(record: Recorder, device: torch.device, plan: list[tuple]) -> None:
    walk_plan(
        plan,
        lambda item: "error" in time_path(record, device, *item),
        record.over_budget,
    )


def walk_plan(plan, attempt, over_budget) -> list[tuple]:
    """Run ``attempt(item)`` (True: it failed) for each ``(path, cell, state, pairs, horizon[,
    task])`` of the plan until ``over_budget()``. After a failure, later items of the same
    path, cell, state size and scenario with at least as many synapse-steps are skipped (they
    would fail the same way, e.g. out of memory); smaller ones and every other path still run.
    Returns the items attempted."""
    smallest_failure: dict[tuple, int] = {}
    attempted = []
    for item in plan:
        path, cell, state, pairs, horizon, *task = item
        label = f"{path} {cell} m={state} B={pairs} T={horizon} {' '.join(task)}".strip()
        if over_budget():
            say(f"time budget spent: skipping {label}")
            continue
        key, size = (path, cell, state, tuple(task)), pairs * horizon
        if size >= smallest_failure.get(key, math.inf):
            say(f"skipping {label}: a smaller size of it failed")
            continue
        attempted.append(item)
        if attempt(item):  # smaller than any failure of its key so far (else skipped above)
            smallest_failure[key] = size
    return attempted


def agreement_failures(record: Recorder) -> list[str]:
    """One line per agreement entry that failed (``ok`` false) or raised: the device check's
    purpose, so ``main`` exits 1 when there is any (review, session 37: it exited 0)."""
    failures = []
    for entry in record.data.get("agreement", []):
        if entry.get("ok") is False or "error" in entry:
            what = entry.get("error") or (
                f"objective_rel {entry.get('objective_rel')}, "
                f"gradient_rel {entry.get('gradient_rel')}"
            )
            failures.append(
                f"{entry.get('path', 'reference')} {entry.get('cell')} m={entry.get('state')} "
                f"{entry.get('task')}: {what}"
            )
    return failures


def best_figure(record: Recorder) -> dict | None:
    """The fastest forward-plus-backward figure at state size 8."""
    timings = [t for t in record.data["timing"] if "fwd_bwd_steps_per_second" in t]
    timings = [t for t in timings if t["state_size"] == 8 and t["path"] != "reference"]
    return max(timings, key=lambda t: t["fwd_bwd_steps_per_second"], default=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m learnsyn.tools.gpu_checks", description=__doc__
    )
    parser.add_argument("--out", default=".", help="folder for gpu_checks.json")
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for everything")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument(
        "--lanes", action="store_true", help="also check and time the lane-per-thread GRU kernels"
    )
    args = parser.parse_args(argv)
    _ensure_tasks_importable()
    try:
        out = check_output_dir(args.out, "--out")  # ("" meant here)
    except ValueError as error:
        parser.error(str(error))
    out.mkdir(parents=True, exist_ok=True)
    record = Recorder(out, args.budget)
    say(f"environment: {json.dumps(record.data['environment'])}")
    if not torch.cuda.is_available():
        say("no CUDA device: nothing to check")
        return 1
    device = torch.device("cuda", 0)
    torch.backends.cuda.matmul.allow_tf32 = False  # the reference in full float32
    if not args.skip_agreement:
        check_agreement(record, device)
        if args.lanes:
            check_lanes_agreement(record, device)
    plan = timing_plan(args.quick)
    if args.lanes:  # after the headline figures
        run_timings(record, device, plan[:HEADLINE])
        run_lanes(record, device)
        plan = plan[HEADLINE:]
    run_timings(record, device, plan)
    best = best_figure(record)
    record.data["best_fwd_bwd_state8"] = best
    record.save()
    if best is not None:
        say(
            f"best forward+backward at state 8: {best['fwd_bwd_steps_per_second']:.3g} "
            f"synapse-steps/s ({best['path']}, {best['cell']}, {best.get('task', 'ideal')}, "
            f"{best['pairs']} pairs, {record.data['environment'].get('device_name')})"
        )
    failures = agreement_failures(record)
    for line in failures:
        say(f"agreement FAILED: {line}")
    say(f"written: {record.path} after {record.elapsed():.0f} s")
    if failures:
        say(f"{len(failures)} agreement failure(s): exit status 1")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
