"""Initial weight matrices for the degeneracy experiments: Gaussian, Fold k, orthogonal x g.

Every matrix is square (n x n) and stored as (out, in), so ``h_next = W @ h``. All randomness
comes from an explicit ``torch.Generator``. An initialization is described by an ``InitSpec``,
which can be parsed from a short name (the names used on the command line and in outputs):

- ``gaussian``      entries N(0, 1/n) (the standard 1/sqrt(n) initialization; same as ``fold0``);
- ``fold<k>``       a Gaussian matrix folded k times (``fold1``: rank n/2, see ``fold_matrix``);
- ``orthogonal``    a Haar-random orthogonal matrix (``orthogonal-fold<k>``: folded k times);
- ``<name>-x<g>``   any of the above multiplied by the gain g (``orthogonal-x0.8``,
                    ``gaussian-x1.4142`` for the critical ReLU scale).

The fold axis is not part of the name; it is a separate argument (``rows`` or ``columns``) that
every experiment states in its outputs. Part 3 (the synapse RNN) applies the same specs to its
recurrent matrix through ``initialize_square_matrix`` / ``apply_initialization_``.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from dataclasses import dataclass

import numpy as np
import torch

FOLD_AXES = ("rows", "columns")
INIT_NAME_HELP = (
    "fold<k> (e.g. fold0, fold1), gaussian, orthogonal, orthogonal-fold<k>, each optionally "
    "followed by -x<gain> (e.g. orthogonal-x0.8)"
)
_INIT_NAME_PATTERN = re.compile(
    r"^(?P<base>gaussian|orthogonal(?:-fold(?P<orthogonal_k>\d+))?|fold(?P<k>\d+))"
    r"(?:-x(?P<gain>[0-9]*\.?[0-9]+(?:e[-+]?\d+)?))?$"
)


@dataclass(frozen=True)
class InitSpec:
    """How to draw one initial square matrix.

    ``kind`` is ``"gaussian"`` or ``"orthogonal"``; ``fold_k`` folds the drawn matrix k times
    along the experiment's fold axis; ``gain`` multiplies the result.
    """

    kind: str = "gaussian"
    fold_k: int = 0
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("gaussian", "orthogonal"):
            raise ValueError(f"unknown init kind {self.kind!r}; allowed: 'gaussian', 'orthogonal'")
        if self.fold_k < 0:
            raise ValueError(f"fold k must be >= 0, got {self.fold_k}")
        if not math.isfinite(self.gain) or self.gain <= 0:
            raise ValueError(f"init gain must be a finite number > 0, got {self.gain}")

    @property
    def name(self) -> str:
        """The short name that ``parse_init_spec`` turns back into this spec."""
        if self.kind == "orthogonal":
            base = "orthogonal" if self.fold_k == 0 else f"orthogonal-fold{self.fold_k}"
        else:
            base = f"fold{self.fold_k}"
        if self.gain == 1.0:
            return base
        gain = f"{self.gain:g}"  # 6 digits, unless they lose the gain (review, session 32)
        return f"{base}-x{gain if float(gain) == self.gain else repr(self.gain)}"

    def label(self, fold_axis: str = "rows") -> str:
        """A human-readable label for plots, stating the fold axis where it matters."""
        if self.kind == "orthogonal":
            text = "orthogonal"
            if self.fold_k:
                text += f", Fold {self.fold_k} ({fold_axis})"
        else:
            text = f"Fold {self.fold_k}" + (f" ({fold_axis})" if self.fold_k else "")
        return text if self.gain == 1.0 else f"{text} x {self.gain:g}"


def parse_init_spec(name: str) -> InitSpec:
    """Turn a short init name (``fold1``, ``orthogonal-x0.8``, ...) into an ``InitSpec``.

    Raises ``ValueError`` with one line naming the bad value and the allowed forms.
    """
    match = _INIT_NAME_PATTERN.match(name.strip().lower())
    if match is None:
        raise ValueError(f"unknown init {name!r}; allowed: {INIT_NAME_HELP}")
    gain = float(match["gain"]) if match["gain"] is not None else 1.0
    if match["base"].startswith("orthogonal"):
        fold_k = int(match["orthogonal_k"]) if match["orthogonal_k"] is not None else 0
        return InitSpec(kind="orthogonal", fold_k=fold_k, gain=gain)
    fold_k = int(match["k"]) if match["k"] is not None else 0
    return InitSpec(kind="gaussian", fold_k=fold_k, gain=gain)


def check_fold_axis(fold_axis: str) -> None:
    """Raise a one-line ``ValueError`` unless ``fold_axis`` is ``rows`` or ``columns``."""
    if fold_axis not in FOLD_AXES:
        raise ValueError(f"unknown fold axis {fold_axis!r}; allowed: 'rows', 'columns'")


def check_fold_fits_width(fold_k: int, width: int) -> None:
    """Raise a one-line ``ValueError`` unless folding k times can halve ``width`` k times."""
    if fold_k < 0:
        raise ValueError(f"fold k must be >= 0, got {fold_k}")
    if width % (2**fold_k) != 0:
        largest_k = (width & -width).bit_length() - 1  # exponent of the largest power of 2 in width
        raise ValueError(
            f"fold k={fold_k} needs a width divisible by 2^{fold_k}={2**fold_k}, "
            f"but width is {width}; allowed k for width {width}: 0..{largest_k}"
        )


def fold_matrix(weight: torch.Tensor, fold_k: int, axis: str = "rows") -> torch.Tensor:
    """Fold a matrix k times along ``axis`` and return the folded copy.

    Fold 1 copies the first half of the rows (``axis="rows"``) or columns (``"columns"``) into
    the second half, so ``W[n/2:] == W[:n/2]`` and the rank drops to at most n/2. Fold k repeats
    the halving on the surviving block: the first n/2^k rows (columns) are tiled 2^k times, so
    the rank is at most n/2^k. The input is not modified.
    """
    check_fold_axis(axis)
    if weight.dim() != 2:
        raise ValueError(f"fold_matrix needs a 2-d matrix, got shape {tuple(weight.shape)}")
    dim = 0 if axis == "rows" else 1
    size = weight.shape[dim]
    check_fold_fits_width(fold_k, size)
    if fold_k == 0:
        return weight.clone()
    block = weight.narrow(dim, 0, size // 2**fold_k)
    repeats = (2**fold_k, 1) if dim == 0 else (1, 2**fold_k)
    return block.repeat(*repeats)


def gaussian_matrix(
    size: int, generator: torch.Generator, gain: float = 1.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A ``size x size`` matrix with i.i.d. N(0, gain^2 / size) entries."""
    return torch.randn(size, size, generator=generator, dtype=dtype) * (gain / math.sqrt(size))


