"""Outputs of the spectra experiment: results.json, the facts checked, figures, TensorBoard.

``write_spectra_outputs`` turns the raw per-trial spectra of ``compute_spectra`` into
- ``results.json``: per init / network and depth, the mean +- s.e. over trials of every statistic
  (mean and variance of s^2, effective rank, participation ratio, small-value fraction), the
  plotted histograms, and a list of the expected facts with the numbers that check them;
- ``product_spectra.png``, ``product_moments_vs_depth.png``, ``jacobian_spectra.png``,
  ``jacobian_moments_vs_depth.png``, ``jacobian_pennington.png`` (the normalized variance of
  s^2 against Pennington et al.'s prediction);
- TensorBoard scalars (step = depth) and histograms, and ``config.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from learnsyn.degeneracy.outputs import (
    experiment_writer,
    log_series,
    new_figure,
    plot_mean_with_error,
    save_figure,
)
from learnsyn.degeneracy.seed_statistics import mean_and_standard_error
from learnsyn.degeneracy.spectra_config import SpectraConfig
from learnsyn.initialization import parse_init_spec

# log10 of singular values below this are numerically zero in float64 products of this length;
# they are counted in the leftmost histogram bin.
LOG10_FLOOR = -12.0
LOG10_CEILING = 3.0
_MARKERS = ("o", "s", "^", "v", "D", "x", "+", "*")
# The Pennington check: relative tolerance, the largest prediction / width checked (finite-width
# corrections grow with it), and the bound on a measured variance whose prediction is 0.
PENNINGTON_RELATIVE_TOLERANCE = 0.2
PENNINGTON_MAX_PREDICTION_OVER_WIDTH = 4.0
PENNINGTON_ZERO_TOLERANCE = 1e-12
# The moment checks' fixed tolerances (each widened to 3 standard errors): a product's mean s^2
# relative to g^(2L), and a Jacobian's mean s^2 against 1 (criticality).
PRODUCT_MEAN_TOLERANCE = 0.15
CRITICAL_TOLERANCE = 0.25
STATISTIC_LABELS = {
    "mean_squared_singular_value": "mean of s^2",
    "variance_squared_singular_value": "variance of s^2",
    "effective_rank": "effective rank",
    "fraction_below_threshold": "fraction of s < threshold x RMS(s)",
}


def _summarize_depths(entries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``{depth: {statistic: mean/standard_error/per_trial}}`` from per-trial statistic dicts."""
    summary = {}
    for depth, entry in entries.items():
        trials = entry["statistics"]
        per_depth = {name: _over_trials([trial[name] for trial in trials]) for name in trials[0]}
        for key in ("active_fraction", "predicted_normalized_variance"):
            if key in entry:
                per_depth[key] = _over_trials(entry[key])
        summary[str(depth)] = per_depth
    return summary


def _over_trials(values: Any) -> dict[str, Any]:
    """Mean, s.e. and per-trial values: spectra are averaged over independent draws
    ("trials"), not over training seeds."""
    mean, standard_error = mean_and_standard_error(values)
    return {"mean": mean, "standard_error": standard_error, "per_trial": np.asarray(values)}


def _histogram(singular: np.ndarray, bins: int) -> dict[str, Any]:
    """Fraction of singular values per log10 bin (values below the floor in the first bin)."""
    logs = np.log10(np.maximum(singular.ravel(), 10.0**LOG10_FLOOR))
    # Bins centred on whole multiples of the width, so that s = 1 (log 0) is not on an edge.
    half_width = (LOG10_CEILING - LOG10_FLOOR) / bins / 2
    edges = np.linspace(LOG10_FLOOR - half_width, LOG10_CEILING + half_width, bins + 2)
    counts, _ = np.histogram(np.clip(logs, LOG10_FLOOR, LOG10_CEILING), bins=edges)
    return {"log10_bin_edges": edges, "fraction": counts / max(logs.size, 1)}


