"""Configuration: command line > environment > .env > defaults. Every key is in .env.example."""
from __future__ import annotations

import argparse
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dotenv import dotenv_values

from exchanges import EXCHANGES
from exchanges.cli import Parser
from exchanges.faults import Fault
from exchanges.recording import recording_files
from exchanges.tick import SYMBOL
from exchanges.simulator import parse_speed  # one meaning of --speed for the server and the local exchange


ENV_FILE = Path(__file__).resolve().parent.parent / ".env"

PAIR = SYMBOL  # one pattern for every market name, from the parsers to the page
MAX_MARKET_LENGTH = 64
ASYNC_MODES = ("eventlet", "threading")
ROLES = ("all", "collector", "web")
DEFAULT_MARKETS = "coinbase:BTC-USD,binance:BTC-USDT,binanceus:BTC-USD"
MODES = ("live", "replay")
# Live and replay never share stored data: each mode keeps its own history and listing cache, in a folder named
# after it. "{mode}" in HISTORY_URL or LISTINGS_DIR is replaced by the mode, so a setting of one's own keeps the two
# apart the same way; a path without it is used as given, in either mode (the store itself refuses the other mode's
# data: see history.claim).
DEFAULT_HISTORY_URL = "sqlite:///data/{mode}/history.sqlite3"
DEFAULT_LISTINGS_DIR = "data/{mode}/listings"
# Where both modes kept their data before they were kept apart: mixed, so no longer read (see leftovers()).
LEGACY_PATHS = ("data/history.sqlite3", "data/listings")


def parse_market(text) -> tuple[str, str]:
    """'coinbase:BTC-USD' -> ('coinbase', 'BTC-USD'); ValueError with a reason a person can act on."""
    if not isinstance(text, str):
        raise ValueError("market must be a string like 'coinbase:BTC-USD'")
    if len(text) > MAX_MARKET_LENGTH:
        raise ValueError(f"market is longer than {MAX_MARKET_LENGTH} characters")
    exchange, colon, symbol = text.strip().partition(":")
    if not colon:
        raise ValueError("market must be EXCHANGE:BASE-QUOTE, like 'coinbase:BTC-USD'")
    if exchange not in EXCHANGES:
        raise ValueError(f"unknown exchange {exchange[:20]!r}; known: {', '.join(EXCHANGES)}")
    symbol = symbol.upper()
    if not PAIR.fullmatch(symbol):
        raise ValueError(f"pair {symbol[:40]!r} is not BASE-QUOTE (letters and digits, like BTC-USD)")
    return exchange, symbol


def parse_markets(text: str) -> list[str]:
    markets = []
    for part in (text or "").split(","):
        if part.strip():
            exchange, symbol = parse_market(part)
            market = f"{exchange}:{symbol}"
            if market not in markets:
                markets.append(market)
    return markets


def _speed_from_env(text: str) -> float:
    try:
        return parse_speed(text)
    except (argparse.ArgumentTypeError, ValueError) as bad:
        raise SystemExit(f"SPEED: {bad}")


def env_key(exchange: str) -> str:
    return f"{exchange.upper()}_WS_URL"


