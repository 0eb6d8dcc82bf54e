"""Recurrent Jacobians of a learned synapse over its tracked window, and their spectra.

Backpropagation through the tracked window multiplies the per-step Jacobians
``J_t = d h_t / d h_{t-1}``; ``P_L = J_L ... J_1`` carries a gradient back L steps, as the
product of L layers' Jacobians does in a deep network. For the tanh RNN
``h_t = tanh(W h_{t-1} + U x_t + b)`` the Jacobian is ``diag(1 - h_t^2) W``; other cells (and
scenarios that constrain the state) are differentiated by autograd.

``spectrum_measures`` gives the degeneracy measures of ``measures`` (effective rank,
participation ratio, fraction of small singular values) plus the RMS singular value, the size of
the product: for an orthogonal W times g in the linear regime it is g^L, the vanishing factor.

``timescales_used`` is the effective number of time scales a cell uses over a window of H
steps: the participation ratio ``(sum a)^2 / sum a^2`` of the memory lengths
``a_i = sum_{t<H} |lambda_i|^t`` of the eigenvalues of its mean one-step Jacobian (the mean of
``J_t`` over the streams and the window, ``window_jacobians``). A mode that forgets at once
counts 1 step, one that keeps its memory over the whole window counts H; two equally slow modes
(a rotation's complex pair) give 2, one slow mode beside fast ones about 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnsyn.cells import LearnedSynapse, TanhRNNSynapse
from learnsyn.degeneracy.measures import singular_values, spectrum_degeneracy
from learnsyn.scenario import Scenario
from learnsyn.training import TrainConfig

# The last is the size of a product (sqrt of the mean squared singular value): the gain of
# backpropagation over L steps.
JACOBIAN_MEASURES = (
    "effective_rank",
    "participation_ratio",
    "fraction_below_threshold",
    "rms_singular_value",
)
DEVICE = torch.device("cpu")


def tanh_rnn_jacobian(recurrent: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
    """``d h_{t+1} / d h_t = diag(1 - h_{t+1}^2) W`` for ``h_{t+1} = tanh(W h_t + ...)``.

    ``next_state`` is ``(batch, n)``; returns ``(batch, n, n)``.
    """
    return (1.0 - next_state**2).unsqueeze(-1) * recurrent.unsqueeze(0)


def step_with_jacobian(
    model: LearnedSynapse,
    scenario: Scenario,
    state: torch.Tensor,
    events: torch.Tensor,
    flags: torch.Tensor | None,
    constraint_noise: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step (constraint included) and its Jacobian ``(batch, n, n)`` w.r.t. the state.

    The tanh RNN without a state constraint uses the closed form; any other cell (or a
    constrained scenario) uses autograd, one backward pass per state variable.
    """
    if isinstance(model, TanhRNNSynapse) and not scenario.constrains_state:
        with torch.no_grad():
            next_state = model.step(state, events, flags)
            return next_state, tanh_rnn_jacobian(model.W.detach(), next_state)
    with torch.enable_grad():
        leaf = state.detach().requires_grad_(True)
        next_state = scenario.constrain(model.step(leaf, events, flags), constraint_noise)
        # Synapses are independent, so d(sum over the batch of output i)/d h = row i of each
        # synapse's own Jacobian.
        rows = [
            torch.autograd.grad(next_state[:, unit].sum(), leaf, retain_graph=True)[0]
            for unit in range(next_state.shape[1])
        ]
    return next_state.detach(), torch.stack(rows, dim=1)


def window_jacobian_products(
    model: LearnedSynapse,
    scenario: Scenario,
    config: TrainConfig,
    streams: int,
    window_lengths: tuple[int, ...],
    generator: torch.Generator,
) -> dict[int, torch.Tensor]:
    """``{L: P_L}`` with ``P_L = J_L ... J_1`` (float64, ``(streams, n, n)``) over the window.

    Like one meta-training batch: ``streams`` synapses run the burn-in of background events,
    then the tracked window starts with the tracked event (random sign) followed by background
    events; ``J_t`` is the Jacobian of step t of the window w.r.t. the state before it. Long
    windows of a saturated cell underflow float64 here (entries below 1e-308 become 0);
    ``window_jacobians`` gives the same products without underflow, as direction and scale.
    """
    products, log_scales, _ = window_jacobians(
        model, scenario, config, streams, window_lengths, generator
    )
    return {
        length: products[length] * log_scales[length].exp()[:, None, None] for length in products
    }