def summarize_spectra(config: SpectraConfig, raw: dict[str, Any]) -> dict[str, Any]:
    """Everything plotted, plus the checked facts."""
    products = {}
    for init_name, entries in raw["products"].items():
        products[init_name] = {
            "label": parse_init_spec(init_name).label(config.fold_axis),
            "by_depth": _summarize_depths(entries),
            "histograms": {
                str(depth): _histogram(entries[depth]["singular_values"], config.histogram_bins)
                for depth in config.product_depths
            },
        }
    jacobians = {}
    for network in raw["jacobian_networks"]:
        entries = raw["jacobians"][network.name]
        sigma_w, sigma_b = network.weight_and_bias_scale
        jacobians[network.name] = {
            "label": network.label,
            "nonlinearity": network.nonlinearity,
            "weight_kind": network.weight_kind,
            "sigma_w": sigma_w,
            "sigma_b": sigma_b,
            "q_star": network.q_star if network.nonlinearity == "hard_tanh" else None,
            "by_depth": _summarize_depths(entries),
            "histograms": {
                str(depth): _histogram(entries[depth]["singular_values"], config.histogram_bins)
                for depth in config.jacobian_depths
            },
        }
    summary = {
        "experiment": "spectra",
        "fold_axis": config.fold_axis,
        "small_value_threshold": config.small_value_threshold,
        "small_value_threshold_meaning": "fraction of singular values below threshold x RMS",
        "histogram_note": f"log10 singular values; values below 1e{LOG10_FLOOR:g} in the first bin",
        "products": {
            "width": config.product_width,
            "trials": config.product_trials,
            "depths": raw["product_depths"],
            "histogram_depths": list(config.product_depths),
            "fuss_catalan_variance": {str(depth): depth for depth in raw["product_depths"]},
            "by_init": products,
        },
        "jacobians": {
            "width": config.jacobian_width,
            "trials": config.jacobian_trials,
            "depths": list(config.jacobian_depths),
            "by_network": jacobians,
        },
    }
    summary["checks"] = check_spectra_facts(config, summary)
    return summary


def _statistic(entry: dict[str, Any], depth: int, name: str) -> tuple[float, float]:
    values = entry["by_depth"][str(depth)][name]
    return float(values["mean"]), float(values["standard_error"])


