#!/usr/bin/env node
// Benchmark harness for two PostgreSQL job queues from npm: graphile-worker and
// pg-boss. One JSON object per result on stdout; diagnostics on stderr.
// The packages are loaded from the cache dir that setup.sh fills.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const SELF = fileURLToPath(import.meta.url);
const CACHE = process.env.SEMIONT_JOBS_PEERS_CACHE
  || path.join(os.homedir(), '.cache', 'semiont-jobs', 'bench-peers');
const SYSTEMS = ['graphile-worker', 'pg-boss'];
const WORKLOADS = ['w1', 'w1-batch', 'burndown', 'lifecycle', 'w3', 'w4'];
const TASK = 'noop'; // graphile-worker task identifier / pg-boss queue name

const HELP = `usage: node bench/peers/run.mjs --system graphile-worker|pg-boss --workload W --database-url URL [options]

Workloads (the handler is a no-op that records its execution):
  w1          create N jobs one add-call at a time (sequentially awaited), then drain
              them with one in-process worker (concurrency 1)
  w1-batch    like w1 but create in batches of B (graphile-worker: SQL add_jobs(job_spec[]),
              0.16.6 has no JS addJobs; pg-boss: insert([...]))
  burndown    N jobs pre-inserted in batches (untimed); P worker processes with concurrency C
              connect, wait for "go", then drain; timed from go to the last completion
  lifecycle   P worker processes (concurrency C) start and wait ready; the parent creates N jobs
              one add-call at a time from K concurrent producers while they drain; timed from
              the first create to the last completion
  w3          one idle worker process (concurrency 1); the parent enqueues k jobs spaced
              uniformly random 50-300 ms (seeded); latency = handler start - enqueue time
  w4          burndown with concurrency 1 (default N 2000, P 4): exactly-once check

Options:
  --system S                graphile-worker | pg-boss (required)
  --workload W              ${WORKLOADS.join(' | ')} (required)
  --database-url URL        postgres://... (required; the password is never printed)
  --jobs N                  jobs (k for w3); defaults: w1/w1-batch 2000, burndown 20000,
                            lifecycle 10000, w3 20, w4 2000
  --processes P[,P...]      worker processes, comma list -> one row each (burndown default 1,
                            lifecycle default 2, w4 default 4; w1/w1-batch/w3: 1 only)
  --concurrency C           jobs in flight per worker process (burndown/lifecycle default 10,
                            w1/w3/w4 default 1)
  --producers K             lifecycle: concurrent producers (default P)
  --batch-size B            insert batch size for w1-batch and the burndown/w4 pre-insert
                            (default 1000)
  --synchronous-commit on|off  applied to every connection (PGOPTIONS) (default on)
  --seed S                  seed for w3 spacing (default 1)
  --runs R                  repeat each unit R times, one row per run (default 1)
  --timeout-s T             completion timeout per unit (default 600)
  --poll-interval-ms MS     graphile-worker pollInterval (default 2000, LISTEN/NOTIFY is the
                            main wake-up); pg-boss pollingIntervalSeconds*1000 (default and
                            minimum 500)
  --pgboss-refill on|off    pg-boss: after a non-empty batch, call notifyWorker(id) so the
                            work() loop fetches again at once instead of sleeping out the
                            polling interval (default on; off = stock loop)
  --help                    this text

Environment: SEMIONT_JOBS_PEERS_CACHE (default ~/.cache/semiont-jobs/bench-peers), filled by
bash bench/peers/setup.sh.
`;

// ---------------------------------------------------------------- utilities
class UsageError extends Error {}
let DB_PASSWORD = null;

