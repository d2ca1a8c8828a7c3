// The board: one line per watched market at the top of the page (bid x size, ask x size, the spread in bps, the
// last trade with its side, the time to the millisecond and the age), the same pair's venues on adjacent lines,
// the best bid and best ask across venues marked. Lines are updated in place, so a price that moved can flash.
import { compareDecimal, spreadBps } from "./decimal.js";
import {
  Alignment, FLASH_MS, clockTitle, element, fillSide, flash, isEmptySide, seconds, setAttribute, setText, unflash,
  utc,
} from "./cells.js";

const SIDES = ["bid", "ask", "last"];

export class Board {
  constructor(section, labels) {
    this.section = section;
    this.tbody = section.querySelector("tbody");
    this.labels = labels;
    this.alignment = new Alignment(section.querySelector("table"));
    this.lines = new Map(); // market -> { tr, tick, shown: {bid, ask, last}, mode }
    this.flashing = new Map(); // a flashing cell -> until when (ms, performance.now()): a draw then takes it off
  }

  // The watchlist, in its order: lines grouped by pair (a pair's first place in the list), venues in list order.
  sync(markets) {
    for (const market of [...this.lines.keys()]) {
      if (!markets.includes(market)) { this.lines.get(market).tr.remove(); this.lines.delete(market); }
    }
    const pairOrder = [];
    for (const market of markets) {
      const pair = market.split(":")[1];
      if (!pairOrder.includes(pair)) pairOrder.push(pair);
    }
    const ordered = pairOrder.flatMap((pair) => markets.filter((m) => m.split(":")[1] === pair));
    const trs = ordered.map((market) => (this.lines.get(market) ?? this.line(market)).tr);
    if (trs.length !== this.tbody.children.length || trs.some((tr, i) => this.tbody.children[i] !== tr)) {
      this.tbody.replaceChildren(...trs);
    }
    // a pair's first line opens its group: a rule above it when venues of another pair came before
    trs.forEach((tr, i) => tr.classList.toggle("pair-start", i > 0 && tr.dataset.pair !== trs[i - 1].dataset.pair));
    this.section.classList.toggle("d-none", !markets.length);
  }

  line(market) {
    const [exchange, pair] = market.split(":");
    const tr = document.createElement("tr");
    tr.dataset.market = market;
    tr.dataset.exchange = exchange;
    tr.dataset.pair = pair;
    const name = element("th", "market fw-normal");
    name.scope = "row";
    name.append(element("span", "venue-name", this.labels[exchange] ?? exchange), " ",
      element("span", "pair font-monospace", pair));
    tr.append(name);
    const line = { tr, tick: null, shown: {}, mode: null, cells: {} };
    this.lines.set(market, line);
    return line;
  }

  // The newest tick of a market (gaps are for the running lists; the line shows the latest quote and its age).
  update(market, tick) {
    const line = this.lines.get(market);
    if (line && tick.kind !== "gap" && (!line.tick || tick.seq >= line.tick.seq)) line.tick = tick;
  }

  // A backfill replaces what the line knew (another server's state, or none).
  reset(market) {
    const line = this.lines.get(market);
    if (line) { line.tick = null; line.shown = {}; }
  }

  // context: { now (server clock, ms), why(market): text for a line with no quote, down(exchange): the feed's
  // trouble or "", best(pair): {bid, ask} exchanges holding the best across venues, or null }
  draw(context) {
    const now = performance.now();
    for (const [cell, until] of this.flashing) {
      if (until <= now) { unflash(cell); this.flashing.delete(cell); }
    }
    for (const [market, line] of this.lines) {
      if (!line.tick) this.drawEmpty(line, context.why(market));
      else this.drawQuote(line, context);
    }
  }

  drawEmpty(line, why) {
    if (line.mode !== "empty") {
      line.mode = "empty";
      line.tr.querySelectorAll("td").forEach((td) => td.remove());
      const td = element("td", "empty-state text-secondary");
      td.colSpan = 6;
      line.tr.append(td);
      line.cells = { why: td };
    }
    setText(line.cells.why, why);
    setAttribute(line.tr, "data-state", "empty");
  }

  drawQuote(line, { now, down, best }) {
    if (line.mode !== "quote") {
      line.mode = "quote";
      line.tr.querySelectorAll("td").forEach((td) => td.remove());
      const cells = {};
      for (const name of ["bid", "ask", "bps", "last", "time", "age"]) {
        cells[name] = element("td", `text-end ${name}`);
        line.tr.append(cells[name]);
      }
      cells.age.title = "since this server received it";
      line.cells = cells;
    }
    const { tick, cells, shown } = line;
    for (const side of SIDES) {
      const price = side !== "last" && isEmptySide(tick.empty, side) ? null : tick[side];
      const key = `${price}|${tick[`${side}_size`]}|${tick.empty}|${side === "last" ? tick.last_side : ""}`;
      if (shown[side] === key) continue;
      const before = shown[`${side}Price`];
      shown[side] = key;
      shown[`${side}Price`] = price;
      fillSide(cells[side], tick, side, this.alignment, " ");
      const direction = price != null && before != null ? compareDecimal(price, before) : 0;
      if (direction) { flash(cells[side], direction); this.flashing.set(cells[side], performance.now() + FLASH_MS); }
    }
    // the spread and the time change with the tick (and the time with the day): drawn again only then
    const today = utc(now).date;
    if (shown.tick !== tick || shown.today !== today) {
      shown.tick = tick;
      shown.today = today;
      const bps = spreadBps(isEmptySide(tick.empty, "bid") ? null : tick.bid,
        isEmptySide(tick.empty, "ask") ? null : tick.ask);
      setText(cells.bps, bps ?? "–");
      const exchangeTime = tick.time != null;
      const when = utc(exchangeTime ? tick.time : tick.received);
      cells.time.replaceChildren();
      if (when.date !== today) { // another day's (a recording's) date, once on the line
        cells.time.append(element("span", "day", when.date + " "));
      }
      cells.time.append(when.time);
      cells.time.classList.toggle("time-received", !exchangeTime);
      cells.time.dataset.timeSource = exchangeTime ? "exchange" : "received";
      cells.time.title = clockTitle(when, exchangeTime);
    }
    setText(cells.age, seconds(now - tick.received));
    const trouble = down(line.tr.dataset.exchange);
    line.tr.classList.toggle("feed-down", Boolean(trouble));
    setAttribute(line.tr, "title", trouble ? `not live: ${trouble}` : "");
    setAttribute(line.tr, "data-state", trouble ? "down" : "quote");
    const marks = best(line.tr.dataset.pair) ?? {};
    for (const side of ["bid", "ask"]) {
      const isBest = marks[side] === line.tr.dataset.exchange;
      cells[side].classList.toggle(`best-${side}`, isBest);
      setAttribute(cells[side], "title", isBest ? `best ${side} across venues` : "");
    }
  }
}
