"""Figures: SNR curves on log-log axes, with error bands and the bounds every synapse obeys."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnsyn.io import FIGURE_FORMATS, _atomic_replace  # noqa: E402

LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "x", "+", "*")


def _marker_positions(count: int, markers: int = 12) -> list[int]:
    """About ``markers`` indices spread evenly in log(index + 1) (always the first point)."""
    if count <= markers:
        return list(range(count))
    return sorted({int(i) - 1 for i in np.round(np.geomspace(1, count, markers))})


def plot_snr_curves(
    curves: Sequence[dict],
    *,
    synapses: int,
    threshold: float,
    convention: str,
    title: str = "",
    show_bound: bool = True,
):
    """``curves``: dicts with ``label``, ``ages``, ``snr`` and optionally ``snr_stderr``.
    Returns the matplotlib figure."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    peaks = []  # each curve's largest positive finite SNR
    for index, curve in enumerate(curves):
        ages = np.asarray(curve["ages"], dtype=float) + 1.0  # age 0 drawn at x = 1
        snr = np.asarray(curve["snr"], dtype=float)
        # a line style and marker of its own: curves that coincide, or have a single point,
        # stay visible
        (line,) = ax.loglog(
            ages,
            np.where(snr > 0, snr, np.nan),
            label=curve["label"],
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            marker=MARKERS[index % len(MARKERS)],
            markevery=_marker_positions(len(ages)),
            markersize=5,
            fillstyle="none",
        )
        err = curve.get("snr_stderr")
        if err is not None:
            err = np.asarray(err, dtype=float)
            low = np.clip(snr - err, 1e-12, None)
            ax.fill_between(ages, low, snr + err, color=line.get_color(), alpha=0.2)
        finite = snr[np.isfinite(snr)]
        if len(finite) and finite.max() > 0:
            peaks.append(float(finite.max()))
    ax.axhline(threshold, color="grey", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    if show_bound and convention == "large-n":
        bound = math.sqrt(synapses)
        ax.axhline(bound, color="k", lw=0.8, ls="--", label="bound sqrt(N) (any synapse)")
    ax.set_xlabel("age + 1 (steps)")
    ax.set_ylabel(f"SNR ({convention} convention, N = {synapses})")
    # every curve's peak and the bound drawn (review, session 33: a curve below threshold / 10
    # was left out of the axes while the legend listed it, and so was a bound above the curves)
    bottom = min([max(threshold / 10, 1e-2), *(0.5 * peak for peak in peaks)])
    ceiling = max(2 * max(peaks, default=0.0), threshold * 10)
    if show_bound and convention == "large-n":
        ceiling = max(ceiling, 1.5 * math.sqrt(synapses))
    ax.set_ylim(bottom=bottom, top=ceiling)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> None:
    """Write ``fig`` atomically in the format its suffix names (``FIGURE_FORMATS``), else PNG."""
    suffix = Path(path).suffix.lower().lstrip(".")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix if suffix in FIGURE_FORMATS else "png", dpi=110)
    plt.close(fig)
    _atomic_replace(Path(path), lambda h: h.write(buffer.getvalue()))
