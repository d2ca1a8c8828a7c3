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

// <span class="num num-price">30241<span class="frac">.9</span></span>: its text is the string as it came (two
// elements a number: a running list builds hundreds of them a second).
export function numberSpan(text, alignment, kind = "price") {
  const [whole, fraction] = decimalHalves(String(text));
  const span = element("span", `num num-${kind}`);
  span.append(whole, element("span", "frac", fraction));
  alignment?.fit(kind, fraction.length);
  return span;
}

// A size under (or beside) its price: "× 0.5".
export function sizeSpan(size, alignment) {
  const small = element("span", "size");
  small.append("× ", numberSpan(size, alignment, "size"));
  return small;
}

export const emptyMark = (text) => element("span", "side-empty", text);

// A book side named in a tick's "empty" is empty now: it shows as empty, never as an old price.
export const isEmptySide = (empty, side) => empty === side || empty === "both";

export function utc(ms) {
  const iso = new Date(ms).toISOString(); // 2021-04-17T16:43:30.244Z
  return { date: iso.slice(0, 10), time: iso.slice(11, 23) };
}

export const seconds = (ms) => `${Math.max(0, ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;

// A price that moved flashes once in its direction (CSS animations flash-up-a/-b, flash-down-a/-b: switching the
// name restarts it without a reflow). data-move keeps the last direction.
export function flash(cell, direction) {
  const move = direction > 0 ? "up" : "down";
  const again = cell.classList.contains(`flash-${move}-a`);
  cell.classList.remove("flash-up-a", "flash-up-b", "flash-down-a", "flash-down-b");
  cell.classList.add(`flash-${move}-${again ? "b" : "a"}`);
  cell.dataset.move = move;
}
