"""The ideal scenario of Benna & Fusi (2016): balanced, independent +-1 events, every step."""

from learnsyn.scenario import Scenario, ScenarioInfo, register_scenario


@register_scenario
class IdealScenario(Scenario):
    info = ScenarioInfo(
        name="ideal",
        summary="one balanced +-1 event per synapse per step, independent across synapses and time",
        reference="Benna & Fusi 2016, Nat. Neurosci. 19:1697",
        params=(),
        tags=("exact-linear", "exact-markov"),
    )
