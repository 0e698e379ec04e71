"""The weekly digest: a week's incidents, recurrence, buckets and follow-ups.

Week ``W`` covers incidents started in ``[Monday W, Monday W+1)`` (docs/architecture.md
§4); every window of the digest (7 and 30 days, buckets, follow-up
thresholds) ends at that same instant, so the week's 7-day window *is* the
week. Incident state (status, severity) is as known when the digest is made.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson

from app.contracts import (
    SEVERITIES,
    AlertNoise,
    AlertRow,
    Bucket,
    CorrelationQualityResponse,
    DigestChange,
    DigestLearning,
    DigestSummary,
    FollowUpOutcome,
    RecurrenceFinding,
    dump_json,
    format_timestamp,
)
from app.intel.incidents import Record
from app.intel.periods import in_window, micros, week_end, week_start
from app.intel.recurrence import Labeller, findings, top
from app.policy import IntelPolicy

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]|~])")


def escape(text: str) -> str:
    """Make event text inert in Markdown: one line, specials and HTML escaped."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def summarise(
    week: str,
    as_of: datetime,
    window: list[Record],
    open_count: int,
    buckets: list[Bucket],
    followups: FollowUpOutcome,
    policy: IntelPolicy,
    label: Labeller,
    learning: DigestLearning | None = None,
    alert_noise: AlertNoise | None = None,
    correlation_quality: CorrelationQualityResponse | None = None,
) -> DigestSummary:
    """The JSON summary of a week from the incidents of its 30-day window."""
    start, end = week_start(week), week_end(week)
    last = micros(end) - 1
    in_week = [r for r in window if in_window(r.started, last, 7)]
    in_30 = [r for r in window if in_window(r.started, last, 30)]
    high, warn = findings(in_week, policy, label)
    high_30, warn_30 = findings(in_30, policy, label)
    high = _merge(high, high_30)
    warn = [f for f in _merge(warn, warn_30) if (f.type, f.key) not in {(h.type, h.key)
                                                                      for h in high}]
    severities = Counter(r.severity for r in in_week)
    recommendations: list[str] = []
    for text in [f.recommendation for f in high] + [t for b in buckets for t in b.recommendations]:
        if text and text not in recommendations:
            recommendations.append(text)
    n = policy.digest.top_n
    return DigestSummary(
        week=week,
        week_start=start,
        week_end=end,
        as_of=as_of,
        open_incidents_count=open_count,
        recent_7d_count=len(in_week),
        recent_30d_count=len(in_30),
        by_severity={s: severities.get(s, 0) for s in SEVERITIES},
        top_services=top(Counter(r.service for r in in_week), n),
        top_kinds=top(Counter(r.kind for r in in_week), n),
        high_recurrence=high,
        warn_recurrence=warn,
        buckets=buckets,
        followups=followups,
        recommendations=recommendations,
        learning=learning,
        alert_noise=alert_noise,
        correlation_quality=correlation_quality,
    )


