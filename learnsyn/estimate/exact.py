"""Exact, simulation-free signal and noise of linear and finite-state synapses.

Linear synapses (``x' = A x + b xi``, ``w = c . x``): the memory kernel is
``r(tau) = c A^tau b = sum_i alpha_i lambda_i^tau`` with ``alpha = (c V) * (V^-1 b)`` from the
eigendecomposition ``A = V diag(lambda) V^-1``, so any age (1e8 included) costs O(m). The stationary
variance is ``sum_ij alpha_i alpha_j / (1 - lambda_i lambda_j)`` (the discrete Lyapunov solution
``c P c^T`` written in the eigenbasis), with closed-form corrections for correlated events and
additive state noise. Where the eigenbasis is ill-conditioned (a defective A) the module falls
back to matrix powers and scipy's Lyapunov solver; where it is merely poorly conditioned (two
nearly coincident poles, whose large opposite residues the eigenbasis sum would cancel) the
stationary variance of independent events comes from the Lyapunov solver too. A synapse whose
increment depends on the event's flag (``b_flagged`` for flag 1) in a scenario with flags has one
kernel per flag value j, ``r_j = c A^tau b_j``; the stationary variance is
``sum_j P(j) E[xi^2 | j] sum_tau r_j^2`` and a
tracked event of flag k swaps its share ``P(k) E[xi^2 | k] r_k^2`` for its own.

Finite-state synapses (transition matrices ``M+``, ``M-``, weights ``w``): with background chain
``M_F = p (f+ M+ + f- M-) + (1 - p) I`` and its stationary distribution ``pi``, the signal of a
tracked event is ``2 f+ f- pi (M+ - M-) M_F^tau w`` and the variance ``pi w^2 - (pi w)^2``
(Lahiri & Ganguli 2013, in discrete time).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from learnsyn.scenario import InputStatistics, MarkovStatistics, TrackedKind
from learnsyn.synapse import LinearForm, MarkovForm, spectral_radius

_CONDITION_LIMIT = 1e8
#: above this condition number of the eigenbasis the stationary variance (independent events)
#: comes from the Lyapunov solver: two nearly coincident poles get large residues of opposite
#: signs, and the eigenbasis sum cancels them with a relative error near cond^2 x 1e-16
#: (8e-6 at cond 2e7, measured), while the kernel, linear in the residues, stays accurate
_CANCELLATION_CONDITION = 1e4
#: below this |1 - lambda_i lambda_j| the eigenbasis sum's ``1 / (1 - lambda_i lambda_j)`` is
#: off by about 1e-16 / |1 - lambda_i lambda_j| (an eigenvalue's own rounding; a Benna-Fusi
#: chain of 24 variables, 1 - lambda = 8e-16, read 1.4 % low), so the Lyapunov solver takes over
_SLOW_MODE_GAP = 1e-8


def _eigen(form: LinearForm) -> tuple[np.ndarray, ...] | None:
    """``(lambda, c V, V^-1 b, V^-1)`` or None if the eigenbasis is too ill-conditioned."""
    lam, V = np.linalg.eig(form.A)
    if np.linalg.cond(V) > _CONDITION_LIMIT:
        return None
    V_inv = np.linalg.inv(V)
    return lam, form.c @ V, V_inv @ form.b, V_inv


def visible_eigenvalues(form: LinearForm, tol: float = 1e-9) -> np.ndarray | None:
    """The eigenvalues of the modes that an event drives (``b``, or ``b_flagged``) and the
    readout sees (``c``): only these shape the SNR; None when the eigenbasis is too
    ill-conditioned to tell."""
    eigen = _eigen(form)
    if eigen is None:
        return None
    lam, cV, V_inv_b, V_inv = eigen
    driven = np.abs(V_inv_b)
    if form.b_flagged is not None:
        driven = np.maximum(driven, np.abs(V_inv @ form.b_flagged))
    weight = np.abs(cV) * driven
    return lam[weight > tol * max(float(weight.max(initial=0.0)), 1e-300)]


def _input_kinds(form: LinearForm, stats: InputStatistics):
    """``(weights, increments, kind of every tracked kind)``: the input kinds the synapse tells
    apart (``InputStatistics.input_kinds``), each with ``P(j) E[xi^2 | j]`` and its increment."""
    weights, tracked = stats.input_kinds(form.b_flagged is not None)
    return weights, form.increments(len(weights) > 1), tracked


def variances_given_kind(variance, kernels, weights, tracked, stats: InputStatistics) -> list:
    """The weight variance given each tracked kind: the stationary ``variance`` with the tracked
    event's share (``weights[j] r_j^2``, j its input kind) replaced by the tracked kind's,
    ``tracked_variance r_j^2`` (``kernels[j]``: the kernel of input kind j; numpy or torch)."""
    rows = []
    for index, own in enumerate(tracked):
        row = variance + (stats.tracked_variance(index) - weights[own]) * kernels[own] ** 2
        for other, weight in enumerate(weights):
            if other != own:
                row = row - weight * kernels[other] ** 2
        rows.append(row)
    return rows


def _powers(lam: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """``lam_i ** age_j`` as an [ages, m] complex array, stable for ages up to 1e8 and beyond."""
    lam = lam.astype(complex)
    out = np.zeros((len(ages), len(lam)), dtype=complex)
    nonzero = lam != 0
    out[:, nonzero] = np.exp(np.outer(ages, np.log(lam[nonzero])))
    out[ages == 0, :] = 1.0
    return out


def memory_kernel(form: LinearForm, ages: np.ndarray) -> np.ndarray:
    """``r(tau) = c A^tau b`` at the given integer ages."""
    ages = np.asarray(ages, dtype=np.float64)
    eig = _eigen(form)
    if eig is None:
        return _kernel_by_powers(form, ages)
    lam, cV, Vb, _ = eig
    return np.real(_powers(lam, ages) @ (cV * Vb))


def _kernel_by_powers(form: LinearForm, ages: np.ndarray) -> np.ndarray:
    order = np.argsort(ages)
    out = np.empty(len(ages))
    vector = form.b.copy()
    current = 0
    for index in order:
        age = int(ages[index])
        vector = np.linalg.matrix_power(form.A, age - current) @ vector
        current = age
        out[index] = form.c @ vector
    return out


def _correlated_kernel(lam, alpha, ages, rho) -> np.ndarray:
    """``sum_{j <= tau} rho^j r(tau - j)`` for ``r = sum_i alpha_i lambda_i^tau``."""
    lam = lam.astype(complex)
    lam_next = _powers(lam, ages + 1)
    rho_next = (rho ** (ages + 1))[:, None]
    diff = lam - rho
    close = np.abs(diff) < 1e-12
    terms = np.empty_like(lam_next)
    safe = np.where(close, 1.0, diff)
    terms[:, ~close] = ((lam_next - rho_next) / safe)[:, ~close]
    if close.any():
        terms[:, close] = ((ages + 1)[:, None] * _powers(lam, ages))[:, close]
    return np.real(terms @ alpha)


def closed_form_applies(form: LinearForm, stats: InputStatistics) -> bool:
    """Whether ``linear_signal_and_variance`` evaluates this synapse: A stable and, for
    correlated events, diagonalizable (``method="auto"`` takes Monte Carlo otherwise, where it
    failed in one line before: review, session 30)."""
    if spectral_radius(form.A) >= 1.0:
        return False
    return stats.correlation == 0 or _eigen(form) is not None


def linear_signal_and_variance(
    form: LinearForm, stats: InputStatistics, ages: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signals ``[kinds, ages]`` of every tracked kind and the weight variance given the kind
    ``[kinds, ages]``: the stationary variance with the tracked event's share replaced by the
    tracked kind's (and, for correlated events, without the tracked event's correlation with the
    past, which the intervention breaks)."""
    ages = np.asarray(ages, dtype=np.float64)
    radius = spectral_radius(form.A)
    if radius >= 1.0:
        raise ValueError(
            f"the linear synapse is not stable (A has spectral radius {radius:.6g} >= 1): its "
            "closed-form SNR does not exist; only a scenario that clips the state holds it "
            "(evaluate it by Monte Carlo, or on the bounded grid)"
        )
    eig = _eigen(form)
    if eig is None:
        return _linear_by_powers(form, stats, ages)
    lam, cV, _, V_inv = eig
    weights, increments, tracked = _input_kinds(form, stats)
    alphas = [cV * (V_inv @ b) for b in increments]
    lam_powers = _powers(lam, ages)
    kernels = [np.real(lam_powers @ alpha) for alpha in alphas]
    rho = stats.correlation
    if rho == 0:
        base = kernels[0]
    else:
        base = _correlated_kernel(lam, alphas[0], ages, rho)
    signals = np.stack(
        [gain * (base if own == 0 else kernels[own]) for gain, own in zip(stats.gains, tracked)]
    )

    denominator = 1.0 - np.outer(lam, lam)
    # refused by the modulus itself, as closed_form_applies decides: a stable mode within 1e-15
    # of 1 was refused here after "auto" chose this path (review, session 33); it takes the
    # Lyapunov solution below (_SLOW_MODE_GAP)
    if np.max(np.abs(lam)) >= 1.0:
        raise ValueError("the linear synapse is not stable (an eigenvalue has modulus 1)")
    weight = 1.0 / denominator
    if rho != 0:
        boost = rho * lam / (1.0 - rho * lam)
        weight = weight * (1.0 + boost[:, None] + boost[None, :])
    poorly_conditioned = (
        np.linalg.cond(V_inv) > _CANCELLATION_CONDITION
        or np.min(np.abs(denominator)) < _SLOW_MODE_GAP
    )
    if poorly_conditioned and rho == 0:
        variance = _lyapunov_stationary(form, weights, increments, stats.state_noise)
    elif poorly_conditioned and len(weights) == 1:
        variance = _lyapunov_correlated(form, weights[0], rho, stats.state_noise)
    else:
        variance = sum(w * np.real(alpha @ weight @ alpha) for w, alpha in zip(weights, alphas))
        if stats.state_noise > 0:
            G = V_inv @ V_inv.T
            variance += stats.state_noise**2 * np.real(cV @ (G / denominator) @ cV)
    if rho != 0:
        # the intervention breaks the tracked event's correlation with earlier events: drop
        # sum_{l <= tau < l'} r(l) r(l') rho^(l' - l)
        #   = base(tau) * sum_{l' > tau} r(l') rho^(l' - tau)
        later = _powers(lam, ages + 1) * (rho / (1.0 - lam.astype(complex) * rho))
        variance = variance - 2 * base * np.real(later @ alphas[0])
    return signals, np.stack(variances_given_kind(variance, kernels, weights, tracked, stats))


