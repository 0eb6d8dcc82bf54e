"""A compiled CPU kernel for the tracked window: the same mathematics as
``learnsyn.rollout.kernels``, with the loop order turned around.

The eager kernel steps all synapses through one time step per operation, so every state row
travels through memory a dozen times per step. Here a block of 32 synapses (two AVX-512
registers) runs through all its time steps while its state stays in the L1 cache; the backward
recomputes one chunk of states per block from the checkpoints, walks it in reverse and
multiplies the chunk's pre-activation gradients into per-lane weight-gradient sums, adding the
lanes up once per chunk. Where both branches of a pair read the same inputs or constraint
numbers, the blocks of the two branches run side by side, so that those are read once. The
moments of the weights are summed inside the kernel, so no ``[T, N]`` tensor is ever allocated
(fresh allocations cost a page fault per 4 KiB here).

The C source (``native.c`` beside this module, shipped as package data) is compiled once per
machine with the system
C compiler (``cc -O3 -march=native -ffast-math``, linked without it: see ``COMPILE_FLAGS``)
into a cache folder and loaded with ``ctypes``; where there is no compiler, or it fails,
``available()`` is False and the eager kernel is used (``LEARNSYN_NATIVE=0`` turns it off).
The ``mlp`` cell runs here only (``kernels.mlp_matrices``). Cells with the learned saturation
``s tanh(y / s)`` get the multipliers ``s`` (``out_scale``; the ``1 / s`` is folded into the
weights by ``kernels.compiled_matrices``), and their gradient.
Only float32 is compiled. The sigmoid uses an inline exponential (Taylor series to degree 7
after range reduction) and a reciprocal estimate refined by Newton's method, and sums run in
another order, so results equal the reference up to float rounding, not bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

LANES = 32  # synapses per block: two AVX-512 registers of float32
# -ffast-math at compile time only: linking a shared library with it adds crtfastmath.o, which
# turns on flush-to-zero for the whole process when the library loads (changing torch's own
# results); the kernels flush denormals themselves and restore the caller's state
COMPILE_FLAGS = ("-O3", "-march=native", "-funroll-loops", "-ffast-math", "-mrecip=all", "-fPIC")
LINK_FLAGS = ("-shared",)
MAX_STATE = 64
SOURCE = (Path(__file__).parent / "native.c").read_text()


_library: ctypes.CDLL | None = None
_failure: str | None = None


def cache_folder() -> Path:
    """Where compiled kernels are kept: ``$LEARNSYN_CACHE`` or ``~/.cache/learnsyn``."""
    root = os.environ.get("LEARNSYN_CACHE") or Path.home() / ".cache" / "learnsyn"
    return Path(root)


def _compiler_version(compiler: str) -> str:
    """The compiler's ``--version`` text (part of the cache key: a kernel built by another
    compiler is not reused; review, session 37), empty where it does not answer."""
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def _cpu_signature(compiler: str = "cc") -> str:
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if "flags" in line
        )
    except (OSError, StopIteration):
        flags = platform.processor()
    text = SOURCE + " ".join(COMPILE_FLAGS + LINK_FLAGS) + flags + platform.machine()
    text += compiler + _compiler_version(compiler)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Window(ctypes.Structure):
    """The C ``window_t``: one window's sizes, weights and inputs."""

    _fields_ = [
        *[(name, ctypes.c_int) for name in ("gru", "m", "a", "N", "T", "K", "columns", "cells")],
        *[
            (name, ctypes.c_void_p)
            for name in ("first", "reset", "readout", "inputs", "head", "lane_cell")
        ],
        ("constraint", ctypes.c_int),
        ("noise_cols", ctypes.c_int),
        *[(name, ctypes.c_float) for name in ("bound", "spacing", "sigma")],
        ("noise", ctypes.c_void_p),
        ("out_scale", ctypes.c_void_p),
        ("states", ctypes.c_int),
        ("hidden", ctypes.c_int),
    ]


