"""Outputs of the deep-linear experiment: results.json, the claims, figures, TensorBoard.

``write_deep_linear_outputs`` turns the raw arrays of ``train_deep_linear`` into
- ``results.json``: every plotted number (mean, s.e. and per-seed values per condition), the
  gradient norms through training and their ratio to orthogonal's, and the verdict on each of
  the post's claims with the numbers and rule behind it (``deep_linear_claims``);
- ``loss_vs_epoch.png``, ``gradient_norms.png`` (per layer, at the early gradient epochs and
  the end), ``gradient_norms_over_training.png``, ``degeneracy_over_training.png``,
  ``degeneracy_by_layer.png``;
- the same series as TensorBoard scalars, and ``config.json``.

Claims are judged over seeds with paired differences (see ``seed_statistics``), never from one
run; the rules are written next to each verdict. This module reads a run's results; it does
not import the training code (``deep_linear`` imports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from learnsyn.degeneracy.deep_linear_claims import (
    by_condition,
    evaluate_deep_linear_claims,
    layer_mean,
)
from learnsyn.degeneracy.deep_linear_config import DeepLinearConfig
from learnsyn.degeneracy.measures import MEASURE_NAMES
from learnsyn.degeneracy.outputs import (
    experiment_writer,
    log_series,
    new_figure,
    plot_each,
    plot_mean_with_error,
    save_figure,
)
from learnsyn.degeneracy.seed_statistics import (
    mean_and_standard_error,
    paired_difference,
    summarize_over_seeds,
)
from learnsyn.degeneracy.verdicts import post_inits

MEASURE_GROUPS = ("weight_product", "activation_covariance", "layer_to_output_jacobian")
# Reported over training: the product, and the covariance of the last hidden layer. Reported per
# layer (at the gradient epochs and the end): the covariances and the layer-to-output Jacobians.
MEASURE_LABELS = {
    "effective_rank": "effective rank",
    "participation_ratio": "participation ratio",
    "fraction_below_threshold": "fraction of s < threshold x RMS(s)",
}


def last_hidden_layer_index(config: DeepLinearConfig) -> int:
    """0-based index of the last hidden layer's output (layer L-1; the output layer if L = 1)."""
    return max(config.depth - 2, 0)


def profile_epochs(config: DeepLinearConfig) -> list[int]:
    """Epochs with per-layer profiles: the initialization, the early gradient epochs and the
    final epoch (the figure sets the first against the last)."""
    return sorted({0, *config.gradient_epochs, config.epochs})


def layer_profile_points(config: DeepLinearConfig, raw: dict[str, Any]) -> list[int]:
    """Indices into ``measure_epochs`` where per-layer profiles are reported."""
    wanted = set(profile_epochs(config))
    return [index for index, epoch in enumerate(raw["measure_epochs"]) if epoch in wanted]


def _over_seeds(values: dict[str, Any]) -> dict[str, Any]:
    """``summarize_over_seeds`` of each condition's per-seed values."""
    return {name: summarize_over_seeds(per_seed) for name, per_seed in values.items()}


