"""History: every tick and gap, kept so a restarted server (and the API) can show the last hours.

The store sits behind a small interface (`HistoryStore`) so a server database can follow; `SQLiteHistory` is the
one built now: one file in WAL mode, written in batches by one writer task, so listeners never wait on disk.
A kill -9 loses at most the batch not yet written (`FLUSH_EVERY_S`), and WAL keeps the file intact.

A restarted server did not watch anything while it was down: the first new entry of each market the store already
holds is preceded by a gap from that market's last stored entry (`resumed`, wired by `gap_on_resume`), whose reason
says whether the last run stopped cleanly (a stop mark written by `close`) or not (a kill -9, a crash, a power cut).
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional, Protocol

from exchanges.tick import received_at

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.5
PRUNE_EVERY_S = 3600
TICK_COLUMNS = ("time", "received", "bid", "bid_size", "ask", "ask_size", "last", "last_size", "last_side", "empty")
_ENTRY_COLUMNS = ("market", "kind", *TICK_COLUMNS, "gap_from", "gap_to", "reason")
_INSERT = (f"INSERT INTO entries ({', '.join(_ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))})")
_GAP_AT = 3 + len(TICK_COLUMNS)  # where a selected row's gap_from is
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    market TEXT NOT NULL,
    kind TEXT NOT NULL,              -- 'tick' or 'gap'
    time INTEGER, received INTEGER NOT NULL,
    bid TEXT, bid_size TEXT, ask TEXT, ask_size TEXT, last TEXT, last_size TEXT, last_side TEXT,
    empty TEXT,                      -- the book sides empty then: NULL, 'bid', 'ask' or 'both'
    gap_from INTEGER, gap_to INTEGER, reason TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_market ON entries (market, received);
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value INTEGER);  -- 'stopped_at': the last clean stop, ms
"""
# The reason of the gap a restart leaves in each market (see SQLiteHistory.resumed), and of the one a market leaves
# while it was not streamed at all (released: nobody watched it).
STOPPED = "server stopped"
DOWN = "server was down (no clean shutdown)"
RELEASED = "not streamed: nobody watched it"


class HistoryStore(Protocol):
    def append(self, market: str, entry: dict) -> None: ...
    def flush(self) -> int: ...
    def recent(self, market: str, limit: int) -> list[dict]: ...
    def query(self, market: str, since: int, until: int, limit: int, after: int = 0) -> list[dict]: ...
    def markets(self) -> list[str]: ...
    def chart(self, market: str, since: int, until: int, step_ms: int) -> tuple[list, list]: ...
    def prune(self, before: int) -> int: ...
    def resumed(self, market: str, entry: dict) -> Optional[dict]: ...
    def released(self, market: str, last: Optional[int]) -> None: ...
    def close(self) -> None: ...


