"""Responders' verdicts on pairs of incidents (``incident.linked`` on ``learning.events``).

A verdict says two incidents belong together (``related``) or not
(``unrelated``). It is a fact about the *unordered* pair, so the input rule is
the one of every other fact, applied per pair: the newest ``(occurred_at,
event_id)`` wins, and content breaks a tie between two versions of one id.
Arrival order, repeats and re-sends therefore never change the result.

Verdicts follow the engine's retention like other learning facts: one that
occurred before the retention cutoff is dropped when the cutoff passes it, and
ignored when it arrives after that. Whether the incidents are still known is
decided when the verdicts are read, so forgetting an incident never depends on
whether its verdicts arrived before or after it was forgotten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.contracts import LinkVerdict, LinkVerdictValue
from app.intel.periods import micros

Pair = tuple[str, str]
"""The two incident ids of a pair, in sorted order."""


def pair_of(a: str, b: str) -> Pair:
    """The unordered pair of two incidents, as one key."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The winning verdict of one pair."""

    version: tuple[int, str, str]
    """``(occurred_at µs, event_id, content hash)``: the newest wins."""
    incident_id: str
    related_incident_id: str
    verdict: LinkVerdictValue
    by: str

    @property
    def occurred(self) -> int:
        return self.version[0]

    @property
    def related(self) -> bool:
        return self.verdict == "related"


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """What one applied verdict did to its pair: ``before`` (if any) → ``after``."""

    pair: Pair
    before: Verdict | None
    after: Verdict


def _version(event: LinkVerdict) -> tuple[int, str, str]:
    content = hashlib.sha256(event.model_dump_json().encode()).hexdigest()
    return (micros(event.occurred_at), event.event_id, content)


@dataclass
class VerdictBook:
    """The winning verdict of every pair, keyed by the sorted pair."""

    verdicts: dict[Pair, Verdict] = field(default_factory=dict)

    def apply(self, event: LinkVerdict) -> VerdictChange | None:
        """Fold one verdict in; the change, or ``None`` when an equal or newer one is kept."""
        pair = pair_of(event.incident_id, event.related_incident_id)
        verdict = Verdict(_version(event), event.incident_id, event.related_incident_id,
                          event.verdict, event.by)
        before = self.verdicts.get(pair)
        if before is not None and before.version >= verdict.version:
            return None
        self.verdicts[pair] = verdict
        return VerdictChange(pair, before, verdict)

    def of(self, a: str, b: str) -> Verdict | None:
        """The verdict on the pair ``{a, b}``, if any."""
        return self.verdicts.get(pair_of(a, b))

    def forget_before(self, cutoff: int) -> None:
        """Drop verdicts that occurred before ``cutoff`` (retention)."""
        for pair in [p for p, v in self.verdicts.items() if v.occurred < cutoff]:
            del self.verdicts[pair]

    def __iter__(self) -> Iterator[tuple[Pair, Verdict]]:
        """Every pair and its verdict, in pair order (deterministic)."""
        for pair in sorted(self.verdicts):
            yield pair, self.verdicts[pair]

    def __len__(self) -> int:
        return len(self.verdicts)
