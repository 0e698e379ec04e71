"""The on-call dashboard: one self-refreshing HTML page, no script, no CDN.

Access decision (see also the README of the API, :mod:`app.api.routes`): the
page needs no token. It is read-only and meant for a wall screen, which cannot
send a bearer header. In exchange it shows only what a ``tools.oncall.read``
caller gets from ``/v1`` (recurrence, buckets, alerts, correlations, learning
velocity), plus the follow-ups already sent, whose fields are all derived
from those same counts and ids. It never shows what needs more: no digest
text, no gate verdicts, no notes, no root causes or labels. Deployments that
must not expose even that put the port behind their SSO proxy.

Everything that comes from events is HTML-escaped; the page carries a
Content-Security-Policy without any script source, so even a missed escape
could not run code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from app.contracts import (
    AlertRow,
    AlertsResponse,
    Bucket,
    BucketsResponse,
    CorrelateResponse,
    FollowUp,
    QuarterVelocity,
    RecurrenceResponse,
    format_timestamp,
)
from app.intel.levels import level
from app.intel.velocity import two_decimals
from app.policy import IntelPolicy

from .trend_chart import trend_svg

__all__ = ["CONTENT_SECURITY_POLICY", "DashboardData", "render_dashboard", "render_notice"]

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SIGNATURE_SHOWN = 12
"""Characters of a SHA-256 signature shown; the whole one is in the tooltip."""
SAMPLES_SHOWN = 3
RECENT_SHOWN = 6
"""Recent correlations and follow-ups listed, newest first."""
ALERTS_SHOWN = 10
"""Flapping alerts and promote candidates listed, most firings first."""

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#f4f6f8;color:#1d2430}
header{background:#1d2430;color:#fff;padding:14px 24px;display:flex;
 justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:8px}
header h1{font-size:20px;margin:0}header .meta{color:#c5ccd6;font-size:13px}
main{padding:16px 24px;display:grid;gap:16px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:12px 16px}
section h2{font-size:16px;margin:0 0 8px}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.num,th.num{text-align:right}
tr.level-high td{background:#fdecea}tr.level-warn td{background:#fff6e5}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
 font-weight:600;background:#e8ebef;color:#4a5563}
.badge.high{background:#c0392b;color:#fff}.badge.warn{background:#e59a1c;color:#fff}
.badge.verdict-related{background:#dff3e4;color:#1e6b34}
.badge.verdict-unrelated{background:#f3e0df;color:#8a2a22}
.empty{color:#6b7684;font-style:italic}
.banner{background:#fff3cd;border:1px solid #e6c560;padding:10px 16px;border-radius:6px}
ul.recs{margin:0;padding-left:18px}code{font-size:12px}
.muted{color:#6b7684;font-size:12px}
.velocity{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.velocity .chart{flex:2 1 560px}.velocity .quarters{flex:1 1 320px}
"""


@dataclass(frozen=True)
class DashboardData:
    """Everything one render shows, read from the view at one ``as_of``."""

    as_of: datetime
    ready: bool
    recurrence: Sequence[RecurrenceResponse]
    buckets: BucketsResponse | None
    correlations: Sequence[CorrelateResponse]
    followups: Sequence[FollowUp]
    velocity: Sequence[QuarterVelocity]
    recurrence_target: float
    sample_titles: Mapping[str, str] = field(default_factory=dict)
    """Title of each bucket sample incident (the ``buckets`` answer lists ids only)."""
    alerts: AlertsResponse | None = None


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(table_id: str, header: Sequence[tuple[str, bool]], rows: Iterable[str],
           empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>"
                   for h, num in header)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _key_cell(key_type: str, key: str) -> str:
    if key_type == "signature" and len(key) > SIGNATURE_SHOWN:
        return f'<code title="{_e(key)}">{_e(key[:SIGNATURE_SHOWN])}…</code>'
    return _e(key)


