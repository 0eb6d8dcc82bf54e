"""Outputs of the synapse experiment: results.json, the post's claims, figures, TensorBoard.

``write_synapse_outputs`` turns the raw arrays of ``train_synapse_degeneracy`` into
- ``results.json``: every plotted number (mean, s.e. and per-seed values per init), the
  iterations to reach the stated fraction of the best final objective, and the verdict on each
  of the post's claims with the numbers and rule behind it;
- the PNG figures and TensorBoard scalars of ``synapse_figures``, and ``config.json``.

``write_synapse_grid_outputs`` does that for every point of a grid (in the output directory for
one point, in ``<out>/<cell>-m<m>-h<T>/`` for several) and adds the grid summary
(``point_analysis`` per point: selected objective and its gap to the optimal linear synapse,
iterations to the target, degeneracy at initialization and along training, time scales used,
rank correlations across inits with bootstrap errors, the isometric control's window gain) to
results.json, with its tables in ``summary.md``.

Claims are judged over seeds with paired differences (``seed_statistics``), never from one run.
Higher objectives are better (memory area, lifetime, ...), unlike the deep-linear losses.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learnsyn.degeneracy.outputs import (
    experiment_writer,
    save_resolved_config,
    write_json_atomic,
)
from learnsyn.degeneracy.rank_correlation import (
    between_init_spearman,
    bootstrap_spearman,
    within_init_spearman,
)
from learnsyn.degeneracy.recurrent_jacobians import JACOBIAN_MEASURES, timescales_used
from learnsyn.degeneracy.seed_statistics import (
    mean_and_standard_error,
    paired_difference,
    summarize_over_seeds,
)
from learnsyn.degeneracy.synapse_claims import (
    FOLD0_STATEMENT,
    FOLD1_STATEMENT,
    MECHANISM_STATEMENT,
    MIN_VALIDATIONS,
    ORTHOGONAL_STATEMENT,
    SCALED_STATEMENT,
    SPEED_STATEMENT,
    judge_fold0_claim,
    judge_fold1_claim,
    judge_mechanism_claim,
    judge_orthogonal_best_claim,
    judge_scaled_claim,
    judge_speed_claim,
)
from learnsyn.degeneracy.synapse_figures import (
    PER_ITERATION_SERIES,
    log_synapse_tensorboard,
    plot_synapse,
)
from learnsyn.degeneracy.synapse_labels import (
    CELL_DEFAULT_INIT,
    ISOMETRIC_INIT,
    SPECIAL_INITS,
    init_label,
)
from learnsyn.degeneracy.verdicts import (
    CONFIRMED,
    CONTRADICTED,
    NO_VERDICT_DIVERGED,
    NO_VERDICT_TOO_SHORT,
    NOT_CONFIRMED,
    all_finite,
    no_verdict,
    not_evaluated,
    post_inits,
)
from learnsyn.initialization import parse_init_spec

if TYPE_CHECKING:  # the report reads a run's results; it never imports the experiment
    from learnsyn.degeneracy.synapse import SynapseDegeneracyConfig

# The final objective is the mean evaluation over this last fraction of training.
FINAL_WINDOW = 0.1
# "Early" gradient norms: the mean over the first iterations / EARLY_FRACTION (at least one).
EARLY_FRACTION = 20


def early_iterations(config: SynapseDegeneracyConfig) -> int:
    """How many first iterations the early gradient norms average over."""
    return max(1, config.iterations // EARLY_FRACTION)


def final_window_iterations(config: SynapseDegeneracyConfig) -> list[int]:
    """The evaluated iterations in the last ``FINAL_WINDOW`` of training (at least the last)."""
    start = config.iterations * (1.0 - FINAL_WINDOW)
    return [iteration for iteration in config.evaluation_iterations if iteration >= start]


def final_objectives(config: SynapseDegeneracyConfig, evaluation: np.ndarray) -> np.ndarray:
    """Per run ``(inits, seeds)``: the mean evaluation over the final window.

    One evaluation point is a noisy summary of where a run ended (meta-training wanders by
    +-10 % late in training), so the final objective averages the last ``FINAL_WINDOW``.
    """
    count = len(final_window_iterations(config))
    return evaluation[..., -count:].mean(axis=-1)


def selected_objectives(config: SynapseDegeneracyConfig, raw: dict[str, Any]) -> np.ndarray:
    """Per run ``(inits, seeds)``: the final evaluation of the parameters model selection kept
    (``runs.train``); the final-window mean of the validation curve for raw arrays without it."""
    if "selected_objective" in raw:
        return np.asarray(raw["selected_objective"], dtype=np.float64)
    return final_objectives(config, raw["evaluation"])


def target_inits(config: SynapseDegeneracyConfig) -> list[int]:
    """The inits whose best mean sets the speed target: the post's (the degeneracy inits), not
    the controls nor the cell's own default, so that an init far ahead (``auto``; the tanh
    RNN's ``default``, review, session 36) cannot leave most of the post's runs censored and
    their speed claims decided by a few runs in the tail (review, session 31: all paired
    differences 0 +- 0); an init that is also a control (``--inits fold0 auto`` with the
    default controls) is a control here; every init where no degeneracy init is run."""
    names = list(config.init_names)
    special = {*config.controls, *SPECIAL_INITS}
    named = [i for i, name in enumerate(names) if name not in special]
    return named or list(range(len(names)))


def iterations_to_fraction(
    evaluation: np.ndarray,
    evaluation_iterations: list[int],
    final: np.ndarray,
    fraction: float,
    candidates: list[int] | None = None,
) -> tuple[float, int, np.ndarray]:
    """Target ``fraction x`` the best seed-mean final objective among the ``candidates`` inits
    (None: all), that init's index, and per run ``(inits, seeds)`` the first evaluated
    iteration reaching it (NaN: never reached). Where no candidate has a finite mean (each has
    a diverged run) there is no target: NaN, index None, and no run reaches it; likewise where
    the best mean is not positive (a fraction of it would lie above it: the lifetime metric's
    -1 for a curve that never crosses the threshold; review, session 37)."""
    final_means = final.mean(axis=1)
    if candidates is not None:
        kept = np.full_like(final_means, np.nan)
        kept[candidates] = final_means[candidates]
        final_means = kept
    if not np.isfinite(final_means).any():
        return math.nan, None, np.full(final.shape, np.nan)
    best_index = int(np.nanargmax(final_means))
    if not final_means[best_index] > 0:
        return math.nan, None, np.full(final.shape, np.nan)
    target = fraction * float(final_means[best_index])
    reached = evaluation >= target
    first = np.argmax(reached, axis=-1)
    iterations = np.asarray(evaluation_iterations, dtype=np.float64)[first]
    return target, best_index, np.where(reached.any(axis=-1), iterations, np.nan)


def _summarize_reached(values: np.ndarray) -> dict[str, Any]:
    """Mean +- s.e. over the runs that reached the target; how many did; per-seed (NaN: never)."""
    reached = values[np.isfinite(values)]
    mean, standard_error = mean_and_standard_error(reached) if len(reached) else (np.nan, np.nan)
    return {
        "reached": int(len(reached)),
        "seeds": int(len(values)),
        "mean": float(mean),
        "standard_error": float(standard_error),
        "per_seed": values,
    }


def _peak_of_mean(evaluation: np.ndarray, evaluation_iterations: list[int]) -> dict[str, Any]:
    """Where the seed-mean evaluation curve peaks, with the mean +- s.e. there."""
    mean, standard_error = mean_and_standard_error(evaluation)
    if not np.isfinite(mean).any():  # a diverged run at every evaluation
        return {"iteration": None, "mean": math.nan, "standard_error": math.nan}
    index = int(np.nanargmax(mean))
    return {
        "iteration": evaluation_iterations[index],
        "mean": float(mean[index]),
        "standard_error": float(standard_error[index]),
    }


def summarize_synapse(config: SynapseDegeneracyConfig, raw: dict[str, Any]) -> dict[str, Any]:
    """Everything plotted, per init, as mean / standard_error / per_seed."""
    names = config.init_names
    evaluation = raw["evaluation"]
    final = final_objectives(config, evaluation)
    target, best_index, reach = iterations_to_fraction(
        evaluation, config.evaluation_iterations, final, config.fraction, target_inits(config)
    )
    early = early_iterations(config)
    summary: dict[str, Any] = {
        "experiment": "synapse",
        "cell": config.cell,
        "hidden_size": config.hidden_size,
        "fold_axis": config.fold_axis,
        "task": config.task,
        "task_params": config.task_param_dict,
        "metric": config.metric,
        "horizon": config.horizon,
        "small_value_threshold": config.small_value_threshold,
        "small_value_threshold_meaning": "fraction of singular values below threshold x RMS",
        "inits": {name: init_label(name, config.cell, config.fold_axis) for name in names},
        "seeds_per_init": config.seeds,
        "iterations": list(range(config.iterations)),
        "evaluation_iterations": config.evaluation_iterations,
        "measurement_iterations": config.measurement_iterations,
        "window_lengths": list(config.resolved_window_lengths),
        "early_gradient_iterations": early,
    }

    def per_init(values: Any, summarize: Any = summarize_over_seeds) -> dict[str, Any]:
        """``{init: summarize(values[init's index])}`` for values with the init axis first."""
        return {name: summarize(values[index]) for index, name in enumerate(names)}

    for key in PER_ITERATION_SERIES:
        summary[key] = per_init(raw[key])
    summary["skipped_updates"] = per_init(raw["skipped"], lambda skipped: skipped.sum(axis=-1))
    summary["evaluation"] = per_init(evaluation)
    summary["initial_objective"] = per_init(evaluation[:, :, 0])
    summary["final_objective"] = per_init(final)
    summary["final_objective_iterations"] = final_window_iterations(config)
    summary["peak_of_mean_evaluation"] = per_init(
        evaluation, lambda values: _peak_of_mean(values, config.evaluation_iterations)
    )
    summary["iterations_to_fraction"] = {
        "fraction": config.fraction,
        "best_init": None if best_index is None else names[best_index],
        "best_final_objective": math.nan if best_index is None else float(final[best_index].mean()),
        "target": target,
        "rule": (
            f"first evaluated iteration (every {config.evaluate_every}) whose fixed-batch "
            f"{config.metric} is >= {config.fraction:g} x the best seed-mean final value of "
            "the post's inits (neither the controls, which set it before session 31, nor the "
            "cell's default, which set it before session 36)"
        ),
        "by_init": per_init(reach, _summarize_reached),
    }
    norms = early_norms(config, raw)  # (one rule: the rank correlations read the same)
    summary["early_grad_norm"] = per_init(norms["total"])
    summary["early_recurrent_grad_norm"] = per_init(norms["recurrent"])
    points = config.measurement_iterations
    jacobian, matrix = raw["jacobian"], raw["recurrent_matrix"]
    summary["jacobian_products"] = {
        measure: per_init(
            jacobian[measure],
            lambda values: {
                f"iteration_{iteration}": summarize_over_seeds(values[:, index])
                for index, iteration in enumerate(points)
            },
        )
        for measure in JACOBIAN_MEASURES
    }
    summary["jacobian_full_window_over_training"] = {
        measure: per_init(jacobian[measure][:, :, :, -1]) for measure in JACOBIAN_MEASURES
    }
    summary["recurrent_matrix_over_training"] = {
        measure: per_init(matrix[measure]) for measure in JACOBIAN_MEASURES
    }
    summary["run_seconds"] = per_init(raw["run_seconds"], lambda seconds: seconds)
    summary["selected_objective"] = per_init(selected_objectives(config, raw))
    summary["selected_objective_meaning"] = (
        f"{config.metric} of the parameters model selection kept (runs.train: best validation "
        "score, iteration 0 included), evaluated on the run's own final Monte Carlo batch"
    )
    summary["claims"] = evaluate_synapse_claims(config, raw, reach)
    return summary


def censored_at(config: SynapseDegeneracyConfig) -> int:
    """Where a run that never reaches the target counts as reaching it: one evaluation after
    the end."""
    return config.iterations + config.evaluate_every


def early_norms(config: SynapseDegeneracyConfig, raw: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per run ``(inits, seeds)``: the recurrent-matrix (``recurrent``) and the total
    (``total``) meta-gradient norm, mean over the first ``early_iterations`` (skipping NaN)."""
    early = early_iterations(config)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN runs: mean of empty
        return {
            "recurrent": np.nanmean(raw["recurrent_grad_norm"][:, :, :early], axis=-1),
            "total": np.nanmean(raw["grad_norm"][:, :, :early], axis=-1),
        }


def evaluate_synapse_claims(
    config: SynapseDegeneracyConfig, raw: dict[str, Any], reach: np.ndarray
) -> list[dict[str, Any]]:
    """Read each claim's per-seed numbers from a run and judge it (``synapse_claims``)."""
    names = list(config.init_names)
    fold0, fold1, orthogonal, scaled = post_inits(names, skip=SPECIAL_INITS)

    def by_name(values: Any) -> dict[str, Any]:
        return {name: values[index] for index, name in enumerate(names)}

    # The objective of the parameters model selection kept (runs.train's final evaluation).
    final = by_name(selected_objectives(config, raw))
    early = early_iterations(config)
    norms = early_norms(config, raw)
    early_recurrent, early_total = by_name(norms["recurrent"]), by_name(norms["total"])
    rms, rank = raw["jacobian"]["rms_singular_value"], raw["jacobian"]["effective_rank"]
    # Seed-mean RMS singular value of P_L at initialization, over window lengths L.
    initial_gain = by_name([rms[index, :, 0].mean(axis=0) for index in range(len(names))])
    initial_window_gain, initial_rank = by_name(rms[:, :, 0, -1]), by_name(rank[:, :, 0, -1])
    speed = by_name(np.where(np.isfinite(reach), reach, censored_at(config)))
    horizon = config.horizon
    degenerate = [name for name in (fold0, fold1) if name is not None]
    claims: list[dict[str, Any]] = []

    if orthogonal is None or not degenerate:
        claims.append(not_evaluated(MECHANISM_STATEMENT, "orthogonal and fold0 or fold1"))
    else:
        claims.append(
            judge_mechanism_claim(
                initial_rank[orthogonal], {name: initial_rank[name] for name in degenerate}, horizon
            )
        )

    if fold0 is None or orthogonal is None:
        claims.append(not_evaluated(FOLD0_STATEMENT, "fold0 and orthogonal"))
    else:
        entry = judge_fold0_claim(
            final[orthogonal],
            final[fold0],
            initial_window_gain[orthogonal],
            initial_window_gain[fold0],
            early_recurrent[orthogonal],
            early_recurrent[fold0],
            horizon,
            early,
        )
        # Context, not in the rule: through the tanh every init's products shrink with L.
        entry["initial_jacobian_gain_spread_over_window"] = {
            name: float(initial_gain[name].max() / initial_gain[name].min())
            for name in (fold0, orthogonal)
        }
        claims.append(entry)

    if fold0 is None or fold1 is None:
        claims.append(not_evaluated(FOLD1_STATEMENT, "fold0 and fold1"))
    else:
        entry = judge_fold1_claim(
            early_recurrent[fold1], early_recurrent[fold0], final[fold0], final[fold1], early
        )
        entry["early_total_grad_norm_fold1_minus_fold0"] = paired_difference(
            early_total[fold1], early_total[fold0]
        )
        claims.append(entry)

    if orthogonal is None or not degenerate:
        claims.append(not_evaluated(SPEED_STATEMENT, "orthogonal and fold0 or fold1"))
    elif not all_finite(*[final[name] for name in (orthogonal, *degenerate)]):
        # A run whose objective is non-finite "never reaches" the target: no speed to compare.
        claims.append(no_verdict(SPEED_STATEMENT, NO_VERDICT_DIVERGED, "non-finite objective"))
    else:
        claims.append(
            judge_speed_claim(
                speed[orthogonal],
                {name: speed[name] for name in degenerate},
                config.fraction,
                censored_at(config),
            )
        )

    others = [name for name in names if name != orthogonal and name not in SPECIAL_INITS]
    if orthogonal is None or not others:
        claims.append(
            not_evaluated(ORTHOGONAL_STATEMENT, "orthogonal and another of the post's inits")
        )
    else:
        entry = judge_orthogonal_best_claim(
            final[orthogonal], {name: final[name] for name in others}
        )
        if CELL_DEFAULT_INIT in names:
            entry["final_objective_orthogonal_minus_cell_default"] = paired_difference(
                final[orthogonal], final[CELL_DEFAULT_INIT]
            )
        claims.append(entry)

    if scaled is None or orthogonal is None:
        claims.append(not_evaluated(SCALED_STATEMENT, "orthogonal-x<g<1> and orthogonal"))
    else:
        entry = judge_scaled_claim(
            initial_window_gain[orthogonal],
            initial_window_gain[scaled],
            final[orthogonal],
            final[scaled],
            scaled,
            horizon,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            entry["initial_window_gain_ratio_to_orthogonal"] = float(
                initial_window_gain[scaled].mean() / initial_window_gain[orthogonal].mean()
            )
            entry["early_recurrent_grad_norm_ratio_to_orthogonal"] = float(
                early_recurrent[scaled].mean() / early_recurrent[orthogonal].mean()
            )
        entry["linear_prediction_gain_power"] = parse_init_spec(scaled).gain ** horizon
        entry["early_recurrent_grad_norm_orthogonal_minus_scaled"] = paired_difference(
            early_recurrent[orthogonal], early_recurrent[scaled]
        )
        if fold0 is not None:  # the deep-linear comparison, reported only
            entry["final_objective_scaled_minus_fold0"] = paired_difference(
                final[scaled], final[fold0]
            )
        claims.append(entry)
    return [_unless_too_short(claim, config) for claim in claims]


def _unless_too_short(claim: dict[str, Any], config: SynapseDegeneracyConfig) -> dict[str, Any]:
    """A claim about training (every one but the mechanism's, judged at initialization) gets
    no verdict from a run with fewer than ``MIN_VALIDATIONS`` validations after the start (a
    1-iteration run read "trains well: confirmed" after one Adam update: review, session 30).
    Claims already without a verdict keep theirs."""
    validations = len(config.evaluation_iterations) - 1
    judged = (CONFIRMED, NOT_CONFIRMED, CONTRADICTED)
    if claim["statement"] == MECHANISM_STATEMENT or claim["verdict"] not in judged:
        return claim
    if validations >= MIN_VALIDATIONS:
        return claim
    return no_verdict(
        claim["statement"],
        NO_VERDICT_TOO_SHORT,
        f"{validations} validation(s) after the start ({config.iterations} iterations, one "
        f"every {config.evaluate_every}); training claims need {MIN_VALIDATIONS}",
    )


write_synapse_outputs = experiment_writer(
    "synapse", summarize_synapse, plot_synapse, log_synapse_tensorboard
)


def _row_timescales(row: dict[str, Any], horizon: int) -> float:
    """``timescales_used`` of a tuned linear baseline's matrix A (NaN when it has none)."""
    matrix = row.get("params", {}).get("A")
    if matrix is None:
        return float("nan")
    size = int(round(np.sqrt(len(np.ravel(matrix)))))
    return timescales_used(np.linalg.eigvals(np.reshape(matrix, (size, size))), horizon)


def point_analysis(
    config: SynapseDegeneracyConfig, raw: dict[str, Any], baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """One grid point: per init the selected objective, its gap to the baseline, the
    iterations to the target, degeneracy at initialization and along training; the rank
    correlations across inits (bootstrap over seeds); the isometric control's window gain."""
    names = list(config.init_names)
    evaluation = raw["evaluation"]
    final = final_objectives(config, evaluation)
    target, _, reach = iterations_to_fraction(
        evaluation, config.evaluation_iterations, final, config.fraction, target_inits(config)
    )
    never = censored_at(config)
    speed = np.where(np.isfinite(reach), reach, never)
    selected = selected_objectives(config, raw)
    norms = early_norms(config, raw)
    early_recurrent, early_total = norms["recurrent"], norms["total"]
    jacobian = raw["jacobian"]
    initial = {key: jacobian[key][:, :, 0, -1] for key in JACOBIAN_MEASURES}
    after = {key: jacobian[key][:, :, -1, -1] for key in JACOBIAN_MEASURES}
    timescales = np.asarray(raw["timescales_used"], dtype=np.float64)
    analysis: dict[str, Any] = {
        "cell": config.cell,
        "hidden_size": config.hidden_size,
        "horizon": config.horizon,
        "seeds": config.seeds,
        "lr": config.lr,
        "iterations": config.iterations,
        "measurement_iterations": config.measurement_iterations,
        "target": target,
        "iterations_to_target_rule": (
            f"first validation (every {config.evaluate_every}) >= {config.fraction:g} x the best "
            f"init's seed-mean final-window validation; never = {never}"
        ),
        "window": f"P_{config.horizon}, the product of the {config.horizon} window Jacobians",
    }
    gap = None
    if baseline is not None:
        value = float(baseline["metrics"][config.metric])
        gap = 1.0 - selected / value
        analysis["baseline"] = {
            "name": baseline["name"],
            "value": value,
            "method": baseline.get("method"),
            "timescales_used": _row_timescales(baseline, config.horizon),
            "gap_rule": "gap = 1 - selected objective / baseline value (per run)",
        }
    by_init = {}
    for index, name in enumerate(names):
        entry = {
            "label": init_label(name, config.cell, config.fold_axis),
            "selected_objective": summarize_over_seeds(selected[index]),
            "iterations_to_target": summarize_over_seeds(speed[index]),
            "reached_target": int(np.isfinite(reach[index]).sum()),
            "initial_window_rms": summarize_over_seeds(initial["rms_singular_value"][index]),
            "initial_window_effective_rank": summarize_over_seeds(initial["effective_rank"][index]),
            "initial_fraction_below_threshold": summarize_over_seeds(
                initial["fraction_below_threshold"][index]
            ),
            "final_window_effective_rank": summarize_over_seeds(after["effective_rank"][index]),
            "early_recurrent_grad_norm": summarize_over_seeds(early_recurrent[index]),
            "early_grad_norm": summarize_over_seeds(early_total[index]),
            "timescales_used_over_training": summarize_over_seeds(timescales[index]),
            "diverged_runs": int(np.sum(raw["diverged"][index])),
            # runs whose selected objective the final evaluation's stationarity check flags (a
            # transient from the initial state scored: the burn-in is too short for them)
            "non_stationary_runs": int(np.sum(~np.asarray(raw["stationary"][index], dtype=bool))),
        }
        if gap is not None:
            entry["gap_to_baseline"] = summarize_over_seeds(gap[index])
        by_init[name] = entry
    analysis["by_init"] = by_init
    # A run that diverged before reaching the target has no training speed: counted at "never"
    # it would read as the slowest run; the rank correlations leave it out (review, session 31).
    dropped = np.asarray(raw["diverged"], dtype=bool) & ~np.isfinite(reach)
    ranked_speed = np.where(dropped, np.nan, speed)
    analysis["rank_correlation_diverged_runs_left_out"] = int(dropped.sum())
    pairs = {
        "fraction_below_threshold_vs_iterations_to_target": (
            initial["fraction_below_threshold"],
            ranked_speed,
        ),
        "initial_effective_rank_vs_iterations_to_target": (initial["effective_rank"], ranked_speed),
        "early_recurrent_grad_norm_vs_iterations_to_target": (early_recurrent, ranked_speed),
        "early_grad_norm_vs_iterations_to_target": (early_total, ranked_speed),
    }
    if gap is not None:
        pairs["final_timescales_used_vs_gap"] = (timescales[:, :, -1], gap)
        pairs["final_window_effective_rank_vs_gap"] = (after["effective_rank"], gap)
    analysis["rank_correlations"] = {
        key: bootstrap_spearman(x, y, config.bootstrap, config.seed)
        for key, (x, y) in pairs.items()
    }
    # the pooled rho also ranks the inits against each other: within inits is the test of
    # "this number predicts how fast a run trains"; between inits is descriptive (session 31)
    analysis["rank_correlations_within_init"] = {
        key: within_init_spearman(x, y, config.bootstrap, config.seed)
        for key, (x, y) in pairs.items()
    }
    analysis["rank_correlations_between_init"] = {
        key: between_init_spearman(x, y) for key, (x, y) in pairs.items()
    }
    analysis["rank_correlation_rule"] = (
        "rank_correlations: Spearman rho over every (init, seed) run of the point, which also "
        "ranks the inits against each other; rank_correlations_within_init: the mean over inits "
        "of rho over seeds, the test of prediction among runs of one init; both with s.e. and "
        f"95 % interval from {config.bootstrap} bootstrap resamples of whole seeds, a direction "
        "where the interval excludes 0, |rho| exceeds the t cutoff for the seeds in s.e. and "
        "at most 5 % of resamples lack a rho; rank_correlations_between_init: rho of the inits' "
        "means over the same runs on both sides (descriptive: a few chosen inits). In all three "
        "a run that diverged before reaching the target is left out, not counted as never "
        "reaching it"
    )
    if ISOMETRIC_INIT in names:
        index = names.index(ISOMETRIC_INIT)
        analysis["isometric_control"] = {
            "window_lengths": list(config.resolved_window_lengths),
            "rms_singular_value_at_init": jacobian["rms_singular_value"][index, :, 0, :].mean(
                axis=0
            ),
            "effective_rank_at_init": jacobian["effective_rank"][index, :, 0, :].mean(axis=0),
        }
    return analysis


def _mean_error(entry: dict[str, Any], digits: int = 3) -> str:
    mean, error = float(entry["mean"]), float(entry["standard_error"])
    return f"{mean:.{digits}g} +- {error:.{max(digits - 1, 1)}g}"


def grid_markdown(summary: dict[str, Any]) -> str:
    """The grid summary as markdown tables (``summary.md``): per point and init, then the rank
    correlations."""
    lines = [
        "| point | init | selected | gap to baseline | iterations to target (reached) | "
        "RMS s of P_T at init | eff. rank of P_T at init | fraction s < thr at init | "
        "time scales used: init -> end (baseline) | early dObj/dW | not stationary |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, point in summary["analysis"].items():
        baseline = point.get("baseline", {})
        for init, entry in point["by_init"].items():
            used = entry["timescales_used_over_training"]
            gap = _mean_error(entry["gap_to_baseline"], 2) if "gap_to_baseline" in entry else "-"
            lines.append(
                f"| {name} | {init} | {_mean_error(entry['selected_objective'], 4)} | {gap} | "
                f"{_mean_error(entry['iterations_to_target'])} "
                f"({entry['reached_target']}/{point['seeds']}) | "
                f"{_mean_error(entry['initial_window_rms'], 2)} | "
                f"{_mean_error(entry['initial_window_effective_rank'])} | "
                f"{_mean_error(entry['initial_fraction_below_threshold'], 2)} | "
                f"{float(used['mean'][0]):.2f} -> {float(used['mean'][-1]):.2f} "
                f"({baseline.get('timescales_used', float('nan')):.2f}) | "
                f"{_mean_error(entry['early_recurrent_grad_norm'], 2)} | "
                f"{entry['non_stationary_runs']}/{point['seeds']} |"
            )
    lines += [
        "",
        "| point | correlation | over | rho | s.e. | 95 % interval | direction | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, point in summary["analysis"].items():
        within = point.get("rank_correlations_within_init", {})  # (absent before session 31)
        between = point.get("rank_correlations_between_init", {})
        for key, entry in point["rank_correlations"].items():
            for over, shown in (("all runs", entry), ("within inits", within.get(key))):
                if shown is None:
                    continue
                low, high = shown["interval"]
                lines.append(
                    f"| {name} | {key} | {over} | {shown['rho']:.2f} | "
                    f"{shown['standard_error']:.2f} | [{low:.2f}, {high:.2f}] | "
                    f"{shown['direction']} | {shown['runs']} |"
                )
            if key in between:
                lines.append(
                    f"| {name} | {key} | init means ({between[key]['inits']}) | "
                    f"{between[key]['rho']:.2f} | | | descriptive | |"
                )
    return "\n".join(lines) + "\n"


def write_synapse_grid_outputs(
    config: SynapseDegeneracyConfig, trained: dict[str, Any], out_dir: Path, **extra: Any
) -> dict[str, Any]:
    """Every grid point's outputs (``write_synapse_outputs``; in ``out_dir`` itself for a
    one-point grid, else in ``<out_dir>/<point>/``), the grid summary in results.json (with the
    point's own keys for a one-point grid) and its tables in ``summary.md``; returns the
    summary."""
    points = [config.point(*p) for p in config.points]
    raws = [trained["points"][point.point_name] for point in points]
    analyses = {
        point.point_name: point_analysis(point, raw, trained["gap_baselines"].get(point.point_name))
        for point, raw in zip(points, raws)
    }
    grid = {
        "grid": {
            "cells": list(config.cells),
            "hidden_sizes": list(config.hidden_sizes),
            "horizons": list(config.horizons),
            "inits": list(config.init_names),
            "seeds": config.seeds,
            "points": list(analyses),
        },
        "pilot": trained["pilot"],
        "analysis": analyses,
    }
    out_dir = Path(out_dir)
    if len(points) == 1:
        summary = write_synapse_outputs(points[0], raws[0], out_dir, **extra, **grid)
    else:
        for point, raw in zip(points, raws):
            name = point.point_name
            write_synapse_outputs(point, raw, out_dir / name, **extra, analysis=analyses[name])
        save_resolved_config(out_dir, config, experiment="synapse")
        summary = {"experiment": "synapse", **grid, **extra}
        write_json_atomic(out_dir / "results.json", summary, indent=None)
    (out_dir / "summary.md").write_text(grid_markdown(summary))
    return summary