function redact(s) {
  let out = String(s);
  if (DB_PASSWORD) out = out.split(DB_PASSWORD).join('***');
  out = out.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
  return out;
}
function log(...a) { process.stderr.write(redact(`[peers ${process.pid}] ${a.join(' ')}`) + '\n'); }
function oneLine(e) {
  const msg = (e && (e.message || e.code)) || String(e);
  return redact(String(msg).replace(/\s+/g, ' ').trim());
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const wallMs = () => performance.timeOrigin + performance.now();
const round = (x, d = 3) => (x == null || !Number.isFinite(x) ? x : Math.round(x * 10 ** d) / 10 ** d);

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parseArgs(argv) {
  const known = new Set(['system', 'workload', 'database-url', 'jobs', 'processes', 'concurrency',
    'producers', 'batch-size', 'synchronous-commit', 'seed', 'runs', 'timeout-s',
    'poll-interval-ms', 'pgboss-refill', 'help',
    // internal (worker role)
    'role', 'schema', 'exec-log', 'start-on-go']);
  const flags = new Set(['help', 'start-on-go']);
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    let [k, v] = a.slice(2).split(/=(.*)/s, 2);
    if (!known.has(k)) throw new UsageError(`unknown option --${k} (see --help)`);
    if (flags.has(k)) { o[k] = true; continue; }
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`option --${k} needs a value`);
      v = argv[++i];
    }
    o[k] = v;
  }
  return o;
}
function posInt(o, k, dflt, min = 1) {
  if (o[k] === undefined) return dflt;
  if (!/^\d+$/.test(o[k]) || Number(o[k]) < min) throw new UsageError(`--${k} must be an integer >= ${min}, got '${o[k]}'`);
  return Number(o[k]);
}
function onOff(o, k, dflt) {
  const v = o[k] ?? dflt;
  if (v !== 'on' && v !== 'off') throw new UsageError(`--${k} must be on or off, got '${v}'`);
  return v;
}

function loadPackages() {
  const req = createRequire(path.join(CACHE, 'package.json'));
  const mods = {};
  for (const p of ['pg', 'graphile-worker', 'pg-boss']) {
    try {
      mods[p] = req(p);
      mods[p + '@version'] = req(`${p}/package.json`).version;
    } catch (e) {
      throw new Error(`package ${p} not found in ${CACHE}/node_modules: run 'bash bench/peers/setup.sh' first`);
    }
  }
  return mods;
}

// ---------------------------------------------------------------- adapters
// Each adapter: migrate(schema), producer(schema, pool), worker(schema, opts),
// pendingSql(schema), settings(opts).
function stderrGraphileLogger(gw) {
  return new gw.Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') log(`graphile-worker ${level}: ${message}`);
  });
}

function graphileAdapter(M, url) {
  const gw = M['graphile-worker'];
  const pg = M.pg;
  const logger = stderrGraphileLogger(gw);
  return {
    version: M['graphile-worker@version'],
    async migrate(schema) {
      await gw.runMigrations({ connectionString: url, schema, logger });
    },
    async producer(schema, poolSize) {
      const utils = await gw.makeWorkerUtils({ connectionString: url, schema, maxPoolSize: Math.max(1, poolSize), logger });
      const S = `"${schema}"`;
      return {
        add: (payload) => utils.addJob(TASK, payload),
        async addBatch(payloads) {
          const specs = JSON.stringify(payloads.map((p) => ({ identifier: TASK, payload: p })));
          const r = await utils.withPgClient((c) => c.query(
            `select count(*)::int as n from ${S}.add_jobs(array(select json_populate_record(null::${S}.job_spec, x) from json_array_elements($1::json) x))`,
            [specs]));
          if (r.rows[0].n !== payloads.length) throw new Error(`add_jobs inserted ${r.rows[0].n} of ${payloads.length}`);
        },
        query: (sql) => utils.withPgClient((c) => c.query(sql)),
        close: () => utils.release(),
      };
    },
    // Worker: a pg.Pool is created and its connections opened in prepare(); start()
    // calls run() with it, so connection setup is outside the timed part.
    worker(schema, { concurrency, pollIntervalMs, onJob }) {
      const poolMax = concurrency + 2;
      const pool = new pg.Pool({ connectionString: url, max: poolMax });
      pool.on('error', (e) => log(`pool error: ${oneLine(e)}`));
      let runner = null;
      return {
        async prepare() {
          const clients = await Promise.all(Array.from({ length: poolMax }, () => pool.connect()));
          const r = await clients[0].query('show synchronous_commit');
          clients.forEach((c) => c.release());
          return r.rows[0].synchronous_commit;
        },
        async start() {
          runner = await gw.run({
            pgPool: pool, schema, concurrency, pollInterval: pollIntervalMs, noHandleSignals: true, logger,
            taskList: { [TASK]: async (payload) => { onJob(payload); } },
          });
          runner.promise.catch((e) => log(`runner failed: ${oneLine(e)}`));
        },
        async stop() {
          if (runner) await runner.stop();
          await pool.end();
        },
      };
    },
    pendingSql: (schema) => `select count(*)::int as pending, count(*) filter (where last_error is not null)::int as failed from "${schema}"._private_jobs`,
    settings: ({ concurrency, pollIntervalMs }) => ({
      api: 'run({ taskList, concurrency, pollInterval, noHandleSignals: true, pgPool })',
      concurrency, pollInterval_ms: pollIntervalMs, noHandleSignals: true, worker_pool_max: concurrency + 2,
      wakeup: 'LISTEN/NOTIFY (jobs:insert) + poll',
      add: 'makeWorkerUtils().addJob()',
      batch_add: 'SQL add_jobs(job_spec[]) (no JS addJobs in 0.16.6)',
      completion: 'job row deleted',
    }),
  };
}

