"""Figures and TensorBoard scalars of the synapse experiment, drawn from its summary dict.

- ``objective_vs_iteration.png``: surrogate meta-objective and hard metric per training batch,
  and the hard metric on the fixed evaluation batch with the fraction-of-best target;
- ``gradient_norms.png``: meta-gradient norms (all parameters / recurrent matrix) per iteration;
- ``jacobian_products.png``: degeneracy and size of ``P_L`` over window length L, at
  initialization and after training;
- ``degeneracy_over_training.png``: the full-window product and the recurrent matrix over
  training;
- ``final_objective_and_speed.png``: final objective and iterations to the target per init.

Every plotted number is in ``results.json`` (``synapse_report``); TensorBoard gets seed means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learnsyn.degeneracy.outputs import (
    log_series,
    new_figure,
    plot_each,
    plot_mean_with_error,
    save_figure,
)
from learnsyn.degeneracy.recurrent_jacobians import JACOBIAN_MEASURES

if TYPE_CHECKING:  # type only: the experiment imports the report, which imports these figures
    from learnsyn.degeneracy.synapse import SynapseDegeneracyConfig

PER_ITERATION_SERIES = ("objective", "batch_metric", "grad_norm", "recurrent_grad_norm")
FIGURE_DPI = 90  # keeps every figure under 300 KB for docs/figures
OVER_TRAINING_GROUPS = ("jacobian_full_window_over_training", "recurrent_matrix_over_training")
SERIES_LABELS = {
    "objective": "surrogate meta-objective (maximized)",
    "batch_metric": "hard metric on the training batch",
    "grad_norm": "meta-gradient norm (all parameters, before clipping)",
    "recurrent_grad_norm": "meta-gradient norm w.r.t. the recurrent matrix",
}
MEASURE_LABELS = {
    "effective_rank": "effective rank",
    "participation_ratio": "participation ratio",
    "fraction_below_threshold": "fraction of s < threshold x RMS(s)",
    "rms_singular_value": "RMS singular value (backprop gain)",
}


def plot_synapse(
    config: SynapseDegeneracyConfig, summary: dict[str, Any], raw: dict[str, Any], out_dir: Path
) -> list[Path]:
    """Write the five PNG figures and return their paths."""
    names, labels = config.init_names, summary["inits"]
    title = (
        f"{config.cell} synapse, hidden {config.hidden_size}, {config.task}, N={config.synapses}, "
        f"horizon {config.horizon}, batch {config.batch}, Adam lr {config.lr:g}, "
        f"fold axis: {config.fold_axis}, {config.seeds} seeds"
    )
    paths = []

    figure, axes = new_figure(1, 3, (4.4, 3.4))
    for column, key in enumerate(("objective", "batch_metric")):
        plot_each(axes[0, column], summary["iterations"], summary[key], names, labels)
        axes[0, column].set(xlabel="iteration", ylabel=SERIES_LABELS[key])
    evaluation_iterations = summary["evaluation_iterations"]
    plot_each(axes[0, 2], evaluation_iterations, summary["evaluation"], names, labels, marker="o")
    reach = summary["iterations_to_fraction"]
    axes[0, 2].axhline(reach["target"], color="k", linestyle=":", linewidth=1)
    axes[0, 2].set(
        xlabel="iteration",
        ylabel=f"{config.metric} on the fixed evaluation batch",
        title=f"dotted: {reach['fraction']:g} x best final",
    )
    axes[0, 2].title.set_fontsize(8)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(f"{title}; mean +- s.e. over seeds", fontsize=8)
    paths.append(save_figure(figure, out_dir / "objective_vs_iteration.png", dpi=FIGURE_DPI))

    figure, axes = new_figure(1, 2, (4.8, 3.4))
    for column, key in enumerate(("grad_norm", "recurrent_grad_norm")):
        plot_each(axes[0, column], summary["iterations"], summary[key], names, labels)
        axes[0, column].set(xlabel="iteration", ylabel=SERIES_LABELS[key], yscale="log")
        axes[0, column].yaxis.label.set_fontsize(8)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "gradient_norms.png", dpi=FIGURE_DPI))

    first, last = summary["measurement_iterations"][0], summary["measurement_iterations"][-1]
    figure, axes = new_figure(2, len(JACOBIAN_MEASURES), (3.6, 3.0))
    for row, iteration in enumerate((first, last)):
        for column, measure in enumerate(JACOBIAN_MEASURES):
            axis = axes[row, column]
            for name in names:
                values = summary["jacobian_products"][measure][name][f"iteration_{iteration}"]
                plot_mean_with_error(
                    axis, summary["window_lengths"], values["per_seed"], labels[name], marker="o"
                )
            axis.set(xlabel="window length L", ylabel=MEASURE_LABELS[measure], xscale="log")
            if measure == "rms_singular_value":
                axis.set_yscale("log")
            axis.yaxis.label.set_fontsize(8)
            when = "at initialization" if iteration == 0 else f"after {iteration} iterations"
            axis.set_title(f"P_L = J_L...J_1, {when}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    figure.suptitle(f"{title}; threshold {config.small_value_threshold:g} x RMS", fontsize=8)
    paths.append(save_figure(figure, out_dir / "jacobian_products.png", dpi=FIGURE_DPI))

    panels = [
        ("jacobian_full_window_over_training", measure, f"P_{config.horizon}")
        for measure in JACOBIAN_MEASURES
    ] + [("recurrent_matrix_over_training", "effective_rank", "recurrent matrix")]
    figure, axes = new_figure(1, len(panels), (3.4, 3.0))
    for column, (group, measure, what) in enumerate(panels):
        axis = axes[0, column]
        entries = summary[group][measure]
        plot_each(axis, summary["measurement_iterations"], entries, names, labels, marker="o")
        axis.set(xlabel="iteration", ylabel=MEASURE_LABELS[measure])
        if measure == "rms_singular_value":
            axis.set_yscale("log")
        axis.yaxis.label.set_fontsize(8)
        axis.set_title(what, fontsize=8)
    axes[0, 0].legend(fontsize=6)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "degeneracy_over_training.png", dpi=FIGURE_DPI))

    figure, axes = new_figure(1, 2, (5.0, 3.6))
    positions = np.arange(len(names))
    for index, name in enumerate(names):
        values = summary["final_objective"][name]
        axes[0, 0].bar(index, values["mean"], yerr=values["standard_error"], color=f"C{index}")
        axes[0, 0].plot(
            np.full(len(values["per_seed"]), index), values["per_seed"], "k.", markersize=3
        )
        entry = reach["by_init"][name]
        if entry["reached"]:
            axes[0, 1].bar(index, entry["mean"], yerr=entry["standard_error"], color=f"C{index}")
        axes[0, 1].annotate(
            f"{entry['reached']}/{entry['seeds']}",
            (index, 0),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    for axis in axes[0]:
        axis.set_xticks(positions, [labels[name] for name in names], rotation=30, ha="right")
        axis.tick_params(axis="x", labelsize=7)
    axes[0, 0].set(ylabel=f"final {config.metric} (evaluation batch)")
    axes[0, 1].set(
        ylabel=f"iterations to {reach['fraction']:g} x best final",
        title="mean +- s.e. over runs that reached it (count at the bottom)",
    )
    axes[0, 1].title.set_fontsize(7)
    figure.suptitle(title, fontsize=7)
    paths.append(save_figure(figure, out_dir / "final_objective_and_speed.png", dpi=FIGURE_DPI))
    return paths


def log_synapse_tensorboard(
    writer: Any, config: SynapseDegeneracyConfig, summary: dict[str, Any], raw: dict[str, Any]
) -> None:
    """The plotted series as TensorBoard scalars (seed means; window series use step=L)."""
    for name in config.init_names:
        for key in PER_ITERATION_SERIES:
            values = summary[key][name]["mean"]
            log_series(writer, f"{key}/{name}", summary["iterations"], values)
        log_series(
            writer,
            f"evaluation/{name}",
            summary["evaluation_iterations"],
            summary["evaluation"][name]["mean"],
        )
        for measure in JACOBIAN_MEASURES:
            for iteration, values in summary["jacobian_products"][measure][name].items():
                log_series(
                    writer,
                    f"jacobian_products/{measure}/{iteration}/{name}",
                    summary["window_lengths"],
                    values["mean"],
                )
            for group in OVER_TRAINING_GROUPS:
                log_series(
                    writer,
                    f"{group}/{measure}/{name}",
                    summary["measurement_iterations"],
                    summary[group][measure][name]["mean"],
                )
