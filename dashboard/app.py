"""The Flask + Flask-SocketIO application: routes, Socket.IO events, and the wiring of hub and feeds."""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, Response, abort, jsonify, render_template, request, send_from_directory
from flask_socketio import SocketIO, emit

from exchanges import EXCHANGES

from .api import make_api
from .config import Settings, parse_market
from .feeds import Feeds
from .history import gap_on_resume, open_history
from .listings import Listings
from .rest import RestClient, backfill
from .bus import Bus
from .roles import CollectorLink, RemoteFeeds, WebHub, emitting_queue, listening_queue
from .hub import Hub
from .guard import harden
from .limits import EventRateLimit
from .metrics import Metrics

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
# Only these folders of node_modules are served, under /vendor/.
VENDOR_FOLDERS = ("bootstrap/dist/", "socket.io-client/dist/", "lightweight-charts/dist/")
VENDOR_ROOTS = tuple((NODE_MODULES / folder).resolve() for folder in VENDOR_FOLDERS)
MAX_EVENT_BYTES = 16 * 1024  # subscribe/unsubscribe events are tiny: a bigger packet closes that client
HEALTHY_STATES = ("live", "quiet")
# A market nobody watches any more is let go after this long, not at once: a page that reloads, or a panel closed
# and added again, finds it still streamed and gets its current state (say "waiting", with the reason) in the
# backfill, instead of a fresh subscription at the exchange that starts over at "subscribing". (A team's collector
# waits the length of a web process's lease the same way: roles.LEASE_S.) The setting RELEASE_AFTER_S, 5 s by default.


@dataclass
class Dashboard:
    app: Flask
    socketio: SocketIO
    hub: Hub
    feeds: Feeds
    listings: Listings = None
    rest: RestClient = None
    tasks: list = field(default_factory=list)  # a role's own background tasks
    role: str = "all"
    link: CollectorLink = None  # a collector's link to the web processes (Redis)

    def start(self) -> None:
        """Start the emitting task, the history writer, the listings, one listener task per exchange, and a
        REST backfill of each configured market (a web process: its own task only)."""
        self.socketio.start_background_task(self.hub.run)
        for task in self.tasks:
            self.socketio.start_background_task(task)
        if self.hub.history is not None:
            self.socketio.start_background_task(self.hub.history.run, self.socketio.sleep)
        if self.listings is not None:
            self.socketio.start_background_task(self.listings.run, self.socketio.sleep)
        self.feeds.start(self.socketio.start_background_task)
        for market in self.feeds.configured:
            self.backfill_later(market)

    def backfill_later(self, market: str) -> None:
        """Fill a new market's panel from the exchange's REST API, unless live ticks beat it to it."""
        if self.rest is None:
            return
        exchange, _, symbol = market.partition(":")

        def fill():
            ticks = backfill(self.rest, self.feeds.listeners[exchange], symbol)
            if ticks and not self.hub.has_live(market):
                for tick in ticks:
                    self.hub.publish(tick)
        self.socketio.start_background_task(fill)

    def stop(self) -> None:
        self.feeds.stop()
        if self.link is not None:  # a collector: the web processes are told the feeds stopped, at once
            self.link.stopped()
        self.hub.stop()
        if self.hub.history is not None:
            self.hub.history.close()