def _recurrence(report: RecurrenceResponse, policy: IntelPolicy) -> str:
    rows = []
    for key_type, counts in (("signature", report.top_signatures), ("kind", report.top_kinds),
                             ("service", report.top_services)):
        threshold = policy.recurrence.thresholds.for_type(key_type)
        for item in counts:
            lvl = level(item.count, threshold)
            rows.append(f'<tr class="level-{lvl}"><td>{key_type}</td>'
                        f"<td>{_key_cell(key_type, item.key)}</td>"
                        f'<td class="num">{item.count}</td>'
                        f'<td><span class="badge {lvl}">{lvl}</span></td></tr>')
    table = _table(f"recurrence-{report.window_days}d",
                   [("type", False), ("key", False), ("count", True), ("level", False)],
                   rows, "No incidents in this window.")
    advice = [f.recommendation for f in report.high_recurrence if f.recommendation]
    recs = ("<ul class=\"recs\">" + "".join(f"<li>{_e(a)}</li>" for a in advice) + "</ul>"
            if advice else "")
    return (f'<div><h2>Recurrence, last {report.window_days} days '
            f'<span class="muted">({report.total_incidents} incidents)</span></h2>'
            f"{table}{recs}</div>")


def _bucket_row(bucket: Bucket, titles: Mapping[str, str]) -> str:
    samples = "<br>".join(f"{_e(i)}: {_e(titles.get(i, ''))}"
                          for i in bucket.sample_incidents[:SAMPLES_SHOWN])
    recs = "".join(f"<li>{_e(r)}</li>" for r in bucket.recommendations)
    return (f"<tr><td><strong>{_e(bucket.bucket_key)}</strong>"
            f'<div class="muted">{samples}</div></td>'
            f'<td class="num">{bucket.counts.count_7d}</td>'
            f'<td class="num">{bucket.counts.count_30d}</td>'
            f'<td class="num">{bucket.counts.open}</td>'
            f"<td>{_e(format_timestamp(bucket.last_seen))}</td>"
            f'<td><ul class="recs">{recs}</ul></td></tr>')


def _buckets(response: BucketsResponse | None, titles: Mapping[str, str]) -> str:
    rows = [_bucket_row(b, titles) for b in response.buckets] if response else []
    table = _table("buckets", [("bucket / samples", False), ("7d", True), ("30d", True),
                               ("open", True), ("last seen", False),
                               ("recommendations", False)],
                   rows, "No bucket reaches the policy's minimum count.")
    return f"<section><h2>Root-cause buckets</h2>{table}</section>"


def newest_per_incident(items: Sequence[CorrelateResponse]) -> list[CorrelateResponse]:
    """The first (newest) answer of each incident, in order.

    ``intel.correlations`` is compacted by incident: a new record replaces the
    incident's older one (a new version, a re-sent state, a republication
    after a restart), so a list of the records read holds an incident once per
    record, and only its newest one is current.
    """
    seen: set[str] = set()
    out = []
    for item in items:
        if item.incident_id not in seen:
            seen.add(item.incident_id)
            out.append(item)
    return out


def _flapping_row(row: AlertRow) -> str:
    return (f'<tr class="level-{row.level}"><td>{_e(row.fingerprint)}</td>'
            f"<td>{_e(row.service)}</td><td>{_e(row.kind or '')}</td>"
            f'<td class="num">{row.firing_7d}</td>'
            f'<td class="num">{row.max_transitions_in_flap_window}</td>'
            f"<td>{_e(format_timestamp(row.last_fired))}</td></tr>")


