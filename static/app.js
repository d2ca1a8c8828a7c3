// The dashboard page: a watchlist of market panels, each a running list of ticks, plus a badge per feed.
// Text from outside (exchange frames, server messages) reaches the DOM only through textContent.
import { io } from "/vendor/socket.io-client/dist/socket.io.esm.min.js";
import { PairCharts } from "./charts.js";
import { Board } from "./board.js";
import {
  Alignment, clockTitle, element, emptyMark, fillSide, inViewWatcher, seconds, setAttribute, setText, startedAgain,
  utc,
} from "./cells.js";
import { dropSiblingWildcards } from "./styles.js";

window.__droppedRules = dropSiblingWildcards(); // before any row exists (static/styles.js says why)
const config = JSON.parse(document.getElementById("page-config").textContent);
const PAIR = /^[A-Z0-9]{1,15}-[A-Z0-9]{1,15}$/;
const STORAGE_KEY = `dashboard.watchlist.${config.mode}`;
const FEED_COLOURS = {
  live: "text-bg-success", quiet: "text-bg-info", connecting: "text-bg-secondary", idle: "badge-idle",
  reconnecting: "text-bg-warning", stale: "text-bg-warning", error: "text-bg-danger", stopped: "text-bg-dark",
};
const MARKET_COLOURS = {
  subscribing: "text-bg-secondary", subscribed: "text-bg-info", streaming: "text-bg-success",
  waiting: "text-bg-warning", error: "text-bg-danger",
};
const HEALTHY = new Set(["live", "quiet"]);
// a feed in trouble: neither healthy nor idle (idle: nothing subscribed on it, nothing expected)
const inTrouble = (state) => !HEALTHY.has(state) && state !== "idle";

const panelsEl = document.getElementById("panels");
const template = document.getElementById("panel-template");
const exchangeSelect = document.getElementById("exchange");
const pairInput = document.getElementById("pair");
const pairList = document.getElementById("pairs");
const formMessage = document.getElementById("form-message");
const feedsEl = document.getElementById("feeds");
const banner = document.getElementById("connection-banner");
const geoBanner = document.getElementById("geo-banner");
const serviceBanner = document.getElementById("service-banner");
const details = document.getElementById("feed-details");

const panels = new Map(); // market -> panel state
const board = new Board(document.getElementById("board"), config.exchanges);
const charts = new PairCharts(document.getElementById("charts"), document.getElementById("chart-template"),
  config.exchanges, config.colours, () => schedule(), { replay: config.mode === "replay" });
let available = {};
let feedStates = {};
let feedList = null; // null until the full copy sent on connect: a change that overtook it is not applied
let clockOffset = 0; // server clock - browser clock, from the feeds' "now"
let detailsFor = null; // the exchange whose feed details are open
const spreads = new Map(); // pair -> its latest spread row from the server, with `at`: when it came (server clock)

document.getElementById("mode").textContent = config.mode.toUpperCase();
// Replay says what it is: which recordings (their exchange and the days they hold) at what pace. One line, and the
// list of recordings behind it.
function renderReplayBanner() {
  const el = document.getElementById("replay-banner");
  if (config.mode !== "replay") return;
  const { speed, recordings = [] } = config.replay ?? {};
  const span = (r) => {
    if (r.from == null) return "";
    const [from, to] = [utc(r.from).date, utc(r.to ?? r.from).date];
    return from === to ? from : `${from} to ${to}`;
  };
  const dates = recordings.flatMap((r) => (r.from == null ? [] : [r.from, r.to ?? r.from])).sort((a, b) => a - b);
  const venues = new Set(recordings.map((r) => r.exchange));
  const pace = speed ? `at ${speed}× the recorded pace` : speed === 0 ? "as fast as it is taken" : "";
  const line = document.createElement("summary");
  line.textContent = "Replay of recorded data, not live prices" + (recordings.length
    ? `: ${recordings.length} recordings of ${venues.size} exchanges` +
      (dates.length ? `, ${span({ from: dates[0], to: dates[dates.length - 1] })}` : "") : "") +
    (pace ? `, ${pace}, from the start again at the end` : "") + ".";
  const list = document.createElement("ul");
  list.className = "mb-0";
  for (const r of recordings) {
    const item = document.createElement("li");
    item.textContent = `${config.exchanges[r.exchange] ?? r.exchange}: ${r.file}${r.from == null ? "" : ` (${span(r)}, UTC)`}`;
    list.append(item);
  }
  const details = document.createElement("details");
  details.append(line, list);
  el.replaceChildren(details);
  el.classList.remove("d-none");
}
renderReplayBanner();
for (const [name, label] of Object.entries(config.exchanges)) {
  exchangeSelect.append(new Option(label, name));
}
const EVERY = "*"; // "every exchange that lists the pair"
exchangeSelect.append(new Option("Every exchange listing it", EVERY));

// --- the theme: the system's (prefers-color-scheme) until the header's toggle picks one, remembered here ------------
const THEME_KEY = "dashboard.theme";
const themeButton = document.getElementById("theme-toggle");
const systemDark = matchMedia("(prefers-color-scheme: dark)");
function storedTheme() {
  try {
    const theme = localStorage.getItem(THEME_KEY);
    return theme === "dark" || theme === "light" ? theme : null;
  } catch (_) { return null; }
}
const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
function themeCharts() { // the charts draw on a canvas: they get the theme's colours, not its CSS
  const options = { layout: { background: { color: "transparent" }, textColor: cssVar("--bs-body-color") },
    grid: { vertLines: { color: cssVar("--bs-border-color-translucent") },
      horzLines: { color: cssVar("--bs-border-color-translucent") } } };
  for (const entry of charts.charts.values()) entry.chart.applyOptions(options);
}
function applyTheme() {
  const theme = storedTheme() ?? (systemDark.matches ? "dark" : "light");
  document.documentElement.dataset.bsTheme = theme;
  themeButton.textContent = theme === "dark" ? "Light" : "Dark";
  themeButton.title = `Switch to the ${theme === "dark" ? "light" : "dark"} theme (remembered in this browser)`;
  themeButton.setAttribute("aria-pressed", String(theme === "dark"));
  themeCharts();
}
themeButton.addEventListener("click", () => {
  localStorage.setItem(THEME_KEY, document.documentElement.dataset.bsTheme === "dark" ? "light" : "dark");
  applyTheme();
});
systemDark.addEventListener("change", applyTheme);
applyTheme();

