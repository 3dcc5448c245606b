// Small SVG charts drawn here (no library): a cost-vs-baseline chart over
// time buckets and horizontal bars. Every drawn datum carries its numbers
// in data- attributes, so what the chart shows can be checked.

import { svg } from './dom.js';
import { usd, count, when, tick } from './format.js';

const W = 900;

/// A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/// points: [{start, cost, baseline, events}] in time order, one per bucket.
export function timeChart(points, bucket) {
  const H = 280;
  const m = { left: 80, right: 10, top: 12, bottom: 28 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const top = niceMax(Math.max(0, ...points.map((p) => Math.max(p.baseline, p.cost))));
  const y = (v) => m.top + ph - (ph * Math.max(0, v)) / top;
  const slot = pw / Math.max(1, points.length);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart time-chart', role: 'img', 'aria-label': 'Cost with the optimizer and without it, over time' });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    chart.append(
      svg('line', { x1: m.left, x2: W - m.right, y1: y(v), y2: y(v), class: 'grid' }),
      svg('text', { x: m.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end', text: usd(Math.round(v)) }),
    );
  }
  const every = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    const x = m.left + i * slot + slot * 0.1;
    const w = Math.max(1, slot * 0.8);
    const g = svg('g', {
      class: 'bucket',
      'data-start-ms': p.start,
      'data-cost-micros': p.cost,
      'data-baseline-micros': p.baseline,
      'data-events': p.events,
    });
    g.append(
      svg('title', { text: `${when(p.start)}: ${usd(p.baseline)} without the optimizer, ${usd(p.cost)} with it, ${count(p.events)} requests` }),
      svg('rect', { x, width: w, y: y(p.baseline), height: y(0) - y(p.baseline), class: 'baseline' }),
      svg('rect', { x, width: w, y: y(p.cost), height: y(0) - y(p.cost), class: 'cost' }),
    );
    chart.append(g);
    if (i % every === 0) {
      chart.append(svg('text', { x: x + w / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle', text: tick(p.start, bucket) }));
    }
  });
  chart.append(svg('line', { x1: m.left, x2: W - m.right, y1: y(0), y2: y(0), class: 'zero' }));
  return chart;
}

/// rows: [{key, label, value, text}]: one horizontal bar each (value in
/// micro-USD, may be negative), labelled on the left, `text` on the right.
export function barChart(rows, name) {
  const rowH = 30;
  const m = { left: 150, right: 330, top: 6 };
  const H = m.top * 2 + rowH * rows.length;
  const pw = W - m.left - m.right;
  const lo = Math.min(0, ...rows.map((r) => r.value));
  const hi = Math.max(0, ...rows.map((r) => r.value));
  const span = hi - lo || 1;
  const x = (v) => m.left + (pw * (v - lo)) / span;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: `chart bar-chart ${name}`, role: 'img', 'aria-label': name });
  rows.forEach((r, i) => {
    const yy = m.top + i * rowH;
    const g = svg('g', { class: 'bar', 'data-key': r.key, 'data-value-micros': r.value });
    g.append(
      svg('text', { x: m.left - 8, y: yy + rowH / 2 + 4, class: 'label', 'text-anchor': 'end', text: r.label }),
      svg('rect', { x: Math.min(x(0), x(r.value)), y: yy + 5, height: rowH - 10, width: Math.max(1, Math.abs(x(r.value) - x(0))), class: r.value < 0 ? 'loss' : 'saving' }),
      svg('text', { x: m.left + pw + 8, y: yy + rowH / 2 + 4, class: 'value', text: r.text }),
    );
    chart.append(g);
  });
  chart.append(svg('line', { x1: x(0), x2: x(0), y1: 0, y2: H, class: 'zero' }));
  return chart;
}

/// One horizontal gauge (0..limit): spent, then outstanding, then what is left.
export function gauge(limit, spent, outstanding) {
  const w = (v) => (limit > 0 ? Math.max(0, Math.min(100, (100 * v) / limit)) : 0);
  const s = w(spent);
  const o = Math.min(100 - s, w(outstanding));
  return svg(
    'svg',
    { viewBox: '0 0 100 6', preserveAspectRatio: 'none', class: 'gauge', role: 'img', 'aria-label': 'spent, leased and left' },
    svg('rect', { x: 0, y: 0, width: 100, height: 6, class: 'left' }),
    svg('rect', { x: 0, y: 0, width: s, height: 6, class: 'spent' }),
    svg('rect', { x: s, y: 0, width: o, height: 6, class: 'leased' }),
  );
}
