import { createHash } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { keptHeaders } from '../headers.ts';
import { databaseUnavailable } from '../../db/unavailable.ts';
import { FULL_ACCESS } from '../../fhir/access.ts';
import { PostgresRepository } from '../../fhir/repository.ts';
import { decodeUtf8, parseFields } from '../body.ts';
import { handleOnce, recordAlone } from '../journal.ts';
import type { EventStatus, InboundEvent, RawMessage, StoredAnswer } from '../journal.ts';
import type { InboundDeps } from '../sender.ts';
import { authenticateSource } from '../sources/authenticate.ts';
import { findSource } from '../sources/store.ts';
import type { SourceRow } from '../sources/store.ts';
import { SOURCE, runMessage } from './commands.ts';
import { fieldMapOf, reader } from './fields.ts';
import type { FieldMap } from './fields.ts';
import { readMessage } from './message.ts';
import { redactCardNumbers } from './redact.ts';

export const INSTAMED_PATH = '/api/webhooks/instamed/:sourceId';
const MAX_BODY = 1024 * 1024;

/**
 * POST /api/webhooks/instamed/:sourceId (shared/seeds/002). The sender retries until it gets a 200,
 * which it may only get once the message is stored, so: the source authenticates the caller its
 * way (sources/authenticate.ts), the body is read by its Content-Type (JSON, XML, NVP), and in ONE
 * transaction the message is journalled and its billing command runs. Every message, refused ones
 * included, is journalled raw (card numbers masked). Answers are one line of text: 200 stored, 400
 * the problem (also the HTTP reason phrase: the sender shows it), 401 / 403 authentication and
 * address, 413 too large, 503 with Retry-After when the database is unreachable, 500 only when we
 * failed otherwise (either way the sender retries, and nothing was kept).
 */
export function instamedRoutes(deps: InboundDeps): Router {
  const routes = express.Router();
  const fhirBase = (req: Request): string => `${deps.baseUrl ?? `${req.protocol}://${req.get('host')}`}/fhir`;

  routes.post(INSTAMED_PATH, express.raw({ type: () => true, limit: MAX_BODY }), async (req: Request, res: Response) => {
    const source = await findSource(deps.db, req.params.sourceId as string);
    if (!source || source.kind !== 'instamed') {
      reply(res, 404, 'Unknown webhook source');
      return;
    }
    const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const text = decodeUtf8(bytes);
    const raw: RawMessage = { contentType: req.get('content-type') ?? null, text: redactCardNumbers(text ?? bytes.toString('latin1')), headers: sourceHeaders(req, source) };
    const refuse = async (status: number, message: string, eventType = 'instamed.refused'): Promise<void> => {
      const event = unreadEvent(source, raw, eventType, String(req.id));
      await journalAlone(deps, event, 'refused', { status, body: message }, req);
      reply(res, status, message);
    };

    const denied = await authenticateSource(req, source, deps.auth);
    if (denied) {
      if (denied.challenge) res.set('WWW-Authenticate', denied.challenge);
      if (denied.retryAfter !== undefined) res.set('Retry-After', String(denied.retryAfter));
      await refuse(denied.status, denied.message, 'instamed.unauthenticated');
      return;
    }
    if (text === undefined) return refuse(400, 'The body is not valid UTF-8');
    const parsed = parseFields(req.get('content-type'), text);
    if (!parsed.ok) return refuse(parsed.status, parsed.message);
    const options = source.options as { fieldMap?: Partial<FieldMap>; billIdField?: string };
    const fields = reader(parsed.fields, fieldMapOf(options.fieldMap), options.billIdField ?? 'AdditionalCode1');
    const read = readMessage(fields);
    if (!read.ok) return refuse(400, read.problem);
    const m = read.message;

    const event: InboundEvent = {
      tenantId: source.tenantId,
      source: SOURCE,
      sourceId: source.id,
      eventType: `instamed.${m.trigger}`,
      dedupeKey: m.dedupeKey,
      // A transaction is the same message when its meaning is; a plan carries its whole content
      // (an Updated plan keeps its id, status and action).
      canonical: { ...m, amount: m.amount?.toFixed(2) ?? null, source: source.id, ...(m.trigger === 'payment-plan' && { fields: [...parsed.fields].sort() }) },
      body: JSON.parse(redactCardNumbers(JSON.stringify(parsed.object))),
      raw,
    };
    const repo = new PostgresRepository(deps.db, { tenantId: source.tenantId, access: FULL_ACCESS, baseUrl: fhirBase(req) }, { observer: deps.observer });
    try {
      // InstaMed's unmatched was answered "stored", so it is as final as processed (journal.ts).
      const answer = await handleOnce(
        repo,
        event,
        async (tx) => {
          const done = await runMessage(tx, m, fields, { claimIdentifierSystem: source.claimIdentifierSystem });
          return { status: done.status, answer: { status: done.http, body: done.text } };
        },
        { settled: ['processed', 'unmatched'] },
      );
      reply(res, answer.status, String(answer.body));
    } catch (err) {
      if (databaseUnavailable(err)) return unavailable(res, err);
      req.log?.error({ err, sourceId: source.id, transactionId: m.transactionId }, 'instamed message failed; rolled back');
      const message = `Not stored: processing failed (request id ${String(req.id)}); please retry`;
      await journalAlone(deps, event, 'failed', { status: 500, body: message }, req, (err as Error)?.message ?? String(err));
      reply(res, 500, message);
    }
  });

  // Bodies we could not read at all (too large, broken encoding): the sender's one-line answers.
  routes.use(INSTAMED_PATH, async (err: { status?: number; type?: string; message?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.too.large') {
      const source = await findSource(deps.db, req.params.sourceId as string).catch(() => undefined);
      const message = 'The body is too large (at most 1 MiB)';
      if (source) {
        const raw: RawMessage = { contentType: req.get('content-type') ?? null, text: '', headers: sourceHeaders(req, source) };
        await journalAlone(deps, unreadEvent(source, raw, 'instamed.refused', String(req.id)), 'refused', { status: 413, body: message }, req, 'body over 1 MiB, not kept');
      }
      reply(res, 413, message);
    } else if (err.status !== undefined && err.status >= 400 && err.status < 500) {
      reply(res, 400, err.message ?? 'Unreadable request body');
    } else if (databaseUnavailable(err)) {
      unavailable(res, err);
    } else {
      req.log?.error({ err }, 'instamed webhook failed');
      reply(res, 500, `Not stored: processing failed (request id ${String(req.id)}); please retry`);
    }
  });
  return routes;
}

