"""The naive baseline: a Faust agent that writes one table key per event.

Run as ``python -m bench.naive_agent BOOTSTRAP TOPIC N OUT_JSON APP_ID PORT``;
it consumes TOPIC, writes ``table[key] = value`` for every event, and once N
events went through writes its rate (first to last event) to OUT_JSON and stops.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import faust


def main(bootstrap: str, topic: str, n: int, out: str, app_id: str, port: int) -> None:
    app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://",
                    topic_partitions=4, web_port=port, web_bind="127.0.0.1",
                    broker_session_timeout=10, broker_heartbeat_interval=3,
                    consumer_auto_offset_reset="earliest", autodiscover=False, env={},
                    datadir=f"/tmp/{app_id}")
    source = app.topic(topic, key_serializer="raw", value_serializer="raw", partitions=4)
    table = app.Table("naive", default=None, key_type=bytes, value_type=bytes, partitions=4)
    seen = {"count": 0, "first": 0.0}

    @app.agent(source)
    async def naive(stream):  # noqa: ANN001, ANN202 - Faust's agent signature
        async for event in stream.events():
            if not seen["count"]:
                seen["first"] = time.perf_counter()
            table[event.key] = event.value
            seen["count"] += 1
            if seen["count"] == n:
                elapsed = time.perf_counter() - seen["first"]
                with open(out, "w") as handle:
                    json.dump({"events": n, "seconds": elapsed}, handle)
                os.kill(os.getpid(), signal.SIGTERM)

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    b, t, count, path, ident, web = sys.argv[1:7]
    main(b, t, int(count), path, ident, int(web))
