// Small SVG charts for the reports page, drawn from numbers with no library:
// stacked bars over time and horizontal bars by name. Colours come from the
// style sheet (classes), never from inline styles, so the page's CSP holds.
// Each chart is an image with a label that says what it shows; the figures
// themselves are in the tables beside it, for those who read rather than look.

const SVG = "http://www.w3.org/2000/svg";

function node(tag, attributes = {}, text) {
  const made = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
  if (text !== undefined) made.textContent = String(text);
  return made;
}

function frame(width, height, label) {
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart" });
  svg.append(node("title", {}, label));
  return svg;
}

// A round step for an axis that reaches `top`: 1, 2 or 5 times a power of ten.
function step(top) {
  if (top <= 5) return 1;
  const raw = top / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

// Bars over time, each stacked from `series` ([{key, label, className}]):
// points are [{label, tip, values: {key: number}}]. `width` is the box's, in
// CSS pixels, so that the text is drawn at its size rather than scaled.
export function stackedBars(points, series, label, width = 720) {
  const height = 220;
  const left = 36;
  const bottom = 24;
  const top = 8;
  const svg = frame(width, height, label);
  const highest = Math.max(1, ...points.map((p) => series.reduce((sum, s) => sum + (p.values[s.key] || 0), 0)));
  const unit = step(highest);
  const ceiling = Math.ceil(highest / unit) * unit;
  const plot = height - bottom - top;
  const y = (value) => top + plot - (value / ceiling) * plot;
  for (let tick = 0; tick <= ceiling; tick += unit) {
    svg.append(node("line", { x1: left, x2: width, y1: y(tick), y2: y(tick), class: "grid" }));
    svg.append(node("text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, tick));
  }
  const slot = (width - left) / Math.max(1, points.length);
  const every = Math.max(1, Math.ceil((points.length * 44) / (width - left))); // labels 44 px apart
  points.forEach((point, index) => {
    const x = left + index * slot + slot * 0.15;
    let base = 0;
    const group = node("g", { class: "bar" });
    group.append(node("title", {}, point.tip || point.label));
    for (const s of series) {
      const value = point.values[s.key] || 0;
      if (!value) continue;
      group.append(
        node("rect", { x, width: slot * 0.7, y: y(base + value), height: y(base) - y(base + value), class: s.className }),
      );
      base += value;
    }
    svg.append(group);
    if (index % every === 0) {
      svg.append(node("text", { x: x + slot * 0.35, y: height - 6, class: "axis", "text-anchor": "middle" }, point.label));
    }
  });
  return svg;
}

// Horizontal bars by name: rows are [{label, value, text, className}];
// `highest` is the scale's end (1 for shares).
export function horizontalBars(rows, label, highest, width = 720) {
  const line = 26;
  const left = Math.min(150, width * 0.3);
  const room = 110; // for the figure after the bar
  const height = Math.max(1, rows.length) * line + 8;
  const svg = frame(width, height, label);
  const end = highest || Math.max(1, ...rows.map((r) => r.value));
  rows.forEach((row, index) => {
    const y = 4 + index * line;
    const length = ((width - left - room) * Math.max(0, row.value)) / end;
    svg.append(node("text", { x: left - 8, y: y + 16, class: "axis name", "text-anchor": "end" }, row.label));
    svg.append(node("rect", { x: left, y: y + 3, width: width - left - room, height: line - 8, class: "track" }));
    svg.append(node("rect", { x: left, y: y + 3, width: length, height: line - 8, class: row.className || "answered" }));
    svg.append(node("text", { x: left + length + 6, y: y + 16, class: "axis" }, row.text));
  });
  return svg;
}