def check_spectra_facts(config: SpectraConfig, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The expected facts, each with its numbers and whether they hold in this run. A check
    whose tolerance widens to 3 standard errors also says whether the fixed tolerance alone
    decided it (``resolved``): where it did not, a noisy estimate "holds" because it is noisy,
    which is no test of the fact (review, session 37)."""
    checks = []
    depths = summary["products"]["depths"]
    by_init = summary["products"]["by_init"]
    for init_name, entry in by_init.items():
        spec = parse_init_spec(init_name)
        if spec.kind == "gaussian" and spec.fold_k == 0:
            # a product of L matrices of entries N(0, g^2 / n): E s^2 = g^(2L), var(s^2) about
            # L g^(4L) (Fuss-Catalan at g = 1, scaled by g^(4L)); both checked relative to g
            gain2 = spec.gain**2
            means = {
                depth: _statistic(entry, depth, "mean_squared_singular_value") for depth in depths
            }
            variances = {
                depth: _relative(
                    _statistic(entry, depth, "variance_squared_singular_value")[0] / depth,
                    2 * depth * math.log(gain2),
                )
                for depth in depths
            }
            mean_fact = "stays about g^2=1" if gain2 == 1 else f"is about g^(2L) (g^2={gain2:g})"
            holds, resolved = _within(
                (
                    (_relative(m, d * math.log(gain2)) - 1, _relative(e, d * math.log(gain2)))
                    for d, (m, e) in means.items()
                ),
                PRODUCT_MEAN_TOLERANCE,
            )
            checks.append(
                {
                    "fact": f"{init_name} products: mean s^2 {mean_fact}",
                    "mean_squared_singular_value_by_depth": {str(d): m for d, m in means.items()},
                    "holds": holds,
                    "resolved": resolved,
                    "rule": f"|mean/g^(2L) - 1| < max({PRODUCT_MEAN_TOLERANCE:g}, 3 s.e./g^(2L)) "
                    "at every depth",
                }
            )
            small = [depth for depth in depths if depth <= config.product_width / 8]
            scale = "L" if gain2 == 1 else "L g^(4L)"
            checks.append(
                {
                    "fact": f"{init_name} products: var(s^2) is about {scale} (Fuss-Catalan, "
                    "large n)",
                    "variance_over_depth": {str(d): variances[d] for d in depths},
                    "holds": bool(small) and all(0.8 < variances[d] < 1.25 for d in small),
                    "rule": "0.8 < var(s^2)/(L g^(4L)) < 1.25 for L <= n/8 (finite-n terms grow "
                    "as L/n)",
                }
            )
        if spec.kind == "orthogonal" and spec.fold_k == 0:
            largest = max(depths)
            mean, _ = _statistic(entry, largest, "variance_squared_singular_value")
            checks.append(
                {
                    "fact": f"{init_name} products: every singular value equals g^L",
                    "variance_squared_singular_value_at_max_depth": mean,
                    "holds": _relative(mean, 4 * largest * math.log(spec.gain)) < 1e-12,
                    "rule": "var(s^2) < 1e-12 g^(4L) at the largest L",
                }
            )
    networks = summary["jacobians"]["by_network"]
    deepest = max(summary["jacobians"]["depths"])
    checks += [
        check_pennington_prediction(name, entry, summary["jacobians"])
        for name, entry in networks.items()
    ]
    for name, entry in networks.items():
        mean_square, error = _statistic(entry, deepest, "mean_squared_singular_value")
        variance, _ = _statistic(entry, deepest, "variance_squared_singular_value")
        holds, resolved = _within([(mean_square - 1, error)], CRITICAL_TOLERANCE)
        checks.append(
            {
                "fact": f"{name}: critical (mean s^2 about 1) at depth {deepest}",
                "mean_squared_singular_value": mean_square,
                "standard_error": error,
                "variance_squared_singular_value": variance,
                "holds": holds,
                "resolved": resolved,
                "rule": f"|mean s^2 - 1| < max({CRITICAL_TOLERANCE:g}, 3 s.e.)",
            }
        )
    return checks


def _within(deviations, tolerance: float) -> tuple[bool, bool]:
    """``(holds, resolved)`` over ``(deviation, standard error)`` pairs: every |deviation| below
    ``max(tolerance, 3 s.e.)``; resolved where every 3 s.e. is at most ``tolerance``, so the
    fixed tolerance, not the noise, decided it."""
    pairs = list(deviations)
    holds = all(abs(deviation) < max(tolerance, 3 * error) for deviation, error in pairs)
    return holds, all(3 * error <= tolerance for _, error in pairs)


def _relative(value: float, log_scale: float) -> float:
    """``value / exp(log_scale)`` without forming the scale, which over- or underflows a float
    at large depths with a gain other than 1 (``g^(4L)``; review, session 36: the report
    crashed after the whole computation); NaN where the value is not finite, 0 for 0."""
    if not math.isfinite(value):
        return math.nan
    if value == 0:
        return 0.0
    exponent = math.log(abs(value)) - log_scale
    return math.copysign(math.inf if exponent > 709 else math.exp(exponent), value)


def check_pennington_prediction(
    name: str, entry: dict[str, Any], jacobians: dict[str, Any]
) -> dict[str, Any]:
    """Measured var(s^2)/mean(s^2)^2 of the Jacobian against Pennington et al.'s prediction
    (``spectra.layer_normalized_variance`` summed over layers, p measured per layer).

    The prediction is for infinite width; finite-width corrections grow with prediction / n,
    so only depths whose prediction is at most ``n / PENNINGTON_MAX_PREDICTION_OVER_WIDTH``
    are checked (all are reported).
    """
    width = jacobians["width"]
    limit = width / PENNINGTON_MAX_PREDICTION_OVER_WIDTH
    by_depth, checked, zero_holds, relative = {}, [], True, []
    for depth in jacobians["depths"]:
        measured, error = _statistic(entry, depth, "normalized_variance_squared_singular_value")
        predicted, _ = _statistic(entry, depth, "predicted_normalized_variance")
        by_depth[str(depth)] = {
            "measured": measured,
            "standard_error": error,
            "predicted": predicted,
        }
        if predicted > limit:
            continue
        if depth == 1 and entry["weight_kind"] == "orthogonal":
            # J J^T = sigma^2 D^2 at one layer: measured equals (1-p)/p whatever the data, so
            # it cannot test the prediction (review, session 36: it made holds true alone)
            continue
        checked.append(depth)
        if predicted == 0:
            zero_holds = zero_holds and measured < PENNINGTON_ZERO_TOLERANCE
        else:
            relative.append((measured / predicted - 1, error / predicted))
    holds, resolved = _within(relative, PENNINGTON_RELATIVE_TOLERANCE)
    formula = "L(1-p)/p" if entry["weight_kind"] == "orthogonal" else "L/p"
    return {
        "fact": (
            f"{name}: var(s^2)/mean(s^2)^2 matches Pennington et al. ({formula}, p = measured "
            f"fraction of units in the linear regime, summed over layers)"
        ),
        "normalized_variance_by_depth": by_depth,
        "checked_depths": checked,
        "holds": bool(checked) and zero_holds and holds,
        "resolved": resolved,
        "rule": (
            f"|measured/predicted - 1| < max({PENNINGTON_RELATIVE_TOLERANCE:g}, 3 s.e./predicted)"
            f" at every depth whose prediction is <= n/{PENNINGTON_MAX_PREDICTION_OVER_WIDTH:g}"
            f" (n = {width}), depth 1 of orthogonal weights excepted (an identity there); a "
            f"prediction of 0 needs measured < {PENNINGTON_ZERO_TOLERANCE:g}"
        ),
    }


def plot_pennington(summary: dict[str, Any], out_dir: Path, config: SpectraConfig) -> Path:
    """Measured normalized variance of s^2 (mean +- s.e. over trials) against the prediction."""
    networks = summary["jacobians"]["by_network"]
    depths = summary["jacobians"]["depths"]
    figure, axes = new_figure(1, 2, (4.6, 3.6))
    for column, kind in enumerate(("gaussian", "orthogonal")):
        axis = axes[0, column]
        index = 0
        for entry in networks.values():
            if entry["weight_kind"] != kind:
                continue
            color, marker = f"C{index}", _MARKERS[index % len(_MARKERS)]
            index += 1
            values = np.stack(
                [
                    entry["by_depth"][str(depth)]["normalized_variance_squared_singular_value"][
                        "per_trial"
                    ]
                    for depth in depths
                ],
                axis=1,
            )
            plot_mean_with_error(
                axis, depths, values, entry["label"], color=color, marker=marker, linestyle=""
            )
            predicted = [
                entry["by_depth"][str(depth)]["predicted_normalized_variance"]["mean"]
                for depth in depths
            ]
            axis.plot(depths, predicted, "--", color=color, linewidth=1)
        formula = "L(1-p)/p" if kind == "orthogonal" else "L/p"
        axis.set(xscale="log", xlabel="depth L", ylabel="var(s^2) / mean(s^2)^2")
        axis.set_yscale("symlog", linthresh=1e-2)
        axis.set_ylim(bottom=0)
        axis.set_title(f"{kind} weights; dashed: prediction {formula}", fontsize=8)
        axis.legend(fontsize=6)
    figure.suptitle(
        f"Jacobian spectra vs Pennington, Schoenholz & Ganguli (2017), n={config.jacobian_width}, "
        f"{config.jacobian_trials} trials; p measured per layer",
        fontsize=8,
    )
    return save_figure(figure, out_dir / "jacobian_pennington.png", dpi=90)


def _plot_histograms(axis, histograms, depths, title: str) -> None:
    """Overlay the log10 singular value histograms of several depths in one panel."""
    for depth in depths:
        histogram = histograms[str(depth)]
        axis.stairs(histogram["fraction"], histogram["log10_bin_edges"], label=f"L={depth}")
    axis.set_title(title, fontsize=7)
    axis.set_xlabel("log10 singular value", fontsize=7)
    axis.set_ylabel("fraction", fontsize=7)
    axis.tick_params(labelsize=6)
    axis.legend(fontsize=6)


def _plot_moments(axes_row, entries: dict[str, Any], depths: list[int], reference=None) -> None:
    for column, statistic in enumerate(STATISTIC_LABELS):
        axis = axes_row[column]
        for index, entry in enumerate(entries.values()):
            values = np.stack(
                [entry["by_depth"][str(depth)][statistic]["per_trial"] for depth in depths], axis=1
            )
            # Distinct markers and dashes: some settings coincide (hard-tanh at small q* is
            # linear), and their lines lie on top of each other.
            plot_mean_with_error(
                axis,
                depths,
                values,
                entry["label"],
                marker=_MARKERS[index % len(_MARKERS)],
                linestyle="--" if entry.get("weight_kind") == "orthogonal" else "-",
            )
        if statistic == "variance_squared_singular_value":
            if reference is not None:
                axis.plot(depths, reference, "k--", label="Fuss-Catalan: L")
            axis.set_yscale("symlog", linthresh=1e-3)
        if statistic == "mean_squared_singular_value":
            axis.set_yscale("log")
        axis.set(xscale="log", xlabel="depth L", ylabel=STATISTIC_LABELS[statistic])


def _legend_below(figure, axis) -> None:
    handles, labels = axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=7)


def plot_spectra(
    config: SpectraConfig, summary: dict[str, Any], raw: dict[str, Any], out_dir: Path
) -> list[Path]:
    """Write the five PNG figures and return their paths."""
    paths = []
    products = summary["products"]
    inits = products["by_init"]
    figure, axes = new_figure(1, len(inits), (3.2, 2.6))
    for column, entry in enumerate(inits.values()):
        _plot_histograms(
            axes[0, column], entry["histograms"], config.product_depths, entry["label"]
        )
    figure.suptitle(
        f"singular values of products of L {config.product_width}x{config.product_width} "
        f"matrices ({config.product_trials} trials); {summary['histogram_note']}",
        fontsize=8,
    )
    paths.append(save_figure(figure, out_dir / "product_spectra.png", dpi=90))

    figure, axes = new_figure(1, len(STATISTIC_LABELS), (3.6, 3.0))
    _plot_moments(axes[0], inits, products["depths"], reference=products["depths"])
    _legend_below(figure, axes[0, 1])
    figure.suptitle(
        f"products, n={config.product_width}, mean +- s.e. over {config.product_trials} trials; "
        f"threshold {config.small_value_threshold:g} x RMS",
        fontsize=8,
    )
    paths.append(save_figure(figure, out_dir / "product_moments_vs_depth.png", dpi=90))

    networks = summary["jacobians"]["by_network"]
    depths = summary["jacobians"]["depths"]
    columns = min(len(networks), 4)
    rows = -(-len(networks) // columns)
    figure, axes = new_figure(rows, columns, (3.0, 2.4))
    for index, (name, entry) in enumerate(networks.items()):
        _plot_histograms(axes.flat[index], entry["histograms"], depths, name)
    for axis in axes.flat[len(networks) :]:
        axis.set_visible(False)
    figure.suptitle(
        f"input-output Jacobian singular values at criticality, n={config.jacobian_width}, "
        f"{config.jacobian_trials} trials; {summary['histogram_note']}",
        fontsize=8,
    )
    paths.append(save_figure(figure, out_dir / "jacobian_spectra.png", dpi=80))

    figure, axes = new_figure(1, len(STATISTIC_LABELS), (3.6, 3.0))
    _plot_moments(axes[0], networks, depths)
    _legend_below(figure, axes[0, 0])
    figure.suptitle(
        f"Jacobians at criticality, n={config.jacobian_width}, mean +- s.e. over "
        f"{config.jacobian_trials} trials",
        fontsize=8,
    )
    paths.append(save_figure(figure, out_dir / "jacobian_moments_vs_depth.png", dpi=90))
    paths.append(plot_pennington(summary, out_dir, config))
    return paths


def log_spectra_tensorboard(
    writer: Any, config: SpectraConfig, summary: dict[str, Any], raw: dict[str, Any]
) -> None:
    """Statistics vs depth as scalars (step = depth) and the spectra as histograms."""
    for group, entries, depths in (
        ("products", summary["products"]["by_init"], summary["products"]["depths"]),
        ("jacobians", summary["jacobians"]["by_network"], summary["jacobians"]["depths"]),
    ):
        for name, entry in entries.items():
            for statistic in entry["by_depth"][str(depths[0])]:
                values = [entry["by_depth"][str(d)][statistic]["mean"] for d in depths]
                log_series(writer, f"{group}/{statistic}/{name}", depths, values)
    for group, spectra in (("products", raw["products"]), ("jacobians", raw["jacobians"])):
        for name, entries in spectra.items():
            for depth, entry in entries.items():
                logs = np.log10(np.maximum(entry["singular_values"].ravel(), 1e-30))
                writer.add_histogram(f"{group}_log10_singular_values/{name}", logs, depth)


write_spectra_outputs = experiment_writer(
    "spectra", summarize_spectra, plot_spectra, log_spectra_tensorboard
)
