"""The ledger, the JSONL sink and the webhook sink against a local scripted server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.broker import free_port
from app.contracts import FollowUp
from app.delivery.ledger import Ledger
from app.delivery.sinks import JsonlSink, WebhookSink
from app.errors import UserError
from tests.support.builders import follow_up
from tests.support.webhook_server import HANG, webhook_server


def model(key: str) -> FollowUp:
    return FollowUp.model_validate(follow_up(key))


def test_the_ledger_remembers_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    assert ledger.keys == set()
    ledger.record("a", topic="t", partition=0, offset=1)
    ledger.record("b", topic="t", partition=1, offset=7)
    ledger.close()
    assert Ledger(path).keys == {"a", "b"}


def test_a_torn_last_line_is_dropped_as_never_committed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.record("a", topic="t", partition=0, offset=1)
    ledger.close()
    with path.open("ab") as f:
        f.write(b'{"dedupe_key": "b", "top')  # a crash in the middle of a write
    reopened = Ledger(path)
    assert reopened.keys == {"a"}
    reopened.record("c", topic="t", partition=0, offset=2)
    reopened.close()
    assert Ledger(path).keys == {"a", "c"}


def test_a_foreign_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"dedupe_key": "a"}\nhello\n')
    with pytest.raises(UserError, match=r"ledger.jsonl:2: not a delivery ledger line"):
        Ledger(path)
    with pytest.raises(UserError, match="does not exist"):
        Ledger(tmp_path / "missing" / "ledger.jsonl")


def test_the_jsonl_sink_appends_and_knows_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    assert asyncio.run(sink.deliver(model("k1"))).kind == "delivered"
    assert asyncio.run(sink.deliver(model("k2"))).kind == "delivered"
    asyncio.run(sink.close())
    lines = path.read_bytes().splitlines()
    assert [FollowUp.model_validate_json(line) for line in lines] == [model("k1"), model("k2")]
    with path.open("ab") as f:
        f.write(b'{"type": "followup", "inc')
    again = JsonlSink(path)
    assert again.delivered() == {"k1", "k2"}
    asyncio.run(again.close())
    assert len(path.read_bytes().splitlines()) == 2


def _deliver(sink: WebhookSink, key: str):  # noqa: ANN202
    async def run():  # noqa: ANN202
        try:
            return await sink.deliver(model(key))
        finally:
            await sink.close()
    return asyncio.run(run())


def test_the_webhook_gets_json_the_idempotency_key_and_the_token() -> None:
    with webhook_server(lambda key, seen: 201) as server:
        result = _deliver(WebhookSink(server.url, timeout_seconds=2, token="s3cret"), "fu:k1")
    assert result.kind == "delivered"
    [received] = server.received
    assert received.key == "fu:k1"
    assert received.headers["Authorization"] == "Bearer s3cret"
    assert received.headers["Content-Type"] == "application/json"
    assert FollowUp.model_validate(received.body) == model("fu:k1")


def test_no_token_no_authorization_header() -> None:
    with webhook_server(lambda key, seen: 200) as server:
        _deliver(WebhookSink(server.url, timeout_seconds=2), "k")
    assert "Authorization" not in server.received[0].headers


@pytest.mark.parametrize(("answer", "kind", "detail"), [
    (503, "retryable", "HTTP 503"),
    (HANG, "retryable", "no answer within 0.5s"),
    (422, "permanent", "HTTP 422"),
])
def test_failures_are_reported_not_raised(answer: int, kind: str, detail: str) -> None:
    with webhook_server(lambda key, seen: answer, hang_seconds=1.5) as server:
        result = _deliver(WebhookSink(server.url, timeout_seconds=0.5), "k")
    assert (result.kind, result.detail) == (kind, detail)


def test_a_closed_port_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    result = _deliver(WebhookSink(url, timeout_seconds=2), "k")
    assert result.kind == "retryable"
    assert "Connect" in result.detail