def create_app(settings: Settings, available: dict = None, on_frame=None) -> Dashboard:
    """`available`: exchange -> symbols the server can serve beyond the watchlist (a recording's markets).
    The role decides what runs here: everything (the default), the collector, or a web process; the mode (live or
    replay, settings.mode) which history and listings: each mode's own (history.StoreModeError for another's)."""
    mode = settings.mode
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config["SECRET_KEY"] = settings.secret_key
    if settings.role == "web":
        return _web(app, settings, mode)
    if settings.role == "collector":  # emits through the message queue only: it serves no Socket.IO itself
        socketio = SocketIO(message_queue=settings.redis_url, client_manager=emitting_queue(settings.redis_url, mode),
                            async_mode=settings.async_mode)
    else:
        socketio = SocketIO(app, async_mode=settings.async_mode, cors_allowed_origins=settings.cors_origins,
                            max_http_buffer_size=MAX_EVENT_BYTES)
        guard = harden(app, socketio, settings, MAX_EVENT_BYTES)  # hostile clients: dashboard/guard.py
    history = open_history(settings.history_url, settings.history_retention_days, base=ROOT, mode=mode)
    hub = Hub(socketio, ring_size=settings.ring_size, emit_interval_ms=settings.emit_interval_ms,
              max_batch=settings.max_rows, history=history, replay=settings.mode == "replay")
    if history is not None:  # after a restart, each market's first tick comes after the gap the downtime left
        hub.publish = gap_on_resume(history, hub.publish, hub.publish_gap)
    feeds = Feeds(hub, settings.exchanges, settings.ws_urls, settings.markets, stale_after_s=settings.stale_after_s,
                  backoff_cap_s=settings.backoff_cap_s, on_frame=on_frame,
                  max_markets_per_exchange=settings.max_markets_per_exchange)
    hub.feeds = feeds.status
    metrics = Metrics(feeds, hub)
    if settings.role != "collector":
        metrics.registry.register(guard.bad)
    exchanges = {name: EXCHANGES[name].label for name in settings.exchanges}
    rest = RestClient(settings.rest_urls, replay=mode == "replay") if settings.rest else None
    offer = {"kept": None, "version": 0}  # the offer as last built, until a listing changes

    def listings_changed() -> None:
        offer["kept"], offer["version"] = None, offer["version"] + 1
        socketio.emit("markets", markets_offer())

    listings = None
    if rest is not None:
        served = {name: set((available or {}).get(name, [])) | {m.partition(":")[2] for m in settings.markets
                                                                  if m.startswith(name + ":")}
                  for name in settings.exchanges}
        listings = Listings(feeds.listeners, rest, ROOT / settings.listings_dir, on_change=listings_changed,
                            mode=mode, also=served)
        feeds.listed = listings.lists  # a known listing refuses what it does not name

    def markets_offer() -> dict:
        """What the server can serve: the exchanges' listings, the recordings' markets, the watchlist. The same
        object (read-only) until a listing changes, so every client connecting meanwhile shares its encoding."""
        kept, version = offer["kept"], offer["version"]
        if kept is not None:
            return kept
        listed = listings.symbols if listings is not None else {}
        built = {
            "watchlist": settings.markets,
            "available": {name: sorted(set((available or {}).get(name, [])) | set(listed.get(name, [])) |
                                       {m.partition(":")[2] for m in settings.markets if m.startswith(name + ":")})
                          for name in settings.exchanges},
            "listing_source": dict(listings.source) if listings is not None else {},
            "exchanges": exchanges,
        }
        if mode == "replay":  # what has data: a recorded listing names far more pairs than the recordings hold
            built["recorded"] = {name: sorted((available or {}).get(name, [])) for name in settings.exchanges}
        if offer["version"] == version:  # no listing changed while it was built
            offer["kept"] = built
        return built

    dashboard = Dashboard(app, socketio, hub, feeds, listings, rest, role=settings.role)
    if settings.role == "collector":
        link = CollectorLink(Bus(settings.redis_url, settings.ring_size, mode), hub, feeds, markets_offer,
                             dashboard.backfill_later, settings.stale_after_s, socketio.sleep)
        hub.sink = dashboard.link = link
        dashboard.tasks += [link.follow_watchers, link.follow_commands]
        # cut off from Redis it publishes nothing, but its listeners and history go on and a restart would not bring
        # Redis back: 200 still, and the body says so
        _health_routes(app, feeds, metrics, also=lambda: {"redis": link.health.reason or "up"})

        @app.errorhandler(404)
        def elsewhere(error):  # someone opened the collector's address in a browser
            return jsonify({"error": "this is the collector (--role collector): it serves /healthz and /metrics; "
                                     "the page and the API are on the web processes (--role web)"}), 404
        return dashboard
    _health_routes(app, feeds, metrics)
    _page(app, socketio, dashboard, settings, mode, history, markets_offer)
    return dashboard


