"""Degeneracy, not vanishing gradients: deep linear nets, spectra, and the synapse RNN.

Modules, by concept (the inits themselves, Gaussian / Fold k / orthogonal x g, are in
``learnsyn.initialization``; the command, ``learnsyn degeneracy deep-linear|spectra|synapse``,
in ``learnsyn.cli.degeneracy``):
- ``measures``: effective rank, participation ratio, fraction of small singular values;
- ``seed_statistics``: mean +- s.e. over seeds and paired comparisons used to judge claims;
- ``verdicts``: the verdicts a claim can get and the helpers every claim module shares;
- ``outputs``: atomic JSON, config.json, PNG figures, TensorBoard scalars, progress bars;
- ``deep_linear`` (+ ``_config``, ``_claims``, ``_report``): the post's 30-layer linear network;
- ``hessian`` (+ ``hessian_report``): loss Hessian and gradient sharing at initialization;
- ``spectra`` (+ ``_config``, ``_report``): singular values of matrix products and Jacobians;
- ``recurrent_jacobians``: per-step Jacobians of a learned synapse and their window products;
- ``synapse`` (+ ``_labels``, ``_claims``, ``_report``, ``_figures``): the same inits for the
  learned synapse's recurrent matrix, meta-trained over seeds through ``learnsyn.runs.train``;
- ``rank_correlation``: Spearman's rho across inits with a bootstrap over seeds.
"""

from learnsyn.degeneracy.deep_linear import DeepLinearConfig, run_deep_linear, train_deep_linear
from learnsyn.degeneracy.measures import (
    covariance_degeneracy,
    effective_rank,
    fraction_below_threshold,
    matrix_degeneracy,
    participation_ratio,
)
from learnsyn.degeneracy.recurrent_jacobians import (
    spectrum_measures,
    step_with_jacobian,
    tanh_rnn_jacobian,
    window_jacobian_products,
)
from learnsyn.degeneracy.spectra import SpectraConfig, run_spectra
from learnsyn.degeneracy.synapse import (
    SynapseDegeneracyConfig,
    run_synapse_degeneracy,
    train_synapse_degeneracy,
)
from learnsyn.initialization import (
    InitSpec,
    apply_initialization_,
    fold_matrix,
    gaussian_matrix,
    initialize_square_matrix,
    orthogonal_matrix,
    parse_init_spec,
    seeded_generator,
)

__all__ = [
    "DeepLinearConfig",
    "InitSpec",
    "SpectraConfig",
    "SynapseDegeneracyConfig",
    "apply_initialization_",
    "covariance_degeneracy",
    "effective_rank",
    "fold_matrix",
    "fraction_below_threshold",
    "gaussian_matrix",
    "initialize_square_matrix",
    "matrix_degeneracy",
    "orthogonal_matrix",
    "parse_init_spec",
    "participation_ratio",
    "run_deep_linear",
    "run_spectra",
    "run_synapse_degeneracy",
    "seeded_generator",
    "spectrum_measures",
    "step_with_jacobian",
    "tanh_rnn_jacobian",
    "train_deep_linear",
    "train_synapse_degeneracy",
    "window_jacobian_products",
]
