// The dashboard's entry: sign-in when the API wants a token, the caller's
// role (read-only mode hides every action), hash routing (#/, #/jobs?...,
// #/job/<id>, #/workers) and the one live event stream of the tab.

import { AUTH_REQUIRED, ApiError, get, setToken, token } from './api.js';
import * as live from './live.js';
import { h, fill, toast } from './ui.js';
import * as overview from './overview.js';
import * as jobs from './jobs.js';
import * as job from './job.js';
import * as workers from './workers.js';

const main = document.getElementById('main');
let current = null; // { route, page }
let ctx = null;

/** The route and its parameters from location.hash. */
function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, q = ''] = raw.split('?');
  const params = new URLSearchParams(q);
  if (path.startsWith('/job/')) return { route: 'job', id: decodeURIComponent(path.slice(5)), params };
  if (path === '/jobs') return { route: 'jobs', params };
  if (path === '/workers') return { route: 'workers', params };
  return { route: 'overview', params };
}

const PAGES = { overview, jobs, job, workers };

function navigate() {
  const where = parseHash();
  for (const a of document.querySelectorAll('#nav a')) {
    const on = a.dataset.route === where.route || (where.route === 'job' && a.dataset.route === 'jobs');
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // Same page, new parameters (the jobs page's filters): let it update in
  // place, so focus stays in the control being used.
  if (current && current.route === where.route && where.route !== 'job' && current.page.update) {
    current.page.update(where);
    return;
  }
  if (current) current.page.dispose?.();
  fill(main);
  current = { route: where.route, page: PAGES[where.route].render(main, where, ctx) };
}

function showLogin(message) {
  document.getElementById('live').hidden = true;
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true });
  const form = h('form', {
    id: 'login',
    onsubmit: (e) => {
      e.preventDefault();
      setToken(input.value.trim());
      boot();
    },
  },
  h('label', { for: 'token', text: 'Access token (role read, write or admin)' }),
  input,
  h('button', { type: 'submit', class: 'primary', text: 'Sign in' }));
  fill(main, h('section', { class: 'panel login' },
    h('h1', { text: 'Sign in' }),
    message ? h('p', { class: 'err', role: 'alert', text: message }) : null,
    form));
  input.focus();
}

async function boot() {
  if (AUTH_REQUIRED && !token()) {
    showLogin();
    return;
  }
  let me;
  try {
    me = await get('/whoami');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      setToken(null);
      showLogin('That token was not accepted.');
    } else {
      fill(main, h('p', { role: 'alert', text: `cannot reach the API: ${e.message}` }));
    }
    return;
  }
  ctx = {
    role: me.role,
    canWrite: me.role === 'write' || me.role === 'admin',
    canAdmin: me.role === 'admin',
    version: me.version,
  };
  document.body.classList.toggle('read-only', !ctx.canWrite);
  const who = document.getElementById('who');
  fill(who, `role ${me.role}`, !ctx.canWrite ? h('span', { class: 'readonly-note', id: 'read-only', text: 'read-only' }) : null);
  who.classList.toggle('is-read-only', !ctx.canWrite);
  const signout = document.getElementById('signout');
  signout.hidden = !me.authenticated;
  document.getElementById('live').hidden = false;
  live.start();
  window.addEventListener('hashchange', navigate);
  navigate();
}

document.getElementById('signout').addEventListener('click', () => {
  setToken(null);
  location.replace(location.pathname + location.search);
});

window.addEventListener('unhandledrejection', (e) => {
  const reason = e.reason;
  if (reason instanceof ApiError) {
    e.preventDefault();
    toast(reason.message, true);
  }
});

boot();