def window_jacobians(
    model: LearnedSynapse,
    scenario: Scenario,
    config: TrainConfig,
    streams: int,
    window_lengths: tuple[int, ...],
    generator: torch.Generator,
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor]:
    """``window_jacobian_products`` as ``P_L / s_L`` and ``log s_L`` (``(streams,)``), where
    ``s_L`` is the largest absolute entry of each stream's product (renormalized at every step,
    so products of any length keep their direction: ``-inf`` only for an exactly zero product),
    and the mean one-step Jacobian ``(n, n)`` (float64) over the streams and the first
    ``max(window_lengths)`` steps of the window."""
    size = model.state_size
    uniforms = scenario.uniforms_per_step
    wanted, products = set(window_lengths), {}
    with torch.no_grad():
        state = model.initial_state(streams, device=DEVICE)
        stream = scenario.new_stream(streams, DEVICE)
        for _ in range(config.resolved_burn_in()):
            draws = torch.rand(streams, uniforms, generator=generator)
            events, flags, stream = scenario.next_events(stream, draws)
            state = model.step(state, events, flags)
            state = scenario.constrain(
                state, scenario.constraint_noise(streams, size, generator, DEVICE)
            )
        kind = scenario.tracked_kinds()[0]
        signs = torch.where(torch.rand(streams, generator=generator) < kind.p_plus, 1.0, -1.0)
        events, flags, stream = scenario.tracked_events(kind, signs, stream)
    product = torch.eye(size, dtype=torch.float64).expand(streams, size, size)
    log_scale = torch.zeros(streams, dtype=torch.float64)
    total = torch.zeros(size, size, dtype=torch.float64)
    log_scales = {}
    for length in range(1, max(window_lengths) + 1):
        if length > 1:
            draws = torch.rand(streams, uniforms, generator=generator)
            events, flags, stream = scenario.next_events(stream, draws)
        noise = scenario.constraint_noise(streams, size, generator, DEVICE)
        state, jacobian = step_with_jacobian(model, scenario, state, events, flags, noise)
        product = jacobian.to(torch.float64) @ product
        largest = product.abs().amax(dim=(-2, -1))
        log_scale = log_scale + largest.log()  # -inf once a product is exactly zero
        product = product / torch.where(largest > 0, largest, 1.0)[:, None, None]
        total += jacobian.to(torch.float64).mean(dim=0)
        if length in wanted:
            products[length], log_scales[length] = product, log_scale
    return products, log_scales, total / max(window_lengths)


def timescales_used(eigenvalues: Any, horizon: int) -> float:
    """Participation ratio of the memory lengths ``sum_{t<horizon} |lambda|^t`` of the
    eigenvalues (moduli capped at 1, where the length is ``horizon``); NaN if not finite."""
    moduli = np.minimum(np.abs(np.asarray(eigenvalues, dtype=np.complex128)), 1.0)
    if moduli.size == 0 or not np.all(np.isfinite(moduli)):
        return math.nan
    lengths = np.where(
        moduli < 1.0, (1.0 - moduli**horizon) / np.maximum(1.0 - moduli, 1e-300), float(horizon)
    )
    return float(lengths.sum() ** 2 / (lengths**2).sum())


def mean_jacobian_timescales(mean_jacobian: torch.Tensor, horizon: int) -> dict[str, Any]:
    """``timescales_used`` of a mean one-step Jacobian, with its eigenvalue moduli
    (descending)."""
    matrix = mean_jacobian.detach().to(torch.float64).numpy()
    if not np.all(np.isfinite(matrix)):
        return {"timescales_used": math.nan, "eigenvalue_moduli": [math.nan] * len(matrix)}
    eigenvalues = np.linalg.eigvals(matrix)
    return {
        "timescales_used": timescales_used(eigenvalues, horizon),
        "eigenvalue_moduli": sorted(np.abs(eigenvalues).tolist(), reverse=True),
    }


def spectrum_measures(
    matrices: torch.Tensor, threshold: float, log_scale: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """``JACOBIAN_MEASURES`` of a batch of matrices ``(..., n, n)`` (one value per matrix);
    ``log_scale`` (``(...)``): the matrices are ``matrices * exp(log_scale)`` (the scale-free
    measures come from ``matrices``, the RMS is multiplied by the scale)."""
    spectrum = singular_values(matrices)
    measures = spectrum_degeneracy(spectrum, threshold)
    rms = torch.sqrt((spectrum**2).mean(dim=-1))
    # an exactly zero product has scale exp(-inf) = 0 and RMS 0: their product stays 0
    measures["rms_singular_value"] = rms if log_scale is None else rms * log_scale.exp()
    return measures