def rest_key(exchange: str) -> str:
    return f"{exchange.upper()}_REST_URL"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    secret_key: str = ""
    secret_generated: bool = False  # no SECRET_KEY was set: one was made for this run (server.py says so)
    async_mode: str = "eventlet"
    markets: list = field(default_factory=list)
    markets_from_cli: bool = False
    exchanges: list = field(default_factory=lambda: list(EXCHANGES))
    ws_urls: dict = field(default_factory=dict)
    rest_urls: dict = field(default_factory=dict)
    rest: bool = True  # listings and REST backfill
    listings_dir: str = "data/live/listings"
    stale_after_s: float = 10.0
    backoff_cap_s: float = 30.0
    max_rows: int = 500
    ring_size: int = 500
    emit_interval_ms: int = 50
    record_dir: Optional[str] = None
    replay: Optional[list] = None  # None: live; []: the shipped recordings; else these paths
    speed: float = 1.0
    # what the local exchange plays, for the page's replay banner: {"speed", "recordings": [{file, exchange, from,
    # to}]} (server.py fills it from the local exchange's first line)
    replay_info: Optional[dict] = None
    faults: list = field(default_factory=list)  # fault specs for the local exchange (replay only)
    history_url: Optional[str] = "sqlite:///data/live/history.sqlite3"  # None: no history
    history_retention_days: float = 7.0
    cors_origins: Optional[list] = None  # None: same origin only
    max_markets_per_client: int = 50
    subscribe_rate: float = 10.0  # subscribe/unsubscribe events a second per client ...
    subscribe_burst: int = 20     # ... in bursts of at most this many
    max_markets_per_exchange: int = 200  # markets one listener streams at most (the configured ones always)
    release_after_s: float = 5.0  # a market nobody watches is let go after this long
    log_level: str = "INFO"
    role: str = "all"      # all (one process), collector or web (team mode, over Redis)
    redis_url: str = ""
    web_id: str = ""       # names a web process's lease in Redis (default host:port)
    # The listening socket (dashboard/serving.py).
    allowed_hosts: list = field(default_factory=list)  # Host header names served (default_allowed_hosts)
    header_timeout_s: float = 10.0   # a connection's request line and headers must arrive within this
    max_pending_headers: int = 128   # connections waiting on their request at once; over it the oldest is closed
    max_connections: int = 0         # open client connections; 0: the open-file limit less a reserve

    @property
    def mode(self) -> str:
        """live or replay: decided by --replay alone, and deciding where history and listings are kept."""
        return "live" if self.replay is None else "replay"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python server.py",
                    description="Live multi-exchange best bid / ask / last trade dashboard.")
    add = parser.add_argument
    add("--host", help="address to bind (HOST, default 127.0.0.1)")
    add("--port", type=int, help="port (PORT, default 5000)")
    add("--markets", help="watchlist, e.g. coinbase:BTC-USD,binance:BTC-USDT (MARKETS)")
    add("--async-mode", choices=ASYNC_MODES, help="Socket.IO async mode (ASYNC_MODE, default eventlet)")
    add("--stale-after", type=float, dest="stale_after_s", help="seconds without any frame before a feed is "
        "stale and reconnects (STALE_AFTER_S, default 10)")
    add("--backoff-cap", type=float, dest="backoff_cap_s", help="reconnect backoff cap in s (BACKOFF_CAP_S, 30)")
    add("--max-rows", type=int, help="rows kept per panel on the page (MAX_ROWS, default 500)")
    add("--ring-size", type=int, help="recent ticks kept per market for backfill (RING_SIZE, default 500)")
    add("--emit-interval-ms", type=int, help="batching interval of emits (EMIT_INTERVAL_MS, default 50)")
    add("--record", dest="record_dir", metavar="DIR", help="write every frame received to DIR (RECORD_DIR)")
    add("--replay", nargs="*", metavar="PATH", help="replay recordings through the local exchange instead of "
        "connecting to the exchanges (no PATH: the shipped recordings)")
    add("--fault", action="append", metavar="SPEC", help="replay only: make the local exchange misbehave, "
        "EXCHANGE:KIND[=ARG][@AT][+FOR], e.g. binance:stall@10s (repeatable; FAULTS, space-separated)")
    add("--speed", type=parse_speed, help="replay pace: a multiple of the recorded pace, or 'max' (SPEED, default 1)")
    add("--cors-origins", help="comma-separated origins allowed besides the page's own (CORS_ORIGINS)")
    add("--max-markets-per-client", type=int, help="markets one browser may watch (MAX_MARKETS_PER_CLIENT, 50)")
    add("--subscribe-rate", type=float, help="subscribe/unsubscribe events a second per client, bursts of twice "
        "that (SUBSCRIBE_RATE, default 10)")
    add("--max-markets-per-exchange", type=int, help="markets streamed at most per exchange, the configured ones "
        "included and never refused (MAX_MARKETS_PER_EXCHANGE, default 200)")
    add("--release-after", type=float, dest="release_after_s", help="seconds after which a market nobody watches is "
        "no longer streamed (RELEASE_AFTER_S, default 5)")
    add("--history-url", help="where every tick is kept (HISTORY_URL, default sqlite:///data/{mode}/history.sqlite3, "
        "relative to the project; {mode} is live or replay)")
    add("--no-history", action="store_true", help="keep no history (ticks live in memory only)")
    add("--history-retention-days", type=float, help="days of history kept (HISTORY_RETENTION_DAYS, default 7)")
    add("--no-rest", action="store_true", help="ask the exchanges' REST APIs nothing (no listings, no REST "
        "backfill)")
    add("--listings-dir", help="where the exchanges' listings are cached (LISTINGS_DIR, default data/{mode}/listings;"
        " {mode} is live or replay)")
    add("--log-level", help="DEBUG, INFO, WARNING ... (LOG_LEVEL, default INFO)")
    add("--role", choices=ROLES, help="all: one process does everything (default); collector: the exchange "
        "connections, history and listings, publishing to Redis; web: the page and Socket.IO, fed from Redis "
        "(ROLE)")
    add("--redis-url", help="Redis connecting the collector and the web processes, e.g. redis://127.0.0.1:6379/0 "
        "(REDIS_URL; needed by --role collector and web)")
    add("--allowed-hosts", help="comma-separated names the server may be reached by (the Host header; a name "
        "matches any port, NAME:PORT one port, .example.com its subdomains too, * any) (ALLOWED_HOSTS, default "
        "localhost, 127.0.0.1, ::1 and --host)")
    add("--header-timeout", type=float, dest="header_timeout_s", help="seconds a connection has to send its request "
        "line and headers, also between keep-alive requests (HEADER_TIMEOUT_S, default 10)")
    add("--max-pending-headers", type=int, help="connections that may wait on their request at once; a new one "
        "over it closes the one waiting longest (MAX_PENDING_HEADERS, default 128)")
    add("--max-connections", type=int, help="open client connections; more are answered 503 and closed "
        "(MAX_CONNECTIONS, default 0: the open-file limit less a reserve)")
    for name in EXCHANGES:
        add(f"--{name}-ws-url", dest=f"url_{name}", metavar="URL", help=f"{name} websocket URL ({env_key(name)})")
        add(f"--{name}-rest-url", dest=f"rest_{name}", metavar="URL", help=f"{name} REST API ({rest_key(name)})")
        add(f"--no-{name}", dest=f"no_{name}", action="store_true", help=f"do not start the {name} listener")
    return parser