def _merge(week: list[RecurrenceFinding], month: list[RecurrenceFinding]) -> list[
    RecurrenceFinding
]:
    """Findings of the week, then those only the 30-day window shows."""
    seen = {(f.type, f.key) for f in week}
    return week + [f for f in month if (f.type, f.key) not in seen]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def render_markdown(summary: DigestSummary, policy: IntelPolicy) -> str:
    """A readable report, cut to ``markdown_max_chars`` with a visible truncation line."""
    s = summary
    out = [
        f"# Weekly Incident Digest — {s.week}",
        "",
        *_revised(s),
        f"Week {format_timestamp(s.week_start)} to {format_timestamp(s.week_end)} "
        f"(state as of {format_timestamp(s.as_of)}).",
        "",
        "## Summary",
        "",
        f"- Incidents started this week: **{s.recent_7d_count}** "
        f"(last 30 days: {s.recent_30d_count})",
        f"- Open incidents: **{s.open_incidents_count}**",
        "- By severity: " + ", ".join(f"{k} {v}" for k, v in s.by_severity.items()),
        "",
        "## Top services",
        "",
        *_table(["service", "incidents"], [[escape(k.key), str(k.count)] for k in s.top_services]),
        "## Top kinds",
        "",
        *_table(["kind", "incidents"], [[escape(k.key), str(k.count)] for k in s.top_kinds]),
        "## High recurrence",
        "",
        *_table(["type", "key", "count", "recommendation"],
                [[f.type, escape(_short(f)), str(f.count), escape(f.recommendation or "")]
                 for f in s.high_recurrence]),
        "## Warn recurrence",
        "",
        *_table(["type", "key", "count"],
                [[f.type, escape(_short(f)), str(f.count)] for f in s.warn_recurrence]),
        "## Root-cause buckets",
        "",
        *_table(["bucket", "7d", "30d", "open", "last seen", "severity mix"],
                [[escape(b.bucket_key), str(b.counts.count_7d), str(b.counts.count_30d),
                  str(b.counts.open),
                  format_timestamp(b.last_seen),
                  " ".join(f"{k}:{v}" for k, v in b.severity_mix.items() if v)]
                 for b in s.buckets]),
        "## Follow-ups",
        "",
    ]
    if not s.followups.enabled:
        out += ["Automatic follow-ups are disabled by policy.", ""]
    else:
        rows = [[escape(f.meta.bucket_key), escape(f.incident_id), f.meta.due_date, "created"]
                for f in s.followups.created]
        rows += [[escape(k.bucket_key), "", "", k.reason.replace("_", " ")]
                 for k in s.followups.skipped]
        out += _table(["bucket", "incident", "due", "outcome"], rows)
    out += ["## Recommendations", ""]
    out += [f"- {escape(text)}" for text in s.recommendations] or ["_none_"]
    out.append("")
    if s.learning is not None:
        out += _learning(s.learning)
    if s.alert_noise is not None:
        out += _alert_noise(s.alert_noise)
    if s.correlation_quality is not None:
        out += _correlation_quality(s.correlation_quality)
    return _truncate("\n".join(out), policy.digest.markdown_max_chars)


_LEARNING_ROWS = (
    ("incidents", "incidents"),
    ("mttr_median_minutes", "MTTR median (minutes)"),
    ("detection_median_minutes", "detection latency median (minutes)"),
    ("recurrence_rate", "recurrence rate"),
    ("regression_tests_added", "regression tests added"),
    ("score", "learning velocity score"),
)


def _learning(section: DigestLearning) -> list[str]:
    """This quarter so far against the last, as a small table."""
    now, before = section.quarter, section.compared_with
    figures = section.model_dump()
    rows = [[label, _plain(figures[key]), _plain(figures[f"{key}_last_quarter"])]
            for key, label in _LEARNING_ROWS]
    out = [f"## Learning — {escape(now)} so far against {escape(before)}", ""]
    out += _table(["metric", escape(now), escape(before)], rows)
    verdict = "above" if section.above_target else "within"
    out += [f"Recurrence rate is {verdict} the target of "
            f"{100 * section.recurrence_target:.0f}%.", ""]
    return out


def _alert_rows(rows: list[AlertRow]) -> list[list[str]]:
    return [[escape(r.fingerprint), escape(r.service), escape(r.kind or ""), str(r.firing_7d),
             str(r.firing_30d), str(r.max_transitions_in_flap_window),
             escape(", ".join(r.linked_incidents)), format_timestamp(r.last_fired)]
            for r in rows]


def _alert_noise(section: AlertNoise) -> list[str]:
    """Alerts of the week that recur, flap, or fire with no incident."""
    header = ["fingerprint", "service", "kind", "7d", "30d", "max in flap window",
              "incidents", "last fired"]
    out = ["## Alert noise", "", "### Top recurring alerts", ""]
    out += _table(header, _alert_rows(section.top_recurring))
    out += ["### Flapping alerts", ""]
    out += _table(header, _alert_rows(section.flapping))
    out += ["### Promote to incident", ""]
    out += _table(["fingerprint", "service", "7d", "recommendation"],
                  [[escape(c.fingerprint), escape(c.service), str(c.firing_7d),
                    escape(c.recommendation)] for c in section.promote_candidates])
    return out


