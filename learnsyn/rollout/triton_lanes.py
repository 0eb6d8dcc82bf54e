"""GRU kernels for CUDA with each synapse's whole state in one GPU thread (small states).

``learnsyn.rollout.triton`` keeps the state as ``[16, BLOCK]`` tiles and does its products with
``tl.dot``: the operands travel through shared memory every step (layout conversions and
barriers), the state is padded to 16 rows (at m = 8 half the work is on zeros), and the weight
gradients are contracted over the block's lanes every step. Here the state of a lane lives in
the registers of one thread (``[MP, BLOCK]`` tensors whose rows stay inside a thread, ``MP`` the
state size rounded up to a power of two): a matrix-vector product is a sum over an axis that a
thread holds, so no step touches shared memory or waits at a barrier. The weight gradients are
summed per lane in registers (``[MP, MP, BLOCK]``) and over lanes once, at the end. Their
registers grow as m^2; ``parts`` splits the backward into launches that each accumulate one
group of gradients (z gate, r gate, candidate and readout), each repeating the recurrence.

Same arguments, random numbers and results as ``triton.Launch`` (the GRU, with the ``bounded``
and ``noisy`` constraints as the tiles apply them). ``learnsyn.rollout`` takes these kernels for
a GRU of at most ``MAX_STATE`` variables (``fits``), the tiles otherwise: on one H200 (docs/
performance.md) they ran a state of 2 at 1.2e10 synapse-steps/s forward plus backward against
1.3e9 for the tiles, while at 8 variables their per-lane gradient sums spill out of the registers
(2.2e8 against 1.25e9); ptxas spills from 3 variables on.
"""

from __future__ import annotations

import torch

import learnsyn.rollout.triton as tiles

triton, tl = tiles.triton, tiles.tl

MAX_STATE = 2  # the largest GRU state these kernels run (0: never; tools set it to compare)
# the launch settings, the fastest of gpu_checks' sweep at state 2 (H200, 2^18 pairs)
OPTIONS = {"block": 32, "warps": 1, "parts": 1, "reload": True}


def fits(cell: str, state_size: int) -> bool:
    """Whether ``learnsyn.rollout`` runs this cell on the lane kernels rather than the tiles."""
    return cell == "gru" and state_size <= MAX_STATE


def lane_rows(m: int) -> int:
    return 1 << max(0, (m - 1).bit_length())


