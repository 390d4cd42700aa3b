// BullMQ peer: one worker process, concurrency 50, no-op jobs.
// Usage: node worker.js REDIS_PORT QUEUE [CONCURRENCY]
'use strict';
const { Worker } = require('bullmq');

const port = Number(process.argv[2] || 6379);
const queue = process.argv[3] || 'bench';
const concurrency = Number(process.argv[4] || 50);

const worker = new Worker(queue, async () => null, {
  connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null },
  concurrency,
});
worker.on('error', (e) => console.error('worker error', e.message));
worker.waitUntilReady().then(() => console.error(`bullmq worker ready: ${queue}, concurrency ${concurrency}`));

async function stop() {
  await worker.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
