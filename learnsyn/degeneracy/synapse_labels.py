"""Names and plot labels of the synapse experiment's recurrent-matrix inits.

Shared by the experiment (``synapse``), its report and its figures, so that the report never
imports the experiment; ``synapse`` imports them from here.
"""

from __future__ import annotations

from learnsyn.initialization import parse_init_spec

CELL_DEFAULT_INIT = "default"
#: ``learnsyn train``'s default init (rotation in unconstrained scenarios)
AUTO_INIT = "auto"
#: the near-isometric control (``synapse.make_isometric_``)
ISOMETRIC_INIT = "isometric"
CONTROL_INITS = (AUTO_INIT, ISOMETRIC_INIT)
#: init names that are not degeneracy draws (``parse_init_spec`` does not read them)
SPECIAL_INITS = (CELL_DEFAULT_INIT, *CONTROL_INITS)


def init_label(name: str, cell: str, fold_axis: str) -> str:
    """A plot label: the init's own label, or what the cell's default init is."""
    if name == CELL_DEFAULT_INIT:
        return "cell default (diag 1 - 1/T)" if cell == "rnn" else "cell default (orth. x 0.5)"
    if name == AUTO_INIT:
        return "learnsyn train default (rotation)"
    if name == ISOMETRIC_INIT:
        return "near-isometric control"
    return parse_init_spec(name).label(fold_axis)
