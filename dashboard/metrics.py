"""Prometheus metrics (GET /metrics), read from the listeners and the hub when scraped: nothing per frame."""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exchanges.base import CONNECTING, ERROR, IDLE, LIVE, QUIET, RECONNECTING, STALE, STOPPED

STATES = (IDLE, CONNECTING, LIVE, QUIET, STALE, RECONNECTING, ERROR, STOPPED)


class _Snapshot:
    """A Prometheus collector over the feeds' status and the hub's counters."""

    def __init__(self, feeds, hub):
        self.feeds, self.hub = feeds, hub

    def collect(self):
        now_ms = time.time_ns() // 1_000_000
        state = GaugeMetricFamily("dashboard_feed_state", "1 for the state each feed is in", labels=["exchange", "state"])
        frames = CounterMetricFamily("dashboard_frames", "Frames received", labels=["exchange"])
        ticks = CounterMetricFamily("dashboard_ticks", "Ticks published", labels=["exchange"])
        bad = CounterMetricFamily("dashboard_bad_frames", "Bad frames skipped", labels=["exchange", "reason"])
        reconnects = CounterMetricFamily("dashboard_reconnects", "Reconnect attempts", labels=["exchange"])
        gaps = CounterMetricFamily("dashboard_gaps", "Gaps recorded", labels=["exchange"])
        older = CounterMetricFamily("dashboard_older_updates", "Updates dropped as older than the state shown "
                                    "(by the venue's sequence)", labels=["exchange"])
        rate = GaugeMetricFamily("dashboard_message_rate", "Frames per second", labels=["exchange"])
        age = GaugeMetricFamily("dashboard_last_data_age_seconds", "Seconds since the last market data",
                                labels=["exchange"])
        market_ticks = CounterMetricFamily("dashboard_market_ticks", "Ticks per market", labels=["market"])
        market_gaps = CounterMetricFamily("dashboard_market_gaps", "Gaps per market", labels=["market"])
        for status in self.feeds.status() if self.feeds is not None else ():  # a web process: the collector's
            name = status["exchange"]
            for each in STATES:
                state.add_metric([name, each], 1.0 if status["state"] == each else 0.0)
            frames.add_metric([name], status["frames"])
            ticks.add_metric([name], status["ticks"])
            for reason, count in status["bad_by_reason"].items():
                bad.add_metric([name, reason], count)
            reconnects.add_metric([name], status["reconnects"])
            gaps.add_metric([name], status["gaps"])
            older.add_metric([name], status.get("older", 0))
            rate.add_metric([name], status["message_rate"])
            if status["last_data_at"]:
                age.add_metric([name], (now_ms - status["last_data_at"]) / 1000)
            for symbol, stats in status["markets"].items():
                market_ticks.add_metric([f"{name}:{symbol}"], stats["ticks"])
                market_gaps.add_metric([f"{name}:{symbol}"], stats["gaps"])
        clients = GaugeMetricFamily("dashboard_connected_clients", "Socket.IO clients connected")
        clients.add_metric([], self.hub.clients)
        emits = CounterMetricFamily("dashboard_emits", "Packets emitted: one batch per watch-set per interval, "
                                    "encoded once (a collector: its batches published to the web processes)")
        emits.add_metric([], self.hub.emits)
        client_packets = CounterMetricFamily("dashboard_client_packets", "Packets queued for clients (a watch-set's "
                                             "packet counts once per client in it)")
        client_packets.add_metric([], self.hub.client_packets)
        direct = CounterMetricFamily("dashboard_direct_packets", "Client packets written straight to the client's "
                                     "websocket (eventlet; the others went through engine.io's queue)")
        direct.add_metric([], self.hub.direct_packets)
        interval = GaugeMetricFamily("dashboard_emit_interval_ms", "The emit interval in force (EMIT_INTERVAL_MS, "
                                     "lengthened under load up to 1 s)")
        interval.add_metric([], self.hub.interval_ms)
        watch_sets = GaugeMetricFamily("dashboard_watch_sets", "Distinct sets of markets watched by this process's "
                                       "clients (one packet encoding each per interval)")
        watch_sets.add_metric([], self.hub.watch_sets())
        conflated = CounterMetricFamily("dashboard_batches_conflated", "Batches not sent to a slow client (it gets "
                                        "a backfill of the latest state once it has caught up)")
        conflated.add_metric([], self.hub.batches_conflated)
        behind = GaugeMetricFamily("dashboard_clients_behind", "Slow clients waiting to be resynced")
        behind.add_metric([], self.hub.clients_behind())
        yield from (state, frames, ticks, bad, reconnects, gaps, older, rate, age, market_ticks, market_gaps, clients, emits,
                    client_packets, direct, interval, watch_sets, conflated, behind)


class Metrics:
    def __init__(self, feeds, hub):
        self.registry = CollectorRegistry()
        self.registry.register(_Snapshot(feeds, hub))
        self.batch_size = Histogram("dashboard_emit_batch_size", "Ticks per emitted batch", registry=self.registry,
                                    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
        self.tick_age = Histogram("dashboard_tick_age_at_emit_seconds", "Age of a batch's oldest tick when emitted "
                                  "(emit time - listener receipt time)", registry=self.registry,
                                  buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5))
        hub.on_batch = self.observe_batch

    def observe_batch(self, size: int, oldest_received) -> None:
        self.batch_size.observe(size)
        if oldest_received:
            self.tick_age.observe(max(0.0, time.time() - oldest_received / 1000))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
