"""Outputs of the deep-linear experiment: results.json, the four claims, figures, TensorBoard.

``write_deep_linear_outputs`` turns the raw arrays of ``train_deep_linear`` into
- ``results.json``: every plotted number (mean, s.e. and per-seed values per condition) and the
  verdict on each of the post's four claims with the numbers and rule behind it;
- ``loss_vs_epoch.png``, ``gradient_norms.png``, ``degeneracy_over_training.png``,
  ``degeneracy_by_layer.png``;
- the same series as TensorBoard scalars, and ``config.json``.

Claims are judged over seeds with paired differences (see ``seed_statistics``), never from one
run; the rules are written next to each verdict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from learnsyn.degeneracy.deep_linear import DeepLinearConfig, train_deep_linear
from learnsyn.degeneracy.measures import MEASURE_NAMES
from learnsyn.degeneracy.outputs import (
    log_series,
    new_figure,
    open_tensorboard_writer,
    plot_mean_with_error,
    save_figure,
    torch_threads,
    write_experiment_outputs,
)
from learnsyn.degeneracy.seed_statistics import (
    SIGNIFICANCE_STANDARD_ERRORS,
    mean_and_standard_error,
    paired_difference,
    significantly_greater,
    summarize_over_seeds,
)

MEASURE_GROUPS = ("weight_product", "activation_covariance", "layer_to_output_jacobian")
# Reported over training: the product, and the covariance of the last hidden layer. Reported per
# layer (at the gradient epochs and the end): the covariances and the layer-to-output Jacobians.
# Gradient norms "neither vanish nor explode" when the largest and smallest layer's seed-mean
# norm are within this factor; they "vanish" when the first layer's norm is below 1 / factor of
# the last layer's.
GRADIENT_SPREAD_FACTOR = 10.0
# The loss "plateaus" when it falls by less than this factor over the second half of training.
PLATEAU_FACTOR = 2.0
MEASURE_LABELS = {
    "effective_rank": "effective rank",
    "participation_ratio": "participation ratio",
    "fraction_below_threshold": "fraction of s < threshold x RMS(s)",
}


def last_hidden_layer_index(config: DeepLinearConfig) -> int:
    """0-based index of the last hidden layer's output (layer L-1; the output layer if L = 1)."""
    return max(config.depth - 2, 0)


def layer_profile_points(raw: dict[str, Any]) -> list[int]:
    """Indices into ``measure_epochs`` where per-layer profiles are reported: the gradient
    epochs and the final epoch."""
    epochs = raw["measure_epochs"]
    wanted = {*raw["gradient_epochs"], epochs[-1]}
    return [index for index, epoch in enumerate(epochs) if epoch in wanted]


def _by_condition(values: Any, config: DeepLinearConfig) -> dict[str, np.ndarray]:
    """Split a network-first array into ``{condition: (seeds, ...)}``."""
    array = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    return {
        name: array[index * config.seeds : (index + 1) * config.seeds]
        for index, name in enumerate(config.conditions)
    }


