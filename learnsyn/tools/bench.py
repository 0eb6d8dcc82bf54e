"""Benchmarks that print figures (never timed tests): exact evaluation and Monte Carlo speed.

``learnsyn bench`` (``learnsyn.cli.tools``; this module has no command of its own) prints, with
the thread count and sizes:
- the time of an exact SNR curve of the Benna-Fusi chain (m = 12) at 1000 log-spaced ages up to
  1e8 (target: well under 0.1 s);
- Monte Carlo throughput of the evaluation simulator in synapse-steps per second;
- Monte Carlo evaluation (``evaluate``, method monte-carlo) of learned cells and of Markov
  synapses (cascade, binary), the reference loop against the fast (forward-only, compiled)
  rollout, interleaved, with ``speedup``;
- the exact grid SNR in the bounded scenario (``learnsyn.estimate.grid``) for 256, 4096 and 65536
  states;
- the meta-training rollouts (``learnsyn.tools.rollout_bench``).

It states its expected duration first and prints each figure as it is measured.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from learnsyn.evaluate import evaluate, log_spaced_ages
from learnsyn.registry import make_model
from learnsyn.scenario import make_scenario


def bench_exact(repeats: int = 20) -> dict:
    model = make_model("benna-fusi", {"variables": 12})
    scenario = make_scenario("ideal")
    ages = log_spaced_ages(1000, 1e8)
    evaluate(model, scenario, synapses=1000, ages=ages, horizon=10**8)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate(model, scenario, synapses=1000, ages=ages, horizon=10**8)
        times.append(time.perf_counter() - start)
    return {
        "what": "exact SNR, benna-fusi m=12, 1000 log-spaced ages up to 1e8",
        "ages": len(ages),
        "median_seconds": float(np.median(times)),
        "min_seconds": float(np.min(times)),
    }


def bench_monte_carlo(
    name: str, params: dict, pairs: int, steps: int, device: str, repeats: int = 3
) -> dict:
    """``evaluate`` (monte-carlo) of a hand-crafted model: one untimed call first (it may
    compile the native kernel: tens of seconds once per machine, which the first figure
    included), then the median of ``repeats``; ``rollout``: what the fast path ran."""
    from learnsyn.rollout import rollout_path

    model = make_model(name, params)
    scenario = make_scenario("ideal")
    keywords = dict(
        synapses=1000,
        horizon=steps // 2,
        burn_in=steps // 2,
        method="monte-carlo",
        batch=pairs,
        device=device,
        rollout="fast",  # what the figure names (not $LEARNSYN_ROLLOUT; review, session 33)
    )
    with warnings.catch_warnings():  # a speed, not an SNR: its short burn-in is no caution
        warnings.simplefilter("ignore")
        evaluate(model, scenario, **keywords)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            evaluate(model, scenario, **keywords)
            times.append(time.perf_counter() - start)
    elapsed = statistics.median(times)
    # burn-in simulates one branch per pair, the tracked window both branches
    synapse_steps = pairs * (steps // 2) + 2 * pairs * (steps // 2)
    return {
        "what": f"Monte Carlo evaluation, {name} {params}",
        "pairs": pairs,
        "steps": steps,
        "device": device,
        "rollout": rollout_path(model, scenario, pairs=pairs, grad=False, device=device),
        "repeats": repeats,
        "seconds": elapsed,
        "synapse_steps_per_second": synapse_steps / elapsed,
    }


def bench_cell_evaluation(
    cell: str,
    scenario: str,
    pairs: int,
    steps: int,
    device: str,
    repeats: int = 3,
    state: int = 8,
) -> dict:
    """``evaluate`` (monte-carlo) of a learned cell of ``state`` variables, the reference loop
    against the fast rollout, interleaved in one process; medians of ``repeats``; the figures'
    largest relative difference (SNR curve) between the two at the same seed."""
    from learnsyn.cells import make_cell

    model = make_cell(cell, state, timescale=steps)
    what = f"Monte Carlo evaluation, learned {cell} m={state}, {scenario}"
    return _evaluation_paths(model, scenario, what, pairs, steps, device, repeats)


def bench_model_evaluation(
    name: str, params: dict, scenario: str, pairs: int, steps: int, device: str, repeats: int = 3
) -> dict:
    """``bench_cell_evaluation`` for a registered model (Markov synapses: binary, cascade)."""
    model = make_model(name, params)
    what = f"Monte Carlo evaluation, {name} {params}, {scenario}"
    return _evaluation_paths(model, scenario, what, pairs, steps, device, repeats)


def _evaluation_paths(model, scenario, what, pairs, steps, device, repeats) -> dict:
    task = make_scenario(scenario)
    options = dict(
        synapses=1000, horizon=steps // 2, burn_in=steps // 2, method="monte-carlo",
        batch=pairs, device=device,
    )  # fmt: skip
    times: dict[str, list[float]] = {"reference": [], "fast": []}
    curves = {}
    for _ in range(repeats):
        for rollout in times:
            start = time.perf_counter()
            curves[rollout] = np.array(evaluate(model, task, rollout=rollout, **options).snr)
            times[rollout].append(time.perf_counter() - start)
    synapse_steps = pairs * (steps // 2) + 2 * pairs * (steps // 2)
    reference, fast = (statistics.median(times[k]) for k in ("reference", "fast"))
    difference = np.abs(curves["fast"] - curves["reference"]).max()
    return {
        "what": what,
        "pairs": pairs,
        "steps": steps,
        "device": device,
        "threads": torch.get_num_threads(),
        "reference_synapse_steps_per_second": synapse_steps / reference,
        "fast_synapse_steps_per_second": synapse_steps / fast,
        "speedup": reference / fast,
        "snr_max_relative_difference": float(difference / np.abs(curves["reference"]).max()),
    }


#: Markov synapses in the Monte Carlo evaluation part (default sizes)
MARKOV_EVALUATION = (("cascade", {}), ("binary", {"q": 0.1}))


#: what a full and a quick run took on the 2-core build machine, shared with other jobs
#: (2026-12-01: 21.9 minutes; quick, 2026-12-05: 8 s once the native kernel is built); a guide
EXPECTED_DURATION = {
    False: "about 22 minutes (--quick: about 10 seconds)",
    True: "about 10 seconds (up to a minute more the first time: the native kernel is built)",
}


def run_benchmarks(device: str = "cpu", quick: bool = False, out=None) -> dict:
    """Every benchmark; with ``out``, states the expected duration first and prints each
    figure as it is measured."""

    def say(line: str) -> None:
        if out is not None:
            print(line, file=out, flush=True)

    started = time.perf_counter()
    results = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    say(_header(results))
    say(f"  expected duration: {EXPECTED_DURATION[quick]} on one core of a 2-core AMD EPYC")
    results["exact"] = bench_exact(5 if quick else 20)
    say(_exact_line(results["exact"]))
    steps = 400 if quick else 2000
    results["monte_carlo"] = []
    for name, params in (
        ("exponential", {"decay": 0.99}),
        ("benna-fusi", {"variables": 8}),
        ("binary", {"q": 0.1}),
    ):
        entry = bench_monte_carlo(name, params, 4096, steps, device, 1 if quick else 3)
        results["monte_carlo"].append(entry)
        say(_monte_carlo_line(results["monte_carlo"][-1]))
    results["cell_evaluation"] = []
    cells = (
        [("gru", "ideal", 8)]
        if quick
        else [("gru", "ideal", 8), ("rnn", "ideal", 8), ("gru", "bounded", 8), ("mlp", "noisy", 2)]
    )
    for cell, scenario, state in cells:
        repeats = 1 if quick else 3
        entry = bench_cell_evaluation(cell, scenario, 4096, steps, device, repeats, state)
        results["cell_evaluation"].append(entry)
        say(_cell_evaluation_line(entry))
    for name, params in MARKOV_EVALUATION[:1] if quick else MARKOV_EVALUATION:
        repeats = 1 if quick else 3
        entry = bench_model_evaluation(name, params, "ideal", 4096, steps, device, repeats)
        results["cell_evaluation"].append(entry)
        say(_cell_evaluation_line(entry))
    from learnsyn.estimate.grid import describe_grid_bench, grid_bench

    results["grid"] = grid_bench(quick=quick, device=device)
    for line in describe_grid_bench(results["grid"]):
        say(f"  {line}")
    try:  # the rollout kernels of the meta-training (when present)
        from learnsyn.tools.rollout_bench import bench_rollouts, describe_entry
    except ImportError:
        pass
    else:
        say(_rollout_header(device, quick))
        results["rollout"] = bench_rollouts(
            device=device, quick=quick, log=lambda entry: say(f"    {describe_entry(entry)}")
        )
    results["seconds"] = time.perf_counter() - started
    say(f"  done in {results['seconds'] / 60:.1f} minutes")
    return results


def _header(results: dict) -> str:
    return (
        f"learnsyn bench: torch {results['torch']}, {results['threads']} thread(s), "
        f"{results['machine']}"
    )


def _exact_line(e: dict) -> str:
    return f"  {e['what']}: median {e['median_seconds'] * 1e3:.2f} ms ({e['ages']} ages)"


def _monte_carlo_line(r: dict) -> str:
    return (
        f"  {r['what']}: {r['synapse_steps_per_second']:.3g} synapse-steps/s "
        f"({r['pairs']} pairs, {r['steps']} steps, {r['device']}, {r['rollout']} rollout, "
        f"median of {r['repeats']})"
    )


def _cell_evaluation_line(r: dict) -> str:
    return (
        f"  {r['what']}: reference {r['reference_synapse_steps_per_second']:.3g}, "
        f"fast {r['fast_synapse_steps_per_second']:.3g} synapse-steps/s, "
        f"speedup {r['speedup']:.1f}x ({r['pairs']} pairs, {r['steps']} steps, "
        f"{r['threads']} thread(s); SNR curves differ by {r['snr_max_relative_difference']:.1e})"
    )


def _rollout_header(device: str, quick: bool) -> str:
    from learnsyn.tools.rollout_bench import TOLERANCE

    return (
        f"  meta-training rollout ({device}, {torch.get_num_threads()} thread(s), burn-in 0; "
        f"agreement tolerance {TOLERANCE}{'; quick sizes' if quick else ''}):"
    )


def print_report(results: dict, out=None) -> None:
    """The whole report at once (``run_benchmarks`` with ``out`` prints it as it goes)."""
    out = sys.stdout if out is None else out
    print(_header(results), file=out)
    print(_exact_line(results["exact"]), file=out)
    for r in results["monte_carlo"]:
        print(_monte_carlo_line(r), file=out)
    for r in results.get("cell_evaluation", []):
        print(_cell_evaluation_line(r), file=out)
    if results.get("grid"):
        from learnsyn.estimate.grid import describe_grid_bench

        for line in describe_grid_bench(results["grid"]):
            print(f"  {line}", file=out)
    rollout = results.get("rollout")
    if rollout:
        from learnsyn.tools.rollout_bench import describe_entry

        print(
            f"  meta-training rollout ({rollout['device_name']}, {rollout['threads']} thread(s), "
            f"burn-in {rollout['burn_in']}, kernels: {', '.join(rollout['kernels'])}; "
            f"agreement tolerance {rollout['tolerance']}):",
            file=out,
        )
        for entry in rollout["entries"]:
            print(f"    {describe_entry(entry)}", file=out)
