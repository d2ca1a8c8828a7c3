// What the page's tables share: numbers lined up on the decimal point (the exchange's string unchanged), an empty
// book side's mark, UTC clock text, and the brief flash of a price that moved.
import { decimalHalves } from "./decimal.js";

// An element with its class and its text (as text: whatever it says, nothing in it runs).
export function element(tag, className = "", text = null) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== null) el.textContent = text;
  return el;
}

// An element's text, set only if it changed, in the text node it has (a new node on every draw re-styles and
// re-lays out more than a changed string does: the board sets its ages ten times a second).
export function setText(el, text) {
  const node = el.firstChild;
  if (node !== null && node === el.lastChild && node.nodeType === Node.TEXT_NODE) {
    if (node.data !== text) node.data = text;
  } else if (text !== "" || node !== null) {
    el.textContent = text;
  }
}

// An attribute set only if it changed (setting the same value still invalidates the element's style).
export function setAttribute(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

// Tells the object of each watched element (`objectOf(element)`, or none) whether it is in view (its `visible`), so
// what is out of view can wait; `shown(object)` when one comes into view, to be drawn in the next frame. (Half a
// screen early, as it was, drew three times as many lists at 20 panels, for a frame's head start.)
export function inViewWatcher(objectOf, shown) {
  return new IntersectionObserver((changes) => {
    for (const change of changes) {
      const object = objectOf(change.target);
      if (!object) continue;
      object.visible = change.isIntersecting;
      if (object.visible) shown(object);
    }
  });
}

// Per table: the longest fraction seen of each kind of number ("price", "size"), as a CSS variable the fractions
// are padded to, so every point in a column sits at one place (monospace digits: 1ch each).
export class Alignment {
  constructor(el) {
    this.el = el;
    this.places = {};
  }

  fit(kind, places) {
    if ((this.places[kind] ?? 0) >= places) return;
    this.places[kind] = places;
    this.el.style.setProperty(`--frac-${kind}`, `${places}ch`);
  }
}

// <span class="num num-price" style="--frac: 2">30241.9</span>: one element a number, its text the string as it
// came; the padding after it (the table's longest fraction less its own, in ch) puts its point under the others'.
// A running list builds hundreds of these a second: one element each, not three.
export function numberSpan(text, alignment, kind = "price") {
  return setNumber(element("span", `num num-${kind}`), text, alignment, kind);
}

// A number span's text and padding set in place (only what changed: a draw that keeps a span keeps its style).
export function setNumber(span, text, alignment, kind = "price") {
  const string = String(text);
  const places = decimalHalves(string)[1].length; // the fraction with its point: ".9" is 2
  setText(span, string);
  if ((span.places ?? 0) !== places) {
    span.places = places;
    span.style.setProperty("--frac", places);
  }
  alignment?.fit(kind, places);
  return span;
}

// A size under (or beside) its price: "× 0.5".
export function sizeSpan(size, alignment) {
  const small = element("span", "size");
  small.append("× ", numberSpan(size, alignment, "size"));
  return small;
}

// A tick's side ("bid", "ask" or "last") in its cell: the price with its size after `separator`, – when not known
// yet, "empty" (data-empty, a title) when the exchange says the book side is empty, the last trade's side as
// side-buy / side-sell. Filled in place: a cell that keeps its shape keeps its elements and only its text changes
// (a running list shows each new tick in the rows it has, so a draw lays out and paints text, not new rows).
export function fillSide(td, tick, side, alignment, separator = "") {
  const empty = side !== "last" && isEmptySide(tick.empty, side);
  const price = empty ? null : tick[side];
  const size = price == null ? null : tick[`${side}_size`];
  const shape = empty ? "empty" : price == null ? "unknown" : size == null ? "price" : "price and size";
  if (td.shape !== shape) {
    td.shape = shape;
    if (empty) {
      td.replaceChildren(emptyMark("empty"));
      td.dataset.empty = side;
      td.title = side === "bid" ? "no bids in the book" : "no asks in the book";
    } else {
      if (price == null) td.replaceChildren("–");
      else if (size == null) td.replaceChildren(numberSpan(price, alignment));
      else {
        td.replaceChildren(numberSpan(price, alignment), ...(separator ? [separator] : []), sizeSpan(size, alignment));
      }
      delete td.dataset.empty;
      td.removeAttribute("title");
    }
  }
  if (price != null) setNumber(td.firstChild, price, alignment);
  if (size != null) setNumber(td.lastChild.lastChild, size, alignment, "size");
  const trade = side === "last" ? tick.last_side : null;
  td.classList.toggle("side-buy", trade === "buy"); // (a toggle that changes nothing writes nothing)
  td.classList.toggle("side-sell", trade === "sell");
  return td;
}

export const emptyMark = (text) => element("span", "side-empty", text);

// A book side named in a tick's "empty" is empty now: it shows as empty, never as an old price.
export const isEmptySide = (empty, side) => empty === side || empty === "both";

// In a replay, a recording played again from its start sends its first times again: a market's exchange time going
// back this far means it started again (the shipped recordings are 10-30 s long; within one, a market's times step
// back by milliseconds at most, a trade behind a quote). The lists put a row there, the charts break their lines.
const RESTART_MS = 5_000;
export const startedAgain = (before, time) => before != null && time != null && time < before - RESTART_MS;

export function utc(ms) {
  const iso = new Date(ms).toISOString(); // 2021-04-17T16:43:30.244Z
  return { date: iso.slice(0, 10), time: iso.slice(11, 23) };
}

// A time cell's title: the full UTC moment and whose clock it is (`when` from utc()).
export const clockTitle = (when, exchangeTime) => (exchangeTime ? `${when.date} ${when.time} UTC, exchange time`
  : `${when.date} ${when.time} UTC, our receipt time: the exchange sent no time with this update`);

export const seconds = (ms) => `${Math.max(0, ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;

// A price that moved is marked in its direction for FLASH_MS: a still highlight (flash-up / flash-down), put on by
// one draw and taken off by a later one, two frames in all. A fading animation needs a frame every 16 ms while it
// runs, and on a board whose prices move several times a second that was a frame all the time. data-move keeps the
// last direction.
export const FLASH_MS = 600;
export function flash(cell, direction) {
  const move = direction > 0 ? "up" : "down";
  cell.classList.remove("flash-up", "flash-down");
  cell.classList.add(`flash-${move}`);
  cell.dataset.move = move;
}
export const unflash = (cell) => cell.classList.remove("flash-up", "flash-down");
