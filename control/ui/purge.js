// Purge: make a tenant's cached answers unreachable by key, prefix or tag
// (POST /v1/purge, admin). Gateways apply it at their next purge poll.

import { call } from './api.js';
import { el, fill, note } from './dom.js';

const KINDS = [
  ['key', 'Key: one URL (path and query, as a client sends it)'],
  ['prefix', 'Prefix: a path and everything below it'],
  ['tag', 'Tag: every answer that carried it in cache-tag or surrogate-key'],
];

export async function render(root) {
  const kind = el('select', { name: 'kind' }, KINDS.map(([v, t]) => el('option', { value: v, text: t })));
  const msg = el('div', { id: 'purge-result' });
  const form = el(
    'form',
    { id: 'purge-form', method: 'post' },
    el('label', {}, 'Tenant ', el('input', { name: 'tenant', required: true, autocomplete: 'off' })),
    el('label', {}, 'What ', kind),
    el('label', {}, 'Value ', el('input', { name: 'value', required: true, autocomplete: 'off', size: 40, placeholder: '/api/items/1' })),
    el('button', { type: 'submit', text: 'Purge' }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tenant = form.elements.tenant.value.trim();
    const value = form.elements.value.value.trim();
    if (!tenant || !value) return fill(msg, note('error', 'Give a tenant and a value.'));
    try {
      const p = await call('POST', '/v1/purge', { tenant, [kind.value]: value });
      const done = note('ok', `Purged ${p.kind} ${p.value} of ${p.tenant}: generation ${p.generation}. Gateways apply it at their next purge poll (accounting.purge_poll_ms, 1 s by default).`);
      done.dataset.kind = p.kind;
      fill(msg, done);
    } catch (e) {
      fill(msg, note('error', e.message));
    }
  });
  fill(root, el('h2', { text: 'Purge' }), el('p', { class: 'muted', text: 'Needs the admin token. A purge bumps a generation; it deletes nothing, and the matching entries are never served again.' }), form, msg);
}
