// Workers and types: each worker's heartbeat and running jobs; per-type
// counts, run-time percentiles (from the run-time histograms of /metrics)
// and pause / resume (claims of a paused type stop in every process;
// running jobs go on).

import { get, post, text } from './api.js';
import { onEvent } from './live.js';
import { STATUSES, ago, confirmDialog, duration, fill, h, jobLink, progressBar, throttle, toast } from './ui.js';

const BUCKET = /^semiont_jobs_run_seconds_bucket\{type="((?:[^"\\]|\\.)*)",outcome="[a-z]+",le="([^"]+)"\} (\S+)$/;

/** Per type: the run-time histogram of every attempt ({le, count} sorted,
 * cumulative), from the Prometheus text. */
export function runHistograms(metrics) {
  const byType = new Map();
  for (const line of metrics.split('\n')) {
    const m = BUCKET.exec(line);
    if (!m) continue;
    const type = m[1].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    const le = m[2] === '+Inf' ? Infinity : Number(m[2]);
    const buckets = byType.get(type) ?? new Map();
    buckets.set(le, (buckets.get(le) ?? 0) + Number(m[3]));
    byType.set(type, buckets);
  }
  const out = new Map();
  for (const [type, buckets] of byType) {
    out.set(type, [...buckets.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le));
  }
  return out;
}

/** The q-quantile of a cumulative histogram, interpolated inside its bucket
 * (as Prometheus's histogram_quantile); null when empty. */
export function quantile(q, buckets) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      if (count === prevCount) return le;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

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
    const [w, t, metrics] = await Promise.all([get('/workers'), get('/types'), text('/metrics')]);
    if (disposed) return;
    const runs = runHistograms(metrics);
    const stat = (type) => {
      const b = runs.get(type) ?? [];
      const n = b.length ? b[b.length - 1].count : 0;
      const fmt = (q) => { const v = quantile(q, b); return v === null ? '—' : duration(v); };
      return { n, p50: fmt(0.5), p95: fmt(0.95), p99: fmt(0.99) };
    };
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
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'type' }), STATUSES.map((s) => h('th', { scope: 'col', class: 'num', text: s })), h('th', { scope: 'col', class: 'num', text: 'total' }),
          h('th', { scope: 'col', class: 'num', text: 'runs' }), ['p50', 'p95', 'p99'].map((p) => h('th', { scope: 'col', class: 'num', title: 'run time, estimated from the histogram since the server started', text: `${p} run` })),
          h('th', { scope: 'col', text: 'claims' }), ctx.canWrite ? h('th', { scope: 'col', text: 'actions' }) : null)),
        h('tbody', {}, t.types.map((x) => h('tr', { dataset: { type: x.type } },
          h('th', { scope: 'row' }, h('a', { href: `#/jobs?type=${encodeURIComponent(x.type)}`, text: x.type })),
          STATUSES.map((s) => h('td', { class: 'num', text: String(x[s]) })),
          h('td', { class: 'num', text: String(x.total) }),
          ((r) => [h('td', { class: 'num runs', text: String(r.n) }), h('td', { class: 'num p50', text: r.p50 }), h('td', { class: 'num p95', text: r.p95 }), h('td', { class: 'num p99', text: r.p99 })])(stat(x.type)),
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
