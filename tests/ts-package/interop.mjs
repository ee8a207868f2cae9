#!/usr/bin/env node
// interop.mjs — the published @semiont/jobs package's side of
// `cargo xtask interop`: each subcommand opens the package's JobQueue on a
// data directory (the package's `dataDir`, the parent of `jobs/`, which is
// also semiont-jobs' `--data-dir`), does one thing, and prints one JSON line.
//
//   node interop.mjs create <dataDir> <id> <type> <params-json>
//       JobQueue.createJob of a pending job in the package's own layout
//   node interop.mjs get <dataDir> <id>
//       {"job": getJob(id), "listed": listJobs() holds it, "stats": getStats()}
//   node interop.mjs work <dataDir> <id> <type> <timeout-ms>
//       a JobWorker of <type> (executeJob returns {"by": "ts-worker", ...})
//       until getJob(id) is complete; prints {"job": ...}

import { loadPackage, quiet } from './package.mjs';

const [cmd, dataDir, id, ...rest] = process.argv.slice(2);
if (!cmd || !dataDir || !id) {
  console.error('usage: interop.mjs create|get|work <dataDir> <id> ...');
  process.exit(2);
}
const { JobQueue, JobWorker } = await loadPackage();
const queue = new JobQueue({ dataDir }, quiet);
await queue.initialize();
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

try {
  if (cmd === 'create') {
    const [type, params] = rest;
    await queue.createJob({
      status: 'pending',
      metadata: { id, type, userId: 'ts-user', created: new Date().toISOString(), retryCount: 0, maxRetries: 3 },
      params: JSON.parse(params),
    });
    out({ created: id });
  } else if (cmd === 'get') {
    const job = await queue.getJob(id);
    const listed = (await queue.listJobs({ limit: 1000 })).some((j) => j.metadata.id === id);
    out({ job, listed, stats: await queue.getStats() });
  } else if (cmd === 'work') {
    const [type, timeoutMs] = rest;
    class InteropWorker extends JobWorker {
      getWorkerName() { return 'ts-interop-worker'; }
      canProcessJob(job) { return job.metadata.type === type; }
      async executeJob(job) { return { by: 'ts-worker', params: job.params }; }
    }
    const worker = new InteropWorker(queue, 20, 20, quiet);
    const running = worker.start();
    const deadline = Date.now() + Number(timeoutMs);
    let job = await queue.getJob(id);
    while (job?.status !== 'complete' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      job = await queue.getJob(id);
    }
    await worker.stop();
    await running;
    out({ job });
    if (job?.status !== 'complete') process.exitCode = 1;
  } else {
    console.error(`interop.mjs: unknown command ${cmd}`);
    process.exitCode = 2;
  }
} finally {
  queue.destroy();
}