// --- watchlist persistence ---------------------------------------------------------------------------------
function loadWatchlist() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (Array.isArray(stored)) return stored.filter((m) => typeof m === "string");
  } catch (_) { /* unreadable storage: fall back to the server's watchlist */ }
  return config.watchlist;
}
function saveWatchlist() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify([...panels.keys()]));
  syncUrl();
}
// A shareable layout: ?markets=coinbase:BTC-USD,kraken:BTC-USD opens exactly those panels, in that order, in place of
// the stored watchlist; the page keeps the URL's markets current as panels are added, closed or reordered.
const validMarket = (m) => {
  const [exchange, pair, ...rest] = m.split(":");
  return !rest.length && Object.hasOwn(config.exchanges, exchange) && PAIR.test(pair ?? "");
};
function urlWatchlist() {
  const param = new URLSearchParams(location.search).get("markets");
  if (param === null) return null;
  // the pair as the form and the server take it: "binance:nkn-usdt" is binance:NKN-USDT
  const entries = param.split(",").map((m) => m.trim().replace(/:[^:]*$/, (pair) => pair.toUpperCase())).filter(Boolean);
  const valid = [...new Set(entries.filter(validMarket))];
  const invalid = entries.filter((m) => !validMarket(m));
  const note = document.getElementById("url-note");
  note.textContent = invalid.length ? `Ignored in the link's markets (not exchange:BASE-QUOTE on an exchange here): ` +
    invalid.join(", ") : "";
  note.classList.toggle("d-none", !invalid.length);
  return valid;
}
function syncUrl() {
  const params = new URLSearchParams(location.search);
  params.delete("markets");
  const rest = params.toString();
  // the markets are ours (validated): written as they are, commas and colons readable in the address bar
  const query = `?markets=${[...panels.keys()].join(",")}${rest ? "&" + rest : ""}`;
  history.replaceState(history.state, "", query + location.hash);
}

// --- formatting ----------------------------------------------------------------------------------------------
// A running list's rows are kept and filled in place: a draw puts each entry, newest first, in the row at its place,
// so only text changes (a row put on top re-styled, re-laid out and re-painted every row below it). A row is
// rebuilt only to change its kind (a tick, a gap, a restart).
const rowKind = (entry) => (entry.kind === "gap" || entry.kind === "restart" ? entry.kind : "tick");
function newRow(kind) {
  const tr = element("tr", kind === "tick" ? "" : `${kind}-row`);
  tr.kind = kind;
  if (kind === "tick") {
    tr.append(element("td"), ...["bid", "ask", "last"].map((side) => element("td", `text-end ${side}`)));
  } else {
    const note = element("td");
    note.colSpan = 4;
    tr.append(note);
  }
  return tr;
}
const entryRow = (entry, panel) => fillRow(newRow(rowKind(entry)), entry, panel);
function fillRow(tr, entry, panel) {
  tr.entry = entry;
  setAttribute(tr, "data-seq", String(entry.seq));
  if (entry.kind === "gap") setText(tr.cells[0], `no data ${hms(entry.from)}–${hms(entry.to)} UTC: ${entry.reason}`);
  else if (entry.kind === "restart") setText(tr.cells[0], "replay: the recording starts again from its beginning here");
  else fillTickRow(tr, entry, panel);
  return tr;
}
// An empty book side (named in the tick's "empty") shows as empty, never as an old price; a side not known yet
// (only trades so far) as a dash (cells.fillSide). Each clock's date is said once, above the panel's rows
// (clock-dates); a row shows its date only when it is not that one (a panel that ran past midnight).
function fillTickRow(tr, tick, panel) {
  const [timeCell, bid, ask, last] = tr.cells;
  const exchangeTime = tick.time != null;
  const clock = exchangeTime ? "exchange" : "received";
  const when = utc(exchangeTime ? tick.time : tick.received);
  setText(timeCell, when.date === panel.dates[clock] ? when.time : `${when.date} ${when.time}`);
  setAttribute(timeCell, "data-time-source", clock);
  const rest = tick.source === "rest";
  setAttribute(timeCell, "title",
    clockTitle(when, exchangeTime) + (rest ? "; filled from the exchange's REST API when the panel opened" : ""));
  timeCell.classList.toggle("time-received", !exchangeTime);
  timeCell.classList.toggle("from-rest", rest);
  for (const [td, side] of [[bid, "bid"], [ask, "ask"], [last, "last"]]) fillSide(td, tick, side, panel.alignment);
}
// The dates of a panel's clocks, from the newest rows of each: "exchange clock 2021-04-17 · received 2026-11-30".
function setClockDates(panel, entries) {
  let changed = false;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (rowKind(e) !== "tick") continue;
    const clock = e.time != null ? "exchange" : "received";
    if (!panel.dates[clock]) { panel.dates[clock] = utc(e.time ?? e.received).date; changed = true; }
    if (panel.dates.exchange && panel.dates.received) break;
  }
  if (!changed) return;
  const { exchange, received } = panel.dates;
  let text;
  if (exchange && received) {
    text = exchange === received ? `${exchange}, exchange clock and receipt (rcv)`
      : `exchange clock ${exchange} · received (rcv) ${received}`;
  } else {
    text = exchange ? `exchange clock ${exchange}` : `received (rcv) ${received}`;
  }
  panel.clockDates.textContent = text;
}

