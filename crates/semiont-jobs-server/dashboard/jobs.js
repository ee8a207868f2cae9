// Jobs: the list with filters kept in the URL (status, type, userId, id
// search, page), newest first, paginated; per-row and bulk cancel / retry / delete
// (on the selection or on everything matching, with the count and a
// confirmation). Live: the page reloads its rows as events arrive.

import { ApiError, get, post, query } from './api.js';
import { onEvent } from './live.js';
import { STATUSES, badge, confirmDialog, fill, h, jobLink, progressBar, throttle, time, toast } from './ui.js';

const PAGE_SIZE = 50;
/** Jobs looked through for an id search (the API's largest page). */
const SEARCH_SCAN = 1000;
const ACTIONS = {
  cancel: { label: 'Cancel', past: 'cancelled', applies: (j) => j.status === 'pending' || j.status === 'running' },
  retry: { label: 'Retry', past: 'retried', applies: (j) => j.status === 'failed' || j.status === 'cancelled' },
  delete: { label: 'Delete', past: 'deleted', applies: (j) => ['complete', 'failed', 'cancelled'].includes(j.status) },
};

/** The filters from the hash's parameters. */
function filtersOf(params) {
  return {
    status: STATUSES.includes(params.get('status')) ? params.get('status') : '',
    type: params.get('type') ?? '',
    userId: params.get('userId') ?? '',
    id: params.get('id') ?? '',
    page: Math.max(1, Number.parseInt(params.get('page') ?? '1', 10) || 1),
  };
}

function hashOf(f) {
  const q = query({ status: f.status, type: f.type, userId: f.userId, id: f.id, page: f.page > 1 ? f.page : '' });
  return `#/jobs${q}`;
}

