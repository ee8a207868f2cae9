// Live updates: ONE event stream per tab (GET /api/v1/events, read through
// fetch so the bearer token can be sent), resumed with Last-Event-ID; polling
// every few seconds while the stream cannot be held; nothing while the tab is
// hidden; the "live / reconnecting" indicator in the header.

import { AUTH_REQUIRED, BASE, headers, token } from './api.js';

const POLL_MS = 5000;
const listeners = new Set();
let controller = null;
let lastId = null;
let failures = 0;
let retryTimer = null;
let pollTimer = null;
let started = false;

/** Calls `fn(event)` for every event; returns an unsubscribe function.
 * Events: the stream's (kind created, started, progress, completed, ...,
 * with jobId, status, type and usually job), plus {kind: 'connected'},
 * {kind: 'resync'} and {kind: 'poll'}: after those, refetch. */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(event) {
  for (const fn of [...listeners]) fn(event);
}

function indicate(state, text) {
  const el = document.getElementById('live');
  if (!el) return;
  el.dataset.state = state;
  el.textContent = text;
  el.title = state === 'live' ? 'Updates arrive as they happen' : text;
}

/** Starts the stream (once per tab). */
export function start() {
  if (started) return;
  started = true;
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) pause();
    else connect();
  });
  connect();
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function pause() {
  clearTimeout(retryTimer);
  stopPolling();
  const c = controller;
  controller = null;
  if (c) c.abort();
  indicate('paused', 'paused (tab hidden)');
}

function handleBlock(block) {
  let name = 'message';
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  if (id !== null) lastId = id;
  if (data.length === 0) return;
  let event;
  try {
    event = JSON.parse(data.join('\n'));
  } catch {
    return;
  }
  if (name === 'resync') event = { ...event, kind: 'resync' };
  emit(event);
}

async function connect() {
  if (document.hidden || controller || (AUTH_REQUIRED && !token())) return;
  clearTimeout(retryTimer);
  const c = new AbortController();
  controller = c;
  if (failures === 0) indicate('connecting', 'connecting…');
  try {
    const h = headers({ Accept: 'text/event-stream' });
    if (lastId) h['Last-Event-ID'] = lastId;
    const resp = await fetch(`${BASE}/api/v1/events`, { headers: h, signal: c.signal, cache: 'no-store' });
    if (!resp.ok || !resp.body) throw new Error(`event stream: HTTP ${resp.status}`);
    failures = 0;
    stopPolling();
    indicate('live', 'live');
    emit({ kind: 'connected' });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        handleBlock(block);
      }
    }
  } catch {
    // Aborted (tab hidden) or the connection failed: handled below.
  }
  if (controller !== c) return; // paused meanwhile
  controller = null;
  failures += 1;
  if (document.hidden) return;
  if (!pollTimer) {
    pollTimer = setInterval(() => emit({ kind: 'poll' }), POLL_MS);
  }
  indicate('reconnecting', 'reconnecting… (polling)');
  retryTimer = setTimeout(connect, Math.min(10000, 500 * 2 ** Math.min(failures, 5)));
}
