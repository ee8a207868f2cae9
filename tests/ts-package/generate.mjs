#!/usr/bin/env node
// generate.mjs — writes the fixtures of tests/fixtures/ts-package/ with the
// real @semiont/jobs package: a data directory (`jobs/<status>/<id>.json`)
// holding jobs in every status, each written by the package's own
// JobQueue / JobWorker code. Run from anywhere:
//
//   node tests/ts-package/generate.mjs            # rewrites tests/fixtures/ts-package/jobs
//
// The files are committed as data; the Rust tests (tests/it/ts_package.rs)
// read them and never run node. Ids and times differ per run.

import { mkdtemp, readFile, readdir, rm, cp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPackage, quiet } from './package.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, '..', 'fixtures', 'ts-package');

const { JobQueue, JobWorker, version } = await loadPackage();
const dataDir = await mkdtemp(join(tmpdir(), 'ts-fixtures-'));
const queue = new JobQueue({ dataDir }, quiet);
await queue.initialize();

const created = new Date().toISOString();
const job = (id, type, params, maxRetries = 3) => ({
  status: 'pending',
  metadata: { id, type, userId: 'user-1', created, retryCount: 0, maxRetries },
  params,
});
const detection = (id, maxRetries) =>
  job(id, 'detection', { resourceId: `doc-${id}`, entityTypes: ['Person', 'Organization'] }, maxRetries);

// A worker whose executeJob does what each job's params.behaviour says.
let release;
const held = new Promise((r) => { release = r; });
let holding;
const isHolding = new Promise((r) => { holding = r; });
class FixtureWorker extends JobWorker {
  getWorkerName() { return 'fixture-worker'; }
  canProcessJob() { return true; }
  async executeJob(j) {
    const b = j.params.behaviour ?? 'complete';
    if (b === 'fail') throw new Error(`failed on purpose: ${j.metadata.id}`);
    if (b === 'hold') { holding(); await held; }
    return { totalFound: 2, totalEmitted: 2, errors: 0, by: 'fixture-worker' };
  }
}
const worker = new FixtureWorker(queue, 10, 10, quiet);
const process1 = async (id) => worker.processJob(await queue.getJob(id));

// pending: created, never touched.
await queue.createJob(detection('job-ts-pending'));
await queue.createJob(job('job-ts-pending-custom', 'my-job-type', { any: { nested: [1, 'two', null] }, n: 7 }));
// complete: created and run by the package's worker.
await queue.createJob(detection('job-ts-complete'));
await process1('job-ts-complete');
// failed: one attempt allowed, the attempt throws.
await queue.createJob({ ...job('job-ts-failed', 'my-job-type', { behaviour: 'fail' }, 1) });
await process1('job-ts-failed');
// pending again after a failed attempt (retryCount 1 of 3).
await queue.createJob({ ...job('job-ts-retried', 'my-job-type', { behaviour: 'fail' }, 3) });
await process1('job-ts-retried');
// cancelled while pending, by the package's cancelJob.
await queue.createJob(detection('job-ts-cancelled'));
await queue.cancelJob('job-ts-cancelled');
// running: the worker holds it; its file is copied while it runs, then
// the job is cancelled by cancelJob (a cancelled job with startedAt).
await queue.createJob({ ...job('job-ts-running', 'my-job-type', { behaviour: 'hold' }) });
const run = process1('job-ts-running');
await isHolding;
const runningDoc = await readFile(join(dataDir, 'jobs', 'running', 'job-ts-running.json'), 'utf8');
await queue.cancelJob('job-ts-running');
const cancelledRunning = await readFile(join(dataDir, 'jobs', 'cancelled', 'job-ts-running.json'), 'utf8');
release();
await run; // the package's worker then writes it complete (its moves do not check): not kept.
queue.destroy();

await rm(join(OUT, 'jobs'), { recursive: true, force: true });
for (const s of ['pending', 'running', 'complete', 'failed', 'cancelled']) await mkdir(join(OUT, 'jobs', s), { recursive: true });
for (const s of ['pending', 'complete', 'failed', 'cancelled']) {
  for (const f of await readdir(join(dataDir, 'jobs', s))) {
    if (f === 'job-ts-running.json') continue;
    await cp(join(dataDir, 'jobs', s, f), join(OUT, 'jobs', s, f));
  }
}
const { writeFile } = await import('node:fs/promises');
await writeFile(join(OUT, 'jobs', 'running', 'job-ts-running.json'), runningDoc);
await writeFile(join(OUT, 'jobs', 'cancelled', 'job-ts-running-cancelled.json'),
  cancelledRunning.replaceAll('"job-ts-running"', '"job-ts-running-cancelled"'));
await writeFile(join(OUT, 'VERSION'), `@semiont/jobs@${version}\n`);
await rm(dataDir, { recursive: true, force: true });
console.log(`generate.mjs: wrote ${OUT}/jobs with @semiont/jobs@${version}`);