function pgBossAdapter(M, url) {
  const PgBoss = M['pg-boss'];
  const common = { connectionString: url, supervise: false, schedule: false };
  const mk = async (schema, extra) => {
    const boss = new PgBoss({ ...common, schema, ...extra });
    boss.on('error', (e) => log(`pg-boss error: ${oneLine(e)}`));
    await boss.start();
    return boss;
  };
  return {
    version: M['pg-boss@version'],
    async migrate(schema) {
      const boss = await mk(schema, { migrate: true, max: 2 });
      await boss.createQueue(TASK);
      await boss.stop({ graceful: false, wait: true });
    },
    async producer(schema, poolSize) {
      const boss = await mk(schema, { migrate: false, max: Math.max(1, poolSize) });
      return {
        async add(payload) {
          const id = await boss.send(TASK, payload);
          if (!id) throw new Error('send returned no id');
        },
        async addBatch(payloads) { await boss.insert(payloads.map((data) => ({ name: TASK, data }))); },
        query: (sql) => boss.getDb().executeSql(sql, []),
        close: () => boss.stop({ graceful: true, wait: true }),
      };
    },
    // Worker: boss.start() (pool, version check) in prepare(); start() calls work()
    // with batchSize = concurrency; the handler gets the array of jobs.
    worker(schema, { concurrency, pollIntervalMs, onJob, refill }) {
      let boss = null;
      let workerId = null;
      return {
        async prepare() {
          boss = await mk(schema, { migrate: false, max: 10 });
          const db = boss.getDb();
          const rs = await Promise.all([1, 2, 3, 4].map(() => db.executeSql('show synchronous_commit', [])));
          return rs[0].rows[0].synchronous_commit;
        },
        async start() {
          workerId = await boss.work(TASK, { batchSize: concurrency, pollingIntervalSeconds: pollIntervalMs / 1000 },
            async (jobs) => {
              await Promise.all(jobs.map(async (j) => { onJob(j.data); }));
              if (refill && jobs.length > 0 && workerId) boss.notifyWorker(workerId);
            });
        },
        async stop() { if (boss) await boss.stop({ graceful: true, wait: true, timeout: 30000 }); },
      };
    },
    pendingSql: (schema) => `select count(*) filter (where state <> 'completed')::int as pending, count(*) filter (where state in ('retry','failed','cancelled'))::int as failed from "${schema}".job where name = '${TASK}'`,
    settings: ({ concurrency, pollIntervalMs, refill }) => ({
      api: 'work(name, { batchSize, pollingIntervalSeconds }, handler(jobs[]))',
      work_calls_per_process: 1, batchSize: concurrency, pollingIntervalSeconds: pollIntervalMs / 1000,
      refill_via_notifyWorker: refill,
      wakeup: refill ? 'poll; after a non-empty batch notifyWorker(id) fetches again at once' : 'poll only (stock loop)',
      supervise: false, schedule: false, pool_max: 10,
      add: 'send()', batch_add: 'insert([...])', queue: `createQueue('${TASK}') policy standard`,
      completion: "state = 'completed' (complete() issued by pg-boss after the handler resolves)",
    }),
  };
}

function makeAdapter(system, M, url) {
  return system === 'graphile-worker' ? graphileAdapter(M, url) : pgBossAdapter(M, url);
}