def _correlation_quality(q: CorrelationQualityResponse) -> list[str]:
    """The rules against responders' verdicts, and the suggested change if any."""
    o = q.overall
    out = ["## Correlation quality", "",
           f"{q.labelled_pairs} pair(s) judged by responders, whose incident started in the "
           f"{q.window_days} days to {format_timestamp(q.as_of)}: precision "
           f"{_plain(o.precision)}, recall {_plain(o.recall)}, F1 {_plain(o.f1)} "
           f"(kept and related {o.tp}, kept but unrelated {o.fp}, missed {o.fn}).", ""]
    out += _table(["rule", "pairs fired on", "precision", "share of false positives",
                   "share of misses"],
                  [[escape(r.rule), str(r.support), _plain(r.precision),
                    _plain(r.false_positive_share), _plain(r.miss_share)] for r in q.rules])
    if q.suggestion is None:
        out += [f"No suggested change: {escape(q.reason)}.", ""]
        return out
    s = q.suggestion
    before, after = s.expected.before, s.expected.after
    weights = escape(", ".join(f"{name} {weight}" for name, weight in s.weights.items()))
    out += [f"Suggested: min_score {s.min_score}; weights {weights}. Expected F1 "
            f"{_plain(before.f1)} → {_plain(after.f1)} ({s.folds}-fold cross-validated; "
            f"precision {_plain(before.precision)} → {_plain(after.precision)}, recall "
            f"{_plain(before.recall)} → {_plain(after.recall)}). "
            "`incident-intel policy suggest` prints the patch.", ""]
    return out


def _short(finding: RecurrenceFinding) -> str:
    """A signature by its label and hash prefix; a kind by its name."""
    if finding.type == "signature":
        return f"{finding.label} ({finding.key[:8]})"
    return finding.key


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    notice = "\n\n… digest truncated: {n} more characters in the JSON artifact.\n"
    keep = limit - len(notice.format(n=len(text)))
    cut = text.rfind("\n", 0, keep)
    cut = cut if cut > 0 else keep
    return text[:cut] + notice.format(n=len(text) - cut)


# ------------------------------------------------------------------ revisions
#
# A published digest is a record of its week: revision 1 when first published,
# then one more each time late events change what the week's digest says. The
# content compared is the whole summary but the three revision fields, so a
# revision always has a change to list, and the last revision is the answer of
# ``weekly_digest`` over the same events.

REVISION_FIELDS = frozenset({"revision", "revised_at", "changes"})

_COUNTS: tuple[tuple[str, str], ...] = (
    ("recent_7d_count", "incidents started this week"),
    ("recent_30d_count", "incidents in the last 30 days"),
    ("open_incidents_count", "open incidents"),
)
_LABELS = dict(_COUNTS) | {
    "buckets": "root-cause buckets",
    "high_recurrence": "high recurrence",
    "warn_recurrence": "warn recurrence",
    "followups.created": "follow-ups",
    "sections": "also changed",
}


def revisable(week: str, as_of: datetime, policy: IntelPolicy) -> bool:
    """Whether a published week may still be revised at event time ``as_of``: while the
    watermark is less than ``digest.revise_for_weeks`` weeks past the week's end."""
    return as_of < week_end(week) + timedelta(weeks=policy.digest.revise_for_weeks)


def content(summary: DigestSummary) -> bytes:
    """The summary's JSON without its revision fields: what revisions compare."""
    return dump_json(unrevised(summary))


def unrevised(summary: DigestSummary) -> DigestSummary:
    """The summary as ``weekly_digest`` answers it (no revision fields)."""
    return summary.model_copy(update=dict.fromkeys(REVISION_FIELDS))


def first_revision(summary: DigestSummary) -> DigestSummary:
    """The week's first publication."""
    return unrevised(summary).model_copy(update={"revision": 1})


def revise(previous: DigestSummary, current: DigestSummary,
           revised_at: datetime) -> DigestSummary | None:
    """The next revision of a published week, or ``None`` when its content is unchanged."""
    if content(previous) == content(current):
        return None
    return unrevised(current).model_copy(update={
        "revision": (previous.revision or 1) + 1,
        "revised_at": revised_at,
        "changes": changes(previous, current),
    })


