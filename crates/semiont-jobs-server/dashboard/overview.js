// Overview: counts per status and type (live), throughput and the oldest
// due job's age over the last hour (GET /history, inline SVG), failures
// grouped by error message, and the live workers with their running jobs.

import { get } from './api.js';
import { onEvent } from './live.js';
import { STATUSES, ago, barChart, duration, fill, h, jobLink, progressBar, throttle } from './ui.js';

/** Failed jobs read to group failures. */
const FAILED_READ = 500;

export function render(main) {
  const cards = h('div', { class: 'cards', id: 'status-cards' });
  const types = h('section', { class: 'panel', id: 'types-panel' }, h('h2', { text: 'Jobs per type' }));
  const throughput = h('section', { class: 'panel', id: 'throughput-panel' }, h('h2', { text: 'Finished per minute (last hour)' }));
  const due = h('section', { class: 'panel', id: 'due-panel' }, h('h2', { text: 'Oldest due job waiting (last hour)' }));
  const failures = h('section', { class: 'panel', id: 'failures-panel' }, h('h2', { text: 'Failures by error' }));
  const workers = h('section', { class: 'panel', id: 'workers-panel' }, h('h2', { text: 'Live workers' }));
  main.append(
    h('h1', { text: 'Overview' }),
    cards,
    h('div', { class: 'grid' }, throughput, due),
    h('div', { class: 'grid' }, types, workers),
    failures,
  );
  const body = (section) => {
    let b = section.querySelector('.body');
    if (!b) {
      b = h('div', { class: 'body' });
      section.append(b);
    }
    return b;
  };

  let disposed = false;
  async function refreshCounts() {
    const [stats, typeList, workerList] = await Promise.all([get('/stats'), get('/types'), get('/workers')]);
    if (disposed) return;
    fill(cards, STATUSES.map((s) => h('a', { class: 'card', href: `#/jobs?status=${s}`, dataset: { status: s } },
      h('span', { class: `n status-${s}`, text: String(stats[s] ?? 0) }),
      h('span', { class: 'l', text: s }))),
    h('div', { class: 'card' }, h('span', { class: 'n', text: String(stats.total ?? STATUSES.reduce((n, s) => n + (stats[s] ?? 0), 0)) }), h('span', { class: 'l', text: 'total' })));
    fill(body(types), typeList.types.length === 0
      ? h('p', { class: 'empty', text: 'No jobs yet.' })
      : h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'type' }), STATUSES.map((s) => h('th', { scope: 'col', class: 'num', text: s })))),
        h('tbody', {}, typeList.types.map((t) => h('tr', {},
          h('th', { scope: 'row' }, h('a', { href: `#/jobs?type=${encodeURIComponent(t.type)}`, text: t.type }), t.paused ? h('span', { class: 'muted', text: ' (paused)' }) : null),
          STATUSES.map((s) => h('td', { class: 'num' }, t[s] ? h('a', { href: `#/jobs?type=${encodeURIComponent(t.type)}&status=${s}`, text: String(t[s]) }) : '0')))))));
    const alive = workerList.workers.filter((w) => w.alive || w.running.length > 0);
    fill(body(workers), alive.length === 0
      ? h('p', { class: 'empty', text: 'No live workers.' })
      : h('ul', {}, alive.map((w) => h('li', {},
        h('span', { class: 'mono', text: w.id }), ' ',
        h('span', { class: 'muted', text: `${w.alive ? 'alive' : 'not alive'}, seen ${ago(w.lastSeen)}` }),
        w.running.length ? h('ul', {}, w.running.map((j) => h('li', {}, jobLink(j.id), ` ${j.type} `, progressBar({ ...j, status: 'running' })))) : h('span', { class: 'muted', text: ' — idle' })))));
  }

  async function refreshFailures() {
    const page = await get(`/jobs?status=failed&limit=${FAILED_READ}`);
    if (disposed) return;
    const groups = new Map();
    for (const job of page.jobs) {
      const key = job.error ?? '(no message)';
      const g = groups.get(key) ?? { count: 0, types: new Set(), newest: job };
      g.count += 1;
      g.types.add(job.type);
      groups.set(key, g);
    }
    const rows = [...groups.entries()].sort((a, b) => b[1].count - a[1].count);
    fill(body(failures), rows.length === 0
      ? h('p', { class: 'empty', text: 'No failed jobs.' })
      : [h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'num', text: 'jobs' }), h('th', { scope: 'col', text: 'error' }), h('th', { scope: 'col', text: 'types' }), h('th', { scope: 'col', text: 'newest' }))),
        h('tbody', {}, rows.map(([message, g]) => h('tr', {},
          h('td', { class: 'num', text: String(g.count) }),
          h('td', { class: 'err', text: message }),
          h('td', {}, [...g.types].map((t, i) => [i ? ', ' : '', h('a', { href: `#/jobs?status=failed&type=${encodeURIComponent(t)}`, text: t })])),
          h('td', {}, jobLink(g.newest.id)))))),
      page.total > page.jobs.length ? h('p', { class: 'muted', text: `Grouped from the newest ${page.jobs.length} of ${page.total} failed jobs.` }) : null]);
  }

  async function refreshHistory() {
    const history = await get('/history');
    if (disposed) return;
    const minutes = history.minutes;
    const label = (m) => new Date(m.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const finished = minutes.map((m) => ({ value: m.finished, observed: m.observed, label: `${label(m)} (${m.complete} complete, ${m.failed} failed, ${m.cancelled} cancelled)`, bad: m.failed > m.complete }));
    const ages = minutes.map((m) => ({ value: m.oldestDueSeconds ?? 0, observed: m.observed && m.oldestDueSeconds !== undefined, label: label(m) }));
    const total = minutes.reduce((n, m) => n + m.finished, 0);
    const lastMinute = minutes[minutes.length - 1];
    fill(body(throughput),
      barChart(finished, { title: 'Jobs finished per minute', unit: 'jobs', id: 'chart-throughput' }),
      h('div', { class: 'chart-caption' }, h('span', { text: '60 min ago' }), h('span', { id: 'throughput-total', text: `${total} in the hour, ${lastMinute.finished} this minute` }), h('span', { text: 'now' })));
    const worst = Math.max(0, ...ages.map((a) => a.value));
    fill(body(due),
      barChart(ages, { title: 'Oldest due job waiting', unit: 's', id: 'chart-due' }),
      h('div', { class: 'chart-caption' }, h('span', { text: '60 min ago' }), h('span', { text: `now ${duration(lastMinute.oldestDueSeconds ?? 0)}, worst ${duration(worst)}` }), h('span', { text: 'now' })));
  }

  const counts = throttle(() => refreshCounts().catch(report), 700);
  const slow = throttle(() => Promise.all([refreshFailures(), refreshHistory()]).catch(report), 3000);
  function report(e) {
    if (!disposed) fill(body(workers), h('p', { role: 'alert', text: `cannot refresh: ${e.message}` }));
  }
  counts();
  slow();
  const off = onEvent((e) => {
    counts();
    if (['connected', 'poll', 'resync', 'completed', 'failed', 'cancelled', 'deleted'].includes(e.kind)) slow();
  });
  // Heartbeat ages and the current minute move without events.
  const timer = setInterval(() => {
    if (!document.hidden) {
      counts();
      slow();
    }
  }, 15000);
  return {
    dispose() {
      disposed = true;
      off();
      clearInterval(timer);
    },
  };
}
