"""Memory scenarios, installed as ``learnsyn.tasks``; importing this package registers them all.

Each scenario is a named, parameterized entry of ``learnsyn.scenario.SCENARIOS``.
"""

from learnsyn.tasks.constrained import BoundedScenario, NoisyScenario
from learnsyn.tasks.ideal import IdealScenario
from learnsyn.tasks.streams import CorrelatedScenario, ImportanceScenario, SparseScenario

__all__ = [
    "BoundedScenario",
    "CorrelatedScenario",
    "IdealScenario",
    "ImportanceScenario",
    "NoisyScenario",
    "SparseScenario",
]