def summarize_gradients_over_training(
    config: DeepLinearConfig, raw: dict[str, Any]
) -> dict[str, Any]:
    """Layer-mean gradient norms and the loss at every recorded gradient epoch, and (when
    orthogonal was run) each condition's ratio to orthogonal: seed-mean ratios and the paired
    difference of the logs (the log of the geometric-mean ratio, +- s.e.)."""
    schedule = list(raw["gradient_epochs"])
    loss = {name: values[:, schedule] for name, values in by_condition(raw["loss"], config).items()}
    norms = {
        key: {name: layer_mean(values) for name, values in by_condition(raw[key], config).items()}
        for key in ("activation_gradient_norms", "weight_gradient_norms")
    }
    section: dict[str, Any] = {
        "epochs": schedule,
        "layer_mean_activation_gradient_norm": _over_seeds(norms["activation_gradient_norms"]),
        "layer_mean_weight_gradient_norm": _over_seeds(norms["weight_gradient_norms"]),
        "loss": _over_seeds(loss),
    }
    orthogonal = post_inits(config.conditions)[2]
    if orthogonal is None:
        return section
    relative = {}
    activation = norms["activation_gradient_norms"]

    def log_ratios(values: dict[str, np.ndarray], name: str) -> list[dict[str, float]]:
        """Per recorded epoch, the paired difference of the logs (name against orthogonal)."""
        logs, reference = np.log(values[name]), np.log(values[orthogonal])
        return [paired_difference(logs[:, i], reference[:, i]) for i in range(len(schedule))]

    with np.errstate(divide="ignore", invalid="ignore"):
        for name in config.conditions:
            if name == orthogonal:
                continue
            relative[name] = {
                "gradient_norm_ratio": activation[name].mean(0) / activation[orthogonal].mean(0),
                "loss_ratio": loss[name].mean(0) / loss[orthogonal].mean(0),
                "log_gradient_norm_ratio": log_ratios(activation, name),
                "log_loss_ratio": log_ratios(loss, name),
            }
    section["relative_to_orthogonal"] = relative
    section["reference"] = orthogonal
    return section


def summarize_deep_linear(config: DeepLinearConfig, raw: dict[str, Any]) -> dict[str, Any]:
    """Everything plotted, per condition, as mean / standard_error / per_seed."""
    labels = {
        spec_name: spec.label(config.fold_axis)
        for spec_name, spec in zip(config.conditions, config.init_specs)
    }
    loss = by_condition(raw["loss"], config)
    population = by_condition(raw["population_loss"], config)
    activation_norms = by_condition(raw["activation_gradient_norms"], config)
    weight_norms = by_condition(raw["weight_gradient_norms"], config)
    summary: dict[str, Any] = {
        "experiment": "deep-linear",
        "fold_axis": config.fold_axis,
        "small_value_threshold": config.small_value_threshold,
        "small_value_threshold_meaning": "fraction of singular values below threshold x RMS",
        "conditions": {name: labels[name] for name in config.conditions},
        "seeds_per_condition": config.seeds,
        "epochs": list(range(config.epochs + 1)),
        "loss": _over_seeds(loss),
        "population_loss": _over_seeds(population),
        "final_loss": {name: summarize_over_seeds(loss[name][:, -1]) for name in config.conditions},
        "gradient_epochs": raw["gradient_epochs"],
        "early_gradient_epochs": sorted(set(config.gradient_epochs)),
        "judge_window": list(config.judge_window),
        "judged": config.judged,
        "judgement_note": (
            f"claims compare losses at epoch {config.judge_window[1]} (the plateau: from epoch "
            f"{config.judge_window[0]}); a run with fewer epochs gets no verdict"
        ),
        "layers": list(range(1, config.depth + 1)),
        "activation_gradient_norms": {},
        "weight_gradient_norms": {},
        "measure_epochs": raw["measure_epochs"],
        "teacher_degeneracy": _over_seeds(raw["teacher_measures"]),
        "degeneracy_over_training": {},
        "degeneracy_by_layer": {},
    }
    for key, norms in (
        ("activation_gradient_norms", activation_norms),
        ("weight_gradient_norms", weight_norms),
    ):
        summary[key] = {
            name: {
                f"epoch_{epoch}": summarize_over_seeds(norms[name][:, index])
                for index, epoch in enumerate(raw["gradient_epochs"])
            }
            for name in config.conditions
        }
    last_hidden = last_hidden_layer_index(config)
    by_layer_points = layer_profile_points(config, raw)
    for group in MEASURE_GROUPS:
        over_training: dict[str, Any] = {}
        by_layer: dict[str, Any] = {}
        for measure in MEASURE_NAMES:
            per_condition = by_condition(raw["measures"][group][measure], config)
            if group == "weight_product":
                over_training[measure] = _over_seeds(per_condition)
                continue
            if group == "activation_covariance":
                over_training[measure] = {
                    name: summarize_over_seeds(values[:, :, last_hidden])
                    for name, values in per_condition.items()
                }
            by_layer[measure] = {
                name: {
                    f"epoch_{raw['measure_epochs'][point]}": summarize_over_seeds(values[:, point])
                    for point in by_layer_points
                }
                for name, values in per_condition.items()
            }
        if over_training:
            key = group if group == "weight_product" else f"{group}_layer_{last_hidden + 1}"
            summary["degeneracy_over_training"][key] = over_training
        if by_layer:
            summary["degeneracy_by_layer"][group] = by_layer
    summary["gradient_norms_over_training"] = summarize_gradients_over_training(config, raw)
    summary["claims"] = evaluate_deep_linear_claims(config, raw)
    return summary


