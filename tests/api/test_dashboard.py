"""The dashboard: its sections, order and caps, escaping, what it must not show, caching,
and a real browser on the first run's page."""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api import InMemoryLiveView, create_api
from app.api.dashboard import CONTENT_SECURITY_POLICY, focus
from app.api.live import Query
from app.api.trend_chart import sparkline_svg
from app.cli.first_run_feed import feed_history
from app.contracts import event_from_obj
from app.policy import Policy
from app.simulation.feed import StreamTruth, first_run_story
from tests.support.api_history import (
    GATEWAY_SIGNATURE,
    PAYMENTS_SIGNATURE,
    SECRET_LABEL,
    SECRET_ROOT_CAUSE,
    history,
)
from tests.support.builders import at, incident_event
from tests.support.http_api import Client, FakeClock, as_of, running

FIRST_RUN_NOW = datetime(2026, 3, 4, 13, 5, tzinfo=UTC)
CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get update && apt-get install -y chromium"
SECTIONS = ["recurrence-7d", "recurrence-30d", "buckets", "correlations", "followups",
            "velocity"]


def page_of(client: Client) -> str:
    reply = client.request("GET", "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    return reply.body.decode()


def with_digest(client: Client) -> None:
    """Run the week's digest so a follow-up exists (the history makes exactly one)."""
    reply = client.tool({"action": "weekly_digest"}, role="agent_oncall")
    assert reply.status == 200
    assert len(reply.json()["json_summary"]["followups"]["created"]) == 1


def row_class(page: str, key: str) -> str:
    """The class of the (first) table row of ``key`` (``signature:…``, ``alert:…``)."""
    match = re.search(rf'<tr class="([^"]+)" data-key="{re.escape(key)}">', page)
    assert match, key
    return match.group(1)


def table(page: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert match, table_id
    return match.group(1)


def keyed_rows(html_text: str) -> list[tuple[str, str]]:
    """(class, data-key) of every keyed row, in page order."""
    return re.findall(r'<tr class="([^"]+)" data-key="([^"]+)">', html_text)


def test_page_has_every_section_and_the_chart(client: Client, view) -> None:
    with_digest(client)
    page = page_of(client)
    for section in SECTIONS:
        assert f'<table id="{section}">' in page, section
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="velocity-chart"' in page
    scored = sum(1 for q in view.velocity() if q.score is not None)
    assert page.count('class="score-bar"') == scored > 0
    assert '<time id="as-of">2026-02-23T08:00:00Z</time>' in page
    assert "[intel] Recurrence high: gateway|error_rate" in page  # the follow-up
    assert "Check the most recent deploy" in page  # a bucket recommendation


def test_warn_and_high_rows_are_highlighted_and_say_their_level(client: Client) -> None:
    page = page_of(client)
    assert row_class(page, f"signature:{GATEWAY_SIGNATURE}") == "level-high"
    assert row_class(page, f"signature:{PAYMENTS_SIGNATURE}") == "level-warn"
    high = re.search(rf'data-key="signature:{GATEWAY_SIGNATURE}">(.*?)</tr>', page).group(1)
    assert '<span class="badge high">HIGH</span>' in high  # the level in words, not colour alone
    assert "<svg" in high and 'class="spark"' in high  # its 30-day trend


def test_signatures_are_named_by_their_label_with_the_hash_small(client: Client,
                                                                 view) -> None:
    page = page_of(client)
    label = view.engine.label("signature", GATEWAY_SIGNATURE)
    assert label == "5xx spike on /v1/chat · gateway/error_rate"
    row = re.search(rf'data-key="signature:{GATEWAY_SIGNATURE}">(.*?)</tr>', page).group(1)
    assert f'<span class="what">{html.escape(label)}</span>' in row
    assert f'<code title="{GATEWAY_SIGNATURE}">{GATEWAY_SIGNATURE[:8]}</code>' in row
    answer = client.tool({"action": "recurrence", "window_days": 30}, role="agent_oncall")
    assert {s["key"]: s["label"] for s in answer.json()["top_signatures"]}[
        GATEWAY_SIGNATURE] == label  # the API says the same


def test_rows_come_by_level_then_count_and_the_ones_seen_once_fold(client: Client,
                                                                    view) -> None:
    page = page_of(client)
    order = {"level-high": 0, "level-warn": 1, "level-none": 2}
    for days in (7, 30):
        body = table(page, f"recurrence-{days}d")
        rows = re.findall(r'<tr class="(level-\w+)" data-key="([^"]+)">.*?'
                          r'<td class="num">(\d+)</td>', body)
        ranks = [(order[cls], -int(count)) for cls, _, count in rows]
        assert ranks == sorted(ranks), days
        _, every = view.engine.recurrence_overview(view.as_of(), days)
        once = sum(1 for r in every if r.level == "none" and r.count == 1)
        assert not any(cls == "level-none" and count == "1" for cls, _, count in rows)
        hidden = len(every) - len(rows)
        assert hidden >= once > 0
        assert f"and {hidden} more: {once} seen once (level none)" in body


def test_event_text_is_escaped_everywhere(policy: Policy, tokens) -> None:
    hostile = "svc<i onmouseover=alert(1)>x</i>"
    events = history() + [incident_event(f"inc_h{i}", started=at(days=5, hours=i),
                                         service=hostile, title="<b>bold</b> & 'quoted'")
                          for i in range(3)]
    view = InMemoryLiveView(policy, [event_from_obj(e) for e in events], as_of=as_of())
    with running(create_api(view, policy, tokens)) as client:
        page = page_of(client)
    assert "<i onmouseover" not in page and "<b>bold</b>" not in page
    assert "svc&lt;i onmouseover=alert(1)&gt;x&lt;/i&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &#x27;quoted&#x27;" in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "<script" not in page


def test_page_shows_nothing_beyond_the_read_entitlement(client: Client) -> None:
    with_digest(client)
    correlate = client.tool({"action": "correlate", "incident_id": "inc_gw_1",
                             "append_note": True}, role="agent_oncall")
    gate = client.gate({"service": "gateway"})
    assert correlate.status == gate.status == 200
    page = page_of(client)
    assert SECRET_ROOT_CAUSE not in page and SECRET_LABEL not in page
    assert "Weekly Incident Digest" not in page  # the digest text needs incident_write
    assert correlate.json()["note"]["message"] not in page  # notes are written, not shown
    for reason in gate.json()["reasons"]:  # gate verdicts need tools.release.gate
        assert reason not in page
    assert "inc_after_as_of" not in page


def test_page_headers_forbid_scripts_and_caching(client: Client) -> None:
    reply = client.request("GET", "/")
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_page_refreshes_itself_at_the_configured_interval(view, policy, tokens) -> None:
    with running(create_api(view, policy, tokens, refresh_seconds=17)) as client:
        page = page_of(client)
    assert '<meta http-equiv="refresh" content="17">' in page


def test_one_render_serves_all_screens_until_it_expires(view, policy, tokens) -> None:
    clock = FakeClock()
    app = create_api(view, policy, tokens, clock=clock, dashboard_cache_seconds=5)
    with running(app) as client:
        before = page_of(client)
        assert 'id="followups-empty"' in before
        with_digest(client)
        clock.advance(4.9)
        assert page_of(client) == before  # still the cached render
        clock.advance(0.1)
        after = page_of(client)
        assert 'id="followups-empty"' not in after
        assert "[intel] Recurrence high: gateway|error_rate" in after


class CountingView(InMemoryLiveView):
    """Counts engine reads; each waits until the test lets it go (or fails, if asked)."""

    def __init__(self, *args: Any, fail: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.fail = fail
        self.go = threading.Event()

    async def read(self, query: Query) -> Any:
        self.reads += 1

        def held(engine, at_):  # type: ignore[no-untyped-def]
            self.go.wait(10)
            if self.fail:
                raise RuntimeError("replica unreadable")
            return query(engine, at_)

        return await super().read(held)


def _counting(policy: Policy, **kwargs: Any) -> CountingView:
    return CountingView(policy, [event_from_obj(e) for e in history()], as_of=as_of(), **kwargs)


def test_simultaneous_first_requests_share_one_engine_read(policy: Policy, tokens) -> None:
    view = _counting(policy)
    app = create_api(view, policy, tokens, clock=FakeClock())
    arrived = threading.Semaphore(0)

    @web.middleware
    async def count_arrivals(request: web.Request, handler: Any) -> web.StreamResponse:
        arrived.release()
        return await handler(request)

    app.middlewares.append(count_arrivals)
    with running(app) as client, ThreadPoolExecutor(50) as pool:
        pages = [pool.submit(client.request, "GET", "/") for _ in range(50)]
        for _ in range(50):  # every request is in the handler before any read may finish
            assert arrived.acquire(timeout=10)
        view.go.set()
        replies = [p.result() for p in pages]
    assert {r.status for r in replies} == {200}
    assert len({r.body for r in replies}) == 1
    assert view.reads == 1


def test_a_failed_render_is_kept_for_the_same_window(policy: Policy, tokens) -> None:
    view = _counting(policy, fail=True)
    view.go.set()
    clock = FakeClock()
    with running(create_api(view, policy, tokens, clock=clock,
                            dashboard_cache_seconds=5)) as client:
        first = client.request("GET", "/")
        clock.advance(4.9)
        again = client.request("GET", "/")
        assert view.reads == 1
        clock.advance(0.1)
        view.fail = False
        later = client.request("GET", "/")
    assert first.status == again.status == 503 and first.body == again.body
    assert later.status == 200 and view.reads == 2


# ------------------------------------------------------------------- real browser


def chromium() -> str:
    """Chromium's path; on CI a missing browser fails instead of skipping."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing; install it with: {INSTALL}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=90)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_headless_chromium_renders_tables_chart_and_inert_script(client: Client,
                                                                 tmp_path: Path) -> None:
    binary = chromium()
    with_digest(client)
    url = client.base + "/"
    dumped = run_chromium(binary, tmp_path / "profile", "--dump-dom", url)
    dom = dumped.stdout
    assert dumped.returncode == 0 and "<body" in dom, dumped.stderr[-2000:]
    # The hostile title is text: not executed (the title is ours), not an element.
    assert "<title>Incident Intelligence</title>" in dom
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dom).group(1)
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "<script" not in dom
    for section in SECTIONS:
        assert f'<table id="{section}">' in dom, section
    assert 'id="velocity-chart"' in dom and 'class="score-bar"' in dom
    assert 'class="level-high"' in dom and 'class="level-warn"' in dom

    shot = tmp_path / "dashboard.png"
    taken = run_chromium(binary, tmp_path / "profile2", f"--screenshot={shot}",
                         "--window-size=1280,1600", url)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    assert png_size(shot) == (1280, 1600)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one



def test_a_missing_browser_fails_on_ci_with_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(chromium.__globals__, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium()


def test_correlations_are_the_current_answers_of_the_newest_incidents(client: Client,
                                                                       view) -> None:
    from app.contracts import CorrelateRequest

    body = table(page_of(client), "correlations")
    listed = [key.removeprefix("incident:") for key in re.findall(r'data-key="([^"]+)"', body)]
    assert listed and len(listed) == len(set(listed))
    engine = view.engine
    started = [engine.record(i).started for i in listed]
    assert started == sorted(started, reverse=True)
    for incident_id in listed:
        record = engine.record(incident_id)
        answer = engine.correlate(CorrelateRequest(action="correlate", incident_id=incident_id))
        row = re.search(rf'data-key="incident:{incident_id}">(.*?)</tr>', body).group(1)
        assert f'<td class="num">{answer.related_count}</td>' in row
        assert html.escape(record.title) in row  # named by its title, service, severity…
        assert f"{record.service} · {record.severity}" in row
        assert f"<code>{incident_id}</code>" in row  # …with the id small


def test_a_judged_pair_shows_its_verdict_beside_the_row(client: Client) -> None:
    """The history's responders said inc_gw_5 is unrelated to inc_gw_script."""
    page = client.request("GET", "/").body.decode()
    table = re.search(r'<table id="correlations">(.*?)</table>', page, re.S).group(1)
    row = next(r for r in table.split("</tr>") if 'data-key="incident:inc_gw_script"' in r)
    assert row.count('<span class="badge verdict-unrelated">unrelated</span>') == 1, row
    assert row.count("badge verdict-") == 1  # the pairs nobody judged carry none


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["high", "warn", "none"]), st.integers(1, 4)),
                     max_size=30),
       cap=st.integers(0, 10))