function hms(ms) {
  return utc(ms).time;
}
// In replay, a recording played again from its start sends its first times again: a row says so, between the last
// row of one pass and the first of the next (rows stay in the order they came, so older times are now on top).
// (The charts break their lines there: cells.startedAgain.)
function markRestarts(panel, fresh) {
  if (config.mode !== "replay") return fresh;
  const marked = [];
  for (const entry of fresh) {
    if (entry.kind !== "gap" && entry.time != null) {
      if (startedAgain(panel.lastTime, entry.time)) {
        marked.push({ kind: "restart", seq: entry.seq - 0.5 });
      }
      panel.lastTime = entry.time;
    }
    marked.push(entry);
  }
  return marked;
}
// --- panels --------------------------------------------------------------------------------------------------
function addPanel(market, { reveal = false } = {}) {
  if (panels.has(market)) return panels.get(market);
  const [exchange, pair] = market.split(":");
  const el = template.content.firstElementChild.cloneNode(true);
  el.dataset.market = market;
  el.dataset.exchange = exchange;
  el.querySelector(".exchange").textContent = config.exchanges[exchange] ?? exchange;
  el.querySelector(".pair").textContent = pair;
  const close = el.querySelector(".close-panel");
  close.setAttribute("aria-label", `Close ${config.exchanges[exchange] ?? exchange} ${pair}`); // which one, aloud
  close.addEventListener("click", () => removePanel(market));
  const download = el.querySelector(".download"); // a real link: its href is always there, kept current each second
  download.download = `${exchange}-${pair}.csv`;
  panelsEl.append(el);
  const panel = { market, exchange, el, tbody: el.querySelector("tbody"), lastSeq: 0, ready: false, early: [], download,
    queue: [], dates: {}, clockDates: el.querySelector(".clock-dates"), emptyState: el.querySelector(".empty-state"),
    alignment: new Alignment(el.querySelector("table")), entries: [], shown: Math.min(SHOWN_ROWS, config.maxRows),
    scroller: el.querySelector(".rows-scroll"), visible: false, drawnAt: -Infinity };
  panel.scroller.addEventListener("scroll", () => { // read in the scroll event, after layout: no layout forced
    panel.scrolled = panel.scroller.scrollTop > 0;
    showMore(panel);
  }, { passive: true });
  sized.set(panel.scroller, panel).set(panel.tbody, panel);
  sizes.observe(panel.scroller);
  sizes.observe(panel.tbody);
  visibility.observe(el);
  setCsvHref(panel);
  panels.set(market, panel);
  board.sync([...panels.keys()]);
  setMarketState(panel, { state: "subscribing", reason: "" });
  applyFeedState(panel);
  saveWatchlist();
  renderSpreads();
  charts.ensure(pair, Date.now() + clockOffset);
  themeCharts();
  if (socket.connected) socket.emit("subscribe", { market });
  schedule(panel);
  if (reveal) { // one the user just added: its line and its panel come into sight, briefly marked
    for (const target of [el, board.lines.get(market)?.tr]) {
      target?.classList.add("flash");
      setTimeout(() => target?.classList.remove("flash"), 800);
    }
    board.lines.get(market)?.tr.scrollIntoView({ block: "nearest" });
  }
  return panel;
}
function removePanel(market) {
  const panel = panels.get(market);
  if (!panel) return;
  panel.el.remove();
  for (const target of [panel.scroller, panel.tbody]) { sizes.unobserve(target); sized.delete(target); }
  visibility.unobserve(panel.el);
  panels.delete(market);
  board.sync([...panels.keys()]);
  saveWatchlist();
  renderSpreads();
  const pair = market.split(":")[1];
  if (![...panels.keys()].some((m) => m.split(":")[1] === pair)) charts.remove(pair);
  if (socket.connected) socket.emit("unsubscribe", { market });
}
function setMarketState(panel, { state, reason }) {
  panel.el.dataset.state = state;
  drawBadge(panel);
  const reasonEl = panel.el.querySelector(".market-reason");
  reasonEl.textContent = reason || "";
  reasonEl.classList.toggle("d-none", !reason);
  reasonEl.classList.toggle("text-danger", state === "error");
  schedule(panel);
}
function applyFeedState(panel) {
  const why = feedDown(panel.exchange, true);
  const down = Boolean(why);
  panel.el.classList.toggle("feed-down", down);
  const line = panel.el.querySelector(".feed-reason");
  line.textContent = why;
  line.classList.toggle("d-none", !down);
  drawBadge(panel);
  schedule(panel);
}
// The market's badge: the server's state for it, or "feed down" while its exchange's feed is (no market can be
// subscribed then: "subscribing" would stay for ever). The feed's reason is said once, on the line under it.
function drawBadge(panel) {
  const state = panel.el.dataset.state;
  const down = panel.el.classList.contains("feed-down") && state !== "error";
  const badge = panel.el.querySelector(".market-state");
  badge.className = `badge market-state ${down ? "text-bg-warning" : MARKET_COLOURS[state] ?? "text-bg-secondary"}`;
  badge.textContent = down ? "feed down" : state;
  badge.title = down ? `this market: ${state}; its exchange's feed is down` : "";
}
// Why a market shows no quote yet, in words: the server's reason (not listed, waiting for its first update ...), the
// feed's trouble, or simply nothing yet.
function whyEmpty(panel) {
  const state = panel.el.dataset.state;
  const reason = panel.el.querySelector(".market-reason").textContent;
  if (state === "error") return reason || "refused";
  const feed = feedStates[panel.exchange];
  if (feed && inTrouble(feed.state)) { // why: on the panel's feed line and the banner
    return `waiting for the ${feed.label} feed (${feed.state})`;
  }
  if (state === "waiting") return `waiting: ${reason || "no update from the exchange yet"}`;
  if (state === "subscribing") return "no data yet: subscribing…";
  return reason ? `no data yet: ${reason}` : "no data yet";
}