// ---------------------------------------------------------------- worker role
async function workerMain(o) {
  const M = loadPackages();
  const url = o['database-url'];
  const adapter = makeAdapter(o.system, M, url);
  const lines = [];
  const onJob = (data) => {
    const t = wallMs();
    lines.push(`${data && data.k} ${t.toFixed(3)}`);
  };
  const w = adapter.worker(o.schema, {
    concurrency: Number(o.concurrency), pollIntervalMs: Number(o['poll-interval-ms']),
    refill: o['pgboss-refill'] === 'on', onJob,
  });
  const send = (s) => process.stdout.write(s + '\n');
  const sc = await w.prepare();
  // progress: handler starts so far, so the parent need not poll the database
  // until every job has at least started
  let reported = -1;
  setInterval(() => { if (lines.length !== reported) { reported = lines.length; send(`progress ${reported}`); } }, 10).unref();
  if (!o['start-on-go']) await w.start();
  send(`ready ${sc}`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try { await w.stop(); } catch (e) { log(`worker stop failed: ${oneLine(e)}`); }
    fs.writeFileSync(o['exec-log'], lines.length ? lines.join('\n') + '\n' : '');
    const cpu = process.cpuUsage();
    send(`stopped ${cpu.user / 1e6} ${cpu.system / 1e6}`);
    process.exit(0);
  };
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async (l) => {
    if (l === 'go') {
      try { await w.start(); send('started'); } catch (e) { log(`start failed: ${oneLine(e)}`); process.exit(1); }
    } else if (l === 'stop') await stop();
  });
  rl.on('close', () => stop()); // parent gone
}

// ---------------------------------------------------------------- parent side
const CHILDREN = new Set();

function spawnWorker(o, schema, idx, concurrency, startOnGo, tmpdir) {
  const execLog = path.join(tmpdir, `exec-${idx}.log`);
  const args = [SELF, '--role', 'worker', '--system', o.system, '--database-url', o.url,
    '--schema', schema, '--concurrency', String(concurrency), '--exec-log', execLog,
    '--poll-interval-ms', String(o.pollIntervalMs), '--pgboss-refill', o.refill ? 'on' : 'off'];
  if (startOnGo) args.push('--start-on-go');
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'], env: process.env });
  CHILDREN.add(child);
  const waiters = [];
  const seen = [];
  const c = { child, execLog, exited: false, code: null };
  child.on('exit', (code, sig) => {
    c.exited = true; c.code = code ?? sig; CHILDREN.delete(child);
    for (const w of waiters.splice(0)) w.reject(new Error(`worker process ${idx} exited (${c.code}) while waiting for '${w.prefix}'`));
  });
  child.stdin.on('error', () => {});
  c.executed = 0;
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    if (l.startsWith('progress ')) { c.executed = Number(l.slice(9)); return; }
    seen.push(l);
    for (let i = 0; i < waiters.length; i++) {
      if (l.startsWith(waiters[i].prefix)) { waiters.splice(i, 1)[0].resolve(l); break; }
    }
  });
  c.send = (s) => { if (!c.exited) child.stdin.write(s + '\n'); };
  c.waitFor = (prefix, timeoutMs) => new Promise((resolve, reject) => {
    const hit = seen.findIndex((l) => l.startsWith(prefix));
    if (hit >= 0) return resolve(seen.splice(hit, 1)[0]);
    if (c.exited) return reject(new Error(`worker process ${idx} exited (${c.code}) before '${prefix}'`));
    const w = { prefix, resolve, reject };
    waiters.push(w);
    setTimeout(() => { const i = waiters.indexOf(w); if (i >= 0) { waiters.splice(i, 1); reject(new Error(`worker process ${idx}: no '${prefix}' within ${timeoutMs / 1000} s`)); } }, timeoutMs).unref();
  });
  return c;
}

async function stopWorkers(workers) {
  for (const w of workers) w.send('stop');
  const cpu = { user: 0, sys: 0 };
  for (const w of workers) {
    const l = await w.waitFor('stopped', 60000);
    const [, u, s] = l.split(' ');
    cpu.user += Number(u); cpu.sys += Number(s);
  }
  for (const w of workers) {
    if (!w.exited) await new Promise((r) => { w.child.once('exit', r); setTimeout(r, 10000).unref(); });
  }
  return cpu;
}

function killChildren() {
  for (const ch of CHILDREN) { try { process.kill(ch.pid, 'SIGKILL'); } catch { /* gone */ } }
}

function readExecLogs(files) {
  const recs = [];
  for (const f of files) {
    if (!fs.existsSync(f)) throw new Error(`execution log ${path.basename(f)} missing`);
    for (const l of fs.readFileSync(f, 'utf8').split('\n')) {
      if (!l) continue;
      const [k, t] = l.split(' ');
      recs.push({ k: Number(k), t: Number(t) });
    }
  }
  return recs;
}

