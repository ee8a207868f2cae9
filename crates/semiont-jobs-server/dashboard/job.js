// Job detail: every field, typed progress with a live progress bar
// (detection: entity types done and entities found; generation: stage),
// the timeline, error, result and raw JSON; retry, cancel and delete with
// confirmation. Live: the job's events carry its new state.

import { ApiError, del, get, post } from './api.js';
import { onEvent } from './live.js';
import { badge, confirmDialog, duration, fill, h, percent, time, toast, throttle } from './ui.js';

const SHOWN_ELSEWHERE = new Set(['progress', 'result', 'error']);

function value(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted', text: '—' });
  if (typeof v === 'object') return h('code', { text: JSON.stringify(v) });
  return String(v);
}

/** What the progress says, typed where the shape is known. */
function progressFacts(p) {
  if (!p || typeof p !== 'object') return [];
  const facts = [];
  if (typeof p.totalEntityTypes === 'number') {
    facts.push(['entity types', `${p.processedEntityTypes ?? 0} of ${p.totalEntityTypes}`]);
    if (p.currentEntityType) facts.push(['current type', p.currentEntityType]);
    if (typeof p.entitiesFound === 'number') facts.push(['entities found', p.entitiesFound]);
    if (typeof p.entitiesEmitted === 'number') facts.push(['annotations emitted', p.entitiesEmitted]);
    if (typeof p.totalChunks === 'number') facts.push(['chunks', `${p.processedChunks ?? 0} of ${p.totalChunks}`]);
  }
  if (typeof p.stage === 'string') facts.push(['stage', p.stage]);
  if (typeof p.totalSteps === 'number') facts.push(['step', `${p.currentStep ?? 0} of ${p.totalSteps}`]);
  if (typeof p.totalItems === 'number') facts.push(['item', `${p.currentItem ?? 0} of ${p.totalItems}`]);
  if (p.message) facts.push(['message', p.message]);
  const known = new Set(['percentage', 'message', 'currentStep', 'totalSteps', 'currentItem', 'totalItems', 'totalEntityTypes', 'processedEntityTypes', 'currentEntityType', 'entitiesFound', 'entitiesEmitted', 'totalChunks', 'processedChunks', 'stage']);
  for (const [k, v] of Object.entries(p)) if (!known.has(k)) facts.push([k, typeof v === 'object' ? JSON.stringify(v) : v]);
  return facts;
}