def sqlite_path(url: str) -> Path:
    """'sqlite:///data/history.sqlite3' (relative) or 'sqlite:////abs/path' -> a path."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"HISTORY_URL {url!r}: only sqlite:///PATH is supported for now")
    return Path(url[len("sqlite:///"):])


class SQLiteHistory:
    def __init__(self, path, retention_days: float = 7.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_ms = int(retention_days * 86_400_000)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commit, never the file
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if "empty" not in columns:  # a store from before empty sides were told apart: they were never stored
            self._db.execute("ALTER TABLE entries ADD COLUMN empty TEXT")
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._pending: deque = deque()
        self._stopping = threading.Event()
        self.written = 0
        # Only the process that writes (its writer task runs, or it asked `resumed`) marks a clean stop: a web
        # process of a team opens the same file to read it and must not speak for the collector.
        self._writes = False
        self._last_stop: Optional[str] = None  # why the previous run ended: STOPPED or DOWN, read once
        self._resumed: set = set()             # markets whose restart gap was decided
        self._released: dict = {}              # market -> its last entry's received ms when it was let go

    def append(self, market: str, entry: dict) -> None:
        self._pending.append((market, entry))  # deque.append is thread-safe; the writer drains it

    def flush(self) -> int:
        """Write everything pending in one transaction; returns how many entries."""
        rows = []
        while self._pending:
            market, entry = self._pending.popleft()
            if entry.get("kind") == "gap":
                rows.append((market, "gap", None, entry["to"], *([None] * (len(TICK_COLUMNS) - 2)), entry["from"],
                             entry["to"], entry["reason"]))
            else:
                rows.append((market, "tick", *(entry.get(name) for name in TICK_COLUMNS), None, None, None))
        if rows:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
            self.written += len(rows)
        return len(rows)

    def recent(self, market: str, limit: int) -> list[dict]:
        rows = self._select("WHERE market = ? ORDER BY id DESC LIMIT ?", (market, limit))
        return rows[::-1]

    def query(self, market: str, since: int, until: int, limit: int, after: int = 0) -> list[dict]:
        return self._select("WHERE market = ? AND received >= ? AND received <= ? AND id > ? ORDER BY id LIMIT ?",
                            (market, since, until, after, limit))

    def markets(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT market FROM entries ORDER BY market")]

    def chart(self, market: str, since: int, until: int, step_ms: int) -> tuple[list, list]:
        """Downsampled for a chart: the last tick of each `step_ms` bucket as [received, bid, ask, last, time]
        (epoch ms; `time` the exchange's, or None), and the gaps as [from, to, reason]. The aggregation runs in
        SQLite, so a week is as cheap to send as a minute."""
        with self._lock:
            points = self._db.execute(
                "SELECT e.received, e.bid, e.ask, e.last, e.time FROM entries e JOIN ("
                " SELECT max(id) AS id FROM entries WHERE market = ? AND kind = 'tick' AND received BETWEEN ? AND ?"
                " GROUP BY received / ?) last_of_bucket ON e.id = last_of_bucket.id ORDER BY e.id",
                (market, since, until, step_ms)).fetchall()
            gaps = self._db.execute("SELECT gap_from, gap_to, reason FROM entries WHERE market = ? AND kind = 'gap'"
                                    " AND received BETWEEN ? AND ? ORDER BY id", (market, since, until)).fetchall()
        return [list(point) for point in points], [list(gap) for gap in gaps]

    def prune(self, before: int) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM entries WHERE received < ?", (before,)).rowcount

    def resumed(self, market: str, entry: dict) -> Optional[dict]:
        """The gap this run's first entry of `market` closes: `{"exchange", "symbol", "from": ms of the market's
        last stored entry, "to": the entry's received ms, "reason": STOPPED or DOWN}`, asked before the entry is
        published; None for a market the store never held, and for every later entry (one gap per market per run,
        and one per time it was `released` and streamed again: reason RELEASED).
        """
        if market in self._resumed:
            return None
        with self._lock:
            if market in self._resumed:
                return None
            self._resumed.add(market)
            let_go = market in self._released
            released_last = self._released.pop(market, None)
            reason = RELEASED if let_go else self._previous_stop()
            last = self._db.execute("SELECT max(received) FROM entries WHERE market = ?", (market,)).fetchone()[0]
        if released_last is not None:  # its last entries may still wait for the writer
            last = max(last or released_last, released_last)
        until = received_at(entry)
        if last is None or until is None or until <= last:
            return None
        exchange, _, symbol = market.partition(":")
        log.info("%s: gap %d ms (%s)", market, until - last, reason)
        return {"exchange": exchange, "symbol": symbol, "from": last, "to": until, "reason": reason}

    def released(self, market: str, last: Optional[int]) -> None:
        """`market` is no longer streamed (nobody watched it); `last`: its last entry's received ms, if any. When it
        is streamed again, its first entry comes after a RELEASED gap: the time it was not watched never reads as
        adjacent rows."""
        with self._lock:
            if market not in self._resumed:  # no entry this run yet: the restart's own gap is still to come
                return
            self._resumed.discard(market)
            self._released[market] = last

    def _previous_stop(self) -> str:
        """How the previous run ended (STOPPED when its close left a stop mark, DOWN otherwise); the mark is taken
        away, so a kill of this run is not mistaken for a clean stop. The caller holds the lock."""
        if self._last_stop is None:
            self._writes = True
            mark = self._db.execute("SELECT value FROM marks WHERE name = 'stopped_at'").fetchone()
            self._db.execute("DELETE FROM marks WHERE name = 'stopped_at'")
            self._last_stop = STOPPED if mark is not None else DOWN
        return self._last_stop

    def run(self, sleep=time.sleep) -> None:
        """The writer: flush every FLUSH_EVERY_S, prune past the retention every hour, until closed."""
        with self._lock:
            self._previous_stop()
        next_prune = 0.0
        while not self._stopping.is_set():
            sleep(FLUSH_EVERY_S)
            try:
                self.flush()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    pruned = self.prune(time.time_ns() // 1_000_000 - self.retention_ms)
                    if pruned:
                        log.info("history: pruned %d entries older than the retention", pruned)
            except sqlite3.Error:  # a full disk must not end the writer: keep the batch for the next try
                log.exception("history: write failed")

    def close(self) -> None:
        """Write what is pending; the writing process also marks the stop as clean (see `resumed`)."""
        self._stopping.set()
        self.flush()
        with self._lock:
            if self._writes:
                self._db.execute("INSERT OR REPLACE INTO marks (name, value) VALUES ('stopped_at', ?)",
                                 (time.time_ns() // 1_000_000,))
            self._db.close()

    def _select(self, where: str, parameters: tuple) -> list[dict]:
        with self._lock:
            cursor = self._db.execute(f"SELECT id, market, kind, {', '.join(TICK_COLUMNS)}, gap_from, gap_to, reason"
                                      f" FROM entries {where}", parameters)
            return [_entry(row) for row in cursor.fetchall()]


def _entry(row) -> dict:
    """A stored row in the shape the hub streams: a tick, or a gap."""
    entry_id, market, kind = row[0], row[1], row[2]
    exchange, _, symbol = market.partition(":")
    if kind == "gap":
        return {"kind": "gap", "id": entry_id, "exchange": exchange, "symbol": symbol, "from": row[_GAP_AT],
                "to": row[_GAP_AT + 1], "reason": row[_GAP_AT + 2]}
    tick = {"id": entry_id, "exchange": exchange, "symbol": symbol}
    tick.update(zip(TICK_COLUMNS, row[3:_GAP_AT]))
    return tick


def gap_on_resume(history: HistoryStore, publish: Callable[[dict], None],
                  publish_gap: Callable[[dict], None]) -> Callable[[dict], None]:
    """`publish` (a tick -> the hub), preceded for each market's first tick of this run by the gap the restart
    left (`history.resumed`), published as any gap: stored, streamed, in every page's running list."""
    def publish_after_gap(tick: dict) -> None:
        gap = history.resumed(f"{tick['exchange']}:{tick['symbol']}", tick)  # after the first: one set lookup
        if gap is not None:
            publish_gap(gap)
        publish(tick)
    return publish_after_gap


def open_history(url: Optional[str], retention_days: float, base: Path = Path("."),
                 mode: Optional[str] = None) -> Optional[SQLiteHistory]:
    """The store HISTORY_URL names (a relative path is relative to `base`), or None when history is off.
    With a `mode` (live or replay), a store that holds the other mode's ticks is refused (StoreModeError)."""
    if not url:
        return None
    path = sqlite_path(url)
    store = SQLiteHistory(path if path.is_absolute() else base / path, retention_days)
    if mode is not None:
        claim(store, mode)
    return store


# Which mode wrote a store: SQLite's application_id, a number in the file's header (not a table, so the schema is
# untouched). Live and replay each keep their own store (config.DEFAULT_HISTORY_URL); this stamp makes sure a
# HISTORY_URL given to both cannot mix them either: replay ticks are never served as live, nor live as replay.
STORE_MODES = {"live": int.from_bytes(b"DBLV", "big"), "replay": int.from_bytes(b"DBRP", "big")}


class StoreModeError(ValueError):
    """The store holds another mode's ticks, or ticks of unknown mode."""


def claim(store: SQLiteHistory, mode: str) -> None:
    """Keep `store` to `mode`'s ticks: a new (empty) store is stamped with the mode; one stamped with the other mode,
    or an unstamped one holding entries (kept before live and replay were kept apart: perhaps both), is closed and
    refused with a reason."""
    wanted = STORE_MODES[mode]
    with store._lock:
        stamp = store._db.execute("PRAGMA application_id").fetchone()[0]
        if stamp == wanted:
            return
        if stamp == 0 and store._db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is None:
            store._db.execute(f"PRAGMA application_id = {wanted:d}")
            return
    store.close()
    holder = {number: name for name, number in STORE_MODES.items()}.get(stamp)
    if holder is not None:
        why = f"it holds {holder} ticks, and {mode} never reads them"
    elif stamp == 0:
        why = (f"it was written before live and replay were kept apart, so it may hold both, and {mode} does not read "
               f"it (to keep it as {mode} history after checking: sqlite3 FILE 'PRAGMA application_id = {wanted}')")
    else:
        why = f"it is not a dashboard history (application_id {stamp})"
    raise StoreModeError(f"history {store.path}: {why}. Leave HISTORY_URL unset (each mode keeps its own store), "
                         f"or give it a path with {{mode}} in it, or one of its own for {mode}.")