// --- drawing: at most once per animation frame ---------------------------------------------------------------
// Events only queue what they bring; a draw in an animation frame renders it, each part at its own cadence (every
// frame drawn re-lays out and repaints: 20 panels each on its own clock meant a frame every few ms). The running
// lists with something queued are drawn every LISTS_EVERY_MS, PANELS_PER_FRAME of them a frame in the frames that
// follow, the board every BOARD_EVERY_MS (it is read, not watched tick by tick), the charts every CHARTS_EVERY_MS
// (a point a second). Lists and charts out of view wait: a list is drawn every OFF_SCREEN_EVERY_MS, a chart once it
// comes into view (one scrolled into view is drawn in the next frame). A hidden tab draws nothing: each
// panel's queue keeps at most a few screens of entries (the rest would be cut by maxRows anyway).
const LISTS_EVERY_MS = 250;
const OFF_SCREEN_EVERY_MS = 2000; // a list out of view: kept current for find-in-page and a glance, not every 250 ms
const BOARD_EVERY_MS = 100;
const CHARTS_EVERY_MS = 500;
const SPREADS_EVERY_MS = 250;
const PANELS_PER_FRAME = 1; // more a frame made frames of 100-150 ms at 20 panels x10 (bench/memory.py)
let listsCycle = null; // the lists of the cycle under way not drawn yet, or null
const drawnAt = { lists: -Infinity, board: -Infinity, charts: -Infinity, spreads: -Infinity };
const spreadsView = { visible: false }; // the spread table in view (observed where it is drawn)
const dirty = new Set();
let boardDirty = false;
let drawPending = false;
let laterTimer = null, laterAt = 0;
function schedule(panel) {
  if (panel) dirty.add(panel);
  boardDirty = true;
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(() => draw());
  }
}
function draw(all = false) {
  drawPending = false;
  const now = performance.now();
  let wait = Infinity;
  // a part with something to draw is drawn when it is due (or always, when `all`), and then waits its time; one
  // not yet due books the frame for it
  const due = (part, every, pending) => {
    if (!pending) return false;
    const left = drawnAt[part] + every - now;
    if (all || left <= 0) { drawnAt[part] = now; return true; }
    wait = Math.min(wait, left);
    return false;
  };
  // a cycle of due lists, PANELS_PER_FRAME a frame (one frame drawing 20 lists was a long task of its own)
  const ready = (panel) => {
    if (!panel.queue.length) return false;
    if (all || panel.visible) return true;
    const left = panel.drawnAt + OFF_SCREEN_EVERY_MS - now;
    if (left > 0) wait = Math.min(wait, left);
    return left <= 0;
  };
  const queued = [...dirty].filter(ready);
  if (listsCycle === null && queued.length && due("lists", LISTS_EVERY_MS, true)) listsCycle = queued;
  const drawing = new Set(listsCycle ? listsCycle.splice(0, all ? listsCycle.length : PANELS_PER_FRAME) : []);
  if (listsCycle && !listsCycle.length) listsCycle = null;
  for (const panel of dirty) {
    if (!panels.has(panel.market)) { dirty.delete(panel); continue; }
    if (panel.queue.length && !drawing.has(panel) && !all) continue;
    if (panel.queue.length) {
      render(panel, panel.queue);
      panel.queue = [];
      panel.drawnAt = now;
    }
    const empty = panel.tbody.rows.length === 0;
    setText(panel.emptyState, empty ? whyEmpty(panel) : "");
    panel.emptyState.classList.toggle("d-none", !empty);
    dirty.delete(panel);
  }
  if (listsCycle) wait = 0; // the rest of this cycle's lists: the next frame
  if (due("charts", CHARTS_EVERY_MS, charts.due || all)) charts.flush(null, all); // `all`: those out of view too
  if (due("board", BOARD_EVERY_MS, boardDirty || board.flashing.size > 0)) { drawBoard(); boardDirty = false; }
  // the spread table as a list: it was built again in every frame a spread row came, out of view below 20 panels
  const spreadsEvery = spreadsView.visible ? SPREADS_EVERY_MS : OFF_SCREEN_EVERY_MS;
  if (due("spreads", spreadsEvery, spreadsDirty)) renderSpreads();
  if (wait === 0) {
    schedule();
  } else if (wait < Infinity && (laterTimer === null || now + wait < laterAt)) { // a frame once the next part is due
    clearTimeout(laterTimer);
    laterAt = now + wait;
    laterTimer = setTimeout(() => { laterTimer = null; schedule(); }, wait);
  }
}
window.__flush = () => draw(true); // the tests: everything queued, drawn now
function drawBoard() {
  board.draw({
    now: serverNow(),
    why: (market) => whyEmpty(panels.get(market)),
    down: (exchange) => feedDown(exchange, true), // a dimmed line's title says why, as the panel's line does
    best: (pair) => { // the server's spread row, while its venues' feeds are up, when more than one venue quotes
      const row = spreads.get(pair);
      if (!row || row.venues.length < 2) return null;
      const bid = row.best_bid && !feedDown(row.best_bid.exchange) ? row.best_bid.exchange : null;
      const ask = row.best_ask && !feedDown(row.best_ask.exchange) ? row.best_ask.exchange : null;
      return { bid, ask };
    },
  });
}
// Render one batch in one DOM update: newest on top, at most maxRows rows.
// A panel keeps its last maxRows entries (newest first); the page holds only the newest SHOWN_ROWS of them as rows,
// MORE_ROWS more each time the list is scrolled to its end (or when they do not fill it): every row is laid out and
// painted at each draw, seen or not, so 20 panels of 500 rows took most of a frame. A wide screen's list shows 3-4
// rows; 10 fill it twice over, and halved the long tasks of 20 panels against 20 rows.
const SHOWN_ROWS = 10;
const MORE_ROWS = 20;
function render(panel, ticks) {
  const replacing = panel.replacing; // a backfill: its entries fill the rows there are, from the top
  if (replacing) forgetRows(panel);
  // in seq order, whatever order they were queued in (an older entry never goes on top of a newer one), and each
  // once: a backfill and a batch that overlap it can meet in one queue
  const sorted = ticks.filter((t) => t.seq > panel.lastSeq).sort((a, b) => a.seq - b.seq)
    .filter((t, i, all) => i === 0 || t.seq !== all[i - 1].seq);
  if (!sorted.length) { if (replacing) removeRowsFrom(panel, 0); return; }
  panel.lastSeq = sorted[sorted.length - 1].seq;
  const fresh = markRestarts(panel, sorted);
  setClockDates(panel, fresh);
  const newest = fresh.slice(-config.maxRows).reverse();
  panel.entries = newest.concat(panel.entries).slice(0, config.maxRows);
  if (!panel.scrolled || replacing) {
    fillRows(panel, 0, Math.min(panel.shown, panel.entries.length));
    return;
  }
  // scrolled down to older rows: the new ones are put on top, and the browser keeps the rows being read where they
  // are (scroll anchoring); filled in place, they would change under the reader's eyes
  const fragment = document.createDocumentFragment();
  for (const entry of newest.slice(0, panel.shown)) fragment.append(entryRow(entry, panel));
  panel.tbody.prepend(fragment);
  removeRowsFrom(panel, panel.shown);
}
// Rows `from` to `to` (not included) show entries `from` to `to`, in the rows there are (new ones added at the end
// in one insertion); the rows past `to` go.
function fillRows(panel, from, to) {
  const rows = panel.tbody.rows;
  const count = rows.length;
  const added = document.createDocumentFragment();
  for (let i = from; i < to; i++) {
    const entry = panel.entries[i];
    if (i >= count) { added.append(entryRow(entry, panel)); continue; }
    const row = rows[i];
    if (row.entry === entry) continue;
    if (row.kind === rowKind(entry)) fillRow(row, entry, panel);
    else row.replaceWith(entryRow(entry, panel));
  }
  panel.tbody.append(added);
  removeRowsFrom(panel, to);
}
function removeRowsFrom(panel, index) { // in one removal, not one at a time
  const rows = panel.tbody.rows;
  if (rows.length <= index) return;
  const past = document.createRange();
  past.setStartBefore(rows[index]);
  past.setEndAfter(rows[rows.length - 1]);
  past.deleteContents();
}
// Scrolled near the end of what is shown, or rows too few to fill their list: the next older entries become rows.
// Also when a list or its rows change size (read after layout, in the observer: no layout forced in a draw).
const sized = new Map(); // a list's scroller or tbody -> its panel
const sizes = new ResizeObserver((changes) => {
  for (const panel of new Set(changes.map((change) => sized.get(change.target)))) if (panel) showMore(panel);
});
// Whether a panel is in view (see draw()); one coming into view is drawn at once.
const visibility = inViewWatcher((el) => {
  const panel = panels.get(el.dataset.market);
  return panel?.el === el ? panel : null; // not a closed panel's element, whatever was added since
}, (panel) => { if (panel.queue.length) schedule(panel); });
function showMore(panel) {
  const scroller = panel.scroller;
  if (scroller.scrollTop + scroller.clientHeight < scroller.scrollHeight - 100) return;
  const from = panel.tbody.rows.length;
  if (from >= panel.entries.length) return;
  panel.shown = Math.min(config.maxRows, panel.shown + MORE_ROWS);
  fillRows(panel, from, Math.min(panel.shown, panel.entries.length));
}

