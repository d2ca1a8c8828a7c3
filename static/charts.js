// One chart per pair on the page: bid, ask and last of every exchange showing it, one colour per exchange,
// history from the server (downsampled there) plus live ticks, UTC time axis, zoom and pan.
// A gap in the data is a gap in the line (whitespace points), never a straight line across it.
import { createChart, LineSeries, LineStyle } from "/vendor/lightweight-charts/dist/lightweight-charts.standalone.production.mjs";
import { inViewWatcher, startedAgain } from "./cells.js";

const SPARE_COLOURS = ["#8e24aa", "#d84315", "#00838f", "#6d4c41", "#c2185b"];
const SIDES = { bid: LineStyle.Dashed, ask: LineStyle.Dotted, last: LineStyle.Solid };
const HISTORY_MS = 3_600_000;

const toSeconds = (ms) => Math.floor(ms / 1000);

export class PairCharts {
  // `replay`: a recording played again from its start breaks each line there (cells.startedAgain), never a line
  // from the end of one pass to the start of the next (a price move that never happened)
  constructor(container, template, labels, colours, onShown = () => {}, { replay = false } = {}) {
    this.replay = replay;
    this.container = container;
    this.template = template;
    this.labels = labels;
    this.colours = { ...colours }; // exchange -> colour, from each exchange module
    this.charts = new Map(); // pair -> { el, chart, series: {exchange: {bid, ask, last}}, last: Map, ready, early }
    // entries with points put and not drawn yet: each has its own pending, series -> Map(time -> point), the newest
    // point of each second; flush() draws those of the charts in view (a chart's canvas is repainted on every update,
    // in view or not: 15 charts below 20 panels cost a long task every flush)
    this.pending = new Set();
    // onShown: called when a chart with points waiting comes into view
    this.visibility = inViewWatcher((el) => {
      const entry = this.charts.get(el.dataset.pair);
      return entry?.el === el ? entry : null;
    }, (entry) => { if (this.pending.has(entry)) onShown(); });
    window.__charts = this.charts; // for the browser tests
  }

  // Whether a flush() would draw anything now.
  get due() {
    for (const entry of this.pending) if (entry.visible) return true;
    return false;
  }

  colour(exchange) {
    if (!this.colours[exchange]) {
      const spares = Object.values(this.colours).filter((c) => SPARE_COLOURS.includes(c)).length;
      this.colours[exchange] = SPARE_COLOURS[spares % SPARE_COLOURS.length];
    }
    return this.colours[exchange];
  }

  ensure(pair, serverNow) {
    if (this.charts.has(pair)) return;
    const el = this.template.content.firstElementChild.cloneNode(true);
    el.dataset.pair = pair;
    // whose clock the time axis is: ours (Binance's book updates carry no exchange time to plot)
    el.querySelector(".chart-title").textContent =
      `${pair} · bid (dashed), ask (dotted), last (solid) · time: received (our clock), UTC`;
    this.container.append(el);
    const chart = createChart(el.querySelector(".chart-area"), {
      height: 260, autoSize: true,
      timeScale: { timeVisible: true, secondsVisible: true },
      localization: { timeFormatter: (t) => `${new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ")} UTC, received` },
    });
    // blanks: the whitespace points put for gaps (the chart does not list them back), for the tests
    // breaks: the whitespace points put for a null bid or ask (an empty book side), for the tests too
    // restarts: where a replay started again (exchange, time in s), for the tests; exchangeTime: exchange -> the
    // newest exchange time seen; restartSecond: exchange -> the second left blank for a restart
    const entry = { el, chart, series: {}, last: new Map(), precision: new Map(), blanks: [], breaks: [],
      broken: new Set(), ready: false, early: [], empty: el.querySelector(".chart-empty"), pending: new Map(),
      visible: false, restarts: [], exchangeTime: new Map(), restartSecond: new Map() };
    entry.empty.textContent = `no data yet for ${pair}`;
    this.charts.set(pair, entry);
    this.visibility.observe(el);
    const params = new URLSearchParams({ pair, from: Math.max(0, Math.floor(serverNow - HISTORY_MS)) });
    fetch(`/api/chart?${params}`).then((r) => r.json()).then((data) => {
      for (const [exchange, { points, gaps }] of Object.entries(data.series || {})) this.load(entry, exchange, points, gaps);
    }).catch(() => { /* no history: live ticks still draw */ }).finally(() => {
      entry.ready = true;
      this.apply(entry, entry.early);
      this.flush(entry);
      entry.early = [];
      entry.chart.timeScale().fitContent(); // open on the data there is, not on an empty hour
    });
  }

  remove(pair) {
    const entry = this.charts.get(pair);
    if (!entry) return;
    this.pending.delete(entry);
    this.visibility.unobserve(entry.el);
    entry.chart.remove();
    entry.el.remove();
    this.charts.delete(pair);
  }

  seriesOf(entry, exchange) {
    if (!entry.series[exchange]) {
      const colour = this.colour(exchange);
      const label = this.labels[exchange] ?? exchange;
      entry.series[exchange] = Object.fromEntries(Object.entries(SIDES).map(([side, lineStyle]) => [side,
        entry.chart.addSeries(LineSeries, { color: colour, lineStyle, lineWidth: side === "last" ? 2 : 1,
          title: `${label} ${side}`, lastValueVisible: side === "last", priceLineVisible: false })]));
    }
    return entry.series[exchange];
  }