def _linear_by_powers(form, stats, ages):
    """Fallback for defective matrices: Lyapunov solver plus matrix powers (no correlation)."""
    if stats.correlation != 0:
        raise ValueError("correlated events need a diagonalizable A for exact evaluation")
    weights, increments, tracked = _input_kinds(form, stats)
    variance = _lyapunov_stationary(form, weights, increments, stats.state_noise)
    kernels = [_kernel_by_powers(LinearForm(form.A, b, form.c), ages) for b in increments]
    signals = np.stack([gain * kernels[own] for gain, own in zip(stats.gains, tracked)])
    return signals, np.stack(variances_given_kind(variance, kernels, weights, tracked, stats))


def _lyapunov_stationary(form: LinearForm, weights, increments, state_noise: float) -> float:
    """The stationary weight variance for independent events by scipy's Lyapunov solver:
    ``sum_j weights[j] c P_j c^T`` with ``P_j = A P_j A^T + b_j b_j^T``, plus the state noise's
    ``sigma^2 c P c^T`` with ``P = A P A^T + I``."""
    variance = 0.0
    for w, b in zip(weights, increments):
        P = scipy.linalg.solve_discrete_lyapunov(form.A, np.outer(b, b))
        variance += w * float(form.c @ P @ form.c)
    if state_noise > 0:
        P_noise = scipy.linalg.solve_discrete_lyapunov(form.A, np.eye(len(form.b)))
        variance += state_noise**2 * float(form.c @ P_noise @ form.c)
    return variance


