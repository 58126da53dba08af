import { mkdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { beginStatements } from './database.ts';
import type { Database, Queryable, Row, TransactionOptions } from './database.ts';
import type { Reply, Request, SerializedError, ThreadData } from './embedded-protocol.ts';
import { copyTemplateInto, embeddedTemplate, hasCluster } from './embedded-template.ts';
import { lockDataDirectory } from './lock.ts';

/**
 * Embedded PostgreSQL (PGlite), run in a worker thread (embedded-worker.js) so that a slow
 * statement never stalls this thread's HTTP server and delivery worker. PGlite has one connection:
 * every statement and every transaction here takes one lock, so a statement from another request
 * can never land inside someone else's open transaction; transactions run one at a time and never
 * conflict. A transaction's callback runs on this thread and ships its statements one by one.
 */
export interface EmbeddedOptions {
  /**
   * Called once when the thread dies after it started (a WebAssembly abort, out of memory): every
   * statement from then on fails, so a server should exit and be restarted rather than answer 503
   * for ever. Not called for close().
   */
  onLost?: (err: Error) => void;
  /** The thread's script; tests point it at a wrapper that can crash. */
  threadUrl?: URL;
}

export async function createEmbeddedDatabase(dataDir: string, options: EmbeddedOptions = {}): Promise<Database> {
  const onDisk = !dataDir.includes('://');
  if (onDisk) mkdirSync(dataDir, { recursive: true });
  const lock = onDisk ? await lockDataDirectory(dataDir) : undefined;
  let thread: DatabaseThread;
  try {
    if (onDisk && !hasCluster(dataDir)) copyTemplateInto(dataDir);
    thread = await startThread(dataDir, options);
  } catch (err) {
    lock?.release();
    throw err;
  }

  let tail: Promise<unknown> = Promise.resolve();
  function exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = tail.then(work, work);
    tail = run.catch(() => {});
    return run;
  }

  const direct: Queryable = {
    query: async <R = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> =>
      (await thread.call({ op: 'query', sql, params: (params ?? []).map(cloneable) })) as R[],
  };
  const listeners = new Map<string, Set<(payload: string) => void>>();
  thread.onNotify = (channel, payload) => {
    for (const listener of listeners.get(channel) ?? []) listener(payload);
  };

  return {
    kind: 'embedded',
    // PGlite has one connection and no plan cache to keep; `prepare` changes nothing here.
    query: (sql, params) => exclusive(() => direct.query(sql, params)),

    transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
      return exclusive(async () => {
        for (const statement of beginStatements(options)) await direct.query(statement);
        // Each transaction its own handle (as on PostgreSQL), so what is kept by it (fhir/write-log.ts) ends with it.
        const tx: Queryable = { query: (sql, params) => direct.query(sql, params) };
        try {
          const result = await fn(tx);
          await direct.query('COMMIT');
          return result;
        } catch (err) {
          await direct.query('ROLLBACK').catch(() => {});
          throw err;
        }
      });
    },

    async listen(channel, onNotify) {
      // Under the lock: a LISTEN run inside someone's open transaction would be undone by its ROLLBACK.
      const own = (payload: string): void => onNotify(payload);
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        await exclusive(() => thread.call({ op: 'listen', channel }));
      }
      set.add(own);
      return async () => {
        if (!set.delete(own) || set.size > 0 || listeners.get(channel) !== set) return;
        listeners.delete(channel);
        await exclusive(() => thread.call({ op: 'unlisten', channel })).catch(() => {});
      };
    },

    close: () =>
      exclusive(async () => {
        try {
          await thread.call({ op: 'close' });
        } finally {
          await thread.terminate();
          lock?.release();
        }
      }),
  };
}

/** A request as the caller gives it; the thread numbers it. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Call = WithoutId<Request>;

interface DatabaseThread {
  call(request: Call): Promise<unknown[] | undefined>;
  onNotify: (channel: string, payload: string) => void;
  terminate(): Promise<void>;
}

const WORKER_URL = new URL('./embedded-worker.js', import.meta.url);

/** Starts the thread and waits until PGlite has opened `dataDir` (or failed to). */
function startThread(dataDir: string, options: EmbeddedOptions): Promise<DatabaseThread> {
  const workerData: ThreadData = { dataDir, templatePath: dataDir.includes('://') ? embeddedTemplate()?.tarball : undefined };
  const worker = new Worker(options.threadUrl ?? WORKER_URL, { workerData });
  const pending = new Map<number, { resolve: (rows: unknown[] | undefined) => void; reject: (err: Error) => void }>();
  let nextId = 1;
  let stopped: Error | undefined;
  let started = false;
  /** Asked to close: the thread ends by itself once it has, and that is no loss. */
  let closing = false;

  return new Promise((resolveStart, rejectStart) => {
    const thread: DatabaseThread = {
      call(request) {
        if (stopped) return Promise.reject(stopped);
        if (request.op === 'close') closing = true;
        const id = nextId++;
        return new Promise((resolve, reject) => {
          // Throws (rejecting this promise) when a parameter cannot be copied to the thread.
          worker.postMessage({ ...request, id });
          // Referenced only while a reply is awaited: an idle database must not keep the process alive.
          if (pending.size === 0) worker.ref();
          pending.set(id, { resolve, reject });
        });
      },
      onNotify: () => {},
      async terminate() {
        stopped ??= new Error('The embedded database is closed');
        await worker.terminate();
      },
    };
    const settle = (id: number): { resolve: (rows: unknown[] | undefined) => void; reject: (err: Error) => void } | undefined => {
      const waiting = pending.get(id);
      pending.delete(id);
      if (pending.size === 0) worker.unref();
      return waiting;
    };
    const fail = (err: Error): void => {
      if (started && !stopped && !closing) options.onLost?.(err);
      stopped ??= err;
      rejectStart(err);
      for (const waiting of pending.values()) waiting.reject(err);
      pending.clear();
    };

    worker.on('message', (reply: Reply) => {
      switch (reply.op) {
        case 'ready':
          started = true;
          worker.unref();
          return resolveStart(thread);
        case 'failed':
          void worker.terminate();
          return fail(toError(reply.error));
        case 'notify':
          return thread.onNotify(reply.channel, reply.payload);
        case 'done':
          return settle(reply.id)?.resolve(reply.rows);
        case 'error':
          return settle(reply.id)?.reject(toError(reply.error));
      }
    });
    worker.on('error', (err) => fail(new Error(`The embedded database thread failed: ${err.message}`)));
    worker.on('exit', (code) => fail(stopped ?? new Error(`The embedded database thread stopped (exit code ${code})`)));
  });
}

/** The error as PGlite raised it: same message, same SQLSTATE `code`, detail, constraint... */
function toError(serialized: SerializedError): Error {
  return Object.assign(new Error(serialized.message), serialized.fields);
}

/**
 * What PGlite would make of a parameter, done here where its class is still known (a copy to
 * another thread keeps only plain data): a plain object is only ever JSON (stringified as PGlite
 * does it), and an instance of a class such as Decimal becomes its text.
 */
function cloneable(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Date || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.some(isInstance) ? value.map((v) => (isInstance(v) ? String(v) : v)) : value;
  if (isInstance(value)) return String(value);
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function isInstance(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Date || ArrayBuffer.isView(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto !== Object.prototype && proto !== null;
}
