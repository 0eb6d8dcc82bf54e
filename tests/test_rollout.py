"""The fast rollout equals the reference simulator: moments, gradients, random numbers."""

import warnings

import pytest
import torch
from learnsyn.tasks.constrained import BoundedScenario

from learnsyn.cells import make_cell
from learnsyn.estimate.montecarlo import simulate_pairs
from learnsyn.registry import make_model
from learnsyn.rollout import available_kernels, fast_simulate_pairs, supports_fast_path
from learnsyn.scenario import make_scenario

# float32, relative to the largest entry: the order of the sums alone moves the gradients of an
# SNR objective after 70 steps by about 2e-4
SUMS_TOLERANCE = 1e-5
GRAD_TOLERANCE = 5e-4
KERNELS = [k for k in available_kernels("cpu") if k != "triton"]
SCENARIOS = [
    ("ideal", {}),
    ("sparse", {"rate": 0.3, "p_plus": 0.3}),
    ("correlated", {"repeat": 0.8}),
    ("importance", {}),
]


def simulate(function, model, scenario, kind, *, grad, seed=5, **options):
    """Run one simulation; return sums, parameter gradients and the generator's next number."""
    settings = dict(pairs=64, burn_in=13, horizon=40, groups=8)
    settings.update(options)
    generator = torch.Generator().manual_seed(seed)
    model.zero_grad(set_to_none=True)
    moments = function(model, scenario, kind, generator=generator, grad=grad, **settings)
    grads = []
    if grad:
        value = moments.snr(100.0, "large-n").sum() + moments.leave_one_out_snr(100.0, "large-n")
        value.sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
    return moments, grads, torch.rand(1, generator=generator)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))


def assert_same(reference, fast):
    (ref_moments, ref_grads, ref_next), (fast_moments, fast_grads, fast_next) = reference, fast
    assert fast_moments.sums.shape == ref_moments.sums.shape
    assert fast_moments.count == ref_moments.count and fast_moments.p_plus == ref_moments.p_plus
    assert relative(ref_moments.sums, fast_moments.sums.detach()) < SUMS_TOLERANCE
    assert torch.equal(ref_next, fast_next), "a different count of random numbers was drawn"
    for ref_grad, fast_grad in zip(ref_grads, fast_grads, strict=True):
        assert relative(ref_grad, fast_grad) < GRAD_TOLERANCE


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("name, params", SCENARIOS)
def test_fast_path_matches_reference(kernel, cell, name, params):
    scenario = make_scenario(name, params)
    model = make_cell(cell, 4, timescale=30, seed=1)
    for kind in scenario.tracked_kinds():
        for grad in (False, True):
            reference = simulate(simulate_pairs, model, scenario, kind, grad=grad)
            fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=grad, kernel=kernel)
            assert_same(reference, fast)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    "options",
    [
        dict(pairs=50, groups=3),  # blocks that straddle groups
        dict(pairs=45, groups=4),  # 44 pairs: lanes padded to whole blocks
        dict(horizon=1, burn_in=3),
        dict(horizon=33, checkpoint=1),
        dict(horizon=33, checkpoint=None),
        dict(horizon=70, checkpoint=32, pairs=96, groups=2),
    ],
)
def test_fast_path_edge_sizes(kernel, options):
    scenario = make_scenario("importance")
    kind = scenario.tracked_kinds()[0]
    for cell in ("rnn", "gru"):
        model = make_cell(cell, 5, timescale=20, seed=2)
        reference_options = {k: v for k, v in options.items() if k != "checkpoint"}
        reference = simulate(simulate_pairs, model, scenario, kind, grad=True, **reference_options)
        fast = simulate(
            fast_simulate_pairs, model, scenario, kind, grad=True, kernel=kernel, **options
        )
        assert_same(reference, fast)


def test_no_burn_in_forward_only():
    scenario = make_scenario("sparse")
    kind = scenario.tracked_kinds()[0]
    model = make_cell("gru", 4)
    reference = simulate(simulate_pairs, model, scenario, kind, grad=False, burn_in=0)
    fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=False, burn_in=0)
    assert_same(reference, fast)