def _web(app: Flask, settings: Settings, mode: str) -> Dashboard:
    """A web process: the page and Socket.IO for its own clients; ticks come through the message queue."""
    queue = listening_queue(settings.redis_url, mode)
    socketio = SocketIO(app, async_mode=settings.async_mode, cors_allowed_origins=settings.cors_origins,
                        max_http_buffer_size=MAX_EVENT_BYTES, client_manager=queue)
    guard = harden(app, socketio, settings, MAX_EVENT_BYTES)  # hostile clients: dashboard/guard.py
    exchanges = {name: EXCHANGES[name].label for name in settings.exchanges}
    bus = Bus(settings.redis_url, settings.ring_size, mode)
    hub = WebHub(socketio, bus, exchanges, settings.web_id, settings.ring_size, settings.stale_after_s,
                 emit_interval_ms=settings.emit_interval_ms, max_batch=settings.max_rows)
    queue.relay = hub.relay  # the collector's batches, for this process's fan-out
    feeds = RemoteFeeds(hub, bus, settings.exchanges, settings.markets)
    feeds.max_markets_per_exchange = settings.max_markets_per_exchange
    # The history the collector writes, read here (SQLite on this machine; a server database for a team).
    history = open_history(settings.history_url, settings.history_retention_days, base=ROOT, mode=mode)

    def markets_offer() -> dict:
        offer = hub.offer()
        watchlist = settings.markets if settings.markets_from_cli else offer.get("watchlist", settings.markets)
        return {"watchlist": watchlist, "available": offer.get("available", {}),
                "listing_source": offer.get("listing_source", {}), "exchanges": exchanges,
                **({"recorded": offer["recorded"]} if "recorded" in offer else {})}

    metrics = Metrics(None, hub)  # feed counters are the collector's
    metrics.registry.register(guard.bad)
    _health_routes(app, feeds, metrics, problem=hub.problem)
    dashboard = Dashboard(app, socketio, hub, feeds, role="web", tasks=[hub.emit_loop])
    _page(app, socketio, dashboard, settings, mode, history, markets_offer)
    return dashboard


def _health_routes(app: Flask, feeds, metrics: Metrics, problem=lambda: "", also=dict) -> None:
    """`problem`: what else makes this process unhealthy, in words ("" when nothing: a web process's Redis and
    collector); `also`: more to say in the body (a collector's Redis: {"redis": "up" or why not})."""
    @app.get("/healthz")
    def healthz():
        """200 when every feed with markets to stream is live or quiet; 503 naming the failing ones."""
        statuses = feeds.status()
        summary = [{"exchange": s["exchange"], "state": s["state"], "reason": s["reason"],
                    "last_data_at": s.get("last_data_at")} for s in statuses]
        failing = [brief for brief, full in zip(summary, statuses)
                   if full["symbols"] and full["state"] not in HEALTHY_STATES]
        trouble = problem()
        ok = bool(statuses) and not failing and not trouble
        body = {"ok": ok, "feeds": summary, "failing": failing, **({"problem": trouble} if trouble else {}), **also()}
        return jsonify(body), 200 if ok else 503

    @app.get("/metrics")
    def prometheus():
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)


