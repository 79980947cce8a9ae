"""Prometheus metrics of one instance, on a registry of its own.

Hot paths update counters once per message (``inc(n)``), never per delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_FAST_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_LAG_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class Metrics:
    """Every metric we export; one instance per application."""

    def __init__(self, instance: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"instance": instance}
        r = self.registry
        self.connections = Gauge(
            "playhouse_ws_connections", "Open WebSocket connections.", registry=r
        )
        self.messages_in = Counter(
            "playhouse_ws_messages_in", "Client frames received.", registry=r
        )
        self.messages_out = Counter(
            "playhouse_ws_messages_out",
            "Broker messages dispatched to local subscribers.",
            registry=r,
        )
        self.deliveries = Counter(
            "playhouse_ws_deliveries",
            "Frames written to subscribers (one per subscriber).",
            registry=r,
        )
        self.rejected = Counter(
            "playhouse_ws_rejected", "Client frames or handshakes refused.", ["reason"], registry=r
        )
        self.slow_closes = Counter(
            "playhouse_ws_slow_client_closes",
            "Sockets closed with 1013 for falling behind.",
            registry=r,
        )
        self.dropped = Counter(
            "playhouse_ws_dropped",
            "Frames not sent to a non-game socket that had fallen behind.",
            registry=r,
        )
        self.coalesced = Counter(
            "playhouse_ws_coalesced",
            "Frames kept for a non-game socket behind, replaced by a newer one (same key).",
            registry=r,
        )
        self.ping_timeouts = Counter(
            "playhouse_ws_ping_timeouts", "Sockets dropped for not answering pings.", registry=r
        )
        self.publish_failures = Counter(
            "playhouse_broker_publish_failures",
            "Publishes refused by an unavailable broker.",
            registry=r,
        )
        self.broker_reconnects = Counter(
            "playhouse_broker_reconnects", "Broker subscriber re-connections.", registry=r
        )
        self.fanout_seconds = Histogram(
            "playhouse_fanout_seconds",
            "Time to write one message to all local subscribers.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.ioloop_lag = Histogram(
            "playhouse_ioloop_lag_seconds",
            "Event loop scheduling lag.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.game_commands = Counter(
            "playhouse_game_commands",
            "Game socket messages by type and answer (ack, resumed or an error code).",
            ["type", "answer"],
            registry=r,
        )
        self.game_command_seconds = Histogram(
            "playhouse_game_command_seconds",
            "Time from a game socket message to its answer (includes the stored write).",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.info = Gauge("playhouse_instance_info", "Instance identity.", ["instance"], registry=r)
        self.info.labels(**labels).set(1)

    def count_received(self, read: Callable[[], int]) -> None:
        """Export ``read()`` as ``playhouse_broker_messages_received_total``."""
        self.registry.register(_ReceivedCollector(read))

    def on_fanout(self, subscribers: int, seconds: float) -> None:
        """Registry observer: one call per dispatched message."""
        self.messages_out.inc()
        self.deliveries.inc(subscribers)
        self.fanout_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ReceivedCollector(Collector):
    """Messages received from the broker, read from the registry's plain counter (the hot
    path adds 1 to an int instead of calling into prometheus_client)."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "playhouse_broker_messages_received",
            "Messages the broker delivered to this instance, with or without local subscribers.",
            value=self._read(),
        )