function setCsvHref(panel) { // the last 24 hours, as of now
  const since = Math.max(0, Math.floor(Date.now() + clockOffset - 86_400_000));
  panel.download.href = `/api/ticks.csv?${new URLSearchParams({ market: panel.market, from: since, limit: 100000 })}`;
}

// --- feeds strip ---------------------------------------------------------------------------------------------
const serverNow = () => Date.now() + clockOffset;

// The "feeds" event: the full status (a list) on connect, then only what changed, at most once a second:
// {now, changed: {exchange: {field: value} | null}}, where "markets" names only the markets whose counters changed
// (null: no longer streamed) and an exchange null is gone.
function mergeFeeds(list, { now, changed }) {
  // before the full copy, or older than it: the copy (made after the change) holds it (feeds.merge_feeds)
  if (list === null || (list.length && now < list[0].now)) return list;
  const byName = new Map(list.map((f) => [f.exchange, f]));
  for (const [name, fields] of Object.entries(changed || {})) {
    if (fields === null) { byName.delete(name); continue; }
    const feed = { ...(byName.get(name) || { exchange: name }) };
    for (const [key, value] of Object.entries(fields)) {
      if (key === "markets" && feed.markets) {
        const markets = { ...feed.markets };
        for (const [symbol, stats] of Object.entries(value)) {
          if (stats === null) delete markets[symbol];
          else markets[symbol] = stats;
        }
        feed.markets = markets;
      } else {
        feed[key] = value;
      }
    }
    byName.set(name, feed);
  }
  for (const feed of byName.values()) feed.now = now;
  return [...byName.values()];
}
function receiveFeeds(payload) {
  const list = Array.isArray(payload) ? payload : mergeFeeds(feedList, payload);
  if (list === null) return;
  if (list.length) clockOffset = list[0].now - Date.now();
  const downBefore = downFeeds();
  feedList = list;
  feedStates = Object.fromEntries(list.map((f) => [f.exchange, f]));
  renderFeeds();
  renderGeoBanner();
  for (const panel of panels.values()) applyFeedState(panel);
  if (downFeeds() !== downBefore) renderSpreads(); // a venue whose feed went down (or came back): at once
  else spreadsChanged(); // the ages moved on: at the table's pace
}
const downFeeds = () => (feedList ?? []).filter((feed) => feedDown(feed.exchange)).map((feed) => feed.exchange).join();
// When a feed last brought data: its status says (once a second), or a tick of it on this page said later. The
// badge's age read 1.9 s beside the board's 0.1 s for the same feed.
const tickHeard = new Map(); // exchange -> the newest receipt time (epoch ms, server clock) of its ticks here
function heard(exchange, received) {
  if (received > (tickHeard.get(exchange) ?? 0)) tickHeard.set(exchange, received);
}
const lastDataAt = (feed) => Math.max(feed.last_data_at ?? 0, tickHeard.get(feed.exchange) ?? 0) || null;
// Redrawn on every feeds event and every second, so ages keep moving while nothing arrives.
// Each badge is a real <button>, kept across redraws (updated in place) so the keyboard's focus stays on it.
const badgeEls = new Map(); // exchange -> its button
function renderFeeds() {
  const now = serverNow();
  const badges = (feedList || []).map((feed) => {
    let badge = badgeEls.get(feed.exchange);
    if (!badge) {
      badge = document.createElement("button");
      badge.type = "button";
      badge.dataset.exchange = feed.exchange;
      badge.setAttribute("aria-controls", "feed-details");
      badge.addEventListener("click", () => {
        detailsFor = detailsFor === feed.exchange ? null : feed.exchange;
        renderDetails();
      });
      badgeEls.set(feed.exchange, badge);
    }
    badge.className = `badge border-0 ${FEED_COLOURS[feed.state] ?? "text-bg-secondary"}`;
    badge.dataset.state = feed.state;
    const last = lastDataAt(feed);
    const age = last ? ` · ${seconds(now - last)}` : "";
    // A feed that recovered within the last minute says so, however short the outage was.
    const incident = feed.last_incident && HEALTHY.has(feed.state) && now - feed.last_incident.at < 60_000
      ? feed.last_incident : null;
    badge.dataset.incident = incident ? incident.state : "";
    badge.textContent = `${feed.label}: ${feed.state}${incident ? " ↺" : ""}${age}`;
    badge.title = incident ? `recovered: ${incident.state} ${seconds(now - incident.at)} ago (${incident.reason})`
      : feed.reason || "click for details";
    return badge;
  });
  const shown = new Set(badges.map((b) => b.dataset.exchange));
  for (const name of [...badgeEls.keys()]) if (!shown.has(name)) badgeEls.delete(name);
  // moved only when the list changed: moving a focused button would take the focus off it
  if (feedsEl.children.length !== badges.length || badges.some((b, i) => feedsEl.children[i] !== b)) {
    feedsEl.replaceChildren(...badges);
  }
  renderSummary();
  renderOfflineBanner();
  renderDetails();
}
// A phone: the badges fold into one line ("Feeds: 6 live · 1 error") that opens them.
const summary = document.getElementById("feeds-summary");
function renderSummary() {
  const counts = new Map();
  for (const feed of feedList || []) counts.set(feed.state, (counts.get(feed.state) ?? 0) + 1);
  summary.textContent = `Feeds: ${[...counts].map(([state, n]) => `${n} ${state}`).join(" · ") || "none yet"}`;
  summary.dataset.trouble = [...counts.keys()].some(inTrouble) ? "1" : "";
}
summary.addEventListener("click", () => {
  const open = feedsEl.classList.toggle("open");
  summary.setAttribute("aria-expanded", String(open));
});
// No exchange reachable at all (every feed that streams something is down, none has data): one banner with the
// feeds' own words, instead of a page of panels "subscribing".
const offlineBanner = document.getElementById("offline-banner");
function renderOfflineBanner() {
  const streaming = (feedList || []).filter((f) => f.state !== "idle" && f.state !== "stopped");
  const down = streaming.filter((f) => ["error", "reconnecting"].includes(f.state));
  const unreachable = streaming.length > 0 && down.length === streaming.length;
  offlineBanner.classList.toggle("d-none", !unreachable);
  if (!unreachable) return;
  const reasons = [...new Set(down.map((f) => f.reason).filter(Boolean))];
  const shown = reasons.slice(0, 3).join("; ") + (reasons.length > 3 ? `; and ${reasons.length - 3} more` : "");
  offlineBanner.textContent = `No exchange can be reached${shown ? ` (${shown})` : ""}. ` +
    (config.mode === "live" ? "Check this machine's network; `make replay` runs offline on recorded data."
      : "The local exchange is not answering.");
}
function renderDetails() {
  const feed = detailsFor && feedStates[detailsFor];
  details.classList.toggle("d-none", !feed);
  for (const [name, badge] of badgeEls) badge.setAttribute("aria-expanded", String(Boolean(feed) && name === detailsFor));
  if (!feed) return;
  const now = serverNow();
  const last = lastDataAt(feed);
  details.querySelector(".feed-title").textContent = `${feed.label} feed: ${feed.state}`;
  const bad = Object.entries(feed.bad_by_reason || {}).map(([reason, n]) => `${reason} ×${n}`).join(", ");
  const facts = [
    ["reason", feed.reason || "–"],
    ["url", feed.url],
    ["last data", last ? `${seconds(now - last)} ago` : "none yet"],
    ["messages", `${feed.message_rate}/s, ${feed.frames} frames, ${feed.ticks} ticks`],
    ["reconnects / gaps", `${feed.reconnects} / ${feed.gaps}`],
    ["older updates dropped", String(feed.older || 0)],
    ["last incident", feed.last_incident ? `${feed.last_incident.state} ${seconds(now - feed.last_incident.at)} ago: ` +
      feed.last_incident.reason : "none"],
    ["next attempt", feed.next_attempt_at ? `in ${seconds(feed.next_attempt_at - now)}` : "–"],
    ["bad frames", feed.bad_frames ? `${feed.bad_frames}: ${bad}` : "0"],
    ["last bad frame", feed.last_bad_frame || "–"],
    ["last exchange error", feed.last_error || "–"],
  ];
  details.querySelector(".feed-facts").replaceChildren(...facts.flatMap(([name, value]) => [
    element("dt", "col-sm-2", name), element("dd", "col-sm-10", value)]));
}
details.querySelector(".close-details").addEventListener("click", () => { detailsFor = null; renderDetails(); });
setInterval(() => {
  renderFeeds();
  spreadsChanged(); // the ages move while nothing arrives: the board and the spread table, in their frames
  for (const panel of panels.values()) setCsvHref(panel);
}, 1000);
// The charts are below the quotes, in a section that folds (remembered in this browser).
const chartsSection = document.getElementById("charts-section");
try { chartsSection.open = localStorage.getItem("dashboard.charts") !== "closed"; } catch (_) { /* open */ }
chartsSection.addEventListener("toggle", () => {
  try { localStorage.setItem("dashboard.charts", chartsSection.open ? "open" : "closed"); } catch (_) { /* fine */ }
});
// The charts' vendor attribution links stay, out of the tab order: the keyboard goes from the form to the panels.
const chartsEl = document.getElementById("charts");
const untab = () => chartsEl.querySelectorAll("a").forEach((a) => a.setAttribute("tabindex", "-1"));
new MutationObserver(untab).observe(chartsEl, { childList: true, subtree: true });

