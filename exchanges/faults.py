"""Faults the local exchange can inject, and their spec format.

    EXCHANGE:KIND[=ARG][@AT][+FOR]        e.g.  binance:stall@10s   coinbase:http=429/5@2s+10s   binance:close=1001

AT: seconds after the fault is given (at start: after the exchange's first client connects), default 0.
FOR: how long a window lasts (stall, heartbeats-only, refuse, http), in s (or ms with the suffix).

| kind | ARG | what the exchange does |
|---|---|---|
| drop | | cuts every open connection without a close frame (a dead TCP path ends) |
| close | code (1001) | closes every open connection with that code (Binance's 24-hour disconnect is 1001) |
| stall | | open connections get nothing more, and their pings go unanswered (half-open TCP); FOR: until |
| heartbeats-only | | open connections get heartbeats (Coinbase) / pongs (Binance) but no market data; FOR: until |
| error | text | sends the exchange's own error frame to every open connection |
| refuse-subscribe | | refuses the next subscribe request, as the exchange does |
| refuse | | connection attempts are cut before the handshake, for FOR (default 5 s) |
| http | status[/retry-after] | connection attempts are answered with that HTTP status (451, 403, 429 ...), for FOR (5 s) |
| garbage | malformed, truncated, huge, binary, wrong-shape, html, all | sends such frames to every open connection |
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

KINDS = ("drop", "close", "stall", "heartbeats-only", "error", "refuse-subscribe", "refuse", "http", "garbage",
         "shutdown")
WINDOW_KINDS = ("refuse", "http")
DEFAULT_WINDOW_S = 5.0
GARBAGE_KINDS = ("malformed", "truncated", "huge", "binary", "wrong-shape", "html")
HUGE_BYTES = 3 * 2 ** 20
XSS = '<img src=x onerror="window.__xss=1">'

_SPEC = re.compile(r"^(?P<exchange>[a-z0-9]+):(?P<kind>[a-z-]+)(?:=(?P<arg>[^@+]+))?"
                   r"(?:@(?P<at>[0-9.]+(?:ms|s)?))?(?:\+(?P<duration>[0-9.]+(?:ms|s)?))?$")


def _seconds(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.rstrip("s"))


@dataclass(frozen=True)
class Fault:
    exchange: str
    kind: str
    arg: str = ""
    at_s: float = 0.0
    for_s: Optional[float] = None  # None: stall / heartbeats-only last until the connection ends

    @classmethod
    def parse(cls, spec: str) -> "Fault":
        match = _SPEC.match(spec.strip())
        if not match:
            raise ValueError(f"fault {spec!r} is not EXCHANGE:KIND[=ARG][@AT][+FOR]")
        kind = match["kind"]
        if kind not in KINDS:
            raise ValueError(f"fault kind {kind!r} is not one of {', '.join(KINDS)}")
        arg = match["arg"] or ""
        if kind == "garbage" and arg not in GARBAGE_KINDS + ("all", ""):
            raise ValueError(f"garbage kind {arg!r} is not one of {', '.join(GARBAGE_KINDS)}, all")
        if kind in ("close", "http") and arg and not re.fullmatch(r"\d{3,4}(/\d+)?", arg):
            raise ValueError(f"{kind} takes a status code (http=429/5 adds Retry-After), not {arg!r}")
        duration = _seconds(match["duration"])
        if duration is None and kind in WINDOW_KINDS:
            duration = DEFAULT_WINDOW_S
        return cls(match["exchange"], kind, arg, _seconds(match["at"]) or 0.0, duration)

    def __str__(self) -> str:
        text = f"{self.exchange}:{self.kind}{'=' + self.arg if self.arg else ''}"
        return text + (f"@{self.at_s:g}s" if self.at_s else "") + (f"+{self.for_s:g}s" if self.for_s else "")


def garbage_frames(kind: str, sample: str) -> list:
    """Frames no exchange should send; `sample` is a real frame of the recording (for truncation)."""
    made = {
        "malformed": ['{"type":"ticker","product_id":"BTC-USD","price":'],
        "truncated": [sample[: max(1, len(sample) // 2)]],
        "huge": ['{"padding":"' + "x" * HUGE_BYTES + '"}'],
        "binary": [bytes(range(256))],
        "wrong-shape": ['[{"unexpected":"shape"}]', '{"type":"ticker","product_id":["BTC-USD"],"price":{"a":1}}',
                        '{"stream":"btcusdt@bookTicker","data":[1,2,3]}'],
        "html": ['{"type":"ticker","product_id":"%s","price":"<b>1</b>","stream":"%s@trade","data":{"s":"%s"}}'
                 % ((XSS.replace('"', '\\"'),) * 3)],
    }
    kinds = GARBAGE_KINDS if kind in ("all", "") else (kind,)
    return [frame for name in kinds for frame in made[name]]