export function render(main, where, ctx) {
  let filters = filtersOf(where.params);
  let rows = [];
  let total = 0;
  const selected = new Set();
  let disposed = false;
  const allowed = (action) => ctx.canWrite && (action !== 'delete' || ctx.canAdmin);

  const setFilter = (patch) => {
    const next = { ...filters, ...patch, page: patch.page ?? 1 };
    location.hash = hashOf(next);
  };

  const statusSel = h('select', { id: 'f-status', name: 'status', onchange: () => setFilter({ status: statusSel.value }) },
    h('option', { value: '', text: 'any' }), STATUSES.map((s) => h('option', { value: s, text: s })));
  const typeSel = h('select', { id: 'f-type', name: 'type', onchange: () => setFilter({ type: typeSel.value }) });
  const userIn = h('input', { id: 'f-user', name: 'userId', type: 'search', placeholder: 'any', onchange: () => setFilter({ userId: userIn.value.trim() }) });
  const idIn = h('input', { id: 'f-id', name: 'id', type: 'search', placeholder: 'id or part of it', onchange: () => setFilter({ id: idIn.value.trim() }) });
  const clear = h('button', { type: 'button', id: 'f-clear', onclick: () => { location.hash = '#/jobs'; } }, 'Clear filters');
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => e.preventDefault() },
    h('label', { for: 'f-status' }, 'Status', statusSel),
    h('label', { for: 'f-type' }, 'Type', typeSel),
    h('label', { for: 'f-user' }, 'User', userIn),
    h('label', { for: 'f-id' }, 'Job id', idIn),
    clear);

  const summary = h('p', { id: 'jobs-summary', class: 'muted', 'aria-live': 'polite' });
  const bulk = h('div', { class: 'bulk', id: 'bulk' });
  const table = h('table', { id: 'jobs-table' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of jobs' });
  main.append(h('h1', { text: 'Jobs' }), h('section', { class: 'panel' }, form, summary, bulk, table, pager));

  function syncControls() {
    statusSel.value = filters.status;
    userIn.value = filters.userId;
    idIn.value = filters.id;
    if (![...typeSel.options].some((o) => o.value === filters.type)) {
      typeSel.append(h('option', { value: filters.type, text: filters.type }));
    }
    typeSel.value = filters.type;
  }

  async function loadTypes() {
    const { types } = await get('/types');
    const known = new Set(types.map((t) => t.type));
    if (filters.type) known.add(filters.type);
    fill(typeSel, h('option', { value: '', text: 'any' }), [...known].sort().map((t) => h('option', { value: t, text: t })));
    typeSel.value = filters.type;
  }

  const apiFilter = () => ({ status: filters.status || undefined, type: filters.type || undefined, userId: filters.userId || undefined });

  async function load() {
    const f = filters;
    let page;
    let note = '';
    if (f.id) {
      // The API has no id search: look through the newest SEARCH_SCAN
      // matching jobs here and page through the hits; an id found nowhere
      // there is tried as an exact id (an older job).
      const scan = await get(`/jobs${query({ ...apiFilter(), limit: SEARCH_SCAN })}`);
      const needle = f.id.toLowerCase();
      const hits = scan.jobs.filter((j) => j.id.toLowerCase().includes(needle));
      const from = (f.page - 1) * PAGE_SIZE;
      page = { jobs: hits.slice(from, from + PAGE_SIZE), total: hits.length };
      note = `ids containing "${f.id}"${scan.total > scan.jobs.length ? ` among the newest ${scan.jobs.length} of ${scan.total}` : ''}`;
      if (hits.length === 0 && scan.total > scan.jobs.length) {
        try {
          page = { jobs: [await get(`/jobs/${encodeURIComponent(f.id)}`)], total: 1 };
          note = 'exact id';
        } catch (e) {
          if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 400)) throw e;
        }
      }
    } else {
      page = await get(`/jobs${query({ ...apiFilter(), limit: PAGE_SIZE, offset: (f.page - 1) * PAGE_SIZE })}`);
    }
    if (disposed || f !== filters) return;
    rows = page.jobs;
    total = page.total;
    for (const id of [...selected]) if (!rows.some((j) => j.id === id)) selected.delete(id);
    draw(note);
  }

  function draw(note) {
    const first = total === 0 ? 0 : (filters.page - 1) * PAGE_SIZE + 1;
    const last = Math.min(total, (filters.page - 1) * PAGE_SIZE + rows.length);
    summary.textContent = `${first}–${last} of ${total} job${total === 1 ? '' : 's'}, newest first${note ? ` (${note})` : ''}`;
    const canSelect = ctx.canWrite;
    const all = h('input', {
      type: 'checkbox', id: 'select-all', 'aria-label': 'Select every job on this page',
      checked: rows.length > 0 && rows.every((j) => selected.has(j.id)),
      onchange: (e) => { for (const j of rows) { if (e.target.checked) selected.add(j.id); else selected.delete(j.id); } draw(note); },
    });
    fill(table,
      h('thead', {}, h('tr', {},
        canSelect ? h('th', { scope: 'col' }, all) : null,
        ['id', 'type', 'status', 'user', 'created', 'attempt', 'progress', 'error'].map((c) => h('th', { scope: 'col', text: c })),
        canSelect ? h('th', { scope: 'col', text: 'actions' }) : null)),
      h('tbody', {}, rows.length === 0
        ? h('tr', {}, h('td', { colspan: 10, class: 'empty', text: 'No jobs match.' }))
        : rows.map((j) => h('tr', { dataset: { jobId: j.id, status: j.status } },
          canSelect ? h('td', {}, h('input', {
            type: 'checkbox', class: 'select', 'aria-label': `Select ${j.id}`, checked: selected.has(j.id),
            onchange: (e) => { if (e.target.checked) selected.add(j.id); else selected.delete(j.id); drawBulk(); },
          })) : null,
          h('td', {}, jobLink(j.id)),
          h('td', { text: j.type }),
          h('td', {}, badge(j.status)),
          h('td', { text: j.userId }),
          h('td', {}, time(j.created)),
          h('td', { class: 'num', text: `${j.attempt ?? 0}` }),
          h('td', {}, progressBar(j)),
          h('td', { class: 'err', text: j.error ? j.error.slice(0, 160) : '' }),
          canSelect ? h('td', { class: 'actions' }, Object.entries(ACTIONS)
            .filter(([a, def]) => allowed(a) && def.applies(j))
            .map(([a, def]) => h('button', {
              type: 'button', class: a === 'delete' ? 'danger row-action' : 'row-action', dataset: { action: a },
              'aria-label': `${def.label} ${j.id}`, text: def.label,
              onclick: () => act(a, { ids: [j.id] }, `${def.label} job ${j.id}?`),
            }))) : null))));
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    fill(pager,
      h('button', { type: 'button', id: 'page-prev', disabled: filters.page <= 1, onclick: () => setFilter({ page: filters.page - 1 }) }, '← Newer'),
      h('span', { text: `page ${filters.page} of ${pages}` }),
      h('button', { type: 'button', id: 'page-next', disabled: filters.page >= pages, onclick: () => setFilter({ page: filters.page + 1 }) }, 'Older →'));
    drawBulk();
  }

  function drawBulk() {
    if (!ctx.canWrite) {
      fill(bulk);
      return;
    }
    const n = selected.size;
    const buttons = (scope) => Object.entries(ACTIONS).filter(([a]) => allowed(a)).map(([a, def]) => h('button', {
      type: 'button', class: a === 'delete' ? 'danger' : null, id: `bulk-${a}-${scope}`,
      disabled: scope === 'selected' ? n === 0 : total === 0,
      onclick: () => (scope === 'selected'
        ? act(a, { ids: [...selected] }, `${def.label} ${n} selected job${n === 1 ? '' : 's'}?`)
        : actMatching(a)),
    }, `${def.label} ${scope === 'selected' ? `selected (${n})` : 'all matching'}`));
    fill(bulk, h('span', { class: 'muted', text: 'Bulk:' }), buttons('selected'), h('span', { class: 'muted', text: '|' }), buttons('matching'));
  }

  async function act(action, target, question) {
    const def = ACTIONS[action];
    if (!(await confirmDialog(question, def.label))) return;
    const r = await post(`/jobs/bulk/${action}`, target);
    selected.clear();
    toast(`${r.succeeded} ${def.past}${r.skipped.length ? `, ${r.skipped.length} skipped (${r.skipped[0].detail})` : ''}`);
    reload();
  }

  async function actMatching(action) {
    const def = ACTIONS[action];
    const filter = apiFilter();
    const dry = await post(`/jobs/bulk/${action}`, { filter, dryRun: true });
    const what = Object.entries(filter).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ') || 'no filter: every job';
    if (dry.matched === 0) {
      toast(`No job matching ${what} can be ${def.past}.`);
      return;
    }
    const q = `${def.label} ${dry.matched}${dry.remaining ? '+' : ''} job${dry.matched === 1 ? '' : 's'} matching ${what}?`;
    if (!(await confirmDialog(q, def.label))) return;
    const r = await post(`/jobs/bulk/${action}`, { filter });
    selected.clear();
    toast(`${r.succeeded} ${def.past}${r.remaining ? `, ${r.remaining} more match (run again)` : ''}`);
    reload();
  }

  const reload = throttle(() => load().catch(showError), 500);
  function showError(e) {
    if (!disposed) summary.textContent = `cannot load jobs: ${e.message}`;
  }
  syncControls();
  loadTypes().then(syncControls).catch(showError);
  reload();
  const off = onEvent(() => reload());
  return {
    update(next) {
      filters = filtersOf(next.params);
      selected.clear();
      syncControls();
      reload();
    },
    dispose() {
      disposed = true;
      off();
    },
  };
}
