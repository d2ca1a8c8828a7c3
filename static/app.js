// The dashboard page: a watchlist of market panels, each a running list of ticks, plus a badge per feed.
// Text from outside (exchange frames, server messages) reaches the DOM only through textContent.
import { io } from "/vendor/socket.io-client/dist/socket.io.esm.min.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const PAIR = /^[A-Z0-9]{1,15}-[A-Z0-9]{1,15}$/;
const STORAGE_KEY = `dashboard.watchlist.${config.mode}`;
const FEED_COLOURS = {
  live: "text-bg-success", quiet: "text-bg-info", connecting: "text-bg-secondary", idle: "text-bg-light",
  reconnecting: "text-bg-warning", stale: "text-bg-warning", error: "text-bg-danger", stopped: "text-bg-dark",
};
const MARKET_COLOURS = {
  subscribing: "text-bg-secondary", subscribed: "text-bg-info", streaming: "text-bg-success",
  waiting: "text-bg-warning", error: "text-bg-danger",
};
const HEALTHY = new Set(["live", "quiet"]);

const panelsEl = document.getElementById("panels");
const template = document.getElementById("panel-template");
const exchangeSelect = document.getElementById("exchange");
const pairInput = document.getElementById("pair");
const pairList = document.getElementById("pairs");
const formMessage = document.getElementById("form-message");
const feedsEl = document.getElementById("feeds");
const banner = document.getElementById("connection-banner");

const panels = new Map(); // market -> panel state
let available = {};
let feedStates = {};

document.getElementById("mode").textContent = config.mode.toUpperCase();
for (const [name, label] of Object.entries(config.exchanges)) {
  exchangeSelect.append(new Option(label, name));
}

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
}

// --- formatting ----------------------------------------------------------------------------------------------
function utc(ms) {
  const iso = new Date(ms).toISOString(); // 2021-04-17T16:43:30.244Z
  return { date: iso.slice(0, 10), time: iso.slice(11, 23) };
}
const today = () => new Date().toISOString().slice(0, 10);
function cell(price, size, extraClass) {
  const td = document.createElement("td");
  td.className = "text-end" + (extraClass ? " " + extraClass : "");
  td.textContent = price ?? "–";
  if (size != null) {
    const small = document.createElement("span");
    small.className = "size";
    small.textContent = "× " + size;
    td.append(small);
  }
  return td;
}
function tickRow(tick) {
  const tr = document.createElement("tr");
  const exchangeTime = tick.time != null;
  const when = utc(exchangeTime ? tick.time : tick.received);
  const timeCell = document.createElement("td");
  // The date shows only when it is not today (a replayed recording's exchange times are from its day).
  timeCell.textContent = when.date === today() ? when.time : `${when.date} ${when.time}`;
  timeCell.dataset.timeSource = exchangeTime ? "exchange" : "received";
  timeCell.title = exchangeTime
    ? `${when.date} ${when.time} UTC, exchange time`
    : `${when.date} ${when.time} UTC, our receipt time: the exchange sent no time with this update`;
  if (!exchangeTime) timeCell.className = "time-received";
  tr.append(timeCell, cell(tick.bid, tick.bid_size, "bid"), cell(tick.ask, tick.ask_size, "ask"),
    cell(tick.last, tick.last_size, tick.last_side ? `last side-${tick.last_side}` : "last"));
  return tr;
}

// --- panels --------------------------------------------------------------------------------------------------
function addPanel(market) {
  if (panels.has(market)) return panels.get(market);
  const [exchange, pair] = market.split(":");
  const el = template.content.firstElementChild.cloneNode(true);
  el.dataset.market = market;
  el.dataset.exchange = exchange;
  el.querySelector(".exchange").textContent = config.exchanges[exchange] ?? exchange;
  el.querySelector(".pair").textContent = pair;
  el.querySelector(".close-panel").addEventListener("click", () => removePanel(market));
  panelsEl.append(el);
  const panel = { market, exchange, el, tbody: el.querySelector("tbody"), lastSeq: 0, ready: false, early: [] };
  panels.set(market, panel);
  setMarketState(panel, { state: "subscribing", reason: "" });
  applyFeedState(panel);
  saveWatchlist();
  if (socket.connected) socket.emit("subscribe", { market });
  return panel;
}
function removePanel(market) {
  const panel = panels.get(market);
  if (!panel) return;
  panel.el.remove();
  panels.delete(market);
  saveWatchlist();
  if (socket.connected) socket.emit("unsubscribe", { market });
}
function setMarketState(panel, { state, reason }) {
  const badge = panel.el.querySelector(".market-state");
  badge.className = `badge market-state ${MARKET_COLOURS[state] ?? "text-bg-secondary"}`;
  badge.textContent = state;
  panel.el.dataset.state = state;
  const reasonEl = panel.el.querySelector(".market-reason");
  reasonEl.textContent = reason || "";
  reasonEl.classList.toggle("d-none", !reason);
  reasonEl.classList.toggle("text-danger", state === "error");
}
function applyFeedState(panel) {
  const feed = feedStates[panel.exchange];
  const down = feed && !HEALTHY.has(feed.state);
  panel.el.classList.toggle("feed-down", Boolean(down));
  panel.el.title = down ? `${feed.label} feed is ${feed.state}${feed.reason ? ": " + feed.reason : ""}` : "";
}
// Render one batch in one DOM update: newest on top, at most maxRows rows.
function render(panel, ticks) {
  const fresh = ticks.filter((t) => t.seq > panel.lastSeq);
  if (!fresh.length) return;
  panel.lastSeq = fresh[fresh.length - 1].seq;
  const fragment = document.createDocumentFragment();
  const start = Math.max(0, fresh.length - config.maxRows);
  for (let i = fresh.length - 1; i >= start; i--) fragment.append(tickRow(fresh[i]));
  panel.tbody.prepend(fragment);
  let excess = panel.tbody.rows.length - config.maxRows;
  while (excess-- > 0) panel.tbody.lastElementChild.remove();
}