def test_focus_keeps_order_folds_the_ones_seen_once_and_counts_the_rest(rows, cap) -> None:
    shown = focus(rows, cap, level=lambda r: r[0], count=lambda r: r[1])
    kept = [r for r in rows if r != ("none", 1)]
    assert list(shown.rows) == kept[:cap]
    assert shown.once == rows.count(("none", 1))
    assert shown.rest == len(kept) - len(shown.rows)
    assert len(shown.rows) + shown.hidden == len(rows)


def test_a_sparkline_is_the_same_bytes_for_the_same_counts_and_draws_each_busy_day() -> None:
    counts = [0] * 23 + [1, 0, 3, 0, 0, 2, 1]
    one, two = sparkline_svg(counts, "d"), sparkline_svg(list(counts), "d")
    assert one == two
    assert one.count('fill="#1f4e8c"') == sum(1 for c in counts if c)
    assert "<script" not in one and "href" not in one
    assert sparkline_svg([0] * 29 + [1], "d") != one


# ------------------------------------------------------------------ the first run


@pytest.fixture(scope="module")
def first_run(policy: Policy) -> tuple[InMemoryLiveView, StreamTruth]:
    """The history `make run` publishes, as of a fixed moment (a Wednesday)."""
    records, truth = feed_history(policy, FIRST_RUN_NOW)
    return InMemoryLiveView(policy, [r.value for r in records], as_of=FIRST_RUN_NOW), truth