/** The database is away (nothing was kept, not even in the journal): 503 and when to retry. */
function unavailable(res: Response, err: unknown): void {
  const down = databaseUnavailable(err)!;
  res.set('Retry-After', String(down.retryAfterSeconds));
  reply(res, 503, down.message);
}

/** One line of text, also as the reason phrase of refusals (printable ASCII only, as HTTP/1.1 wants). */
function reply(res: Response, status: number, text: string): void {
  const line = text.replace(/[\r\n]+/g, ' ').slice(0, 500);
  if (status !== 200) res.statusMessage = line.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  res.status(status).type('text/plain').send(line);
}

/** Kept with the common ones: the source's required header, when it has one. */
function sourceHeaders(req: Request, source: SourceRow): Record<string, string> {
  const required = (source.options as { requiredHeader?: { name: string } | null }).requiredHeader;
  return keptHeaders(req, required ? [required.name.toLowerCase()] : []);
}

/** A message refused before we knew what it was: its own dedupe key (never a duplicate of another). */
function unreadEvent(source: SourceRow, raw: RawMessage, eventType: string, requestId: string): InboundEvent {
  const hash = createHash('sha256').update(raw.text).digest('hex').slice(0, 16);
  return { tenantId: source.tenantId, source: SOURCE, sourceId: source.id, eventType, dedupeKey: `refused|${requestId}|${hash}`, canonical: null, body: null, raw };
}

/** Journals an event in a transaction of its own (after a refusal or a rollback); a failure to do so is logged. */
async function journalAlone(deps: InboundDeps, event: InboundEvent, status: EventStatus, answer: StoredAnswer, req: Request, error?: string): Promise<void> {
  await recordAlone(deps.db, event, { status, answer, ...(error && { error }) }, (journalErr) => req.log?.error({ err: journalErr }, 'could not journal the instamed message'));
}
