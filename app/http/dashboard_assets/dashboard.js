/*
 * segstream live dashboard.
 *
 * Fetches /dashboard/data every 2 seconds and redraws every panel from it. Charts are
 * plain SVG drawn here; there are no libraries and nothing is loaded from elsewhere.
 * If the page was opened as /dashboard#token=..., the token goes in an Authorization
 * header (a URL fragment never reaches the server or its logs).
 *
 * For tests: window.segstreamDashboard = {renders, data}, and every chart element
 * carries an id and data-points (the number of points, markers or bars it drew).
 */
(function () {
  "use strict";

  const DATA_URL = "/dashboard/data";
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 8000;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // Ten calm, distinguishable hues; a segment keeps its colour in every panel.
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                   "#b07aa1", "#edc948", "#9c755f", "#ff9da7", "#86bcb6"];

  const dashboard = { renders: 0, data: null };
  window.segstreamDashboard = dashboard;
  let lastSuccess = null;  // Date of the last successful fetch and render

  // ---------------------------------------------------------------- DOM helpers

  /** An HTML element; text children become text nodes, so data is never parsed as HTML. */
  function el(tag, attrs, children) {
    return fill(document.createElement(tag), attrs, children);
  }

  function svgEl(tag, attrs, children) {
    return fill(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function fill(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of [].concat(children ?? [])) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  // ----------------------------------------------------------------- formatting

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  /** 950 -> "950", 12,345 -> "12.3k", 30,000 -> "30k", 2,500,000 -> "2.5M". */
  function formatCount(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return "–";
    const abs = Math.abs(n);
    const short = (v, digits) => v.toFixed(digits).replace(/\.0$/, "");
    if (abs >= 1e6) return short(n / 1e6, abs >= 1e7 ? 0 : 1) + "M";
    if (abs >= 1e4) return short(n / 1e3, abs >= 1e5 ? 0 : 1) + "k";
    return integer.format(n);
  }

  function formatSeconds(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return "–";
    const unit = durationUnit(Math.abs(s));
    const v = s / unit.seconds;
    const digits = unit.name === "s" && Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0;
    return (digits ? v.toFixed(digits) : integer.format(v)) + " " + unit.name;
  }

  /** The unit to show a duration in: seconds up to 2 minutes, then minutes, hours, days. */
  function durationUnit(seconds) {
    if (seconds >= 2 * 86400) return { name: "d", seconds: 86400 };
    if (seconds >= 2 * 3600) return { name: "h", seconds: 3600 };
    if (seconds >= 120) return { name: "min", seconds: 60 };
    return { name: "s", seconds: 1 };
  }

  /** A formatter for axis ticks spaced `step` apart: only as many decimals as the step needs. */
  function tickFormatter(step) {
    if (step >= 1) return formatCount;
    const decimals = Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    return (v) => v.toFixed(decimals);
  }

  function formatZ(z) {
    return (z > 0 ? "+" : z < 0 ? "−" : "") + Math.abs(z).toFixed(2);
  }

  const clockMinutes = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit",
                                                     hour12: false });
  const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

  function formatClock(date) {
    return clock.format(date);
  }

  /** An ISO timestamp from the engine (event time) as "Jan 3, 10:00:05". */
  function formatEventTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso ?? "");
    return day.format(date) + ", " + clock.format(date);
  }

  /** "avg_order_value" -> "avg order value". */
  function humanize(name) {
    return String(name).replace(/_/g, " ");
  }

  // --------------------------------------------------------------------- scales

  /** A round step (1, 2 or 5 times a power of ten) giving about `count` intervals over `span`. */
  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / magnitude;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  }

  /** A y axis over round numbers that covers 0, `min` and `max`, with its ticks. */
  function valueAxis(min, max, count) {
    const lo = Math.min(0, min);
    const hi = Math.max(0, max) > lo ? Math.max(0, max) : lo + 1;
    const step = niceStep(hi - lo, count);
    const start = Math.floor(lo / step + 1e-9) * step;
    const end = Math.ceil(hi / step - 1e-9) * step;
    const ticks = [];
    // Ticks by index, not by repeated addition, so 0.1 + 0.2 does not drift into 0.30000000000000004.
    for (let i = 0; start + i * step <= end + step / 2; i++) ticks.push(start + i * step);
    return { min: start, max: end, ticks, format: tickFormatter(step) };
  }

  // Candidate spacings of time ticks, in seconds: from a second to a week.
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                      21600, 43200, 86400, 172800, 604800];

  /** Ticks on a time axis (epoch seconds), placed on round local times, with a label format. */
  function timeAxis(t0, t1, maxTicks) {
    const span = Math.max(1, t1 - t0);
    const step = TIME_STEPS.find((s) => span / s <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
    // Round in local time, so hourly and daily ticks fall on the hour and at midnight where the viewer is.
    const offset = -new Date(t0 * 1000).getTimezoneOffset() * 60;
    const ticks = [];
    for (let t = Math.ceil((t0 + offset) / step) * step - offset; t <= t1; t += step) ticks.push(t);
    const at = (format) => (t) => format(new Date(t * 1000));
    let label;
    if (step >= 86400) label = at(day.format);
    else if (span > 86400) label = at((date) => day.format(date) + " " + clockMinutes.format(date));
    else if (step >= 60) label = at(clockMinutes.format);
    else label = at(clock.format);
    return { ticks, label };
  }

  /** The linear map from [d0, d1] onto [r0, r1]. */
  function linear(d0, d1, r0, r1) {
    if (d1 === d0) return () => (r0 + r1) / 2;  // a degenerate domain (one point) maps to the middle
    const k = (r1 - r0) / (d1 - d0);
    return (v) => r0 + (v - d0) * k;
  }

  // ----------------------------------------------------------------- line chart

  /**
   * Draw time series into `container` and return the number of points drawn.
   *
   * series: [{name, color, values}] where values[i] belongs to times[i] and may be null
   * (a gap in the line). options: {format: value formatter for the tooltip, unit: suffix of the y-axis
   * labels, area: fill under a single series, empty: what to say when there is nothing to draw}.
   */
  function lineChart(container, times, series, options) {
    const width = container.clientWidth;
    const height = container.clientHeight;
    const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    const values = series.flatMap((s) => s.values).filter(isNumber);
    container.replaceChildren(svg);
    if (times.length === 0 || values.length === 0) {
      svg.append(emptyText(width, height, options.empty || "Waiting for data…"));
      return 0;
    }

    const y = valueAxis(Math.min(...values), Math.max(...values), height < 160 ? 3 : 4);
    if (options.unit) {
      const plain = y.format;
      y.format = (v) => plain(v) + " " + options.unit;
    }
    const labelWidth = Math.max(...y.ticks.map((v) => y.format(v).length)) * 6.5;
    const box = { left: Math.ceil(labelWidth) + 10, right: width - 8, top: 8, bottom: height - 22 };
    const xOf = linear(times[0], times[times.length - 1], box.left, box.right);
    const yOf = linear(y.min, y.max, box.bottom, box.top);

    drawYGrid(svg, y, yOf, box);
    const maxTicks = Math.floor((box.right - box.left) / 80);  // a label is about 50 px wide: keep gaps
    drawTimeTicks(svg, timeAxis(times[0], times[times.length - 1], maxTicks), xOf, box, width);

    let drawn = 0;
    for (const s of series) {
      const { path, dots, count } = linePath(times, s.values, xOf, yOf);
      drawn += count;
      // A light fill down to 0 under a single unbroken line (a gap would need one polygon per run).
      if (options.area && series.length === 1 && path && s.values.every(isNumber)) {
        const base = yOf(0);
        svg.append(svgEl("path", { d: `${path} L${xOf(times[times.length - 1])},${base} L${xOf(times[0])},${base} Z`,
                                   fill: s.color, "fill-opacity": 0.08, stroke: "none" }));
      }
      if (path) svg.append(svgEl("path", { class: "line", d: path, stroke: s.color }));
      // Points with no neighbour to join (a single sample, or one between gaps) show as dots.
      for (const [px, py] of dots) svg.append(svgEl("circle", { cx: px, cy: py, r: 2.5, fill: s.color }));
    }
    attachHover(container, svg, { times, series, xOf, yOf, box, format: options.format });
    return drawn;
  }

  function isNumber(v) {
    return typeof v === "number" && Number.isFinite(v);
  }

  /** An SVG path through the numeric values, broken at nulls, plus the isolated points. */
  function linePath(times, values, xOf, yOf) {
    let path = "";
    let run = [];
    const dots = [];
    let count = 0;
    const command = ([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;  // move to the first
    const flush = () => {
      if (run.length === 1) dots.push(run[0]);
      else if (run.length > 1) path += run.map(command).join("");
      run = [];
    };
    values.forEach((v, i) => {
      if (isNumber(v)) {
        run.push([xOf(times[i]), yOf(v)]);
        count += 1;
      } else {
        flush();
      }
    });
    flush();
    return { path, dots, count };
  }

  function drawYGrid(svg, axis, yOf, box) {
    for (const v of axis.ticks) {
      const py = yOf(v);
      svg.append(svgEl("line", { class: v === 0 ? "axis" : "gridline", x1: box.left, x2: box.right, y1: py, y2: py }));
      svg.append(svgEl("text", { x: box.left - 8, y: py + 4, "text-anchor": "end" }, axis.format(v)));
    }
  }

  function drawTimeTicks(svg, axis, xOf, box, width) {
    for (const t of axis.ticks) {
      const px = xOf(t);
      const label = axis.label(t);
      const half = label.length * 3.4;  // about half the width of 11 px text
      if (px - half < 0 || px + half > width) continue;  // a label that would be cut off at an edge
      svg.append(svgEl("line", { class: "axis", x1: px, x2: px, y1: box.bottom, y2: box.bottom + 4 }));
      svg.append(svgEl("text", { x: px, y: box.bottom + 16, "text-anchor": "middle" }, label));
    }
  }

  function emptyText(width, height, text) {
    return svgEl("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" }, text);
  }

  // ---------------------------------------------------------------- hover readout

  /**
   * A crosshair and a tooltip with every series' value at the sample nearest the pointer.
   * The pointer position is kept on the container, so the readout survives the redraw every 2 s.
   */
  function attachHover(container, svg, chart) {
    const { box, times } = chart;
    const layer = svgEl("g", { "pointer-events": "none" });
    const overlay = svgEl("rect", { x: box.left, y: box.top, width: box.right - box.left, height: box.bottom - box.top,
                                    fill: "transparent" });
    svg.append(layer, overlay);
    const tooltip = el("div", { class: "tooltip", hidden: "" });
    container.append(tooltip);

    const show = (px) => {
      container.hoverX = px;
      const i = nearestIndex(times, px, chart.xOf);
      const x = chart.xOf(times[i]);
      const rows = chart.series
        .filter((s) => isNumber(s.values[i]))
        .sort((a, b) => b.values[i] - a.values[i]);
      layer.replaceChildren(
        svgEl("line", { class: "crosshair", x1: x, x2: x, y1: box.top, y2: box.bottom }),
        ...rows.map((s) => svgEl("circle", { cx: x, cy: chart.yOf(s.values[i]), r: 3.5, fill: s.color,
                                             stroke: "#fff", "stroke-width": 1.5 })));
      tooltip.replaceChildren(
        el("div", { class: "tooltip-time" }, formatClock(new Date(times[i] * 1000))),
        ...(rows.length ? rows : [{ name: "no data", color: "transparent", values: [] }]).map((s) =>
          el("div", { class: "tooltip-row" }, [
            el("span", { class: "swatch", style: `background:${s.color}` }),
            s.name,
            el("b", {}, isNumber(s.values[i]) ? chart.format(s.values[i]) : ""),
          ])));
      tooltip.hidden = false;
      // Keep the tooltip inside the chart: flip it to the left of the crosshair near the right edge.
      const left = x + 14 + tooltip.offsetWidth > container.clientWidth ? x - 14 - tooltip.offsetWidth : x + 14;
      tooltip.style.left = `${Math.max(0, left)}px`;
      tooltip.style.top = `${box.top}px`;
    };
    overlay.addEventListener("mousemove", (event) => show(event.clientX - svg.getBoundingClientRect().left));
    overlay.addEventListener("mouseleave", () => {
      container.hoverX = null;
      layer.replaceChildren();
      tooltip.hidden = true;
    });
    if (isNumber(container.hoverX)) show(container.hoverX);
  }

  /** The index of the time whose x position is nearest `px` (times ascend). */
  function nearestIndex(times, px, xOf) {
    let lo = 0;
    let hi = times.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xOf(times[mid]) < px) lo = mid;
      else hi = mid;
    }
    return Math.abs(xOf(times[lo]) - px) <= Math.abs(xOf(times[hi]) - px) ? lo : hi;
  }

  // -------------------------------------------------------------------- panels

  /** Segment id -> colour, by position in the server's list (cluster segments first). */
  function segmentColors(segments) {
    const colors = new Map();
    segments.forEach((s, i) => colors.set(s.id, PALETTE[i % PALETTE.length]));
    return colors;
  }

  function setPoints(container, count) {
    container.dataset.points = String(count);
  }

  /** One line per segment of `kind` from history[].sizes, and its legend with the current size. */
  function renderSizes(data, colors, kind, chartId, legendId) {
    const segments = data.segments.filter((s) => s.kind === kind);
    const times = data.history.map((p) => p.t);
    const series = segments.map((s) => ({
      name: s.name,
      color: colors.get(s.id),
      values: data.history.map((p) => (p.sizes && isNumber(p.sizes[s.id]) ? p.sizes[s.id] : null)),
    }));
    const empty = segments.length ? "Waiting for data…"
      : kind === "cluster" ? "No model yet: the clusterer is warming up" : "No rule segments configured";
    const format = (v) => integer.format(v) + " users";
    setPoints(byId(chartId), lineChart(byId(chartId), times, series, { format, empty }));
    byId(legendId).replaceChildren(...segments.map((s) =>
      el("li", { title: s.rule || s.name }, [
        el("span", { class: "swatch", style: `background:${colors.get(s.id)}` }),
        el("span", {}, s.name),
        el("span", { class: "legend-value" }, formatCount(s.size)),
      ])));
  }

  function renderThroughput(data) {
    const chart = byId("chart-throughput");
    const series = [{ name: "events/s", color: "#4e79a7", values: data.history.map((p) => p.events_per_s) }];
    setPoints(chart, lineChart(chart, data.history.map((p) => p.t), series,
      { format: (v) => formatCount(Math.round(v)) + " /s", area: true }));
  }

  function renderLag(data) {
    const chart = byId("chart-lag");
    const lags = data.history.flatMap((p) => [p.lag_p50_s, p.lag_p95_s]).filter(isNumber).map(Math.abs);
    // Draw in one unit that suits the largest lag: a replayed history is days old, a live stream seconds.
    const unit = durationUnit(lags.length ? Math.max(...lags) : 0);
    const inUnit = (v) => (isNumber(v) ? v / unit.seconds : null);
    const series = [
      { name: "p95", color: "#e15759", values: data.history.map((p) => inUnit(p.lag_p95_s)) },
      { name: "p50", color: "#4e79a7", values: data.history.map((p) => inUnit(p.lag_p50_s)) },
    ];
    setPoints(chart, lineChart(chart, data.history.map((p) => p.t), series,
      { format: (v) => formatSeconds(v * unit.seconds), unit: unit.name }));
    byId("legend-lag").replaceChildren(...series.map((s) =>
      el("li", {}, [el("span", { class: "swatch swatch-line", style: `background:${s.color}` }), s.name])));
  }

  // ----------------------------------------------------------- segment profiles

  /** One card per cluster segment: name, size, and its centroid as diverging bars around 0. */
  function renderProfiles(data, colors) {
    const clusters = data.segments.filter((s) => s.kind === "cluster");
    const total = clusters.reduce((sum, s) => sum + (s.size || 0), 0);
    const zMax = profileScale(clusters);
    const container = byId("profiles");
    if (!clusters.length) {
      container.style.gridTemplateColumns = "";
      container.replaceChildren(el("div", { class: "empty-note" }, "No cluster segments yet: the model is warming up"));
      return;
    }
    // Cards go into the page first: the bar charts are sized from their width.
    const cards = clusters.map((s) => profileCard(s, colors.get(s.id), total));
    const columns = profileColumns(container.clientWidth, cards.length);
    container.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
    container.replaceChildren(...cards.map((c) => c.card));
    const meanings = (data.model && data.model.meanings) || {};
    cards.forEach(({ chart, segment }) => drawProfile(chart, segment.centroid || {}, zMax, meanings));
  }

  function profileCard(segment, color, total) {
    const share = total > 0 ? ` · ${Math.round((100 * (segment.size || 0)) / total)}%` : "";
    const id = "profile-" + segment.id.replace(/[^A-Za-z0-9_-]/g, "_");
    const chart = el("div", { class: "profile-chart", id, "data-points": "0" });
    const card = el("article", { class: "profile", style: `--segment:${color}` }, [
      el("div", { class: "profile-head" }, [
        el("div", { class: "profile-name" }, segment.name),
        el("div", { class: "profile-size" }, [el("b", {}, formatCount(segment.size)), " users" + share]),
      ]),
      el("div", { class: "profile-meta" }, "segment " + segment.id),
      chart,
    ]);
    return { card, chart, segment };
  }

  /** Columns for `count` cards at least 300 px wide, balanced over the rows (5 cards: 3 + 2, not 4 + 1). */
  function profileColumns(width, count) {
    const fit = Math.max(1, Math.floor((width + 14) / (300 + 14)));
    const rows = Math.ceil(count / fit);
    return Math.max(1, Math.ceil(count / rows));
  }

  /** The z-score at the end of the bar axis, shared by every card so their bars compare. */
  function profileScale(clusters) {
    const all = clusters.flatMap((s) => Object.values(s.centroid || {})).filter(isNumber).map(Math.abs);
    const max = all.length ? Math.max(...all) : 1;
    // Half-unit steps, at least ±1; beyond ±3 bars are clipped (the label still says the value).
    return Math.min(3, Math.max(1, Math.ceil(max * 2) / 2));
  }

  const BAR_ROW = 21;

  /** "12,000 samples · k 5 chosen (silhouette 0.32)": how many segments the data gave, and how clear they are. */
  function modelNote(model) {
    const parts = [`${integer.format(model.samples)} samples`];
    const selection = model.selection;
    if (selection && isNumber(selection.k)) {
      const how = selection.method === "auto" ? "chosen" : selection.method;
      const score = isNumber(selection.silhouette) ? ` (silhouette ${selection.silhouette.toFixed(2)})` : "";
      parts.push(`k ${selection.k} ${how}${score}`);
    }
    return parts.join(" · ");
  }

  function drawProfile(container, centroid, zMax, meanings = {}) {
    const features = Object.entries(centroid).filter(([, z]) => isNumber(z));
    setPoints(container, features.length);
    if (!features.length) {
      container.replaceChildren(el("div", { class: "profile-empty" }, "No profile yet"));
      return;
    }
    const width = container.clientWidth;
    const labelWidth = Math.min(140, Math.round(width * 0.36));
    const box = { left: labelWidth + 42, right: width - 42, top: 4 };  // 42 px: room for a value label past a full bar
    const height = box.top + features.length * BAR_ROW + 20;
    const xOf = linear(-zMax, zMax, box.left, box.right);
    const zero = xOf(0);
    const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    const bottom = box.top + features.length * BAR_ROW;

    const ticks = zTicks(zMax);
    const outer = ticks[ticks.length - 1];
    for (const z of ticks) {
      const x = xOf(z);
      svg.append(svgEl("line", { class: z === 0 ? "zero" : "gridline", x1: x, x2: x, y1: box.top, y2: bottom }));
      if (z === 0 || Math.abs(z) === outer) {  // labels at 0 and the outer ticks only: the gridlines show the rest
        const label = z === 0 ? "0" : formatZ(z).replace(/\.?0+$/, "");  // "+2", "−1.5"
        svg.append(svgEl("text", { x, y: bottom + 14, "text-anchor": "middle" }, label));
      }
    }
    features.forEach(([name, z], row) => {
      const y = box.top + row * BAR_ROW;
      const end = xOf(Math.max(-zMax, Math.min(zMax, z)));
      svg.append(svgEl("text", { class: "label", x: 0, y: y + 14 }, clip(humanize(name), labelWidth)));
      svg.append(svgEl("rect", { class: z >= 0 ? "bar-above" : "bar-below", x: Math.min(zero, end), y: y + 4,
                                 width: Math.max(1, Math.abs(end - zero)), height: BAR_ROW - 8, rx: 2 },
                       svgEl("title", {}, `${humanize(name)}: ${formatZ(z)} standard deviations from the population`
                                          + (meanings[name] ? ` (${meanings[name]})` : ""))));
      const outside = z >= 0 ? { x: end + 5, "text-anchor": "start" } : { x: end - 5, "text-anchor": "end" };
      svg.append(svgEl("text", { ...outside, y: y + 14 }, formatZ(z)));
    });
    container.replaceChildren(svg);
  }

  /** Whole z-scores from -zMax to zMax, or halves when the scale is short. */
  function zTicks(zMax) {
    const step = zMax <= 1.5 ? 0.5 : 1;
    const ticks = [];
    for (let z = -Math.floor(zMax / step) * step; z <= zMax + 1e-9; z += step) ticks.push(Math.round(z * 2) / 2);
    return ticks;
  }

  /** Shorten a label to roughly fit `width` pixels (11.5 px text is about 6.3 px a character). */
  function clip(text, width) {
    const max = Math.floor(width / 6.3);
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  // ---------------------------------------------------------------------- drift

  /** Drift markers on an event-time axis, labelled "v2 → v3", and the list, newest first. */
  function renderDrift(data) {
    const container = byId("chart-drift");
    const drifts = data.drifts.map((d) => ({ ...d, t: Date.parse(d.ts) / 1000 })).filter((d) => isNumber(d.t));
    setPoints(container, drawDriftTimeline(container, drifts));
    const list = byId("drift-list");
    list.replaceChildren(...drifts.slice().reverse().map((d) => el("li", {}, [
      el("span", { class: "drift-version" }, `v${d.previous_version ?? "?"} → v${d.version}`),
      el("span", { class: "drift-time" }, formatEventTime(d.ts)),
      el("span", { class: "drift-detail" }, driftDetail(d)),
    ])));
  }

  function driftDetail(d) {
    if (isNumber(d.shift)) {  // a feature's mean moved: say which, and how far, in reference spreads
      const feature = humanize(String(d.signal || "").replace(/^feature_mean:/, ""));
      const parts = [`mean ${feature} moved ${d.shift >= 0 ? "+" : ""}${fixed(d.shift)} spreads`];
      if (isNumber(d.samples)) parts.push(`after ${integer.format(d.samples)} samples`);
      return parts.join(" · ");
    }
    const parts = [`${humanize(d.signal || "signal")} ${fixed(d.baseline_distance)} → ${fixed(d.drifted_distance)}`];
    if (isNumber(d.baseline_distance) && isNumber(d.drifted_distance) && d.baseline_distance > 0) {
      const change = Math.round((100 * (d.drifted_distance - d.baseline_distance)) / d.baseline_distance);
      parts[0] += ` (${change >= 0 ? "+" : ""}${change}%)`;
    }
    if (isNumber(d.samples)) parts.push(`after ${integer.format(d.samples)} samples`);
    return parts.join(" · ");
  }

  function fixed(v) {
    return isNumber(v) ? v.toFixed(2) : "–";
  }

  function drawDriftTimeline(container, drifts) {
    const width = container.clientWidth;
    const height = container.clientHeight;
    const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    container.replaceChildren(svg);
    if (!drifts.length) {
      svg.append(emptyText(width, height, "No drift detected yet"));
      return 0;
    }
    const box = { left: 14, right: width - 14, axis: height - 24 };
    const times = drifts.map((d) => d.t);
    const [t0, t1] = paddedRange(Math.min(...times), Math.max(...times));
    const xOf = linear(t0, t1, box.left, box.right);
    svg.append(svgEl("line", { class: "axis", x1: box.left, x2: box.right, y1: box.axis, y2: box.axis }));
    drawTimeTicks(svg, timeAxis(t0, t1, Math.floor((box.right - box.left) / 110)), xOf, { bottom: box.axis }, width);
    // Labels take one of two rows; a marker too close to both rows' last label goes unlabelled
    // (the list below names every drift).
    const rowEnds = [-Infinity, -Infinity];
    const rowY = [box.axis - 40, box.axis - 22];
    for (const d of drifts) {
      const x = xOf(d.t);
      const text = `v${d.previous_version ?? "?"} → v${d.version}`;
      const half = text.length * 3.6;
      const row = rowEnds.findIndex((end) => x - half > end + 6);
      if (row >= 0) {
        rowEnds[row] = x + half;
        svg.append(svgEl("line", { class: "drift-stem", x1: x, x2: x, y1: rowY[row] + 4, y2: box.axis }));
        svg.append(svgEl("text", { class: "drift-label", x, y: rowY[row], "text-anchor": "middle" }, text));
      }
      svg.append(svgEl("circle", { class: "drift-marker", cx: x, cy: box.axis, r: 5 },
                       svgEl("title", {}, `${text} at ${formatEventTime(d.ts)}`)));
    }
    return drifts.length;
  }

  /** A time range around the markers with room at both ends; an hour either side of a single one. */
  function paddedRange(t0, t1) {
    const pad = t1 > t0 ? (t1 - t0) * 0.08 : 3600;
    return [t0 - pad, t1 + pad];
  }

  // ------------------------------------------------------------- recent changes

  // Which outputs the table lists: "change", "trigger" or "all". Changes first: triggers that
  // fire together when the watermark passes their deadlines would otherwise fill the table.
  let recentView = "change";
  const EMPTY_NOTES = {
    change: "No segment changes yet", trigger: "No triggers yet", all: "No segment changes or triggers yet",
  };

  function renderRecent(data, colors) {
    const body = byId("recent").tBodies[0];
    const shown = recentView === "all" ? data.recent : data.recent.filter((item) => item.type === recentView);
    if (!shown.length) {
      const note = el("td", { colspan: 4, class: "empty-note" }, EMPTY_NOTES[recentView]);
      body.replaceChildren(el("tr", {}, note));
      return;
    }
    body.replaceChildren(...shown.map((item) => el("tr", {}, [
      el("td", { class: "time" }, formatEventTime(item.ts)),
      el("td", { class: "user" }, item.user_id),
      el("td", {}, el("span", { class: "pill pill-" + (item.type === "trigger" ? "trigger" : item.change) },
                      item.type === "trigger" ? "trigger" : item.change)),
      el("td", {}, item.type === "trigger" ? humanize(item.trigger) : changeDetail(item, colors)),
    ])));
  }

  /** The tabs above the table switch what it lists, and redraw it at once from the last data. */
  function followRecentTabs() {
    const tabs = [...byId("recent-tabs").querySelectorAll("button")];
    for (const tab of tabs) {
      tab.addEventListener("click", () => {
        recentView = tab.dataset.view;
        for (const other of tabs) other.setAttribute("aria-selected", String(other === tab));
        if (dashboard.data) renderRecent(dashboard.data, segmentColors(dashboard.data.segments));
      });
    }
  }

  /** "old segment → new segment" for a move, else the segment entered or exited, with its colour. */
  function changeDetail(item, colors) {
    const colorOf = (id) => colors.get(item.kind === "rule" ? "rule:" + id : id) || colors.get(id) || "#c8d0da";
    const segment = (id, name) => el("span", { class: "seg" }, [
      el("span", { class: "swatch", style: `background:${colorOf(id)}` }), name || id,
    ]);
    const parts = [];
    if (item.previous !== null && item.previous !== undefined && item.change === "moved") {
      parts.push(segment(item.previous, item.previous_name), el("span", { class: "arrow" }, "→"));
    }
    parts.push(segment(item.segment, item.segment_name), el("span", { class: "kind" }, item.kind));
    return parts;
  }

  // --------------------------------------------------------------- key figures

  function renderKpis(data) {
    const clusters = data.segments.filter((s) => s.kind === "cluster");
    const latest = data.history[data.history.length - 1];
    const latestLag = data.history.slice().reverse().find((p) => isNumber(p.lag_p95_s));
    const users = clusters.reduce((n, s) => n + (s.size || 0), 0);
    byId("kpi-users").textContent = clusters.length ? formatCount(users) : "–";
    const rate = latest && isNumber(latest.events_per_s) ? Math.round(latest.events_per_s) : null;
    byId("kpi-rate").textContent = formatCount(rate);
    byId("kpi-lag").textContent = latestLag ? formatSeconds(latestLag.lag_p95_s) : "–";
    byId("kpi-model").textContent = data.model ? `v${data.model.version}` : "warming up";
    byId("kpi-model-note").textContent = data.model ? modelNote(data.model) : "";
    byId("kpi-drifts").textContent = integer.format(data.drifts.length);
    const last = data.drifts[data.drifts.length - 1];
    byId("kpi-drifts-note").textContent = last ? "last " + formatEventTime(last.ts) : "";
    const source = byId("source");
    source.textContent = data.source || "";
    source.hidden = !data.source;
  }

  // --------------------------------------------------------------- refresh loop

  /** Every panel from one data document. */
  function render(data) {
    const colors = segmentColors(data.segments);
    renderKpis(data);
    renderSizes(data, colors, "cluster", "chart-cluster-sizes", "legend-cluster-sizes");
    renderSizes(data, colors, "rule", "chart-rule-sizes", "legend-rule-sizes");
    renderProfiles(data, colors);
    renderThroughput(data);
    renderLag(data);
    renderDrift(data);
    renderRecent(data, colors);
  }

  /** The data document with empty lists for anything missing, so panels need not check. */
  function normalise(data) {
    return {
      ...data,
      segments: data.segments || [],
      history: data.history || [],
      drifts: data.drifts || [],
      recent: data.recent || [],
    };
  }

  class HttpError extends Error {
    constructor(status) {
      super(`HTTP ${status}`);
      this.status = status;
    }
  }

  /** The token from the URL fragment (#token=...), if any. */
  function token() {
    return new URLSearchParams(window.location.hash.slice(1)).get("token");
  }

  async function fetchData() {
    const headers = { Accept: "application/json" };
    const bearer = token();
    if (bearer) headers.Authorization = "Bearer " + bearer;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(DATA_URL, { headers, cache: "no-store", signal: controller.signal });
      if (!response.ok) throw new HttpError(response.status);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  function setStatus(state, text) {
    const status = byId("status");
    status.dataset.state = state;
    byId("status-text").textContent = text;
  }

  function showBanner(parts) {
    const banner = byId("banner");
    banner.replaceChildren(...parts);
    banner.hidden = parts.length === 0;
  }

  function failureMessage(error) {
    if (error instanceof HttpError && error.status === 401) {
      return token()
        ? ["The API token in this page's address was not accepted. Correct the ", el("code", {}, "#token=…"),
           " part of the address."]
        : ["This dashboard needs the API token. Open it as ", el("code", {}, "/dashboard#token=YOUR_TOKEN"), "."];
    }
    const what = error instanceof HttpError ? `the server answered ${error.message}`
      : error.name === "AbortError" ? "the server did not answer in time"
      : "the server could not be reached";
    const since = lastSuccess ? ` Showing data from ${formatClock(lastSuccess)}.` : "";
    return [`Live updates interrupted: ${what}. Retrying every ${REFRESH_MS / 1000} seconds.${since}`];
  }

  /** Fetch and draw once; false when polling should pause (the token was refused). */
  async function refresh() {
    let data;
    try {
      data = normalise(await fetchData());
    } catch (error) {
      const refused = error instanceof HttpError && error.status === 401;
      setStatus("error", refused ? "Not authorised" : "Update failed " + formatClock(new Date()));
      showBanner(failureMessage(error));
      return !refused;
    }
    try {
      render(data);
    } catch (error) {
      // A drawing bug: say so on the page, and let the console (and the browser tests) see it.
      setStatus("error", "Display error");
      showBanner([`The dashboard could not draw the latest data: ${error.message}`]);
      throw error;
    }
    lastSuccess = new Date();
    dashboard.data = data;
    dashboard.renders += 1;
    setStatus("live", "Updated " + formatClock(lastSuccess));
    showBanner([]);
    return true;
  }

  let paused = false;

  /**
   * Fetch, draw, then wait 2 s: a slow server never gets overlapping requests.
   * A refused token pauses polling (retrying cannot help) until the address's #token changes.
   */
  async function loop() {
    let again = true;
    try {
      again = await refresh();
    } finally {
      if (again) setTimeout(loop, REFRESH_MS);
      else paused = true;
    }
  }

  window.addEventListener("hashchange", () => {
    if (!paused) return;
    paused = false;
    setStatus("loading", "Connecting…");
    loop();
  });

  /** Redraw the last data when the window changes size (charts are drawn at their pixel width). */
  function redrawOnResize() {
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => dashboard.data && render(dashboard.data), 150);
    });
  }

  redrawOnResize();
  followRecentTabs();
  loop();
})();
