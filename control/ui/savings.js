// Savings: cost with the optimizer against the baseline (every request one
// upstream call) over time, and the saving by strategy and by tenant, from
// GET /v1/spend.

import { get } from './api.js';
import { el, fill, note } from './dom.js';
import { timeChart, barChart } from './chart.js';
import { usd, count, percent, when } from './format.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const RANGES = {
  '24h': ['Last 24 hours', DAY],
  '7d': ['Last 7 days', 7 * DAY],
  '30d': ['Last 30 days', 30 * DAY],
};
const STRATEGIES = {
  upstream: 'Upstream',
  cache: 'Cache',
  coalesced: 'Coalesced',
  batched: 'Batched',
  routed: 'Routed',
  folded: 'Folded sums',
};

// The controls' choice, kept across renders.
const choice = { tenant: '', range: '24h', bucket: 'hour' };
// The latest render started: an older one still waiting for the API
// draws nothing (choices changed quickly must not end on a stale view).
let latest = 0;

function mod(a, b) {
  return ((a % b) + b) % b;
}

// Every bucket of [from, to), those without events at zero. Buckets start
// where the API's do: at the report's UTC offset.
function points(report, from, to) {
  const width = choice.bucket === 'hour' ? HOUR : DAY;
  const off = report.utc_offset_minutes * 60_000;
  const rows = new Map(report.rows.map((r) => [r.start_ms, r]));
  const out = [];
  for (let s = from - mod(from + off, width); s < to; s += width) {
    const r = rows.get(s);
    rows.delete(s);
    out.push({ start: s, cost: r?.cost_micros ?? 0, baseline: r?.baseline_micros ?? 0, events: r?.events ?? 0 });
  }
  // Never drop money the API reported, even off the expected grid.
  for (const r of rows.values()) {
    out.push({ start: r.start_ms, cost: r.cost_micros, baseline: r.baseline_micros, events: r.events });
  }
  return out.sort((a, b) => a.start - b.start);
}

function select(id, label, options, value, onChange) {
  const s = el('select', { id });
  for (const [v, text] of options) s.append(el('option', { value: v, selected: v === value, text }));
  s.addEventListener('change', () => onChange(s.value));
  return el('label', {}, `${label} `, s);
}

function controls(tenants, rerender) {
  const set = (k) => (v) => {
    choice[k] = v;
    rerender();
  };
  const refresh = el('button', { type: 'button', id: 'savings-refresh', text: 'Refresh' });
  refresh.addEventListener('click', rerender);
  return el(
    'div',
    { class: 'controls' },
    select('savings-tenant', 'Tenant', [['', 'All tenants'], ...tenants.map((t) => [t, t])], choice.tenant, set('tenant')),
    select('savings-range', 'Range', Object.entries(RANGES).map(([k, [t]]) => [k, t]), choice.range, set('range')),
    select('savings-bucket', 'Buckets', [['hour', 'Hourly'], ['day', 'Daily']], choice.bucket, set('bucket')),
    refresh,
  );
}

function summary(t, from, to, tenant) {
  const who = tenant ? `tenant ${tenant}` : 'all tenants';
  return el(
    'p',
    {
      id: 'savings-summary',
      class: 'summary',
      'data-from-ms': from,
      'data-to-ms': to,
      'data-tenant': tenant ?? '',
      'data-range': choice.range,
      'data-bucket': choice.bucket,
      'data-events': t.events,
      'data-cost-micros': t.cost_micros,
      'data-baseline-micros': t.baseline_micros,
      'data-savings-micros': t.savings_micros,
    },
    `From ${when(from)} to ${when(to)}, ${who} made `,
    el('b', { class: 'events', text: count(t.events) }),
    ' priced requests. They cost ',
    el('b', { class: 'cost', text: usd(t.cost_micros) }),
    ' with the optimizer instead of ',
    el('b', { class: 'baseline', text: usd(t.baseline_micros) }),
    ' without it: ',
    el('b', { class: 'saved', text: usd(t.savings_micros) }),
    ` saved (${percent(t.savings_micros, t.baseline_micros)}).`,
  );
}

function bars(rows, name, label) {
  const data = rows.map((r) => ({
    key: r.key,
    label: label(r.key),
    value: r.savings_micros,
    text: `${usd(r.savings_micros)} saved of ${usd(r.baseline_micros)} (${count(r.events)} requests)`,
  }));
  return barChart(data, name);
}

function emptyState(tenant, anySpend) {
  if (anySpend) {
    return note('empty', `No spend ${tenant ? `of ${tenant} ` : ''}in this range. Pick a longer range or another tenant.`);
  }
  return note(
    'empty',
    el('b', { text: 'No spend recorded yet.' }),
    ' cost-control shows what gateways report. To see savings here: give the filter an ',
    el('code', { text: 'accounting' }),
    ' block that points ',
    el('code', { text: 'cost_control' }),
    ' at this service with its gateway token, price a route (',
    el('code', { text: 'cost.cost_per_call' }),
    '), and send traffic through the gateway. Spend arrives every ',
    el('code', { text: 'accounting.flush_ms' }),
    ' (1 s by default). Then set budgets under Budgets.',
  );
}

export async function render(root) {
  const seq = ++latest;
  const rerender = () => render(root).catch((e) => fill(root, el('h2', { text: 'Savings' }), note('error', e.message)));
  const to = Date.now() + 1;
  const from = to - RANGES[choice.range][1];
  const tenant = choice.tenant || undefined;
  const [series, byStrategy, byTenant, budgets] = await Promise.all([
    get('/v1/spend', { tenant, from, to, group_by: choice.bucket }),
    get('/v1/spend', { tenant, from, to, group_by: 'strategy' }),
    get('/v1/spend', { from, to, group_by: 'tenant' }),
    get('/v1/budgets'),
  ]);
  if (seq !== latest) return;
  const tenants = [...new Set([...byTenant.rows.map((r) => r.key), ...budgets.budgets.map((b) => b.tenant), choice.tenant])]
    .filter(Boolean)
    .sort();
  const parts = [el('h2', { text: 'Savings' }), controls(tenants, rerender)];
  if (series.total.events === 0) {
    const ever = byTenant.total.events > 0 || (await get('/v1/spend', { from: 0, group_by: 'tenant' })).total.events > 0;
    if (seq !== latest) return;
    parts.push(el('div', { id: 'savings-empty' }, emptyState(tenant, ever)));
    fill(root, parts);
    return;
  }
  parts.push(
    summary(series.total, from, to, tenant),
    el('h3', { text: `Cost over time (${choice.bucket === 'hour' ? 'hourly' : 'daily'})` }),
    el(
      'p',
      { class: 'legend' },
      el('span', { class: 'swatch baseline' }),
      ' without the optimizer (baseline) ',
      el('span', { class: 'swatch cost' }),
      ' with the optimizer; the gap is the saving.',
    ),
    el('div', { id: 'savings-time' }, timeChart(points(series, from, to), choice.bucket)),
    el('h3', { text: 'Saving by strategy' }),
    el('div', { id: 'savings-strategy' }, bars(byStrategy.rows, 'by-strategy', (k) => STRATEGIES[k] ?? (k || '(none)'))),
  );
  if (!tenant) {
    parts.push(el('h3', { text: 'Saving by tenant' }), el('div', { id: 'savings-tenant' }, bars(byTenant.rows, 'by-tenant', (k) => k)));
  }
  fill(root, parts);
}