def test_float64_uses_the_eager_kernel_and_matches():
    scenario = make_scenario("correlated")
    kind = scenario.tracked_kinds()[0]
    model = make_cell("gru", 3, timescale=20).double()
    reference = simulate(simulate_pairs, model, scenario, kind, grad=True, dtype=torch.float64)
    fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=True, dtype=torch.float64)
    assert fast[0].sums.dtype == torch.float64
    assert relative(reference[0].sums, fast[0].sums.detach()) < 1e-12
    for a, b in zip(reference[1], fast[1], strict=True):
        assert relative(a, b) < 1e-10


class _RoundedDown(BoundedScenario):
    """A constraint the kernel does not know (it must go to the reference)."""

    def constrain(self, state, noise):
        return state.clamp(-0.5, 0.5)


def test_unsupported_models_and_scenarios_fall_back_to_the_reference():
    chain = make_cell("chain", 3)
    gru = make_cell("gru", 3)
    bounded = make_scenario("bounded")
    other = _RoundedDown()
    ideal = make_scenario("ideal")
    assert not supports_fast_path(chain, ideal)
    assert not supports_fast_path(gru, other)
    assert supports_fast_path(gru, ideal) and supports_fast_path(make_cell("rnn", 2), ideal)
    assert supports_fast_path(gru, bounded) == ("native" in KERNELS)
    for model, scenario in ((chain, ideal), (gru, other)):
        kind = scenario.tracked_kinds()[0]
        reference = simulate(simulate_pairs, model, scenario, kind, grad=True)
        fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=True)
        assert torch.equal(reference[0].sums, fast[0].sums)


def test_gradient_reaches_every_parameter_and_only_through_the_window():
    scenario = make_scenario("importance")
    kind = scenario.tracked_kinds()[0]
    model = make_cell("gru", 3, timescale=20)
    _, grads, _ = simulate(fast_simulate_pairs, model, scenario, kind, grad=True)
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert all(float(g.abs().max()) > 0 for g in grads)
    moments, _, _ = simulate(fast_simulate_pairs, model, scenario, kind, grad=False)
    assert not moments.sums.requires_grad


@pytest.mark.parametrize("name", ["ideal", "bounded"])
def test_backward_twice_with_retained_graph_gives_the_same_gradient(name):
    scenario = make_scenario(name)
    kind = scenario.tracked_kinds()[0]
    model = make_cell("gru", 3)
    for kernel in KERNELS if name == "ideal" else [k for k in KERNELS if k == "native"]:
        generator = torch.Generator().manual_seed(1)
        moments = fast_simulate_pairs(
            model, scenario, kind, pairs=64, burn_in=5, horizon=20, generator=generator,
            grad=True, kernel=kernel,
        )  # fmt: skip
        value = moments.snr(100.0, "large-n").sum()
        model.zero_grad(set_to_none=True)
        value.backward(retain_graph=True)
        first = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=True)
        value.backward()
        for a, b in zip(first, (p.grad for p in model.parameters()), strict=True):
            assert torch.equal(a, b)


@pytest.mark.skipif("native" not in KERNELS, reason="no C compiler here")
def test_native_kernel_leaves_the_floating_point_state_alone():
    from learnsyn.rollout import native as rollout_native

    assert rollout_native.available()
    tiny = torch.tensor([1e-40])  # a denormal: flush-to-zero would make it 0
    assert float(tiny * 1.0) > 0.0


def test_unknown_kernel_is_refused():
    scenario = make_scenario("ideal")
    with pytest.raises(ValueError, match="unknown kernel"):
        simulate(
            fast_simulate_pairs,
            make_cell("rnn", 2),
            scenario,
            scenario.tracked_kinds()[0],
            grad=False,
            kernel="fortran",
        )
    # the same for a model the fast path hands to the reference (it was accepted there)
    with pytest.raises(ValueError, match="unknown kernel 'fortran'"):
        simulate(
            fast_simulate_pairs,
            make_model("ewc", {}),
            scenario,
            scenario.tracked_kinds()[0],
            grad=False,
            kernel="fortran",
        )


