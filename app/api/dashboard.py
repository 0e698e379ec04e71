"""The on-call dashboard: one self-refreshing HTML page, no script, no CDN.

Access decision (see also the README of the API, :mod:`app.api.routes`): the
page needs no token. It is read-only and meant for a wall screen, which cannot
send a bearer header. In exchange it shows what a ``tools.oncall.read`` caller
gets from ``/v1`` (recurrence with its labels and daily counts, buckets,
alerts, correlations, learning velocity), the titles of the incidents those
name, and the follow-ups already sent, whose fields are all derived from those
same counts and ids. It never shows what needs more: no digest text, no gate
verdicts, no notes, no root causes or incident labels. Deployments that must
not expose even that put the port behind their SSO proxy.

What a person sees first: every table lists its most alarming rows first
(level, then count), says the level in words as well as in colour, folds the
rows of level ``none`` seen only once into one "and N more" line and stops
at a few rows, saying how many it left out. Things are named for people: a
signature by its label, an incident by its title, service and severity, with
the hash or id small beside it. Warn and high recurrence rows and recurring
alerts carry a 30-day sparkline of their daily counts.

Everything that comes from events is HTML-escaped; the page carries a
Content-Security-Policy without any script source, so even a missed escape
could not run code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Generic, TypeVar

from app.contracts import (
    AlertRow,
    Bucket,
    CorrelateResponse,
    FollowUp,
    Level,
    PromoteCandidate,
    QuarterVelocity,
    RelatedIncident,
    format_timestamp,
)
from app.intel.recurrence import KeyRow
from app.intel.velocity_report import two_decimals

from .trend_chart import sparkline_svg, trend_svg

__all__ = ["CONTENT_SECURITY_POLICY", "DashboardData", "IncidentBrief", "RecurrencePanel",
           "Shown", "focus", "render_dashboard", "render_notice"]

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HASH_SHOWN = 8
"""Characters of a signature shown beside its label; the whole one is in the tooltip."""
RECURRENCE_SHOWN = 8
"""Rows of a recurrence table (after folding the keys seen once)."""
ALERTS_SHOWN = 6
"""Flapping alerts and promote candidates listed, most firings first."""
BUCKETS_SHOWN = 6
RECENT_SHOWN = 6
"""Recent correlations and follow-ups listed, newest first."""
RECENT_SCAN = 200
"""Newest incidents looked at for recent correlations: the read is bounded."""
RELATED_SHOWN = 3
SAMPLES_SHOWN = 3
QUARTERS_SHOWN = 8
TREND_HEADER = "last 30 days"

T = TypeVar("T")

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#eef1f4;color:#1d2430}
header{background:#1d2430;color:#fff;padding:12px 24px;display:flex;
 justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:8px}
header h1{font-size:20px;margin:0}header .meta{color:#d5dbe3;font-size:13px}
main{padding:16px 24px;display:grid;gap:16px}
section,.panel{background:#fff;border:1px solid #d5dbe3;border-radius:6px;padding:12px 16px}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px;
 padding:0;border:0;background:none}
.pair.wide-left{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}
@media (max-width:1100px){.pair.wide-left{grid-template-columns:minmax(0,1fr)}}
h2{font-size:16px;margin:0 0 2px}
.sum{margin:0 0 8px;color:#3d4652;font-size:13px}
.sum strong{color:#1d2430}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9ee;vertical-align:top}
th{background:#f3f5f8;font-weight:600;color:#3d4652}td.num,th.num{text-align:right}
td.num{font-variant-numeric:tabular-nums;font-weight:600}
tr.level-high td{background:#fdeceb}tr.level-warn td{background:#fff4dc}
tr.level-high td:first-child{box-shadow:inset 4px 0 #b3261e}
tr.level-warn td:first-child{box-shadow:inset 4px 0 #b86e00}
.badge{display:inline-block;min-width:40px;text-align:center;padding:1px 6px;
 border-radius:10px;font-size:11px;font-weight:700;letter-spacing:.04em;
 background:#e6e9ee;color:#3d4652}
.badge.high{background:#b3261e;color:#fff}.badge.warn{background:#8a5300;color:#fff}
.what{font-weight:600}
.tag{display:inline-block;font-size:11px;color:#4a5563;border:1px solid #c9d0d9;
 border-radius:3px;padding:0 4px;margin-left:6px;font-weight:400}
code{font-size:11px;color:#4a5563;background:#f3f5f8;padding:0 3px;border-radius:3px}
.muted{color:#4f5966;font-size:12px}
tr.more td{color:#4f5966;font-size:12px;font-style:italic;background:#fff}
.empty{color:#4f5966;font-style:italic;margin:4px 0}
.badge.verdict-related{background:#dff3e4;color:#1e6b34}
.badge.verdict-unrelated{background:#f3e0df;color:#8a2a22}
.banner{background:#fff3cd;border:1px solid #e6c560;padding:10px 16px;border-radius:6px}
ul.recs,ul.related{margin:0;padding-left:18px}ul.related li{margin-bottom:2px}
td.trend{width:128px;white-space:nowrap}svg.spark{display:block}
.velocity{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.velocity .chart{flex:2 1 560px}.velocity .quarters{flex:1 1 320px}
"""


