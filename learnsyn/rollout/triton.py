"""A Triton kernel for the tracked window on CUDA: ``learnsyn.rollout.native`` for the GPU.

One program owns ``BLOCK`` synapses (lanes) and runs them through every time step with the
state h (the cell's own, as in ``kernels.compiled_matrices``) in registers as
``[MP, BLOCK]`` tiles, ``MP`` the state size padded to 16 for ``tl.dot``; the per-step matrix
products are ``tl.dot`` in full float32 (``input_precision="ieee"``). The moments of the
weights are written per program and summed on the host (no atomics, so the result is
deterministic), and so are the weight gradients (in float64: the two branches' nearly cancel).
The backward recomputes the states chunk by chunk from checkpoints stored every ``K`` steps into
a scratch buffer, then walks the chunk in reverse, recomputing the gates of each step.
The ``mlp`` cell (``kernels.mlp_matrices``) keeps its hidden tanh units as ``[HP, BLOCK]`` tiles
(``HP`` the width padded to a power of two >= 16): its linear rows ``[D | B | d]`` take the
places of the tanh RNN's matrix and columns, its hidden rows ``2 [W | a]`` and the correction
``V / width`` travel in two more buffers, and the state is added, not folded into ``1 + D``
(as the native kernel does, for the slow variables' sake).
The ``bounded`` and ``noisy`` state constraints (``native.Constraint`` kinds 1 and 2) follow
every step, reading each step's numbers from the native kernel's blocked layout (the same
numbers the reference draws); their gradient is 1 where the constraint did not clip, 0 where it
did (straight through the rounding), and the backward recomputes the unconstrained step for it.

Requirements (``usable``): a CUDA device (or ``TRITON_INTERPRET=1``, which runs the kernels on
the CPU for the tests), float32, state size <= 32 (an mlp's width <= 64), and a block size (16
to 128) that divides the pairs per group (every program then lies in one group of one branch).
Without Triton installed this module still imports; ``available()`` is then False.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

# lanes per block of the constraint's numbers: the native kernel's layout, which both read
from learnsyn.rollout.native import LANES

try:  # Triton ships with the CUDA builds of torch; CPU-only machines usually lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = tl = None

MIN_BLOCK = 16
MAX_BLOCK = 128
MAX_STATE = 32
MAX_HIDDEN = 64  # the mlp cell's width: its [HP, BLOCK] tiles of hidden units

_failure: str | None = None if triton is not None else "Triton is not installed"


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available() -> bool:
    """True when Triton imported (the kernels compile on their first launch)."""
    return triton is not None


def failure() -> str | None:
    return _failure


def block_size(pairs: int, groups: int) -> int | None:
    """The largest power of two in [16, 128] dividing the pairs per group (None: none does)."""
    per_group = pairs // groups
    block = MAX_BLOCK
    while block >= MIN_BLOCK:
        if per_group % block == 0:
            return block
        block //= 2
    return None


def usable(like: torch.Tensor, state_size: int, pairs: int, groups: int, hidden: int = 0) -> bool:
    """Whether the kernels run these tensors (``hidden``: an mlp cell's width, else 0)."""
    on_device = like.device.type == "cuda" or (interpreting() and like.device.type == "cpu")
    return (
        on_device
        and like.dtype == torch.float32
        and state_size <= MAX_STATE
        and hidden <= MAX_HIDDEN
        and block_size(pairs, groups) is not None
        and available()
    )


if triton is not None:
    NOISE_LANES = tl.constexpr(LANES)  # a global a kernel reads must be a constexpr

    @triton.jit
    def weight_gradient(c, h, grad_moments_ptr, age, groups, cell):
        """``dL/dw`` of each lane's weight ``w = c . h`` at ``age`` (``[BLOCK]``): the moments'
        gradients of the program's cell, ``g1 + 2 g2 w`` (the sums of w and w^2)."""
        w = tl.sum(c[:, None] * h, axis=0)
        at = grad_moments_ptr + (age * 2 * groups + cell) * 2
        return tl.load(at) + 2.0 * tl.load(at + 1) * w

    @triton.jit
    def load_step(inputs_ptr, head_ptr, t, lanes, columns, N, A: tl.constexpr, HEAD: tl.constexpr):
        """Event and flag ``[BLOCK]`` of step t (the head's at step 0 when given)."""
        column = lanes % columns
        row = tl.cast(t * A, tl.int64) * columns  # int64: T x A x columns passes 2^31
        event = tl.load(inputs_ptr + row + column)
        if A == 2:
            flag = tl.load(inputs_ptr + row + columns + column)
        else:
            flag = event * 0.0
        if HEAD:
            first = t == 0
            event = tl.where(first, tl.load(head_ptr + lanes), event)
            if A == 2:
                flag = tl.where(first, tl.load(head_ptr + N + lanes), flag)
        return event, flag

    @triton.jit
    def affine_in(vec_ptr, block, event, flag, MP: tl.constexpr):
        """``V[block, 0] event + V[block, 1] flag + V[block, 2]`` as an ``[MP, BLOCK]`` tile."""
        rows = tl.arange(0, MP)
        ve = tl.load(vec_ptr + (block * 3 + 0) * MP + rows)
        vf = tl.load(vec_ptr + (block * 3 + 1) * MP + rows)
        vb = tl.load(vec_ptr + (block * 3 + 2) * MP + rows)
        return ve[:, None] * event[None, :] + vf[:, None] * flag[None, :] + vb[:, None]

    @triton.jit
    def gru_parts(h, event, flag, Wz, Wr, R, vec_ptr, MP: tl.constexpr):
        z = tl.sigmoid(
            tl.dot(Wz, h, input_precision="ieee") + affine_in(vec_ptr, 1, event, flag, MP)
        )
        r = tl.sigmoid(
            tl.dot(Wr, h, input_precision="ieee") + affine_in(vec_ptr, 2, event, flag, MP)
        )
        q = r * h
        s = tl.sigmoid(
            affine_in(vec_ptr, 0, event, flag, MP) + tl.dot(R, q, input_precision="ieee")
        )
        return z, r, q, s

    @triton.jit
    def rnn_next(h, event, flag, W0, vec_ptr, MP: tl.constexpr):
        pre = tl.dot(W0, h, input_precision="ieee") + affine_in(vec_ptr, 0, event, flag, MP)
        return 2.0 * tl.sigmoid(pre) - 1.0

    @triton.jit
    def load_tile(ptr, MP: tl.constexpr):
        rows = tl.arange(0, MP)
        return tl.load(ptr + rows[:, None] * MP + rows[None, :])

    @triton.jit
    def load_rect(ptr, ROWS: tl.constexpr, COLUMNS: tl.constexpr):
        rows, columns = tl.arange(0, ROWS), tl.arange(0, COLUMNS)
        return tl.load(ptr + rows[:, None] * COLUMNS + columns[None, :])

    @triton.jit
    def mlp_hidden(h, event, flag, Wh, hidden_ptr, MP: tl.constexpr, HP: tl.constexpr):
        """The mlp's hidden units ``tanh(W [h; x] + a) = 2 sigmoid(2 [W | a] [h; x; 1]) - 1``
        (``[HP, BLOCK]``; the packed rows hold the factor 2)."""
        units = tl.arange(0, HP)
        columns = hidden_ptr + HP * MP
        ve = tl.load(columns + units)
        vf = tl.load(columns + HP + units)
        vb = tl.load(columns + 2 * HP + units)
        pre = tl.dot(Wh, h, input_precision="ieee")
        pre += ve[:, None] * event[None, :] + vf[:, None] * flag[None, :] + vb[:, None]
        return 2.0 * tl.sigmoid(pre) - 1.0

    @triton.jit
    def mlp_next(h, y, event, flag, D, Vs, vec_ptr, MP: tl.constexpr):
        """``h' = [D | B | d] [h; x; 1] + (h + V y / width)``, in the native kernel's order."""
        linear = tl.dot(D, h, input_precision="ieee") + affine_in(vec_ptr, 0, event, flag, MP)
        return linear + (h + tl.dot(Vs, y, input_precision="ieee"))

    @triton.jit
    def clip(x, bound):
        """``x`` clipped to [-bound, bound], NaN kept (as ``torch.clamp``: a diverging state
        must not look finite)."""
        low = tl.maximum(x, -bound, propagate_nan=tl.PropagateNan.ALL)
        return tl.minimum(low, bound, propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def constrain_step(
        h,
        noise_ptr,
        t,
        lanes,
        noise_cols,
        noise_steps,
        valid,
        bound,
        spacing,
        sigma,
        M: tl.constexpr,
        MP: tl.constexpr,
        KIND: tl.constexpr,
    ):
        """Step t's state constraint on the unconstrained ``[MP, BLOCK]`` state ``h`` (KIND 1
        bounded, 2 noisy, as ``native.Constraint``): the constrained state and the derivative
        of the gradient's path (1 inside the range, else 0; straight through the rounding).
        Lane n reads column ``n % noise_cols`` of the blocked numbers
        ``[ceil(noise_cols / LANES), noise_steps, M, LANES]``."""
        column = lanes % noise_cols
        # int64: the numbers of a large window pass 2^31 (2^18 pairs, 2000 steps, m = 8)
        block, lane = (column // NOISE_LANES).to(tl.int64), column % NOISE_LANES
        offset = (block * noise_steps + t) * M * NOISE_LANES + lane
        rows = tl.arange(0, MP)
        where = noise_ptr + offset[None, :] + rows[:, None] * NOISE_LANES
        u = tl.load(where, mask=valid, other=0.0)
        if KIND == 1:
            inside = (h >= -bound) & (h <= bound)
            clipped = clip(h, bound)
            position = tl.div_rn(clipped + bound, spacing)
            lower = tl.floor(position)
            up = tl.where(u < position - lower, 1.0, 0.0)
            rounded = (lower + up) * spacing - bound
            out = clip(rounded, bound)
        else:
            noisy = h + sigma * u
            inside = (bound <= 0.0) | ((noisy >= -bound) & (noisy <= bound))
            out = tl.where(bound > 0.0, clip(noisy, bound), noisy)
        return tl.where(valid, out, 0.0), tl.where(inside, 1.0, 0.0)

    @triton.jit
    def forward_kernel(
        inputs_ptr,
        head_ptr,
        start_ptr,
        mat_ptr,
        vec_ptr,
        reset_ptr,
        readout_ptr,
        partial_ptr,
        bounds_ptr,
        final_ptr,
        noise_ptr,
        hidden_ptr,
        correction_ptr,
        N,
        T,
        K,
        columns,
        noise_cols,
        noise_steps,
        bound,
        spacing,
        sigma,
        M: tl.constexpr,
        MP: tl.constexpr,
        A: tl.constexpr,
        BLOCK: tl.constexpr,
        GRU: tl.constexpr,
        MLP: tl.constexpr,
        HP: tl.constexpr,
        HEAD: tl.constexpr,
        MOMENTS: tl.constexpr,
        BOUNDS: tl.constexpr,
        CONSTRAINT: tl.constexpr,
    ):
        pid = tl.program_id(0)
        programs = tl.num_programs(0)
        lanes = pid * BLOCK + tl.arange(0, BLOCK)
        rows = tl.arange(0, MP)
        valid = (rows < M)[:, None]
        tile = rows[:, None] * N + lanes[None, :]
        h = tl.load(start_ptr + tile, mask=valid, other=0.0)
        W0 = load_tile(mat_ptr, MP)
        Wz = load_tile(mat_ptr + MP * MP, MP)
        Wr = load_tile(mat_ptr + 2 * MP * MP, MP)
        R = load_tile(reset_ptr, MP)
        c = tl.load(readout_ptr + rows)
        if MLP:
            Wh = load_rect(hidden_ptr, HP, MP)
            Vs = load_rect(correction_ptr, MP, HP)
        for t in range(T):
            if BOUNDS:
                if t % K == 0:
                    tl.store(bounds_ptr + tl.cast(t // K, tl.int64) * M * N + tile, h, mask=valid)
            event, flag = load_step(inputs_ptr, head_ptr, t, lanes, columns, N, A, HEAD)
            if GRU:
                z, r, q, s = gru_parts(h, event, flag, Wz, Wr, R, vec_ptr, MP)
                h = h + z * (2.0 * s - 1.0 - h)
            elif MLP:
                y = mlp_hidden(h, event, flag, Wh, hidden_ptr, MP, HP)
                h = mlp_next(h, y, event, flag, W0, Vs, vec_ptr, MP)
            else:
                h = rnn_next(h, event, flag, W0, vec_ptr, MP)
            if CONSTRAINT != 0:
                h, _ = constrain_step(
                    h, noise_ptr, t, lanes, noise_cols, noise_steps, valid, bound, spacing,
                    sigma, M, MP, CONSTRAINT,
                )  # fmt: skip
            if MOMENTS:
                w = tl.sum(c[:, None] * h, axis=0)
                base = partial_ptr + (tl.cast(t, tl.int64) * programs + pid) * 2  # past 2^31
                tl.store(base, tl.sum(w, axis=0))
                tl.store(base + 1, tl.sum(w * w, axis=0))
        tl.store(final_ptr + tile, h, mask=valid)

    @triton.jit
    def backward_kernel(
        inputs_ptr,
        head_ptr,
        mat_ptr,
        vec_ptr,
        reset_ptr,
        readout_ptr,
        bounds_ptr,
        grad_moments_ptr,
        scratch_ptr,
        grad_mat_ptr,
        grad_vec_ptr,
        noise_ptr,
        hidden_ptr,
        correction_ptr,
        grad_hidden_ptr,
        N,
        T,
        K,
        columns,
        pairs,
        per_group,
        groups,
        noise_cols,
        noise_steps,
        bound,
        spacing,
        sigma,
        M: tl.constexpr,
        MP: tl.constexpr,
        A: tl.constexpr,
        BLOCK: tl.constexpr,
        GRU: tl.constexpr,
        MLP: tl.constexpr,
        HP: tl.constexpr,
        HEAD: tl.constexpr,
        CONSTRAINT: tl.constexpr,
    ):
        pid = tl.program_id(0)
        lanes = pid * BLOCK + tl.arange(0, BLOCK)
        rows = tl.arange(0, MP)
        valid = (rows < M)[:, None]
        tile = rows[:, None] * N + lanes[None, :]
        local = rows[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]
        scratch = scratch_ptr + tl.cast(pid, tl.int64) * (K + 1) * MP * BLOCK
        n0 = pid * BLOCK
        cell = (n0 // pairs) * groups + (n0 % pairs) // per_group
        W0 = load_tile(mat_ptr, MP)
        Wz = load_tile(mat_ptr + MP * MP, MP)
        Wr = load_tile(mat_ptr + 2 * MP * MP, MP)
        R = load_tile(reset_ptr, MP)
        c = tl.load(readout_ptr + rows)
        zero_tile = tl.zeros((MP, MP), dtype=tl.float32)
        zero_vec = tl.zeros((MP,), dtype=tl.float32)
        g_w0, g_wz, g_wr, g_r = zero_tile, zero_tile, zero_tile, zero_tile
        g_e0, g_f0, g_b0 = zero_vec, zero_vec, zero_vec
        g_ez, g_fz, g_bz = zero_vec, zero_vec, zero_vec
        g_er, g_fr, g_br = zero_vec, zero_vec, zero_vec
        g_c = zero_vec
        if MLP:  # the hidden rows [W | a] and the correction V / width
            Wh = load_rect(hidden_ptr, HP, MP)
            Vs = load_rect(correction_ptr, MP, HP)
            g_wh = tl.zeros((HP, MP), dtype=tl.float32)
            g_v = tl.zeros((MP, HP), dtype=tl.float32)
            g_eh = tl.zeros((HP,), dtype=tl.float32)
            g_fh, g_bh = g_eh, g_eh
        du = tl.zeros((MP, BLOCK), dtype=tl.float32)
        chunks = (T + K - 1) // K
        for back in range(chunks):
            chunk = chunks - 1 - back
            t0 = chunk * K
            length = tl.minimum(K, T - t0)
            corner = bounds_ptr + tl.cast(chunk, tl.int64) * M * N
            h = tl.load(corner + tile, mask=valid, other=0.0)
            tl.store(scratch + local, h)
            for s in range(length):
                event, flag = load_step(inputs_ptr, head_ptr, t0 + s, lanes, columns, N, A, HEAD)
                if GRU:
                    z, r, q, sv = gru_parts(h, event, flag, Wz, Wr, R, vec_ptr, MP)
                    h = h + z * (2.0 * sv - 1.0 - h)
                elif MLP:
                    y = mlp_hidden(h, event, flag, Wh, hidden_ptr, MP, HP)
                    h = mlp_next(h, y, event, flag, W0, Vs, vec_ptr, MP)
                else:
                    h = rnn_next(h, event, flag, W0, vec_ptr, MP)
                if CONSTRAINT != 0:
                    h, _ = constrain_step(
                        h, noise_ptr, t0 + s, lanes, noise_cols, noise_steps, valid, bound,
                        spacing, sigma, M, MP, CONSTRAINT,
                    )  # fmt: skip
                tl.store(scratch + (s + 1) * MP * BLOCK + local, h)
            if back == 0:  # the last state's weight
                dy = weight_gradient(c, h, grad_moments_ptr, T - 1, groups, cell)
                du = c[:, None] * dy[None, :]
                g_c += tl.sum(h * dy[None, :], axis=1)
            following = h
            for back_step in range(length):
                s = length - 1 - back_step
                t = t0 + s
                h = tl.load(scratch + s * MP * BLOCK + local)
                event, flag = load_step(inputs_ptr, head_ptr, t, lanes, columns, N, A, HEAD)
                if GRU:
                    z, r, q, sv = gru_parts(h, event, flag, Wz, Wr, R, vec_ptr, MP)
                    if CONSTRAINT != 0:  # through the constraint: 0 where it clipped
                        _, inside = constrain_step(
                            h + z * (2.0 * sv - 1.0 - h), noise_ptr, t, lanes, noise_cols,
                            noise_steps, valid, bound, spacing, sigma, M, MP, CONSTRAINT,
                        )  # fmt: skip
                        du = du * inside
                    d_s = 2.0 * du * z
                    d_z = du * (2.0 * sv - 1.0 - h) * z * (1.0 - z)
                    d_c = d_s * sv * (1.0 - sv)
                    d_q = tl.dot(tl.trans(R), d_c, input_precision="ieee")
                    d_r = d_q * h * r * (1.0 - r)
                    direct = du * (1.0 - z) + d_q * r
                    g_r += tl.dot(d_c, tl.trans(q), input_precision="ieee")
                    g_wz += tl.dot(d_z, tl.trans(h), input_precision="ieee")
                    g_wr += tl.dot(d_r, tl.trans(h), input_precision="ieee")
                    g_e0 += tl.sum(d_c * event[None, :], axis=1)
                    g_f0 += tl.sum(d_c * flag[None, :], axis=1)
                    g_b0 += tl.sum(d_c, axis=1)
                    g_ez += tl.sum(d_z * event[None, :], axis=1)
                    g_fz += tl.sum(d_z * flag[None, :], axis=1)
                    g_bz += tl.sum(d_z, axis=1)
                    g_er += tl.sum(d_r * event[None, :], axis=1)
                    g_fr += tl.sum(d_r * flag[None, :], axis=1)
                    g_br += tl.sum(d_r, axis=1)
                    du = direct + tl.dot(tl.trans(Wz), d_z, input_precision="ieee")
                    du += tl.dot(tl.trans(Wr), d_r, input_precision="ieee")
                elif MLP:
                    y = mlp_hidden(h, event, flag, Wh, hidden_ptr, MP, HP)
                    if CONSTRAINT != 0:  # the unconstrained step, and the constraint's path
                        _, inside = constrain_step(
                            mlp_next(h, y, event, flag, W0, Vs, vec_ptr, MP), noise_ptr, t,
                            lanes, noise_cols, noise_steps, valid, bound, spacing, sigma, M, MP,
                            CONSTRAINT,
                        )  # fmt: skip
                        du = du * inside
                    # tanh = 2 sigmoid(p) - 1 of the packed pre-activation p: d/dp = (1 - y^2) / 2
                    d_p = tl.dot(tl.trans(Vs), du, input_precision="ieee") * 0.5 * (1.0 - y * y)
                    g_v += tl.dot(du, tl.trans(y), input_precision="ieee")
                    g_wh += tl.dot(d_p, tl.trans(h), input_precision="ieee")
                    g_eh += tl.sum(d_p * event[None, :], axis=1)
                    g_fh += tl.sum(d_p * flag[None, :], axis=1)
                    g_bh += tl.sum(d_p, axis=1)
                    g_w0 += tl.dot(du, tl.trans(h), input_precision="ieee")
                    g_e0 += tl.sum(du * event[None, :], axis=1)
                    g_f0 += tl.sum(du * flag[None, :], axis=1)
                    g_b0 += tl.sum(du, axis=1)
                    du = (
                        du
                        + tl.dot(tl.trans(W0), du, input_precision="ieee")
                        + tl.dot(tl.trans(Wh), d_p, input_precision="ieee")
                    )
                else:
                    if CONSTRAINT != 0:  # the unconstrained step, and the constraint's path
                        following = rnn_next(h, event, flag, W0, vec_ptr, MP)
                        _, inside = constrain_step(
                            following, noise_ptr, t, lanes, noise_cols, noise_steps, valid,
                            bound, spacing, sigma, M, MP, CONSTRAINT,
                        )  # fmt: skip
                        du = du * inside
                    delta = du * 0.5 * (1.0 - following * following)
                    g_w0 += tl.dot(delta, tl.trans(h), input_precision="ieee")
                    g_e0 += tl.sum(delta * event[None, :], axis=1)
                    g_f0 += tl.sum(delta * flag[None, :], axis=1)
                    g_b0 += tl.sum(delta, axis=1)
                    du = tl.dot(tl.trans(W0), delta, input_precision="ieee")
                if t > 0:  # the weight of this state, at age t - 1
                    dy = weight_gradient(c, h, grad_moments_ptr, t - 1, groups, cell)
                    du += c[:, None] * dy[None, :]
                    g_c += tl.sum(h * dy[None, :], axis=1)
                following = h
        square = rows[:, None] * MP + rows[None, :]
        base = grad_mat_ptr + pid * 4 * MP * MP
        tl.store(base + square, g_w0)
        tl.store(base + MP * MP + square, g_wz)
        tl.store(base + 2 * MP * MP + square, g_wr)
        tl.store(base + 3 * MP * MP + square, g_r)
        vec = grad_vec_ptr + pid * 10 * MP
        tl.store(vec + 0 * MP + rows, g_e0)
        tl.store(vec + 1 * MP + rows, g_f0)
        tl.store(vec + 2 * MP + rows, g_b0)
        tl.store(vec + 3 * MP + rows, g_ez)
        tl.store(vec + 4 * MP + rows, g_fz)
        tl.store(vec + 5 * MP + rows, g_bz)
        tl.store(vec + 6 * MP + rows, g_er)
        tl.store(vec + 7 * MP + rows, g_fr)
        tl.store(vec + 8 * MP + rows, g_br)
        tl.store(vec + 9 * MP + rows, g_c)
        if MLP:  # [W | a] rows, their three columns, then V / width
            units = tl.arange(0, HP)
            out = grad_hidden_ptr + pid * (2 * HP * MP + 3 * HP)
            tl.store(out + units[:, None] * MP + rows[None, :], g_wh)
            tl.store(out + HP * MP + units, g_eh)
            tl.store(out + HP * MP + HP + units, g_fh)
            tl.store(out + HP * MP + 2 * HP + units, g_bh)
            tl.store(out + HP * MP + 3 * HP + rows[:, None] * HP + units[None, :], g_v)


def padded_state(m: int) -> int:
    return max(16, 1 << (m - 1).bit_length())


def hidden_units(cell: str, reset: torch.Tensor) -> int:
    """The mlp cell's width (its ``reset`` is ``V / width``, ``[m, width]``); 0 for the others."""
    return reset.shape[1] if cell == "mlp" else 0


def pack(cell: str, first: torch.Tensor, reset: torch.Tensor, readout: torch.Tensor, a: int):
    """The cell matrices as ``[3, MP, MP]`` state parts (candidate or RNN or the mlp's ``D``, z,
    r), ``[3, 3, MP]`` event, flag and bias columns, ``[MP, MP]`` reset map, ``[MP]`` readout,
    and the mlp's hidden rows (``[HP, MP]`` then three ``[HP]`` columns) and ``[MP, HP]``
    correction (one-element placeholders for the other cells)."""
    m = readout.shape[0]
    mp = padded_state(m)
    width = hidden_units(cell, reset)
    mats = first.new_zeros(3, mp, mp)
    vecs = first.new_zeros(3, 3, mp)
    blocks = 3 if cell == "gru" else 1
    for block in range(blocks):
        part = first[width + block * m : width + (block + 1) * m]
        mats[block, :m, :m] = part[:, :m]
        vecs[block, :, :m] = _columns(part, m, a)
    square = first.new_zeros(mp, mp)
    if cell == "gru":
        square[:m, :m] = reset
    line = first.new_zeros(mp)
    line[:m] = readout
    hidden = correction = first.new_zeros(1)
    if cell == "mlp":
        hp = padded_state(width)
        rows = first.new_zeros(hp, mp)
        rows[:width, :m] = first[:width, :m]
        columns = first.new_zeros(3, hp)
        columns[:, :width] = _columns(first[:width], m, a)
        hidden = torch.cat([rows.flatten(), columns.flatten()])
        correction = first.new_zeros(mp, hp)
        correction[:m, :width] = reset
    return mats.contiguous(), vecs.contiguous(), square, line, hidden, correction.contiguous()


def _columns(part: torch.Tensor, m: int, a: int) -> torch.Tensor:
    """The event, flag (zeros without flags) and bias columns of ``[rows, m + a + 1]``."""
    flag = part[:, m + 1] if a == 2 else torch.zeros_like(part[:, m])
    return torch.stack([part[:, m], flag, part[:, m + a]])


class Launch:
    """One window's arguments for the kernels (kept alive between forward and backward)."""

    def __init__(self, cell, mats, inputs, head, start, chunk, cells, constraint=None):
        first, reset, readout = (t.detach() for t in mats)
        # a native.Constraint (bounded 1, noisy 2) without its numbers, which are in self.noise
        # (``TritonWindow`` keeps them as a saved tensor between forward and backward)
        self.constraint = None if constraint is None else replace(constraint, noise=None)
        self.noise = None if constraint is None else constraint.noise.contiguous()
        self.cell, self.a = cell, inputs.shape[1]
        self.m = readout.shape[0]
        self.mp = padded_state(self.m)
        self.width = hidden_units(cell, reset)
        self.hp = padded_state(self.width) if self.width else 16
        self.packed = pack(cell, first, reset, readout, self.a)
        self.inputs = inputs.contiguous()
        self.head = None if head is None else head.contiguous()
        self.start = start.contiguous()
        self.steps, self.batch = inputs.shape[0], start.shape[1]
        self.chunk = max(1, min(chunk, self.steps))
        pairs, groups = cells if cells is not None else (self.batch // 2, 1)
        self.pairs, self.groups = pairs, groups
        self.block = block_size(pairs, groups) if cells is not None else _plain_block(self.batch)
        self.programs = self.batch // self.block

    def _common(self):
        return dict(
            M=self.m, MP=self.mp, A=self.a, BLOCK=self.block, GRU=self.cell == "gru",
            MLP=self.cell == "mlp", HP=self.hp,
        )  # fmt: skip

    def _constraint_arguments(self):
        """(noise, its columns, its steps, bound, spacing, sigma) and the kind, for the
        kernels (a placeholder pointer and kind 0 without a constraint)."""
        c, noise = self.constraint, self.noise
        if c is None:
            return (self.start, 1, 1, 0.0, 1.0, 0.0), 0
        if c.kind not in (1, 2):
            raise ValueError(f"the Triton kernel applies constraints 1 and 2, not {c.kind}")
        fits = noise is not None and noise.shape[1] >= self.steps and noise.shape[2] == self.m
        if not fits or noise.device != self.start.device or noise.dtype != torch.float32:
            raise ValueError("the constraint's numbers do not fit this window")
        return (noise, c.columns, noise.shape[1], c.bound, c.spacing, c.sigma), c.kind

    def forward(self, moments: bool, bounds: bool):
        new = self.start.new_empty
        partial = new(self.steps, self.programs, 2) if moments else new(1)
        chunks = -(-self.steps // self.chunk)
        boundaries = new(chunks, self.m, self.batch) if bounds else new(1)
        final = new(self.m, self.batch)
        head = self.head if self.head is not None else self.inputs
        mats, vecs, square, line, hidden, correction = self.packed
        (noise, *numbers), kind = self._constraint_arguments()
        forward_kernel[(self.programs,)](
            self.inputs,
            head,
            self.start,
            mats,
            vecs,
            square,
            line,
            partial,
            boundaries,
            final,
            noise,
            hidden,
            correction,
            self.batch,
            self.steps,
            self.chunk,
            self.inputs.shape[-1],
            *numbers,
            HEAD=self.head is not None,
            MOMENTS=moments,
            BOUNDS=bounds,
            CONSTRAINT=kind,
            **self._common(),
        )
        summed = None
        if moments:  # programs are ordered cell by cell: sum each cell's programs
            summed = partial.view(self.steps, 2 * self.groups, -1, 2).sum(2)
        return summed, (boundaries if bounds else None), final

    def backward(self, boundaries, grad_moments):
        """Gradients (first, reset, readout) of the moments; the programs' sums are added up
        in float64 (those of the two branches nearly cancel)."""
        mp, new = self.mp, self.start.new_zeros
        scratch = self.start.new_empty(self.programs * (self.chunk + 1) * mp * self.block)
        grad_mats = new(self.programs, 4, mp, mp)
        grad_vecs = new(self.programs, 10, mp)
        mlp_size = 2 * self.hp * mp + 3 * self.hp
        grad_hidden = new(self.programs, mlp_size) if self.width else new(1)
        head = self.head if self.head is not None else self.inputs
        mats, vecs, square, line, hidden, correction = self.packed
        (noise, *numbers), kind = self._constraint_arguments()
        backward_kernel[(self.programs,)](
            self.inputs,
            head,
            mats,
            vecs,
            square,
            line,
            boundaries,
            grad_moments.contiguous(),
            scratch,
            grad_mats,
            grad_vecs,
            noise,
            hidden,
            correction,
            grad_hidden,
            self.batch,
            self.steps,
            self.chunk,
            self.inputs.shape[-1],
            self.pairs,
            self.pairs // self.groups,
            self.groups,
            *numbers,
            HEAD=self.head is not None,
            CONSTRAINT=kind,
            **self._common(),
        )
        dtype = grad_mats.dtype
        summed = (grad.double().sum(0).to(dtype) for grad in (grad_mats, grad_vecs, grad_hidden))
        return self._unpack(*summed)

    def _unpack(self, grad_mats, grad_vecs, grad_hidden):
        m, a, width = self.m, self.a, self.width
        blocks = 3 if self.cell == "gru" else 1
        grad_first = self.start.new_zeros(width + blocks * m, m + a + 1)

        def put(part, square, columns):  # columns: event, flag, bias
            part[:, :m] = square
            part[:, m] = columns[0]
            if a == 2:
                part[:, m + 1] = columns[1]
            part[:, m + a] = columns[2]

        for block in range(blocks):
            part = grad_first[width + block * m : width + (block + 1) * m]
            put(part, grad_mats[block, :m, :m], grad_vecs[3 * block : 3 * block + 3, :m])
        grad_reset = None
        if self.cell == "gru":
            grad_first[:m, :m] = 0  # the candidate's state columns are constant zeros
            grad_reset = grad_mats[3, :m, :m].clone()
        elif width:
            hp, mp = self.hp, self.mp
            rows = grad_hidden[: hp * mp].view(hp, mp)
            columns = grad_hidden[hp * mp : hp * mp + 3 * hp].view(3, hp)
            put(grad_first[:width], rows[:width, :m], columns[:, :width])
            grad_reset = grad_hidden[hp * mp + 3 * hp :].view(mp, hp)[:m, :width].clone()
        return grad_first, grad_reset, grad_vecs[9, :m].clone()


def _plain_block(batch: int) -> int:
    block = MAX_BLOCK
    while block > 1 and batch % block:
        block //= 2
    if block < MIN_BLOCK:
        raise ValueError("the Triton kernel needs a batch divisible by 16")
    return block


def advance(cell, mats, inputs, head, start, cells=None, constraint=None, launcher=None):
    """Forward without gradient: (moments ``[T, 2 groups, 2]`` or None, final state);
    ``constraint``: a ``native.Constraint`` (bounded or noisy) with these steps' numbers;
    ``launcher``: the launch class (default ``Launch``, the tiles; or ``triton_lanes.
    LanesLaunch``)."""
    launcher = Launch if launcher is None else launcher
    launch = launcher(cell, mats, inputs, head, start, inputs.shape[0], cells, constraint)
    moments, _, final = launch.forward(cells is not None, False)
    return moments, final


class TritonWindow(torch.autograd.Function):
    """Same arguments and result as ``native.NativeWindow`` (without the saturation's
    ``scale``), on the GPU, after the launch class (``Launch`` or ``triton_lanes.
    LanesLaunch``)."""

    @staticmethod
    def forward(
        ctx, launcher, cell, chunk, cells, constraint, inputs, head, start, first, reset, readout
    ):
        mats = (first, reset, readout)
        launch = launcher(cell, mats, inputs, head, start, chunk, cells, constraint)
        moments, boundaries, _ = launch.forward(True, True)
        ctx.launch = launch
        # the constraint's numbers only as a saved tensor: autograd frees them after the last
        # backward (as ``native.NativeWindow`` does)
        noise, launch.noise = launch.noise, None
        saved = (first, reset, readout, launch.inputs, launch.head, boundaries, noise)
        ctx.save_for_backward(*saved)
        return moments

    @staticmethod
    def backward(ctx, grad_moments):
        first, reset, readout, _, _, boundaries, noise = ctx.saved_tensors
        ctx.launch.noise = noise
        try:
            grads = ctx.launch.backward(boundaries, grad_moments)
        finally:
            ctx.launch.noise = None
        grad_first, grad_reset, grad_readout = grads
        if not reset.numel():
            grad_reset = None
        return (None,) * 8 + (grad_first, grad_reset, grad_readout)