def test_a_batch_without_an_age_is_one_line():
    scenario = make_scenario("ideal")
    for simulator in (simulate_pairs, fast_simulate_pairs):
        with pytest.raises(ValueError, match="horizon = 0, burn-in = 5 are not allowed"):
            simulator(
                make_cell("gru", 2), scenario, scenario.tracked_kinds()[0], pairs=8, burn_in=5,
                horizon=0, generator=torch.Generator().manual_seed(0),
            )  # fmt: skip


CONSTRAINED = [
    ("bounded", {}),
    ("bounded", {"levels": 5, "bound": 0.5}),
    ("noisy", {}),
    ("noisy", {"sigma": 0.05, "bound": 0.0}),
]
native_only = pytest.mark.skipif("native" not in KERNELS, reason="no C compiler here")


@native_only
@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("name, params", CONSTRAINED)
def test_constrained_scenarios_on_the_native_kernel_match_reference(cell, name, params):
    """Clipping, stochastic rounding (straight-through gradient) and state noise inside the
    native kernel: the same random numbers, moments and gradients as the reference."""
    scenario = make_scenario(name, params)
    kind = scenario.tracked_kinds()[0]
    model = make_cell(cell, 4, timescale=30, seed=1)
    # 45 pairs (44 used): padded lanes, and randn of 44 x 3 values draws its tail as torch does
    for options in (dict(), dict(pairs=45, groups=4), dict(horizon=70, checkpoint=32)):
        chosen = make_cell(cell, 3, timescale=30, seed=2) if "pairs" in options else model
        for grad in (False, True):
            reference_options = {k: v for k, v in options.items() if k != "checkpoint"}
            reference = simulate(
                simulate_pairs, chosen, scenario, kind, grad=grad, **reference_options
            )
            fast = simulate(fast_simulate_pairs, chosen, scenario, kind, grad=grad, **options)
            assert_same(reference, fast)


@native_only
@pytest.mark.parametrize("normal", [False, True])
def test_compiled_generator_draws_what_torch_draws(normal):
    """The compiled copy of the CPU generator: torch.rand's numbers bit for bit, randn's to
    float rounding, and the generator left where torch's own calls leave it."""
    from learnsyn.rollout import native as rollout_native

    pairs, size, steps = 48, 4, 3
    fast, slow = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.rand(700, generator=fast), torch.rand(700, generator=slow)  # mid-state
    noise = torch.empty(2, steps, size, rollout_native.LANES)
    mode = 2 if normal else 1
    events = rollout_native.draw_steps(
        fast, steps, pairs, 1, size=size, mode=mode, events_from=1, noise=noise
    )
    uniforms, numbers = [], []
    for step in range(steps):
        if step >= 1:
            uniforms.append(torch.rand(pairs, 1, generator=slow))
        numbers.append((torch.randn if normal else torch.rand)(pairs, size, generator=slow).T)
    assert torch.equal(events, torch.stack(uniforms))
    expected = rollout_native.blocked(torch.stack(numbers))[..., : pairs - 32]
    noise = noise[..., : pairs - 32]  # the padding columns are left alone
    if normal:
        assert float((noise - expected).abs().max()) < 1e-5
    else:
        assert torch.equal(noise, expected)
    assert torch.equal(torch.rand(8, generator=fast), torch.rand(8, generator=slow))


@native_only
def test_constrained_windows_refuse_the_eager_kernel_and_float64_runs_the_reference():
    scenario = make_scenario("noisy")
    kind = scenario.tracked_kinds()[0]
    model = make_cell("gru", 3)
    with pytest.raises(ValueError, match="does not apply state constraints"):
        simulate(fast_simulate_pairs, model, scenario, kind, grad=False, kernel="eager")
    # float64 has no compiled kernel: the reference, exactly
    double = make_cell("gru", 3).double()
    reference = simulate(simulate_pairs, double, scenario, kind, grad=True, dtype=torch.float64)
    fast = simulate(fast_simulate_pairs, double, scenario, kind, grad=True, dtype=torch.float64)
    assert torch.equal(reference[0].sums, fast[0].sums)