def planted_keys(truth: StreamTruth) -> dict[str, set[str]]:
    """The row keys a planted pattern may light up, by table."""
    recurrence = ({f"signature:{p.signature}" for p in truth.recurrence}
                  | {f"kind:{p.kind}" for p in truth.recurrence}
                  | {f"service:{p.service}" for p in truth.recurrence}
                  | {f"kind:{k}" for c in truth.clusters for k in c.kinds}
                  | {f"service:{s}" for c in truth.clusters for s in c.services})
    return {"recurrence": recurrence, "alerts": {f"alert:{a.fingerprint}" for a in truth.alerts}}


def test_first_run_dashboard_in_chromium_highlights_what_was_planted(
        first_run, policy: Policy, tokens, tmp_path: Path) -> None:
    binary = chromium()
    view, truth = first_run
    with running(create_api(view, policy, tokens)) as client:
        digest = client.tool({"action": "weekly_digest"}, role="agent_oncall")  # as `run` does
        assert digest.status == 200
        url = client.base + "/"
        dumped = run_chromium(binary, tmp_path / "profile", "--dump-dom", url)
        shot = tmp_path / "first-run.png"
        taken = run_chromium(binary, tmp_path / "profile2", f"--screenshot={shot}",
                             "--window-size=1400,2200", url)
    dom = dumped.stdout
    assert dumped.returncode == 0 and "<body" in dom, dumped.stderr[-2000:]
    assert taken.returncode == 0 and png_size(shot) == (1400, 2200), taken.stderr[-2000:]
    keep = os.environ.get("INTEL_DASHBOARD_SCREENSHOT")
    if keep:  # the first run's page, for a human to look at
        shutil.copy(shot, keep)

    planted = planted_keys(truth)
    recurrence = table(dom, "recurrence-7d") + table(dom, "recurrence-30d")
    lit = {key: cls for cls, key in keyed_rows(recurrence) if cls != "level-none"}
    assert set(lit) <= planted["recurrence"], "only planted patterns are warn or high"
    for plant in truth.recurrence:  # each planted recurrence is lit, at its planted level
        assert lit[f"signature:{plant.signature}"] == f"level-{plant.expected_level}"
        label = view.engine.label("signature", plant.signature)
        assert html.escape(label) in recurrence and plant.title.lower() in label
    alerts = table(dom, "flapping-alerts") + table(dom, "promote-candidates")
    lit_alerts = {key for cls, key in keyed_rows(alerts) if cls != "level-none"}
    assert lit_alerts == planted["alerts"], "the planted noisy alerts, and only they, are lit"
    (flapping,) = [a for a in truth.alerts if a.shape == "flapping"]
    assert f'data-key="alert:{flapping.fingerprint}"' in table(dom, "flapping-alerts")
    newest = truth.clusters[-1]  # the newest planted cluster heads the recent correlations
    listed = re.findall(r'data-key="incident:([^"]+)"', table(dom, "correlations"))
    assert set(newest.incident_ids) <= set(listed)
    assert "[intel] Recurrence high:" in table(dom, "followups")
    assert 'class="badge high">HIGH<' in dom and "<script" not in dom