function counters(recs, n) {
  const m = new Map();
  for (const r of recs) m.set(r.k, (m.get(r.k) || 0) + 1);
  let dup = 0; let found = 0;
  for (const [k, c] of m) { if (c > 1) dup++; if (Number.isInteger(k) && k >= 0 && k < n) found++; }
  return { executions: recs.length, distinct_executed: m.size, duplicate_jobs: dup, lost: n - found };
}

// Completion: first wait (without touching the database) until the handlers have
// started at least n times, as reported by the workers; then poll the system's
// own table until no job is pending.
async function waitDone(ctx, isCreationDone = () => true) {
  const deadline = performance.now() + ctx.timeoutS * 1000;
  while (ctx.executed() < ctx.n || !isCreationDone()) {
    if (performance.now() > deadline) break;
    await sleep(5);
  }
  for (;;) {
    const r = await ctx.admin.query(ctx.adapter.pendingSql(ctx.schema));
    const { pending, failed } = r.rows[0];
    const now = performance.now();
    if (failed > 0) throw new Error(`${failed} job(s) failed in ${ctx.system} (harness handler never throws)`);
    if (pending === 0 && isCreationDone()) return now;
    if (now > deadline) throw new Error(`timeout: ${pending} job(s) still pending after ${ctx.timeoutS} s (--timeout-s)`);
    await sleep(10);
  }
}

async function preInsert(ctx, n, batch) {
  const prod = await ctx.adapter.producer(ctx.schema, 1);
  try {
    for (let i = 0; i < n; i += batch) {
      const payloads = [];
      for (let k = i; k < Math.min(n, i + batch); k++) payloads.push({ k });
      await prod.addBatch(payloads);
    }
  } finally { await prod.close(); }
}

// ---- workloads: each returns fields for the row
async function wlW1(ctx, batched) {
  const { n, batch } = ctx;
  const recs = [];
  const prod = await ctx.adapter.producer(ctx.schema, 1);
  let createS;
  try {
    const t0 = performance.now();
    if (batched) {
      for (let i = 0; i < n; i += batch) {
        const payloads = [];
        for (let k = i; k < Math.min(n, i + batch); k++) payloads.push({ k });
        await prod.addBatch(payloads);
      }
    } else {
      for (let i = 0; i < n; i++) await prod.add({ k: i });
    }
    createS = (performance.now() - t0) / 1000;
  } finally { await prod.close(); }
  const w = ctx.adapter.worker(ctx.schema, {
    concurrency: ctx.concurrency, pollIntervalMs: ctx.pollIntervalMs, refill: ctx.refill,
    onJob: (d) => recs.push({ k: d && d.k, t: wallMs() }),
  });
  ctx.executed = () => recs.length;
  ctx.syncSeen.push(await w.prepare());
  let drainS;
  try {
    const t1 = performance.now();
    await w.start();
    const tEnd = await waitDone(ctx);
    drainS = (tEnd - t1) / 1000;
  } finally { await w.stop(); }
  return {
    create_s: round(createS, 4), drain_s: round(drainS, 4),
    create_jobs_per_s: round(n / createS, 1), drain_jobs_per_s: round(n / drainS, 1),
    lifecycle_jobs_per_s: round(n / (createS + drainS), 1),
    ...counters(recs, n),
  };
}

async function startWorkers(ctx, P, concurrency, startOnGo) {
  const workers = [];
  for (let i = 0; i < P; i++) workers.push(spawnWorker(ctx.o, ctx.schema, i, concurrency, startOnGo, ctx.tmpdir));
  ctx.workers = workers;
  ctx.executed = () => workers.reduce((a, w) => a + w.executed, 0);
  for (const w of workers) ctx.syncSeen.push((await w.waitFor('ready', 120000)).split(' ')[1]);
  return workers;
}

async function wlBurndown(ctx) {
  const { n, P } = ctx;
  await preInsert(ctx, n, ctx.batch);
  const workers = await startWorkers(ctx, P, ctx.concurrency, true);
  const t0 = performance.now();
  for (const w of workers) w.send('go');
  const tEnd = await waitDone(ctx);
  const drainS = (tEnd - t0) / 1000;
  const wcpu = await stopWorkers(workers);
  const recs = readExecLogs(workers.map((w) => w.execLog));
  return {
    drain_s: round(drainS, 4), drain_jobs_per_s: round(n / drainS, 1),
    workers_cpu_user_s: round(wcpu.user, 3), workers_cpu_sys_s: round(wcpu.sys, 3),
    ...counters(recs, n),
  };
}