def _lyapunov_correlated(form: LinearForm, variance: float, rho: float, state_noise: float):
    """The stationary weight variance under AR(1) events (``Cov(xi_t, xi_s) = variance
    rho^|t - s|``) by scipy's Lyapunov solver on the state extended by the event: ``xi_t = rho
    xi_{t-1} + e_t`` (``Var e = variance (1 - rho^2)``), ``x_t = A x_{t-1} + b xi_t``, so ``z =
    [x, xi]`` steps by ``F = [[A, rho b], [0, rho]]`` with input ``[b, 1] e_t``."""
    m = len(form.b)
    F = np.zeros((m + 1, m + 1))
    F[:m, :m], F[:m, m], F[m, m] = form.A, rho * form.b, rho
    g = np.append(form.b, 1.0)
    Q = variance * (1.0 - rho**2) * np.outer(g, g)
    Q[:m, :m] += state_noise**2 * np.eye(m)
    P = scipy.linalg.solve_discrete_lyapunov(F, Q)
    return float(form.c @ P[:m, :m] @ form.c)


def stationary_linear_variance(form: LinearForm, stats: InputStatistics) -> float:
    """The stationary weight variance (no tracked event singled out)."""
    _, variances = linear_signal_and_variance(form, stats, np.array([1e12]))
    return float(variances[0, 0])