@dataclass(frozen=True)
class Shown(Generic[T]):
    """The rows a table shows, and what it leaves out: ``once`` rows of level ``none``
    seen once (folded), ``rest`` rows past the table's cap."""

    rows: Sequence[T]
    once: int = 0
    rest: int = 0

    @property
    def hidden(self) -> int:
        return self.once + self.rest


def focus(rows: Sequence[T], cap: int, *, level: Callable[[T], str] | None = None,
          count: Callable[[T], int] | None = None) -> Shown[T]:
    """The first ``cap`` rows that are not of level ``none`` with a count of one (when
    ``level`` and ``count`` say so), keeping their order; rows must come most alarming
    first."""
    kept = list(rows)
    if level is not None and count is not None:
        kept = [r for r in rows if not (level(r) == "none" and count(r) == 1)]
    return Shown(kept[:cap], once=len(rows) - len(kept), rest=max(0, len(kept) - cap))


@dataclass(frozen=True)
class IncidentBrief:
    """What the page says of an incident: its title, service, kind and severity."""

    incident_id: str
    title: str
    service: str
    kind: str
    severity: str
    status: str


@dataclass(frozen=True)
class RecurrencePanel:
    """One window's recurrence table: ranked, labelled rows and their trends."""

    window_days: int
    total_incidents: int
    shown: Shown[KeyRow]
    levels: Mapping[str, int]
    """How many keys of the window are at each level."""
    advice: Shown[str] = Shown(())
    """Recommendations of the high findings the table lists (``rest``: of the others)."""
    trends: Mapping[str, Sequence[int]] = field(default_factory=dict)
    """Daily counts of the shown warn and high rows, by ``type:key``."""


@dataclass(frozen=True)
class DashboardData:
    """Everything one render shows, read from the view at one ``as_of``."""

    as_of: datetime
    ready: bool
    recurrence: Sequence[RecurrencePanel] = ()
    buckets: Shown[Bucket] = Shown(())
    correlations: Shown[CorrelateResponse] = Shown(())
    """Current answers of the newest incidents with related ones, newest first."""
    followups: Shown[FollowUp] = Shown(())
    velocity: Sequence[QuarterVelocity] = ()
    recurrence_target: float = 0.0
    incidents: Mapping[str, IncidentBrief] = field(default_factory=dict)
    """Every incident the page names (bucket samples, correlations, related ones)."""
    alert_window_days: int = 7
    flapping: Shown[AlertRow] = Shown(())
    promote: Shown[PromoteCandidate] = Shown(())
    alert_levels: Mapping[str, Level] = field(default_factory=dict)
    """Level of each listed alert fingerprint (promote candidates carry none of their own)."""
    flapping_levels: Mapping[str, int] = field(default_factory=dict)
    """How many flapping alerts are at each level (listed or not)."""
    promote_levels: Mapping[str, int] = field(default_factory=dict)
    alert_trends: Mapping[str, Sequence[int]] = field(default_factory=dict)
    """Daily firings of the listed alerts, by fingerprint."""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _more(shown: Shown[T], columns: int, rest: str) -> str:
    """The closing row that says how many rows the table left out."""
    if not shown.hidden:
        return ""
    parts = []
    if shown.once:
        parts.append(f"{shown.once} seen once (level none)")
    if shown.rest:
        parts.append(f"{shown.rest} {rest}")
    return (f'<tr class="more"><td colspan="{columns}">and {shown.hidden} more: '
            f"{_e(', '.join(parts))}</td></tr>")


