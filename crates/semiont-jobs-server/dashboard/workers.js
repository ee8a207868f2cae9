// Workers and types: each worker's heartbeat and running jobs; per-type
// counts with pause / resume (claims of a paused type stop in every
// process; running jobs go on).

import { get, post } from './api.js';
import { onEvent } from './live.js';
import { STATUSES, ago, confirmDialog, duration, fill, h, jobLink, progressBar, throttle, toast } from './ui.js';

export function render(main, where, ctx) {
  const workers = h('section', { class: 'panel', id: 'workers' }, h('h2', { text: 'Workers' }));
  const types = h('section', { class: 'panel', id: 'types' }, h('h2', { text: 'Job types' }));
  const wBody = h('div');
  const tBody = h('div');
  workers.append(wBody);
  types.append(tBody);
  main.append(h('h1', { text: 'Workers & types' }), workers, types);
  let disposed = false;

  async function load() {
    const [w, t] = await Promise.all([get('/workers'), get('/types')]);
    if (disposed) return;
    fill(wBody, w.workers.length === 0
      ? h('p', { class: 'empty', text: 'No workers have registered.' })
      : h('table', {},
        h('thead', {}, h('tr', {}, ['worker', 'state', 'host', 'pid', 'last heartbeat', 'lease', 'running jobs'].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, w.workers.map((x) => h('tr', { dataset: { workerId: x.id } },
          h('td', { class: 'mono', text: x.id }),
          h('td', {}, h('span', { class: `badge ${x.alive ? 'status-complete' : 'status-cancelled'}`, text: x.alive ? 'alive' : 'gone' })),
          h('td', { text: x.host ?? '—' }),
          h('td', { class: 'num', text: x.pid ?? '—' }),
          h('td', {}, x.lastSeen ? h('time', { datetime: x.lastSeen, title: x.lastSeen, text: ago(x.lastSeen) }) : '—'),
          h('td', { text: duration(x.leaseSeconds) }),
          h('td', {}, x.running.length === 0 ? h('span', { class: 'muted', text: 'idle' })
            : h('ul', {}, x.running.map((j) => h('li', {}, jobLink(j.id), ` ${j.type} (attempt ${j.attempt}) `, progressBar({ ...j, status: 'running' }))))))))),
    w.runningTotal > w.workers.reduce((n, x) => n + x.running.length, 0) ? h('p', { class: 'muted', text: `${w.runningTotal} jobs running in all.` }) : null);

    fill(tBody, t.types.length === 0
      ? h('p', { class: 'empty', text: 'No job types yet.' })
      : h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'type' }), STATUSES.map((s) => h('th', { scope: 'col', class: 'num', text: s })), h('th', { scope: 'col', class: 'num', text: 'total' }), h('th', { scope: 'col', text: 'claims' }), ctx.canWrite ? h('th', { scope: 'col', text: 'actions' }) : null)),
        h('tbody', {}, t.types.map((x) => h('tr', { dataset: { type: x.type } },
          h('th', { scope: 'row' }, h('a', { href: `#/jobs?type=${encodeURIComponent(x.type)}`, text: x.type })),
          STATUSES.map((s) => h('td', { class: 'num', text: String(x[s]) })),
          h('td', { class: 'num', text: String(x.total) }),
          h('td', {}, x.paused ? h('span', { class: 'badge status-pending', text: 'paused' }) : h('span', { class: 'muted', text: 'active' })),
          ctx.canWrite ? h('td', {}, h('button', {
            type: 'button', class: 'type-toggle', dataset: { action: x.paused ? 'resume' : 'pause' },
            'aria-label': `${x.paused ? 'Resume' : 'Pause'} claims of ${x.type}`,
            onclick: () => toggle(x.type, x.paused),
          }, x.paused ? 'Resume' : 'Pause')) : null)))));
  }

  async function toggle(type, paused) {
    const action = paused ? 'resume' : 'pause';
    const q = paused ? `Resume claims of ${type}?` : `Pause claims of ${type}? No worker of any process starts its jobs until resumed; running jobs go on.`;
    if (!(await confirmDialog(q, paused ? 'Resume' : 'Pause'))) return;
    await post(`/types/${encodeURIComponent(type)}/${action}`);
    toast(`${type} ${paused ? 'resumed' : 'paused'}`);
    reload();
  }

  const reload = throttle(() => load().catch((e) => fill(wBody, h('p', { role: 'alert', text: `cannot load: ${e.message}` }))), 1000);
  reload();
  const off = onEvent(() => reload());
  const timer = setInterval(() => { if (!document.hidden) reload(); }, 5000);
  return {
    dispose() {
      disposed = true;
      off();
      clearInterval(timer);
    },
  };
}
