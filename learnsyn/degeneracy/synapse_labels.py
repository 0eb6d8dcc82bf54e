"""Names and plot labels of the synapse experiment's recurrent-matrix inits.

Shared by the experiment (``synapse``), its report and its figures, so that the report never
imports the experiment; ``synapse`` imports them from here.
"""

from __future__ import annotations

from learnsyn.initialization import parse_init_spec

CELL_DEFAULT_INIT = "default"


def init_label(name: str, cell: str, fold_axis: str) -> str:
    """A plot label: the init's own label, or what the cell's default init is."""
    if name == CELL_DEFAULT_INIT:
        return "cell default (diag 1 - 1/T)" if cell == "rnn" else "cell default (orth. x 0.5)"
    return parse_init_spec(name).label(fold_axis)
