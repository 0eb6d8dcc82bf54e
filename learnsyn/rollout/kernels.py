"""Hand-written backpropagation through time for the tanh-RNN and GRU synapse cells.

The reference simulator (``learnsyn.estimate.montecarlo.simulate_pairs``) records a dozen
autograd nodes
per time step; at state sizes of 2-32 their bookkeeping costs far more than the arithmetic. Here
one ``torch.autograd.Function`` covers the whole tracked window: its forward runs the recurrence
with a handful of in-place operations per step and keeps the states only every ``chunk`` steps;
its backward recomputes one chunk at a time and walks its steps in reverse with the derivatives
written out.

Conventions that make each step cheap (all exact rewrites of the cells in ``learnsyn.cells``):

- layout ``[feature, synapse]``: every state variable, gate and input is a contiguous row, so a
  slice of rows is contiguous and element-wise operations run at full speed (a strided slice of
  the ``[synapse, feature]`` layout measured 7x slower);
- the state is carried as ``u = (h + 1) / 2``; then ``tanh(p) = 2 sigmoid(2 p) - 1`` costs no
  extra operation: the affine maps fold into the weights (``CellMatrices``), the RNN step is one
  matrix product and one sigmoid, the GRU update ``u' = u + z (s - u)`` is one ``lerp``;
- each step's column is ``x = [u; inputs; 1]`` (state, event, flag, a row of ones), so every
  affine map is one ``mm`` and the bias gradients come out of the weight-gradient product;
- the readout rides along in the backward products: a row ``dy`` appended to the
  pre-activation gradients yields the readout's gradient from the weight-gradient product and
  the readout's contribution to dL/du from the state-gradient product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: steps between stored states (recomputed in the backward); chunk buffers stay cache-sized
DEFAULT_CHUNK = 32


@dataclass
class CellMatrices:
    """Effective weights of a cell in the ``u = (h + 1) / 2`` form, differentiable functions of
    the model's parameters. ``first``: ``[rows, m + a + 1]`` applied to ``[u; inputs; 1]``;
    ``reset``: the GRU's ``[m, m]`` map of ``q = r * (u - 1/2)`` (empty for the RNN);
    ``readout``: ``w = readout . u + offset``. The compiled kernels (``compiled_matrices``)
    use the same layout in the cell's own state h: ``offset`` 0 and ``readout`` the model's;
    ``scale`` (native kernel only): the learned saturation's output multipliers ``s`` (``[m]``,
    the 1 / s inside already folded into the weights), None for plain tanh."""

    cell: str
    first: torch.Tensor
    reset: torch.Tensor
    readout: torch.Tensor
    offset: torch.Tensor
    scale: torch.Tensor | None = None

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.scale is not None:
            raise ValueError("a scaled cell's matrices run on the native kernel only")
        return self.first, self.reset, self.readout

    def native_tensors(self) -> tuple[torch.Tensor, ...]:
        """``first``, ``reset``, ``readout`` and ``scale`` (None: plain tanh)."""
        return self.first, self.reset, self.readout, self.scale

    def detached(self) -> CellMatrices:
        first, reset, readout, offset = (
            t.detach() for t in (self.first, self.reset, self.readout, self.offset)
        )
        scale = None if self.scale is None else self.scale.detach()
        return CellMatrices(self.cell, first, reset, readout, offset, scale)


def _plain_tanh(model) -> None:
    """The eager kernel's matrices have no learned saturation (the native kernel's have)."""
    if getattr(model, "log_scale", None) is not None:
        raise ValueError("the eager kernel does not run scaled cells (output_scale); use native")


def rnn_matrices(model, inputs: int, dtype: torch.dtype, device) -> CellMatrices:
    """``h' = tanh(W h + U x + b)`` as ``u' = sigmoid(4W u + 2U x + 2(b - W 1))``."""
    _plain_tanh(model)
    W, U, b, c = (
        p.to(device=device, dtype=dtype)
        for p in (model.W, model.U, model.bias, model.readout_weights)
    )
    first = torch.cat([4.0 * W, 2.0 * U[:, :inputs], (2.0 * (b - W.sum(1)))[:, None]], 1)
    return CellMatrices("rnn", first, first.new_zeros(0), 2.0 * c, -c.sum())


def gru_matrices(model, inputs: int, dtype: torch.dtype, device) -> CellMatrices:
    """The GRU in the ``u`` form. Rows of ``first``: the candidate's input part, the update gate
    z, the reset gate r."""
    _plain_tanh(model)
    m = model.state_size
    W_in, U_zr, U_h, b, c = (
        p.to(device=device, dtype=dtype)
        for p in (model.W_in, model.U_zr, model.U_h, model.bias, model.readout_weights)
    )
    W_in = W_in[:, :inputs]
    candidate = torch.cat([U_h.new_zeros(m, m), 2.0 * W_in[2 * m :], 2.0 * b[2 * m :, None]], 1)
    gates = torch.cat([2.0 * U_zr, W_in[: 2 * m], (b[: 2 * m] - U_zr.sum(1))[:, None]], 1)
    # r * h = 2 r (u - 1/2): the candidate's pre-activation (times 2) gets 4 U_h q
    reset = 4.0 * U_h
    return CellMatrices("gru", torch.cat([candidate, gates]), reset, 2.0 * c, -c.sum())


def compiled_matrices(model, inputs: int, dtype: torch.dtype, device) -> CellMatrices:
    """The matrices of the compiled kernels, which carry the state h itself (their weight
    gradients then have no cancellation between the state and bias columns, which u's offset
    causes and which per-lane sums over thousands of steps in float32 would magnify).

    RNN: ``h' = 2 sigmoid(first [h; x; 1]) - 1`` with ``first = [2W | 2U | 2b]``.
    GRU rows ``[candidate; z; r]``: ``[0 | 2Wc | 2bc]``, ``[Uz | Wz | bz]``, ``[Ur | Wr | br]``;
    ``s = sigmoid(candidate [h; x; 1] + reset (r h))`` with ``reset = 2 U_h``;
    ``h' = h + z (2s - 1 - h)``. Readout ``w = c . h``. (``2 sigmoid(2p) - 1`` is ``tanh(p)``;
    the native kernel holds that tanh in the candidate's row, by a series near 0 where ``S``
    below exceeds 8.)

    A learned saturation ``S tanh(y / S)`` (``log_scale``, native kernel only): the rows that
    make the saturated pre-activation (the RNN's ``first``, the GRU's candidate rows and
    ``reset``) are divided by ``S`` here, so that autograd carries their gradient to
    ``log_scale``, and ``scale = S`` multiplies the tanh in the kernel (the new state of the RNN,
    the GRU's candidate ``S tanh``)."""
    m = model.state_size
    c = model.readout_weights.to(device=device, dtype=dtype)
    zero = c.new_zeros(())
    if model.cell == "mlp":
        return mlp_matrices(model, inputs, c, zero)
    log_scale = getattr(model, "log_scale", None)
    scale = None if log_scale is None else log_scale.to(device=device, dtype=dtype).exp()
    if model.cell == "rnn":
        W, U, b = (p.to(device=device, dtype=dtype) for p in (model.W, model.U, model.bias))
        first = 2.0 * torch.cat([W, U[:, :inputs], b[:, None]], 1)
        if scale is not None:
            first = first / scale[:, None]
        return CellMatrices("rnn", first, first.new_zeros(0), c, zero, scale)
    W_in, U_zr, U_h, b = (
        p.to(device=device, dtype=dtype) for p in (model.W_in, model.U_zr, model.U_h, model.bias)
    )
    W_in = W_in[:, :inputs]
    candidate = 2.0 * torch.cat([U_h.new_zeros(m, m), W_in[2 * m :], b[2 * m :, None]], 1)
    gates = torch.cat([U_zr, W_in[: 2 * m], b[: 2 * m, None]], 1)
    reset = 2.0 * U_h
    if scale is not None:
        candidate = candidate / scale[:, None]
        reset = reset / scale[:, None]
    return CellMatrices("gru", torch.cat([candidate, gates]), reset, c, zero, scale)


def mlp_matrices(model, inputs: int, readout: torch.Tensor, zero: torch.Tensor) -> CellMatrices:
    """The ``mlp`` cell (native and Triton kernels): ``first`` holds the hidden rows ``2 [W | a]``
    (its tanh is ``2 sigmoid(2 p) - 1``) above the linear rows ``[D | B | d]``; ``reset`` is
    ``V / width``. The kernel adds the state itself: ``h' = h + [D | B | d] x + reset tanh``."""
    m = model.state_size
    W, a, D, B, d, V = (
        p.to(device=readout.device, dtype=readout.dtype)
        for p in (model.W, model.a, model.D, model.B, model.drive, model.V)
    )
    hidden = 2.0 * torch.cat([W[:, : m + inputs], a[:, None]], 1)
    linear = torch.cat([D, B[:, :inputs], d[:, None]], 1)
    return CellMatrices("mlp", torch.cat([hidden, linear]), V / V.shape[1], readout, zero)


def gate_rows(cell: str, m: int) -> int:
    """Rows of the pre-activation gradient: GRU ``[candidate; z; r]``, RNN the state."""
    return 3 * m if cell == "gru" else m


def work_rows(cell: str, m: int) -> int:
    """Rows of the per-step work buffer: GRU ``[s; z; r; q]``, RNN none."""
    return 4 * m if cell == "gru" else 0


def new_buffer(steps: int, m: int, inputs: int, like: torch.Tensor) -> torch.Tensor:
    """``[steps + 1, m + inputs + 1, N]`` step columns with the row of ones set."""
    buffer = like.new_empty(steps + 1, m + inputs + 1, like.shape[-1])
    buffer[:, -1] = 1
    return buffer


def gru_gates(x: torch.Tensor, first: torch.Tensor, reset: torch.Tensor, work: torch.Tensor):
    """The GRU's candidate ``s``, gates ``z``, ``r`` and ``q = r (u - 1/2)`` into ``work``
    (``[4m, N]``)."""
    m = reset.shape[0]
    torch.mm(first, x, out=work[: 3 * m])
    work[m : 3 * m].sigmoid_()
    torch.add(x[:m], -0.5, out=work[3 * m :])
    work[3 * m :].mul_(work[2 * m : 3 * m])
    work[:m].addmm_(reset, work[3 * m :])
    work[:m].sigmoid_()


def forward_chunk(
    cell: str,
    buffer: torch.Tensor,
    steps: int,
    mats: tuple[torch.Tensor, ...],
    work: torch.Tensor,
    readouts: torch.Tensor | None,
) -> None:
    """Run ``steps`` steps in ``buffer`` (``new_buffer``: slot 0 holds the start state, every
    slot its step's inputs); slot ``i + 1`` receives the state after step ``i`` and
    ``readouts[i]`` (when given) its readout ``c . u`` without the offset. ``work``: one
    ``[4m, N]`` GRU work buffer, or ``[steps, 4m, N]`` to keep every step's gates."""
    first, reset, readout = mats
    m = readout.shape[0]
    keep = work.dim() == 3
    for i in range(steps):
        x, state = buffer[i], buffer[i + 1, :m]
        if cell == "rnn":
            torch.mm(first, x, out=state)
            state.sigmoid_()
        else:
            gates = work[i] if keep else work
            gru_gates(x, first, reset, gates)
            torch.lerp(x[:m], gates[:m], gates[m : 2 * m], out=state)
        if readouts is not None:
            torch.mv(state.T, readout, out=readouts[i])


class _Backward:
    """State of one backward pass: buffers reused by every step and the gradient sums."""

    def __init__(self, cell: str, mats: tuple[torch.Tensor, ...], chunk: int, like: torch.Tensor):
        first, reset, readout = mats
        m, n = readout.shape[0], like.shape[-1]
        rows = gate_rows(cell, m)
        self.cell, self.m, self.mats = cell, m, mats
        # dL/du = first[:, :m]^T delta + readout dy (+ the GRU's direct paths), one product
        self.transposed = torch.cat([first[:, :m].T, readout[:, None]], 1).contiguous()
        self.reset_t = reset.T.contiguous() if cell == "gru" else None
        self.delta = like.new_empty(chunk, rows + 1, n)  # last row: the readout gradient dy
        self.grad_state = like.new_empty(m, n)
        self.grad_state_next = like.new_empty(m, n)
        self.tmp = like.new_empty(m, n)
        self.tmp2 = like.new_empty(2 * m, n)
        self.tmp3 = like.new_empty(m, n) if cell == "gru" else None
        self.grad_first = like.new_zeros(rows + 1, first.shape[1])  # last row: readout grad
        self.grad_reset = like.new_zeros(m, m) if cell == "gru" else None

    def step(self, delta, x, state_next, work, need_state_grad: bool) -> None:
        """Backpropagate one step. On entry ``grad_state`` is dL/du' (u' = ``state_next``) and
        ``delta``'s last row the gradient of the readout of the state in ``x`` (0 at age 0); on
        exit (when ``need_state_grad``) ``grad_state`` is dL/du for the state in ``x``."""
        m, du = self.m, self.grad_state
        if self.cell == "rnn":
            torch.addcmul(state_next, state_next, state_next, value=-1, out=self.tmp)
            torch.mul(du, self.tmp, out=delta[:m])
            self.grad_first.addmm_(delta, x.T)
            if need_state_grad:
                torch.mm(self.transposed, delta, out=du)
            return
        s, z, r, u = work[:m], work[m : 2 * m], work[2 * m : 3 * m], x[:m]
        tmp, tmp2, tmp3, du_next = self.tmp, self.tmp2, self.tmp3, self.grad_state_next
        torch.sub(s, u, out=tmp)
        torch.mul(du, tmp, out=delta[m : 2 * m])  # dL/dz
        torch.mul(du, z, out=tmp)  # dL/ds
        torch.sub(du, tmp, out=du_next)  # the (1 - z) path
        torch.addcmul(s, s, s, value=-1, out=tmp2[:m])
        torch.mul(tmp, tmp2[:m], out=delta[:m])  # the candidate's pre-activation
        torch.mm(self.reset_t, delta[:m], out=tmp3)  # dL/dq
        torch.add(u, -0.5, out=tmp2[:m])
        torch.mul(tmp3, tmp2[:m], out=delta[2 * m : 3 * m])  # dL/dr
        du_next.addcmul_(tmp3, r)
        gates = work[m : 3 * m]
        torch.addcmul(gates, gates, gates, value=-1, out=tmp2)
        delta[m : 3 * m].mul_(tmp2)
        self.grad_reset.addmm_(delta[:m], work[3 * m :].T)
        self.grad_first.addmm_(delta, x.T)
        if need_state_grad:
            du_next.addmm_(self.transposed, delta)
            self.grad_state, self.grad_state_next = du_next, du


class TrackedWindow(torch.autograd.Function):
    """Readouts ``[T, N]`` (without the offset) of the tracked window, differentiable in the
    cell matrices. ``inputs``: ``[T, a, N]`` event (and flag) rows; ``start``: ``[m, N]``;
    ``chunk``: states kept every ``chunk`` steps and recomputed in the backward (``chunk >= T``:
    every state kept, none recomputed; more memory, no faster on a CPU)."""

    @staticmethod
    def forward(ctx, cell, chunk, inputs, start, first, reset, readout):
        steps, a, n = inputs.shape
        m = start.shape[0]
        mats = (first, reset, readout)
        readouts = inputs.new_empty(steps, n)
        work = inputs.new_empty(work_rows(cell, m), n)
        chunk = max(1, min(chunk, steps))
        keep_all = chunk >= steps
        buffer = new_buffer(steps if keep_all else chunk, m, a, inputs)
        buffer[0, :m] = start
        boundaries = inputs.new_empty(0 if keep_all else -(-steps // chunk), m, n)
        if keep_all:
            buffer[:steps, m : m + a] = inputs
            buffer[steps, m : m + a] = 0
            forward_chunk(cell, buffer, steps, mats, work, readouts)
            ctx.save_for_backward(buffer, boundaries, first, reset, readout)
        else:
            for index, begin in enumerate(range(0, steps, chunk)):
                length = min(chunk, steps - begin)
                boundaries[index] = buffer[0, :m]
                buffer[:length, m : m + a] = inputs[begin : begin + length]
                forward_chunk(cell, buffer, length, mats, work, readouts[begin : begin + length])
                buffer[0, :m] = buffer[length, :m]
            ctx.save_for_backward(inputs, boundaries, first, reset, readout)
        ctx.cell, ctx.chunk, ctx.keep_all = cell, chunk, keep_all
        return readouts

    @staticmethod
    def backward(ctx, grad_readouts):
        stored, boundaries, first, reset, readout = ctx.saved_tensors
        cell, keep_all = ctx.cell, ctx.keep_all
        mats = (first, reset, readout)
        grad_readouts = grad_readouts.contiguous()
        steps, n = grad_readouts.shape
        m = readout.shape[0]
        # segments of at most `segment` steps; stored states, or recomputed from a boundary
        segment = 64 if keep_all else ctx.chunk
        space = _Backward(cell, mats, segment, grad_readouts)
        rows = space.grad_first.shape[0] - 1
        if keep_all:
            buffer, a = stored, stored.shape[1] - m - 1
            work = grad_readouts.new_empty(work_rows(cell, m), n)
        else:
            a = stored.shape[1]
            buffer = new_buffer(segment, m, a, grad_readouts)
            work = grad_readouts.new_empty(segment, work_rows(cell, m), n)
        last = grad_readouts[steps - 1]
        torch.outer(readout, last, out=space.grad_state)
        final_state = None
        for begin in reversed(range(0, steps, segment)):
            length = min(segment, steps - begin)
            if keep_all:
                slots, offset = buffer, begin
            else:
                slots, offset = buffer, 0
                slots[0, :m] = boundaries[begin // segment]
                slots[:length, m : m + a] = stored[begin : begin + length]
                forward_chunk(cell, slots, length, mats, work, None)
            if final_state is None:
                final_state = slots[offset + length, :m].clone()
            delta = space.delta
            if begin > 0:
                delta[:length, rows] = grad_readouts[begin - 1 : begin + length - 1]
            else:
                delta[0, rows] = 0
                delta[1:length, rows] = grad_readouts[: length - 1]
            for i in reversed(range(length)):
                x = slots[offset + i]
                step_work = work
                if cell == "gru" and keep_all:
                    gru_gates(x, first, reset, work)  # recomputed: cheaper than storing gates
                elif cell == "gru":
                    step_work = work[i]
                space.step(delta[i], x, slots[offset + i + 1, :m], step_work, begin + i > 0)
        grad_readout = space.grad_first[rows, :m] + final_state @ last
        grad_reset = space.grad_reset if cell == "gru" else None
        return None, None, None, None, space.grad_first[:rows], grad_reset, grad_readout