// A venue that blocks this region gets a banner with its alternative, not just a red badge.
function renderGeoBanner() {
  const blocked = (feedList || []).find((f) => f.geo_blocked);
  geoBanner.classList.toggle("d-none", !blocked);
  if (!blocked) return;
  const alternative = blocked.alternative && config.exchanges[blocked.alternative];
  // the reason says it all once: "HTTP 451: this venue blocks connections from this region; Binance.US may ..."
  geoBanner.querySelector(".message").textContent = `${blocked.label} refuses this connection: ${blocked.reason}.`;
  const button = geoBanner.querySelector(".use-alternative");
  button.classList.toggle("d-none", !alternative);
  button.textContent = alternative ? `Add the same pairs on ${alternative}` : "";
  button.onclick = () => {
    for (const panel of [...panels.values()]) {
      if (panel.exchange === blocked.exchange) addPanel(`${blocked.alternative}:${panel.market.split(":")[1]}`);
    }
  };
}

// --- cross-exchange spread: one row per pair on the page; computed on the server in Decimal --------------------
const spreadsEl = document.getElementById("spreads");
inViewWatcher((el) => (el === spreadsEl ? spreadsView : null), () => { if (spreadsDirty) schedule(); }).observe(spreadsEl);
// Why the page no longer trusts a venue's quote in a spread row it already has: its feed is down now. The row is
// the server's word as of when it came; a team's collector that died sends no newer one, the feeds' status says so.
function feedDown(exchange, withReason = false) {
  const feed = feedStates[exchange];
  if (!feed || !inTrouble(feed.state)) return "";
  return `${feed.label} feed ${feed.state}${withReason && feed.reason ? `: ${feed.reason}` : ""}`;
}
function priceAt(side, sinceMs) {
  const td = document.createElement("td");
  td.className = "text-end";
  if (!side) { td.textContent = "–"; return td; }
  const price = document.createElement("span");
  price.className = "num"; // one unbroken line: a phone's narrow column broke "0.00002835" into "0.0000283" and "5"
  price.textContent = side.price;
  td.append(price);
  const venue = document.createElement("span");
  venue.className = "venue d-block";
  const down = feedDown(side.exchange);
  // its age keeps moving until a newer row comes
  venue.textContent = `${config.exchanges[side.exchange] ?? side.exchange}, ${seconds(side.age_ms + sinceMs)} old` +
    (down ? ` (${down})` : "");
  if (down) td.classList.add("spread-down");
  td.append(venue);
  return td;
}
// One venue of a spread row: its name, an empty book side as empty, and why it is left out of the best bid and ask.
function venueEntry(v) {
  const span = document.createElement("span");
  span.className = "venue-entry";
  span.dataset.exchange = v.exchange;
  span.textContent = config.exchanges[v.exchange] ?? v.exchange;
  const empty = v.empty; // null, "bid", "ask" or "both", as in a tick
  if (empty) {
    span.dataset.empty = empty;
    span.append(" ", emptyMark(empty === "both" ? "book empty" : `${empty} empty`));
  }
  const excluded = v.excluded || feedDown(v.exchange);
  if (excluded) { // any reason the server gives (a feed not live, a quote not comparable ...), or the feed down now
    const why = document.createElement("span");
    why.className = "venue-excluded";
    why.textContent = ` (excluded: ${excluded})`;
    span.append(why);
  }
  return span;
}
let spreadsDirty = false;
function spreadsChanged() { // drawn in a frame, at the table's pace (draw())
  spreadsDirty = true;
  schedule();
}
function renderSpreads() {
  spreadsDirty = false;
  const pairs = new Set([...panels.values()].map((p) => p.market.split(":")[1]));
  const rows = [...pairs].sort().map((pair) => {
    const row = spreads.get(pair);
    const tr = document.createElement("tr");
    tr.dataset.pair = pair;
    const name = document.createElement("td");
    name.textContent = pair;
    tr.append(name);
    if (!row) { // no venue has quoted it yet
      const none = document.createElement("td");
      none.colSpan = 5;
      none.className = "empty-state text-secondary";
      none.textContent = "no quotes yet";
      tr.append(none);
      return tr;
    }
    // a best price from a venue whose feed is down now makes no spread: the prices stay, marked, the spread goes
    const down = [row.best_bid, row.best_ask].some((side) => side && feedDown(side.exchange));
    const sinceMs = Math.max(0, serverNow() - row.at);
    tr.dataset.down = down ? "1" : "";
    tr.classList.toggle("crossed", row.crossed && !down);
    const cell = (text) => { const td = document.createElement("td"); td.className = "text-end num"; td.textContent = text ?? "–"; return td; };
    const venues = document.createElement("td");
    venues.className = "venue";
    row.venues.forEach((v, i) => venues.append(...(i ? [", "] : []), venueEntry(v)));
    if (row.crossed && !down) venues.append(" · crossed");
    const absolute = cell(down ? null : row.spread);
    absolute.classList.add("spread-abs");
    tr.append(priceAt(row.best_bid, sinceMs), priceAt(row.best_ask, sinceMs), absolute,
      cell(down ? null : row.spread_bps), venues);
    return tr;
  });
  spreadsEl.querySelector("tbody").replaceChildren(...rows);
  spreadsEl.classList.toggle("d-none", rows.length === 0);
}