def _table(table_id: str, header: Sequence[tuple[str, bool]], rows: Sequence[str],
           shown: Shown[T], empty: str, rest: str = "below these") -> str:
    """A table of ``rows`` closed by what it left out (``rest`` says where those rows
    are: below, or earlier), or the ``empty`` sentence."""
    if not rows:
        if shown.hidden:
            return (f'<p class="empty" id="{table_id}-empty">{_e(empty)} '
                    f'({shown.hidden} seen once, level none)</p>')
        return f'<p class="empty" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f'<th scope="col" class="num">{_e(h)}</th>' if num
                   else f'<th scope="col">{_e(h)}</th>' for h, num in header)
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>'
            f'{"".join(rows)}{_more(shown, len(header), rest)}</tbody></table>')


def _badge(level: str) -> str:
    return f'<span class="badge {_e(level)}">{_e(level.upper())}</span>'


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _spark(counts: Sequence[int] | None, as_of: datetime, what: str) -> str:
    """The 30-day sparkline cell, with a text equivalent naming the busiest day."""
    if not counts:
        return '<td class="trend"></td>'
    first = as_of - timedelta(days=len(counts) - 1)
    peak = max(counts)
    busiest = _day(first + timedelta(days=counts.index(peak))) if peak else "none"
    text = (f"{what} per day, {len(counts)} days to {_day(as_of)} (the last 7 shaded): "
            f"{sum(counts)} in all, at most {peak} a day (busiest {busiest})")
    return f'<td class="trend">{sparkline_svg(counts, text)}</td>'


def _levels_sentence(levels: Mapping[str, int]) -> str:
    high, warn = levels.get("high", 0), levels.get("warn", 0)
    if not (high or warn):
        return "nothing at warn or high"
    return ", ".join(f"<strong>{n} {name}</strong>" for name, n in (("high", high),
                                                                      ("warn", warn)) if n)


def _what(row: KeyRow) -> str:
    """A key as a person reads it: the label, what it counts, the hash small."""
    text = (f'<span class="what">{_e(row.label or row.key)}</span>'
            f'<span class="tag">{row.type}</span>')
    if row.type == "signature":
        text += f' <code title="{_e(row.key)}">{_e(row.key[:HASH_SHOWN])}</code>'
    return text


def _recurrence(panel: RecurrencePanel, as_of: datetime) -> str:
    rows = []
    for row in panel.shown.rows:
        key = f"{row.type}:{row.key}"
        rows.append(f'<tr class="level-{row.level}" data-key="{_e(key)}">'
                    f"<td>{_badge(row.level)}</td><td>{_what(row)}</td>"
                    f'<td class="num">{row.count}</td>'
                    f"{_spark(panel.trends.get(key), as_of, 'incidents')}</tr>")
    days = panel.window_days
    table = _table(f"recurrence-{days}d",
                   [("level", False), ("what recurred", False), ("incidents", True),
                    (TREND_HEADER, False)],
                   rows, panel.shown, "Nothing recurred in this window.")
    more = (f'<li class="muted">and {panel.advice.rest} more for rows not listed</li>'
            if panel.advice.rest else "")
    recs = ("<ul class=\"recs\">" + "".join(f"<li>{_e(a)}</li>" for a in panel.advice.rows)
            + more + "</ul>" if panel.advice.rows or more else "")
    return (f'<div class="panel"><h2>Recurrence, last {days} days</h2>'
            f'<p class="sum">{panel.total_incidents} incidents; '
            f"{_levels_sentence(panel.levels)}</p>{table}{recs}</div>")


def _incident(brief: IncidentBrief | None, incident_id: str) -> str:
    """An incident by its title, service and severity, the id small."""
    if brief is None:
        return f"<code>{_e(incident_id)}</code>"
    title = brief.title or "(untitled)"
    return (f'<div class="what">{_e(title)}</div><div class="muted">{_e(brief.service)} · '
            f"{_e(brief.severity)} · {_e(brief.kind)} · {_e(brief.status)} "
            f"<code>{_e(brief.incident_id)}</code></div>")


def _bucket_row(bucket: Bucket, briefs: Mapping[str, IncidentBrief]) -> str:
    samples = "".join(
        f"<li>{_e(briefs[i].title if i in briefs else '')} <span class=\"muted\">"
        f"{_e(briefs[i].severity if i in briefs else '')} <code>{_e(i)}</code></span></li>"
        for i in bucket.sample_incidents[:SAMPLES_SHOWN])
    recs = "".join(f"<li>{_e(r)}</li>" for r in bucket.recommendations)
    return (f'<tr><td><span class="what">{_e(bucket.bucket_key)}</span>'
            f'<ul class="related muted">{samples}</ul></td>'
            f'<td class="num">{bucket.counts.count_7d}</td>'
            f'<td class="num">{bucket.counts.count_30d}</td>'
            f'<td class="num">{bucket.counts.open}</td>'
            f"<td>{_e(format_timestamp(bucket.last_seen))}</td>"
            f'<td><ul class="recs">{recs}</ul></td></tr>')


