"""The Triton kernel equals the reference: on CUDA, or on the CPU through Triton's interpreter."""

import os
import subprocess
import sys

import pytest
import torch

CHECK = """
import torch
from learnsyn.cells import make_cell
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.scenario import make_scenario

device = {device!r}
worst = 0.0
for cell in ("rnn", "gru"):
    for name in ("ideal", "correlated", "importance"):
        scenario = make_scenario(name)
        kind = scenario.tracked_kinds()[0]
        model = make_cell(cell, 5, timescale=20, seed=1).to(device)
        results = []
        fast = {{"kernel": "triton", "checkpoint": 7}}
        for simulate, options in ((simulate_pairs, {{}}), (fast_simulate_pairs, fast)):
            generator = torch.Generator(device=device).manual_seed(3)
            model.zero_grad()
            moments = simulate(model, scenario, kind, pairs=64, burn_in=9, horizon=23, groups=2,
                               generator=generator, device=device, grad=True, **options)
            (moments.snr(100.0, "large-n").sum()).backward()
            results.append((moments.sums.detach(), [p.grad.clone() for p in model.parameters()]))
        (sums_a, grads_a), (sums_b, grads_b) = results
        worst = max(worst, float((sums_a - sums_b).abs().max() / sums_a.abs().max()))
        for a, b in zip(grads_a, grads_b):
            worst = max(worst, float((a - b).abs().max() / a.abs().max()))
assert worst < 5e-4, worst
print("worst relative difference", worst)
"""


def _interpreter_works() -> bool:
    try:
        import numpy
        import triton  # noqa: F401
    except ImportError:
        return False
    major, minor = (int(part) for part in numpy.__version__.split(".")[:2])
    return (major, minor) < (2, 3)  # Triton 3.6's interpreter breaks on newer numpy


@pytest.mark.skipif(not _interpreter_works(), reason="needs Triton (and numpy < 2.3)")
def test_triton_kernel_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(device="cpu")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.gpu
def test_triton_kernel_on_cuda():
    pytest.importorskip("triton")
    assert torch.cuda.is_available()
    exec(CHECK.format(device="cuda"), {})
