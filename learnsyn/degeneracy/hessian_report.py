"""Outputs of the Hessian experiment: results.json, figures and TensorBoard.

``write_hessian_outputs`` turns the per-network measures of ``hessian.compute_hessian_spectra``
into
- ``results.json``: per architecture and init, mean +- s.e. over seeds (and per-seed values) of
  the initial loss, the largest |eigenvalue|, the fractions of near-zero, negative and positive
  Hessian eigenvalues at the stated tolerance, those fractions over a range of tolerances, and
  the gradient-sharing measures (effective rank and participation ratio of the per-example
  gradients);
- ``hessian_fractions.png`` (near-zero and negative fractions, gradient effective rank, per init,
  plain against residual), ``hessian_tolerance_curves.png`` (the fractions against the
  tolerance) and ``hessian_spectra.png`` (the sorted eigenvalues of one seed);
- TensorBoard scalars, and ``config.json``.

The report reads results; it never imports the computation (``hessian`` imports this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learnsyn.degeneracy.outputs import (
    experiment_writer,
    log_series,
    new_figure,
    plot_mean_with_error,
    save_figure,
)
from learnsyn.degeneracy.seed_statistics import summarize_over_seeds
from learnsyn.initialization import parse_init_spec

if TYPE_CHECKING:  # type only: the computation imports this report
    from learnsyn.degeneracy.hessian import HessianConfig

FRACTIONS = ("near_zero", "negative", "positive")
SHARING = ("effective_rank", "participation_ratio")
_STYLES = {"plain": ("-", "o"), "residual": ("--", "s")}


def _over_seeds(runs: list[dict[str, Any]], *keys: str) -> dict[str, Any]:
    """``summarize_over_seeds`` of ``run[key]`` (``run[group][key]`` for two keys) per seed."""
    values = [run[keys[0]] if len(keys) == 1 else run[keys[0]][keys[1]] for run in runs]
    return summarize_over_seeds(values)


def summarize_hessian(config: HessianConfig, raw: dict[str, Any]) -> dict[str, Any]:
    """Everything plotted, per architecture and init, as mean / standard_error / per_seed."""
    by_architecture: dict[str, Any] = {}
    for architecture, per_init in raw["runs"].items():
        by_architecture[architecture] = {}
        for init, runs in per_init.items():
            by_architecture[architecture][init] = {
                key: _over_seeds(runs, key)
                for key in ("loss", "gradient_norm", "max_abs_eigenvalue")
            } | {
                group: {key: _over_seeds(runs, group, key) for key in keys}
                for group, keys in (
                    ("fractions", FRACTIONS),
                    ("fraction_curves", ("near_zero", "negative")),
                    ("gradient_sharing", SHARING),
                )
            }
    width = config.width
    return {
        "experiment": "hessian",
        "network": (
            f"{config.depth}-layer linear, width {width}, no biases; plain: h' = W h, residual: "
            f"h' = h + W h"
        ),
        "task": (
            f"teacher y = T x, T entries N(0, {config.teacher_gain:g}^2/{width}), x ~ "
            f"N(0, {config.input_std:g}^2 I), {config.samples} samples, mean squared error"
        ),
        "parameters": config.depth * width**2,
        "fold_axis": config.fold_axis,
        "inits": {init: parse_init_spec(init).label(config.fold_axis) for init in config.inits},
        "seeds_per_init": config.seeds,
        "zero_tolerance": config.zero_tolerance,
        "fraction_definitions": {
            "near_zero": "|lambda| <= zero_tolerance x max|lambda|",
            "negative": "lambda < -zero_tolerance x max|lambda|",
            "positive": "lambda > zero_tolerance x max|lambda|",
        },
        "gradient_sharing_definition": (
            "effective rank (exp entropy of s / sum s) and participation ratio "
            "((sum s^2)^2 / sum s^4) of the singular values s of the (samples x parameters) "
            f"matrix of per-example gradients; at most min(samples, parameters), and for a "
            f"linear network at most width (width + 1) / 2 = {width * (width + 1) // 2}"
        ),
        "tolerance_curve": raw["tolerance_curve"],
        "by_architecture": by_architecture,
    }


def plot_hessian(
    config: HessianConfig, summary: dict[str, Any], raw: dict[str, Any], out_dir: Path
) -> list[Path]:
    """Write the three PNG figures and return their paths."""
    inits, labels = list(config.inits), summary["inits"]
    architectures = summary["by_architecture"]
    title = (
        f"{config.depth}-layer linear net, width {config.width} ({summary['parameters']} "
        f"weights), at initialization, {config.seeds} seeds, fold axis: {config.fold_axis}"
    )
    paths = []
    figure, axes = new_figure(1, 3, (4.2, 3.4))
    positions = np.arange(len(inits))
    panels = (
        ("fractions", "near_zero", f"fraction |lambda| <= {config.zero_tolerance:g} max"),
        ("fractions", "negative", "fraction of negative eigenvalues"),
        ("gradient_sharing", "effective_rank", "effective rank of per-example gradients"),
    )
    for column, (group, key, ylabel) in enumerate(panels):
        axis = axes[0, column]
        for offset, (architecture, per_init) in enumerate(architectures.items()):
            _, marker = _STYLES[architecture]
            means = [per_init[init][group][key]["mean"] for init in inits]
            errors = [per_init[init][group][key]["standard_error"] for init in inits]
            axis.errorbar(
                positions + 0.15 * (offset - 0.5),
                means,
                yerr=errors,
                fmt=marker,
                capsize=2,
                label=architecture,
            )
        axis.set_xticks(positions, [labels[init] for init in inits], rotation=30, fontsize=7)
        axis.set_ylabel(ylabel, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "hessian_fractions.png"))

    figure, axes = new_figure(1, 2, (4.6, 3.6))
    tolerances = summary["tolerance_curve"]
    for column, key in enumerate(("near_zero", "negative")):
        axis = axes[0, column]
        for index, init in enumerate(inits):
            for architecture, per_init in architectures.items():
                linestyle, marker = _STYLES[architecture]
                plot_mean_with_error(
                    axis,
                    tolerances,
                    per_init[init]["fraction_curves"][key]["per_seed"],
                    f"{labels[init]}, {architecture}",
                    color=f"C{index}",
                    marker=marker,
                    linestyle=linestyle,
                )
        axis.set(
            xscale="log",
            xlabel="tolerance (relative to max |lambda|)",
            ylabel=f"fraction {'near zero' if key == 'near_zero' else 'negative'}",
        )
    axes[0, 1].legend(fontsize=6)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "hessian_tolerance_curves.png"))

    figure, axes = new_figure(1, len(architectures), (4.6, 3.6))
    for column, (architecture, per_init) in enumerate(raw["runs"].items()):
        axis = axes[0, column]
        for index, init in enumerate(inits):
            eigenvalues = np.sort(per_init[init][0]["eigenvalues"])[::-1]
            scaled = eigenvalues / np.abs(eigenvalues).max()
            axis.plot(
                np.arange(1, len(scaled) + 1) / len(scaled),
                scaled,
                color=f"C{index}",
                label=labels[init],
            )
        axis.set_yscale("symlog", linthresh=config.zero_tolerance)
        axis.axhspan(-config.zero_tolerance, config.zero_tolerance, color="0.9", zorder=0)
        axis.set(xlabel="rank / parameters", ylabel="eigenvalue / max |eigenvalue|")
        axis.set_title(f"{architecture} (seed 0); shaded: near zero", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "hessian_spectra.png"))
    return paths


def log_hessian_tensorboard(
    writer: Any, config: HessianConfig, summary: dict[str, Any], raw: dict[str, Any]
) -> None:
    """The near-zero and negative fraction curves as scalars (step = -log10 tolerance)."""
    steps = [round(-np.log10(value)) for value in summary["tolerance_curve"]]
    for architecture, per_init in summary["by_architecture"].items():
        for init in config.inits:
            for key in ("near_zero", "negative"):
                values = per_init[init]["fraction_curves"][key]["mean"]
                log_series(writer, f"{key}_fraction/{architecture}/{init}", steps, values)


write_hessian_outputs = experiment_writer(
    "hessian", summarize_hessian, plot_hessian, log_hessian_tensorboard
)
