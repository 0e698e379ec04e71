"""Work per request is bounded: every request field has a bound, reads have a pool of
their own with a per-token limit, a timed-out read stops, and weeks are parsed strictly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api import InMemoryLiveView, create_api
from app.api.live import Query
from app.contracts import (
    MAX_GATE_WINDOWS,
    MAX_WINDOW_DAYS,
    BucketsRequest,
    CorrelateRequest,
    GateRequest,
    InvalidRequest,
    RecurrenceRequest,
    WeeklyDigestRequest,
    event_from_obj,
    parse_request,
)
from app.intel.engine import IntelEngine, ReadCancelled
from app.intel.periods import canonical_week
from app.policy import EngineReads, Limit, Policy, RateLimitPolicy
from tests.support.api_history import history
from tests.support.http_api import ROLE_TOKENS, Client, as_of, make_view, running

REQUESTS = (CorrelateRequest, RecurrenceRequest, BucketsRequest, WeeklyDigestRequest,
            GateRequest)


def _leaves(schema: dict[str, Any], defs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "$ref" in schema:
        yield from _leaves(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            yield from _leaves(part, defs)
    if schema.get("type") == "array":
        yield schema
        yield from _leaves(schema["items"], defs)
    elif schema.get("type") == "object":
        for sub in schema.get("properties", {}).values():
            yield from _leaves(sub, defs)
    elif "type" in schema or "const" in schema or "enum" in schema:
        yield schema


@pytest.mark.parametrize("model", REQUESTS, ids=lambda m: m.__name__)
def test_every_list_number_and_string_of_every_request_has_a_bound(model: type) -> None:
    schema = model.model_json_schema()
    leaves = list(_leaves(schema, schema.get("$defs", {})))
    assert leaves
    for leaf in leaves:
        if "const" in leaf or "enum" in leaf:
            continue
        kind = leaf["type"]
        if kind == "array":
            assert "maxItems" in leaf and leaf.get("uniqueItems"), leaf
        elif kind == "integer":
            assert "maximum" in leaf and ("minimum" in leaf or "exclusiveMinimum" in leaf), leaf
        elif kind == "string":
            assert "maxLength" in leaf or "pattern" in leaf, leaf
        else:
            assert kind in ("boolean", "null"), leaf


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, MAX_WINDOW_DAYS + 5), min_size=0, max_size=MAX_GATE_WINDOWS + 3))
def test_gate_windows_are_accepted_exactly_when_within_their_bounds(windows: list[int]) -> None:
    ok = (1 <= len(windows) <= MAX_GATE_WINDOWS and len(set(windows)) == len(windows)
          and all(1 <= w <= MAX_WINDOW_DAYS for w in windows))
    call = {"action": "gate", "service": "gateway", "recurrence_watch_windows_days": windows}
    try:
        parsed = parse_request(call)
    except InvalidRequest as exc:
        assert not ok, exc
        assert "recurrence_watch_windows_days" in str(exc)
    else:
        assert ok and isinstance(parsed, GateRequest)
        assert parsed.recurrence_watch_windows_days == windows


def test_a_gate_call_with_thousands_of_windows_is_refused_before_the_engine(
        client: Client, view: InMemoryLiveView) -> None:
    reply = client.gate({"service": "gateway",
                         "recurrence_watch_windows_days": list(range(1, 3661))})
    assert reply.status == 400, reply.body
    assert "recurrence_watch_windows_days" in reply.error["message"]
    assert client.gate({"service": "gateway", "recurrence_watch_windows_days": [7, 7]}
                       ).status == 400


# ----------------------------------------------------------------- weeks

DIGITS = {"arabic-indic": "٠١٢٣٤٥٦٧٨٩", "full-width": "０１２３４５６７８９",
          "devanagari": "०१२३४५६७८९"}


def _spelled(label: str, digits: str) -> str:
    return "".join(digits[int(c)] if c.isdigit() else c for c in label)


@pytest.mark.parametrize("script", sorted(DIGITS))
def test_weeks_in_other_digits_are_refused_and_write_nothing(policy: Policy, tokens, tmp_path,
                                                             script: str) -> None:
    view = make_view(policy, artifact_dir=tmp_path)
    with running(create_api(view, policy, tokens)) as client:
        week = _spelled("2026-W08", DIGITS[script])
        reply = client.tool({"action": "weekly_digest", "week": week, "save_artifacts": True},
                            role="agent_oncall")
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "invalid_request" and "week" in reply.error["message"]
    assert view.digest_runs == 0 and not view.emitted
    assert not any(tmp_path.rglob("*"))


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 9999), st.integers(1, 53))
def test_a_week_label_is_rebuilt_from_what_it_parses_to(year: int, week: int) -> None:
    label = f"{year:04d}-W{week:02d}"
    try:
        canonical = canonical_week(label)
    except ValueError:
        with pytest.raises(InvalidRequest):
            parse_request({"action": "weekly_digest", "week": label})
    else:
        assert canonical == label
        assert parse_request({"action": "weekly_digest", "week": label}).week == label


@pytest.mark.parametrize("week", ["9999-W52", "9999-W53", "0000-W01", "2026-W00", "2026-W54"])
def test_weeks_without_a_representable_end_are_400(client: Client, week: str) -> None:
    reply = client.tool({"action": "weekly_digest", "week": week}, role="agent_oncall")
    assert reply.status == 400, reply.body
    assert "week" in reply.error["message"]


def test_the_engine_itself_refuses_an_unrepresentable_week(policy: Policy) -> None:
    engine = IntelEngine(policy)
    request = WeeklyDigestRequest.model_construct(action="weekly_digest", week="9999-W52",
                                                  save_artifacts=False)
    with pytest.raises(ValueError, match="9999-W52"):
        engine.weekly_digest(request, as_of())


# ----------------------------------------------------------------- quota


def test_engine_answers_use_quota_and_refusals_before_the_engine_do_not(client: Client,
                                                                        policy: Policy) -> None:
    per_minute = policy.rate_limits.for_action("correlate").per_minute
    for _ in range(per_minute + 2):  # invalid: refused before the engine
        assert client.tool({"action": "correlate", "incident_id": ""}).status == 400
    for _ in range(per_minute):  # unknown incident: an engine read, counted
        reply = client.tool({"action": "correlate", "incident_id": "nope"})
        assert reply.status == 404 and reply.error["code"] == "unknown_incident"
    assert client.tool({"action": "correlate", "incident_id": "inc_gw_1"}).status == 429


def test_a_week_that_does_not_exist_is_refused_before_the_engine(client: Client,
                                                                  policy: Policy) -> None:
    per_minute = policy.rate_limits.for_action("weekly_digest").per_minute
    for week in ["2026-W60", "9999-W52", "2026-W00"] * per_minute:
        reply = client.tool({"action": "weekly_digest", "week": week}, role="agent_oncall")
        assert reply.status == 400 and reply.error["code"] == "invalid_request"
    assert client.tool({"action": "weekly_digest"}, role="agent_oncall").status == 200


# ------------------------------------------------------------- the read pool


def _generous(policy: Policy, timeout: float = 10, **reads: int) -> Policy:
    """The policy with room in every per-minute limit, and the given read bounds."""
    limits = policy.rate_limits
    return policy.model_copy(update={"rate_limits": RateLimitPolicy(
        max_body_bytes=limits.max_body_bytes,
        default=Limit(per_minute=1000, timeout_seconds=timeout),
        actions={name: Limit(per_minute=1000, timeout_seconds=timeout) for name in limits.actions},
        engine_reads=EngineReads(**reads) if reads else limits.engine_reads,
        http=limits.http,
    )})


class GatedView(InMemoryLiveView):
    """Reads wait until the test opens the gate; records each read's thread and outcome."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = threading.Event()
        self.started = threading.Semaphore(0)
        self.threads: list[str] = []
        self.outcomes: list[str] = []

    async def read(self, query: Query) -> Any:
        def gated(engine: IntelEngine, at: datetime) -> Any:
            self.threads.append(threading.current_thread().name)
            self.started.release()
            self.opened.wait(10)
            try:
                result = query(engine, at)
            except ReadCancelled:
                self.outcomes.append("cancelled")
                raise
            self.outcomes.append("finished")
            return result

        return await super().read(gated)


