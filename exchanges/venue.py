"""The exchange's side of its own protocol, for the local exchange (replay). Sans-I/O, like the listeners.

Each exchange module defines a `Venue` subclass beside its listener; `exchanges/simulator.py` does the I/O.
A session is one client connection's state: a dict whose "keys" set holds what that client subscribed to.
"""
from __future__ import annotations

from typing import Optional

import orjson

BROADCAST = "*"  # the key of recorded frames every client gets: errors, and frames no channel claims (garbage)


PASS_STRIDE = 10 ** 12  # added per replay pass to sequence numbers and trade ids: above any a recording holds


def renumbered(payload: dict, fields: tuple, passes: int) -> bool:
    """Add passes * PASS_STRIDE to the integer `fields` of `payload` in place; True if any was there."""
    changed = False
    for field in fields:
        value = payload.get(field)
        if type(value) is int:
            payload[field] = value + passes * PASS_STRIDE
            changed = True
    return changed


def played(venue: "Venue", frames: list) -> list[tuple]:
    """A recording as the local exchange plays it: [(frame, subscription key, text)] in order, each recorded frame
    (`frame.frame`, key from `venue.route`, BROADCAST for garbage) followed by what the venue derives beside it
    (Venue.derived; `frame` is then the one it came from), for channels the recording itself lacks only: a
    recording that holds a channel is never doubled by derived frames of it."""
    recorded, keys = [], set()
    for frame in frames:
        try:
            key = venue.route(frame.frame)
        except Exception:  # garbage on the wire reaches every client
            key = BROADCAST
        keys.add(key)
        recorded.append((frame, key, venue.derived(frame.frame, frame.received)))
    order = []
    for frame, key, derived in recorded:
        order.append((frame, key, frame.frame))
        order.extend((frame, derived_key, text) for derived_key, text in derived if derived_key not in keys)
    return order


class Venue:
    path = "/"  # the websocket path the exchange serves

    def __init__(self, listed: Optional[set] = None, listing_body: Optional[str] = None):
        self.listed = set(listed or ())  # native symbols the exchange lists (recorded ones, plus a REST listing)
        self.listing_body = listing_body  # the recorded REST listing, served as it was recorded

    def route(self, frame: str) -> Optional[str]:
        """The subscription key a recorded frame belongs to; None for replies to the recording client's own
        requests (acks: the venue makes its own); BROADCAST for what every client gets. May raise on garbage,
        which is then broadcast too, so listeners meet it as they would on the wire."""
        raise NotImplementedError

    def symbol_of(self, key: str) -> str:
        """The native symbol a subscription key is about."""
        raise NotImplementedError

    @staticmethod
    def listing(body: str) -> set:
        """Native symbols from the exchange's recorded REST listing body."""
        return set()

    def on_open(self, session: dict, path: str) -> list[str]:
        """A client connected at `path` (with its query): replies to send at once."""
        session["keys"] = set()
        return []

    def on_message(self, session: dict, text: str) -> list[str]:
        """A client sent `text`: update its subscriptions, return the replies the exchange would send."""
        raise NotImplementedError

    def error_frame(self, text: str) -> str:
        """The exchange's own error message carrying `text` (fault injection)."""
        raise NotImplementedError

    def refusal(self, session: dict, text: str) -> Optional[list]:
        """If `text` is a subscribe request: the exchange's refusal of it (fault injection); else None."""
        raise NotImplementedError

    @staticmethod
    def request_of(text: str, key: str, value: str) -> Optional[dict]:
        """A client's JSON request whose `key` is `value` (`"op": "subscribe"`), or None for anything else."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        return message if type(message) is dict and message.get(key) == value else None

    def wants(self, session: dict, key: str) -> bool:
        return key in session["keys"]

    def next_pass(self, frame: str, passes: int) -> str:
        """The frame as the `passes`-th replay of the recording sends it (1 for the second pass ...). A venue whose
        listener orders updates by a sequence field adds `passes * PASS_STRIDE` to it, so a looping recording never
        sends an older sequence number on one connection. The default: the frame as recorded."""
        return frame

    def derived(self, frame: str, received) -> list[tuple[str, str]]:
        """Frames the exchange would also have sent beside a recorded `frame` (received at `received`, epoch seconds
        as recorded, or None) on a channel the recordings lack: [(subscription key, frame)], played right after it.
        DERIVED, never recorded: each venue that has some says how it makes them. The default: none."""
        return []

    def announce_shutdown(self) -> bool:
        """Thread-safe: tell the clients connected now, in the exchange's own words, that their server is about to
        shut down (fault `shutdown`). True if this exchange has such a notice; the default: it has none."""
        return False

    def observe(self, frame: str) -> None:
        """Every frame played, so heartbeats can say what the exchange has sent (last trade id ...)."""

    def rest(self, path: str, query: dict) -> Optional[tuple[int, str]]:
        """A REST GET: (status, JSON body) as the exchange answers it, from what has been played; None: 404."""
        return None

    def heartbeats(self, session: dict, now: float) -> list[str]:
        """Called once a second per client: the exchange's own heartbeat frames, if it has any."""
        return []