@native_only
def test_compiled_generator_maps_ideal_events():
    from learnsyn.rollout import native as rollout_native

    fast, slow = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    events = rollout_native.draw_steps(fast, 7, 40, 1, ideal=True)
    uniforms = torch.rand(7 * 40, 1, generator=slow).view(7, 40)
    assert torch.equal(events, torch.where(uniforms < 0.5, 1.0, -1.0))
    assert torch.equal(torch.rand(3, generator=fast), torch.rand(3, generator=slow))


TAIL_SCENARIOS = [("ideal", {}), ("correlated", {"repeat": 0.8}), *CONSTRAINED]


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("name, params", TAIL_SCENARIOS)
def test_burn_in_tail_on_the_fast_path_matches_reference(cell, name, params):
    """The gradient burn-in tail (``tail`` steps of the burn-in differentiated, shared by both
    branches) in one kernel call with the window, constrained scenarios included: the same
    moments, gradients and random numbers as the reference loop's tail."""
    scenario = make_scenario(name, params)
    kind = scenario.tracked_kinds()[0]
    kernels = ["native"] if scenario.constrains_state else KERNELS
    cases = (
        dict(burn_in=50, tail=25),
        dict(burn_in=40, tail=40, pairs=45, groups=4),  # the whole burn-in; padded lanes
        dict(burn_in=60, tail=37, horizon=70, checkpoint=32),
    )
    for options in cases:
        model = make_cell(cell, 3 if "pairs" in options else 4, timescale=30, seed=1)
        reference_options = {k: v for k, v in options.items() if k != "checkpoint"}
        reference = simulate(simulate_pairs, model, scenario, kind, grad=True, **reference_options)
        for kernel in kernels:
            fast = simulate(
                fast_simulate_pairs, model, scenario, kind, grad=True, kernel=kernel, **options
            )
            assert_same(reference, fast)
        # the same numbers without the tail, but another gradient: the tail reaches it
        untailed = {**reference_options, "tail": 0}
        plain = simulate(fast_simulate_pairs, model, scenario, kind, grad=True, **untailed)
        assert relative(plain[0].sums, fast[0].sums) < SUMS_TOLERANCE
        assert max(relative(a, b) for a, b in zip(reference[1], plain[1], strict=True)) > 1e-3


def scaled_cell(cell: str, size: int, seed: int = 1):
    """A cell with the learned saturation ``s tanh(y / s)``: ``output_scale`` 3, then a
    non-uniform ``log_scale`` (some variables saturate below 1, some above)."""
    model = make_cell(cell, size, timescale=30, seed=seed, cell_params={"output_scale": 3.0})
    with torch.no_grad():
        model.log_scale.copy_(torch.tensor([0.2, 1.1, -0.3, 0.7])[:size])
    return model


def native_matches_reference(make, scenario, monkeypatch, gradient_check):
    """``make(size)``'s cell on the native kernel itself (not the fallback) against the
    reference loop, in ``scenario``: without and with the burn-in tail, padded lanes and
    checkpoints; ``gradient_check(model, fast)`` holds after every run with gradient."""
    import learnsyn.rollout as rollout

    kind = scenario.tracked_kinds()[0]
    cases = (
        dict(),
        dict(pairs=45, groups=4),  # padded lanes
        dict(horizon=70, checkpoint=32),
        dict(burn_in=50, tail=25),
        dict(burn_in=60, tail=37, horizon=70, checkpoint=32),
    )
    for options in cases:
        model = make(3 if "pairs" in options else 4)
        assert supports_fast_path(model, scenario)
        reference_options = {k: v for k, v in options.items() if k != "checkpoint"}
        for grad in (False, True) if "tail" not in options else (True,):
            reference = simulate(
                simulate_pairs, model, scenario, kind, grad=grad, **reference_options
            )
            with monkeypatch.context() as patch:  # the fast path itself, not the fallback
                patch.setattr(rollout, "simulate_pairs", None)
                fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=grad, **options)
            assert_same(reference, fast)
            if grad:
                assert gradient_check(model, fast)