def lyapunov_variance(form: LinearForm) -> float:
    """``c P c^T`` with ``P = A P A^T + b b^T`` by scipy's solver (an independent check)."""
    P = scipy.linalg.solve_discrete_lyapunov(form.A, np.outer(form.b, form.b))
    return float(form.c @ P @ form.c)


def background_chain(form: MarkovForm, stats: MarkovStatistics) -> np.ndarray:
    """The chain of one background step (for correlated events: on the augmented form)."""
    p, f = stats.event_probability, stats.p_plus
    size = len(form.weights)
    if stats.repeat is not None:
        return _correlated_chain(form, stats)[1]
    return p * (f * form.M_plus + (1 - f) * form.M_minus) + (1 - p) * np.eye(size)


def _correlated_chain(form: MarkovForm, stats: MarkovStatistics) -> tuple[MarkovForm, np.ndarray]:
    """Markov-correlated events (``stats.repeat`` = P(same as previous)) made independent by
    augmenting the state with the last event: state ``(s, e)`` at index ``2 s + (e == +1)``.
    A tracked event sets ``e`` whatever it was; a background event repeats ``e`` with
    probability ``repeat``. Readout ``w(s)`` on both copies."""
    r = stats.repeat
    to_plus, to_minus = np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 0.0]])
    augmented = MarkovForm(
        np.kron(form.M_plus, to_plus),
        np.kron(form.M_minus, to_minus),
        np.repeat(np.asarray(form.weights, dtype=np.float64), 2),
    )
    chain = np.kron(form.M_plus, np.array([[0.0, 1 - r], [0.0, r]])) + np.kron(
        form.M_minus, np.array([[r, 0.0], [1 - r, 0.0]])
    )
    return augmented, chain


def markov_chain(form: MarkovForm, stats: MarkovStatistics) -> tuple[MarkovForm, np.ndarray]:
    """The form the exact formulas run on and its background chain: the model's own form for
    independent events, the augmented one (``_correlated_chain``) for correlated events."""
    if stats.repeat is not None:
        return _correlated_chain(form, stats)
    return form, background_chain(form, stats)