@dataclass
class Constraint:
    """A state constraint the kernel applies after every step (``learnsyn.tasks.constrained``):
    ``kind`` 1 bounded (clip, stochastic rounding to levels ``spacing`` apart), 2 noisy
    (``sigma`` times the noise, then clip when ``bound > 0``), 3 none: the numbers are a Markov
    synapse's transition uniforms (the ``markov`` cell); ``noise``: ``[ceil(columns / LANES), T,
    m, LANES]`` (``blocked``), each step's rounding uniforms or Gaussian numbers by blocks of
    columns (lane ``n`` reads column ``n % columns``)."""

    kind: int
    bound: float
    spacing: float
    sigma: float
    noise: torch.Tensor
    columns: int


#: buffers for the constraint's numbers, kept between windows: a fresh buffer of that size costs
#: a page fault per 4 KiB on first touch (about 2.6 us here, 0.17 s for a window of 2000 steps)
_spare: list[torch.Tensor] = []
SPARE_BUFFERS = 3  # a training iteration: burn-in chunks, the window, the last chunk


def noise_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialized float32 CPU tensor of ``shape``, reusing a kept buffer that nothing else
    refers to (a view of it handed out counts as a reference to its storage)."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:
        return torch.empty(shape)
    numel = math.prod(shape)
    for index, base in enumerate(_spare):
        # 2: the kept tensor and the temporary storage object of this very call
        if base.numel() == numel and count(base.untyped_storage()._cdata) <= 2:
            _spare.append(_spare.pop(index))  # most recently used last
            return base.view(shape)
    base = torch.empty(numel)
    _spare.append(base)
    if len(_spare) > SPARE_BUFFERS:
        _spare.pop(0)
    return base.view(shape)


def blocked(numbers: torch.Tensor) -> torch.Tensor:
    """``[T, m, columns]`` -> the kernel's ``[ceil(columns / LANES), T, m, LANES]``."""
    steps, m, columns = numbers.shape
    padded = _pad(numbers, padded_width(columns))
    return padded.view(steps, m, -1, LANES).permute(2, 0, 1, 3)


def _compile() -> ctypes.CDLL:
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    compiler = os.environ.get("CC", "cc")
    target = folder / f"rollout_{_cpu_signature(compiler)}.so"
    if not target.exists():
        # built beside its target: os.replace cannot cross file systems (a /tmp on tmpfs and
        # a cache on disk turned the kernel off without a word; review, session 37)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as scratch:
            source = Path(scratch) / "rollout.c"
            source.write_text(SOURCE)
            built = Path(scratch) / "rollout.so"
            objects = Path(scratch) / "rollout.o"
            for command in (
                [compiler, *COMPILE_FLAGS, "-c", str(source), "-o", str(objects)],
                [compiler, *LINK_FLAGS, str(objects), "-o", str(built), "-lm"],
            ):
                subprocess.run(command, check=True, capture_output=True, timeout=120)
            os.replace(built, target)  # atomic: a concurrent process sees all or nothing
    library = ctypes.CDLL(str(target))
    pointer = ctypes.c_void_p
    library.window_forward.argtypes = [ctypes.POINTER(_Window)] + [pointer] * 4
    library.window_backward.argtypes = [ctypes.POINTER(_Window)] + [pointer] * 6
    library.window_forward.restype = library.window_backward.restype = ctypes.c_int
    library.draw_steps.argtypes = (
        [pointer, pointer] + [ctypes.c_int] * 7 + [pointer] * 2 + [ctypes.c_int] * 2
    )
    library.draw_steps.restype = ctypes.c_int
    return library


def available() -> bool:
    """True when the kernel is compiled (or compiles now) and loads; False disables it."""
    global _library, _failure
    if os.environ.get("LEARNSYN_NATIVE", "1") == "0":
        return False
    if _library is None and _failure is None:
        try:
            _library = _compile()
        except (OSError, subprocess.SubprocessError) as error:
            _failure = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"the native CPU kernel is not available ({_failure}): rollouts take the "
                "slower paths (the same numbers up to rounding); LEARNSYN_NATIVE=0 turns it "
                "off without this warning",
                stacklevel=2,
            )
    return _library is not None