def test_one_token_holds_at_most_its_share_of_the_read_pool(policy: Policy, tokens) -> None:
    relaxed = _generous(policy, workers=3, per_token=2)
    view = _gated(relaxed)
    call = {"action": "correlate", "incident_id": "inc_gw_1"}
    with running(create_api(view, relaxed, tokens)) as client, ThreadPoolExecutor(2) as pool:
        held = [pool.submit(client.tool, call, "agent_oncall") for _ in range(2)]
        for _ in range(2):
            assert view.started.acquire(timeout=10)
        third = client.tool(call, role="agent_oncall")
        assert third.status == 429, third.body
        assert "in flight" in third.error["message"] and third.headers["Retry-After"] == "1"
        other = ThreadPoolExecutor(1).submit(client.tool, call, "agent_cto")
        assert view.started.acquire(timeout=10)  # another token still gets a thread
        view.opened.set()
        assert [f.result().status for f in held] == [200, 200]
        assert other.result().status == 200
    assert view.threads and all(name.startswith("engine-read") for name in view.threads)


def _gated(policy: Policy) -> GatedView:
    return GatedView(policy, [event_from_obj(e) for e in history()], as_of=as_of())


@pytest.mark.parametrize("route,role,call", [
    ("gate", "agent_release", {"service": "gateway", "recurrence_watch_windows_days": [1, 7]}),
    ("tool", "agent_oncall", {"action": "buckets", "window_days": 90}),
])
def test_a_timed_out_read_stops_instead_of_running_on(policy: Policy, tokens, route: str,
                                                      role: str, call: dict[str, Any]) -> None:
    tight = _generous(policy, timeout=0.05)
    view = _gated(tight)
    with running(create_api(view, tight, tokens)) as client:
        reply = getattr(client, route)(call, role=role)
        view.opened.set()  # the read starts its work only after the call timed out
        assert reply.status == 504, reply.body
    view.close()
    assert view.outcomes == ["cancelled"]


