"""The one registry of synapse models: hand-crafted baselines and learned cells, by name.

Every entry is a ``Synapse`` class with a ``ModelInfo`` (its family, summary, reference and
``ParamSpec``s). ``learnsyn list``, ``evaluate``, ``tune``, ``compare``, studies and the tests
that loop over every model all read this one table; a model is available (and tested) the
moment it is registered. A model's state budget is its instances' ``state_size``.
"""

from __future__ import annotations

from typing import Any

from learnsyn.synapse import FAMILIES, Synapse

MODELS: dict[str, type[Synapse]] = {}


def register_model(cls: type[Synapse]) -> type[Synapse]:
    """Class decorator: make a model family available by its name."""
    if cls.info.family not in FAMILIES:
        raise ValueError(f"model {cls.info.name!r}: family must be one of {FAMILIES}")
    MODELS[cls.info.name] = cls
    return cls


def load_builtin_models() -> dict[str, type[Synapse]]:
    """The registry with the built-in baselines and cells loaded."""
    import learnsyn.baselines  # noqa: F401  (registers the hand-crafted models)
    import learnsyn.cells  # noqa: F401  (registers the learned cells)

    return MODELS


def model_names(family: str | None = None) -> list[str]:
    """Registered names (of one family, when given), sorted."""
    return sorted(n for n, m in load_builtin_models().items() if family in (None, m.info.family))


def model_class(name: str, family: str | None = None) -> type[Synapse]:
    """The registered class of ``name``; unknown names (or another family) are one clear line."""
    models = load_builtin_models()
    if name not in models or family not in (None, models[name].info.family):
        what = "model" if family is None else f"{family} model"
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(model_names(family))}")
    return models[name]


def make_model(name: str, params: dict[str, Any] | None = None) -> Synapse:
    """Build a registered model; unknown names and bad parameters raise one clear line."""
    return model_class(name)(**(params or {}))