@native_only
@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("name, params", [("ideal", {}), *CONSTRAINED])
def test_scaled_cells_on_the_native_kernel_match_reference(cell, name, params, monkeypatch):
    """Cells with ``output_scale`` on the native kernel (the 1 / s folded into the weights, s
    multiplied in the kernel): the same moments, gradients (``log_scale``'s included) and random
    numbers as the reference loop, without and with the burn-in tail."""
    native_matches_reference(
        lambda size: scaled_cell(cell, size),
        make_scenario(name, params),
        monkeypatch,
        lambda model, fast: float(model.log_scale.grad.abs().min()) > 0,
    )


@native_only
def test_scaled_cells_with_unit_scale_match_the_plain_cells():
    """``log_scale`` 0 (s = 1) reproduces the plain tanh cells' numbers to float rounding."""
    scenario = make_scenario("bounded")
    kind = scenario.tracked_kinds()[0]
    for cell in ("rnn", "gru"):
        plain = make_cell(cell, 4, timescale=30, seed=1)
        scaled = make_cell(cell, 4, timescale=30, seed=1, cell_params={"output_scale": 1.0})
        with torch.no_grad():
            for name, parameter in plain.named_parameters():
                dict(scaled.named_parameters())[name].copy_(parameter)
        first = simulate(fast_simulate_pairs, plain, scenario, kind, grad=True)
        second = simulate(fast_simulate_pairs, scaled, scenario, kind, grad=True)
        assert relative(first[0].sums, second[0].sums) < SUMS_TOLERANCE
        for a, b in zip(first[1], second[1][: len(first[1])], strict=True):
            assert relative(a, b) < GRAD_TOLERANCE


@native_only
def test_scaled_cells_only_on_the_native_kernel():
    """The eager and Triton kernels have no learned saturation: a named one is refused, and
    where the native kernel cannot run (float64) the reference loop runs, exactly."""
    scenario = make_scenario("ideal")
    kind = scenario.tracked_kinds()[0]
    model = scaled_cell("gru", 3)
    with pytest.raises(ValueError, match="does not run scaled cells"):
        simulate(fast_simulate_pairs, model, scenario, kind, grad=False, kernel="eager")
    assert not supports_fast_path(model, scenario, dtype=torch.float64)
    assert not supports_fast_path(model, scenario, device="meta")
    assert supports_fast_path(make_cell("gru", 3), scenario, dtype=torch.float64)
    double = scaled_cell("gru", 3).double()
    reference = simulate(simulate_pairs, double, scenario, kind, grad=True, dtype=torch.float64)
    fast = simulate(fast_simulate_pairs, double, scenario, kind, grad=True, dtype=torch.float64)
    assert torch.equal(reference[0].sums, fast[0].sums)


def mlp_cell(size: int, seed: int = 1):
    """An ``mlp`` cell of 5 hidden units with a correction three times the default's (at 1.0
    the m = 3 cell is chaotic: float rounding alone moves its moments by 3e-5)."""
    params = {"width": 5, "correction": 0.3}
    return make_cell("mlp", size, timescale=30, seed=seed, cell_params=params)


@native_only
@pytest.mark.parametrize("name, params", [*SCENARIOS, *CONSTRAINED])
def test_mlp_cell_on_the_native_kernel_matches_reference(name, params, monkeypatch):
    """The ``mlp`` cell on the native kernel (hidden rows, linear rows, the state added, the
    correction ``V / width``): the same moments, gradients of every parameter and random numbers
    as the reference loop, with flags (importance), padded lanes, checkpoints and the tail."""
    native_matches_reference(
        mlp_cell,
        make_scenario(name, params),
        monkeypatch,
        lambda model, fast: all(float(g.abs().max()) > 0 for g in fast[1]),
    )


@native_only
def test_mlp_cell_keeps_a_slow_variable_slow_on_the_native_kernel():
    """The kernel adds the state to ``D h`` instead of folding the identity into ``1 + D``: a
    decay rate of 1.03e-6 (which float32 ``1 + D``, 6e-8 apart near 1, would round by 1.6 %)
    gives the reference's moments over a long window (checked: the folded form fails here)."""
    scenario = make_scenario("ideal")
    kind = scenario.tracked_kinds()[0]
    model = mlp_cell(2)
    with torch.no_grad():
        model.D.copy_(torch.tensor([[-1.03e-6, 0.0], [0.0, -0.2]]))
        model.V.zero_()
    options = dict(burn_in=0, horizon=3000, pairs=32, groups=4)
    reference = simulate(simulate_pairs, model, scenario, kind, grad=False, **options)
    fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=False, **options)
    assert relative(reference[0].sums, fast[0].sums) < SUMS_TOLERANCE


