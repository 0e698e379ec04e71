"""How long a caught-up consumer waits for new records: the latency of every hop.

Faust's aiokafka driver asks the broker to hold an empty fetch for 1.5 s.
Apache Kafka answers such a fetch as soon as a record arrives, but a broker
that holds it to the end (the embedded Tansu broker does) turns every
repartition hop of the pipeline into a wait of up to 1.5 s, and its
throughput into a stop-and-go. A short wait costs one extra fetch request per
idle consumer every ``FETCH_MAX_WAIT_MS`` and removes that stall everywhere.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_kafka

FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class _Consumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class KafkaTransport(faust_kafka.Transport):
    """Faust's Kafka transport with the short fetch wait."""

    Consumer = _Consumer