export function render(main, where, ctx) {
  const id = where.id;
  let job = null;
  let disposed = false;
  let gone = false;

  const title = h('h1', {}, 'Job ', h('span', { class: 'mono', id: 'job-id', text: id }));
  const head = h('div', { class: 'actions', id: 'job-head' });
  const progress = h('section', { class: 'panel', id: 'job-progress-panel', 'aria-live': 'polite' });
  const timeline = h('section', { class: 'panel', id: 'job-timeline' });
  const fields = h('section', { class: 'panel', id: 'job-fields' });
  const outcome = h('section', { class: 'panel', id: 'job-outcome' });
  const raw = h('section', { class: 'panel', id: 'job-raw' });
  main.append(title, h('section', { class: 'panel' }, head), progress, h('div', { class: 'grid' }, timeline, fields), outcome, raw);

  function draw() {
    if (gone) {
      fill(head, h('p', { role: 'alert', text: `Job ${id} was deleted.` }), h('a', { href: '#/jobs', text: 'Back to the jobs' }));
      for (const s of [progress, timeline, fields, outcome, raw]) fill(s);
      return;
    }
    const j = job;
    const buttons = [];
    if (ctx.canWrite && (j.status === 'pending' || j.status === 'running')) {
      buttons.push(h('button', { type: 'button', id: 'action-cancel', class: 'danger', onclick: () => act('cancel') }, 'Cancel job'));
    }
    if (ctx.canWrite && (j.status === 'failed' || j.status === 'cancelled')) {
      buttons.push(h('button', { type: 'button', id: 'action-retry', class: 'primary', onclick: () => act('retry') }, 'Retry job'));
    }
    if (ctx.canAdmin && ['complete', 'failed', 'cancelled'].includes(j.status)) {
      buttons.push(h('button', { type: 'button', id: 'action-delete', class: 'danger', onclick: () => act('delete') }, 'Delete job'));
    }
    fill(head, h('span', { id: 'job-status' }, badge(j.status)), h('span', { text: j.type }), h('span', { class: 'muted', text: `user ${j.userId}` }), h('span', { class: 'spacer' }), buttons);

    const pct = percent(j.progress);
    fill(progress, h('h2', { text: 'Progress' }),
      pct === null
        ? h('p', { class: 'muted', text: j.status === 'running' ? 'Running; no progress reported yet.' : 'No progress reported.' })
        : [h('progress', { id: 'job-progress', class: 'big', max: 100, value: Math.max(0, Math.min(100, pct)), 'aria-label': 'Job progress' }),
          h('p', { id: 'job-progress-text', text: `${pct.toFixed(pct < 10 ? 1 : 0)}%` })],
      h('dl', { class: 'fields' }, progressFacts(j.progress).map(([k, v]) => [h('dt', { text: k }), h('dd', { text: String(v) })])));

    const events = [['created', j.created]];
    if (j.runAt) events.push([`due${j.attempt ? ' again' : ''}`, j.runAt]);
    if (j.startedAt) events.push([`attempt ${j.attempt} started${j.workerId ? ` on ${j.workerId}` : ''}`, j.startedAt]);
    if (j.status === 'running' && j.leaseExpiresAt) events.push(['lease until', j.leaseExpiresAt]);
    if (j.completedAt) events.push([`${j.status}`, j.completedAt]);
    const ran = j.startedAt && j.completedAt ? (new Date(j.completedAt) - new Date(j.startedAt)) / 1000 : null;
    fill(timeline, h('h2', { text: 'Timeline' }),
      h('ol', { class: 'timeline' }, events.map(([what, at]) => h('li', {}, h('strong', { text: what }), ' ', time(at)))),
      h('p', { class: 'muted', text: `attempt ${j.attempt ?? 0}, ${j.retryCount ?? 0} automatic retr${j.retryCount === 1 ? 'y' : 'ies'} of at most ${j.maxRetries}${ran !== null ? `; last run ${duration(ran)}` : ''}` }));

    fill(fields, h('h2', { text: 'Fields' }),
      h('dl', { class: 'fields' }, Object.entries(j).filter(([k]) => !SHOWN_ELSEWHERE.has(k)).map(([k, v]) => [h('dt', { text: k }), h('dd', {}, value(v))])));

    fill(outcome, h('h2', { text: 'Error and result' }),
      j.error ? h('pre', { id: 'job-error', class: 'err', text: j.error }) : h('p', { class: 'muted', text: 'No error.' }),
      j.result !== undefined ? h('pre', { id: 'job-result', text: JSON.stringify(j.result, null, 2) }) : h('p', { class: 'muted', text: 'No result.' }));

    fill(raw, h('details', {}, h('summary', { text: 'Raw JSON' }), h('pre', { id: 'job-json', text: JSON.stringify(j, null, 2) })));
  }

  async function act(action) {
    const labels = { cancel: 'Cancel', retry: 'Retry', delete: 'Delete' };
    const question = {
      cancel: `Cancel job ${id}? A running job is told to stop.`,
      retry: `Retry job ${id}? It goes back to pending with a fresh retry budget.`,
      delete: `Delete job ${id}? This cannot be undone.`,
    }[action];
    if (!(await confirmDialog(question, labels[action]))) return;
    if (action === 'delete') {
      await del(`/jobs/${encodeURIComponent(id)}`);
      gone = true;
      toast(`deleted ${id}`);
      draw();
      return;
    }
    job = await post(`/jobs/${encodeURIComponent(id)}/${action}`);
    toast(`${action === 'cancel' ? 'cancelled' : 'retried'} ${id}`);
    draw();
  }

  async function load() {
    try {
      job = await get(`/jobs/${encodeURIComponent(id)}`);
      gone = false;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        gone = true;
      } else {
        throw e;
      }
    }
    if (!disposed) draw();
  }
  const reload = throttle(() => load().catch((e) => fill(head, h('p', { role: 'alert', text: `cannot load the job: ${e.message}` }))), 500);
  reload();
  const off = onEvent((e) => {
    if (e.kind === 'connected' || e.kind === 'poll' || e.kind === 'resync') {
      reload();
    } else if (e.jobId === id) {
      if (e.kind === 'deleted') {
        gone = true;
        draw();
      } else if (e.job && !e.job.truncated) {
        job = e.job;
        gone = false;
        draw();
      } else {
        reload();
      }
    }
  });
  return {
    dispose() {
      disposed = true;
      off();
    },
  };
}
