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
from learnsyn.rollout import triton as rollout_triton
from learnsyn.scenario import make_scenario

launched = []  # the cells of the Triton launches (none may fall back to the reference)
original = rollout_triton.Launch.forward


def counting(self, *arguments):
    launched.append(self.cell)
    return original(self, *arguments)


rollout_triton.Launch.forward = counting
device = {device!r}
# the mlp: 20 hidden units (padded to 32 in the kernel), a correction 3x the default's
MLP = {{"width": 20, "correction": 0.3}}
worst = 0.0
for cell in ("rnn", "gru", "mlp"):
    for name in ("ideal", "correlated", "importance"):
        scenario = make_scenario(name)
        kind = scenario.tracked_kinds()[0]
        params = MLP if cell == "mlp" else None
        model = make_cell(cell, 5, timescale=20, seed=1, cell_params=params).to(device)
        results = []
        fast = {{"kernel": "triton", "checkpoint": 7}}
        launched.clear()
        for simulate, options in ((simulate_pairs, {{}}), (fast_simulate_pairs, fast)):
            generator = torch.Generator(device=device).manual_seed(3)
            model.zero_grad()
            moments = simulate(model, scenario, kind, pairs=64, burn_in=9, horizon=23, groups=2,
                               generator=generator, device=device, grad=True, **options)
            (moments.snr(100.0, "large-n").sum()).backward()
            results.append((moments.sums.detach(), [p.grad.clone() for p in model.parameters()]))
        assert launched and set(launched) == {{cell}}, (cell, name, launched)
        (sums_a, grads_a), (sums_b, grads_b) = results
        worst = max(worst, float((sums_a - sums_b).abs().max() / sums_a.abs().max()))
        for a, b in zip(grads_a, grads_b):
            worst = max(worst, float((a - b).abs().max() / a.abs().max()))
assert worst < 5e-4, worst
print("worst relative difference", worst)
"""


CHECK_CONSTRAINED = """
import torch
from learnsyn.cells import make_cell
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.rollout import triton as rollout_triton
from learnsyn.scenario import make_scenario

launched = []  # cell and constraint kind of the Triton launches (none may fall back)
original = rollout_triton.Launch.forward


def counting(self, *arguments):
    launched.append((self.cell, 0 if self.constraint is None else self.constraint.kind))
    return original(self, *arguments)


rollout_triton.Launch.forward = counting
device = {device!r}
CONSTRAINED = [("bounded", {{}}), ("bounded", {{"levels": 5, "bound": 0.5}}), ("noisy", {{}}),
               ("noisy", {{"sigma": 0.05, "bound": 0.0}})]
CASES = [dict(burn_in=9, horizon=23, grad=False), dict(burn_in=9, horizon=23, grad=True),
         dict(burn_in=20, horizon=23, grad=True, tail=10)]  # burn-in, window, tail
worst_sums = worst_grads = 0.0
MLP = {{"width": 20, "correction": 0.3}}  # padded to 32 hidden units in the kernel
for cell in ("rnn", "gru", "mlp"):
    params = MLP if cell == "mlp" else None
    model = make_cell(cell, 5, timescale=20, seed=1, cell_params=params).to(device)
    for name, params in CONSTRAINED:
        scenario = make_scenario(name, params)
        kind = scenario.tracked_kinds()[0]
        for case in CASES:
            launched.clear()
            results = []
            fast = {{"kernel": "triton", "checkpoint": 7}}
            for simulate, options in ((simulate_pairs, {{}}), (fast_simulate_pairs, fast)):
                generator = torch.Generator(device=device).manual_seed(3)
                model.zero_grad(set_to_none=True)
                moments = simulate(model, scenario, kind, pairs=64, groups=2,
                                   generator=generator, device=device, **case, **options)
                grads = []
                if case["grad"]:  # twice, the graph retained: the second adds the same again
                    value = moments.snr(100.0, "large-n").sum()
                    value.backward(retain_graph=True)
                    value.backward()
                    grads = [p.grad.clone() for p in model.parameters()]
                following = torch.rand(1, generator=generator, device=device)
                results.append((moments.sums.detach(), grads, following))
            expected = 1 if name == "bounded" else 2
            assert launched and set(launched) == {{(cell, expected)}}, (name, case, launched)
            (sums_a, grads_a, next_a), (sums_b, grads_b, next_b) = results
            assert torch.equal(next_a, next_b), (cell, name, case, "other random numbers drawn")
            difference = float((sums_a - sums_b).abs().max() / sums_a.abs().max())
            worst_sums = max(worst_sums, difference)
            for a, b in zip(grads_a, grads_b, strict=True):
                worst_grads = max(worst_grads, float((a - b).abs().max() / a.abs().max()))
