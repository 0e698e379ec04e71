"""The offline oracle of published digests: what ``incident-intel tool`` answers."""

from __future__ import annotations

from typing import Any

import orjson

from app.contracts import DigestSummary, WeeklyDigestRequest, WeeklyDigestResponse, decode_event
from app.intel.engine import IntelEngine
from app.policy import Policy


def offline(policy: Policy, events: list[dict[str, Any]], week: str) -> DigestSummary:
    """``weekly_digest`` of ``week`` as the tool answers it without ``--state``: every
    event applied, as of the newest ``occurred_at``."""
    engine = IntelEngine(policy)
    parsed = [decode_event(orjson.dumps(e)) for e in events]
    engine.apply_all(parsed)
    as_of = max(e.occurred_at for e in parsed)
    response = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week=week),
                                    as_of).response
    assert isinstance(response, WeeklyDigestResponse)
    return response.json_summary
