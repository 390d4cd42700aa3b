// BullMQ peer: the producer side of bench/run.sh's measurements.
//
//   node bench.js REDIS_PORT QUEUE e2e N        addBulk N no-op jobs (chunks of 1000),
//                                               wait until a running worker completed them
//   node bench.js REDIS_PORT QUEUE roundtrip N  add one job, waitUntilFinished; N times
//
// Prints `RESULT {json}` on stdout. Bounded: gives up after 120 s.
'use strict';
const { Queue, QueueEvents } = require('bullmq');

const port = Number(process.argv[2] || 6379);
const name = process.argv[3] || 'bench';
const mode = process.argv[4] || 'e2e';
const n = Number(process.argv[5] || 10000);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const giveUp = Date.now() + 120000;

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function e2e(queue) {
  const t0 = process.hrtime.bigint();
  const chunk = 1000;
  for (let i = 0; i < n; i += chunk) {
    const jobs = [];
    for (let k = i; k < Math.min(n, i + chunk); k++) jobs.push({ name: 'noop', data: {} });
    await queue.addBulk(jobs);
  }
  const tEnq = process.hrtime.bigint();
  let done = 0;
  while (Date.now() < giveUp) {
    done = await queue.getCompletedCount();
    if (done >= n) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const t1 = process.hrtime.bigint();
  const secs = Number(t1 - t0) / 1e9;
  const enqSecs = Number(tEnq - t0) / 1e9;
  return {
    name: 'bullmq_e2e', e2e_tasks: n, e2e_succeeded: done, e2e_seconds: secs,
    e2e_tasks_per_s: done / secs, enqueue_per_s: n / enqSecs,
  };
}

async function roundtrip(queue) {
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const lat = [];
  const warmup = Math.min(50, Math.floor(n / 10));
  for (let i = 0; i < n + warmup && Date.now() < giveUp; i++) {
    const t0 = process.hrtime.bigint();
    const job = await queue.add('noop', {});
    await job.waitUntilFinished(events, 10000);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (i >= warmup) lat.push(us);
  }
  await events.close();
  lat.sort((a, b) => a - b);
  return {
    name: 'bullmq_roundtrip', ok: lat.length, p50_us: pct(lat, 50), p90_us: pct(lat, 90),
    p99_us: pct(lat, 99), p999_us: pct(lat, 99.9),
  };
}

(async () => {
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const result = mode === 'roundtrip' ? await roundtrip(queue) : await e2e(queue);
  console.log('RESULT ' + JSON.stringify(result));
  await queue.close();
  process.exit(0);
})().catch((e) => {
  console.error('ERROR', e);
  process.exit(1);
});