def test_reads_still_finish_when_nobody_stops_them(policy: Policy) -> None:
    engine = make_view(policy).engine
    call = GateRequest(action="gate", service="gateway", recurrence_watch_windows_days=[7, 30])
    checks: list[int] = []

    def stop() -> bool:
        checks.append(1)
        return False

    assert engine.answer(call, as_of(), stop=stop).response == engine.gate(call, as_of())
    assert len(checks) == 2  # one check per window
    with pytest.raises(ReadCancelled):
        engine.answer(call, as_of(), stop=lambda: True)
    with pytest.raises(ReadCancelled):
        engine.answer(BucketsRequest(action="buckets"), as_of(), stop=lambda: True)


def test_a_flooding_token_leaves_others_answered(policy: Policy, tokens) -> None:
    relaxed = _generous(policy)
    view = make_view(relaxed)
    flood = {"service": "gateway", "recurrence_watch_windows_days": list(range(1, 9))}
    with running(create_api(view, relaxed, tokens)) as client, ThreadPoolExecutor(6) as pool:
        floods = [pool.submit(client.gate, flood, "agent_release") for _ in range(24)]
        answers = [client.tool({"action": "correlate", "incident_id": "inc_gw_1"},
                               role="agent_oncall") for _ in range(10)]
        statuses = {f.result().status for f in floods}
    assert {a.status for a in answers} == {200}
    assert statuses <= {200, 429} and 200 in statuses


def test_token_bytes_outside_ascii_are_not_tokens(client: Client) -> None:
    token = ROLE_TOKENS["agent_cto"]
    reply = client.request("POST", "/v1/tools/incident_intelligence", body=b"{}",
                           headers={"Authorization": f"Bearer {token}é"})
    assert reply.status == 401
