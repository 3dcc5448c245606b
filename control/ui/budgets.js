// Budgets: every budget's limits, spend, outstanding leases and what is
// left, as a gauge per window; edited in place (PUT /v1/budgets, admin).

import { call, get } from './api.js';
import { el, fill, note } from './dom.js';
import { gauge } from './chart.js';
import { usd, dollars, offset, when } from './format.js';

// A message to show after the list is drawn again (e.g. "saved").
let flash = null;
// The latest render started; an older one draws nothing.
let latest = 0;

const MONEY = /^\d+(\.\d{1,6})?$/;

function field(label, name, value, attrs = {}) {
  return el('label', {}, `${label} `, el('input', { name, value: value ?? '', autocomplete: 'off', ...attrs }));
}

// The PUT body from a form, or an error message.
function budgetBody(form) {
  const v = (n) => form.elements[n].value.trim();
  const body = { tenant: v('tenant'), service: v('service') };
  if (!body.tenant) return 'Give a tenant.';
  for (const [input, key] of [['daily', 'daily_limit_micros'], ['monthly', 'monthly_limit_micros']]) {
    const d = v(input);
    if (!d) continue;
    if (!MONEY.test(d)) return `The ${input} limit is dollars, like 12.50 (at most 6 decimals).`;
    body[key] = d; // the API takes a decimal string of dollars
  }
  if (!body.daily_limit_micros && !body.monthly_limit_micros) return 'Give a daily or a monthly limit, or both.';
  const soft = v('soft');
  if (soft) {
    const n = Number(soft);
    if (!Number.isInteger(n) || n < 1 || n > 100) return 'The soft limit is a percentage from 1 to 100.';
    body.soft_limit_percent = n;
  }
  return body;
}

function budgetForm(b, onDone, onCancel) {
  const form = el(
    'form',
    { class: 'budget-form', method: 'post' },
    b ? el('input', { type: 'hidden', name: 'tenant', value: b.tenant }) : field('Tenant', 'tenant', '', { required: true }),
    b ? el('input', { type: 'hidden', name: 'service', value: b.service }) : field('Service (empty: tenant-wide)', 'service', ''),
    field('Daily limit $', 'daily', b?.daily_limit_micros != null ? dollars(b.daily_limit_micros) : '', { inputmode: 'decimal', size: 10 }),
    field('Monthly limit $', 'monthly', b?.monthly_limit_micros != null ? dollars(b.monthly_limit_micros) : '', { inputmode: 'decimal', size: 10 }),
    field('Soft limit %', 'soft', b ? b.soft_limit_percent : 90, { inputmode: 'numeric', size: 4 }),
    el('button', { type: 'submit', text: 'Save' }),
  );
  const msg = el('div', { class: 'form-message' });
  if (onCancel) {
    const cancel = el('button', { type: 'button', class: 'secondary', text: 'Cancel' });
    cancel.addEventListener('click', onCancel);
    form.append(cancel);
  }
  form.append(msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = budgetBody(form);
    if (typeof body === 'string') return fill(msg, note('error', body));
    try {
      const st = await call('PUT', '/v1/budgets', body);
      flash = note('ok', `Saved the budget of ${st.tenant}${st.service ? ` / ${st.service}` : ''}.`);
      onDone();
    } catch (e) {
      fill(msg, note('error', e.message));
    }
  });
  return form;
}

function windowLine(name, limit, spent, outstanding) {
  if (limit == null) {
    return el('div', { class: `window ${name}` }, el('span', { class: 'window-name', text: name }), el('span', { class: 'muted', text: `no limit (${usd(spent)} spent)` }));
  }
  const left = limit - spent - outstanding;
  return el(
    'div',
    { class: `window ${name}`, 'data-limit-micros': limit, 'data-spent-micros': spent },
    el('span', { class: 'window-name', text: name }),
    gauge(limit, spent, outstanding),
    el('span', { class: 'window-text', text: `${usd(spent)} spent + ${usd(outstanding)} leased of ${usd(limit)}: ${usd(left)} left` }),
  );
}

function state(b) {
  if (b.hard) return ['hard', 'Hard limit: nothing left, spending is refused'];
  if (b.soft) return ['soft', `Soft limit reached (${b.soft_limit_percent}%)`];
  return ['ok', 'Within budget'];
}

function card(b, rerender) {
  const [cls, text] = state(b);
  const edit = el('button', { type: 'button', class: 'edit', text: 'Edit' });
  const body = el(
    'div',
    { class: 'budget-body' },
    windowLine('daily', b.daily_limit_micros, b.daily_spent_micros, b.outstanding_micros),
    windowLine('monthly', b.monthly_limit_micros, b.monthly_spent_micros, b.outstanding_micros),
    el('p', {
      class: 'meta',
      text: `Remaining ${usd(b.remaining_micros)} (the least any window has left) · soft limit at ${b.soft_limit_percent}% · days and months at ${offset(b.utc_offset_minutes)}; this day ends ${when(b.day_ends_at_ms)}`,
    }),
  );
  const article = el(
    'article',
    { class: `budget state-${cls}`, 'data-tenant': b.tenant, 'data-service': b.service },
    el('header', {}, el('h3', {}, b.tenant, ' ', el('span', { class: 'service', text: b.service || 'tenant-wide' })), el('span', { class: `badge ${cls}`, text }), edit),
    body,
  );
  edit.addEventListener('click', () => {
    edit.hidden = true;
    fill(body, budgetForm(b, rerender, () => rerender()));
  });
  return article;
}

export async function render(root) {
  const seq = ++latest;
  const rerender = () => render(root).catch((e) => fill(root, el('h2', { text: 'Budgets' }), note('error', e.message)));
  const { budgets } = await get('/v1/budgets');
  if (seq !== latest) return;
  const parts = [el('h2', { text: 'Budgets' })];
  if (flash) {
    parts.push(flash);
    flash = null;
  }
  if (budgets.length === 0) {
    parts.push(
      el(
        'div',
        { id: 'budgets-empty' },
        note(
          'empty',
          el('b', { text: 'No budgets yet.' }),
          ' Without one, a tenant\'s spend is recorded but never refused. Set one below (admin token): at its soft limit (90% by default) an alert fires and responses carry ',
          el('code', { text: 'x-optimizer-warning: budget-soft-limit' }),
          '; when nothing is left, low and medium priority requests of routes with a ',
          el('code', { text: 'cost.budget' }),
          ' get 429 ',
          el('code', { text: 'budget_exceeded' }),
          '.',
        ),
      ),
    );
  } else {
    parts.push(el('div', { id: 'budget-list' }, budgets.map((b) => card(b, rerender))));
  }
  parts.push(el('h3', { text: 'Set a budget' }), el('div', { id: 'budget-new' }, budgetForm(null, rerender)));
  fill(root, parts);
}