def _buckets(shown: Shown[Bucket], briefs: Mapping[str, IncidentBrief]) -> str:
    table = _table("buckets", [("bucket / samples", False), ("7d", True), ("30d", True),
                               ("open", True), ("last seen", False),
                               ("recommendations", False)],
                   [_bucket_row(b, briefs) for b in shown.rows], shown,
                   "No bucket reaches the policy's minimum count.")
    return f"<section><h2>Root-cause buckets</h2>{table}</section>"


def _alert(service: str, kind: str | None, fingerprint: str) -> str:
    return (f'<span class="what">{_e(service)}/{_e(kind or "?")}</span> '
            f"<code>{_e(fingerprint)}</code>")


def _alerts(data: DashboardData) -> str:
    """Top flapping alerts and the alerts nobody opened an incident for."""
    as_of, trends = data.as_of, data.alert_trends
    flap_rows = [
        f'<tr class="level-{r.level}" data-key="alert:{_e(r.fingerprint)}">'
        f"<td>{_badge(r.level)}</td><td>{_alert(r.service, r.kind, r.fingerprint)}</td>"
        f'<td class="num">{r.firing_7d}</td><td class="num">{r.max_transitions_in_flap_window}'
        f"</td>{_spark(trends.get(r.fingerprint), as_of, 'firings')}</tr>"
        for r in data.flapping.rows]
    flap_table = _table("flapping-alerts",
                        [("level", False), ("alert", False), ("firings", True),
                         ("max in flap window", True), (TREND_HEADER, False)],
                        flap_rows, data.flapping, "No alert flaps.")
    promote_rows = []
    for c in data.promote.rows:
        lvl = data.alert_levels.get(c.fingerprint, "none")
        promote_rows.append(
            f'<tr class="level-{lvl}" data-key="alert:{_e(c.fingerprint)}">'
            f"<td>{_badge(lvl)}</td><td>{_alert(c.service, c.kind, c.fingerprint)}"
            f'<div class="muted">{_e(c.recommendation)}</div></td>'
            f'<td class="num">{c.firing_7d}</td>'
            f"{_spark(trends.get(c.fingerprint), as_of, 'firings')}</tr>")
    promote_table = _table("promote-candidates",
                           [("level", False), ("alert (no incident names it)", False),
                            ("firings", True), (TREND_HEADER, False)],
                           promote_rows, data.promote, "Every recurring alert has an incident.")
    days = data.alert_window_days
    return (f'<div class="pair"><div class="panel"><h2>Flapping alerts, last {days} days</h2>'
            f'<p class="sum">{_alert_sum(data.flapping_levels, "flapping")}</p>'
            f'{flap_table}</div><div class="panel"><h2>Promote to incident</h2>'
            f'<p class="sum">{_alert_sum(data.promote_levels, "firing with no incident")}</p>'
            f"{promote_table}</div></div>")


def _alert_sum(levels: Mapping[str, int], what: str) -> str:
    """How many alerts a table is about, and how many of them are at warn or high."""
    return f"{sum(levels.values())} {_e(what)}; {_levels_sentence(levels)}"


def _verdict(verdict: str | None) -> str:
    """A responder's verdict on the pair, beside its row (nothing when nobody judged it)."""
    if verdict is None:
        return ""
    return f' <span class="badge verdict-{_e(verdict)}">{_e(verdict)}</span>'


def _related(items: Sequence[RelatedIncident], briefs: Mapping[str, IncidentBrief]) -> str:
    """The top related incidents, one line each; neighbours that read the same (title,
    service, severity, score and reasons) share a line with a count."""
    lines: list[tuple[str, int]] = []
    for item in items[:RELATED_SHOWN]:
        brief = briefs.get(item.incident_id)
        title = brief.title if brief is not None and brief.title else item.incident_id
        reasons = ", ".join(r.replace("_", " ") for r in item.reasons)
        line = (f"{_e(title)} <span class=\"muted\">{_e(item.service)} · {_e(item.severity)}"
                f" · score {item.score}: {_e(reasons)}</span>{_verdict(item.verdict)}")
        if lines and lines[-1][0] == line:
            lines[-1] = (line, lines[-1][1] + 1)
        else:
            lines.append((line, 1))
    return "".join(f"<li>{line}{f' <strong>×{n}</strong>' if n > 1 else ''}</li>"
                   for line, n in lines)