  // History: points [received, bid, ask, last, time] (strings; time: the exchange's, or null), gaps [from, to,
  // reason] -> one setData per series.
  load(entry, exchange, points, gaps) {
    const series = this.seriesOf(entry, exchange);
    const restarts = new Set(); // the seconds where a replay started again: blank in every line
    for (const point of points) {
      if (this.replay && startedAgain(entry.exchangeTime.get(exchange), point[4])) {
        restarts.add(toSeconds(point[0]));
        entry.restarts.push({ exchange, time: toSeconds(point[0]) });
      }
      if (point[4] != null) entry.exchangeTime.set(exchange, point[4]);
    }
    for (const side of Object.keys(SIDES)) {
      const column = { bid: 1, ask: 2, last: 3 }[side];
      const data = new Map();
      let drawn = false;
      for (const point of points) {
        if (restarts.has(toSeconds(point[0]))) {
          data.set(toSeconds(point[0]), { time: toSeconds(point[0]) });
          drawn = false;
          continue;
        }
        if (point[column] == null) { // an empty book side (or none known): a break in its line, never carried on
          if (drawn && side !== "last") data.set(toSeconds(point[0]), { time: toSeconds(point[0]) });
          drawn = false;
          continue;
        }
        drawn = true;
        this.precise(entry, series[side], point[column]);
        data.set(toSeconds(point[0]), { time: toSeconds(point[0]), value: Number(point[column]) });
      }
      for (const [from, to] of gaps) {
        const blank = toSeconds(from) + 1;
        if (blank < toSeconds(to) && !data.has(blank)) {
          data.set(blank, { time: blank });
          entry.blanks.push({ exchange, time: blank });
        }
      }
      const sorted = [...data.values()].sort((a, b) => a.time - b.time);
      series[side].setData(sorted);
      if (sorted.length) {
        entry.last.set(series[side], sorted[sorted.length - 1].time);
        this.drawn(entry);
      }
      if (sorted.length && sorted[sorted.length - 1].value === undefined) entry.broken.add(series[side]);
    }
  }

  // Live entries of one market (ticks and gaps, in order); the newest tick of each second is what is drawn.
  add(market, entries) {
    const [exchange, pair] = market.split(":");
    const entry = this.charts.get(pair);
    if (!entry) return;
    const tagged = entries.map((e) => ({ ...e, exchange }));
    if (entry.ready) this.apply(entry, tagged);
    else entry.early.push(...tagged);
  }

  apply(entry, entries) {
    for (const e of entries) {
      const series = this.seriesOf(entry, e.exchange);
      if (e.kind === "gap") {
        const blank = toSeconds(e.from) + 1;
        if (blank < toSeconds(e.to)) {
          for (const s of Object.values(series)) this.put(entry, s, { time: blank });
          entry.blanks.push({ exchange: e.exchange, time: blank });
        }
        continue;
      }
      const time = toSeconds(e.received);
      if (this.replay && e.time != null) {
        const restarted = startedAgain(entry.exchangeTime.get(e.exchange), e.time);
        entry.exchangeTime.set(e.exchange, e.time);
        if (restarted) { // this second stays blank in every line of the exchange; the next one draws again
          entry.restartSecond.set(e.exchange, time);
          entry.restarts.push({ exchange: e.exchange, time });
          for (const s of Object.values(series)) this.put(entry, s, { time });
          continue;
        }
      }
      if (entry.restartSecond.get(e.exchange) === time) continue;
      for (const side of Object.keys(SIDES)) {
        if (e[side] == null) {
          // A bid or ask that is null now (the side is empty, or no longer known) breaks its line: never the
          // previous value carried on, never 0. (A null last is only "no trade yet": nothing to break.)
          if (side !== "last" && entry.last.has(series[side]) && !entry.broken.has(series[side])) {
            this.put(entry, series[side], { time }); // one whitespace point breaks the line until the next value
            entry.broken.add(series[side]);
            entry.breaks.push({ exchange: e.exchange, side, time });
            if (entry.breaks.length > 100) entry.breaks.shift();
          }
          continue;
        }
        entry.broken.delete(series[side]);
        this.precise(entry, series[side], e[side]);
        this.put(entry, series[side], { time, value: Number(e[side]) });
      }
    }
  }

  // The axis shows as many decimals as the exchange sends (the plot itself is a number, the list keeps strings).
  precise(entry, series, text) {
    const decimals = Math.min(10, (String(text).split(".")[1] || "").length);
    if ((entry.precision.get(series) ?? -1) >= decimals) return;
    entry.precision.set(series, decimals);
    series.applyOptions({ priceFormat: { type: "price", precision: decimals, minMove: 10 ** -decimals } });
  }

  // A point to draw: kept until the next flush(), where a second's newest point is the one drawn (the chart's
  // resolution is a second; drawing every tick cost most of the page's time at 20 panels).
  put(entry, series, point) {
    const last = entry.last.get(series);
    if (last !== undefined && point.time < last) return; // older than what is drawn: the history had it
    if (!entry.pending.has(series)) entry.pending.set(series, new Map());
    entry.pending.get(series).set(point.time, point);
    this.pending.add(entry);
    entry.last.set(series, point.time);
    this.drawn(entry);
  }

  // Draw what put() kept, in time order: of one chart, or of every chart in view (or of all, for `all`). The app
  // calls it in an animation frame.
  flush(only = null, all = false) {
    for (const entry of only ? [only] : this.pending) {
      if (!only && !all && !entry.visible) continue;
      for (const [series, points] of entry.pending) {
        for (const time of [...points.keys()].sort((a, b) => a - b)) series.update(points.get(time));
      }
      entry.pending.clear();
      this.pending.delete(entry);
    }
  }

  // The "no data yet" line goes once something is drawn.
  drawn(entry) {
    if (entry.empty.hidden) return;
    entry.empty.hidden = true;
  }
}