@native_only
def test_mlp_cell_only_on_the_native_and_triton_kernels():
    """The eager kernel has no ``mlp`` cell and the Triton kernel none wider than its
    ``MAX_HIDDEN`` units: a named one is refused, naming the width; where the native kernel
    cannot run (float64) the reference loop runs."""
    from learnsyn.rollout.triton import MAX_HIDDEN

    scenario = make_scenario("noisy")
    kind = scenario.tracked_kinds()[0]
    model = mlp_cell(2)
    with pytest.raises(ValueError, match="the eager kernel does not run the mlp cell; use native"):
        simulate(fast_simulate_pairs, model, scenario, kind, grad=False, kernel="eager")
    wide = make_cell("mlp", 2, timescale=30, seed=1, cell_params={"width": MAX_HIDDEN + 1})
    message = f"mlp cells of width <= {MAX_HIDDEN}, not {MAX_HIDDEN + 1}; use native"
    with pytest.raises(ValueError, match=message):
        simulate(fast_simulate_pairs, wide, scenario, kind, grad=False, kernel="triton")
    assert not supports_fast_path(model, scenario, dtype=torch.float64)
    double = mlp_cell(2).double()
    reference = simulate(simulate_pairs, double, scenario, kind, grad=True, dtype=torch.float64)
    fast = simulate(fast_simulate_pairs, double, scenario, kind, grad=True, dtype=torch.float64)
    assert torch.equal(reference[0].sums, fast[0].sums)


def test_flag_gated_linear_synapse_falls_back_to_the_reference():
    """The native kernel's linear cell has no product of event and flag: a linear synapse with a
    flag-dependent increment (b_flagged) runs on the reference, whose sums the fast call returns;
    the same synapse without it keeps the native kernel."""
    from learnsyn.registry import make_model

    params = {"A": [0.9, 0.1, 0.0, 0.7], "b": [0.2, 1.0], "c": [1.0, 0.5]}
    plain = make_model("optimal-linear", params)
    gated = make_model("optimal-linear", params | {"b_flagged": [1.0, -0.5]})
    importance = make_scenario("importance")
    assert not supports_fast_path(gated, importance, grad=False)
    assert supports_fast_path(plain, importance, grad=False) == ("native" in KERNELS)
    for kind in importance.tracked_kinds():
        reference = simulate(simulate_pairs, gated, importance, kind, grad=False)
        fast = simulate(fast_simulate_pairs, gated, importance, kind, grad=False)
        assert torch.equal(reference[0].sums, fast[0].sums)
        assert torch.equal(reference[2], fast[2])
        ignoring = simulate(simulate_pairs, plain, importance, kind, grad=False)
        assert not torch.equal(reference[0].sums, ignoring[0].sums)


def test_the_recorded_rollout_path_is_the_one_that_runs(monkeypatch):
    """``rollout_path`` (a training run's ``rollout_kernel``) says ``reference`` exactly where
    ``fast_simulate_pairs`` hands the call to the reference loop, and else names the kernel."""
    import learnsyn.rollout as rollout
    from learnsyn.rollout import rollout_path

    fell_back = []

    def recorded(*args, **kwargs):
        fell_back.append(1)
        return simulate_pairs(*args, **kwargs)

    monkeypatch.setattr(rollout, "simulate_pairs", recorded)
    cases = [
        (make_cell("chain", 3), make_scenario("ideal"), torch.float32, "reference"),
        (make_cell("gru", 3), _RoundedDown(), torch.float32, "reference"),
        (make_cell("gru", 3), make_scenario("ideal"), torch.float32, KERNELS[0]),
        (make_cell("rnn", 2), make_scenario("correlated"), torch.float64, "eager"),
        (make_cell("gru", 3), make_scenario("noisy"), torch.float64, "reference"),
    ]
    if "native" in KERNELS:
        cases.append((make_cell("gru", 3), make_scenario("noisy"), torch.float32, "native"))
    for model, scenario, dtype, expected in cases:
        model = model.to(dtype)
        path = rollout_path(model, scenario, pairs=64, groups=8, dtype=dtype)
        assert path == expected, (model, scenario, dtype)
        fell_back.clear()
        kind = scenario.tracked_kinds()[0]
        simulate(fast_simulate_pairs, model, scenario, kind, grad=True, dtype=dtype)
        assert bool(fell_back) == (path == "reference"), (model, scenario, dtype)


