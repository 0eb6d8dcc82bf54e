"""Fast Monte Carlo rollouts for meta-training, with the reference simulator's exact semantics.

``fast_simulate_pairs`` is a drop-in replacement for
``learnsyn.estimate.montecarlo.simulate_pairs`` for
the learned tanh-RNN and GRU cells in scenarios without state constraints and, on the native
and Triton kernels, in ``bounded`` and ``noisy``, and for these cells with the learned saturation
``s tanh(y / s)`` (``output_scale``) on the native kernel, for the ``mlp`` cell (a linear
synapse plus a tanh correction) on the native and Triton kernels, and forward only for linear
and Markov (finite-state) synapses on the native kernel (``supports_fast_path``): it draws
the same random numbers from the generator in the same order, maps them to the same events
through the scenario, and returns the same ``PairMoments`` up to float rounding, with
gradients that reach ``model.parameters()`` the same way (through the tracked window and the
last ``tail`` burn-in steps; the rest of the burn-in has none).
Anything it does not cover (``supports_fast_path`` is False) is passed to the reference.

Where the time goes instead (see docs/performance.md for the measurements):

- random numbers of many steps are drawn in one call on the CPU (the CPU generator fills a tensor
  sequentially, so one draw of ``steps x pairs`` numbers equals ``steps`` draws of ``pairs``); on
  other devices each step's numbers are drawn by their own call, as the reference does;
- events of many steps are mapped in one call when the scenario's stream has no memory (its
  ``next_events`` hands the stream back unchanged, checked with a made-up step); scenarios
  whose stream evolves (correlated events) are mapped step by step; where both branches of a
  pair see the same inputs (every step after the tracked one, without memory) they are mapped
  and stored once;
- Markov synapses draw one uniform per pair after each step's events (shared by the two
  branches in the tracked window): drawn as a constraint's numbers are (``EventRows``
  with ``transitions``) and read by the native kernel's ``markov`` cell;
- the recurrence runs in one of three kernels (``choose_kernel``): ``native``, a compiled C
  loop on the CPU (``learnsyn.rollout.native``); ``triton`` on CUDA
  (``learnsyn.rollout.triton``); ``eager``, hand-written backpropagation through time in plain
  torch operations (``learnsyn.rollout.kernels``) for everything else (float64, no compiler).
"""

from __future__ import annotations

import torch

from learnsyn.estimate.montecarlo import PairBatch, PairMoments, pair_groups, simulate_pairs
from learnsyn.rollout import native as rollout_native
from learnsyn.rollout.kernels import (
    DEFAULT_CHUNK,
    CellMatrices,
    TrackedWindow,
    compiled_matrices,
    forward_chunk,
    gru_matrices,
    new_buffer,
    rnn_matrices,
    work_rows,
)
from learnsyn.rollout.native import NativeWindow
from learnsyn.scenario import Scenario, TrackedKind
from learnsyn.synapse import Synapse

#: steps per chunk of the burn-in and of forward-only windows (bounds the temporary buffers)
STREAM_CHUNK = 128