def default_allowed_hosts(host: str) -> list:
    """The names a browser on this machine uses, and the bound address unless it is a wildcard. DNS rebinding
    needs a name of the attacker's, so these are safe whatever the port (a proxy in front may use its own)."""
    names = ["localhost", "127.0.0.1", "::1"]
    bound = host.strip("[]").lower()
    if bound not in ("", "0.0.0.0", "::") and bound not in names:
        names.append(bound)
    return names


def for_mode(text: str, mode: str) -> str:
    """HISTORY_URL or LISTINGS_DIR with "{mode}" replaced by the mode (live or replay)."""
    return text.replace("{mode}", mode)


def leftovers(settings: Settings, root: Path = ENV_FILE.parent) -> list:
    """The data kept before live and replay were kept apart (one store and one listing cache for both, so
    possibly replay ticks and recorded listings) that these settings no longer read: to say so at start."""
    in_use = {settings.history_url or "", settings.listings_dir}
    return [path for path in LEGACY_PATHS if (root / path).exists()
            and f"sqlite:///{path}" not in in_use and path not in in_use]


def environment(env_file=ENV_FILE) -> dict:
    """The .env file's values overridden by the process environment (which is left untouched)."""
    values = {key: value for key, value in dotenv_values(env_file).items() if value is not None} \
        if Path(env_file).is_file() else {}
    values.update(os.environ)
    return values


CONVERTED = {int: "a whole number", float: "a number"}  # what a setting read from the environment must be


