"""The settings of the deep-linear experiment (``DeepLinearConfig``), shared by the experiment
(``deep_linear``), its claims (``deep_linear_claims``) and its report (``deep_linear_report``).

Kept apart from the training code so that the report and the claims never import the experiment
(the experiment imports them to write its outputs).

Two schedules are defined here:
- gradient norms are recorded at ``gradient_epochs`` (the post's "at initialization and after the
  first few epochs", shown per layer) and at about ``gradient_points`` log-spaced epochs through
  the whole run (shown over training), plus the two ends of the judgement window;
- the claims are judged at absolute epochs, ``judge_window = (start, end)``: losses are compared
  at ``end`` and the plateau is the loss drop from ``start`` to ``end``. A run shorter than
  ``end`` epochs gets "no verdict: run too short to judge" instead of a verdict that would
  depend on its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from learnsyn.config import setting
from learnsyn.degeneracy.measures import DEFAULT_SMALL_VALUE_THRESHOLD
from learnsyn.initialization import (
    INIT_NAME_HELP,
    InitSpec,
    check_depth,
    check_fold_axis,
    check_fold_fits_width,
    check_seed,
    check_width,
    parse_init_spec,
)

OPTIMIZERS = ("adam", "sgd")
DEFAULT_CONDITIONS = ("fold0", "fold1", "orthogonal", "orthogonal-x0.8")


@dataclass
class DeepLinearConfig:
    """Everything that defines one deep-linear run (saved as config.json next to the outputs).

    The post did not publish learning rate, epochs, sample size, input distribution or teacher
    scale; the defaults here are our choice (see docs/degeneracy-results.md for the reasoning).
    """

    depth: int = setting(30, "number of layers")
    width: int = setting(64, "units per layer")
    conditions: tuple[str, ...] = setting(
        DEFAULT_CONDITIONS, f"initializations; names: {INIT_NAME_HELP}"
    )
    fold_axis: str = setting("rows", "axis Fold k copies: rows | columns")
    seeds: int = setting(10, "seeds per condition")
    seed: int = setting(0, "base random seed", cli=False)
    optimizer: str = setting("adam", "adam | sgd")
    learning_rate: float = setting(1e-3, "learning rate", option="--lr")
    epochs: int = setting(500, "training epochs")
    train_samples: int = setting(1024, "training set size")
    batch_size: int = setting(64, "minibatch size")
    input_std: float = setting(1.0, "inputs ~ N(0, std^2 I)")
    teacher_gain: float = setting(1.0, "teacher entries ~ N(0, gain^2/width)")
    gradient_epochs: tuple[int, ...] = setting(
        (0, 1, 5), "epochs at which per-layer gradient norms are recorded"
    )
    gradient_points: int = setting(16, "log-spaced epochs with gradient norms through training")
    judge_window: tuple[int, int] = setting(
        (250, 500), "START END: epochs of the plateau rule; losses are compared at END"
    )
    measure_points: int = setting(40, "log-spaced epochs with degeneracy measures")
    small_value_threshold: float = setting(
        DEFAULT_SMALL_VALUE_THRESHOLD,
        "small singular value threshold, relative to the RMS singular value",
        option="--threshold",
    )
    threads: int = setting(1, "torch threads", cli=False)
    show_progress: bool = setting(True, "", cli=False)

    @classmethod
    def quick(cls, **overrides: Any) -> DeepLinearConfig:
        """A few-second version (shallower, narrower, fewer seeds and epochs) for tests/demos.

        Its 40 epochs are shorter than the judgement window, so its claims get no verdict.
        """
        values: dict[str, Any] = dict(
            depth=20,
            width=32,
            seeds=4,
            epochs=40,
            train_samples=256,
            measure_points=10,
            gradient_points=8,
        )
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for the first bad setting, before any work."""
        check_linear_network(self, "conditions")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: 'adam', 'sgd'")
        _check_positive("seeds", self.seeds, integer=True)
        _check_positive("epochs", self.epochs, integer=True)
        _check_positive("train_samples", self.train_samples, integer=True)
        _check_positive("batch_size", self.batch_size, integer=True)
        _check_positive("measure_points", self.measure_points, integer=True)
        _check_positive("threads", self.threads, integer=True)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("input_std", self.input_std)
        _check_positive("teacher_gain", self.teacher_gain)
        _check_positive("small_value_threshold", self.small_value_threshold)
        if self.batch_size > self.train_samples:
            raise ValueError(
                f"batch_size must be <= train_samples ({self.train_samples}), got {self.batch_size}"
            )
        if not self.gradient_epochs:
            raise ValueError("gradient_epochs must name at least one epoch (e.g. 0 1 5)")
        for epoch in self.gradient_epochs:
            if isinstance(epoch, bool) or int(epoch) != epoch:  # (1.5 failed after training)
                raise ValueError(
                    f"gradient epoch {epoch!r} is not an integer (set gradient_epochs / "
                    "--gradient-epochs)"
                )
            if not 0 <= epoch <= self.epochs:
                raise ValueError(
                    f"gradient epoch {epoch} is outside the run; allowed: 0..{self.epochs} "
                    "(set gradient_epochs / --gradient-epochs)"
                )
        if int(self.gradient_points) != self.gradient_points or self.gradient_points < 0:
            raise ValueError(f"gradient_points must be an integer >= 0, got {self.gradient_points}")
        window = tuple(self.judge_window)
        if (
            len(window) != 2
            or any(int(epoch) != epoch for epoch in window)
            or not 0 <= window[0] < window[1]
        ):
            raise ValueError(
                f"judge_window must be two epochs (start, end) with 0 <= start < end, got "
                f"{list(window)}"
            )
        from learnsyn.memory import check_memory

        check_memory(  # a traceback from the allocator, or the OOM killer, otherwise
            self.memory_estimate(),
            f"deep-linear with {len(self.conditions)} conditions x {self.seeds} seeds of depth "
            f"{self.depth}, width {self.width}",
            "use a smaller --width, --depth or --seeds",
        )

    def memory_estimate(self) -> float:
        """Bytes the run holds at once, generously: per network and layer a float32 n x n
        weight, its gradient, two Adam moments and the prefix and suffix products (x 8, with
        room for the measurements); per seed the teacher, inputs and targets."""
        networks = len(self.conditions) * self.seeds
        weights = 4.0 * networks * self.depth * self.width**2
        data = 4.0 * self.seeds * self.width * (2 * self.train_samples + 2 * self.width)
        return 8 * weights + data

    @property
    def init_specs(self) -> list[InitSpec]:
        """The parsed conditions, in order."""
        return [parse_init_spec(name) for name in self.conditions]

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches per epoch (the last partial batch is dropped)."""
        return self.train_samples // self.batch_size

    @property
    def judged(self) -> bool:
        """Whether the run reaches the end of the judgement window (else no claim is judged)."""
        return self.epochs >= self.judge_window[1]

    @property
    def gradient_schedule(self) -> list[int]:
        """Every epoch at which gradient norms are recorded (sorted): ``gradient_epochs``, about
        ``gradient_points`` log-spaced epochs in 1..epochs with 0 and the last epoch, and the
        ends of the judgement window that lie inside the run; always 0, the initialization the
        claims read, and the last epoch, the figure's per-layer profile (a schedule without
        either ended in a traceback after training, e.g. with ``gradient_points=0``)."""
        epochs = set(self.gradient_epochs) | {0, int(self.epochs)}
        if self.gradient_points:
            epochs |= set(log_spaced_epochs(self.epochs, self.gradient_points))
        epochs |= {epoch for epoch in self.judge_window if epoch <= self.epochs}
        return sorted(int(epoch) for epoch in epochs)


def check_linear_network(config: Any, field: str) -> None:
    """The checks of every deep linear network config (``DeepLinearConfig``, the Hessian's):
    depth, width, seed, fold axis, and its init list ``field``: not empty, distinct, each fold
    fitting the width."""
    check_depth(config.depth)
    check_width(config.width)
    check_seed(config.seed)
    check_fold_axis(config.fold_axis)
    inits = getattr(config, field)
    if not inits:
        raise ValueError(f"{field} must name at least one init")
    for name in inits:
        check_fold_fits_width(parse_init_spec(name).fold_k, config.width)
    if len({parse_init_spec(name) for name in inits}) != len(inits):
        raise ValueError(f"{field} must be distinct, got {list(inits)}")


def log_spaced_epochs(epochs: int, points: int, extra: tuple[int, ...] = ()) -> list[int]:
    """About ``points`` log-spaced epochs in 0..epochs, plus 0, ``epochs`` and ``extra``."""
    spaced = np.unique(np.round(np.geomspace(1, epochs, num=max(points - 1, 1))).astype(int))
    return sorted({0, epochs, *extra, *spaced.tolist()})


def _check_positive(name: str, value: float, integer: bool = False) -> None:
    if integer and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value}")
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be > 0, got {value}")