// --- the connection --------------------------------------------------------------------------------------------
const socket = io({ transports: ["websocket", "polling"] });
window.__socket = socket;

function onConnect() {
  banner.classList.add("d-none");
  for (const panel of panels.values()) { // (re)subscribe; each backfill replaces the panel's rows and state
    panel.ready = false;
    panel.early = [];
    panel.queue = [];
    setMarketState(panel, { state: "subscribing", reason: "" }); // not what a server we lost said
    socket.emit("subscribe", { market: panel.market });
  }
}
function onDisconnect() {
  banner.classList.remove("d-none");
  serviceBanner.classList.add("d-none"); // the server says again, once back
}
// Team mode: the web process lost Redis (and so the collector); it says so, and resyncs the panels after.
function receiveService({ redis, reason }) {
  serviceBanner.querySelector(".message").textContent = String(reason || "the data service is unreachable");
  serviceBanner.classList.toggle("d-none", Boolean(redis));
}
function receiveMarkets(offer) {
  // in a replay, the pairs the recordings hold (their recorded listings name many more, which never stream)
  available = offer.recorded || offer.available || {};
  fillPairList();
}
function receiveSpread(row) {
  // an older row never replaces a newer one (a subscribe's row and a batch's can cross on the way)
  if (row.computed < spreads.get(row.pair)?.computed) return;
  spreads.set(row.pair, { ...row, at: serverNow() });
  spreadsChanged();
}
// A backfill replaces the panel's rows and its board line (the server's state, not what a lost server said). The
// rows shown stay until the backfill is drawn in their place: emptied on receipt, a list was blank until its turn to
// be drawn, frames later at 20 panels. A backfill with nothing in it empties the list at once.
function receiveBackfill({ market, ticks, state }) {
  const panel = panels.get(market);
  if (!panel) return;
  panel.queue = [...ticks, ...panel.early]; // with the live ticks that overtook the backfill
  panel.early = [];
  panel.ready = true;
  if (panel.queue.length) panel.replacing = true; // drawn in place of the rows shown (render)
  else { forgetRows(panel); removeRowsFrom(panel, 0); }
  board.reset(market);
  for (const tick of panel.queue) board.update(market, tick);
  if (state) setMarketState(panel, state);
  schedule(panel);
}
// The list starts again: nothing of the entries its rows showed (the rows themselves are filled again or removed).
function forgetRows(panel) {
  panel.replacing = false;
  panel.lastSeq = 0;
  panel.lastTime = null;
  panel.entries = [];
  panel.dates = {};
  panel.clockDates.textContent = "";
}
function receiveTicks({ market, ticks }) {
  const panel = panels.get(market);
  if (!panel) return;
  heard(panel.exchange, ticks[ticks.length - 1]?.received);
  charts.add(market, ticks);
  if (!panel.ready) { panel.early.push(...ticks); schedule(); return; }
  for (const tick of ticks) board.update(market, tick);
  panel.queue.push(...ticks);
  if (panel.queue.length > 4 * config.maxRows) panel.queue.splice(0, panel.queue.length - config.maxRows);
  schedule(panel);
}
function receiveMarketState(state) {
  const panel = panels.get(state.market);
  if (panel) setMarketState(panel, state);
}
function receiveError(reply) {
  const panel = reply && panels.get(reply.market);
  if (panel) setMarketState(panel, { state: "error", reason: reply.message });
  else formMessage.textContent = reply?.message ?? "error";
}
// The server sends one packet per interval (`batch`, dashboard/fanout.py) holding every part due for this page;
// each part goes to the handler of its own name, in this order.
const BATCHED = [["market_state", receiveMarketState], ["ticks", receiveTicks], ["spread", receiveSpread]];
function receiveBatch(packet) {
  for (const [part, handler] of BATCHED) for (const item of packet[part] || []) handler(item);
  if (packet.feeds) receiveFeeds(packet.feeds);
  showInterval(packet.interval_ms);
}
// The server lengthens its interval under load: say so while it is above the default it names.
function showInterval(ms) {
  const element = document.getElementById("update-interval");
  if (element) element.textContent = ms > (config.emitIntervalMs ?? 50) ? `updates every ${ms} ms` : "";
}
// What the server sends, by event name: the one place the page's handlers are registered. The browser tests hand
// events to the same handlers (window.__receive) and then draw at once (window.__flush).
const HANDLERS = {
  connect: onConnect, disconnect: onDisconnect, service: receiveService, markets: receiveMarkets,
  feeds: receiveFeeds, spread: receiveSpread, backfill: receiveBackfill, ticks: receiveTicks,
  market_state: receiveMarketState, error: receiveError, batch: receiveBatch,
};
for (const [event, handler] of Object.entries(HANDLERS)) socket.on(event, handler);
window.__receive = (event, payload) => HANDLERS[event](payload);