async function wlLifecycle(ctx) {
  const { n, P } = ctx;
  const K = ctx.producers ?? P;
  const workers = await startWorkers(ctx, P, ctx.concurrency, false);
  const prod = await ctx.adapter.producer(ctx.schema, K);
  let createS; let totalS;
  try {
    // open the producer pool's connections before timing
    await Promise.all(Array.from({ length: K }, () => prod.query('select 1')));
    let next = 0; let created = false; let failure = null;
    const t0 = performance.now();
    const producers = Array.from({ length: K }, async () => {
      for (let i = next++; i < n; i = next++) await prod.add({ k: i });
    });
    const all = Promise.all(producers).then(() => { created = true; createS = (performance.now() - t0) / 1000; },
      (e) => { failure = e; created = true; });
    const tEnd = await waitDone(ctx, () => created);
    await all;
    if (failure) throw failure;
    totalS = (tEnd - t0) / 1000;
  } finally { await prod.close(); }
  const wcpu = await stopWorkers(workers);
  const recs = readExecLogs(workers.map((w) => w.execLog));
  return {
    producers: K, create_s: round(createS, 4), total_s: round(totalS, 4),
    create_jobs_per_s: round(n / createS, 1), lifecycle_jobs_per_s: round(n / totalS, 1),
    workers_cpu_user_s: round(wcpu.user, 3), workers_cpu_sys_s: round(wcpu.sys, 3),
    ...counters(recs, n),
  };
}

async function wlW3(ctx) {
  const { n } = ctx;
  const workers = await startWorkers(ctx, 1, 1, false);
  const prod = await ctx.adapter.producer(ctx.schema, 1);
  const rng = mulberry32(ctx.seed);
  const enq = new Array(n);
  try {
    await prod.query('select 1');
    await sleep(300); // let the idle worker settle into its wait/poll state
    for (let i = 0; i < n; i++) {
      await sleep(50 + rng() * 250);
      enq[i] = wallMs();
      await prod.add({ k: i, t: enq[i] });
    }
  } finally { await prod.close(); }
  await waitDone(ctx);
  const wcpu = await stopWorkers(workers);
  const recs = readExecLogs(workers.map((w) => w.execLog));
  const first = new Map();
  for (const r of recs) if (!first.has(r.k)) first.set(r.k, r.t);
  const lat = [];
  for (let i = 0; i < n; i++) if (first.has(i)) lat.push(first.get(i) - enq[i]);
  const sorted = [...lat].sort((a, b) => a - b);
  const rank = (p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  return {
    k: n, seed: ctx.seed, spacing_ms: '50-300 uniform',
    p50_ms: round(rank(50)), p99_ms: round(rank(99)),
    mean_ms: round(lat.reduce((a, b) => a + b, 0) / lat.length), min_ms: round(sorted[0]), max_ms: round(sorted[sorted.length - 1]),
    latencies_ms: lat.map((x) => round(x)),
    wakeup: ctx.system === 'graphile-worker' ? 'LISTEN/NOTIFY' : (ctx.refill ? 'poll (notifyWorker refill only after a non-empty batch)' : 'poll'),
    poll_interval_ms: ctx.pollIntervalMs,
    workers_cpu_user_s: round(wcpu.user, 3), workers_cpu_sys_s: round(wcpu.sys, 3),
    ...counters(recs, n),
  };
}

const DEFAULTS = {
  w1: { jobs: 2000, processes: [1], concurrency: 1 },
  'w1-batch': { jobs: 2000, processes: [1], concurrency: 1 },
  burndown: { jobs: 20000, processes: [1], concurrency: 10 },
  lifecycle: { jobs: 10000, processes: [2], concurrency: 10 },
  w3: { jobs: 20, processes: [1], concurrency: 1 },
  w4: { jobs: 2000, processes: [4], concurrency: 1 },
};

// Retried: right after worker processes are killed their sessions may still hold
// locks for a moment (or the drop may hit a deadlock with a dying session).
async function dropSchema(admin, schema) {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.query("set lock_timeout = '10s'");
      await admin.query(`drop schema if exists "${schema}" cascade`);
      return;
    } catch (e) {
      if (attempt >= 5) { log(`could not drop schema ${schema}: ${oneLine(e)}`); return; }
      await sleep(500 * attempt);
    }
  }
}