@native_only
def test_non_finite_parameters_give_the_references_non_finite_figures():
    """The kernels are compiled without NaN semantics: a NaN in a GRU's weights or a linear
    synapse's A read as finite figures on the native kernel (review, session 35). Such a model
    runs the reference, so evaluate's and training's non-finite checks see what they should; a
    huge but finite pre-activation (1e14) saturates the sigmoid instead of reading NaN."""
    from learnsyn.synapse import LinearSynapse

    gru = make_cell("gru", 4, timescale=30, seed=1)
    with torch.no_grad():
        gru.U_h[0, 0] = float("nan")
    linear = LinearSynapse(
        torch.tensor([[0.9, float("nan")], [0.0, 0.9]]).numpy(), [0.1, 0.1], [1.0, 0.0]
    )
    for model, name in ((gru, "ideal"), (linear, "bounded"), (linear, "noisy")):
        scenario = make_scenario(name)
        assert not supports_fast_path(model, scenario, grad=False)
        kind = scenario.tracked_kinds()[0]
        fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=False)[0]
        assert not torch.isfinite(fast.sums).any(), (model, name)
    saturated = make_cell("gru", 4, timescale=30, seed=1)
    with torch.no_grad():
        saturated.bias[:4] = 1e14  # update gates fully open
    scenario = make_scenario("ideal")
    assert supports_fast_path(saturated, scenario, grad=False)
    kind = scenario.tracked_kinds()[0]
    reference = simulate(simulate_pairs, saturated, scenario, kind, grad=False)
    fast = simulate(fast_simulate_pairs, saturated, scenario, kind, grad=False)
    assert torch.isfinite(fast[0].sums).all()
    assert relative(reference[0].sums, fast[0].sums) < SUMS_TOLERANCE


@native_only
@pytest.mark.parametrize(
    "levels, bound, clipped", [(1000, 2.0, False), (1000, 2.0, True), (10**6, 1.0, False)]
)
@pytest.mark.parametrize("build", ["native", "x86-64-v3"])
def test_the_native_rounding_divides_exactly_as_the_reference(
    levels, bound, clipped, build, monkeypatch, tmp_path_factory
):
    """Stochastic rounding on the level grid: the native kernel's division was a reciprocal
    estimate under -ffast-math, which moved states a whole level from the reference's (10 of
    131,072 states clipped at the bound, 1,208 at a million levels; review, session 35); on a
    build without AVX-512 (x86-64-v3: AVX2) too (the diff review of session 35)."""
    from learnsyn.rollout import native

    if build != "native":  # compiled aside, in a cache of its own; at -O1 (4 s, not 70 s),
        # which keeps -ffast-math's rewrite of the division, what is checked here
        flags = tuple(
            "-march=" + build if f.startswith("-march") else f for f in native.COMPILE_FLAGS
        )
        flags = tuple("-O1" if f == "-O3" else f for f in flags if f != "-funroll-loops")
        monkeypatch.setattr(native, "COMPILE_FLAGS", flags)
        monkeypatch.setattr(native, "_library", None)
        monkeypatch.setattr(native, "_failure", None)
        monkeypatch.setenv("LEARNSYN_CACHE", str(tmp_path_factory.getbasetemp() / "avx2"))
        if not native.available():
            pytest.skip(f"no {build} build here")

    lanes = 32 * 4096
    generator = torch.Generator().manual_seed(1)
    if clipped:
        states = torch.full((lanes,), 1.25 * bound)
    else:
        states = (torch.rand(lanes, generator=generator) * 2.2 - 1.1) * bound
    uniforms = torch.rand(1, lanes, generator=generator)
    spacing = 2.0 * bound / (levels - 1)
    blocked = native.blocked(uniforms.view(1, 1, lanes)).contiguous()
    constraint = native.Constraint(1, bound, spacing, 0.0, blocked, lanes)
    identity = (torch.tensor([[1.0, 0.0, 0.0]]), torch.zeros(0), torch.ones(1))  # x' = x
    _, out = native.advance(
        "linear", identity, torch.zeros(1, 1, lanes), None, states.view(1, -1), None, constraint
    )
    expected = BoundedScenario(bound=bound, levels=levels).constrain(
        states.view(-1, 1), uniforms.view(-1, 1)
    )
    assert int(((out.view(-1) - expected.view(-1)).abs() > spacing / 2).sum()) == 0


