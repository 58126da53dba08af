import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TransformCallback } from 'node:stream';
import express from 'express';
import type { Request, Response, Router } from 'express';
import { webhookAuth } from '../../auth/index.ts';
import { databaseUnavailable } from '../../db/unavailable.ts';
import type { AuthLocals } from '../../auth/index.ts';
import { FULL_ACCESS } from '../../fhir/access.ts';
import { PostgresRepository } from '../../fhir/repository.ts';
import type { InboundDeps } from '../sender.ts';
import { authenticateSource } from '../sources/authenticate.ts';
import { findSource } from '../sources/store.ts';
import { importRemittance } from './import.ts';
import type { EnvelopeSeen, ImportResult, RemittanceSummary } from './import.ts';
import { FileTap, journalAlone, journalInImport } from './journal.ts';
import type { RemittanceJournal } from './journal.ts';

export const SOURCE = 'x12-835';
export const REMITTANCES_PATH = '/api/remittances';
export const SOURCE_PATH = '/api/webhooks/x12-835/:sourceId';
/** Largest 835 taken over HTTP (a 10,000-claim file is about 4 MB). */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

/**
 * POST /api/remittances (a bearer token with the `webhook` scope, or create on
 * PaymentReconciliation) and POST /api/webhooks/x12-835/<source id> (a registered source of kind
 * x12-835: Basic or OAuth as it says): the body is an 835 file, whatever its Content-Type, read
 * as it streams (never buffered whole in memory). Answers JSON: 201 {remittances} when something was
 * written, 200 when every trace in it was imported before; {error, segment?, position?} with 400
 * (not a well-formed 835), 409 (a trace imported before with other content), 413 (too large),
 * 422 (the payment does not balance, or a claim cannot be booked), 503 with Retry-After (the
 * database is away). A refused file writes nothing but its journal row (source x12-835: processed,
 * duplicate for the 200, refused, failed; x12-835/journal.ts says what the row keeps of a file).
 */
export function x12Routes(deps: InboundDeps): Router {
  const routes = express.Router();
  const fhirBase = (req: Request): string => `${deps.baseUrl ?? `${req.protocol}://${req.get('host')}`}/fhir`;

  routes.post(REMITTANCES_PATH, webhookAuth(deps.auth), async (req: Request, res: Response) => {
    const { tenantId } = res.locals as AuthLocals;
    await run(req, res, tenantId, undefined, undefined);
  });

  routes.post(SOURCE_PATH, async (req: Request, res: Response) => {
    const source = await findSource(deps.db, req.params.sourceId as string);
    if (!source || source.kind !== SOURCE) return void res.status(404).json({ error: 'Unknown webhook source' });
    const denied = await authenticateSource(req, source, deps.auth);
    if (denied) {
      if (denied.challenge) res.set('WWW-Authenticate', denied.challenge);
      if (denied.retryAfter !== undefined) res.set('Retry-After', String(denied.retryAfter));
      return void res.status(denied.status).json({ error: denied.message });
    }
    await run(req, res, source.tenantId, source.claimIdentifierSystem ?? undefined, source.id);
  });

  async function run(req: Request, res: Response, tenantId: string, claimIdSystem: string | undefined, sourceId: string | undefined): Promise<void> {
    const tap = new FileTap();
    const envelope: EnvelopeSeen = { interchanges: [], groups: [] };
    const journal: RemittanceJournal = { tenantId, sourceId, request: req, tap, envelope };
    /** A refused or failed file: its journal row alone (a failure to write it is logged, the answer stands). */
    const answerAlone = async (status: number, body: { error: string } & Record<string, unknown>, outcome: 'refused' | 'failed', detail: Record<string, unknown> = {}): Promise<void> => {
      await deps.db.transaction((tx) => journalAlone(tx, journal, outcome, { status, body }, body.error, detail))
        .catch((err: unknown) => req.log?.error({ err }, 'the refused remittance could not be journalled'));
      res.status(status).json(body);
    };
    const declared = Number(req.get('content-length') ?? NaN);
    if (declared > MAX_FILE_BYTES) return answerAlone(413, { error: `An 835 is taken up to ${MAX_FILE_BYTES} bytes` }, 'refused', { declaredBytes: declared });
    const repo = new PostgresRepository(deps.db, { tenantId, access: FULL_ACCESS, baseUrl: fhirBase(req) }, { observer: deps.observer });
    let result: ImportResult;
    const answerOf = (remittances: RemittanceSummary[]) => ({ status: remittances.some((r) => r.status === 'created') ? 201 : 200, body: { remittances } });
    // The body is spooled to a temporary file first (streaming, so memory stays flat), then
    // imported from it: the request is received at the network's pace, not the import's, so a
    // long import does not meet the server's request timeout and a client that goes away
    // mid-upload has started nothing.
    const dir = await mkdtemp(join(tmpdir(), 'fhir-billing-835-'));
    try {
      const file = join(dir, 'remittance.835');
      await pipeline(req, new Limit(MAX_FILE_BYTES), tap, createWriteStream(file));
      result = await importRemittance(repo, createReadStream(file), {
        ...(claimIdSystem && { claimIdSystem }),
        envelope,
        inTransaction: journalInImport(journal, answerOf),
      });
    } catch (err) {
      if (err instanceof TooLarge) return answerAlone(413, { error: err.message }, 'refused');
      if (req.destroyed) return; // the client went away while sending; nothing was imported
      const down = databaseUnavailable(err);
      if (down) {
        res.set('Retry-After', String(down.retryAfterSeconds));
        return void res.status(503).json({ error: down.message });
      }
      req.log?.error({ err }, 'remittance import failed');
      return answerAlone(500, { error: 'The remittance could not be imported; nothing was recorded' }, 'failed', { cause: (err as Error)?.message ?? String(err) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    if (!result.ok) {
      const { ok: _ok, status, ...body } = result;
      return answerAlone(status, { error: body.message, ...(body.segment && { segment: body.segment }), ...(body.position && { position: body.position }) }, 'refused');
    }
    const answer = answerOf(result.remittances);
    res.status(answer.status).json(answer.body);
  }
  return routes;
}

class TooLarge extends Error {}

/** Fails the stream once more than `max` bytes came. */
class Limit extends Transform {
  #left: number;
  constructor(max: number) {
    super();
    this.#left = max;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.#left -= chunk.length;
    if (this.#left < 0) return cb(new TooLarge(`An 835 is taken up to ${MAX_FILE_BYTES} bytes`));
    cb(null, chunk);
  }
}
