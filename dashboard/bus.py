"""What the collector and the web processes share in Redis (team mode), and the operations on it.

Ticks themselves reach the browsers through Flask-SocketIO's own message queue (Redis pub/sub); this module holds
the rest, so that any web process can serve any market:

    dashboard:ticks:<market>   a capped stream per market: its recent entries, for the backfill of a new panel
    dashboard:states           hash market -> its market state (subscribing, streaming, error ...)
    dashboard:feeds            the feeds' status, rewritten every status_period; it expires status_ttl after the
                               last write, so a dead collector shows within STALE_AFTER_S
    dashboard:offer            the markets the collector can serve (listings, recordings), for the add form
    dashboard:watch:<web id>   the markets one web process's clients watch; a lease that expires with the process
    dashboard:commands         pub/sub: "stream this market now" from a web process, so a panel need not wait

Those are live's names. A replaying team uses the same names under `dashboard:replay:` (and its own Socket.IO
channel, roles.queue_channel), so a live and a replaying team can share one Redis and never see each other's ticks.

Every call raises redis.RedisError when Redis is away; the callers decide what that means for them.
"""
from __future__ import annotations

from typing import Iterator, Optional

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PREFIX = "dashboard:"


def namespace(mode: str = "live") -> str:
    """The prefix of a mode's keys and channels: live keeps the plain names, replay has its own beside them."""
    return PREFIX if mode == "live" else f"{PREFIX}{mode}:"


def options(read_timeout: Optional[float] = 2.0) -> dict:
    """Connection options that never wait long: a Redis that is away must show as away, not hang a request or an
    emit. (A listener waits for messages without a read timeout: a quiet channel is not a failure; a dead one
    closes.) Also given to Flask-SocketIO's own Redis managers.

    A call on a pooled connection that Redis closed meanwhile (Redis restarted, or it dropped an idle client) is
    tried once more on a new connection: without that, the first call after Redis came back failed ("Broken pipe"),
    and a web process told every page "Redis unreachable" and resynced them, minutes after Redis was back."""
    return {"socket_timeout": read_timeout, "socket_connect_timeout": 2, "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))}  # a timeout is not retried


def connect(url: str, read_timeout: Optional[float] = 2.0) -> redis.Redis:
    return redis.Redis.from_url(url, **options(read_timeout))


def status_period(stale_after_s: float) -> float:
    """How often (s) the collector rewrites the feeds' status, its heartbeat: every second, or a quarter of
    STALE_AFTER_S when that is shorter."""
    return min(1.0, stale_after_s / 4)


def status_ttl(stale_after_s: float) -> float:
    """How long (s) the feeds' status lives after a write: STALE_AFTER_S less one heartbeat period, so a web process
    that wakes when it lapses shows a collector killed just after a write as silent within STALE_AFTER_S; a
    collector that misses writes for STALE_AFTER_S less two periods (8 s of the default 10) shows as silent."""
    return stale_after_s - status_period(stale_after_s)


class Bus:
    def __init__(self, url: str, ring_size: int = 500, mode: str = "live"):
        self.url, self.ring_size = url, ring_size
        self.prefix = namespace(mode)  # every key and channel below is the mode's own
        self.redis = connect(url)

    def _key(self, name: str) -> str:
        return self.prefix + name

    def ping(self) -> None:
        self.redis.ping()

    # Written by the collector -----------------------------------------------------------------------------------
    def store(self, entries: dict[str, list], states: dict[str, dict]) -> None:
        """New entries of each market (oldest first) and changed market states, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for market, ticks in entries.items():
            key = self._key(f"ticks:{market}")
            for tick in ticks[-self.ring_size:]:
                pipe.xadd(key, {"t": orjson.dumps(tick)}, maxlen=self.ring_size, approximate=True)
        if states:
            pipe.hset(self._key("states"), mapping={market: orjson.dumps(state) for market, state in states.items()})
        pipe.execute()

    def forget(self, market: str) -> None:
        """A market no longer streamed: its entries and its state go."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self._key(f"ticks:{market}"))
        pipe.hdel(self._key("states"), market)
        pipe.execute()

    def set_feeds(self, statuses: list, ttl_s: float) -> None:
        self.redis.set(self._key("feeds"), orjson.dumps(statuses), px=max(1, int(ttl_s * 1000)))

    def set_offer(self, offer: dict) -> None:
        self.redis.set(self._key("offer"), orjson.dumps(offer))

    def watched(self) -> set:
        """Every market some web process's clients watch (the union of the live leases)."""
        keys = list(self.redis.scan_iter(match=self._key("watch:*"), count=1000))
        markets = set()
        for value in self.redis.mget(keys) if keys else ():
            if value:
                markets.update(orjson.loads(value))
        return markets

    def commands(self) -> Iterator[dict]:
        """Commands from the web processes, as they come (blocks; raises when Redis goes away)."""
        listener = connect(self.url, read_timeout=None).pubsub(ignore_subscribe_messages=True)
        listener.subscribe(self._key("commands"))
        try:
            for message in listener.listen():
                if message.get("type") == "message":
                    try:
                        yield orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        continue  # not ours
        finally:
            listener.close()

    # Read (and leased) by the web processes ---------------------------------------------------------------------
    def recent(self, market: str, count: int) -> list:
        """The market's latest entries, oldest first."""
        return [orjson.loads(fields[b"t"]) for _, fields in reversed(self.redis.xrevrange(self._key(f"ticks:{market}"),
                                                                                         count=count))]

    def state(self, market: str) -> Optional[dict]:
        value = self.redis.hget(self._key("states"), market)
        return orjson.loads(value) if value else None

    def feeds(self) -> tuple[Optional[list], float]:
        """(the feeds' status as the collector last wrote it, seconds until it lapses); (None, 0.0) once it has
        lapsed (the collector wrote nothing for its ttl). Read with its time to live in one transaction: Redis's
        clock decides, so the web's and the collector's clocks need not agree."""
        key = self._key("feeds")
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.pttl(key)
        value, left_ms = pipe.execute()
        if not value or left_ms is None or left_ms <= 0:  # -2 gone; -1 no expiry: not a heartbeat we can trust
            return None, 0.0
        return orjson.loads(value), left_ms / 1000

    def offer(self) -> Optional[dict]:
        value = self.redis.get(self._key("offer"))
        return orjson.loads(value) if value else None

    def lease(self, web_id: str, markets, ttl_s: float) -> None:
        self.redis.set(self._key("watch:" + web_id), orjson.dumps(sorted(markets)), px=max(1, int(ttl_s * 1000)))

    def send(self, command: dict) -> None:
        self.redis.publish(self._key("commands"), orjson.dumps(command))
