// Small DOM helpers shared by the pages: element building (never from HTML text),
// status badges, times, progress, the confirmation dialog, toasts and the
// inline-SVG bar chart.

/** Creates an element. `attrs`: class, text, on<event> handlers, dataset
 * (object), and other attributes; `children`: nodes, strings, arrays, null. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const STATUSES = ['pending', 'running', 'complete', 'failed', 'cancelled'];

export function badge(status) {
  return h('span', { class: `badge status-${status}`, text: status });
}

export function jobLink(id) {
  return h('a', { href: `#/job/${encodeURIComponent(id)}`, class: 'mono', text: id });
}

/** A local date and time, with the ISO string as a tooltip. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted', text: '—' });
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso, text: d.toLocaleString() });
}

/** "12 s", "3 min", "2 h 5 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function ago(iso) {
  if (!iso) return '—';
  return `${duration((Date.now() - new Date(iso).getTime()) / 1000)} ago`;
}

/** The completion of a job's progress in percent, or null: the percentage,
 * else detection's entity types, else steps or items. */
export function percent(progress) {
  if (!progress || typeof progress !== 'object') return null;
  if (typeof progress.percentage === 'number') return progress.percentage;
  const ratio = (done, total) => (typeof done === 'number' && typeof total === 'number' && total > 0 ? (100 * done) / total : null);
  return ratio(progress.processedEntityTypes, progress.totalEntityTypes)
    ?? ratio(progress.currentStep, progress.totalSteps)
    ?? ratio(progress.currentItem, progress.totalItems);
}

/** A labelled <progress> for a job (empty span when it has none). */
export function progressBar(job, big = false) {
  const pct = percent(job.progress);
  if (pct === null) return h('span', { class: 'muted', text: job.status === 'running' ? 'running' : '' });
  const label = `${Math.round(pct)}%`;
  return h('progress', {
    class: big ? 'big' : null,
    max: 100,
    value: Math.max(0, Math.min(100, pct)),
    'aria-label': `progress of ${job.id}: ${label}`,
    title: job.progress?.message ?? label,
    dataset: { jobId: job.id },
  });
}

/** Asks for confirmation in the page's modal dialog; resolves true on OK. */
export function confirmDialog(message, okLabel = 'Confirm') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = message;
  document.getElementById('confirm-yes').textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    document.getElementById('confirm-no').focus();
  });
}

/** A short message at the corner of the page. */
export function toast(message, error = false) {
  const box = document.getElementById('toasts');
  const el = h('div', { class: error ? 'toast error' : 'toast', text: message });
  box.append(el);
  setTimeout(() => el.remove(), error ? 8000 : 4000);
}

/** Runs `fn` at most once per `ms` (the last call wins, trailing edge). */
export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  const run = () => {
    timer = null;
    if (again) {
      again = false;
      fn();
      timer = setTimeout(run, ms);
    }
  };
  return () => {
    if (timer) {
      again = true;
      return;
    }
    fn();
    timer = setTimeout(run, ms);
  };
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A bar chart of `points` ({value, label, observed, bad}) as inline SVG,
 * with a title and a description for screen readers. */
export function barChart(points, { title, unit, id }) {
  const width = 600;
  const height = 90;
  const max = Math.max(1, ...points.map((p) => p.value ?? 0));
  const bw = width / Math.max(1, points.length);
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-labelledby': `${id}-t` });
  if (id) root.id = id;
  root.append(svg('title', { id: `${id}-t` }, `${title}: maximum ${formatValue(max, unit)}`));
  points.forEach((p, i) => {
    const x = i * bw;
    if (!p.observed) {
      root.append(svg('rect', { class: 'unobserved', x: x + 0.5, y: 0, width: bw - 1, height }));
      return;
    }
    const v = p.value ?? 0;
    const bh = v > 0 ? Math.max(2, (v / max) * (height - 4)) : 0;
    const r = svg('rect', { class: p.bad ? 'bar bad' : 'bar', x: x + 0.5, y: height - bh, width: Math.max(1, bw - 1), height: bh });
    r.append(svg('title', {}, `${p.label}: ${formatValue(v, unit)}`));
    root.append(r);
  });
  root.append(svg('line', { class: 'axis', x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }));
  return root;
}

function formatValue(v, unit) {
  return unit === 's' ? duration(v) : `${v} ${unit}`;
}