// --- feeds strip -----------------------------------------------------------------------------------------------
function renderFeeds(list) {
  feedStates = Object.fromEntries(list.map((f) => [f.exchange, f]));
  const now = Date.now();
  const badges = list.map((feed) => {
    const badge = document.createElement("span");
    badge.className = `badge ${FEED_COLOURS[feed.state] ?? "text-bg-secondary"}`;
    badge.dataset.exchange = feed.exchange;
    badge.dataset.state = feed.state;
    const age = feed.last_data_at ? `, data ${((now - feed.last_data_at) / 1000).toFixed(0)} s ago` : "";
    badge.textContent = `${feed.label}: ${feed.state}`;
    badge.title = [
      feed.reason && `reason: ${feed.reason}`,
      `frames ${feed.frames}, ticks ${feed.ticks}, bad frames ${feed.bad_frames}, reconnects ${feed.reconnects}${age}`,
      feed.last_bad_reason && `last bad frame: ${feed.last_bad_reason}`,
      feed.next_attempt_at && `next attempt in ${Math.max(0, (feed.next_attempt_at - now) / 1000).toFixed(1)} s`,
    ].filter(Boolean).join("\n");
    return badge;
  });
  feedsEl.replaceChildren(...badges);
  for (const panel of panels.values()) applyFeedState(panel);
}

// --- the connection --------------------------------------------------------------------------------------------
const socket = io({ transports: ["websocket", "polling"] });

socket.on("connect", () => {
  banner.classList.add("d-none");
  for (const panel of panels.values()) { // (re)subscribe; each backfill replaces the panel's rows
    panel.ready = false;
    panel.early = [];
    socket.emit("subscribe", { market: panel.market });
  }
});
socket.on("disconnect", () => banner.classList.remove("d-none"));
socket.on("markets", (offer) => {
  available = offer.available || {};
  fillPairList();
});
socket.on("feeds", renderFeeds);
socket.on("backfill", ({ market, ticks, state }) => {
  const panel = panels.get(market);
  if (!panel) return;
  panel.tbody.replaceChildren();
  panel.lastSeq = 0;
  render(panel, ticks);
  render(panel, panel.early); // live ticks that overtook the backfill
  panel.early = [];
  panel.ready = true;
  if (state) setMarketState(panel, state);
});
socket.on("ticks", ({ market, ticks }) => {
  const panel = panels.get(market);
  if (!panel) return;
  if (panel.ready) render(panel, ticks);
  else panel.early.push(...ticks);
});
socket.on("market_state", (state) => {
  const panel = panels.get(state.market);
  if (panel) setMarketState(panel, state);
});
socket.on("error", (reply) => {
  const panel = reply && panels.get(reply.market);
  if (panel) setMarketState(panel, { state: "error", reason: reply.message });
  else formMessage.textContent = reply?.message ?? "error";
});

// --- the add-market form -----------------------------------------------------------------------------------------
function fillPairList() {
  const symbols = available[exchangeSelect.value] || [];
  pairList.replaceChildren(...symbols.map((s) => new Option(s, s)));
}
exchangeSelect.addEventListener("change", fillPairList);
document.getElementById("add-market").addEventListener("submit", (event) => {
  event.preventDefault();
  const pair = pairInput.value.trim().toUpperCase().replace("/", "-");
  if (!PAIR.test(pair)) {
    formMessage.textContent = "A pair is BASE-QUOTE in letters and digits, like BTC-USD.";
    return;
  }
  formMessage.textContent = "";
  const market = `${exchangeSelect.value}:${pair}`;
  const existing = panels.get(market);
  if (existing) {
    existing.el.classList.add("flash");
    setTimeout(() => existing.el.classList.remove("flash"), 800);
  } else {
    addPanel(market);
  }
  pairInput.value = "";
});

for (const market of loadWatchlist()) {
  const [exchange, pair] = market.split(":");
  if (config.exchanges[exchange] && PAIR.test(pair ?? "")) addPanel(market);
}
