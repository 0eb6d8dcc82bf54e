"""Hand-crafted synapses, installed as ``learnsyn.baselines``; importing registers them all."""

from learnsyn.baselines.benna_fusi import BennaFusiChain
from learnsyn.baselines.ewc import EWCSynapse
from learnsyn.baselines.exponential import ExponentialSynapse
from learnsyn.baselines.finite_state import BinarySwitch, CascadeSynapse, SerialSynapse
from learnsyn.baselines.linear_range import RangeLinearSynapse
from learnsyn.baselines.optimal_linear import OptimalLinearSynapse

__all__ = [
    "BennaFusiChain",
    "BinarySwitch",
    "CascadeSynapse",
    "EWCSynapse",
    "ExponentialSynapse",
    "OptimalLinearSynapse",
    "RangeLinearSynapse",
    "SerialSynapse",
]