def _page(app: Flask, socketio: SocketIO, dashboard: Dashboard, settings: Settings, mode: str, history,
          markets_offer) -> None:
    """The page, its vendor files, the history API and the Socket.IO events of the browsers."""
    hub, feeds = dashboard.hub, dashboard.feeds
    event_limit = EventRateLimit(settings.subscribe_rate, settings.subscribe_burst)
    exchanges = {name: EXCHANGES[name].label for name in settings.exchanges}
    page_config = {"maxRows": settings.max_rows, "watchlist": settings.markets, "exchanges": exchanges,
                   "colours": {name: EXCHANGES[name].colour for name in settings.exchanges}, "mode": mode,
                   "emitIntervalMs": settings.emit_interval_ms,
                   "replay": settings.replay_info}

    app.register_blueprint(make_api(hub, history, markets_offer))

    @app.errorhandler(404)
    def not_found(error):
        # the API answers in JSON, an unknown endpoint too (a blueprint's own handler never sees a route not found)
        if request.path == "/api" or request.path.startswith("/api/"):
            return jsonify({"error": "no such endpoint (README, \"History and the API\")"}), 404
        return error

    @app.get("/")
    def index():
        return render_template("index.html", config={**page_config, "watchlist": markets_offer()["watchlist"]})

    @app.get("/vendor/<path:filename>")
    def vendor(filename):
        found = vendor_file(filename)
        if found is None:
            abort(404)
        root, relative = found
        return send_from_directory(root, relative)

    # Replies to one client go straight to it (ignore_queue): in a web process they need no trip through Redis,
    # and they still arrive while Redis is away.
    @socketio.on("connect")
    def connected(auth=None):
        hub.clients += 1
        sid = request.sid
        hub.follow(sid)  # the empty watch-set's room: the feeds' changes reach it
        # both the same objects for every client connecting meanwhile: encoded once (Fanout.send_shared)
        hub.fanout.send_shared(sid, "markets", markets_offer())
        hub.greet_feeds(lambda statuses: hub.fanout.send_shared(sid, "feeds", statuses))  # then only changes
        if dashboard.role == "web" and not hub.health.up:
            emit("service", hub.service(), ignore_queue=True)

    @socketio.on("subscribe")
    def subscribe(data=None):
        market, error = _market_from(data, "subscribe")
        if error:
            return error
        sid = request.sid
        watched = hub.watched_by(sid)
        if market not in watched and len(watched) >= settings.max_markets_per_client:
            return _reject("subscribe", f"at most {settings.max_markets_per_client} markets per client", market)
        with streaming:
            # refused here: no subscription at the exchange, no REST call, nothing kept (a web process asks what
            # the collector would answer; the collector checks again)
            why = feeds.refusal(market)
            if why is None:
                if hub.watch(sid, market):
                    hub.fanout.first_watcher(market)
                new = feeds.ensure(market)
        if why is not None:
            return _reject("subscribe", why, market)
        if new:
            dashboard.backfill_later(market)
        # Its new watch-set's room and its backfill together, before any batch can reach it (fanout.Fanout.join);
        # the backfill is encoded once for every client subscribing to the market this interval.
        hub.fanout.join(sid, hub.watched_by(sid), backfill=market)
        spread_row = hub.spread_of(market.partition(":")[2])
        if spread_row is not None:
            emit("spread", spread_row, ignore_queue=True)
        return {"ok": True, "market": market}

    @socketio.on("unsubscribe")
    def unsubscribe(data=None):
        market, error = _market_from(data, "unsubscribe")
        if error:
            return error
        if hub.unwatch(request.sid, market):
            release_later([market])
        hub.follow(request.sid)
        return {"ok": True, "market": market}

    @socketio.on("disconnect")
    def disconnected(reason=None):
        hub.clients -= 1
        event_limit.forget(request.sid)
        release_later(hub.forget_client(request.sid))

    # A market's watchers and its listener's subscription change together: a release decided on "nobody watches
    # it" never undoes a subscribe that came in between. (A web process releases nothing itself: the collector
    # lets a market go when no web process's lease names it.)
    streaming = contextlib.nullcontext() if dashboard.role == "web" else threading.Lock()

    def release_later(markets: list[str]) -> None:
        """Stop streaming these markets after settings.release_after_s, each unless someone watches it again by
        then."""
        if not markets or dashboard.role == "web":
            return

        def release():
            socketio.sleep(settings.release_after_s)
            for market in markets:
                with streaming:
                    if market not in hub.watchers:
                        feeds.release(market)
        socketio.start_background_task(release)

    @socketio.on_error_default
    def failed(error):  # a handler bug answers the client instead of vanishing
        log.exception("Socket.IO handler failed")
        emit("error", {"message": "internal error"}, ignore_queue=True)

    def _market_from(data, event):
        if not event_limit.allow(request.sid):
            return None, _reject(event, f"too many {event} events: at most {settings.subscribe_rate:g} a second")
        if not isinstance(data, dict):
            return None, _reject(event, 'payload must be an object like {"market": "coinbase:BTC-USD"}')
        try:
            exchange, symbol = parse_market(data.get("market"))
        except ValueError as bad:
            return None, _reject(event, str(bad), data.get("market"))
        if not feeds.enabled(exchange):
            return None, _reject(event, f"exchange {exchange!r} is not enabled on this server", data.get("market"))
        return f"{exchange}:{symbol}", None


def vendor_file(filename: str):
    """(allowed folder, path inside it) of the file /vendor/`filename` names, or None. The name is resolved first
    (a decoded "..", "//", a symlink), so only a file really inside an allowed folder is ever served."""
    if "\\" in filename or "\0" in filename:
        return None
    path = (NODE_MODULES / filename).resolve()
    for root in VENDOR_ROOTS:
        if path.is_relative_to(root) and path.is_file():
            return root, path.relative_to(root).as_posix()
    return None


def _reject(event: str, message: str, market=None) -> dict:
    reply = {"ok": False, "event": event, "message": message}
    if isinstance(market, str):
        reply["market"] = market[:80]
    emit("error", reply, ignore_queue=True)
    return reply
