"""Scenarios that change the event stream: sparse/unbalanced, correlated, importance-tagged."""

import torch

from learnsyn.scenario import (
    InputStatistics,
    MarkovStatistics,
    Scenario,
    ScenarioInfo,
    TrackedKind,
    register_scenario,
)
from learnsyn.synapse import ParamSpec


@register_scenario
class SparseScenario(Scenario):
    """An event arrives with probability ``rate`` per step; it is +1 with probability ``p_plus``.

    The tracked memory is an event that did arrive. Signal: ``2 f+ f- (E[w|+] - E[w|-])``.
    """

    info = ScenarioInfo(
        name="sparse",
        summary="events arrive with probability `rate` per step, potentiating with probability "
        "`p_plus` (unbalanced when != 0.5)",
        reference="Lahiri & Ganguli 2013 (f+ != f-); science.md section 5",
        params=(
            ParamSpec("rate", float, 0.2, 0.0, 1.0, low_open=True, help="P(event) per step"),
            ParamSpec("p_plus", float, 0.5, 0.0, 1.0, True, True, help="P(+1 | event)"),
        ),
        tags=("exact-linear", "exact-markov"),
    )

    def next_events(self, stream, uniforms):
        u = uniforms[:, 0]
        rate, p_plus = self.params["rate"], self.params["p_plus"]
        events = torch.where(u < rate * p_plus, 1.0, torch.where(u < rate, -1.0, 0.0))
        return events.to(uniforms.dtype), None, stream

    def tracked_kinds(self):
        return (TrackedKind("event", p_plus=self.params["p_plus"]),)

    def linear_statistics(self):
        rate, f = self.params["rate"], self.params["p_plus"]
        mean = rate * (2 * f - 1)
        tracked = 4 * f * (1 - f)
        return InputStatistics(rate - mean**2, 0.0, 0.0, (tracked,), (tracked,))

    def markov_statistics(self):
        return MarkovStatistics(self.params["rate"], self.params["p_plus"])


@register_scenario
class CorrelatedScenario(Scenario):
    """Each synapse's events form a Markov chain that repeats the previous event with
    probability ``repeat`` (0.5: independent). Autocorrelation ``rho = 2 repeat - 1`` per step."""

    info = ScenarioInfo(
        name="correlated",
        summary="+-1 events forming a Markov chain: repeat the previous event with probability "
        "`repeat`",
        reference="science.md section 5",
        params=(ParamSpec("repeat", float, 0.7, 0.0, 1.0, True, True, help="P(same as previous)"),),
        tags=("exact-linear", "exact-markov"),  # (Markov: the chain of (state, last event))
    )

    def new_stream(self, batch, device):
        return torch.zeros(batch, device=device)  # 0: no previous event yet

    def next_events(self, stream, uniforms):
        # P(+1) is 1/2 with no previous event, `repeat` after a +1 and 1 - repeat after a -1;
        # one threshold on u for every stream (a monotone coupling): the two branches of a pair,
        # which share u but start from opposite tracked events, meet with probability
        # 1 - |rho| per step and then stay together (common random numbers again). Mapping
        # "repeat" to u < repeat instead kept the branches opposite forever, so every later
        # event added to the signal estimate's variance (the area's standard error of a GRU
        # at N = 1000 was 87 of 333 with 4096 pairs).
        p_plus = 0.5 + (self.params["repeat"] - 0.5) * stream
        events = torch.where(uniforms[:, 0] < p_plus, 1.0, -1.0).to(uniforms.dtype)
        return events, None, events

    def stream_after_tracked(self, stream, signs):
        return signs.to(stream.dtype)

    def linear_statistics(self):
        return InputStatistics(1.0, 2 * self.params["repeat"] - 1, 0.0, (1.0,))

    def markov_statistics(self):
        return MarkovStatistics(1.0, 0.5, repeat=self.params["repeat"])


@register_scenario
class ImportanceScenario(Scenario):
    """A fraction ``fraction`` of events is tagged important: written with amplitude ``boost``
    and flagged (flag 1) so a learned synapse can see the tag. The objective weights the SNR
    curve of important memories by ``weight`` and that of ordinary ones by ``1 - weight``."""

    info = ScenarioInfo(
        name="importance",
        summary="a fraction of events is important (amplitude `boost`, flag seen by the synapse); "
        "objective = weight * important curve + (1 - weight) * ordinary curve",
        reference="Kirkpatrick et al. 2017 (importance); science.md section 5",
        params=(
            ParamSpec("fraction", float, 0.1, 0.0, 1.0, True, True, help="P(important)"),
            # at most 1e15: a weight's square (boost^2) summed over a group of pairs stays inside
            # float32, whose Monte Carlo moments overflowed from about 1e19 (review, session 33:
            # boost 1e20 read an infinite area, the exact one 241)
            ParamSpec("boost", float, 2.0, 0.0, 1e15, low_open=True, help="important amplitude"),
            ParamSpec("weight", float, 0.8, 0.0, 1.0, help="objective weight of important ones"),
        ),
        tags=("exact-linear", "exact-markov", "flags"),
    )
    uniforms_per_step = 2
    #: a synapse that writes only the important events (a tenth of them) relaxes ten times slower
    #: in steps; with the usual 2.5 x horizon burn-in three of six GRU runs (N = 1000, m = 2 and 4)
    #: trained on a transient (one scored 1598 there and 0 when stationary); with 4 x that
    #: (6000 steps) all six were stationary (checked after 60,000 steps)
    burn_in_factor = 4.0

    @property
    def has_flags(self):
        return True

    def next_events(self, stream, uniforms):
        important = uniforms[:, 1] < self.params["fraction"]
        sign = torch.where(uniforms[:, 0] < 0.5, 1.0, -1.0).to(uniforms.dtype)
        amplitude = torch.where(important, self.params["boost"], 1.0).to(uniforms.dtype)
        return sign * amplitude, important.to(uniforms.dtype), stream

    def tracked_kinds(self):
        w = self.params["weight"]
        return (
            TrackedKind("important", w, self.params["boost"], 1.0),
            TrackedKind("ordinary", 1.0 - w, 1.0, 0.0),
        )

    def linear_statistics(self):
        f, boost = self.params["fraction"], self.params["boost"]
        return InputStatistics(
            f * boost**2 + (1 - f),
            0.0,
            0.0,
            (boost, 1.0),
            (boost**2, 1.0),
            flag_variances=(1 - f, f * boost**2),
            tracked_flags=(1, 0),
        )