let unitCounter = 0;
let CURRENT = null; // { admin, schema } for signal cleanup

async function runUnit(o, M, adapter, P, runIndex) {
  const pg = M.pg;
  const schema = `peer_${o.system.replace(/-/g, '_')}_${process.pid}_${unitCounter++}`;
  const admin = new pg.Client({ connectionString: o.url, connectionTimeoutMillis: 15000 });
  admin.on('error', () => {});
  await admin.connect();
  const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'semiont-peers-'));
  const ctx = {
    o, system: o.system, adapter, admin, schema, tmpdir, n: o.jobs, P, concurrency: o.concurrency,
    batch: o.batch, producers: o.producers, seed: o.seed, timeoutS: o.timeoutS,
    pollIntervalMs: o.pollIntervalMs, refill: o.refill, syncSeen: [], workers: [],
  };
  CURRENT = { admin, schema };
  const row = {
    system: o.system, system_version: adapter.version, node_version: process.version,
    workload: o.workload, run: runIndex, n: o.jobs, processes: P, concurrency: o.concurrency,
    batch_size: (o.workload === 'w1-batch' || o.workload === 'burndown' || o.workload === 'w4') ? o.batch : null,
    synchronous_commit: o.sync,
  };
  const cpu0 = process.cpuUsage();
  row.loadavg1_start = round(os.loadavg()[0], 2);
  try {
    const sv = await admin.query('show server_version');
    row.server_version = sv.rows[0].server_version;
    row.schema = schema;
    log(`${o.system} ${o.workload} n=${o.jobs} P=${P} C=${o.concurrency} run=${runIndex} schema=${schema}`);
    await adapter.migrate(schema);
    let res;
    switch (o.workload) {
      case 'w1': res = await wlW1(ctx, false); break;
      case 'w1-batch': res = await wlW1(ctx, true); break;
      case 'burndown': case 'w4': res = await wlBurndown(ctx); break;
      case 'lifecycle': res = await wlLifecycle(ctx); break;
      case 'w3': res = await wlW3(ctx); break;
    }
    Object.assign(row, res);
    const bad = [...new Set(ctx.syncSeen)].filter((s) => s !== o.sync);
    if (bad.length) throw new Error(`synchronous_commit seen by a system connection was ${bad.join(',')}, wanted ${o.sync}`);
    row.synchronous_commit_seen = [...new Set(ctx.syncSeen)].join(',');
    row.runner_settings = adapter.settings({ concurrency: o.workload === 'w3' ? 1 : o.concurrency, pollIntervalMs: o.pollIntervalMs, refill: o.refill });
    if (o.workload === 'w1' || o.workload === 'w1-batch') row.runner_settings.in_process = true;
    row.loadavg1_end = round(os.loadavg()[0], 2);
    const cpu = process.cpuUsage(cpu0);
    row.cpu_user_s = round(cpu.user / 1e6); row.cpu_sys_s = round(cpu.system / 1e6);
    if (row.duplicate_jobs !== 0 || row.lost !== 0) log(`WARNING: duplicate_jobs=${row.duplicate_jobs} lost=${row.lost}`);
    row.ok = true;
    return row;
  } finally {
    for (const w of ctx.workers) if (!w.exited) { try { process.kill(w.child.pid, 'SIGKILL'); } catch { /* gone */ } }
    await dropSchema(admin, schema);
    await admin.end().catch(() => {});
    CURRENT = null;
    fs.rmSync(tmpdir, { recursive: true, force: true });
  }
}