def plot_deep_linear(
    config: DeepLinearConfig, summary: dict[str, Any], raw: dict[str, Any], out_dir: Path
) -> list[Path]:
    """Write the five PNG figures and return their paths."""
    names, labels = config.conditions, summary["conditions"]
    title = (
        f"{config.depth}-layer linear net, width {config.width}, {config.optimizer} "
        f"lr {config.learning_rate:g}, fold axis: {config.fold_axis}, {config.seeds} seeds"
    )
    paths = []

    figure, axes = new_figure(1, 1, (6.4, 4.2))
    plot_each(axes[0, 0], summary["epochs"], summary["loss"], names, labels)
    axes[0, 0].set(xlabel="epoch", ylabel="training MSE (mean +- s.e.)", yscale="log")
    axes[0, 0].set_title(title, fontsize=8)
    axes[0, 0].legend(fontsize=8)
    paths.append(save_figure(figure, out_dir / "loss_vs_epoch.png"))

    epochs = profile_epochs(config)
    figure, axes = new_figure(2, len(epochs), (4.0, 3.2))
    for row, key in enumerate(("activation_gradient_norms", "weight_gradient_norms")):
        for column, epoch in enumerate(epochs):
            axis = axes[row, column]
            for name in names:
                values = summary[key][name][f"epoch_{epoch}"]["per_seed"]
                plot_mean_with_error(axis, summary["layers"], values, labels[name])
            what = "activations" if row == 0 else "weights"
            axis.set(xlabel="layer", ylabel=f"|dLoss/d {what}|", yscale="log")
            when = (
                f"after {epoch} epoch{'s' if epoch > 1 else ''}" if epoch else "at initialization"
            )
            axis.set_title(when, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "gradient_norms.png", dpi=90))
    paths.append(plot_gradients_over_training(config, summary, out_dir, title))

    groups = list(summary["degeneracy_over_training"])
    figure, axes = new_figure(len(groups), len(MEASURE_NAMES), (4.0, 3.2))
    for row, group in enumerate(groups):
        for column, measure in enumerate(MEASURE_NAMES):
            axis = axes[row, column]
            entries = summary["degeneracy_over_training"][group][measure]
            plot_each(axis, summary["measure_epochs"], entries, names, labels, marker="o")
            axis.set(xlabel="epoch", ylabel=MEASURE_LABELS[measure], xscale="symlog")
            axis.set_title(group.replace("_", " "), fontsize=9)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(f"{title}; threshold {config.small_value_threshold:g} x RMS", fontsize=8)
    paths.append(save_figure(figure, out_dir / "degeneracy_over_training.png"))

    groups = list(summary["degeneracy_by_layer"])
    first_epoch, last_epoch = summary["measure_epochs"][0], summary["measure_epochs"][-1]
    figure, axes = new_figure(1, len(groups), (4.6, 3.4))
    for column, group in enumerate(groups):
        axis = axes[0, column]
        for index, name in enumerate(names):
            profiles = summary["degeneracy_by_layer"][group]["effective_rank"][name]
            for epoch, style in ((first_epoch, "--"), (last_epoch, "-")):
                mean, _ = mean_and_standard_error(profiles[f"epoch_{epoch}"]["per_seed"])
                axis.plot(
                    summary["layers"],
                    mean,
                    style,
                    color=f"C{index}",
                    label=f"{labels[name]}, epoch {epoch}",
                )
        axis.set(xlabel="layer", ylabel="effective rank (seed mean; dashed: initial)", yscale="log")
        axis.set_title(group.replace("_", " "), fontsize=9)
    axes[0, -1].legend(fontsize=6)
    figure.suptitle(title, fontsize=8)
    paths.append(save_figure(figure, out_dir / "degeneracy_by_layer.png"))
    return paths


