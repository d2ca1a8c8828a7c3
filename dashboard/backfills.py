"""Shared backfills: a market's `backfill` event encoded once per emit interval for every client that needs it then.

A subscribe's backfill and a conflated client's resync are the same event for every client that asks for a market
within one interval, so the fan-out (fanout.py) encodes it once (one Socket.IO packet, one Engine.IO packet, and
under eventlet one websocket frame) and sends those same bytes to each of them, directly or through engine.io's
queue, as it sends a watch-set's `batch`.

Why one interval is safe: a cached backfill holds the market's ticks up to when it was read; what came after is
due, and goes out in the first flush to take it, which every client that got the cached copy also gets (it joined
its watch-set's room in the same step, under the fan-out's send lock). So the copy is dropped when a flush has taken
what is due (`expire`), and when a market gets its first watcher (`forget`: while nobody watched it, its ticks went
to its ring only, not into what is due). A copy read before either is not kept (a generation number says so).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from . import direct as direct_writes


class Encoded:
    """One event encoded for every client: the Engine.IO packet (python-engineio 4.15 caches its `encode()`, so
    each client's queue shares it) and, when direct writes are on, its websocket frame."""
    __slots__ = ("packet", "frame")

    def __init__(self, packet: eio_packet.Packet, frame: Optional[bytes]):
        self.packet, self.frame = packet, frame


def encode_event(server, event: str, payload, framed: bool) -> Optional[Encoded]:
    """`event` with `payload` as python-socketio Server `server` would send it to namespace "/", or None if it has
    binary attachments (never for what we send: the caller then emits it the normal way)."""
    text = server.packet_class(sio_packet.EVENT, namespace="/", data=[event, payload]).encode()
    if not isinstance(text, str):
        return None
    packet = eio_packet.Packet(eio_packet.MESSAGE, text)
    return Encoded(packet, direct_writes.text_frame(packet.encode().encode()) if framed else None)


class SharedBackfills:
    """market -> its `backfill` event encoded, for the rest of this interval. Thread-safe."""

    def __init__(self, server, backfill: Callable[[str], dict], framed: bool):
        """`backfill`: market -> `{"market", "ticks", "state"}` (Hub.backfill); `framed`: build websocket frames
        too (direct writes are on)."""
        self.server, self.backfill, self.framed = server, backfill, framed
        self._lock = threading.Lock()
        self._kept: dict[str, Encoded] = {}
        self._generation = 0
        self.encodings = 0  # backfills encoded (the rest of those sent were shared)

    def get(self, market: str) -> tuple[Optional[Encoded], dict]:
        """(the market's backfill encoded, or None with binary attachments; the payload, or {} when shared)."""
        with self._lock:
            kept = self._kept.get(market)
            generation = self._generation
        if kept is not None:
            return kept, {}
        payload = self.backfill(market)
        encoded = encode_event(self.server, "backfill", payload, self.framed)
        self.encodings += 1
        if encoded is not None:
            with self._lock:
                if generation == self._generation:  # nothing was sent or first watched since it was read
                    self._kept.setdefault(market, encoded)
        return encoded, payload

    def expire(self) -> None:
        """A flush has taken what is due: copies read before it may lack what it sends now."""
        with self._lock:
            self._generation += 1
            self._kept = {}

    def forget(self, market: str) -> None:
        """`market` has its first watcher: its ticks are due from now on, not before."""
        with self._lock:
            self._generation += 1
            self._kept.pop(market, None)