def summarize_deep_linear(config: DeepLinearConfig, raw: dict[str, Any]) -> dict[str, Any]:
    """Everything plotted, per condition, as mean / standard_error / per_seed."""
    labels = {
        spec_name: spec.label(config.fold_axis)
        for spec_name, spec in zip(config.conditions, config.init_specs)
    }
    loss = _by_condition(raw["loss"], config)
    population = _by_condition(raw["population_loss"], config)
    activation_norms = _by_condition(raw["activation_gradient_norms"], config)
    weight_norms = _by_condition(raw["weight_gradient_norms"], config)
    summary: dict[str, Any] = {
        "experiment": "deep-linear",
        "fold_axis": config.fold_axis,
        "small_value_threshold": config.small_value_threshold,
        "small_value_threshold_meaning": "fraction of singular values below threshold x RMS",
        "conditions": {name: labels[name] for name in config.conditions},
        "seeds_per_condition": config.seeds,
        "epochs": list(range(config.epochs + 1)),
        "loss": {name: summarize_over_seeds(loss[name]) for name in config.conditions},
        "population_loss": {
            name: summarize_over_seeds(population[name]) for name in config.conditions
        },
        "final_loss": {name: summarize_over_seeds(loss[name][:, -1]) for name in config.conditions},
        "gradient_epochs": raw["gradient_epochs"],
        "layers": list(range(1, config.depth + 1)),
        "activation_gradient_norms": {},
        "weight_gradient_norms": {},
        "measure_epochs": raw["measure_epochs"],
        "teacher_degeneracy": {
            measure: summarize_over_seeds(values)
            for measure, values in raw["teacher_measures"].items()
        },
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
    by_layer_points = layer_profile_points(raw)
    for group in MEASURE_GROUPS:
        over_training: dict[str, Any] = {}
        by_layer: dict[str, Any] = {}
        for measure in MEASURE_NAMES:
            per_condition = _by_condition(raw["measures"][group][measure], config)
            if group == "weight_product":
                over_training[measure] = {
                    name: summarize_over_seeds(values) for name, values in per_condition.items()
                }
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
    summary["claims"] = evaluate_deep_linear_claims(config, raw)
    return summary


def _find_condition(config: DeepLinearConfig, kind: str, fold_k: int, scaled: bool) -> str | None:
    for name, spec in zip(config.conditions, config.init_specs):
        if spec.kind == kind and spec.fold_k == fold_k and (spec.gain < 1.0) == scaled:
            if scaled or spec.gain == 1.0:
                return name
    return None


def _layer_mean(norms: np.ndarray) -> np.ndarray:
    return norms.mean(axis=-1)


def _not_evaluated(statement: str, missing: str) -> dict[str, Any]:
    return {"statement": statement, "verdict": "not evaluated", "reason": f"needs {missing}"}


def evaluate_deep_linear_claims(
    config: DeepLinearConfig, raw: dict[str, Any]
) -> list[dict[str, Any]]:
    """Judge the post's four claims over seeds; each entry has statement, rule, numbers, verdict."""
    fold0 = _find_condition(config, "gaussian", 0, scaled=False)
    fold1 = _find_condition(config, "gaussian", 1, scaled=False)
    orthogonal = _find_condition(config, "orthogonal", 0, scaled=False)
    scaled = _find_condition(config, "orthogonal", 0, scaled=True)
    loss = _by_condition(raw["loss"], config)
    final = {name: values[:, -1] for name, values in loss.items()}
    norms = _by_condition(raw["activation_gradient_norms"], config)
    epochs = raw["gradient_epochs"]
    init_index = epochs.index(0) if 0 in epochs else None
    few_index = len(epochs) - 1
    threshold = f"{SIGNIFICANCE_STANDARD_ERRORS:g} s.e. of the paired difference over seeds"

    def verdict(flag: bool) -> str:
        return "confirmed" if flag else "not confirmed"

    claims: list[dict[str, Any]] = []
    statement = (
        "Fold 0 plateaus at a suboptimal loss although its gradients neither vanish nor explode"
    )
    if fold0 is None or orthogonal is None or init_index is None:
        claims.append(_not_evaluated(statement, "fold0, orthogonal and gradient epoch 0"))
    else:
        profile = norms[fold0][:, init_index].mean(axis=0)
        spread = float(profile.max() / profile.min())
        halfway = loss[fold0][:, config.epochs // 2]
        drop = float(np.mean(halfway) / np.mean(final[fold0]))
        suboptimal = significantly_greater(final[fold0], final[orthogonal])
        claims.append(
            {
                "statement": statement,
                "rule": (
                    f"final Fold 0 loss above orthogonal's by > {threshold}; loss falls by less "
                    f"than x{PLATEAU_FACTOR:g} over the second half of training; at "
                    f"initialization max/min over layers of the seed-mean activation-gradient "
                    f"norm < {GRADIENT_SPREAD_FACTOR:g}"
                ),
                "final_loss_minus_orthogonal": paired_difference(final[fold0], final[orthogonal]),
                "loss_drop_factor_second_half": drop,
                "initial_gradient_norm_spread": spread,
                "verdict": verdict(
                    suboptimal and drop < PLATEAU_FACTOR and spread < GRADIENT_SPREAD_FACTOR
                ),
            }
        )

    statement = "Fold 1 has larger gradient norms than Fold 0, yet trains worse"
    if fold0 is None or fold1 is None:
        claims.append(_not_evaluated(statement, "fold0 and fold1"))
    else:
        larger = {
            f"epoch_{epoch}": paired_difference(
                _layer_mean(norms[fold1][:, index]), _layer_mean(norms[fold0][:, index])
            )
            for index, epoch in enumerate(epochs)
        }
        larger_flags = [
            significantly_greater(
                _layer_mean(norms[fold1][:, index]), _layer_mean(norms[fold0][:, index])
            )
            for index in sorted({init_index or 0, few_index})
        ]
        worse = significantly_greater(final[fold1], final[fold0])
        claims.append(
            {
                "statement": statement,
                "rule": (
                    f"layer-mean activation-gradient norm of Fold 1 above Fold 0's by > "
                    f"{threshold} at epoch {epochs[init_index or 0]} and epoch "
                    f"{epochs[few_index]}; final loss above Fold 0's by > {threshold}"
                ),
                "gradient_norm_fold1_minus_fold0": larger,
                # Secondary (not used by the verdict): the layer mean of log norms, which weighs
                # every layer equally instead of letting the largest norms dominate.
                "log_gradient_norm_fold1_minus_fold0": {
                    f"epoch_{epoch}": paired_difference(
                        _layer_mean(np.log(norms[fold1][:, index])),
                        _layer_mean(np.log(norms[fold0][:, index])),
                    )
                    for index, epoch in enumerate(epochs)
                },
                "final_loss_fold1_minus_fold0": paired_difference(final[fold1], final[fold0]),
                "verdict": verdict(all(larger_flags) and worse),
            }
        )

    statement = "orthogonal initialization trains best"
    if orthogonal is None or len(config.conditions) < 2:
        claims.append(_not_evaluated(statement, "orthogonal and another condition"))
    else:
        others = [name for name in config.conditions if name != orthogonal]
        claims.append(
            {
                "statement": statement,
                "rule": f"final orthogonal loss below every other condition's by > {threshold}",
                "final_loss_other_minus_orthogonal": {
                    name: paired_difference(final[name], final[orthogonal]) for name in others
                },
                "verdict": verdict(
                    all(significantly_greater(final[name], final[orthogonal]) for name in others)
                ),
            }
        )

    statement = "orthogonal x g (g < 1) has vanishing gradient norms yet still trains well under "
    statement += "Adam" if config.optimizer == "adam" else "SGD (the post's claim is for Adam)"
    if scaled is None or fold0 is None or init_index is None:
        claims.append(_not_evaluated(statement, "orthogonal-x<g<1>, fold0 and gradient epoch 0"))
    else:
        profile = norms[scaled][:, init_index].mean(axis=0)
        first_to_last = float(profile[0] / profile[-1])
        gain = config.init_specs[config.conditions.index(scaled)].gain
        trains_well = significantly_greater(final[fold0], final[scaled])
        entry = {
            "statement": statement,
            "condition": scaled,
            "optimizer": config.optimizer,
            "rule": (
                f"at initialization first-layer / last-layer activation-gradient norm < "
                f"1/{GRADIENT_SPREAD_FACTOR:g}; final loss below Fold 0's by > {threshold}"
            ),
            "initial_first_to_last_gradient_ratio": first_to_last,
            "expected_ratio_gain_power": gain ** (config.depth - 1),
            "final_loss_fold0_minus_scaled": paired_difference(final[fold0], final[scaled]),
            "verdict": verdict(first_to_last < 1 / GRADIENT_SPREAD_FACTOR and trains_well),
        }
        if orthogonal is not None:
            entry["final_loss_ratio_to_orthogonal"] = float(
                np.mean(final[scaled]) / np.mean(final[orthogonal])
            )
        claims.append(entry)
    return claims


def plot_deep_linear(
    config: DeepLinearConfig, summary: dict[str, Any], out_dir: Path
) -> list[Path]:
    """Write the four PNG figures and return their paths."""
    names, labels = config.conditions, summary["conditions"]
    title = (
        f"{config.depth}-layer linear net, width {config.width}, {config.optimizer} "
        f"lr {config.learning_rate:g}, fold axis: {config.fold_axis}, {config.seeds} seeds"
    )
    paths = []

    figure, axes = new_figure(1, 1, (6.4, 4.2))
    for name in names:
        plot_mean_with_error(
            axes[0, 0], summary["epochs"], summary["loss"][name]["per_seed"], labels[name]
        )
    axes[0, 0].set(xlabel="epoch", ylabel="training MSE (mean +- s.e.)", yscale="log")
    axes[0, 0].set_title(title, fontsize=8)
    axes[0, 0].legend(fontsize=8)
    paths.append(save_figure(figure, out_dir / "loss_vs_epoch.png"))

    epochs = summary["gradient_epochs"]
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
    paths.append(save_figure(figure, out_dir / "gradient_norms.png"))

    groups = list(summary["degeneracy_over_training"])
    figure, axes = new_figure(len(groups), len(MEASURE_NAMES), (4.0, 3.2))
    for row, group in enumerate(groups):
        for column, measure in enumerate(MEASURE_NAMES):
            axis = axes[row, column]
            for name in names:
                values = summary["degeneracy_over_training"][group][measure][name]["per_seed"]
                plot_mean_with_error(
                    axis, summary["measure_epochs"], values, labels[name], marker="o"
                )
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


def log_deep_linear_tensorboard(
    config: DeepLinearConfig, summary: dict[str, Any], out_dir: Path
) -> None:
    """The plotted series as TensorBoard scalars (seed means; per-layer series use step=layer)."""
    writer = open_tensorboard_writer(out_dir)
    try:
        for name in config.conditions:
            log_series(writer, f"loss/{name}", summary["epochs"], summary["loss"][name]["mean"])
            for key in ("activation_gradient_norms", "weight_gradient_norms"):
                for epoch in summary["gradient_epochs"]:
                    values = summary[key][name][f"epoch_{epoch}"]["mean"]
                    log_series(writer, f"{key}/epoch_{epoch}/{name}", summary["layers"], values)
            for group, measures in summary["degeneracy_over_training"].items():
                for measure in MEASURE_NAMES:
                    values = measures[measure][name]["mean"]
                    log_series(
                        writer, f"{group}/{measure}/{name}", summary["measure_epochs"], values
                    )
    finally:
        writer.close()


def write_deep_linear_outputs(
    config: DeepLinearConfig, raw: dict[str, Any], out_dir: Path, **extra: Any
) -> dict[str, Any]:
    """Write config.json, results.json, figures and TensorBoard logs; return the summary."""
    return write_experiment_outputs(
        config,
        "deep-linear",
        out_dir,
        summarize=lambda: summarize_deep_linear(config, raw),
        plot=lambda summary, out: plot_deep_linear(config, summary, out),
        log_tensorboard=lambda summary, out: log_deep_linear_tensorboard(config, summary, out),
        extra=extra,
    )


def run_deep_linear(config: DeepLinearConfig, out_dir: str | Path) -> dict[str, Any]:
    """Validate, train, and write figures, results.json, TensorBoard logs and config.json.

    Returns the summary dict that is also written to ``<out_dir>/results.json``.
    """
    config.validate()
    started = time.perf_counter()
    with torch_threads(config.threads):
        raw = train_deep_linear(config)
    training_seconds = time.perf_counter() - started
    return write_deep_linear_outputs(
        config, raw, Path(out_dir), training_seconds=training_seconds, torch_threads=config.threads
    )
