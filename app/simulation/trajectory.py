"""Conversation trajectories shaped by an archetype.

A trajectory is a list of exchanges (a user turn and the assistant's reply)
across sessions and actors. The shape decides timing, sessions, actors and how
the per-turn signals move:

- ``single_turn``: one or two exchanges, the last one carries the attempt;
- ``escalation``: many exchanges whose policy score rises slowly but stays
  under the per-turn threshold (gradual erosion);
- ``drift``: like escalation, with the classified intent moving between labels;
- ``decomposition``: innocuous parts asked one by one, then a request to
  combine them;
- ``coordinated``: several actors, one session each, inside a short window;
- ``encoded``: the payload arrives in a form the classifier cannot read (low
  input scores);
- ``multi_session``: one actor over several sessions hours apart;
- ``outage``: operational; ordinary sessions whose replies fail or slow down
  while the incident lasts.

Content is a template from the catalog; anything restricted is a placeholder.
The final exchange is either delivered (output score high, user score under the
threshold) or stopped (user turn blocked), and ``delivered`` records which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random

from app.simulation.catalog import Archetype, BenignLine, Platform, TrajectorySpec
from app.simulation.identifiers import actor_id, session_id, trace_id
from app.simulation.models import Turn, TurnSignals

ASSISTANT = "assistant"


@dataclass(frozen=True)
class Exchange:
    """A user turn and the reply, with what the platform measured on each."""

    session_id: str
    actor_id: str
    user_at: datetime
    reply_at: datetime
    user_text: str
    reply_text: str
    user_signals: TurnSignals
    reply_signals: TurnSignals
    trace_id: str
    affected: bool
    failed: bool = False

    @classmethod
    def answered(cls, rng: Random, *, session_id: str, actor_id: str, user_at: datetime,
                 latency_ms: int, user_text: str, reply_text: str, user_signals: TurnSignals,
                 reply_signals: TurnSignals, affected: bool, failed: bool = False) -> Exchange:
        """The exchange whose reply came ``latency_ms`` after ``user_at``; its trace id is
        the last draw from ``rng`` (the seeded outputs depend on that order)."""
        return cls(
            session_id=session_id, actor_id=actor_id, user_at=user_at,
            reply_at=user_at + timedelta(seconds=max(1, round(latency_ms / 1000))),
            user_text=user_text, reply_text=reply_text, user_signals=user_signals,
            reply_signals=reply_signals, trace_id=trace_id(rng), affected=affected,
            failed=failed,
        )


@dataclass
class Trajectory:
    exchanges: list[Exchange]
    delivered: bool
    onset: datetime
    end: datetime
    affected_sessions: list[str] = field(default_factory=list)
    affected_users: list[str] = field(default_factory=list)
    session_starts: dict[str, datetime] = field(default_factory=dict)


def _score(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 3)


def _line(lines: list[str], progress: float, final: bool) -> str:
    """The last line belongs to the final exchange; earlier ones follow the progress."""
    if final or len(lines) == 1:
        return lines[-1]
    return lines[min(len(lines) - 2, int(progress * (len(lines) - 1)))]


class _Builder:
    """Shared state of one trajectory: the rng, the spec and the fill-in values."""

    def __init__(self, arch: Archetype, platform: Platform, rng: Random, service: str) -> None:
        self.spec: TrajectorySpec = arch.trajectory
        self.platform = platform
        self.rng = rng
        topic = rng.choice(self.spec.topics)
        self.values = {
            "topic": topic,
            "restricted": f"[[restricted request: {topic}; placeholder]]",
            "persona": rng.choice(self.spec.personas),
            "service": service,
            "part": "1",
            "parts": "1",
            "status": "200",
        }
        self.delivered = rng.random() < self.spec.delivery_probability
        self.exchanges: list[Exchange] = []

    def fill(self, template: str, **extra: object) -> str:
        return template.format(**{**self.values, **{k: str(v) for k, v in extra.items()}})

    def gap(self) -> timedelta:
        return timedelta(seconds=self.rng.randint(*self.spec.gap_seconds))

    # ------------------------------------------------------------ conversation

    def exchange(
        self,
        *,
        session: str,
        actor: str,
        at: datetime,
        user_text: str,
        score: float,
        progress: float,
        final: bool,
        reply: str | None = None,
        intent: str | None = None,
    ) -> datetime:
        """Append one safety exchange; returns the time of the reply."""
        rng, spec, threshold = self.rng, self.spec, self.platform.block_threshold
        if final and spec.blocking:
            if self.delivered or spec.stop == "refuse":
                score = min(score, threshold - 0.02)
            else:
                score = rng.uniform(threshold, 0.97)
        score = _score(score)
        blocked = spec.blocking and score >= threshold
        if blocked or (final and not self.delivered):
            reply_text, out = self.fill(spec.refusal_line), rng.uniform(0.01, 0.05)
        elif final:
            reply_text, out = self.fill(spec.delivered_line), rng.uniform(0.88, 0.98)
        else:
            reply_text = reply or self.fill(_line(spec.assistant_lines, progress, False))
            out = min(threshold - 0.05, score * 0.8 + rng.uniform(0.0, 0.05))
        latency = rng.randint(400, 2600)
        exchange = Exchange.answered(
            rng, session_id=session, actor_id=actor, user_at=at, latency_ms=latency,
            user_text=user_text, reply_text=reply_text,
            user_signals=TurnSignals(policy_score=score, intent=intent, blocked=blocked),
            reply_signals=TurnSignals(output_score=_score(out), status=200, latency_ms=latency),
            affected=True,
        )
        self.exchanges.append(exchange)
        return exchange.reply_at

    def rising(self, progress: float) -> float:
        spec = self.spec
        rise = spec.score_start + (spec.score_end - spec.score_start) * progress**1.4
        ceiling = self.platform.block_threshold - 0.02 if spec.blocking else 1.0
        return min(ceiling, max(0.01, rise + self.rng.uniform(-0.03, 0.03)))

    def flat(self) -> float:
        return self.rng.uniform(self.spec.score_start, self.spec.score_end)

    def conversation(self, session: str, actor: str, start: datetime, count: int, *,
                     offset: int = 0, total: int | None = None, last_session: bool = True,
                     style: str = "rising", variant: int = 1) -> datetime:
        """``count`` exchanges of one session; progress runs over ``total`` exchanges."""
        spec = self.spec
        total = total or count
        at = start
        previous = ""
        for i in range(count):
            k = offset + i
            progress = k / (total - 1) if total > 1 else 1.0
            final = last_session and i == count - 1
            intent = None
            if style == "parts":
                parts = max(1, total - 1)
                text = self.fill(_line(spec.user_lines, 0.0, final), part=k + 1, parts=parts)
                reply = self.fill(spec.assistant_lines[0], part=k + 1, parts=parts)
                score = self.flat()
            else:
                text = self.fill(_line(spec.user_lines, progress, final), part=variant)
                if text == previous:
                    text = self.rng.choice(spec.follow_ups)
                else:
                    previous = text
                reply = None
                score = self.rising(progress) if style == "rising" else self.flat()
            if spec.intents:
                intent = spec.intents[min(len(spec.intents) - 1, int(progress * len(spec.intents)))]
            reply_at = self.exchange(session=session, actor=actor, at=at, user_text=text,
                                     score=score, progress=progress, final=final, reply=reply,
                                     intent=intent)
            at = reply_at + self.gap()
        return at

    # ----------------------------------------------------------------- outage

    def outage(self, onset: datetime, minutes: int) -> None:
        """Sessions around the window; the first one fails at ``onset`` by definition."""
        rng, spec = self.rng, self.spec
        end = onset + timedelta(minutes=minutes)
        for n in range(rng.randint(*spec.sessions)):
            session, actor = session_id(rng), actor_id(rng)
            at = onset
            if n:
                at += timedelta(seconds=rng.randint(-600, max(-600, minutes * 60 - 60)))
            count = rng.randint(*spec.exchanges)
            for i in range(count):
                inside = onset <= at <= end
                failed = (n == 0 and i == 0) or (inside and rng.random() < spec.failure_share)
                at = self.outage_exchange(session, actor, at, i, count, failed) + self.gap()

    def outage_exchange(self, session: str, actor: str, at: datetime, i: int, count: int,
                        failed: bool) -> datetime:
        rng, spec = self.rng, self.spec
        progress = i / (count - 1) if count > 1 else 0.0
        lines = spec.user_lines
        text = self.fill(lines[min(len(lines) - 1, round(progress * (len(lines) - 1)))])
        if failed:
            status = rng.choice(spec.failure_status)
            latency = rng.randint(*spec.failure_latency_ms)
            reply = self.fill(rng.choice(spec.assistant_lines), status=status)
        else:
            status, latency = 200, rng.randint(*spec.normal_latency_ms)
            reply = self.fill(spec.success_line)
        exchange = Exchange.answered(
            rng, session_id=session, actor_id=actor, user_at=at, latency_ms=latency,
            user_text=text, reply_text=reply,
            user_signals=TurnSignals(policy_score=_score(rng.uniform(0.01, 0.08)),
                                     blocked=False),
            reply_signals=TurnSignals(status=status, latency_ms=latency),
            affected=failed, failed=failed,
        )
        self.exchanges.append(exchange)
        return exchange.reply_at


def build_trajectory(arch: Archetype, platform: Platform, rng: Random, onset: datetime,
                     service: str) -> Trajectory:
    """The incident's own exchanges for ``arch``, starting at ``onset``."""
    spec = arch.trajectory
    b = _Builder(arch, platform, rng, service)
    shape = spec.shape
    if shape == "outage":
        minutes = rng.randint(*spec.duration_minutes)
        b.outage(onset, minutes)
        end = onset + timedelta(minutes=minutes)
    else:
        if shape in ("single_turn", "escalation", "drift", "encoded"):
            count = rng.randint(*spec.exchanges)
            style = "flat" if shape == "encoded" else "rising"
            b.conversation(session_id(rng), actor_id(rng), onset, count, style=style)
        elif shape == "decomposition":
            parts = rng.randint(*spec.exchanges)
            b.conversation(session_id(rng), actor_id(rng), onset, parts + 1, style="parts")
        elif shape == "coordinated":
            actors = rng.randint(*spec.actors)
            window = rng.randint(*spec.window_minutes) * 60
            for n in range(actors):
                count = rng.randint(*spec.exchanges)
                start = onset if n == 0 else onset + timedelta(seconds=rng.randint(0, window))
                b.conversation(session_id(rng), actor_id(rng), start, count, style="flat",
                               variant=n + 1)
        elif shape == "multi_session":
            actor = actor_id(rng)
            sessions = rng.randint(*spec.sessions)
            counts = [rng.randint(*spec.exchanges) for _ in range(sessions)]
            total, offset, at = sum(counts), 0, onset
            for n, count in enumerate(counts):
                if n:
                    at = at + timedelta(minutes=rng.randint(*spec.session_gap_minutes))
                b.conversation(session_id(rng), actor, at, count, offset=offset, total=total,
                               last_session=n == sessions - 1)
                offset += count
                at = b.exchanges[-1].reply_at
        else:  # pragma: no cover - the catalog's Literal rules this out
            raise ValueError(f"unknown trajectory shape {shape!r}")
        end = max(e.reply_at for e in b.exchanges)
    affected = [e for e in b.exchanges if e.affected]
    starts: dict[str, datetime] = {}
    for e in sorted(b.exchanges, key=lambda e: e.user_at):
        starts.setdefault(e.session_id, e.user_at)
    return Trajectory(
        exchanges=b.exchanges,
        delivered=b.delivered if shape != "outage" else True,
        onset=onset,
        end=end,
        affected_sessions=sorted({e.session_id for e in affected}),
        affected_users=sorted({e.actor_id for e in affected}),
        session_starts=starts,
    )


