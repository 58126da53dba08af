import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

/**
 * The embedded database's thread: PGlite runs its statements synchronously in WebAssembly, so on
 * the main thread one slow statement would stop every request, /healthz and the delivery worker.
 * Here it stops only this thread. Kept lean on purpose (PGlite and node: built-ins only): every
 * import here is loaded a second time, in this thread's own V8 isolate.
 *
 * The main thread (embedded.ts) serializes what it sends, so this thread runs one request at a
 * time in arrival order and answers each with its id.
 */
export type Request =
  | { id: number; op: 'query'; sql: string; params: unknown[] }
  | { id: number; op: 'listen' | 'unlisten'; channel: string }
  | { id: number; op: 'close' };

export type Reply =
  | { op: 'ready' }
  | { op: 'failed'; error: SerializedError }
  | { op: 'notify'; channel: string; payload: string }
  | { op: 'done'; id: number; rows?: unknown[] }
  | { op: 'error'; id: number; error: SerializedError };

/** An error as plain data: the message plus its own fields (SQLSTATE `code`, detail, constraint...). */
export type SerializedError = { message: string; fields: Record<string, string | number> };

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { message: String(err), fields: {} };
  const fields: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(err)) {
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return { message: err.message, fields };
}

/**
 * PGlite's default 128 MB of shared_buffers is resident memory in a process that is one user's
 * database; 16 MB holds the hot pages of a billing server's indexes and keeps the server's idle RSS
 * near 200 MB. Given at start, so no postgresql.conf in the data directory is rewritten.
 */
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

async function serve(port: NonNullable<typeof parentPort>, dataDir: string): Promise<void> {
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dataDir, { startParams: START_PARAMS });
  } catch (err) {
    port.postMessage({ op: 'failed', error: serializeError(err) } satisfies Reply);
    return;
  }
  const unlisten = new Map<string, () => Promise<void>>();
  const notify = (channel: string) => (payload: string) => port.postMessage({ op: 'notify', channel, payload } satisfies Reply);

  async function handle(request: Request): Promise<unknown[] | undefined> {
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

  port.on('message', (request: Request) => {
    handle(request).then(
      (rows) => {
        port.postMessage({ op: 'done', id: request.id, rows } satisfies Reply);
        // Closed: nothing is left for this thread to do, so let it end.
        if (request.op === 'close') port.close();
      },
      (err: unknown) => port.postMessage({ op: 'error', id: request.id, error: serializeError(err) } satisfies Reply),
    );
  });
  port.postMessage({ op: 'ready' } satisfies Reply);
}

if (parentPort) void serve(parentPort, (workerData as { dataDir: string }).dataDir);
