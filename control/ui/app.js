// The dashboard's shell: sign-in with a token, tabs, one module per view.

import { token, get, whenUnauthorized } from './api.js';
import { el, fill, note } from './dom.js';
import * as savings from './savings.js';
import * as budgets from './budgets.js';
import * as alerts from './alerts.js';
import * as purge from './purge.js';

const VIEWS = { savings, budgets, alerts, purge };
const TITLES = { savings: 'Savings', budgets: 'Budgets', alerts: 'Alerts', purge: 'Purge' };
const $ = (id) => document.getElementById(id);

// Signed out: no token kept, no data left on the page.
function signedOut(message) {
  token.clear();
  $('tabs').hidden = true;
  $('sign-out').hidden = true;
  for (const v of document.querySelectorAll('.view')) {
    v.hidden = true;
    v.replaceChildren();
    delete v.dataset.state;
  }
  $('sign-in').hidden = false;
  const err = $('sign-in-error');
  err.textContent = message ?? '';
  err.hidden = !message;
}

async function show() {
  if (!token.get()) return signedOut();
  const name = VIEWS[location.hash.slice(1)] ? location.hash.slice(1) : 'savings';
  $('sign-in').hidden = true;
  $('tabs').hidden = false;
  $('sign-out').hidden = false;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const n of Object.keys(VIEWS)) $(`view-${n}`).hidden = n !== name;
  const root = $(`view-${name}`);
  root.dataset.state = 'loading';
  try {
    await VIEWS[name].render(root);
    root.dataset.state = 'ready';
  } catch (e) {
    if (e.status === 401) return; // signed out with the message already
    fill(root, el('h2', { text: TITLES[name] }), note('error', e.message));
    root.dataset.state = 'error';
  }
}

whenUnauthorized((e) => signedOut(e.message));

function start() {
  $('token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    const t = input.value.trim();
    input.value = '';
    if (!t) return;
    token.set(t);
    try {
      await get('/v1/budgets'); // any read: does cost-control take this token?
    } catch (e) {
      if (e.status !== 401) signedOut(e.message);
      return;
    }
    show();
  });
  $('sign-out').addEventListener('click', () => signedOut());
  window.addEventListener('hashchange', show);
  show();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