def benign_session(rng: Random, lines: list[BenignLine], start: datetime, *, operational: bool,
                   exchanges: int = 1, user_text: str | None = None,
                   blocked_score: float | None = None) -> list[Exchange]:
    """An unrelated session: ordinary requests, low scores, successful replies.

    With ``blocked_score`` the first user turn is blocked at that score (a
    conservative false positive, used by red herrings).
    """
    session, actor = session_id(rng), actor_id(rng)
    out: list[Exchange] = []
    at = start
    for i in range(exchanges):
        line = rng.choice(lines)
        blocked = blocked_score is not None and i == 0
        score = blocked_score if blocked_score is not None and i == 0 else rng.uniform(0.01, 0.12)
        latency = rng.randint(300, 1500)
        exchange = Exchange.answered(
            rng, session_id=session, actor_id=actor, user_at=at, latency_ms=latency,
            user_text=user_text if (user_text and i == 0) else line.user,
            reply_text="I can't help with that." if blocked else line.assistant,
            user_signals=TurnSignals(policy_score=_score(score), blocked=blocked),
            reply_signals=TurnSignals(
                output_score=None if operational else _score(rng.uniform(0.01, 0.08)),
                status=200,
                latency_ms=latency,
            ),
            affected=False,
        )
        out.append(exchange)
        at = exchange.reply_at + timedelta(seconds=rng.randint(20, 180))
    return out


def to_turns(exchanges: list[Exchange]) -> list[Turn]:
    """Turns in time order; ``turn`` counts within each session from 0."""
    ordered = sorted(exchanges, key=lambda e: (e.user_at, e.session_id, e.trace_id))
    counters: dict[str, int] = {}
    turns: list[Turn] = []
    for e in ordered:
        n = counters.get(e.session_id, 0)
        turns.append(Turn(turn=n, at=e.user_at, session_id=e.session_id, actor_id=e.actor_id,
                          role="user", content=e.user_text, signals=e.user_signals))
        turns.append(Turn(turn=n + 1, at=e.reply_at, session_id=e.session_id,
                          actor_id=ASSISTANT, role="assistant", content=e.reply_text,
                          signals=e.reply_signals))
        counters[e.session_id] = n + 2
    turns.sort(key=lambda t: (t.at, t.session_id, t.turn))
    return turns