// --- the add-market form -----------------------------------------------------------------------------------------
const listedOn = (pair) => Object.keys(config.exchanges).filter((name) => (available[name] || []).includes(pair));
function fillPairList() {
  const symbols = exchangeSelect.value === EVERY
    ? [...new Set(Object.values(available).flat())].sort() : available[exchangeSelect.value] || [];
  pairList.replaceChildren(...symbols.map((s) => new Option(s, s)));
  // the example in the empty field is a pair this exchange lists (its listing's BTC pair if it has one)
  pairInput.placeholder = ["BTC-USD", "BTC-USDT", "BTC-EUR"].find((s) => symbols.includes(s)) ?? symbols[0] ?? "BTC-USD";
  showListedOn();
}
// Which exchanges list the pair being typed, from their listings (in a replay: which recordings hold it).
const REPLAY = config.mode === "replay";
function showListedOn() {
  const pair = pairInput.value.trim().toUpperCase().replace("/", "-");
  const names = PAIR.test(pair) ? listedOn(pair).map((name) => config.exchanges[name]) : [];
  const listed = REPLAY ? `in the recordings of: ${names.join(", ")}` : `listed on: ${names.join(", ")}`;
  document.getElementById("listed-on").textContent = names.length ? listed
    : REPLAY && PAIR.test(pair) ? "in no recording here: nothing would come" : "";
}
exchangeSelect.addEventListener("change", fillPairList);
pairInput.addEventListener("input", showListedOn);
document.getElementById("add-market").addEventListener("submit", (event) => {
  event.preventDefault();
  const pair = pairInput.value.trim().toUpperCase().replace("/", "-");
  if (!PAIR.test(pair)) {
    formMessage.textContent = "A pair is BASE-QUOTE in letters and digits, like BTC-USD.";
    return;
  }
  formMessage.textContent = "";
  const exchanges = exchangeSelect.value === EVERY ? listedOn(pair) : [exchangeSelect.value];
  if (!exchanges.length) {
    formMessage.textContent = REPLAY ? `No recording here holds ${pair}.` : `No exchange here lists ${pair}.`;
    return;
  }
  for (const exchange of exchanges) {
    const market = `${exchange}:${pair}`;
    const existing = panels.get(market);
    if (existing) {
      existing.el.classList.add("flash");
      setTimeout(() => existing.el.classList.remove("flash"), 800);
    } else {
      addPanel(market, { reveal: true });
    }
  }
  pairInput.value = "";
  showListedOn();
});

const fromUrl = urlWatchlist();
for (const market of fromUrl ?? loadWatchlist()) {
  if (validMarket(market)) addPanel(market);
}
saveWatchlist(); // the link's list replaces the stored one; the URL names what is open
