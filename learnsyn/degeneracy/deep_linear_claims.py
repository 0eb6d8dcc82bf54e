"""The post's claims about the deep linear experiment, judged over seeds.

Each ``judge_*`` function takes per-seed numbers (1-d arrays indexed by seed, or
``(seeds, depth)`` gradient-norm profiles; seeds are paired across conditions) and returns one
claim entry: ``statement``, ``rule``, the numbers behind it and a ``verdict`` from
``verdicts``. They know nothing about training, so they are tested on synthetic data with the
effect present, absent and reversed. ``evaluate_deep_linear_claims`` reads those numbers from a
run and adds the verdicts that need the run itself: ``not evaluated`` (a condition is missing),
``no verdict: training diverged`` and ``no verdict: run too short to judge``.

Every claim is judged at absolute epochs, the judgement window ``(start, end)`` of the config:
losses are compared at ``end`` (not at the run's last epoch), so a 5-epoch run and a 5000-epoch
run answer the same question, and a run shorter than ``end`` gets no verdict.

Gradient norms are those with respect to each layer's activations, on the whole training set;
a "layer mean" is the mean over layers of one network's norms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnsyn.degeneracy.deep_linear_config import DeepLinearConfig
from learnsyn.degeneracy.seed_statistics import (
    paired_difference,
    paired_direction,
)
from learnsyn.degeneracy.verdicts import (
    CONTRADICTION_RULE,
    NO_VERDICT_TOO_SHORT,
    NO_VERDICT_UNDEFINED,
    SIGNIFICANCE,
    combine,
    combine_directions,
    no_verdict,
    not_evaluated,
    post_inits,
    unjudged,
)

# Gradient norms "neither vanish nor explode" when the largest and smallest layer's seed-mean
# norm are within this factor; they "vanish" when the first layer's norm is below 1 / factor of
# the last layer's.
GRADIENT_SPREAD_FACTOR = 10.0
# The loss "plateaus" when it falls by less than this factor over the judgement window.
PLATEAU_FACTOR = 2.0
# "Trains well" against orthogonal: the geometric-mean ratio of the final losses (scaled /
# orthogonal), at the upper end of its 95 % t interval, is below this factor; it is
# contradicted when even the lower end is above it.
ORTHOGONAL_LOSS_FACTOR = 2.0

PLATEAU_STATEMENT = (
    "Fold 0 plateaus at a suboptimal loss although its gradients neither vanish nor explode"
)
FOLD1_STATEMENT = "Fold 1 has larger gradient norms than Fold 0, yet trains worse"
ORTHOGONAL_STATEMENT = "orthogonal initialization trains best"
GRADIENT_SIZE_STATEMENT = (
    "late in training the degenerate networks (Fold 0, Fold 1) have larger gradient norms than "
    "orthogonal, yet a higher loss: gradient size does not track how well a network trains"
)


def scaled_orthogonal_statement(optimizer: str) -> str:
    """The fourth claim, stating the optimizer it was run with."""
    statement = "orthogonal x g (g < 1) has vanishing gradient norms yet still trains well under "
    return statement + ("Adam" if optimizer == "adam" else "SGD (the post's claim is for Adam)")


def layer_mean(norms: Any) -> np.ndarray:
    """Per seed, the mean over layers of a ``(seeds, depth)`` gradient-norm profile."""
    return np.asarray(norms, dtype=np.float64).mean(axis=-1)


def _unjudged(statement: str, *values: Any) -> dict[str, Any] | None:
    return unjudged(statement, "a compared network has a non-finite loss or gradient", *values)


def judge_plateau_claim(
    fold0_start: Any,
    fold0_end: Any,
    orthogonal_end: Any,
    fold0_initial_norms: Any,
    window: tuple[int, int],
) -> dict[str, Any]:
    """Fold 0's loss at the window end is significantly above orthogonal's, it falls by less
    than ``PLATEAU_FACTOR`` over the window, and its initial gradient profile spans less than
    ``GRADIENT_SPREAD_FACTOR`` over layers. Contradicted when Fold 0 ends significantly below
    orthogonal."""
    unjudged = _unjudged(
        PLATEAU_STATEMENT, fold0_start, fold0_end, orthogonal_end, fold0_initial_norms
    )
    if unjudged is not None:
        return unjudged
    start, end = window
    profile = np.asarray(fold0_initial_norms, dtype=np.float64).mean(axis=0)
    spread = float(profile.max() / profile.min())
    drop = float(np.mean(fold0_start) / np.mean(fold0_end))
    direction = paired_direction(fold0_end, orthogonal_end)
    holds = direction > 0 and drop < PLATEAU_FACTOR and spread < GRADIENT_SPREAD_FACTOR
    return {
        "statement": PLATEAU_STATEMENT,
        "rule": (
            f"Fold 0 loss at epoch {end} above orthogonal's by > {SIGNIFICANCE}; seed-mean loss "
            f"falls by less than x{PLATEAU_FACTOR:g} from epoch {start} to epoch {end}; at "
            f"initialization max/min over layers of the seed-mean activation-gradient norm < "
            f"{GRADIENT_SPREAD_FACTOR:g}; {CONTRADICTION_RULE} (Fold 0 below orthogonal)"
        ),
        "judge_window": [start, end],
        "loss_fold0_minus_orthogonal": paired_difference(fold0_end, orthogonal_end),
        "loss_drop_factor_over_window": drop,
        "initial_gradient_norm_spread": spread,
        "verdict": combine(holds, direction < 0),
    }


def judge_fold1_claim(
    fold0_norms: dict[int, Any],
    fold1_norms: dict[int, Any],
    fold0_end: Any,
    fold1_end: Any,
    judged_epoch: int,
) -> dict[str, Any]:
    """Fold 1's layer-mean gradient norm is significantly above Fold 0's at every epoch in
    ``fold0_norms`` (initialization and the last early epoch), and its loss at
    ``judged_epoch`` is significantly above Fold 0's. Contradicted when Fold 1 ends
    significantly below Fold 0."""
    epochs = sorted(fold0_norms)
    unjudged = _unjudged(
        FOLD1_STATEMENT, fold0_end, fold1_end, *fold0_norms.values(), *fold1_norms.values()
    )
    if unjudged is not None:
        return unjudged
    larger = {
        epoch: paired_direction(layer_mean(fold1_norms[epoch]), layer_mean(fold0_norms[epoch]))
        for epoch in epochs
    }
    direction = paired_direction(fold1_end, fold0_end)
    holds = all(flag > 0 for flag in larger.values()) and direction > 0
    epoch_text = " and ".join(f"epoch {epoch}" for epoch in epochs)
    return {
        "statement": FOLD1_STATEMENT,
        "rule": (
            f"layer-mean activation-gradient norm of Fold 1 above Fold 0's by > {SIGNIFICANCE} "
            f"at {epoch_text}; loss at epoch {judged_epoch} above Fold 0's by > {SIGNIFICANCE}; "
            f"{CONTRADICTION_RULE} (Fold 1 below Fold 0)"
        ),
        "gradient_norm_fold1_minus_fold0": {
            f"epoch_{epoch}": paired_difference(
                layer_mean(fold1_norms[epoch]), layer_mean(fold0_norms[epoch])
            )
            for epoch in epochs
        },
        "loss_fold1_minus_fold0": paired_difference(fold1_end, fold0_end),
        "verdict": combine(holds, direction < 0),
    }


def judge_orthogonal_best_claim(
    orthogonal_end: Any, others_end: dict[str, Any], judged_epoch: int
) -> dict[str, Any]:
    """Orthogonal's loss at ``judged_epoch`` is significantly below every other condition's.
    Contradicted when some other condition ends significantly below orthogonal."""
    unjudged = _unjudged(ORTHOGONAL_STATEMENT, orthogonal_end, *others_end.values())
    if unjudged is not None:
        return unjudged
    return {
        "statement": ORTHOGONAL_STATEMENT,
        "rule": (
            f"orthogonal loss at epoch {judged_epoch} below every other condition's by > "
            f"{SIGNIFICANCE}; {CONTRADICTION_RULE} (another condition below orthogonal)"
        ),
        "loss_other_minus_orthogonal": {
            name: paired_difference(end, orthogonal_end) for name, end in others_end.items()
        },
        "verdict": combine_directions(
            paired_direction(end, orthogonal_end) for end in others_end.values()
        ),
    }


def judge_scaled_orthogonal_claim(
    scaled_initial_norms: Any,
    fold0_end: Any,
    scaled_end: Any,
    orthogonal_end: Any,
    gain: float,
    optimizer: str,
    judged_epoch: int,
) -> dict[str, Any]:
    """Orthogonal x g has vanishing initial gradients (first / last layer's seed-mean norm
    below 1 / ``GRADIENT_SPREAD_FACTOR``), and at ``judged_epoch`` its loss is significantly
    below Fold 0's and within ``ORTHOGONAL_LOSS_FACTOR`` of orthogonal's (geometric mean of the
    per-seed ratios, upper end of the 95 % t interval). Contradicted when it ends significantly
    above Fold 0, or more than the factor above orthogonal even at the lower end."""
    statement = scaled_orthogonal_statement(optimizer)
    unjudged = _unjudged(statement, scaled_initial_norms, fold0_end, scaled_end, orthogonal_end)
    if unjudged is not None:
        return unjudged
    profile = np.asarray(scaled_initial_norms, dtype=np.float64).mean(axis=0)
    first_to_last = float(profile[0] / profile[-1])
    depth = profile.shape[0]
    against_fold0 = paired_direction(fold0_end, scaled_end)
    positive = np.all(np.asarray(scaled_end) > 0) and np.all(np.asarray(orthogonal_end) > 0)
    if not positive and against_fold0 >= 0:  # (above Fold 0 contradicts it whatever the log)
        return no_verdict(  # a loss of exactly 0: its log ratio is -inf (review, session 37)
            statement,
            NO_VERDICT_UNDEFINED,
            "a compared loss is exactly 0: the log ratio of the losses is undefined",
        )
    with np.errstate(divide="ignore", invalid="ignore"):  # (a 0 only where contradicted)
        log_ratio = paired_difference(np.log(scaled_end), np.log(orthogonal_end))
    margin = log_ratio["cutoff"] * log_ratio["standard_error"]
    bound = float(np.log(ORTHOGONAL_LOSS_FACTOR))
    within = bool(log_ratio["mean"] + margin < bound)
    beyond = bool(log_ratio["mean"] - margin > bound)
    vanishing = first_to_last < 1 / GRADIENT_SPREAD_FACTOR
    return {
        "statement": statement,
        "optimizer": optimizer,
        "rule": (
            f"at initialization first-layer / last-layer seed-mean activation-gradient norm < "
            f"1/{GRADIENT_SPREAD_FACTOR:g}; loss at epoch {judged_epoch} below Fold 0's by > "
            f"{SIGNIFICANCE}, and its geometric-mean ratio to orthogonal's loss below "
            f"x{ORTHOGONAL_LOSS_FACTOR:g} at the upper end of the 95 % Student t interval of "
            f"the paired log ratio; {CONTRADICTION_RULE} (above Fold 0, or "
            f"above x{ORTHOGONAL_LOSS_FACTOR:g} orthogonal's loss at the lower end)"
        ),
        "initial_first_to_last_gradient_ratio": first_to_last,
        "expected_ratio_gain_power": gain ** (depth - 1),
        "loss_fold0_minus_scaled": paired_difference(fold0_end, scaled_end),
        "log_loss_ratio_scaled_to_orthogonal": log_ratio,
        "loss_ratio_to_orthogonal": float(np.exp(log_ratio["mean"])),
        "allowed_loss_ratio_to_orthogonal": ORTHOGONAL_LOSS_FACTOR,
        "verdict": combine(vanishing and against_fold0 > 0 and within, against_fold0 < 0 or beyond),
    }


def judge_gradient_size_claim(
    degenerate: dict[str, dict[int, tuple[Any, Any]]],
    orthogonal: dict[int, tuple[Any, Any]],
) -> dict[str, Any]:
    """At every judged epoch (the keys of ``orthogonal``), each degenerate condition's
    layer-mean gradient norm and its loss are significantly above orthogonal's. Values are
    ``{epoch: (per-seed layer-mean norms, per-seed losses)}``. Contradicted when a degenerate
    condition's loss is significantly below orthogonal's at a judged epoch."""
    epochs = sorted(orthogonal)
    values = [orthogonal[epoch] for epoch in epochs]
    values += [entry[epoch] for entry in degenerate.values() for epoch in epochs]
    unjudged = _unjudged(GRADIENT_SIZE_STATEMENT, *[array for pair in values for array in pair])
    if unjudged is not None:
        return unjudged
    holds, reversed_outcome, numbers = True, False, {}
    for name, entry in degenerate.items():
        numbers[name] = {}
        for epoch in epochs:
            (norm, loss), (reference_norm, reference_loss) = entry[epoch], orthogonal[epoch]
            larger = paired_direction(norm, reference_norm)
            worse = paired_direction(loss, reference_loss)
            holds = holds and larger > 0 and worse > 0
            reversed_outcome = reversed_outcome or worse < 0
            numbers[name][f"epoch_{epoch}"] = {
                "gradient_norm_ratio": float(np.mean(norm) / np.mean(reference_norm)),
                "loss_ratio": float(np.mean(loss) / np.mean(reference_loss)),
                "gradient_norm_minus_orthogonal": paired_difference(norm, reference_norm),
                "loss_minus_orthogonal": paired_difference(loss, reference_loss),
            }
    epoch_text = " and ".join(f"epoch {epoch}" for epoch in epochs)
    return {
        "statement": GRADIENT_SIZE_STATEMENT,
        "rule": (
            f"at {epoch_text}, for each of Fold 0 / Fold 1 that was run: layer-mean "
            f"activation-gradient norm and loss both above orthogonal's by > {SIGNIFICANCE}; "
            f"{CONTRADICTION_RULE} (a degenerate network's loss below orthogonal's)"
        ),
        "relative_to_orthogonal": numbers,
        "verdict": combine(holds and bool(degenerate), reversed_outcome),
    }


def by_condition(values: Any, config: DeepLinearConfig) -> dict[str, np.ndarray]:
    """Split a network-first array (condition-major) into ``{condition: (seeds, ...)}``."""
    array = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    return {
        name: array[index * config.seeds : (index + 1) * config.seeds]
        for index, name in enumerate(config.conditions)
    }


def evaluate_deep_linear_claims(
    config: DeepLinearConfig, raw: dict[str, Any]
) -> list[dict[str, Any]]:
    """Judge the post's four claims and the gradient-size claim on a run's raw arrays."""
    fold0, fold1, orthogonal, scaled = post_inits(config.conditions)
    loss = by_condition(raw["loss"], config)
    norms = by_condition(raw["activation_gradient_norms"], config)
    schedule = list(raw["gradient_epochs"])
    start, end = config.judge_window
    early = sorted({0, max(config.gradient_epochs)})

    def gate(statement: str, needed: list[str | None], missing: str) -> dict[str, Any] | None:
        """The entry of a claim that cannot be judged on this run, or None."""
        if any(name is None for name in needed):
            return not_evaluated(statement, missing)
        # finite up to the judged epoch and at the early epochs Fold 1's claim reads: what a
        # network does after them is never compared (review, session 37: a divergence after
        # the window voided every claim)
        judged = [i for i, epoch in enumerate(schedule) if epoch <= end or epoch in early]
        unjudged = _unjudged(
            statement,
            *[loss[name][:, : end + 1] for name in needed],
            *[norms[name][:, judged] for name in needed],
        )
        if unjudged is not None:
            return unjudged
        if not config.judged:
            return no_verdict(
                statement,
                NO_VERDICT_TOO_SHORT,
                f"judged at epochs {start} and {end}; the run has {config.epochs} epochs",
            )
        return None

    def at(name: str, epoch: int) -> np.ndarray:
        return norms[name][:, schedule.index(epoch)]

    claims = []
    claims.append(
        gate(PLATEAU_STATEMENT, [fold0, orthogonal], "fold0 and orthogonal")
        or judge_plateau_claim(
            loss[fold0][:, start],
            loss[fold0][:, end],
            loss[orthogonal][:, end],
            at(fold0, 0),
            (start, end),
        )
    )
    fold1_claim = gate(FOLD1_STATEMENT, [fold0, fold1], "fold0 and fold1") or judge_fold1_claim(
        {epoch: at(fold0, epoch) for epoch in early},
        {epoch: at(fold1, epoch) for epoch in early},
        loss[fold0][:, end],
        loss[fold1][:, end],
        end,
    )
    if "rule" in fold1_claim:  # judged (not missing, diverged or too short)
        # Reported at every recorded epoch (not used by the verdict): the layer mean of log norms
        # weighs every layer equally instead of letting the largest norms dominate.
        fold1_claim["log_gradient_norm_fold1_minus_fold0_all_epochs"] = {
            f"epoch_{epoch}": paired_difference(
                layer_mean(np.log(at(fold1, epoch))), layer_mean(np.log(at(fold0, epoch)))
            )
            for epoch in schedule
        }
    claims.append(fold1_claim)
    others = [name for name in config.conditions if name != orthogonal]
    claims.append(
        gate(
            ORTHOGONAL_STATEMENT,
            [orthogonal, *others] if others else [None],
            "orthogonal and another condition",
        )
        or judge_orthogonal_best_claim(
            loss[orthogonal][:, end], {name: loss[name][:, end] for name in others}, end
        )
    )
    statement = scaled_orthogonal_statement(config.optimizer)
    claims.append(
        gate(statement, [scaled, fold0, orthogonal], "orthogonal-x<g<1>, fold0 and orthogonal")
        or judge_scaled_orthogonal_claim(
            at(scaled, 0),
            loss[fold0][:, end],
            loss[scaled][:, end],
            loss[orthogonal][:, end],
            config.init_specs[config.conditions.index(scaled)].gain if scaled else 1.0,
            config.optimizer,
            end,
        )
    )
    degenerate = [name for name in (fold0, fold1) if name is not None]
    claims.append(
        gate(
            GRADIENT_SIZE_STATEMENT,
            [orthogonal, *degenerate] if degenerate else [None],
            "orthogonal and fold0 or fold1",
        )
        or judge_gradient_size_claim(
            {
                name: {
                    epoch: (layer_mean(at(name, epoch)), loss[name][:, epoch])
                    for epoch in (start, end)
                }
                for name in degenerate
            },
            {
                epoch: (layer_mean(at(orthogonal, epoch)), loss[orthogonal][:, epoch])
                for epoch in (start, end)
            },
        )
    )
    return claims