# the native kernel's tolerances (tests/test_rollout.py)
assert worst_sums < 1e-5 and worst_grads < 5e-4, (worst_sums, worst_grads)
print("worst relative differences", worst_sums, worst_grads)
"""


COMPILE_FOR_CUDA = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from learnsyn.rollout import triton as rollout_triton

FLOATS = ("bound", "spacing", "sigma")


def signature(kernel, constants):
    return {
        name: "constexpr" if name in constants else "*fp32" if name.endswith("_ptr")
        else "fp32" if name in FLOATS else "i32"
        for name in kernel.arg_names
    }


compiled = 0
for gru, mlp in ((0, 0), (1, 0), (0, 1)):  # rnn, gru, mlp
    for kind in (0, 1, 2):  # no constraint, bounded, noisy
        for kernel, constants in (
            (rollout_triton.forward_kernel, dict(A=1, HEAD=0, MOMENTS=1, BOUNDS=1)),
            (rollout_triton.backward_kernel, dict(A=2, HEAD=1)),
        ):
            constants = dict(constants, M=8, MP=16, BLOCK=128, GRU=gru, MLP=mlp, HP=32)
            constants["CONSTRAINT"] = kind
            source = ASTSource(kernel, signature(kernel, constants), constexprs=constants)
            triton.compile(source, target=GPUTarget("cuda", 90, 32))
            compiled += 1
print("compiled", compiled)
"""


CHECK_LANES = """
import torch
from learnsyn.cells import make_cell
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.rollout import fast_simulate_pairs
from learnsyn.rollout import triton_lanes
from learnsyn.scenario import make_scenario

device = {device!r}
launched = []  # the state sizes of the lane launches (a fall back to the tiles fails the check)
original = triton_lanes.LanesLaunch.forward


def counting(self, *arguments):
    launched.append(self.m)
    return original(self, *arguments)


triton_lanes.LanesLaunch.forward = counting
DEFAULTS = dict(triton_lanes.OPTIONS)
# 2 and 1 as the dispatch sends them; 5 (rows padded to 8) with MAX_STATE raised; one, two and
# three backward launches; weights re-read every step or kept
VARIANTS = [(2, {{}}), (1, dict(parts=2)), (5, dict(block=16, parts=3, reload=False))]
TASKS = [("ideal", {{}}, {{}}), ("importance", {{}}, {{}}),
         ("bounded", {{"levels": 5, "bound": 0.5}}, dict(burn_in=20, tail=10)),
         ("noisy", {{}}, {{}})]
worst = 0.0
for state, options in VARIANTS:
    triton_lanes.MAX_STATE = max(2, state)
    triton_lanes.OPTIONS = dict(DEFAULTS, **options)
    model = make_cell("gru", state, timescale=20, seed=1).to(device)
    for name, params, extra in TASKS:
        scenario = make_scenario(name, params)
        kind = scenario.tracked_kinds()[0]
        results = []
        launched.clear()
        fast = {{"kernel": "triton", "checkpoint": 7}}
        for simulate, more in ((simulate_pairs, {{}}), (fast_simulate_pairs, fast)):
            generator = torch.Generator(device=device).manual_seed(3)
            model.zero_grad()
            size = dict(dict(burn_in=9), **extra)
            moments = simulate(model, scenario, kind, pairs=64, horizon=23, groups=2,
                               generator=generator, device=device, grad=True, **size, **more)
            moments.snr(100.0, "large-n").sum().backward()
            following = torch.rand(1, generator=generator, device=device)
            results.append((moments.sums.detach(), [p.grad.clone() for p in model.parameters()],
                            following))
        assert launched and set(launched) == {{state}}, (state, name, launched)
        (sums_a, grads_a, next_a), (sums_b, grads_b, next_b) = results
        assert torch.equal(next_a, next_b), (state, name, "other random numbers drawn")
        worst = max(worst, float((sums_a - sums_b).abs().max() / sums_a.abs().max()))
        # over the largest gradient entry of all parameters: at state 1 the SNR does not depend
        # on the readout's scale, so its gradient is 0 up to rounding on both paths
        scale = max(float(a.abs().max()) for a in grads_a)
        for a, b in zip(grads_a, grads_b, strict=True):
            worst = max(worst, float((a - b).abs().max()) / scale)
assert worst < 5e-4, worst
print("worst relative difference", worst)
"""


