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

// Tells the object of each watched element (`objectOf(element)`, or none) whether it is in view or within half a
// screen of it (its `visible`), so what is out of view can wait and still be current when it is scrolled to;
// `shown(object)` when one comes into view.
export function inViewWatcher(objectOf, shown) {
  return new IntersectionObserver((changes) => {
    for (const change of changes) {
      const object = objectOf(change.target);
      if (!object) continue;
      object.visible = change.isIntersecting;
      if (object.visible) shown(object);
    }
  }, { rootMargin: "50% 0px" });
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
  const string = String(text);
  const places = decimalHalves(string)[1].length; // the fraction with its point: ".9" is 2
  const span = element("span", `num num-${kind}`, string);
  if (places) span.style.setProperty("--frac", places);
  alignment?.fit(kind, places);
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