def load_settings(argv=None, env_file=ENV_FILE) -> Settings:
    args = build_parser().parse_args(argv)
    env = environment(env_file)

    def pick(cli, key, default, convert=str):
        if cli is not None:
            return cli
        if env.get(key, "") != "":
            try:
                return convert(env[key])
            except ValueError:  # said in one line, as a bad flag is
                raise SystemExit(f"{key} must be {CONVERTED.get(convert, 'valid')}, not {env[key]!r}") from None
        return default

    settings = Settings(
        host=pick(args.host, "HOST", "127.0.0.1"),
        port=pick(args.port, "PORT", 5000, int),
        secret_key=env.get("SECRET_KEY") or env.get("SECRET") or "",
        async_mode=pick(args.async_mode, "ASYNC_MODE", "eventlet"),
        stale_after_s=pick(args.stale_after_s, "STALE_AFTER_S", 10.0, float),
        backoff_cap_s=pick(args.backoff_cap_s, "BACKOFF_CAP_S", 30.0, float),
        max_rows=pick(args.max_rows, "MAX_ROWS", 500, int),
        ring_size=pick(args.ring_size, "RING_SIZE", 500, int),
        emit_interval_ms=pick(args.emit_interval_ms, "EMIT_INTERVAL_MS", 50, int),
        record_dir=pick(args.record_dir, "RECORD_DIR", None),
        replay=args.replay,
        speed=pick(args.speed, "SPEED", 1.0, _speed_from_env),
        log_level=pick(args.log_level, "LOG_LEVEL", "INFO").upper(),
        max_markets_per_client=pick(args.max_markets_per_client, "MAX_MARKETS_PER_CLIENT", 50, int),
        subscribe_rate=pick(args.subscribe_rate, "SUBSCRIBE_RATE", 10.0, float),
        max_markets_per_exchange=pick(args.max_markets_per_exchange, "MAX_MARKETS_PER_EXCHANGE", 200, int),
        release_after_s=pick(args.release_after_s, "RELEASE_AFTER_S", 5.0, float),
    )
    if not 1 <= settings.port <= 65535:
        raise SystemExit(f"PORT must be 1 to 65535, not {settings.port}")
    if settings.max_markets_per_exchange < 1 or settings.release_after_s < 0:
        raise SystemExit("MAX_MARKETS_PER_EXCHANGE must be at least 1 and RELEASE_AFTER_S not negative")
    settings.subscribe_burst = max(1, int(settings.subscribe_rate * 2))
    settings.history_url = None if args.no_history else for_mode(
        pick(args.history_url, "HISTORY_URL", DEFAULT_HISTORY_URL), settings.mode)
    settings.history_retention_days = pick(args.history_retention_days, "HISTORY_RETENTION_DAYS", 7.0, float)
    settings.faults = args.fault if args.fault is not None else env.get("FAULTS", "").split()
    for spec in settings.faults:
        try:
            Fault.parse(spec)
        except ValueError as bad:
            raise SystemExit(f"--fault: {bad}")
    if settings.replay:
        try:
            recording_files(settings.replay)
        except FileNotFoundError as missing:
            raise SystemExit(f"--replay: {missing}")
    if settings.faults and settings.replay is None:
        raise SystemExit("--fault needs --replay: faults are injected by the local exchange")
    if settings.async_mode not in ASYNC_MODES:
        raise SystemExit(f"ASYNC_MODE must be one of {', '.join(ASYNC_MODES)}")
    if not settings.secret_key:
        settings.secret_key = secrets.token_hex(32)
        settings.secret_generated = True  # logged by the caller: logging is configured from these settings
    origins = pick(args.cors_origins, "CORS_ORIGINS", "")
    settings.cors_origins = [o.strip() for o in origins.split(",") if o.strip()] or None
    enabled = [n.strip() for n in env.get("EXCHANGES", ",".join(EXCHANGES)).split(",") if n.strip()]
    unknown = [name for name in enabled if name not in EXCHANGES]
    if unknown:
        raise SystemExit(f"EXCHANGES names unknown exchanges: {', '.join(unknown)}")
    settings.exchanges = [name for name in enabled if not getattr(args, f"no_{name}")]
    settings.ws_urls = {name: pick(getattr(args, f"url_{name}"), env_key(name), EXCHANGES[name].url)
                        for name in EXCHANGES}
    settings.rest_urls = {name: pick(getattr(args, f"rest_{name}"), rest_key(name), EXCHANGES[name].rest_url)
                          for name in EXCHANGES}
    settings.role = pick(args.role, "ROLE", "all")
    if settings.role not in ROLES:
        raise SystemExit(f"ROLE must be one of {', '.join(ROLES)}")
    settings.redis_url = pick(args.redis_url, "REDIS_URL", "")
    if settings.role != "all" and not settings.redis_url:
        raise SystemExit(f"--role {settings.role} needs REDIS_URL (or --redis-url): Redis connects the roles")
    settings.web_id = env.get("WEB_ID") or f"{socket.gethostname()}:{settings.port}"
    settings.rest = not args.no_rest
    hosts = pick(args.allowed_hosts, "ALLOWED_HOSTS", "")
    settings.allowed_hosts = [h.strip().lower() for h in hosts.split(",") if h.strip()] or \
        default_allowed_hosts(settings.host)
    settings.header_timeout_s = pick(args.header_timeout_s, "HEADER_TIMEOUT_S", 10.0, float)
    settings.max_pending_headers = pick(args.max_pending_headers, "MAX_PENDING_HEADERS", 128, int)
    settings.max_connections = pick(args.max_connections, "MAX_CONNECTIONS", 0, int)
    if settings.header_timeout_s <= 0 or settings.max_pending_headers < 1 or settings.max_connections < 0:
        raise SystemExit("HEADER_TIMEOUT_S must be > 0, MAX_PENDING_HEADERS >= 1, MAX_CONNECTIONS >= 0")
    settings.listings_dir = for_mode(pick(args.listings_dir, "LISTINGS_DIR", DEFAULT_LISTINGS_DIR), settings.mode)
    try:
        settings.markets_from_cli = args.markets is not None
        settings.markets = [market for market in parse_markets(pick(args.markets, "MARKETS", DEFAULT_MARKETS))
                            if market.partition(":")[0] in settings.exchanges]
    except ValueError as bad:
        raise SystemExit(f"MARKETS: {bad}")
    return settings