COMPILE_LANES_FOR_CUDA = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from learnsyn.rollout import triton_lanes

FLOATS = ("bound", "spacing", "sigma")


def signature(kernel, constants):
    return {
        name: "constexpr" if name in constants else "*i32" if name == "anchor_ptr"
        else "*fp32" if name.endswith("_ptr") else "fp32" if name in FLOATS else "i32"
        for name in kernel.arg_names
    }


compiled = 0
for m, block, warps, kind in ((2, 128, 4, 0), (8, 32, 1, 0), (2, 32, 1, 1), (1, 32, 1, 2)):
    for reload in (0, 1):
        for kernel, constants in (
            (triton_lanes.lanes_forward, dict(A=1, HEAD=0, MOMENTS=1, BOUNDS=1)),
            (triton_lanes.lanes_backward, dict(A=2, HEAD=1, ACC_Z=1, ACC_R=0, ACC_C=1)),
        ):
            constants = dict(constants, M=m, MP=triton_lanes.lane_rows(m), BLOCK=block,
                             RELOAD=reload, CONSTRAINT=kind)
            source = ASTSource(kernel, signature(kernel, constants), constexprs=constants)
            triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
            compiled += 1
print("compiled", compiled)
"""


def _interpreter_works() -> bool:
    try:
        import numpy
        import triton  # noqa: F401
    except ImportError:
        return False
    from triton import __version__ as triton_version

    def version(text: str) -> tuple[int, int]:
        major, minor = (int(part) for part in text.split(".")[:2])
        return major, minor

    # Triton 3.6's interpreter breaks on numpy >= 2.3; 3.9's runs with numpy 2.4
    return version(numpy.__version__) < (2, 3) or version(triton_version) >= (3, 9)


def _run_script(source: str, **env) -> str:
    """Run ``source`` in a process of its own (the checks patch the launches and set
    ``triton_lanes``' settings, which must not reach other tests) with ``env`` added to the
    environment (None removes a variable); its output, after asserting that it succeeded."""
    environment = dict(os.environ)
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run(
        [sys.executable, "-c", source],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,  # the interpreter is slow: minutes per check on a quiet machine
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(
    not _interpreter_works(), reason="needs Triton (3.9, or an older one with numpy < 2.3)"
)
@pytest.mark.parametrize(
    "check", [CHECK, CHECK_CONSTRAINED, CHECK_LANES], ids=["unconstrained", "constrained", "lanes"]
)
def test_triton_kernel_in_the_interpreter(check):
    _run_script(check.format(device="cpu"), TRITON_INTERPRET="1")


def test_triton_kernels_compile_for_cuda_without_a_gpu(tmp_path):
    """What the interpreter does not check: every kernel variant (rnn, gru and mlp cells;
    constraints) compiles to sm_90 code (Triton ships its own ptxas), e.g. no Python values a
    kernel cannot hold."""
    pytest.importorskip("triton")
    output = _run_script(
        COMPILE_FOR_CUDA,
        TRITON_CACHE_DIR=str(tmp_path),
        TRITON_DEFAULT_FP_FUSION="1",
        TRITON_INTERPRET=None,
    )
    assert "compiled 18" in output


def test_lane_kernels_compile_for_cuda_without_a_gpu(tmp_path):
    """The lane-per-thread GRU kernels (``triton_lanes``) compile to sm_90 code: states 1, 2
    and 8, weights re-read or kept, flags and the head, a part of the gradient groups, no
    constraint, bounded and noisy."""
    pytest.importorskip("triton")
    output = _run_script(
        COMPILE_LANES_FOR_CUDA, TRITON_CACHE_DIR=str(tmp_path), TRITON_INTERPRET=None
    )
    assert "compiled 16" in output


@pytest.mark.gpu
@pytest.mark.parametrize(
    "check", [CHECK, CHECK_CONSTRAINED, CHECK_LANES], ids=["unconstrained", "constrained", "lanes"]
)
def test_triton_kernel_on_cuda(check):
    """In a process of its own, as every check here (``_run_script``)."""
    pytest.importorskip("triton")
    assert torch.cuda.is_available()
    _run_script(check.format(device="cuda"))


def test_a_small_gru_goes_to_the_lane_kernels_and_the_rest_to_the_tiles():
    """The dispatch (no Triton needed): GRU states up to ``MAX_STATE`` (2, where one H200 ran
    the lanes 9x faster than the tiles) take the lane kernels; larger states (at 8 the lanes'
    gradient sums spill out of the registers) and the other cells take the tiles."""
    from learnsyn.rollout import _triton_launcher, triton_lanes
    from learnsyn.rollout import triton as rollout_triton

    assert triton_lanes.MAX_STATE == 2
    assert _triton_launcher("gru", 1) is _triton_launcher("gru", 2) is triton_lanes.LanesLaunch
    for cell, state in (("gru", 3), ("gru", 8), ("rnn", 2), ("mlp", 2)):
        assert _triton_launcher(cell, state) is rollout_triton.Launch, (cell, state)


def _lanes_launch(state=2, pairs=64, **options):
    from learnsyn.rollout.triton_lanes import LanesLaunch

    first = torch.zeros(3 * state, state + 2)
    mats = (first, torch.zeros(state, state), torch.ones(state))
    inputs, start = torch.zeros(5, 1, 2 * pairs), torch.zeros(state, 2 * pairs)
    return LanesLaunch("gru", mats, inputs, None, start, 4, (pairs, 2), None, **options)


def test_lane_launch_settings_are_checked_and_the_block_fits_the_groups():
    assert _lanes_launch().block == 32  # OPTIONS' block
    assert _lanes_launch(pairs=32).block == 16  # 16 pairs per group: the largest block is 16
    assert _lanes_launch(block=128, pairs=1024).block == 128
    with pytest.raises(ValueError, match="power of two in \\[16, 128\\], not 48"):
        _lanes_launch(block=48)
    with pytest.raises(ValueError, match="parts must be 1, 2 or 3, not 4"):
        _lanes_launch(parts=4)
    from learnsyn.rollout.triton_lanes import LanesLaunch

    rnn = (torch.zeros(2, 4), torch.zeros(0), torch.ones(2))
    with pytest.raises(ValueError, match="run the GRU, not 'rnn'"):
        LanesLaunch("rnn", rnn, torch.zeros(5, 1, 128), None, torch.zeros(2, 128), 4, (64, 2))