async function parentMain(o) {
  if (o.help) { process.stdout.write(HELP); return 0; }
  if (!o.system) throw new UsageError('--system is required (graphile-worker or pg-boss)');
  if (!SYSTEMS.includes(o.system)) throw new UsageError(`--system must be one of ${SYSTEMS.join(', ')}, got '${o.system}'`);
  if (!o.workload) throw new UsageError(`--workload is required (${WORKLOADS.join(', ')})`);
  if (!WORKLOADS.includes(o.workload)) throw new UsageError(`--workload must be one of ${WORKLOADS.join(', ')}, got '${o.workload}'`);
  if (!o['database-url']) throw new UsageError('--database-url is required');
  const d = DEFAULTS[o.workload];
  const cfg = {
    system: o.system, workload: o.workload, url: o['database-url'],
    jobs: posInt(o, 'jobs', d.jobs), concurrency: posInt(o, 'concurrency', d.concurrency),
    producers: o.producers === undefined ? undefined : posInt(o, 'producers', 1),
    batch: posInt(o, 'batch-size', 1000), sync: onOff(o, 'synchronous-commit', 'on'),
    seed: posInt(o, 'seed', 1, 0), runs: posInt(o, 'runs', 1), timeoutS: posInt(o, 'timeout-s', 600),
    refill: onOff(o, 'pgboss-refill', 'on') === 'on',
  };
  let procs = d.processes;
  if (o.processes !== undefined) {
    procs = String(o.processes).split(',').map((s) => {
      if (!/^\d+$/.test(s.trim()) || Number(s) < 1) throw new UsageError(`--processes must be a comma list of integers >= 1, got '${o.processes}'`);
      return Number(s);
    });
  }
  if (['w1', 'w1-batch', 'w3'].includes(o.workload)) {
    if (procs.some((p) => p !== 1)) throw new UsageError(`--processes does not apply to ${o.workload} (always 1)`);
    if (o.workload !== 'w3' && o.concurrency !== undefined && cfg.concurrency !== 1) throw new UsageError(`${o.workload} drains with concurrency 1`);
  }
  if (o.workload === 'w3' && o.concurrency !== undefined && cfg.concurrency !== 1) throw new UsageError('w3 uses one worker at concurrency 1');
  const dfltPoll = o.system === 'graphile-worker' ? 2000 : 500;
  cfg.pollIntervalMs = posInt(o, 'poll-interval-ms', dfltPoll);
  if (o.system === 'pg-boss' && cfg.pollIntervalMs < 500) throw new UsageError('--poll-interval-ms: pg-boss allows at least 500');
  try {
    const u = new URL(cfg.url);
    if (!/^postgres(ql)?:$/.test(u.protocol)) throw new Error();
    DB_PASSWORD = u.password ? decodeURIComponent(u.password) : null;
    if (DB_PASSWORD && DB_PASSWORD.length < 1) DB_PASSWORD = null;
  } catch { throw new UsageError('--database-url must look like postgres://user[:password]@host[:port]/db'); }
  // Every connection of the harness and of its worker processes (node-postgres reads PGOPTIONS).
  process.env.PGOPTIONS = `${process.env.PGOPTIONS ? process.env.PGOPTIONS + ' ' : ''}-c synchronous_commit=${cfg.sync}`;

  const M = loadPackages();
  const adapter = makeAdapter(cfg.system, M, cfg.url);
  for (const P of procs) {
    for (let r = 1; r <= cfg.runs; r++) {
      let row;
      try {
        row = await runUnit({ ...cfg, o }, M, adapter, P, r);
      } catch (e) {
        // a failed unit still yields a row, so a reader of stdout sees what failed
        process.stdout.write(JSON.stringify({
          system: cfg.system, system_version: adapter.version, workload: cfg.workload, run: r,
          n: cfg.jobs, processes: P, concurrency: cfg.concurrency, synchronous_commit: cfg.sync,
          ok: false, error: oneLine(e),
        }) + '\n');
        throw e;
      }
      process.stdout.write(JSON.stringify(row) + '\n');
    }
  }
  return 0;
}

async function cleanupAndExit(code) {
  killChildren();
  if (CURRENT) {
    await dropSchema(CURRENT.admin, CURRENT.schema);
  }
  process.exit(code);
}

// ---------------------------------------------------------------- main
let opts;
try { opts = parseArgs(process.argv.slice(2)); } catch (e) {
  process.stderr.write(`run.mjs: ${oneLine(e)}\n`); process.exit(2);
}
if (opts.role === 'worker') {
  try { const u = new URL(opts['database-url']); DB_PASSWORD = u.password ? decodeURIComponent(u.password) : null; } catch { /* parent checked */ }
  workerMain(opts).catch((e) => { log(`worker: ${oneLine(e)}`); process.exit(1); });
} else {
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { log(`${s}: cleaning up`); cleanupAndExit(130); });
  parentMain(opts).then((code) => process.exit(code), (e) => {
    process.stderr.write(`run.mjs: ${e instanceof UsageError ? '' : 'error: '}${oneLine(e)}\n`);
    killChildren();
    process.exit(e instanceof UsageError ? 2 : 1);
  });
}