if triton is not None:

    @triton.jit
    def _matrix(w_ptr, stride, MP: tl.constexpr, BLOCK: tl.constexpr):
        """The ``[MP, MP]`` matrix at ``w_ptr`` as ``[MP, MP, BLOCK]``, every lane reading the
        same addresses (L1 hits): loaded in the layout it is used in, a whole copy per thread,
        so no step converts it through shared memory."""
        rows = tl.arange(0, MP)
        spread = tl.zeros((BLOCK,), dtype=tl.int32)
        at = rows[:, None, None] * MP + rows[None, :, None] + spread[None, None, :]
        return tl.load(w_ptr + at * stride)

    @triton.jit
    def _shift(anchor_ptr, t, RELOAD: tl.constexpr):
        """0, read from memory at step t when ``RELOAD``: weights addressed through it cannot
        be hoisted out of the time loop into registers (a thread would hold every weight)."""
        if RELOAD:
            return tl.load(anchor_ptr + t)
        return 0

    @triton.jit
    def _step(h, event, flag, mats, vecs, resets, stride, MP: tl.constexpr, BLOCK: tl.constexpr):
        """The GRU's next state (unconstrained) and its gates."""
        z, r, q, s = _gates(h, event, flag, mats, vecs, resets, stride, MP, BLOCK)
        return h + z * (2.0 * s - 1.0 - h), z, r, q, s

    @triton.jit
    def _mv(w_ptr, stride, h, MP: tl.constexpr, BLOCK: tl.constexpr):
        """``W h``."""
        return tl.sum(_matrix(w_ptr, stride, MP, BLOCK) * h[None, :, :], axis=1)

    @triton.jit
    def _mtv(w_ptr, stride, d, MP: tl.constexpr, BLOCK: tl.constexpr):
        """``W^T d``."""
        return tl.sum(_matrix(w_ptr, stride, MP, BLOCK) * d[:, None, :], axis=0)

    @triton.jit
    def _affine(vec_ptr, block, event, flag, MP: tl.constexpr):
        rows = tl.arange(0, MP)
        ve = tl.load(vec_ptr + (block * 3 + 0) * MP + rows)
        vf = tl.load(vec_ptr + (block * 3 + 1) * MP + rows)
        vb = tl.load(vec_ptr + (block * 3 + 2) * MP + rows)
        return ve[:, None] * event[None, :] + vf[:, None] * flag[None, :] + vb[:, None]

    @triton.jit
    def _gates(
        h, event, flag, mat_ptr, vec_ptr, reset_ptr, stride, MP: tl.constexpr, BLOCK: tl.constexpr
    ):
        z = tl.sigmoid(
            _mv(mat_ptr + MP * MP, stride, h, MP, BLOCK) + _affine(vec_ptr, 1, event, flag, MP)
        )
        r = tl.sigmoid(
            _mv(mat_ptr + 2 * MP * MP, stride, h, MP, BLOCK) + _affine(vec_ptr, 2, event, flag, MP)
        )
        q = r * h
        s = tl.sigmoid(_affine(vec_ptr, 0, event, flag, MP) + _mv(reset_ptr, stride, q, MP, BLOCK))
        return z, r, q, s

    @triton.jit
    def lanes_forward(
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
        anchor_ptr,
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
        HEAD: tl.constexpr,
        MOMENTS: tl.constexpr,
        BOUNDS: tl.constexpr,
        RELOAD: tl.constexpr,
        CONSTRAINT: tl.constexpr,
    ):
        pid = tl.program_id(0)
        programs = tl.num_programs(0)
        lanes = pid * BLOCK + tl.arange(0, BLOCK)
        rows = tl.arange(0, MP)
        valid = (rows < M)[:, None]
        tile = rows[:, None] * N + lanes[None, :]
        h = tl.load(start_ptr + tile, mask=valid, other=0.0)
        c = tl.load(readout_ptr + rows)
        stride = tl.load(anchor_ptr + T)  # 1, unknown to the compiler: see _matrix
        for t in range(T):
            if BOUNDS:
                if t % K == 0:
                    tl.store(bounds_ptr + tl.cast(t // K, tl.int64) * M * N + tile, h, mask=valid)
            event, flag = tiles.load_step(inputs_ptr, head_ptr, t, lanes, columns, N, A, HEAD)
            shift = _shift(anchor_ptr, t, RELOAD)
            h, _, _, _, _ = _step(
                h, event, flag, mat_ptr + shift, vec_ptr + shift, reset_ptr + shift, stride,
                MP, BLOCK,
            )  # fmt: skip
            if CONSTRAINT != 0:
                h, _ = tiles.constrain_step(
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
    def lanes_backward(
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
        anchor_ptr,
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
        HEAD: tl.constexpr,
        ACC_Z: tl.constexpr,
        ACC_R: tl.constexpr,
        ACC_C: tl.constexpr,
        RELOAD: tl.constexpr,
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
        c = tl.load(readout_ptr + rows)
        stride = tl.load(anchor_ptr + T)  # 1, unknown to the compiler: see _matrix
        square = tl.zeros((MP, MP, BLOCK), dtype=tl.float32)
        line = tl.zeros((MP, BLOCK), dtype=tl.float32)
        # per-lane sums: the gate's matrix, then its event, flag and bias columns
        g_wz, g_ez, g_fz, g_bz = square, line, line, line
        g_wr, g_er, g_fr, g_br = square, line, line, line
        g_r, g_e0, g_f0, g_b0, g_c = square, line, line, line, line
        du = line
        chunks = (T + K - 1) // K
        for back in range(chunks):
            chunk = chunks - 1 - back
            t0 = chunk * K
            length = tl.minimum(K, T - t0)
            corner = bounds_ptr + tl.cast(chunk, tl.int64) * M * N
            h = tl.load(corner + tile, mask=valid, other=0.0)
            tl.store(scratch + local, h)
            for s in range(length):
                t = t0 + s
                event, flag = tiles.load_step(inputs_ptr, head_ptr, t, lanes, columns, N, A, HEAD)
                shift = _shift(anchor_ptr, t, RELOAD)
                h, _, _, _, _ = _step(
                    h, event, flag, mat_ptr + shift, vec_ptr + shift, reset_ptr + shift, stride,
                    MP, BLOCK,
                )  # fmt: skip
                if CONSTRAINT != 0:
                    h, _ = tiles.constrain_step(
                        h, noise_ptr, t, lanes, noise_cols, noise_steps, valid, bound, spacing,
                        sigma, M, MP, CONSTRAINT,
                    )  # fmt: skip
                tl.store(scratch + (s + 1) * MP * BLOCK + local, h)
            if back == 0:  # the last state's weight
                dy = tiles.weight_gradient(c, h, grad_moments_ptr, T - 1, groups, cell)
                du = c[:, None] * dy[None, :]
                if ACC_C:
                    g_c += h * dy[None, :]
            for back_step in range(length):
                s = length - 1 - back_step
                t = t0 + s
                h = tl.load(scratch + s * MP * BLOCK + local)
                event, flag = tiles.load_step(inputs_ptr, head_ptr, t, lanes, columns, N, A, HEAD)
                shift = _shift(anchor_ptr, t, RELOAD)
                mats, resets = mat_ptr + shift, reset_ptr + shift
                following, z, r, q, sv = _step(
                    h, event, flag, mats, vec_ptr + shift, resets, stride, MP, BLOCK
                )
                if CONSTRAINT != 0:  # through the constraint: 0 where it clipped
                    _, inside = tiles.constrain_step(
                        following, noise_ptr, t, lanes, noise_cols, noise_steps, valid, bound,
                        spacing, sigma, M, MP, CONSTRAINT,
                    )  # fmt: skip
                    du = du * inside
                d_s = 2.0 * du * z
                d_z = du * (2.0 * sv - 1.0 - h) * z * (1.0 - z)
                d_c = d_s * sv * (1.0 - sv)
                d_q = _mtv(resets, stride, d_c, MP, BLOCK)
                d_r = d_q * h * r * (1.0 - r)
                if ACC_C:
                    g_r += d_c[:, None, :] * q[None, :, :]
                    g_e0 += d_c * event[None, :]
                    g_f0 += d_c * flag[None, :]
                    g_b0 += d_c
                if ACC_Z:
                    g_wz += d_z[:, None, :] * h[None, :, :]
                    g_ez += d_z * event[None, :]
                    g_fz += d_z * flag[None, :]
                    g_bz += d_z
                if ACC_R:
                    g_wr += d_r[:, None, :] * h[None, :, :]
                    g_er += d_r * event[None, :]
                    g_fr += d_r * flag[None, :]
                    g_br += d_r
                du = du * (1.0 - z) + d_q * r
                du += _mtv(mats + MP * MP, stride, d_z, MP, BLOCK)
                du += _mtv(mats + 2 * MP * MP, stride, d_r, MP, BLOCK)
                if t > 0:  # the weight of this state, at age t - 1
                    dy = tiles.weight_gradient(c, h, grad_moments_ptr, t - 1, groups, cell)
                    du += c[:, None] * dy[None, :]
                    if ACC_C:
                        g_c += h * dy[None, :]
        square_at = rows[:, None] * MP + rows[None, :]
        base = grad_mat_ptr + pid * 4 * MP * MP
        vec = grad_vec_ptr + pid * 10 * MP
        if ACC_C:
            tl.store(base + 3 * MP * MP + square_at, tl.sum(g_r, axis=2))
            tl.store(vec + 0 * MP + rows, tl.sum(g_e0, axis=1))
            tl.store(vec + 1 * MP + rows, tl.sum(g_f0, axis=1))
            tl.store(vec + 2 * MP + rows, tl.sum(g_b0, axis=1))
            tl.store(vec + 9 * MP + rows, tl.sum(g_c, axis=1))
        if ACC_Z:
            tl.store(base + MP * MP + square_at, tl.sum(g_wz, axis=2))
            tl.store(vec + 3 * MP + rows, tl.sum(g_ez, axis=1))
            tl.store(vec + 4 * MP + rows, tl.sum(g_fz, axis=1))
            tl.store(vec + 5 * MP + rows, tl.sum(g_bz, axis=1))
        if ACC_R:
            tl.store(base + 2 * MP * MP + square_at, tl.sum(g_wr, axis=2))
            tl.store(vec + 6 * MP + rows, tl.sum(g_er, axis=1))
            tl.store(vec + 7 * MP + rows, tl.sum(g_fr, axis=1))
            tl.store(vec + 8 * MP + rows, tl.sum(g_br, axis=1))


class LanesLaunch(tiles.Launch):
    """``triton.Launch`` for the GRU on the lane-per-thread kernels.

    ``block``: lanes per program (a power of two; at most the largest that divides the pairs
    per group, which it then is); ``warps``: Triton's ``num_warps``; ``parts``: how many
    backward launches share the gradient groups (1, 2 or 3); ``reload``: read the weights every
    step (else the compiler keeps them in registers). Defaults: ``OPTIONS``."""

    def __init__(self, *args, **options):
        known = {key: options.pop(key) for key in list(options) if key in OPTIONS}
        super().__init__(*args, **options)
        settings = {**OPTIONS, **known}
        if self.cell != "gru":
            raise ValueError(f"the lane kernels run the GRU, not {self.cell!r}")
        if settings["parts"] not in (1, 2, 3):
            raise ValueError(f"parts must be 1, 2 or 3, not {settings['parts']}")
        block = settings["block"]
        if block & (block - 1) or not tiles.MIN_BLOCK <= block <= tiles.MAX_BLOCK:
            raise ValueError(f"block must be a power of two in [16, 128], not {block}")
        self.block = min(block, self.block)
        self.programs = self.batch // self.block
        self.warps, self.parts = settings["warps"], settings["parts"]
        self.reload = bool(settings["reload"])
        # a zero per step (``_shift``), then the weights' stride 1 (``_matrix``)
        self.anchor = torch.zeros(self.steps + 1, dtype=torch.int32, device=self.start.device)
        self.anchor[-1] = 1
        mp = self.lane_mp = lane_rows(self.m)
        mats, vecs, square, line, _, _ = self.packed
        self.lane_packed = (
            mats[:, :mp, :mp].contiguous(),
            vecs[:, :, :mp].contiguous(),
            square[:mp, :mp].contiguous(),
            line[:mp].contiguous(),
        )

    def _sizes(self, kind: int):
        return dict(
            M=self.m, MP=self.lane_mp, A=self.a, BLOCK=self.block, HEAD=self.head is not None,
            RELOAD=self.reload, CONSTRAINT=kind, num_warps=self.warps,
        )  # fmt: skip

    def forward(self, moments: bool, bounds: bool):
        new = self.start.new_empty
        partial = new(self.steps, self.programs, 2) if moments else new(1)
        chunks = -(-self.steps // self.chunk)
        boundaries = new(chunks, self.m, self.batch) if bounds else new(1)
        final = new(self.m, self.batch)
        head = self.head if self.head is not None else self.inputs
        (noise, *numbers), kind = self._constraint_arguments()
        lanes_forward[(self.programs,)](
            self.inputs, head, self.start, *self.lane_packed, partial, boundaries, final, noise,
            self.anchor, self.batch, self.steps, self.chunk, self.inputs.shape[-1], *numbers,
            MOMENTS=moments, BOUNDS=bounds, **self._sizes(kind),
        )  # fmt: skip
        summed = None
        if moments:
            summed = partial.view(self.steps, 2 * self.groups, -1, 2).sum(2)
        return summed, (boundaries if bounds else None), final

    def backward(self, boundaries, grad_moments):
        mp, lane_mp = self.mp, self.lane_mp
        scratch = self.start.new_empty(self.programs * (self.chunk + 1) * lane_mp * self.block)
        grad_mats = self.start.new_zeros(self.programs, 4, lane_mp, lane_mp)
        grad_vecs = self.start.new_zeros(self.programs, 10, lane_mp)
        head = self.head if self.head is not None else self.inputs
        (noise, *numbers), kind = self._constraint_arguments()
        # the gradient groups of each launch: z gate, r gate, candidate (with the readout)
        split = {1: ("zrc",), 2: ("zr", "c"), 3: ("z", "r", "c")}[self.parts]
        grad_moments = grad_moments.contiguous()
        for part in split:
            lanes_backward[(self.programs,)](
                self.inputs, head, *self.lane_packed, boundaries, grad_moments, scratch,
                grad_mats, grad_vecs, noise, self.anchor, self.batch, self.steps, self.chunk,
                self.inputs.shape[-1], self.pairs, self.pairs // self.groups, self.groups,
                *numbers, ACC_Z="z" in part, ACC_R="r" in part, ACC_C="c" in part,
                **self._sizes(kind),
            )  # fmt: skip
        # the programs' sums in float64 (the two branches' nearly cancel), in the tiles' layout
        mats = grad_mats.new_zeros(4, mp, mp, dtype=torch.float64)
        vecs = grad_vecs.new_zeros(10, mp, dtype=torch.float64)
        mats[:, :lane_mp, :lane_mp] = grad_mats.double().sum(0)
        vecs[:, :lane_mp] = grad_vecs.double().sum(0)
        dtype = grad_mats.dtype
        return self._unpack(mats.to(dtype), vecs.to(dtype), grad_mats.new_zeros(1))
