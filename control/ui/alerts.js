// Alerts: the latest soft and hard budget alerts (GET /v1/alerts).

import { get } from './api.js';
import { el, fill, note } from './dom.js';
import { usd, percent, when } from './format.js';

const LIMIT = 50;

function row(a) {
  return el(
    'tr',
    { class: `alert level-${a.level}`, 'data-id': a.id },
    el('td', { text: when(a.fired_at_ms) }),
    el('td', { text: a.tenant }),
    el('td', { text: a.service || 'tenant-wide' }),
    el('td', { text: a.window }),
    el('td', {}, el('span', { class: `badge ${a.level}`, text: a.level === 'hard' ? 'hard: limit reached' : 'soft' })),
    el('td', { class: 'num', text: `${usd(a.spent_micros)} of ${usd(a.limit_micros)} (${percent(a.spent_micros, a.limit_micros)})` }),
    el('td', { text: a.delivered ? 'delivered' : a.attempts ? `failed (${a.attempts} attempts)` : 'not sent' }),
  );
}

export async function render(root) {
  const { alerts } = await get('/v1/alerts', { limit: LIMIT });
  const parts = [el('h2', { text: 'Alerts' })];
  if (alerts.length === 0) {
    parts.push(
      el(
        'div',
        { id: 'alerts-empty' },
        note(
          'empty',
          el('b', { text: 'No alerts yet.' }),
          ' An alert fires once per window when a tenant\'s spend reaches its soft limit (90% of a limit by default), and again when it reaches the limit. Set budgets under Budgets; start cost-control with ',
          el('code', { text: '--webhook URL' }),
          ' to have each one posted too.',
        ),
      ),
    );
  } else {
    parts.push(
      el('p', { class: 'muted', text: `The latest ${Math.min(LIMIT, alerts.length)}, newest first.` }),
      el(
        'table',
        { id: 'alert-table' },
        el('thead', {}, el('tr', {}, ['Fired', 'Tenant', 'Service', 'Window', 'Level', 'Spent', 'Webhook'].map((h) => el('th', { text: h })))),
        el('tbody', {}, alerts.map(row)),
      ),
    );
  }
  fill(root, parts);
}