def orthogonal_matrix(
    size: int, generator: torch.Generator, gain: float = 1.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A Haar-random ``size x size`` orthogonal matrix times ``gain``.

    QR of a Gaussian matrix, with the signs of R's diagonal moved into Q so the distribution is
    exactly Haar (plain QR is biased towards particular sign patterns).
    """
    gaussian = torch.randn(size, size, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return (q * signs.unsqueeze(0) * gain).to(dtype)


def initialize_square_matrix(
    spec: InitSpec,
    size: int,
    generator: torch.Generator,
    fold_axis: str = "rows",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw one ``size x size`` matrix as described by ``spec`` (fold, then gain)."""
    check_width(size)
    check_fold_axis(fold_axis)
    check_fold_fits_width(spec.fold_k, size)
    if spec.kind == "orthogonal":
        base = orthogonal_matrix(size, generator, dtype=dtype)
    else:
        base = gaussian_matrix(size, generator, dtype=dtype)
    return fold_matrix(base, spec.fold_k, fold_axis) * spec.gain


@torch.no_grad()
def apply_initialization_(
    weight: torch.Tensor, spec: InitSpec, generator: torch.Generator, fold_axis: str = "rows"
) -> torch.Tensor:
    """Overwrite a square weight (e.g. an RNN's recurrent matrix) in place; returns it."""
    if weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(weight.shape)}")
    drawn = initialize_square_matrix(spec, weight.shape[0], generator, fold_axis, weight.dtype)
    weight.copy_(drawn.to(weight.device))
    return weight


def check_depth(depth: int) -> None:
    """Raise a one-line ``ValueError`` unless ``depth >= 1``."""
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth}")


#: the largest seed a run takes: with its named streams (``config.SEED_STREAMS``) added it stays
#: within torch's 64-bit seeds
MAX_SEED = 2**62
#: the largest seed of a study: its sampler takes the seed itself, and Optuna's samplers (numpy's
#: RandomState) take at most 2**32 - 1
MAX_STUDY_SEED = 2**32 - 1


def check_seed(seed: int, maximum: int = MAX_SEED) -> None:
    """Raise a one-line ``ValueError`` unless ``seed`` is an integer in [0, maximum]."""
    # (review, session 32: NaN raised "cannot convert float NaN to integer", "3" read as 3)
    try:
        operator.index(seed)  # int, numpy and torch integers
        integral = True
    except TypeError:  # an integral float (JSON's 3.0, numpy's float32) is one too
        integral = isinstance(seed, numbers.Real) and float(seed).is_integer()
    if isinstance(seed, bool) or not integral or not 0 <= seed <= maximum:
        raise ValueError(f"seed = {seed!r} is not allowed: need an integer in [0, {maximum}]")


def check_width(width: int) -> None:
    """Raise a one-line ``ValueError`` unless ``width >= 2``."""
    if int(width) != width or width < 2:
        raise ValueError(f"width must be an integer >= 2, got {width}")


def generator_seed(seed: int) -> int:
    """The seed to give a torch generator for ``seed``: itself below 2**32, else mixed into 32
    bits by numpy's SeedSequence. The CPU generator keeps a seed's low 32 bits only, so seeds
    that differ above bit 31 drew the same numbers (review, session 38: cells of seed 7 and
    7 + 2**32 were one cell); seeds below 2**32 draw what they always drew."""
    seed = int(seed)
    if seed < 2**32:  # (as before: a negative one is torch's to take or refuse)
        return seed
    return int(np.random.SeedSequence([seed]).generate_state(1, np.uint32)[0])


def seeded_generator(*seed_parts: int) -> torch.Generator:
    """A CPU generator seeded from several integers (base seed, seed index, stream tag, ...).

    Mixing the parts through numpy's SeedSequence keeps nearby seeds' streams independent.
    """
    state = np.random.SeedSequence([int(part) for part in seed_parts]).generate_state(2)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator
