"""Benchmark of the meta-training rollout: the reference loop against every fast path.

``bench_rollouts(device, quick)`` runs, in one process and interleaved (reference, fast paths,
reference, ...), the tracked window of the paired simulator (burn-in 0: the burn-in runs the
forward-only code) forward-only and forward plus backward of the objective
``mean SNR - mean jackknife spread`` (large-N convention, N = 1000), and reports per size and
path:

- ``fwd_steps_per_second`` and ``fwd_bwd_steps_per_second``: synapse-steps (both branches of
  every pair) per second, medians over the repeats;
- ``backward_memory_bytes``: bytes of the distinct tensor storages autograd holds between the
  forward and the backward (counted with ``torch.autograd.graph.saved_tensors_hooks``; the
  compiled kernels save their inputs and checkpoints through autograd too), and on CUDA
  ``peak_memory_bytes`` (``torch.cuda.max_memory_allocated`` during forward plus backward);
- ``speedup``: the fast path's forward-plus-backward rate over the reference's;
- ``scenario``: ``ideal``, or ``bounded`` and ``noisy`` (state constraints: the native and
  Triton kernels, the eager kernel does not apply them);
- ``cell``: rnn, gru, or mlp (at m = 2, the size of its runs; native and Triton kernels);
- ``agreement``: relative difference of the objective and of the gradients (largest absolute
  difference over the largest reference gradient entry) against the reference, with the
  tolerance ``TOLERANCE`` and whether it held.

Where the reference would hold more than ``REFERENCE_MEMORY_CAP`` bytes for its backward, it is
measured at a shorter horizon (``reference_horizon``); its rate per synapse-step only drops with
the horizon (more memory to touch), so the speedup stated is, if anything, too low.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from learnsyn.cells import make_cell
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.rollout import available_kernels, fast_simulate_pairs
from learnsyn.scenario import make_scenario

TOLERANCE = {"objective": 1e-4, "gradient": 1e-3}
#: stochastic rounding (bounded) is discontinuous in the state: float-rounding differences of a
#: few ulps in the state flip about one rounding decision in a million, each sending one synapse
#: down another path of the same distribution (at B = 4096, T = 2000 a few hundred of 1.3e8
#: decisions); the windows then agree to the Monte Carlo error, not to float rounding. Small
#: windows, where no decision flips, agree to float rounding (tests/test_rollout.py).
ROUNDING_TOLERANCE = {"objective": 1e-3, "gradient": 1e-2}
REFERENCE_MEMORY_CAP = 4 * 2**30
#: bytes the reference saves per synapse-step and state variable (measured at m = 8)
REFERENCE_BYTES_PER_STATE = {
    ("ideal", "rnn"): 5.5,
    ("ideal", "gru"): 25.5,
    ("bounded", "rnn"): 9.5,
    ("bounded", "gru"): 29.5,
    ("noisy", "rnn"): 13.5,
    ("noisy", "gru"): 29.5,
    # the mlp cell (width 32), measured at m = 2
    ("ideal", "mlp"): 82.6,
    ("bounded", "mlp"): 86.6,
    ("noisy", "mlp"): 86.6,
}
CONSTRAINED = ("bounded", "noisy")
#: the cells the eager kernel runs (in scenarios without a state constraint)
EAGER_CELLS = ("rnn", "gru")


def objective(moments) -> torch.Tensor:
    """A stand-in for the meta-objective: it uses the per-age SNR and the jackknife groups."""
    snr = moments.snr(1000.0, "large-n")
    spread = moments.leave_one_out_snr(1000.0, "large-n").std(0)
    return snr.mean() - spread.mean()


def _sizes(device: torch.device, quick: bool) -> list[dict]:
    if quick:
        return [dict(cell=cell, state=8, pairs=1024, horizon=200) for cell in ("rnn", "gru")] + [
            dict(cell="gru", state=8, pairs=1024, horizon=200, scenario="bounded"),
            dict(cell="rnn", state=8, pairs=1024, horizon=200, scenario="noisy"),
            dict(cell="mlp", state=2, pairs=1024, horizon=200, scenario="noisy"),
        ]
    sizes = [
        dict(cell=cell, state=state, pairs=pairs, horizon=2000)
        for cell in ("rnn", "gru")
        for state in (8, 32)
        for pairs in (1024, 4096)
    ]
    sizes += [
        dict(cell=cell, state=8, pairs=4096, horizon=2000, scenario=scenario)
        for scenario in CONSTRAINED
        for cell in ("rnn", "gru")
    ]
    # the mlp cell at the size of its runs (m = 2)
    sizes += [
        dict(cell="mlp", state=2, pairs=4096, horizon=2000, scenario=scenario)
        for scenario in ("ideal", *CONSTRAINED)
    ]
    if device.type == "cuda":  # a batch that fills the GPU, fast paths only
        sizes += [
            dict(cell=c, state=8, pairs=2**19, horizon=2000, fill=True) for c in ("rnn", "gru")
        ]
        sizes.append(dict(cell="mlp", state=2, pairs=2**19, horizon=2000, fill=True))
    return sizes


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _window(simulate: Callable, model, scenario, size, device, grad: bool, seed: int = 0):
    """The moments of one tracked window of ``size`` (burn-in 0) through ``simulate``."""
    return simulate(
        model,
        scenario,
        scenario.tracked_kinds()[0],
        pairs=size["pairs"],
        burn_in=0,
        horizon=size["horizon"],
        generator=torch.Generator(device=device).manual_seed(seed),
        device=device,
        grad=grad,
    )


def _run(simulate: Callable, model, scenario, size, device, grad: bool, seed: int = 0):
    model.zero_grad(set_to_none=True)
    moments = _window(simulate, model, scenario, size, device, grad, seed)
    if not grad:
        return None, None
    value = objective(moments)
    value.backward()
    # a parameter without a gradient counts as zeros, so the two paths' lists pair up by name
    grads = [
        torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
        for p in model.parameters()
    ]
    return value.detach(), grads


def _saved_bytes(simulate, model, scenario, size, device) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of one window."""
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value = objective(_window(simulate, model, scenario, size, device, grad=True))
    value.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def _timed(function: Callable, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    function()
    _synchronize(device)
    return time.perf_counter() - start


def _agreement(reference, fast, tolerance: dict | None = None) -> dict:
    """Relative differences; the gradients' scale is the largest reference gradient entry over
    all parameters (a parameter whose gradient vanishes by symmetry, as the RNN's bias does in
    the correlated scenario, would make a per-parameter ratio meaningless)."""
    (value_ref, grads_ref), (value_fast, grads_fast) = reference, fast
    objective_rel = float((value_fast - value_ref).abs() / value_ref.abs().clamp_min(1e-30))
    scale = max(float(a.abs().max()) for a in grads_ref)
    gradient_rel = max(
        float((b - a).abs().max()) for a, b in zip(grads_ref, grads_fast, strict=True)
    )
    gradient_rel /= max(scale, 1e-30)
    tolerance = TOLERANCE if tolerance is None else tolerance
    ok = objective_rel <= tolerance["objective"] and gradient_rel <= tolerance["gradient"]
    result = {"objective_rel": objective_rel, "gradient_rel": gradient_rel, "ok": ok}
    if tolerance is not TOLERANCE:
        result["tolerance"] = tolerance
    return result


def _tolerance(scenario) -> dict:
    return ROUNDING_TOLERANCE if scenario.info.name == "bounded" else TOLERANCE


def _reference_horizon(size: dict) -> int:
    key = (size.get("scenario", "ideal"), size["cell"])
    per_step = REFERENCE_BYTES_PER_STATE[key] * size["state"] * 2 * size["pairs"]
    return int(min(size["horizon"], max(50, REFERENCE_MEMORY_CAP // per_step)))


def bench_size(size: dict, device: torch.device, repeats: int, log=None) -> list[dict]:
    """All paths at one size: the reference entry first, then one entry per fast kernel."""
    scenario = make_scenario(size.get("scenario", "ideal"))
    model = make_cell(size["cell"], size["state"], timescale=size["horizon"]).to(device)
    paths: dict[str, Callable] = {}
    if not size.get("fill"):
        paths["reference"] = simulate_pairs
    for kernel in available_kernels(device):
        eager_runs = scenario.info.name not in CONSTRAINED and size["cell"] in EAGER_CELLS
        if kernel != "eager" or eager_runs:
            paths[kernel] = _with_kernel(kernel)
    horizons = {name: size["horizon"] for name in paths}
    if "reference" in paths:
        horizons["reference"] = _reference_horizon(size)
    times: dict[str, dict[str, list[float]]] = {name: {"fwd": [], "fwd_bwd": []} for name in paths}
    results: dict[str, tuple] = {}
    for name, simulate in paths.items():  # warm-up (compilation) and the gradients
        run_size = dict(size, horizon=horizons[name])
        results[name] = _run(simulate, model, scenario, run_size, device, True)
    for _ in range(repeats):
        for name, simulate in paths.items():
            run_size = dict(size, horizon=horizons[name])
            for key, grad in (("fwd", False), ("fwd_bwd", True)):
                times[name][key].append(
                    _timed(
                        lambda s=simulate, r=run_size, g=grad: _run(
                            s, model, scenario, r, device, g
                        ),
                        device,
                    )
                )
    entries = []
    reference_rate = None
    for name, simulate in paths.items():
        steps = 2 * size["pairs"] * horizons[name]
        entry = {
            "path": name,
            "scenario": scenario.info.name,
            "cell": size["cell"],
            "state_size": size["state"],
            "pairs": size["pairs"],
            "horizon": horizons[name],
            "device": str(device),
            "threads": torch.get_num_threads(),
            "fwd_steps_per_second": steps / statistics.median(times[name]["fwd"]),
            "fwd_bwd_steps_per_second": steps / statistics.median(times[name]["fwd_bwd"]),
            "repeats": repeats,
        }
        run_size = dict(size, horizon=horizons[name])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            _run(simulate, model, scenario, run_size, device, True)
            entry["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device) - base
        entry["backward_memory_bytes"] = _saved_bytes(simulate, model, scenario, run_size, device)
        if name == "reference":
            reference_rate = entry["fwd_bwd_steps_per_second"]
            entry["reference_horizon_capped"] = horizons[name] < size["horizon"]
        else:
            if reference_rate is not None:
                entry["speedup"] = entry["fwd_bwd_steps_per_second"] / reference_rate
                entry["fwd_speedup"] = entry["fwd_steps_per_second"] / _fwd_rate(entries)
                if horizons["reference"] == horizons[name]:
                    entry["agreement"] = _agreement(
                        results["reference"], results[name], _tolerance(scenario)
                    )
                else:
                    entry["agreement"] = _short_agreement(model, scenario, size, device, name)
        entries.append(entry)
        if log is not None:
            log(entry)
    return entries


def _fwd_rate(entries: list[dict]) -> float:
    return next(e["fwd_steps_per_second"] for e in entries if e["path"] == "reference")


def _short_agreement(model, scenario, size, device, kernel) -> dict:
    """Agreement at a horizon the reference can afford (its memory is capped)."""
    short = dict(size, horizon=_reference_horizon(size))
    reference = _run(simulate_pairs, model, scenario, short, device, True)
    fast = _run(_with_kernel(kernel), model, scenario, short, device, True)
    return dict(_agreement(reference, fast, _tolerance(scenario)), horizon=short["horizon"])


def _with_kernel(kernel: str) -> Callable:
    def simulate(*args, **kwargs):
        return fast_simulate_pairs(*args, kernel=kernel, **kwargs)

    return simulate


def bench_rollouts(device: str | torch.device = "cpu", quick: bool = False, log=None) -> dict:
    """Every size and path (see the module docstring); ``quick``: one small size per cell."""
    device = torch.device(device)
    repeats = 3
    entries = []
    for size in _sizes(device, quick):
        entries += bench_size(size, device, repeats, log)
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "kernels": available_kernels(device),
        "tolerance": TOLERANCE,
        "rounding_tolerance": ROUNDING_TOLERANCE,
        "burn_in": 0,
        "objective": "mean large-N SNR (N=1000) minus the mean jackknife spread",
        "memory": "backward_memory_bytes: distinct storages saved for backward "
        "(saved_tensors_hooks); peak_memory_bytes (CUDA): max_memory_allocated during fwd+bwd",
        "entries": entries,
    }
    return info


def describe_entry(entry: dict) -> str:
    """One line of the report."""
    text = (
        f"{entry['path']:>9} {entry.get('scenario', 'ideal')} {entry['cell']} "
        f"m={entry['state_size']} B={entry['pairs']} "
        f"T={entry['horizon']}: fwd {entry['fwd_steps_per_second']:.3g}/s, "
        f"fwd+bwd {entry['fwd_bwd_steps_per_second']:.3g}/s, "
        f"backward memory {entry['backward_memory_bytes'] / 2**20:.1f} MiB"
    )
    if "peak_memory_bytes" in entry:
        text += f", peak {entry['peak_memory_bytes'] / 2**20:.1f} MiB"
    if "speedup" in entry:
        text += f", speedup {entry['speedup']:.1f}x"
    if "agreement" in entry:
        agreement = entry["agreement"]
        verdict = "ok" if agreement["ok"] else "MISMATCH"
        if "tolerance" in agreement:
            verdict += " (rounding tolerance)"
        text += (
            f", agreement {verdict} (objective {agreement['objective_rel']:.1e}, "
            f"gradient {agreement['gradient_rel']:.1e})"
        )
    return text