def test_the_run_banner_names_the_plants_as_the_page_does_and_where_they_are(
        first_run, policy: Policy, tokens) -> None:
    """Each planted pattern's line quotes the label the page shows and points at
    sections the page has."""
    view, truth = first_run
    with running(create_api(view, policy, tokens)) as client:
        page = page_of(client)
    story = first_run_story(truth, policy.simulation.stream,
                            policy.intel.recurrence.label_template)
    headings = [html.unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", page)]
    for plant in truth.recurrence:
        label = view.engine.label("signature", plant.signature)
        (line,) = [li for li in story if f'"{label}"' in li]
        assert line.strip().startswith(f"{plant.expected_level} recurrence")
        assert html.escape(label) in page
    pointers = [li.split(" -> ", 1)[1] for li in story if " -> " in li]
    assert len(pointers) == len(truth.recurrence) + len(truth.clusters) + len(truth.alerts)
    for pointer in pointers:
        for place in pointer.split("; "):
            if place.startswith("correlate "):
                incident = place.split()[1]
                assert any(incident in c.incident_ids for c in truth.clusters)
                continue
            assert any(h.startswith(place) or place.startswith(h) for h in headings), place


def _luminance(hex_color: str) -> float:
    if len(hex_color) == 4:  # #abc
        hex_color = "#" + "".join(c * 2 for c in hex_color[1:])
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_level_badges_and_small_text_meet_wcag_aa_contrast() -> None:
    """The level is read from the badge's words, so they must be legible (4.5:1), on
    every row background the page uses."""
    from app.api.dashboard import _STYLE

    def rule(selector: str) -> dict[str, str]:
        match = re.search(re.escape(selector) + r"\{([^}]*)\}", _STYLE)
        assert match, selector
        return dict(re.findall(r"(?<![-\w])(color|background):(#[0-9a-f]{6}|#[0-9a-f]{3})\b",
                               match.group(1)))

    for badge in (".badge", ".badge.high", ".badge.warn"):
        colours = {**rule(".badge"), **rule(badge)}
        assert contrast(colours["color"], colours["background"]) >= 4.5, badge
    rows = ["#ffffff", rule("tr.level-high td")["background"],
            rule("tr.level-warn td")["background"]]
    for text in (".muted", "tr.more td", ".tag", "th"):
        for row in rows:
            assert contrast(rule(text)["color"], row) >= 4.5, (text, row)


def test_every_table_stops_at_its_cap_and_counts_the_rest(policy: Policy, tokens) -> None:
    from app.api.dashboard import BUCKETS_SHOWN, RECENT_SHOWN, RECURRENCE_SHOWN

    services = [f"svc{n:02d}" for n in range(12)]
    events = [incident_event(f"inc_{s}_{i}", started=at(days=2 + i, hours=n), service=s,
                             signature=f"{n:02d}" * 32, title=f"queue backlog on {s}")
              for n, s in enumerate(services) for i in range(3)]
    view = InMemoryLiveView(policy, [event_from_obj(e) for e in events], as_of=at(days=6))
    with running(create_api(view, policy, tokens)) as client:
        page = page_of(client)
    _, every = view.engine.recurrence_overview(view.as_of(), 7)
    assert len(every) > RECURRENCE_SHOWN
    recurrence = table(page, "recurrence-7d")
    assert len(keyed_rows(recurrence)) == RECURRENCE_SHOWN
    assert f"and {len(every) - RECURRENCE_SHOWN} more: " in recurrence
    buckets = table(page, "buckets")
    assert buckets.count("<tr><td>") == BUCKETS_SHOWN
    assert f"and {12 - BUCKETS_SHOWN} more: {12 - BUCKETS_SHOWN} below these" in buckets
    correlations = table(page, "correlations")
    assert correlations.count('data-key="incident:') == RECENT_SHOWN
    assert f"and {36 - RECENT_SHOWN} more: {36 - RECENT_SHOWN} below these" in correlations