def changes(before: DigestSummary, after: DigestSummary) -> list[DigestChange]:
    """What differs, shortly: counts before and after, entries added, removed or changed,
    and the names of the other sections that moved. Never empty when the content differs."""
    out = [DigestChange(field=name, before=getattr(before, name), after=getattr(after, name))
           for name, _ in _COUNTS if getattr(before, name) != getattr(after, name)]
    for severity in sorted(set(before.by_severity) | set(after.by_severity)):
        count_before = before.by_severity.get(severity, 0)
        count_after = after.by_severity.get(severity, 0)
        if count_before != count_after:
            out.append(DigestChange(field=f"by_severity.{severity}", before=count_before,
                                    after=count_after))
    lists: list[tuple[str, Callable[[DigestSummary], Iterable[tuple[str, bytes]]]]] = [
        ("buckets", lambda d: ((b.bucket_key, dump_json(b)) for b in d.buckets)),
        ("high_recurrence", lambda d: ((_finding(f), dump_json(f)) for f in d.high_recurrence)),
        ("warn_recurrence", lambda d: ((_finding(f), dump_json(f)) for f in d.warn_recurrence)),
        ("followups.created", lambda d: ((f.meta.dedupe_key, dump_json(f))
                                         for f in d.followups.created)),
    ]
    for name, entries in lists:
        earlier, later = dict(entries(before)), dict(entries(after))
        added = [k for k in later if k not in earlier]
        removed = [k for k in earlier if k not in later]
        moved = [k for k in later if k in earlier and later[k] != earlier[k]]
        if added or removed or moved:
            out.append(DigestChange(field=name, added=added or None, removed=removed or None,
                                    changed=moved or None))
    covered = {name for name, _ in _COUNTS} | {"by_severity", "buckets", "high_recurrence",
                                                "warn_recurrence"}
    old, new = unrevised(before), unrevised(after)
    other = [name for name in DigestSummary.model_fields
             if name not in covered | REVISION_FIELDS
             and dump_json_field(old, name) != dump_json_field(new, name)
             and not (name == "followups" and _only_created_moved(old, new))]
    if other or not out:
        out.append(DigestChange(field="sections", changed=other))
    return out


def dump_json_field(summary: DigestSummary, name: str) -> bytes:
    """One field of the summary as JSON (the comparison unit of ``sections``)."""
    return orjson.dumps(summary.model_dump(mode="json", by_alias=True, include={name})
                        .get(name), option=orjson.OPT_SORT_KEYS)


def _only_created_moved(before: DigestSummary, after: DigestSummary) -> bool:
    """Whether the follow-ups differ only in ``created`` (listed on its own line)."""
    return (before.followups.enabled == after.followups.enabled
            and before.followups.skipped == after.followups.skipped)


def _finding(finding: RecurrenceFinding) -> str:
    return f"{finding.type}:{finding.key}"


def _revised(s: DigestSummary) -> list[str]:
    """The "Revised" notice at the top of a revision: when, and what changed."""
    if not s.revision or s.revision < 2:
        return []
    when = f" at {format_timestamp(s.revised_at)}" if s.revised_at is not None else ""
    out = [f"**Revised** — revision {s.revision}{when}; late events changed this week:", ""]
    out += [f"- {_change_line(c)}" for c in s.changes or []]
    return [*out, ""]


def _change_line(change: DigestChange) -> str:
    field = change.field
    label = _LABELS.get(field) or (f"{field.removeprefix('by_severity.')} incidents this week"
                                   if field.startswith("by_severity.") else field)
    if change.before is not None or change.after is not None:
        return f"{escape(label)}: {change.before} → {change.after}"
    parts = [f"{verb} {escape(', '.join(names))}"
             for verb, names in (("added", change.added), ("removed", change.removed),
                                 ("changed", change.changed)) if names]
    return f"{escape(label)}: " + ("; ".join(parts) or "content")


def artifact_json(summary: DigestSummary) -> bytes:
    """The JSON artifact of a digest (indented, one trailing newline)."""
    return orjson.dumps(summary.model_dump(mode="json", by_alias=True),
                        option=orjson.OPT_INDENT_2) + b"\n"
