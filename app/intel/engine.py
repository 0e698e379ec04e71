"""The engine: incidents folded in incrementally, every tool action answered.

``IntelEngine.apply`` takes one event and updates the incident book and the
indexes in time independent of history size. The actions read those indexes
at an explicit ``as_of``; nothing here reads the clock or touches a file:
``weekly_digest`` returns the artifact bytes and the follow-ups it created,
and the shell decides where they go.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from app.contracts import (
    OPEN_STATUSES,
    AlertsRequest,
    AlertsResponse,
    Bucket,
    BucketsRequest,
    BucketsResponse,
    CorrelateRequest,
    CorrelateResponse,
    CorrelationQualityRequest,
    CorrelationQualityResponse,
    DigestLearning,
    Event,
    FollowUp,
    FollowUpOutcome,
    GateRequest,
    GateResponse,
    IncidentEvent,
    KeyType,
    LinkVerdict,
    RecurrenceRequest,
    RecurrenceResponse,
    RecurrenceUpdate,
    RelatedIncident,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
)
from app.intel import alerts as alert_rules
from app.intel import buckets as bucket_rules
from app.intel import (
    correlation,
    digest,
    followups,
    gate,
    labels,
    quality,
    recurrence,
    trends,
    velocity_report,
)
from app.intel.incidents import Change, IncidentBook, Record
from app.intel.periods import (
    DAY,
    canonical_week,
    from_micros,
    in_window,
    last_complete_week,
    micros,
    week_end,
    window_start,
)
from app.intel.recurrence import KeyRow
from app.intel.timeline import Timeline, TimelineIndex
from app.intel.verdicts import VerdictBook, VerdictChange
from app.intel.watermark import retention_cutoff
from app.policy import Policy

Request = (CorrelateRequest | RecurrenceRequest | BucketsRequest | WeeklyDigestRequest
           | GateRequest | AlertsRequest | CorrelationQualityRequest)
Response = (CorrelateResponse | RecurrenceResponse | BucketsResponse | WeeklyDigestResponse
            | GateResponse | AlertsResponse | CorrelationQualityResponse)
Label = tuple[str, str, bool]
"""A labelled pair: the incident judged from, the other one, and whether they are related."""
LearningSection = Callable[[IncidentBook, datetime], DigestLearning | None]
StopRequested = Callable[[], bool]
"""Asked between steps of a long read: ``True`` makes it raise :class:`ReadCancelled`.

The shell passes one in (say, a flag its time limit sets); the engine never
reads a clock itself."""


def _never() -> bool:
    return False


class ReadCancelled(Exception):
    """The shell asked a read to stop (its time limit passed); the answer is abandoned."""


def checkpoint(stop: StopRequested) -> None:
    """Raise :class:`ReadCancelled` when the shell asked the read to stop."""
    if stop():
        raise ReadCancelled("the read was stopped by its caller")


class ActionError(ValueError):
    """A tool call the engine cannot answer; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Artifact:
    """A file the shell should write: path relative to the working directory."""

    path: str
    data: bytes


@dataclass(frozen=True)
class Answer:
    response: Response
    artifacts: list[Artifact] = field(default_factory=list)
    followups: list[FollowUp] = field(default_factory=list)


