"""What every degeneracy experiment writes: PNG figures, a JSON of the numbers, TensorBoard, config.

- ``write_json_atomic``: a temp file in the same directory, then ``os.replace``, so a reader never
  sees a half-written file; strict JSON by ``learnsyn.io``'s one rule for non-finite numbers.
- ``save_resolved_config``: ``config.json`` with the resolved config plus the environment
  (torch version, thread count, command line) next to the outputs.
- Figures are built on ``matplotlib.figure.Figure`` (the Agg canvas, no pyplot), so importing
  this module never changes a global backend; ``save_figure`` writes them atomically.
- ``experiment_writer``: the one output path of every experiment (config.json, results.json,
  figures, TensorBoard); ``run_timed``: validate a config and time its computation.
- ``tensorboard_writer`` / ``log_series``: TensorBoard scalars under ``<out>/tensorboard``.
- ``progress_bar``: the bar of ``learnsyn.progress``, switched off by ``enabled=False``;
  ``torch_threads``: run a block with a stated torch thread count (reported in config.json).
- ``plot_mean_with_error``: a mean +- 1 s.e. band over seeds (statistics in ``seed_statistics``);
  ``plot_each``: one such band per condition.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from learnsyn.degeneracy.seed_statistics import mean_and_standard_error
from learnsyn.io import atomic_write_json, to_jsonable
from learnsyn.progress import progress_bar as shared_progress_bar

if TYPE_CHECKING:  # matplotlib loads only when a figure is drawn (a command starts 1 s sooner)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TENSORBOARD_SUBDIR = "tensorboard"
RESULTS_FILENAME = "results.json"
CONFIG_FILENAME = "config.json"


def experiment_writer(experiment: str, summarize, plot, log_tensorboard):
    """The one output path of every experiment, as ``write(config, raw, out_dir, **extra)``:
    the figures, the summary (every plotted number, plus ``extra``) as results.json, then the
    resolved config.json, then the TensorBoard logs; ``write`` returns the summary.

    ``summarize(config, raw)`` builds the summary, ``plot(config, summary, raw, out_dir)``
    returns the figure paths, ``log_tensorboard(writer, config, summary, raw)`` writes the
    events."""

    def write(
        config: Any, raw: Any, out_dir: str | os.PathLike[str], **extra: Any
    ) -> dict[str, Any]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = summarize(config, raw)
        summary.update(extra)
        summary["figures"] = [path.name for path in plot(config, summary, raw, out_dir)]
        write_json_atomic(out_dir / RESULTS_FILENAME, summary, indent=None)
        # after the results: a rerun that fails before them leaves the earlier config beside
        # the earlier results, not a config they were not made with (review, session 30)
        save_resolved_config(out_dir, config, experiment=experiment)
        with tensorboard_writer(out_dir) as writer:
            log_tensorboard(writer, config, summary, raw)
        return summary

    return write


def run_timed(config: Any, compute: Callable[[], Any]) -> tuple[Any, float]:
    """Validate ``config`` and run ``compute()`` with ``config.threads`` torch threads; return
    its result and the wall-clock seconds it took."""
    config.validate()
    started = time.perf_counter()
    with torch_threads(config.threads):
        result = compute()
    return result, time.perf_counter() - started


def write_json_atomic(path: str | os.PathLike[str], data: Any, indent: int | None = 1) -> Path:
    """Write ``data`` as strict JSON to ``path`` atomically (``learnsyn.io``'s rule for
    non-finite numbers); ``indent=None`` writes compact JSON (for large result files)."""
    target = Path(path)
    atomic_write_json(target, data, indent=indent)
    return target


def save_resolved_config(out_dir: str | os.PathLike[str], config: Any, **extra: Any) -> Path:
    """Write ``config.json``: the resolved config, the environment and any ``extra`` entries."""
    payload = {
        "config": to_jsonable(config),
        "environment": {
            "torch_version": torch.__version__,
            "python": sys.version.split()[0],
            "command_line": sys.argv,
        },
        **extra,
    }
    return write_json_atomic(Path(out_dir) / CONFIG_FILENAME, payload)


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save a figure as PNG through a temp file and ``os.replace``. A log-scaled axis with no
    positive finite data to show (every run diverged) is drawn linear rather than failing."""
    for axis in figure.get_axes():
        limits = axis.dataLim
        for which, high in (("x", limits.x1), ("y", limits.y1)):
            scale = axis.get_xscale() if which == "x" else axis.get_yscale()
            if scale == "log" and not (np.isfinite(high) and high > 0):
                (axis.set_xscale if which == "x" else axis.set_yscale)("linear")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp_path = target.with_name(f".{target.name}.tmp")
    figure.savefig(temp_path, dpi=dpi, format="png", bbox_inches="tight")
    os.replace(temp_path, target)
    return target


def new_figure(rows: int = 1, columns: int = 1, panel_size: tuple[float, float] = (4.8, 3.6)):
    """A ``Figure`` with a grid of axes (always returned as a 2-d numpy array)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def plot_mean_with_error(
    axes: Axes,
    x: Sequence[float] | np.ndarray,
    samples: Any,
    label: str,
    color: str | None = None,
    marker: str | None = None,
    linestyle: str = "-",
) -> None:
    """Plot the mean over the first axis of ``samples`` with a +- 1 s.e. band."""
    mean, standard_error = mean_and_standard_error(samples, axis=0)
    (line,) = axes.plot(x, mean, linestyle, label=label, color=color, marker=marker, markersize=3)
    if np.any(np.isfinite(standard_error)):
        axes.fill_between(
            x, mean - standard_error, mean + standard_error, color=line.get_color(), alpha=0.25
        )


def plot_each(
    axes: Axes,
    x: Any,
    entries: dict[str, Any],
    names: Iterable[str],
    labels: dict[str, str],
    **style: Any,
) -> None:
    """``plot_mean_with_error`` of ``entries[name]["per_seed"]`` for every name, in order."""
    for name in names:
        plot_mean_with_error(axes, x, entries[name]["per_seed"], labels[name], **style)


@contextlib.contextmanager
def tensorboard_writer(out_dir: str | os.PathLike[str]) -> Iterator[Any]:
    """A ``SummaryWriter`` writing under ``<out_dir>/tensorboard``, closed after the block.

    Event files of an earlier run in the same directory are removed first, so a rerun replaces
    its TensorBoard series instead of showing both runs' series on top of each other.
    """
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: it pulls in tensorboard

    log_dir = Path(out_dir) / TENSORBOARD_SUBDIR
    for old_events in log_dir.glob("events.out.tfevents.*"):
        old_events.unlink()
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        yield writer
    finally:
        writer.close()


def log_series(writer: Any, tag: str, steps: Iterable[int], values: Iterable[float]) -> None:
    """Log one scalar series (skipping non-finite values, which TensorBoard cannot plot)."""
    for step, value in zip(steps, values):
        value = float(value)
        if math.isfinite(value):
            writer.add_scalar(tag, value, int(step))


def progress_bar(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    description: str = "",
    enabled: bool = True,
):
    """The experiment's bar (``learnsyn.progress``: sparse redraws in a log file), cleared when
    done; ``enabled=False`` makes it silent."""
    return shared_progress_bar(
        iterable, total=total, description=description, enabled=enabled, leave=False
    )


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(count)``, restoring the old count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
