"""Benchmarks that print figures (never timed tests): exact evaluation and Monte Carlo speed.

``learnsyn bench`` (or ``python -m learnsyn.tools.bench``) prints, with the thread count and sizes:
- the time of an exact SNR curve of the Benna-Fusi chain (m = 12) at 1000 log-spaced ages up to
  1e8 (target: well under 0.1 s);
- Monte Carlo throughput of the evaluation simulator in synapse-steps per second;
- the exact grid SNR in the bounded scenario (``learnsyn.estimate.grid``) for 256, 4096 and 65536
  states.
"""

from __future__ import annotations

import platform
import sys
import time

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


def bench_monte_carlo(name: str, params: dict, pairs: int, steps: int, device: str) -> dict:
    model = make_model(name, params)
    scenario = make_scenario("ideal")
    start = time.perf_counter()
    evaluate(
        model,
        scenario,
        synapses=1000,
        horizon=steps // 2,
        burn_in=steps // 2,
        method="monte-carlo",
        batch=pairs,
        device=device,
    )
    elapsed = time.perf_counter() - start
    # burn-in simulates one branch per pair, the tracked window both branches
    synapse_steps = pairs * (steps // 2) + 2 * pairs * (steps // 2)
    return {
        "what": f"Monte Carlo evaluation, {name} {params}",
        "pairs": pairs,
        "steps": steps,
        "device": device,
        "seconds": elapsed,
        "synapse_steps_per_second": synapse_steps / elapsed,
    }


def run_benchmarks(device: str = "cpu", quick: bool = False) -> dict:
    results = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "exact": bench_exact(5 if quick else 20),
        "monte_carlo": [
            bench_monte_carlo("exponential", {"decay": 0.99}, 4096, 400 if quick else 2000, device),
            bench_monte_carlo("benna-fusi", {"variables": 8}, 4096, 400 if quick else 2000, device),
            bench_monte_carlo("binary", {"q": 0.1}, 4096, 400 if quick else 2000, device),
        ],
    }
    from learnsyn.estimate.grid import grid_bench

    results["grid"] = grid_bench(quick=quick, device=device)
    try:  # the rollout kernels of the meta-training (when present)
        from learnsyn.tools.rollout_bench import bench_rollouts
    except ImportError:
        pass
    else:
        results["rollout"] = bench_rollouts(device=device, quick=quick)
    return results


def print_report(results: dict, out=None) -> None:
    out = sys.stdout if out is None else out
    print(
        f"learnsyn bench: torch {results['torch']}, {results['threads']} thread(s), "
        f"{results['machine']}",
        file=out,
    )
    e = results["exact"]
    print(f"  {e['what']}: median {e['median_seconds'] * 1e3:.2f} ms ({e['ages']} ages)", file=out)
    for r in results["monte_carlo"]:
        print(
            f"  {r['what']}: {r['synapse_steps_per_second']:.3g} synapse-steps/s "
            f"({r['pairs']} pairs, {r['steps']} steps, {r['device']})",
            file=out,
        )
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