def closed_classes(M: np.ndarray) -> list[np.ndarray]:
    """The closed classes of a chain (sets of states no transition leaves), read from the graph
    of its nonzero transitions: each a sorted array of state indices."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    edges = M > 0
    _, labels = connected_components(csr_matrix(edges), directed=True, connection="strong")
    rows, columns = np.nonzero(edges)
    leaving = set(labels[rows[labels[rows] != labels[columns]]].tolist())
    return [np.flatnonzero(labels == c) for c in np.unique(labels) if c not in leaving]


def _censored_stationary(P: np.ndarray) -> np.ndarray:
    """Stationary distribution of an irreducible chain by state reduction (Grassmann, Taksar &
    Heyman 1985): no subtraction, so every entry is accurate to round-off however small the
    transitions (a cascade's go down to x^(depth - 1))."""
    P = np.array(P, dtype=np.float64)
    for k in range(len(P) - 1, 0, -1):
        P[:k, k] /= P[k, :k].sum()
        P[:k, :k] += np.outer(P[:k, k], P[k, :k])
    pi = np.zeros(len(P))
    pi[0] = 1.0
    for k in range(1, len(P)):
        pi[k] = pi[:k] @ P[:k, k]
    return pi / pi.sum()


def stationary_distribution(M: np.ndarray) -> np.ndarray:
    """The stationary distribution of a chain with one closed class (transient states get 0).

    The closed classes come from the graph of nonzero transitions, and the distribution on the
    closed one from state reduction. A chain with several closed classes has no unique one
    (which the synapse ends in depends on its start): one line, where least squares returned
    one mixture of them (review, session 33). A numerical rank decided that before session 34,
    and refused irreducible chains whose smallest transitions were near 1e-14 (a cascade of
    depth 12 at x = 0.05), with errors of 1e-3 in pi just before (review, session 34)."""
    classes = closed_classes(M)
    if len(classes) > 1:
        raise ValueError(
            "the chain has no unique stationary distribution (several closed classes: where "
            "the synapse settles depends on its start); evaluate it by Monte Carlo"
        )
    (states,) = classes
    pi = np.zeros(M.shape[0])
    pi[states] = _censored_stationary(M[np.ix_(states, states)])
    return pi


def _centred_weights(form: MarkovForm, pi: np.ndarray) -> np.ndarray:
    """The weights less their stationary mean: the signal and the variance do not change (the
    chain's rows sum to 1), but ``E[w^2] - E[w]^2`` about 0 cancels to round-off where the chain
    sits in one state (a leak of 3e-17 gave a variance of exactly 0 and a large-n SNR of 6e134;
    session 24's review), as the grid's moments did."""
    w = form.weights.astype(np.float64)
    return w - pi @ w


def markov_signal_and_variance(
    form: MarkovForm,
    stats: MarkovStatistics,
    kinds: tuple[TrackedKind, ...],
    ages: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Signals and weight variances given the tracked kind, both ``[kinds, ages]``."""
    form, M = markov_chain(form, stats)
    pi = stationary_distribution(M)
    w = _centred_weights(form, pi)
    ages = np.asarray(ages, dtype=np.int64)
    after_plus, after_minus = pi @ form.M_plus, pi @ form.M_minus
    starts = [k.p_plus * after_plus + (1 - k.p_plus) * after_minus for k in kinds]
    rows = np.stack([w, *starts])  # propagate w forward (columns) and the kinds' distributions
    propagated = np.empty((len(ages), len(w)))
    distributions = np.empty((len(kinds), len(ages), len(w)))
    current_age, vector, dists = 0, w.copy(), rows[1:].copy()
    for index in np.argsort(ages):  # powers of the gaps between ages: exact, stable up to 1e8
        age = int(ages[index])
        step = np.linalg.matrix_power(M, age - current_age)
        vector, dists = step @ vector, dists @ step
        current_age = age
        propagated[index], distributions[:, index] = vector, dists
    signals, variances = [], []
    for k, kind in enumerate(kinds):
        f = kind.p_plus
        signals.append(2 * f * (1 - f) * (propagated @ (after_plus - after_minus)))
        variances.append(distributions[k] @ w**2 - (distributions[k] @ w) ** 2)
    return np.stack(signals), np.stack(variances)


def markov_time_scale(form: MarkovForm, stats: MarkovStatistics) -> float:
    """Slowest relaxation time of the background chain, in steps."""
    moduli = np.sort(np.abs(np.linalg.eigvals(background_chain(form, stats))))[::-1]
    second = moduli[1] if len(moduli) > 1 else 0.0
    return float("inf") if second >= 1 else 1.0 / max(1.0 - second, 1e-300)


def markov_signal_and_variance_blocks(
    form: MarkovForm,
    stats: MarkovStatistics,
    kinds: tuple[TrackedKind, ...],
    horizon: int,
    block: int | None = None,
):
    """``markov_signal_and_variance`` at the consecutive ages ``0..horizon-1``, in blocks of
    ages (bounded memory, for horizons of 1e8): yields ``(ages, (signals, variances))``.

    The powers ``M^0..M^(block-1)`` are computed once; each block propagates the readout and
    the kinds' distributions from the block's first age with them, then steps by ``M^block``."""
    form, M = markov_chain(form, stats)
    pi = stationary_distribution(M)
    w = _centred_weights(form, pi)
    size = len(w)
    after_plus, after_minus = pi @ form.M_plus, pi @ form.M_minus
    dists = np.stack([k.p_plus * after_plus + (1 - k.p_plus) * after_minus for k in kinds])
    block = int(block or max(16, min(4096, 2**22 // (size * size))))
    block = max(1, min(block, horizon))
    powers = np.empty((block, size, size))
    powers[0] = np.eye(size)
    for j in range(1, block):
        powers[j] = powers[j - 1] @ M
    step = powers[-1] @ M
    vector, gap = w.copy(), after_plus - after_minus
    for start in range(0, horizon, block):
        count = min(block, horizon - start)
        table = powers[:count]
        propagated = table @ vector  # [count, size]
        distributions = np.einsum("ki,jil->kjl", dists, table)  # [kinds, count, size]
        signals = np.stack([2 * k.p_plus * (1 - k.p_plus) * (propagated @ gap) for k in kinds])
        variances = distributions @ w**2 - (distributions @ w) ** 2
        yield np.arange(start, start + count, dtype=np.float64), (signals, variances)
        vector, dists = step @ vector, dists @ step