def _alerts(response: AlertsResponse | None) -> str:
    """Top flapping alerts and the alerts nobody opened an incident for."""
    flapping = [r for r in response.alerts if r.flapping] if response else []
    candidates = response.promote_candidates if response else []
    days = response.window_days if response else 7
    flap_table = _table("flapping-alerts",
                        [("fingerprint", False), ("service", False), ("kind", False),
                         ("firings", True), ("max in flap window", True),
                         ("last fired", False)],
                        [_flapping_row(r) for r in flapping[:ALERTS_SHOWN]],
                        "No alert flaps.")
    promote_table = _table("promote-candidates",
                           [("fingerprint", False), ("service", False), ("firings", True),
                            ("recommendation", False)],
                           [f"<tr><td>{_e(c.fingerprint)}</td><td>{_e(c.service)}</td>"
                            f'<td class="num">{c.firing_7d}</td><td>{_e(c.recommendation)}</td>'
                            "</tr>" for c in candidates[:ALERTS_SHOWN]],
                           "Every recurring alert has an incident.")
    return (f'<section class="pair"><div><h2>Flapping alerts, last {days} days</h2>'
            f"{flap_table}</div><div><h2>Promote to incident</h2>{promote_table}</div>"
            "</section>")


def _verdict(verdict: str | None) -> str:
    """A responder's verdict on the pair, beside its row (nothing when nobody judged it)."""
    if verdict is None:
        return ""
    return f' <span class="badge verdict-{_e(verdict)}">{_e(verdict)}</span>'


def _correlations(items: Sequence[CorrelateResponse]) -> str:
    rows = []
    for item in newest_per_incident(items)[:RECENT_SHOWN]:
        related = "<br>".join(
            f"{_e(r.incident_id)} <span class=\"muted\">score {r.score}: "
            f"{_e(', '.join(r.reasons))}</span>{_verdict(r.verdict)}"
            for r in item.related[:SAMPLES_SHOWN])
        rows.append(f"<tr><td>{_e(item.incident_id)}</td>"
                    f'<td class="num">{item.related_count}</td><td>{related}</td></tr>')
    table = _table("correlations", [("incident", False), ("related", True),
                                    ("top related (score: reasons)", False)],
                   rows, "No correlated incidents yet.")
    return f"<div><h2>Recent correlations</h2>{table}</div>"


def _followups(items: Sequence[FollowUp]) -> str:
    rows = [f"<tr><td>{_e(f.meta.title)}<div class=\"muted\">{_e(f.incident_id)}</div></td>"
            f"<td>{_e(f.meta.priority)}</td><td>{_e(f.meta.owner)}</td>"
            f"<td>{_e(f.meta.due_date)}</td></tr>" for f in items[:RECENT_SHOWN]]
    table = _table("followups", [("follow-up", False), ("priority", False), ("owner", False),
                                 ("due", False)],
                   rows, "No follow-ups sent yet.")
    return f"<div><h2>Recent follow-ups</h2>{table}</div>"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _velocity(rows: Sequence[QuarterVelocity], target: float) -> str:
    lines = [f"<tr><td>{_e(r.quarter)}</td><td class=\"num\">{r.incidents}</td>"
             f"<td class=\"num\">{_pct(r.recurrence_rate)}{' ⚠' if r.above_target else ''}</td>"
             f"<td class=\"num\">{r.regression_tests_added}</td>"
             f"<td class=\"num\">{'–' if r.score is None else _e(two_decimals(r.score))}</td>"
             "</tr>" for r in rows]
    table = _table("velocity", [("quarter", False), ("incidents", True), ("recurrence", True),
                                ("tests added", True), ("score", True)],
                   lines, "No quarters yet.")
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


def render_dashboard(data: DashboardData, policy: IntelPolicy, refresh_seconds: int) -> str:
    """The whole page; ``refresh_seconds`` is how often the browser reloads it."""
    head = _page_head(data.as_of, refresh_seconds)
    if not data.ready:
        body = ('<div class="banner" id="recovering">The replica is still recovering its '
                "state; figures appear once it has caught up.</div>")
    else:
        recurrence = "".join(_recurrence(r, policy) for r in data.recurrence)
        body = (f'<section class="pair">{recurrence}</section>'
                f"{_buckets(data.buckets, data.sample_titles)}"
                f"{_alerts(data.alerts)}"
                f'<section class="pair">{_correlations(data.correlations)}'
                f"{_followups(data.followups)}</section>"
                f"{_velocity(data.velocity, data.recurrence_target)}")
    return head + body + "</main></body></html>"