def _correlations(shown: Shown[CorrelateResponse], briefs: Mapping[str, IncidentBrief]) -> str:
    rows = []
    for item in shown.rows:
        related = _related(item.related, briefs)
        rows.append(f'<tr data-key="incident:{_e(item.incident_id)}">'
                    f"<td>{_incident(briefs.get(item.incident_id), item.incident_id)}</td>"
                    f'<td class="num">{item.related_count}</td>'
                    f'<td><ul class="related">{related}</ul></td></tr>')
    table = _table("correlations", [("incident", False), ("related", True),
                                    ("top related (score: reasons)", False)],
                   rows, shown, "No correlated incidents yet.")
    return f'<div class="panel"><h2>Recent correlations</h2>{table}</div>'


def _followups(shown: Shown[FollowUp]) -> str:
    rows = [f"<tr><td><span class=\"what\">{_e(f.meta.title)}</span><div class=\"muted\">"
            f"<code>{_e(f.incident_id)}</code></div></td>"
            f"<td>{_e(f.meta.priority)}</td><td>{_e(f.meta.owner)}</td>"
            f"<td>{_e(f.meta.due_date)}</td></tr>" for f in shown.rows]
    table = _table("followups", [("follow-up", False), ("priority", False), ("owner", False),
                                 ("due", False)],
                   rows, shown, "No follow-ups sent yet.")
    return f'<div class="panel"><h2>Recent follow-ups</h2>{table}</div>'


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _velocity(rows: Sequence[QuarterVelocity], target: float) -> str:
    shown = Shown(rows[-QUARTERS_SHOWN:], rest=max(0, len(rows) - QUARTERS_SHOWN))
    lines = [f"<tr><td>{_e(r.quarter)}</td><td class=\"num\">{r.incidents}</td>"
             f"<td class=\"num\">{_pct(r.recurrence_rate)}"
             f"{' (above target)' if r.above_target else ''}</td>"
             f"<td class=\"num\">{r.regression_tests_added}</td>"
             f"<td class=\"num\">{'–' if r.score is None else _e(two_decimals(r.score))}</td>"
             "</tr>" for r in shown.rows]
    table = _table("velocity", [("quarter", False), ("incidents", True), ("recurrence", True),
                                ("tests added", True), ("score", True)],
                   lines, shown, "No quarters yet.", rest="earlier quarters")
    return (f'<section><h2>Learning velocity</h2><div class="velocity">'
            f'<div class="chart">{trend_svg(rows, target)}</div>'
            f'<div class="quarters">{table}</div></div></section>')


def _page_head(as_of: datetime | None, refresh_seconds: int) -> str:
    stamp = "–" if as_of is None else _e(format_timestamp(as_of))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Incident Intelligence</title><style>{_STYLE}</style></head><body>"
            "<header><h1>Incident Intelligence</h1>"
            f'<span class="meta">as of <time id="as-of">{stamp}</time> · refreshes every '
            f"{int(refresh_seconds)} s</span></header><main>")


def render_notice(message: str, refresh_seconds: int) -> str:
    """A page that only says why there is nothing to show, and keeps refreshing."""
    return (_page_head(None, refresh_seconds)
            + f'<div class="banner" id="notice">{_e(message)}</div></main></body></html>')


def render_dashboard(data: DashboardData, refresh_seconds: int) -> str:
    """The whole page; ``refresh_seconds`` is how often the browser reloads it."""
    head = _page_head(data.as_of, refresh_seconds)
    if not data.ready:
        body = ('<div class="banner" id="recovering">The replica is still recovering its '
                "state; figures appear once it has caught up.</div>")
    else:
        recurrence = "".join(_recurrence(p, data.as_of) for p in data.recurrence)
        body = (f'<div class="pair">{recurrence}</div>'
                f"{_buckets(data.buckets, data.incidents)}"
                f"{_alerts(data)}"
                f'<div class="pair wide-left">{_correlations(data.correlations, data.incidents)}'
                f"{_followups(data.followups)}</div>"
                f"{_velocity(data.velocity, data.recurrence_target)}")
    return head + body + "</main></body></html>"
