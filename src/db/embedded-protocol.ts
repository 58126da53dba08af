/**
 * What the main thread (embedded.ts) and the embedded database's thread (embedded-worker.js) say
 * to each other. The main thread serializes what it sends, so the thread runs one request at a
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

/** What the thread is started with. */
export interface ThreadData {
  dataDir: string;
  /** For memory://: a gzipped tarball of a data directory fresh from initdb, loaded instead of running initdb. */
  templatePath?: string;
}
