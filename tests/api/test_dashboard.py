"""The dashboard: its sections, escaping, what it must not show, caching, and a real browser."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.api import InMemoryLiveView, create_api
from app.api.dashboard import CONTENT_SECURITY_POLICY
from app.api.live import Query
from app.contracts import event_from_obj
from app.policy import Policy
from tests.api.history import (
    GATEWAY_SIGNATURE,
    PAYMENTS_SIGNATURE,
    SECRET_LABEL,
    SECRET_ROOT_CAUSE,
    history,
)
from tests.builders import at, incident_event
from tests.support.http_api import Client, FakeClock, as_of, running

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


def row_class(page: str, needle: str) -> str:
    """The class of the table row holding ``needle``."""
    match = re.search(r'<tr class="([^"]+)">(?:(?!</tr>).)*' + re.escape(needle), page)
    assert match, needle
    return match.group(1)


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


def test_warn_and_high_rows_are_highlighted(client: Client) -> None:
    page = page_of(client)
    assert row_class(page, GATEWAY_SIGNATURE[:12]) == "level-high"
    assert row_class(page, PAYMENTS_SIGNATURE[:12]) == "level-warn"
    assert row_class(page, ">worker<") == "level-none"


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
    keep = os.environ.get("INTEL_DASHBOARD_SCREENSHOT")
    if keep:  # for a human to look at
        shutil.copy(shot, keep)



def test_a_missing_browser_fails_on_ci_with_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(chromium.__globals__, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium()


def test_an_incident_republished_on_intel_correlations_is_listed_once(policy: Policy) -> None:
    """The view lists every record read, newest first; the page shows each incident's newest."""
    from datetime import UTC, datetime

    from app.api.dashboard import DashboardData, render_dashboard
    from app.contracts import CorrelateResponse, RelatedIncident

    def answer(incident: str, *related: str) -> CorrelateResponse:
        rows = [RelatedIncident(incident_id=r, score=100, reasons=["same_signature"],
                                service="gateway", kind="error_rate", severity="P2",
                                status="open", started_at=datetime(2026, 2, 16, tzinfo=UTC))
                for r in related]
        return CorrelateResponse(incident_id=incident, related_count=len(rows), related=rows)

    records = [answer("inc_a", "inc_b", "inc_c"), answer("inc_b", "inc_a"),
               answer("inc_a", "inc_b")]  # inc_a's older record comes last
    data = DashboardData(as_of=datetime(2026, 2, 23, tzinfo=UTC), ready=True, recurrence=[],
                         buckets=None, correlations=records, followups=[], velocity=[],
                         recurrence_target=0.1)
    page = render_dashboard(data, policy.intel, 30)
    table = re.search(r'<table id="correlations">(.*?)</table>', page).group(1)
    firsts = re.findall(r"<tr><td>([^<]*)</td>", table)
    assert firsts == ["inc_a", "inc_b"]
    assert '<td class="num">2</td>' in table.split("</tr>")[1]  # inc_a's newest: 2 related


def test_a_judged_pair_shows_its_verdict_beside_the_row(client: Client) -> None:
    """The history's responders said inc_gw_5 is unrelated to inc_gw_script."""
    page = client.request("GET", "/").body.decode()
    table = re.search(r'<table id="correlations">(.*?)</table>', page).group(1)
    row = next(r for r in table.split("</tr>") if "<tr><td>inc_gw_script</td>" in r)
    assert re.search(r'inc_gw_5 <span class="muted">[^<]*</span> '
                     r'<span class="badge verdict-unrelated">unrelated</span>', row), row
    assert row.count("badge verdict-") == 1  # the pairs nobody judged carry none