def supports_fast_path(
    model: Synapse,
    scenario: Scenario,
    grad: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> bool:
    """True for the tanh-RNN and GRU cells in scenarios that do not constrain the state, and in
    the ``bounded`` and ``noisy`` scenarios (native and Triton kernels: ``constraint_kind``);
    without gradient (``grad`` False: evaluation) also for linear synapses (``linear_model``,
    native kernel only). Cells with a learned saturation (``output_scale``: ``log_scale``) run
    on the native kernel only: for them True only where it runs (``device``, ``dtype``).
    Markov synapses (``markov_model``): without gradient, in scenarios that do not constrain
    the state (the only ones they are evaluated in), where the native kernel runs. The ``mlp``
    cell (``mlp_model``): where the native kernel runs, or the Triton kernel (width <= its
    ``MAX_HIDDEN``), with and without gradient. Never for a model with a non-finite parameter
    or buffer: the kernels are compiled without NaN semantics (the native one read a NaN gate as
    0 and gave finite figures where the reference gives NaN; review, session 35)."""
    from learnsyn.cells import GRUSynapse, MLPSynapse, TanhRNNSynapse

    if not finite_model(model):
        return False

    if markov_model(model):
        return (
            not grad
            and unconstrained(scenario)
            and torch.get_default_dtype() == torch.float32  # the dtype of their uniforms
            and _native_usable(device, dtype, 1)
        )
    if type(model) not in (GRUSynapse, TanhRNNSynapse, MLPSynapse):
        if grad or not linear_model(model):
            return False
    elif scaled_model(model) and not _native_usable(device, dtype, model.state_size):
        return False
    elif mlp_model(model) and not _native_usable(device, dtype, model.state_size):
        probe = torch.empty(0, device=device, dtype=dtype)
        hidden = mlp_width(model)
        if not _triton().usable(probe, model.state_size, 16, 1, hidden):
            return False
    return unconstrained(scenario) or constraint_kind(scenario) is not None


def finite_model(model: Synapse) -> bool:
    """Every floating-point parameter and buffer of the model is finite."""
    tensors = (*model.parameters(), *model.buffers())
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    return not flags or bool(torch.stack(flags).all())  # one synchronization


def scaled_model(model: Synapse) -> bool:
    """A learned cell with the learnable saturation ``s tanh(y / s)`` (native kernel only)."""
    return getattr(model, "log_scale", None) is not None and model.cell in ("gru", "rnn")


def mlp_model(model: Synapse) -> bool:
    """The ``mlp`` cell (``learnsyn.cells.MLPSynapse``): the native and Triton kernels' ``mlp``."""
    from learnsyn.cells import MLPSynapse

    return type(model) is MLPSynapse


def mlp_width(model: Synapse) -> int:
    """The hidden units of an ``mlp`` cell (0 for any other model)."""
    return int(model.params["width"]) if mlp_model(model) else 0


def _native_usable(device, dtype, size: int) -> bool:
    return rollout_native.usable(torch.empty(0, device=device, dtype=dtype), size)


def linear_model(model: Synapse) -> bool:
    """A ``LinearSynapse`` that steps and reads out as the base class does (``x' = A x + b xi``,
    ``w = c . x``, the flags ignored, starting from zero): the native kernel's ``linear`` cell.
    A flag-dependent increment (``b_flagged``) multiplies event and flag, which that cell cannot
    express: such a synapse runs on the reference."""
    from learnsyn.synapse import LinearSynapse

    kind = type(model)
    return (
        isinstance(model, LinearSynapse)
        and model.linear_form().b_flagged is None
        and kind.step is LinearSynapse.step
        and kind.readout is LinearSynapse.readout
        and kind.initial_state is Synapse.initial_state
    )


def linear_matrices(model: Synapse, inputs: int, device) -> CellMatrices:
    """The native kernel's ``linear`` cell: ``first = [A | b | 0 (flag) | drive (bias)]``."""
    form = model.linear_form()
    A = torch.as_tensor(form.A, dtype=torch.float32, device=device)
    b = torch.as_tensor(form.b, dtype=torch.float32, device=device).reshape(-1, 1)
    rest = A.new_zeros(A.shape[0], inputs)  # flag column (if any) and the bias
    if model.drive is not None:
        rest[:, -1] = model.drive.to(device=device, dtype=torch.float32)
    first = torch.cat([A, b, rest], 1)
    c = torch.as_tensor(form.c, dtype=torch.float32, device=device).reshape(-1)
    return CellMatrices("linear", first, first.new_zeros(0), c, c.new_zeros(()))


def markov_model(model: Synapse) -> bool:
    """A ``MarkovSynapse`` that steps, reads out and starts as the base class does, from a valid
    state, with nondecreasing cumulative rows (the native kernel's ``markov`` cell: it finds
    the next state by counting the entries below the uniform, by bisection in long rows)."""
    from learnsyn.synapse import MarkovSynapse

    kind = type(model)
    if not (
        isinstance(model, MarkovSynapse)
        and kind.step is MarkovSynapse.step
        and kind.readout is MarkovSynapse.readout
        and kind.initial_state is MarkovSynapse.initial_state
        and 0 <= int(model.initial) < model.n_states
    ):
        return False
    shape = (model.n_states, model.n_states)
    tables = (model.cum_plus, model.cum_minus)
    return model.weights.shape == shape[:1] and all(
        table.shape == shape and bool((table[:, 1:] >= table[:, :-1]).all()) for table in tables
    )


def markov_matrices(model: Synapse) -> CellMatrices:
    """The native kernel's ``markov`` cell: ``first`` the cumulative transition tables of
    positive and of negative events, one above the other (``[2 S, S]``), ``readout`` the weight
    of every state (``reset`` empty)."""
    first, weights = (
        t.detach().to("cpu", torch.float32).contiguous()
        for t in (torch.cat([model.cum_plus, model.cum_minus]), model.weights)
    )
    return CellMatrices("markov", first, first.new_zeros(0), weights, weights.new_zeros(()))


def unconstrained(scenario: Scenario) -> bool:
    kind = type(scenario)
    return (
        not scenario.constrains_state
        and kind.constraint_noise is Scenario.constraint_noise
        and kind.constrain is Scenario.constrain
    )


def constraint_kind(scenario: Scenario) -> str | None:
    """``bounded`` or ``noisy`` when the scenario's constraint is that of
    ``learnsyn.tasks.constrained`` (which the native and Triton kernels apply themselves),
    else None (``tasks.constrained.standard_constraint``)."""
    from learnsyn.tasks.constrained import standard_constraint

    return standard_constraint(scenario)


def kernel_constraint(
    scenario: Scenario, noise: torch.Tensor, pairs: int
) -> rollout_native.Constraint:
    """The scenario's constraint with its numbers ``noise`` (``EventRows.take_noise``)."""
    params = scenario.params
    if constraint_kind(scenario) == "bounded":
        bound = float(params["bound"])
        spacing = 2.0 * bound / (params["levels"] - 1)
        return rollout_native.Constraint(1, bound, spacing, 0.0, noise, pairs)
    sigma = float(params["sigma"])
    return rollout_native.Constraint(2, float(params["bound"]), 0.0, sigma, noise, pairs)


def cell_matrices(
    model: Synapse,
    inputs: int,
    dtype: torch.dtype,
    device: torch.device | str,
    backend: str = "eager",
) -> CellMatrices:
    """The model's effective weights for ``inputs`` input rows (1: event; 2: event and flag):
    in the ``u = (h + 1) / 2`` form for the eager kernel, in h for the compiled ones."""
    if backend != "eager":
        return compiled_matrices(model, inputs, dtype, device)
    if model.cell == "gru":
        return gru_matrices(model, inputs, dtype, device)
    return rnn_matrices(model, inputs, dtype, device)


class EventRows:
    """Turns the generator's uniforms into input rows ``[steps, a, batch]`` (event, flag),
    consuming exactly the numbers the reference consumes, in the same order. ``transitions``:
    the synapses are Markov synapses, which draw ``rand(pairs, 1)`` after every step's events
    (``MarkovSynapse.step``): kept as a constraint's numbers are (``constraint``
    ``transitions``, ``size`` 1)."""

    def __init__(
        self,
        scenario: Scenario,
        generator: torch.Generator,
        pairs: int,
        device: torch.device,
        dtype: torch.dtype,
        size: int = 0,
        transitions: bool = False,
    ):
        self.scenario = scenario
        self.generator = generator
        self.pairs = pairs
        self.device = device
        self.dtype = dtype
        self.per_step = scenario.uniforms_per_step
        self.stream = scenario.new_stream(pairs, device)
        self.memoryless: bool | None = None  # unknown until the first mapped step
        self._twins: bool | None = None  # tracked window: are both branches' streams equal?
        self.constraint = "transitions" if transitions else constraint_kind(scenario)
        self.size = 1 if transitions else size
        self.noise: torch.Tensor | None = None  # the constraint's numbers (``start_noise``)
        self.noise_at = 0
        # the ideal scenario's +-1 events (no stream, no flags): mapped by the compiled generator
        self.ideal_events = type(scenario).next_events is Scenario.next_events and (
            self.per_step == 1
        )

    def start_noise(self, steps: int) -> None:
        """Keep the constraint's numbers of the next ``steps`` steps (``take_noise``)."""
        if self.constraint is not None:
            blocks = -(-self.pairs // rollout_native.LANES)
            shape = (blocks, steps, self.size, rollout_native.LANES)
            if self.device.type == "cpu":
                self.noise = rollout_native.noise_buffer(shape)
            else:  # where the Triton kernel reads them
                self.noise = torch.empty(shape, device=self.device, dtype=torch.float32)
            self.noise_at = 0

    def _draw(self, steps: int, events_from: int = 0) -> tuple[torch.Tensor, bool]:
        """``steps`` steps of random numbers as the reference draws them: (from
        ``events_from`` on) the events' uniforms ``[steps', pairs, k]`` and, in constrained
        scenarios, each step's constraint numbers after them (into ``noise``). Through the
        compiled copy of the CPU generator where it applies (then, in scenarios with the
        ideal scenario's events, the events ``[steps', pairs]`` themselves: second value
        True), else through torch."""
        mode = {None: 0, "bounded": 1, "transitions": 1, "noisy": 2}[self.constraint]
        if mode and (self.noise is None or self.noise.shape[1] < self.noise_at + steps):
            raise RuntimeError("start_noise was not called for these steps")
        if self.device.type == "cpu" and self.dtype == torch.float32:
            drawn = rollout_native.draw_steps(
                self.generator, steps, self.pairs, self.per_step, size=self.size, mode=mode,
                events_from=events_from, ideal=self.ideal_events, noise=self.noise,
                at=self.noise_at,
            )  # fmt: skip
            if drawn is not None:
                self.noise_at += steps if mode else 0
                return drawn, self.ideal_events
        shape = (self.pairs, self.per_step)
        options = dict(generator=self.generator, device=self.device)
        if not mode:
            steps -= events_from
            if self.device.type == "cpu":
                uniforms = torch.rand(steps * shape[0], shape[1], dtype=self.dtype, **options)
                return uniforms.view(steps, *shape), False
            drawn = [torch.rand(*shape, dtype=self.dtype, **options) for _ in range(steps)]
            return torch.stack(drawn), False
        drawn, noise = [], []
        for step in range(steps):
            if step >= events_from:
                drawn.append(torch.rand(*shape, dtype=self.dtype, **options))
            if self.constraint == "transitions":
                numbers = torch.rand(self.pairs, 1, **options)
            else:
                numbers = self.scenario.constraint_noise(self.pairs, self.size, **options)
            noise.append(numbers.to(torch.float32).T)
        at = self.noise_at
        self.noise[:, at : at + steps] = rollout_native.blocked(torch.stack(noise))
        self.noise_at += steps
        empty = torch.empty(0, *shape, device=self.device, dtype=self.dtype)
        return (torch.stack(drawn) if drawn else empty), False

    def draw_noise(self) -> None:
        """The constraint's numbers of a step without background events (the tracked one):
        also the Markov synapses' transition uniforms."""
        if self.constraint is not None:
            self._draw(1, 1)

    def take_noise(self) -> torch.Tensor | None:
        """The constraint's numbers drawn since ``start_noise``: ``[blocks, steps, m, LANES]``."""
        if self.constraint is None:
            return None
        noise = self.noise[:, : self.noise_at].contiguous()
        self.noise = None
        return noise

    def probe(self) -> None:
        """Find out whether the stream has memory: a memoryless scenario hands the very stream
        object back (``next_events`` draws nothing, so a made-up step costs no numbers)."""
        if self.memoryless is None:
            made_up = torch.full(
                (self.stream.shape[0], self.per_step), 0.25, device=self.device, dtype=self.dtype
            )
            self.memoryless = self.scenario.next_events(self.stream, made_up)[2] is self.stream

    def shareable(self) -> bool:
        """True when both branches of the tracked window get the same inputs after step 0."""
        self.probe()
        return bool(self.memoryless) and self.twin_streams()

    def fill(self, rows: torch.Tensor, branches: int, shared: bool = False) -> None:
        """Write the next ``rows.shape[0]`` background steps; ``branches`` 2 repeats each
        step's numbers for the second branch of every pair (the tracked window); ``shared``:
        ``rows`` has one column per pair, the inputs of both branches (``shareable()``)."""
        steps = rows.shape[0]
        if steps == 0:
            return
        uniforms, mapped = self._draw(steps)
        if mapped:  # the ideal scenario's events, the same for both branches
            rows[:, 0, : self.pairs] = uniforms
            if rows.shape[-1] > self.pairs:
                rows[:, 0, self.pairs :] = uniforms
            if rows.shape[1] > 1:
                rows[:, 1] = 0
            return
        if shared:
            self.stream, full = self.stream[: self.pairs], self.stream
            self.fill_memoryless(rows, uniforms, 0)
            self.stream = full
            return
        if self.memoryless and branches == 2 and self.twin_streams():
            # both branches see the same numbers and the same stream: map one, write both
            self.stream, full = self.stream[: self.pairs], self.stream
            self.fill_memoryless(rows[..., : self.pairs], uniforms, 0)
            rows[..., self.pairs :] = rows[..., : self.pairs]
            self.stream = full
            return
        if branches == 2:
            uniforms = uniforms.repeat(1, 2, 1)
        for step in range(steps):
            if self.memoryless:
                self.fill_memoryless(rows, uniforms, step)
                return
            events, flags, stream = self.scenario.next_events(self.stream, uniforms[step])
            if self.memoryless is None:
                self.memoryless = stream is self.stream
            self.stream = stream
            write_inputs(rows[step], events, flags)

    def fill_memoryless(self, rows: torch.Tensor, uniforms: torch.Tensor, step: int) -> None:
        """Map steps ``step:`` in one call (the stream stays what it is)."""
        rest, batch = rows.shape[0] - step, rows.shape[-1]
        flat = uniforms[step:].reshape(rest * batch, self.per_step)
        events, flags, _ = self.scenario.next_events(self.stream.repeat(rest), flat)
        write_inputs(rows[step:], events.view(rest, batch), _view(flags, rest, batch))

    def twin_streams(self) -> bool:
        """True when the second branch's stream equals the first's (checked once)."""
        if self._twins is None:
            half = self.stream.shape[0] // 2
            self._twins = half == self.pairs and torch.equal(self.stream[:half], self.stream[half:])
        return self._twins


def _view(flags: torch.Tensor | None, steps: int, batch: int) -> torch.Tensor | None:
    return None if flags is None else flags.view(steps, batch)


def write_inputs(rows: torch.Tensor, events: torch.Tensor, flags: torch.Tensor | None) -> None:
    """``rows[..., 0, :] = events``; row 1 (when present) the flags, 0 where there are none."""
    rows[..., 0, :] = events
    if rows.shape[-2] > 1:
        if flags is None:
            rows[..., 1, :] = 0
        else:
            rows[..., 1, :] = flags
    elif flags is not None and bool((flags != 0).any()):
        raise RuntimeError("the scenario produced flags where none were expected")


def group_sums(readouts: torch.Tensor, groups: int, per_group: int) -> torch.Tensor:
    """``[T, 2 * pairs]`` readouts -> ``[T, G, 4]`` sums of (w+, w+^2, w-, w-^2) per group."""
    w = readouts.view(readouts.shape[0], 2, groups, per_group)
    first = w.sum(-1)
    second = torch.linalg.vecdot(w, w)
    return torch.stack([first[:, 0], second[:, 0], first[:, 1], second[:, 1]], -1)


class GroupMoments(torch.autograd.Function):
    """``group_sums(readouts + offset)`` with a one-operation backward (no ``[T, N]``
    temporaries besides the saved readouts)."""

    @staticmethod
    def forward(ctx, readouts, offset, groups, per_group):
        w = readouts.add(offset)
        ctx.save_for_backward(w)
        ctx.shape = (groups, per_group)
        return group_sums(w, groups, per_group)

    @staticmethod
    def backward(ctx, grad_sums):
        (w,) = ctx.saved_tensors
        groups, per_group = ctx.shape
        steps = w.shape[0]
        grad = grad_sums.view(steps, groups, 2, 2).transpose(1, 2)  # [T, branch, G, moment]
        linear, square = grad[..., 0:1], grad[..., 1:2]
        view = w.view(steps, 2, groups, per_group)
        grad_w = torch.empty_like(w)
        torch.addcmul(linear, view, square, value=2.0, out=grad_w.view(view.shape))
        sums = view.sum(-1, keepdim=True)
        grad_offset = (linear * per_group + 2.0 * square * sums).sum()
        return grad_w, grad_offset, None, None


#: the ``kernel`` names of ``fast_simulate_pairs``
KERNELS = ("auto", "native", "triton", "eager")


def fast_simulate_pairs(
    model: Synapse,
    scenario: Scenario,
    kind: TrackedKind,
    *,
    checkpoint: int | None = DEFAULT_CHUNK,
    kernel: str = "auto",
    **batch,
) -> PairMoments:
    """``simulate_pairs`` on the fast path (or the reference where it does not apply);
    ``batch``: the keywords of ``montecarlo.PairBatch``.

    ``checkpoint``: keep the states every that many steps for the backward and recompute the
    rest (None: keep them all; the compiled kernels always recompute). ``kernel``: ``auto``
    (``choose_kernel``), ``native``, ``triton`` or ``eager``. ``tail`` (with ``grad``): the last
    ``tail`` burn-in steps are differentiated too: they run in the same kernel call as the
    window, on both branches of every pair with the same inputs (and the same constraint
    numbers), the tracked event at row ``tail``.
    """
    if kernel not in KERNELS:  # checked first: the reference fallback skipped it
        raise ValueError(f"unknown kernel {kernel!r}; allowed: {', '.join(KERNELS)}")
    request = PairBatch(**batch)
    burn_in, horizon, generator = request.burn_in, request.horizon, request.generator
    device, grad, dtype = request.device, request.grad, request.dtype
    linear = linear_model(model)
    markov = markov_model(model)
    mlp = mlp_model(model)
    scaled = scaled_model(model)
    if (scaled or mlp) and (unconstrained(scenario) or constraint_kind(scenario) is not None):
        if kernel == "triton" and mlp and mlp_width(model) > _triton().MAX_HIDDEN:
            raise ValueError(
                f"the triton kernel runs mlp cells of width <= {_triton().MAX_HIDDEN}, "
                f"not {mlp_width(model)}; use native"
            )
        if kernel == "eager" or (kernel == "triton" and scaled):
            what = "the mlp cell" if mlp else "scaled cells (output_scale)"
            raise ValueError(f"the {kernel} kernel does not run {what}; use native")
        if kernel == "native" and not _native_usable(device, dtype, model.state_size):
            raise ValueError(f"the native kernel cannot run here ({device}, {dtype})")
    if not supports_fast_path(model, scenario, grad, device, dtype):
        return simulate_pairs(model, scenario, kind, **batch)
    constrained = not unconstrained(scenario)
    if (linear or markov) and kernel not in ("auto", "native"):
        what = "run Markov synapses" if markov else "run linear synapses"
        raise ValueError(f"the {kernel} kernel does not {what}; use native")
    if constrained and kernel == "eager":
        raise ValueError("the eager kernel does not apply state constraints; use native or triton")
    groups, per_group = pair_groups(request.pairs, request.groups)
    device = torch.device(device)
    pairs = per_group * groups
    size = model.state_size
    backend = _backend(model, scenario, device, dtype, pairs, groups, kernel)
    if backend == "reference":
        return simulate_pairs(model, scenario, kind, **batch)  # outside no_grad: its graph
    inputs = 2 if (scenario.has_flags or kind.flag != 0) else 1
    tail = request.differentiated_tail()
    steps = tail + horizon  # the differentiated window: the tail, then the tracked ages
    source = EventRows(scenario, generator, pairs, device, dtype, size, transitions=markov)
    with torch.no_grad():
        start = model.initial_state(pairs, device=device, dtype=dtype).T
        if backend == "eager":  # the eager kernel carries u = (h + 1) / 2
            start = start.add(1).mul(0.5)
        if markov:
            plain = markov_matrices(model)
        elif linear:
            plain = linear_matrices(model, inputs, device)
        else:
            plain = cell_matrices(model, inputs, dtype, device, backend).detached()
        start = _burn_in(plain, source, start.contiguous(), burn_in - tail, inputs, backend)
        rows = None
        if grad:
            source.start_noise(steps)
        if tail:  # one branch's inputs (and constraint numbers), copied for the other
            rows = start.new_empty(steps, inputs, 2 * pairs)
            for begin in range(0, tail, STREAM_CHUNK):
                end = min(begin + STREAM_CHUNK, tail)
                source.fill(rows[begin:end, :, :pairs], branches=1)
            rows[:tail, :, pairs:] = rows[:tail, :, :pairs]
        start = torch.cat([start, start], 1)
        signs = torch.cat([torch.ones(pairs, device=device), -torch.ones(pairs, device=device)])
        stream = torch.cat([source.stream, source.stream])
        events, flags, source.stream = scenario.tracked_events(kind, signs.to(dtype), stream)
        head = start.new_empty(inputs, 2 * pairs)
        write_inputs(head, events, flags)
        # both branches read one copy of the inputs after step 0 where they are the same
        lanes = rollout_native.LANES if backend == "native" else 1
        shared = not tail and backend != "eager" and pairs % lanes == 0 and source.shareable()
    cells = (pairs, groups)
    if not grad:
        with torch.no_grad():
            sums = _forward_only(plain, source, start, head, horizon, cells, backend, shared)
        if markov:  # left holding the generator, as the reference leaves it
            model.use_generator(generator, paired=True)
        return PairMoments(sums, per_group, kind.p_plus)
    with torch.no_grad():
        if rows is None:
            rows = start.new_empty(steps, inputs, pairs if shared else 2 * pairs)
        rows[tail] = 0 if shared else head
        source.draw_noise()  # the tracked step's constraint numbers
        for begin in range(tail + 1, steps, STREAM_CHUNK):
            source.fill(rows[begin : begin + STREAM_CHUNK], branches=2, shared=shared)
        constraint = _constraint(source)
    chunk = steps if checkpoint is None else int(checkpoint)
    with torch.enable_grad():
        mats = cell_matrices(model, inputs, dtype, device, backend)
        if backend in ("native", "triton"):
            shared_head = head if shared else None
            arguments = (mats.cell, chunk, cells, constraint, rows, shared_head, start)
            if backend == "triton":
                launcher = _triton_launcher(mats.cell, start.shape[0])
                moments = _triton().TritonWindow.apply(launcher, *arguments, *mats.tensors())
            else:
                moments = NativeWindow.apply(*arguments, *mats.native_tensors())
            sums = moments_by_group(moments, groups)
        else:
            readouts = TrackedWindow.apply(mats.cell, chunk, rows, start, *mats.tensors())
            sums = GroupMoments.apply(readouts, mats.offset, groups, per_group)
    return PairMoments(sums[tail:], per_group, kind.p_plus)


def _backend(model, scenario, device, dtype, pairs: int, groups: int, kernel: str) -> str:
    """The kernel that runs a covered model (``supports_fast_path``), or ``reference`` where
    the chosen kernel cannot run it. A named kernel that cannot run here raises ValueError."""
    like = torch.empty(0, device=device, dtype=dtype)
    backend = choose_kernel(like, model.state_size, pairs, groups, kernel, mlp_width(model))
    native_only = linear_model(model) or scaled_model(model) or markov_model(model)
    constrained = not unconstrained(scenario)
    if (native_only and backend != "native") or (
        backend == "eager" and (constrained or mlp_model(model))
    ):
        return "reference"
    return backend


def rollout_path(
    model: Synapse,
    scenario: Scenario,
    *,
    pairs: int,
    grad: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    groups: int = PairBatch.groups,
) -> str:
    """What ``fast_simulate_pairs`` (kernel ``auto``) runs for these arguments: ``native``,
    ``triton``, ``eager``, or ``reference`` (the loop of ``montecarlo.simulate_pairs``, where
    the fast path does not cover the model, the scenario or the device). Recorded in a
    training run's result.json (``rollout_kernel``)."""
    if not supports_fast_path(model, scenario, grad, device, dtype):
        return "reference"
    groups, per_group = pair_groups(pairs, groups)
    device = torch.device(device)
    return _backend(model, scenario, device, dtype, per_group * groups, groups, "auto")


def moments_by_group(moments: torch.Tensor, groups: int) -> torch.Tensor:
    """``[T, 2 groups, 2]`` (branch-major cells; w, w^2) -> ``[T, G, 4]`` (w+, w+^2, w-, w-^2)."""
    steps = moments.shape[0]
    return moments.view(steps, 2, groups, 2).transpose(1, 2).reshape(steps, groups, 4)


def _triton():
    from learnsyn.rollout import (
        triton as rollout_triton,
    )  # Triton and CUDA only where they are used

    return rollout_triton


def _triton_launcher(cell: str, state_size: int):
    """The Triton launch class: the lane-per-thread kernels for a small GRU, else the tiles."""
    from learnsyn.rollout import triton_lanes

    return triton_lanes.LanesLaunch if triton_lanes.fits(cell, state_size) else _triton().Launch


def available_kernels(device: torch.device | str) -> list[str]:
    """The kernels that can run on ``device`` (float32), fastest first."""
    device = torch.device(device)
    probe = torch.empty(0, device=device)
    kernels = []
    if rollout_native.usable(probe, 1):
        kernels.append("native")
    if _triton().usable(probe, 1, 16, 1):
        kernels.append("triton")
    return [*kernels, "eager"]


def choose_kernel(
    like: torch.Tensor, size: int, pairs: int, groups: int, kernel: str, hidden: int = 0
) -> str:
    """``kernel`` if it can run these tensors (``hidden``: an mlp cell's width); ``auto``: native
    on a CPU, Triton on CUDA, else the eager kernel. A named kernel that cannot run raises
    ValueError."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; allowed: {', '.join(KERNELS)}")
    can = {
        "native": lambda: rollout_native.usable(like, size),
        "triton": lambda: _triton().usable(like, size, pairs, groups, hidden),
        "eager": lambda: True,
    }
    if kernel != "auto":
        if not can[kernel]():
            raise ValueError(f"the {kernel} kernel cannot run here ({like.device}, {like.dtype})")
        return kernel
    return next(name for name in ("native", "triton", "eager") if can[name]())


def _advance(mats, inputs, state, head=None, cells=None, backend="eager", constraint=None):
    """Forward through ``inputs`` (``[L, a, columns]``) from ``state`` without gradient:
    the final state, and the ``[L, G, 4]`` moments of the weights when ``cells`` is given
    (``constraint``: a ``native.Constraint`` for these steps, read by the native or Triton
    kernel)."""
    if backend == "triton":
        launcher = _triton_launcher(mats.cell, state.shape[0])
        moments, final = _triton().advance(
            mats.cell, mats.tensors(), inputs, head, state, cells, constraint, launcher
        )
        return (None if cells is None else moments_by_group(moments, cells[1])), final
    if constraint is not None or backend == "native":
        moments, final = rollout_native.advance(
            mats.cell, mats.native_tensors(), inputs, head, state, cells, constraint
        )
        return (None if cells is None else moments_by_group(moments, cells[1])), final
    steps, a, batch = inputs.shape[0], inputs.shape[1], state.shape[1]
    m = state.shape[0]
    buffer = new_buffer(steps, m, a, state)
    buffer[0, :m] = state
    buffer[:steps, m : m + a] = inputs
    if head is not None:
        buffer[0, m : m + a] = head
    work = state.new_empty(work_rows(mats.cell, m), batch)
    readouts = state.new_empty(steps, batch) if cells is not None else None
    forward_chunk(mats.cell, buffer, steps, mats.tensors(), work, readouts)
    final = buffer[steps, :m].clone()
    if cells is None:
        return None, final
    return group_sums(readouts + mats.offset, cells[1], cells[0] // cells[1]), final


def _burn_in(mats, source, state, steps, inputs, backend) -> torch.Tensor:
    """Advance ``state`` (``[m, pairs]``) through ``steps`` background steps without storing."""
    rows = state.new_empty(min(STREAM_CHUNK, max(steps, 1)), inputs, state.shape[1])
    for begin in range(0, steps, STREAM_CHUNK):
        length = min(STREAM_CHUNK, steps - begin)
        source.start_noise(length)
        source.fill(rows[:length], branches=1)
        constraint = _constraint(source)
        _, state = _advance(mats, rows[:length], state, backend=backend, constraint=constraint)
        del constraint  # its buffer is free for the next chunk
    return state


def _constraint(source: EventRows) -> rollout_native.Constraint | None:
    noise = source.take_noise()
    if noise is None:
        return None
    if source.constraint == "transitions":  # read by the markov cell
        return rollout_native.Constraint(3, 0.0, 0.0, 0.0, noise, source.pairs)
    return kernel_constraint(source.scenario, noise, source.pairs)


def _forward_only(mats, source, start, head, horizon, cells, backend, shared) -> torch.Tensor:
    """Forward-only tracked window, streamed chunk by chunk: per-group sums ``[T, G, 4]``."""
    pairs = cells[0]
    inputs = head.shape[0]
    rows = start.new_empty(min(STREAM_CHUNK, horizon), inputs, pairs if shared else 2 * pairs)
    state, sums = start, []
    for begin in range(0, horizon, STREAM_CHUNK):
        length = min(STREAM_CHUNK, horizon - begin)
        first = head if begin == 0 else None
        skip = 1 if begin == 0 else 0
        if first is not None and not shared:
            rows[0] = head
            first = None
        source.start_noise(length)
        if begin == 0:
            source.draw_noise()  # the tracked step's constraint numbers
        source.fill(rows[skip:length], branches=2, shared=shared)
        constraint = _constraint(source)
        moments, state = _advance(mats, rows[:length], state, first, cells, backend, constraint)
        del constraint  # its buffer is free for the next chunk
        sums.append(moments)
    return torch.cat(sums)