def plot_gradients_over_training(
    config: DeepLinearConfig, summary: dict[str, Any], out_dir: Path, title: str
) -> Path:
    """Layer-mean gradient norms through training, and their and the loss's ratio to
    orthogonal's; the judgement window is shaded."""
    section = summary["gradient_norms_over_training"]
    epochs, labels = section["epochs"], summary["conditions"]
    relative = section.get("relative_to_orthogonal", {})
    figure, axes = new_figure(1, 3 if relative else 2, (4.2, 3.3))
    for column, (key, what) in enumerate(
        (
            ("layer_mean_activation_gradient_norm", "activations"),
            ("layer_mean_weight_gradient_norm", "weights"),
        )
    ):
        axis = axes[0, column]
        plot_each(axis, epochs, section[key], config.conditions, labels, marker="o")
        axis.set(xlabel="epoch", ylabel=f"layer mean |dLoss/d {what}|", xscale="symlog")
        axis.set_yscale("log")
    if relative:
        axis = axes[0, 2]
        for index, name in enumerate(config.conditions):
            if name not in relative:
                continue
            color = f"C{index}"
            axis.plot(
                epochs,
                relative[name]["gradient_norm_ratio"],
                "-o",
                color=color,
                markersize=3,
                label=f"{labels[name]}: gradient norm",
            )
            axis.plot(
                epochs,
                relative[name]["loss_ratio"],
                "--s",
                color=color,
                markersize=3,
                label=f"{labels[name]}: loss",
            )
        axis.axhline(1.0, color="k", linewidth=0.6)
        axis.set(
            xlabel="epoch",
            ylabel=f"seed-mean ratio to {labels[section['reference']]}",
            xscale="symlog",
            yscale="log",
        )
        axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    start, end = config.judge_window
    note = f"judgement window: epochs {start}-{end}"
    for axis in axes[0]:
        axis.set_xlim(left=0)
        if end <= config.epochs:
            axis.axvspan(start, end, color="0.9", zorder=0)
    note = f"shaded: {note}" if end <= config.epochs else f"{note}, after the end of this run"
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(f"{title}; {note}", fontsize=8)
    return save_figure(figure, out_dir / "gradient_norms_over_training.png")


def log_deep_linear_tensorboard(
    writer: Any, config: DeepLinearConfig, summary: dict[str, Any], raw: dict[str, Any]
) -> None:
    """The plotted series as TensorBoard scalars (seed means; per-layer series use step=layer)."""
    for name in config.conditions:
        log_series(writer, f"loss/{name}", summary["epochs"], summary["loss"][name]["mean"])
        for key in ("activation_gradient_norms", "weight_gradient_norms"):
            for epoch in summary["gradient_epochs"]:
                values = summary[key][name][f"epoch_{epoch}"]["mean"]
                log_series(writer, f"{key}/epoch_{epoch}/{name}", summary["layers"], values)
        section = summary["gradient_norms_over_training"]
        for key in ("layer_mean_activation_gradient_norm", "layer_mean_weight_gradient_norm"):
            values = section[key][name]["mean"]
            log_series(writer, f"{key}/{name}", section["epochs"], values)
        for group, measures in summary["degeneracy_over_training"].items():
            for measure in MEASURE_NAMES:
                values = measures[measure][name]["mean"]
                log_series(writer, f"{group}/{measure}/{name}", summary["measure_epochs"], values)


write_deep_linear_outputs = experiment_writer(
    "deep-linear", summarize_deep_linear, plot_deep_linear, log_deep_linear_tensorboard
)
