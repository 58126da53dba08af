// @ts-check
import { existsSync, readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

/**
 * @import { Reply, Request, SerializedError, ThreadData } from './embedded-protocol.ts'
 * @import { MessagePort } from 'node:worker_threads'
 */

/*
 * The embedded database's thread: PGlite runs its statements synchronously in WebAssembly, so on
 * the main thread one slow statement would stop every request, /healthz and the delivery worker.
 * Here it stops only this thread.
 *
 * Plain JavaScript (checked by tsc through JSDoc) and lean on purpose: this thread is a V8 isolate
 * of its own, and everything it loads is loaded a second time. A TypeScript file here would load
 * Node's type stripper (about 17 MB) into this isolate just for this one file.
 */

/** @param {unknown} err @returns {SerializedError} */
function serializeError(err) {
  if (!(err instanceof Error)) return { message: String(err), fields: {} };
  /** @type {Record<string, string | number>} */
  const fields = {};
  for (const [key, value] of Object.entries(err)) {
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return { message: err.message, fields };
}

/*
 * PGlite's default 128 MB of shared_buffers is resident memory in a process that is one user's
 * database; 16 MB holds the hot pages of a billing server's indexes. Given at start, so no
 * postgresql.conf in the data directory is rewritten.
 */
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

/**
 * A memory:// database loads the template's tarball instead of running initdb (a new data
 * directory on disk was already copied from the template: embedded-template.ts).
 * @param {ThreadData} data
 */
function templateFor(data) {
  if (!data.templatePath || !existsSync(data.templatePath)) return undefined;
  return new Blob([readFileSync(data.templatePath)]);
}

/** @param {MessagePort} port @param {ThreadData} data */
async function serve(port, data) {
  /** @param {Reply} reply */
  const reply = (reply) => port.postMessage(reply);
  /** @type {PGlite} */
  let pglite;
  try {
    pglite = await PGlite.create(data.dataDir, { startParams: START_PARAMS, loadDataDir: templateFor(data) });
  } catch (err) {
    reply({ op: 'failed', error: serializeError(err) });
    return;
  }
  /** @type {Map<string, () => Promise<void>>} */
  const unlisten = new Map();
  /** @param {string} channel */
  const notify = (channel) => (/** @type {string} */ payload) => reply({ op: 'notify', channel, payload });

  /** @param {Request} request @returns {Promise<unknown[] | undefined>} */
  async function handle(request) {
    switch (request.op) {
      case 'query':
        return (await pglite.query(request.sql, request.params)).rows;
      case 'listen':
        if (!unlisten.has(request.channel)) unlisten.set(request.channel, await pglite.listen(request.channel, notify(request.channel)));
        return undefined;
      case 'unlisten':
        await unlisten.get(request.channel)?.();
        unlisten.delete(request.channel);
        return undefined;
      case 'close':
        await pglite.close();
        return undefined;
    }
  }

  port.on('message', (/** @type {Request} */ request) => {
    handle(request).then(
      (rows) => {
        reply({ op: 'done', id: request.id, rows });
        // Closed: nothing is left for this thread to do, so let it end.
        if (request.op === 'close') port.close();
      },
      (err) => reply({ op: 'error', id: request.id, error: serializeError(err) }),
    );
  });
  reply({ op: 'ready' });
}

if (parentPort) void serve(parentPort, /** @type {ThreadData} */ (workerData));