@native_only
@pytest.mark.parametrize("cell, name", [("gru", "U_h"), ("mlp", "V")])
def test_a_transposed_parameter_gets_its_gradient_untransposed(cell, name):
    """A parameter stored column-major (same values): the native backward wrote its gradient
    row-major into a buffer with the parameter's strides, so it came back transposed (71 % off
    for a GRU's U_h; review, session 35)."""
    model = make_cell(cell, 3, timescale=30, seed=1)
    values = getattr(model, name).detach()
    setattr(model, name, torch.nn.Parameter(values.T.contiguous().T))
    assert not getattr(model, name).is_contiguous()
    scenario = make_scenario("ideal")
    kind = scenario.tracked_kinds()[0]
    reference = simulate(simulate_pairs, model, scenario, kind, grad=True)
    fast = simulate(fast_simulate_pairs, model, scenario, kind, grad=True)
    assert_same(reference, fast)


def test_a_bound_below_float32s_normal_numbers_is_refused():
    """The native kernel flushes subnormals to zero: a noisy bound of 1e-40 read as no range
    (review, session 35). Both constrained scenarios refuse it, naming what is allowed."""
    with pytest.raises(ValueError, match=r"bound=1e-40 is out of range: expected 0 \(no range\)"):
        make_scenario("noisy", {"bound": 1e-40})
    with pytest.raises(ValueError, match=r"bound=1e-40 is out of range: expected a number in"):
        make_scenario("bounded", {"bound": 1e-40})
    assert make_scenario("noisy", {"bound": 0.0}).state_range() is None


def test_the_native_kernel_is_built_beside_its_cache(monkeypatch, tmp_path):
    """Review, session 37: the kernel was built in the system's temporary folder and moved
    into the cache with ``os.replace``, which cannot cross file systems (a /tmp on tmpfs, a
    cache on disk): the kernel was then off without a word. It is built in the cache folder."""
    import subprocess
    from pathlib import Path

    from learnsyn.rollout import native

    cache = tmp_path / "cache"
    monkeypatch.setenv("LEARNSYN_CACHE", str(cache))
    moves = []

    def fake_run(command, **kwargs):
        if "--version" in command:
            return subprocess.CompletedProcess(command, 0, stdout="fake cc 1.0", stderr="")
        Path(command[command.index("-o") + 1]).write_bytes(b"")
        return subprocess.CompletedProcess(command, 0)

    def fake_replace(source, target):
        moves.append((Path(source), Path(target)))
        raise RuntimeError("stop before loading the fake library")

    monkeypatch.setattr(native.subprocess, "run", fake_run)
    monkeypatch.setattr(native.os, "replace", fake_replace)
    with pytest.raises(RuntimeError, match="stop"):
        native._compile()
    ((source, target),) = moves
    assert cache in source.parents and target.parent == cache


def test_a_native_kernel_that_cannot_be_built_is_said_once(monkeypatch, tmp_path):
    from learnsyn.rollout import native

    monkeypatch.setenv("LEARNSYN_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_failure", None)
    with pytest.warns(UserWarning, match="native CPU kernel is not available"):
        assert not native.available()
    assert "no-such-compiler" in native.failure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not native.available()  # said once