class IntelEngine:
    """Incident state, its indexes, and the five actions over them."""

    def __init__(self, policy: Policy, learning: LearningSection | None = None) -> None:
        self.policy = policy
        self.alerts = alert_rules.AlertBook()
        self.book = IncidentBook(policy.intel.kind_derivation, self.alerts)
        self.timeline = Timeline()
        self.correlation = correlation.CorrelationIndex(policy.intel)
        self.by_bucket = TimelineIndex()
        self.by_service = TimelineIndex()
        self.open_ids: set[str] = set()
        self.verdicts = VerdictBook()
        self.verdict_change: VerdictChange | None = None
        """What the last :meth:`apply` did to a pair's verdict (see :meth:`answers_changed_by`)."""
        self.names = labels.SignatureNames()
        self.learning: LearningSection = (
            learning if learning is not None else _learning_hook(policy))
        self.watermark: int | None = None
        """Newest ``occurred_at`` applied, or a later time :meth:`advance` moved it to
        (microseconds): the live ``as_of``."""
        self.advanced = False
        """The watermark was moved by :meth:`advance`, not by the newest event."""
        self.retained_from = retention_cutoff(0, policy.intel)
        self.alerts_from = alert_rules.alert_cutoff(0, policy.intel.alerts)
        self.forgotten = 0
        """Incidents forgotten so far because the retention cutoff moved past them: a
        reader that notes it can tell when answers about any time may have changed."""

    # ----------------------------------------------------------------- folding

    def apply(self, event: Event) -> Change | None:
        """Fold one event in. An incident started before the retention cutoff is
        ignored, as is a verdict that occurred before it; the cutoff follows the
        watermark (:mod:`app.intel.watermark`), and alert transitions are kept for
        ``alerts.retention_days`` likewise. A verdict's effect on its pair is left in
        :attr:`verdict_change`."""
        at = micros(event.occurred_at)
        if self.watermark is None or at > self.watermark:
            self._move_watermark(at)
            self.advanced = False
        self.verdict_change = None
        self.book.affected = ()
        if isinstance(event, IncidentEvent) and \
                micros(event.incident.started_at) < self.retained_from:
            return None
        if isinstance(event, LinkVerdict):
            if at >= self.retained_from:
                self.verdict_change = self.verdicts.apply(event)
            self.book.apply(event)  # keeps nothing of a pair; resets what it says changed
            return None
        change = self.book.apply(event)
        if change is not None:
            if change.before is not None:
                self._unindex(change.before)
            self._index(change.after)
        return change

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def apply_until(self, events: Iterable[Event], as_of: datetime) -> None:
        """The engine as of ``as_of``: the events that occurred by then, and time
        advanced to it (what a worker whose inputs went quiet holds at that ``as_of``)."""
        self.apply_all(e for e in events if e.occurred_at <= as_of)
        self.advance(micros(as_of))

    def advance(self, to: int) -> bool:
        """Move the watermark to ``to`` (microseconds) without an event: time that passed
        with nothing arriving. Windows age and retention follows exactly as when an event
        moves it; an earlier ``to`` changes nothing. True when it moved."""
        if self.watermark is not None and to <= self.watermark:
            return False
        self._move_watermark(to)
        self.advanced = True
        return True

    def _move_watermark(self, at: int) -> None:
        self.watermark = at
        cutoff = retention_cutoff(at, self.policy.intel)
        if cutoff > self.retained_from:
            self.forget_before(cutoff)
        alert_cut = alert_rules.alert_cutoff(at, self.policy.intel.alerts)
        if alert_cut > self.alerts_from:
            self.alerts_from = alert_cut
            self.alerts.prune(alert_cut)

    def forget_before(self, cutoff: int) -> list[Record]:
        """Forget incidents started before ``cutoff``, and their facts that occurred
        before it."""
        self.retained_from = cutoff
        gone = [self.record(i) for _, i in self.timeline.window(-1 << 62, cutoff - 1)]
        self.forgotten += len(gone)
        for record in gone:
            self._unindex(record)
            self.book.forget(record.incident_id)
        self.book.forget_facts_before(cutoff)
        self.verdicts.forget_before(cutoff)
        return gone

    def _index(self, r: Record) -> None:
        entry = (r.started, r.incident_id)  # one tuple shared by every index
        self.timeline.add(r.started, r.incident_id, entry)
        self.correlation.add(r, entry)
        self.by_bucket.add(bucket_rules.bucket_key(r, self.policy.intel), r.started,
                           r.incident_id, entry)
        self.by_service.add(r.service, r.started, r.incident_id, entry)
        self.names.add(r)
        if r.status in OPEN_STATUSES:
            self.open_ids.add(r.incident_id)

    def _unindex(self, r: Record) -> None:
        self.timeline.remove(r.started, r.incident_id)
        self.correlation.remove(r)
        self.by_bucket.remove(bucket_rules.bucket_key(r, self.policy.intel), r.started,
                              r.incident_id)
        self.by_service.remove(r.service, r.started, r.incident_id)
        self.names.remove(r)
        self.open_ids.discard(r.incident_id)

    # ----------------------------------------------------------------- reading

    def record(self, incident_id: str) -> Record:
        return self.book.incidents[incident_id]

    def label(self, key_type: KeyType, key: str) -> str:
        """What a person reads for a recurrence key (:mod:`app.intel.labels`)."""
        return labels.key_label(key_type, key, self.names,
                                self.policy.intel.recurrence.label_template)

    def window(self, as_of: int, days: int, timeline: Timeline | None = None) -> list[Record]:
        """Incidents with ``as_of - days < started <= as_of``, oldest first."""
        source = self.timeline if timeline is None else timeline
        return [self.record(i) for _, i in source.window(window_start(as_of, days), as_of)]

    # ----------------------------------------------------------------- actions

    def answer(self, request: Request, as_of: datetime,
               emitted: Container[str] = frozenset(), stop: StopRequested = _never) -> Answer:
        """Answer one tool call as of ``as_of``; ``emitted`` holds sent follow-up keys.

        ``stop`` is consulted between the steps of the long loops (per gate
        window, per bucket); when it answers ``True`` the read raises
        :class:`ReadCancelled` instead of finishing work nobody waits for.
        """
        if isinstance(request, CorrelateRequest):
            return Answer(self.correlate(request))
        if isinstance(request, RecurrenceRequest):
            return Answer(self.recurrence(request, as_of))
        if isinstance(request, BucketsRequest):
            return Answer(self.buckets(request, as_of, stop))
        if isinstance(request, WeeklyDigestRequest):
            return self.weekly_digest(request, as_of, emitted)
        if isinstance(request, AlertsRequest):
            return Answer(self.alert_report(request, as_of, stop))
        if isinstance(request, CorrelationQualityRequest):
            return Answer(self.correlation_quality(request, as_of, stop))
        return Answer(self.gate(request, as_of, stop))

    def correlate(self, request: CorrelateRequest) -> CorrelateResponse:
        target = self.book.incidents.get(request.incident_id)
        if target is None:
            raise ActionError("unknown_incident",
                              f"incident_id: no incident {request.incident_id!r} is known")
        related = self.correlation.correlate(target, self.record)
        if self.verdicts:
            related = self._with_verdicts(target.incident_id, related)
        note = (correlation.note_for(target.incident_id, related, self.policy.intel)
                if request.append_note else None)
        return CorrelateResponse(incident_id=target.incident_id, related_count=len(related),
                                 related=related, note=note)

    def _with_verdicts(self, incident_id: str,
                       related: list[RelatedIncident]) -> list[RelatedIncident]:
        """The rows, each carrying the verdict on its pair when a responder gave one."""
        out = []
        for row in related:
            verdict = self.verdicts.of(incident_id, row.incident_id)
            out.append(row if verdict is None else
                       row.model_copy(update={"verdict": verdict.verdict}))
        return out

    def relabels(self, change: Change) -> bool:
        """Whether an applied incident change renamed a signature it touches (a label is
        its signature's most common variant over every incident kept, so it shows in
        answers about any time). A signature that starts or stops being carried is not
        renamed: answers that showed it, or will, hold the changed incident itself."""
        before, after = change.before, change.after
        if before is None and self.names.single(after.signature):
            return False  # a new incident of a signature with one variant: same name
        if (before is not None and before.signature == after.signature
                and labels.variant_of(before) == labels.variant_of(after)):
            return False  # the same counts as before the change
        signatures = {after.signature} | ({before.signature} if before is not None else set())
        for signature in signatures:
            now = self.names.name(signature)
            was = self.names.name_if(signature, without=after, with_=before)
            if now is not None and was is not None and now != was:
                return True
        return False

    def answers_changed_by(self, change: VerdictChange | None) -> tuple[str, ...]:
        """The incidents whose ``correlate`` answer a verdict change altered: each of the
        pair whose answer lists the other (the row now carries another verdict).

        The stream calls it after applying a ``learning.events`` record
        (:attr:`verdict_change`) to re-send those incidents' ``intel.correlations``.
        """
        if change is None or (change.before is not None
                              and change.before.verdict == change.after.verdict):
            return ()
        a, b = change.pair
        out = []
        for incident_id, other in ((a, b), (b, a)):
            target = self.book.incidents.get(incident_id)
            if target is not None and any(
                    r.incident_id == other
                    for r in self.correlation.correlate(target, self.record)):
                out.append(incident_id)
        return tuple(out)

    # --------------------------------------------------------- correlation quality

    def correlation_quality(self, request: CorrelationQualityRequest, as_of: datetime,
                            stop: StopRequested = _never) -> CorrelationQualityResponse:
        """The rules measured against responders' verdicts, with a suggested change."""
        return self.quality_of(self.verdict_labels(), as_of, request.window_days,
                               "verdicts", stop)

    def quality_of(self, labels: Iterable[Label], as_of: datetime, window_days: int | None,
                   source: quality.Source,
                   stop: StopRequested = _never) -> CorrelationQualityResponse:
        """The ``correlation_quality`` answer for any labels (verdicts, planted truth);
        ``window_days`` defaults to the policy's."""
        window = window_days or self.policy.intel.correlation_quality.window_days
        evidence = self.quality_evidence(labels, as_of, window)
        return quality.assess(evidence, self.policy.intel, window_days=window, as_of=as_of,
                              source=source, step=functools.partial(checkpoint, stop))

    def verdict_labels(self) -> list[Label]:
        """Every pair's winning verdict as a label, judged from its ``incident_id``."""
        return [(v.incident_id, v.related_incident_id, v.related) for _, v in self.verdicts]

    def truth_labels(self, groups: Iterable[Iterable[str]]) -> list[Label]:
        """Labels from a planted truth that lists which incidents belong together.

        Every two known incidents of one group are related; every other pair a
        listed rule fires on is unrelated (the pairs no rule fires on are true
        negatives under every policy, so they are not labelled). The later-started
        incident of a pair (the larger id on a tie) is the one judged from.
        """
        members = [[self.book.incidents[i] for i in dict.fromkeys(group)
                    if i in self.book.incidents] for group in groups]
        labels: dict[tuple[str, str], Label] = {}

        def label(a: Record, b: Record, related: bool) -> None:
            first, second = sorted((a, b), key=lambda r: (r.started, r.incident_id))
            # a pair planted together stays related, whatever else it is near
            labels.setdefault((first.incident_id, second.incident_id),
                              (second.incident_id, first.incident_id, related))

        for known in members:
            for a, b in itertools.combinations(known, 2):
                label(a, b, True)
        for incident_id in sorted(self.book.incidents):
            record = self.record(incident_id)
            for other in self._neighbours(record):
                label(record, other, False)
        return [labels[key] for key in sorted(labels)]

    def _neighbours(self, record: Record) -> list[Record]:
        """The candidates of ``record`` a listed rule fires on."""
        rules = self.policy.intel
        return [c for c in self.correlation.neighbours(record, self.record)
                if correlation.match(record, c, rules).reasons(rules)]

    def quality_evidence(self, labels: Iterable[Label], as_of: datetime,
                         window_days: int) -> quality.Evidence:
        """The labelled pairs whose target started in the window, as the quality rules
        need them (labels naming an unknown incident are counted as skipped)."""
        end = micros(as_of)
        rules = self.policy.intel
        lookback = rules.correlation.lookback_days * DAY
        pairs: list[quality.LabelledPair] = []
        skipped = 0
        for target_id, other_id, related in labels:
            target = self.book.incidents.get(target_id)
            other = self.book.incidents.get(other_id)
            if target is None or other is None:
                skipped += 1
                continue
            if not in_window(target.started, end, window_days):
                continue
            conditions = (_conditions(correlation.match(target, other, rules))
                          if abs(target.started - other.started) <= lookback else None)
            pairs.append(quality.LabelledPair(target_id, other_id, related, other.started,
                                              target.started, conditions))
        crowds: dict[str, tuple[quality.Neighbour, ...]] = {}
        limit = rules.correlation.max_related
        for incident_id in sorted({i for p in pairs for i in (p.target, p.other)}):
            record = self.record(incident_id)
            neighbours = self._neighbours(record)
            if len(neighbours) > limit:
                crowds[incident_id] = tuple(
                    quality.Neighbour(_conditions(correlation.match(record, c, rules)),
                                      c.started, c.incident_id) for c in neighbours)
        return quality.Evidence(tuple(pairs), crowds, skipped)
    def recently_correlated(self, as_of: datetime, limit: int, scan: int,
                            stop: StopRequested = _never) -> list[CorrelateResponse]:
        """The current ``correlate`` answers of the newest incidents (started at or
        before ``as_of``) that have related incidents, newest first: at most ``limit``,
        from no more than the ``scan`` newest incidents, so the read is bounded however
        long the history."""
        found: list[CorrelateResponse] = []
        newest = self.timeline.newest_first(-(1 << 62), micros(as_of))
        for _, incident_id in itertools.islice(newest, scan):
            if len(found) >= limit:
                break
            checkpoint(stop)
            answer = self.correlate(CorrelateRequest(action="correlate", incident_id=incident_id))
            if answer.related_count:
                found.append(answer)
        return found

    def recurrence(self, request: RecurrenceRequest, as_of: datetime) -> RecurrenceResponse:
        records = self.window(micros(as_of), request.window_days)
        return recurrence.report(records, as_of, request.window_days, self.policy.intel,
                                 self.label)

    def recurrence_overview(self, as_of: datetime, window_days: int) -> tuple[
            RecurrenceResponse, list[KeyRow]]:
        """The ``recurrence`` answer of a window and every key of it, ranked (what the
        dashboard lists beyond the answer's top ``top_n``), from one tally."""
        records = self.window(micros(as_of), window_days)
        counts = recurrence.tally(records)
        answer = recurrence.report(records, as_of, window_days, self.policy.intel, self.label,
                                   counts)
        return answer, recurrence.ranked(counts, self.policy.intel)

    def bucket_list(self, as_of: datetime, window_days: int,
                    service: str | None = None, stop: StopRequested = _never) -> list[Bucket]:
        """Kept buckets at ``as_of``, ranked; optionally only one service's incidents."""
        end = micros(as_of)
        span = max(30, window_days)
        groups: dict[str, list[Record]] = {}
        for key in self.by_bucket.keys():
            checkpoint(stop)
            timeline = self.by_bucket.get(key)
            assert timeline is not None
            records = self.window(end, span, timeline)
            if service is not None:
                records = [r for r in records if r.service == service]
            if records:
                groups[str(key)] = records
        return self._ranked(groups, as_of, window_days)

    def _ranked(self, groups: dict[str, list[Record]], as_of: datetime,
                window_days: int) -> list[Bucket]:
        """Kept, ranked summaries of buckets given their incidents in the window."""
        summaries = [
            b for key in sorted(groups)
            if (b := bucket_rules.summarise(key, groups[key], as_of, window_days,
                                            self.policy.intel)) is not None
        ]
        return bucket_rules.ranked(summaries, self.policy.intel)

    def buckets(self, request: BucketsRequest, as_of: datetime,
                stop: StopRequested = _never) -> BucketsResponse:
        listed = self.bucket_list(as_of, request.window_days, request.service, stop)
        return BucketsResponse(service_filter=request.service, window_days=request.window_days,
                               bucket_count=len(listed), buckets=listed, as_of=as_of)

    def recurrence_update(self, key: str, as_of: datetime) -> RecurrenceUpdate:
        """The ``intel.recurrence`` record of ``key`` (``<type>:<value>``) at ``as_of``;
        counts of zero when nothing of the key is in the windows."""
        key_type, value = recurrence.split_key(key)
        timeline = self.correlation.timeline(key_type, value)
        end = micros(as_of)
        counts = [0 if timeline is None else timeline.count(window_start(end, days), end)
                  for days in (7, 30)]
        return recurrence.update(key_type, value, self.label(key_type, value), as_of,
                                 counts[0], counts[1], self.policy.intel)

    def daily_incidents(self, key: str, as_of: datetime,
                        days: int = trends.TREND_DAYS) -> list[int]:
        """Incidents of ``key`` (``<type>:<value>``) per day of the ``days`` days ending
        at ``as_of``, oldest first (:mod:`app.intel.trends`)."""
        key_type, value = recurrence.split_key(key)
        timeline = self.correlation.timeline(key_type, value)
        if timeline is None:
            return [0] * days
        return trends.daily(timeline.count, micros(as_of), days)

    def daily_firings(self, fingerprint: str, as_of: datetime,
                      days: int = trends.TREND_DAYS) -> list[int]:
        """Firings of an alert fingerprint per day of the ``days`` days ending at
        ``as_of``, oldest first."""
        history = self.alerts.histories.get(fingerprint)
        if history is None:
            return [0] * days
        return trends.daily(trends.counter_of(history.firings), micros(as_of), days)

    def bucket_summary(self, key: str, as_of: datetime) -> Bucket | None:
        """The ``intel.buckets`` value of bucket ``key`` at ``as_of``: the entry the
        ``buckets`` action (default window, no service filter) lists for it, or
        ``None`` (a tombstone) when that action does not list it."""
        timeline = self.by_bucket.get(key)
        if timeline is None:
            return None
        records = self.window(micros(as_of), bucket_rules.PUBLISHED_WINDOW_DAYS, timeline)
        return bucket_rules.published(key, records, as_of, self.policy.intel)

    def week_buckets(self, week: str) -> tuple[datetime, list[Record], dict[str, list[Record]]]:
        """A digest week's end, its 30-day window of incidents and their buckets."""
        try:
            end = week_end(week)
        except ValueError as exc:
            raise ActionError("invalid_argument", f"week: {exc}") from None
        window = self.window(micros(end) - 1, 30)
        groups: dict[str, list[Record]] = {}
        for r in window:
            groups.setdefault(bucket_rules.bucket_key(r, self.policy.intel), []).append(r)
        return end, window, groups

    def week_followups(self, week: str, emitted: Container[str]) -> FollowUpOutcome:
        """The follow-ups a week's digest creates (those in ``emitted`` are skipped)."""
        end, _, groups = self.week_buckets(week)
        return followups.plan(groups, week, end, emitted, self.policy.intel)

    def weekly_digest(self, request: WeeklyDigestRequest, as_of: datetime,
                      emitted: Container[str] = frozenset(),
                      output_dir: str | None = None) -> Answer:
        """The digest of a week; artifacts go under ``output_dir`` (default: the policy's).

        A week that has ended is answered as of its end, whatever ``as_of`` is later:
        every window ends there already, and so do the open count and the learning
        section (at the week's last instant, as the windows: an incident started at
        Monday 00:00 belongs to the next week), so the digest of a past week changes
        only when its content does."""
        try:  # keys and file names come from the parsed week, never the raw text
            week = canonical_week(request.week or last_complete_week(as_of))
        except ValueError as exc:
            raise ActionError("invalid_argument", f"week: {exc}") from None
        end, window, groups = self.week_buckets(week)
        as_of = min(as_of, end)
        last = micros(end) - 1
        plan = followups.plan(groups, week, end, emitted, self.policy.intel)
        point = min(micros(as_of), last)
        learning = self.learning(self.book, from_micros(point))
        open_count = sum(1 for i in self.open_ids if self.record(i).started <= point)
        summary = digest.summarise(
            week, as_of, window, open_count,
            self._ranked(groups, from_micros(last), 30), plan, self.policy.intel, self.label,
            learning,
            alert_noise=alert_rules.noise(self.alerts, from_micros(last),
                                          self.policy.intel.digest.top_n, self.policy.intel.alerts,
                                          self.policy.intel.kind_derivation.default),
            correlation_quality=self._week_quality(from_micros(last)),
        )
        markdown = digest.render_markdown(summary, self.policy.intel)
        out_dir = (output_dir or self.policy.intel.digest.output_dir).rstrip("/")
        paths = [f"{out_dir}/{week}.json", f"{out_dir}/{week}.md"]
        artifacts = []
        if request.save_artifacts:
            artifacts = [Artifact(paths[0], digest.artifact_json(summary)),
                         Artifact(paths[1], markdown.encode())]
        response = WeeklyDigestResponse(week=week,
                                        artifact_paths=paths if request.save_artifacts else [],
                                        markdown_preview=markdown, json_summary=summary)
        return Answer(response, artifacts, list(plan.created))

    def _week_quality(self, end: datetime) -> CorrelationQualityResponse | None:
        """The digest's "Correlation quality": only when verdicts label pairs of its window."""
        if not self.verdicts:
            return None
        window = self.policy.intel.correlation_quality.window_days
        evidence = self.quality_evidence(self.verdict_labels(), end, window)
        if not evidence.pairs:
            return None
        return quality.assess(evidence, self.policy.intel, window_days=window, as_of=end,
                              source="verdicts")

    def alert_report(self, request: AlertsRequest, as_of: datetime,
                     stop: StopRequested = _never) -> AlertsResponse:
        """The ``alerts`` action: recurring, flapping and unanswered alert fingerprints.

        Transitions are kept ``alerts.retention_days``, so no longer window is answered."""
        kept = self.policy.intel.alerts.retention_days
        if request.window_days > kept:
            raise ActionError("invalid_argument",
                              f"window_days: {request.window_days} is more than the "
                              f"{kept} days of alert transitions kept (alerts.retention_days)")
        return alert_rules.report(self.alerts, as_of, request.window_days, request.service,
                                  self.policy.intel.alerts,
                                  self.policy.intel.kind_derivation.default,
                                  step=functools.partial(checkpoint, stop))

    def gate(self, request: GateRequest, as_of: datetime,
             stop: StopRequested = _never) -> GateResponse:
        try:
            _, windows, service = gate.settings(request, self.policy.gate)
        except gate.UnknownProfile as exc:
            raise ActionError("invalid_argument", str(exc)) from None
        try:
            timeline = self.by_service.get(service)
            records = [] if timeline is None else self.window(micros(as_of), max(windows),
                                                              timeline)
            return gate.evaluate(request, records, micros(as_of), self.policy.intel,
                                 self.policy.gate, lambda: checkpoint(stop))
        except ReadCancelled:
            raise
        except Exception as exc:  # fail open: a broken gate must not block releases
            return gate.failed_open(request, f"{type(exc).__name__}: {exc}", as_of)


def _conditions(m: correlation.Match) -> correlation.Conditions:
    return (m.signature, m.service, m.kind, m.near)


def _learning_hook(policy: Policy) -> LearningSection:
    """The digest's learning section, judged against the policy's recurrence target."""
    return functools.partial(velocity_report.digest_section, target=policy.recurrence_target)


__all__ = ["DAY", "ActionError", "Answer", "Artifact", "IntelEngine", "ReadCancelled",
           "StopRequested", "checkpoint"]
