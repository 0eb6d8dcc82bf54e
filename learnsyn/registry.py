"""Registry of synapse model families: hand-crafted baselines and learned cells, by name."""

from __future__ import annotations

from typing import Any

from learnsyn.synapse import Synapse

MODELS: dict[str, type[Synapse]] = {}


def register_model(cls: type[Synapse]) -> type[Synapse]:
    """Class decorator: make a model family available by its name."""
    MODELS[cls.info.name] = cls
    return cls


def load_builtin_models() -> dict[str, type[Synapse]]:
    import learnsyn.baselines  # noqa: F401  (registers the hand-crafted models)

    return MODELS


def make_model(name: str, params: dict[str, Any] | None = None) -> Synapse:
    """Build a registered model; unknown names and bad parameters raise one clear line."""
    models = load_builtin_models()
    if name not in models:
        known = ", ".join(sorted(n for n, m in models.items() if m.info.family == "hand-crafted"))
        raise ValueError(f"unknown model {name!r}; known models: {known}")
    return models[name](**(params or {}))