def failure() -> str | None:
    """Why the kernel is not available (None when it is, or was not tried)."""
    return _failure


def usable(inputs_like: torch.Tensor, state_size: int) -> bool:
    """Whether a window with these tensors can run here (float32 CPU, small enough state)."""
    return (
        inputs_like.device.type == "cpu"
        and inputs_like.dtype == torch.float32
        and state_size <= MAX_STATE
        and available()
    )


def lane_cells(pairs: int, groups: int, width: int) -> torch.Tensor:
    """Cell ``branch * groups + group`` of every lane of the tracked window (``-1``: padding)."""
    lanes = torch.arange(width, dtype=torch.int64)
    per_group = pairs // groups
    cells = (lanes // pairs) * groups + (lanes % pairs) // per_group
    return torch.where(lanes < 2 * pairs, cells, -1).to(torch.int32)


def padded_width(batch: int) -> int:
    return -(-batch // LANES) * LANES


def _pad(tensor: torch.Tensor | None, width: int) -> torch.Tensor | None:
    if tensor is None:
        return None
    extra = width - tensor.shape[-1]
    tensor = tensor if extra == 0 else torch.nn.functional.pad(tensor, (0, extra))
    return tensor.contiguous()


def _ptr(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None or tensor.numel() == 0 else tensor.data_ptr()


class Window:
    """One call's arguments, padded to whole blocks of ``LANES`` lanes and kept alive.

    ``inputs``: ``[T, a, columns]`` with ``columns`` the batch, or half of it when both branches
    of every pair share their inputs (then ``head``, ``[a, batch]``, holds step 0's inputs);
    ``start``: ``[m, batch]``; ``cells``: ``(pairs, groups)`` to accumulate the moments of the
    weights, or None; ``mats``: ``first``, ``reset`` and the model's readout weights ``c``
    (``w = c . h``, computed as ``c . (2u - 1)``), and optionally the saturation's output
    multipliers ``s`` (``[m]``, or None: plain tanh; see ``kernels.compiled_matrices``).
    The ``markov`` cell (forward only): ``start`` ``[1, batch]`` holds the state indices,
    ``mats`` the cumulative transition tables of positive events above those of negative ones
    ``[2 S, S]``, nothing, and the weight of every state ``[S]``; its ``constraint`` (kind 3)
    every step's transition uniforms. The ``mlp`` cell: ``first`` ``[H + m, m + a + 1]`` (the
    hidden rows ``[2W | 2a]``, then ``[D | B | d]``), ``reset`` ``V / width`` ``[m, H]``."""

    def __init__(self, cell, mats, inputs, head, start, chunk, cells, constraint=None):
        scale = mats[3] if len(mats) > 3 else None
        first, reset, readout = (t.detach().contiguous() for t in mats[:3])
        if scale is not None:
            scale = scale.detach().to(torch.float32).contiguous()
            if scale.shape != (start.shape[0],):
                raise ValueError("the output multipliers must be one per state variable")
        steps, a, columns = inputs.shape
        m, batch = start.shape
        width = padded_width(batch)
        shared = columns != batch
        if shared and (columns % LANES or width != batch):
            raise ValueError("shared inputs need a batch of whole blocks")
        self.keep = [first, reset, readout, scale]
        self.scale = scale
        self.inputs = inputs.contiguous() if shared else _pad(inputs, width)
        self.head = _pad(head, width)
        self.start = _pad(start, width)
        self.batch, self.width, self.steps, self.m = batch, width, steps, m
        self.cells = None if cells is None else lane_cells(*cells, width)
        count = 0 if cells is None else 2 * cells[1]
        if constraint is not None:
            noise = constraint.noise.contiguous()
            blocks = -(-constraint.columns // LANES)
            if noise.shape != (blocks, steps, m, LANES) or noise.dtype != torch.float32:
                raise ValueError("the constraint's numbers must be [blocks, T, m, LANES] float32")
            self.noise = noise
        else:
            self.noise = None
        self.struct = _Window(
            {"rnn": 0, "gru": 1, "linear": 2, "markov": 3, "mlp": 4}[cell],
            m,
            a,
            width,
            steps,
            max(1, min(chunk, steps)),
            self.inputs.shape[-1],
            count,
            _ptr(first),
            _ptr(reset),
            _ptr(readout),
            _ptr(self.inputs),
            _ptr(self.head),
            _ptr(self.cells),
            0 if constraint is None else constraint.kind,
            0 if constraint is None else constraint.columns,
            0.0 if constraint is None else constraint.bound,
            0.0 if constraint is None else constraint.spacing,
            0.0 if constraint is None else constraint.sigma,
            _ptr(self.noise),
            _ptr(scale),
            readout.numel() if cell == "markov" else 0,
            reset.shape[1] if cell == "mlp" else 0,
        )

    def forward(self, moments: bool, boundaries: bool):
        """Run: moments ``[T, cells, 2]``, boundaries ``[ceil(T / K), m, width]`` (each when
        asked for, else None) and the final state ``[m, batch]``."""
        new = self.start.new_zeros
        out_moments = new(self.steps, self.struct.cells, 2) if moments else None
        chunks = -(-self.steps // self.struct.K)
        out_bounds = self.start.new_empty(chunks, self.m, self.width) if boundaries else None
        final = self.start.new_empty(self.m, self.width)
        code = _library.window_forward(
            ctypes.byref(self.struct),
            _ptr(self.start),
            _ptr(out_moments),
            _ptr(out_bounds),
            _ptr(final),
        )
        if code:
            raise RuntimeError("the native rollout kernel refused its arguments")
        return out_moments, out_bounds, final[:, : self.batch]

    def backward(
        self, boundaries, grad_moments, grad_first, grad_reset, grad_readout, grad_scale=None
    ):
        """Add the gradients of the moments to the given tensors (``grad_scale``: that of the
        output multipliers, needed when the window has them)."""
        code = _library.window_backward(
            ctypes.byref(self.struct),
            _ptr(boundaries),
            _ptr(grad_moments.contiguous()),
            _ptr(grad_first),
            _ptr(grad_reset),
            _ptr(grad_readout),
            _ptr(grad_scale),
        )
        if code:
            raise RuntimeError("the native rollout kernel refused its arguments")


def advance(cell, mats, inputs, head, start, cells=None, constraint=None):
    """Forward without gradient: (moments ``[T, cells, 2]`` or None, final state)."""
    window = Window(cell, mats, inputs, head, start, inputs.shape[0], cells, constraint)
    moments, _, final = window.forward(cells is not None, False)
    return moments, final


class NativeWindow(torch.autograd.Function):
    """Moments ``[T, 2 groups, 2]`` (sums of w and w^2 per branch and group at every age) of
    the tracked window, differentiable in ``first``, ``reset``, the readout weights and the
    saturation's output multipliers ``scale`` (``[m]``, or None: plain tanh)."""

    @staticmethod
    def forward(
        ctx, cell, chunk, cells, constraint, inputs, head, start, first, reset, weights, scale=None
    ):
        mats = (first, reset, weights, scale)
        window = Window(cell, mats, inputs, head, start, chunk, cells, constraint)
        moments, boundaries, _ = window.forward(True, True)
        ctx.window = window
        ctx.scaled = scale is not None
        # saved through autograd (not only held by the window) so that memory probes see them
        ctx.save_for_backward(
            first, reset, weights, window.inputs, window.head, boundaries, window.noise
        )
        # the constraint's numbers live on only as a saved tensor: autograd frees it after the
        # backward, and its buffer can serve the next window (``noise_buffer``)
        window.noise = None
        return moments

    @staticmethod
    def backward(ctx, grad_moments):
        first, reset, weights, _, _, boundaries, noise = ctx.saved_tensors
        # row-major, as the kernel writes them: zeros_like kept a transposed parameter's
        # strides, and its gradient came back transposed (review, session 35)
        grads = [torch.zeros(t.shape, dtype=t.dtype) for t in (first, reset, weights)]
        grad_scale = torch.zeros(ctx.window.scale.shape) if ctx.scaled else None
        ctx.window.backward(boundaries, grad_moments, *grads, grad_scale)  # reads noise's memory
        del noise
        grad_reset = grads[1] if reset.numel() else None
        return (None,) * 7 + (grads[0], grad_reset, grads[2], grad_scale)


#: bytes of ``torch.Generator.get_state()`` on the CPU and where its mt19937 fields lie
_STATE_BYTES, _LEFT, _NEXT, _WORDS = 5056, 8, 16, 24


def draw_steps(
    generator: torch.Generator,
    steps: int,
    pairs: int,
    per_step: int,
    *,
    size: int = 0,
    mode: int = 0,
    events_from: int = 0,
    ideal: bool = False,
    noise: torch.Tensor | None = None,
    at: int = 0,
) -> torch.Tensor | None:
    """``steps`` steps of a window's random numbers, drawn as the reference's calls draw them
    (from step ``events_from`` on ``rand(pairs, per_step)`` for the events, then, ``mode`` 1,
    ``rand(pairs, size)`` or, ``mode`` 2, ``randn(pairs, size)`` for a constraint) but made by
    the compiled copy of the CPU generator; the generator's state moves on as it would.
    The constraint's numbers go to steps ``at ..`` of ``noise`` (``[blocks, T, size, LANES]``,
    see ``Constraint``). Returns the events' uniforms ``[steps - events_from, pairs,
    per_step]`` (``ideal``: the ideal scenario's events, +1 below 1/2 and -1 above, ``[..,
    pairs]``), or None where this cannot be done exactly (then draw through torch)."""
    if not (available() and generator.device.type == "cpu"):
        return None
    if mode and torch.get_default_dtype() != torch.float32:
        return None  # the constraint's numbers come in the default dtype
    if (mode == 2 and (pairs * size) % 16) or (ideal and per_step != 1):
        return None
    state = generator.get_state()
    if state.numel() != _STATE_BYTES:
        return None
    raw = state.numpy()
    words = raw[_WORDS : _WORDS + 8 * 624].view("<u8").astype("<u4")
    left = int(raw[_LEFT : _LEFT + 4].view("<i4")[0])
    following = int(raw[_NEXT : _NEXT + 8].view("<u8")[0])
    mt = torch.from_numpy(words.copy())
    counters = torch.tensor([left, following], dtype=torch.int32)
    shape = (max(steps - events_from, 0), pairs) + (() if ideal else (per_step,))
    events = torch.empty(shape)
    if mode and (noise is None or not noise.is_contiguous() or noise.shape[1] < at + steps):
        raise ValueError("the constraint numbers' buffer is too short or not contiguous")
    code = _library.draw_steps(
        mt.data_ptr(), counters.data_ptr(), steps, pairs, per_step, size, mode,
        events_from, int(ideal), _ptr(events), _ptr(noise) if mode else None,
        noise.shape[1] if mode else 0, at,
    )  # fmt: skip
    if code:
        return None
    raw = raw.copy()
    raw[_WORDS : _WORDS + 8 * 624] = mt.numpy().astype("<u8").view("u1")
    raw[_LEFT : _LEFT + 4] = counters[:1].numpy().view("u1")
    raw[_NEXT : _NEXT + 8] = counters[1:].numpy().astype("<u8").view("u1")
    generator.set_state(torch.from_numpy(raw))
    return events
