import { createHash } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { keptHeaders } from '../headers.ts';
import { recordAdjudication } from '../../billing/index.ts';
import { databaseUnavailable } from '../../db/unavailable.ts';
import { FULL_ACCESS } from '../../fhir/access.ts';
import { PostgresRepository } from '../../fhir/repository.ts';
import { TYRO_EVENTS, TyroBody, transactionIdOf } from '../../formats/tyro.ts';
import type { TyroEvent, TyroTransaction } from '../../formats/tyro.ts';
import { inspectJson } from '../../http/json-guard.ts';
import { decodeUtf8 } from '../body.ts';
import { handleOnce, recordAlone, recordEvent } from '../journal.ts';
import type { EventStatus, InboundEvent, RawMessage, StoredAnswer } from '../journal.ts';
import type { InboundDeps } from '../sender.ts';
import { findSource } from '../sources/store.ts';
import type { SourceRow } from '../sources/store.ts';
import { authenticateTyro } from './authenticate.ts';
import { toAdjudication } from './map.ts';
import type { TyroOptions } from './options.ts';

export const SOURCE = 'tyro';
export const TYRO_PATH = '/api/webhooks/tyro/:sourceId';
export const TYRO_TOKEN_PATH = '/api/webhooks/tyro/:sourceId/:urlToken';
const MAX_BODY = 1024 * 1024;

/**
 * Tyro Health's invoice webhooks (shared/seeds/004). The sender retries on a timeout or a 500 and
 * on nothing else, so: 200 once stored (also an older event that changed nothing, and a duplicate),
 * 401 / 403 authentication (429 with Retry-After past the limit of bad signatures), 400 a body we cannot read (final: a retry would not read better), 500
 * only when we failed (the database away included: a 503 would never be retried). Every request is journalled raw, refused ones included. Signed POSTs come
 * to the source URL; GET, PUT and DELETE (never signed) to the token URL. A body, when there is
 * one, is applied whatever the method; without one there is nothing to apply, and the notice is
 * journalled (Tyro advises fetching the transaction then; we have no API client for that).
 * Answers are JSON: `{result, transactionId, ...}` or `{error}`.
 */
export function tyroRoutes(deps: InboundDeps): Router {
  const routes = express.Router();
  const fhirBase = (req: Request): string => `${deps.baseUrl ?? `${req.protocol}://${req.get('host')}`}/fhir`;
  const raw = express.raw({ type: () => true, limit: MAX_BODY });

  const handle = (tokenUrl: boolean) => async (req: Request, res: Response) => {
    const source = await findSource(deps.db, req.params.sourceId as string);
    if (!source || source.kind !== SOURCE) return void res.status(404).json({ error: 'Unknown webhook source' });
    const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const text = decodeUtf8(bytes);
    // PostgreSQL text cannot hold NUL: the journal keeps it escaped.
    const message: RawMessage = { contentType: req.get('content-type') ?? null, text: (text ?? bytes.toString('latin1')).replaceAll('\u0000', '\\u0000'), headers: sourceHeaders(req, source) };
    const refuse = async (status: number, error: string, eventType = 'tyro.refused'): Promise<void> => {
      await journalAlone(deps, unreadEvent(source, message, eventType, String(req.id)), 'refused', { status, body: { error } }, req);
      res.status(status).json({ error });
    };

    const denied = await authenticateTyro(req, source, deps.auth, bytes, tokenUrl ? (req.params.urlToken as string) : undefined);
    if (denied) {
      if (denied.retryAfter !== undefined) res.set('Retry-After', String(denied.retryAfter));
      return refuse(denied.status, denied.message, 'tyro.unauthenticated');
    }
    if (text === undefined) return refuse(400, 'The body is not valid UTF-8');
    const queryEvent = typeof req.query.event === 'string' ? req.query.event : undefined;
    if (text.trim() === '') return notice(req, res, source, message, queryEvent);

    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      return refuse(400, `Malformed JSON: ${(err as Error).message}`);
    }
    // Too deep or too large to walk safely, NUL or lone surrogates (unstorable): http/json-guard.ts.
    const unsafe = inspectJson(json);
    if (unsafe) return refuse(unsafe.status, `${unsafe.message}${unsafe.pointer ? ` at ${unsafe.pointer}` : ''}`);
    const parsed = TyroBody.safeParse(json);
    if (!parsed.success) return refuse(400, `Invalid transaction: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`.slice(0, 1000));
    const wrapped = 'transaction' in parsed.data ? (parsed.data as { event: TyroEvent; transaction: TyroTransaction }) : undefined;
    const transaction = wrapped?.transaction ?? (parsed.data as TyroTransaction);
    const event = wrapped?.event ?? queryEvent;
    if (!event || !(TYRO_EVENTS as readonly string[]).includes(event)) {
      return refuse(400, `Which event is this? Send {event, transaction} or ?event= (one of ${TYRO_EVENTS.join(', ')})`);
    }
    const options = source.options as TyroOptions;
    const mapped = toAdjudication(event as TyroEvent, transaction, { claimIdentifierSystem: source.claimIdentifierSystem, funder: options.funder });
    if (!mapped.ok) return refuse(400, mapped.problem);

    const transactionId = transactionIdOf(transaction);
    const journalled: InboundEvent = {
      tenantId: source.tenantId,
      source: SOURCE,
      sourceId: source.id,
      eventType: `tyro.${event}`,
      dedupeKey: `${transactionId}|${event}|${transaction.modified}`,
      canonical: { event, transaction: json && typeof json === 'object' && 'transaction' in json ? (json as { transaction: unknown }).transaction : json, source: source.id },
      body: json,
      raw: message,
    };
    const repo = new PostgresRepository(deps.db, { tenantId: source.tenantId, access: FULL_ACCESS, baseUrl: fhirBase(req) }, { observer: deps.observer });
    try {
      const answer = await handleOnce(
        repo,
        journalled,
        async (tx) => {
          const result = await recordAdjudication(tx, mapped.input);
          if (!result.ok) return { status: 'refused', answer: { status: 400, body: { error: result.message } } };
          const body = { result: result.value.status, transactionId, event, state: mapped.state, ...withoutStatus(result.value) };
          return { status: result.value.status === 'waiting' ? 'unmatched' : 'processed', answer: { status: 200, body } };
        },
        // A duplicate is answered 200 with the first answer, marked as what it is.
        { settled: ['processed', 'unmatched'], duplicateAnswer: (first) => ({ status: 200, body: { ...(first.body as object), result: 'duplicate' } }) },
      );
      res.status(answer.status).json(answer.body);
    } catch (err) {
      if (databaseUnavailable(err)) return unavailable(req, res, err);
      req.log?.error({ err, sourceId: source.id, transactionId }, 'tyro event failed; rolled back');
      const error = `Not stored: processing failed (request id ${String(req.id)}); please retry`;
      await journalAlone(deps, journalled, 'failed', { status: 500, body: { error } }, req, (err as Error)?.message ?? String(err));
      res.status(500).json({ error });
    }
  };

  /** A bodiless GET or DELETE: journalled as the notice it is; nothing to apply. */
  async function notice(req: Request, res: Response, source: SourceRow, message: RawMessage, event: string | undefined): Promise<void> {
    const query = Object.fromEntries(Object.entries(req.query).filter(([, v]) => typeof v === 'string').map(([k, v]) => [k.slice(0, 64), String(v).slice(0, 256)]));
    const body = { result: 'noted', ...(event && { event: event.slice(0, 64) }), note: 'No transaction in the body: nothing was applied' };
    const journalled = { ...unreadEvent(source, { ...message, text: JSON.stringify({ method: req.method, query }) }, 'tyro.notice', String(req.id)), body: { method: req.method, query } };
    try {
      await deps.db.transaction((tx) => recordEvent(tx, journalled, { status: 'processed', answer: { status: 200, body } }));
    } catch (err) {
      req.log?.error({ err }, 'could not journal the tyro notice');
      return void res.status(500).json({ error: 'Not stored; please retry' });
    }
    res.status(200).json(body);
  }

  routes.post(TYRO_PATH, raw, handle(false));
  for (const method of ['get', 'put', 'post', 'delete'] as const) routes[method](TYRO_TOKEN_PATH, raw, handle(true));

  routes.use([TYRO_PATH, TYRO_TOKEN_PATH], (err: { status?: number; type?: string; message?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.too.large') res.status(413).json({ error: 'The body is too large (at most 1 MiB)' });
    else if (err.status !== undefined && err.status >= 400 && err.status < 500) res.status(400).json({ error: err.message ?? 'Unreadable request body' });
    else if (databaseUnavailable(err)) unavailable(req, res, err);
    else {
      req.log?.error({ err }, 'tyro webhook failed');
      res.status(500).json({ error: `Not stored: processing failed (request id ${String(req.id)}); please retry` });
    }
  });
  return routes;
}

/**
 * The database is away: nothing was kept (not even in the journal). 500, not the 503 other routes
 * answer, because Tyro retries on a timeout or a 500 and on nothing else.
 */
function unavailable(req: Request, res: Response, err: unknown): void {
  const down = databaseUnavailable(err)!;
  req.log?.warn({ err }, 'tyro event not stored: the database is unavailable');
  res.set('Retry-After', String(down.retryAfterSeconds));
  res.status(500).json({ error: `${down.message}; not stored, please retry` });
}

const withoutStatus = ({ status: _s, ...rest }: { status: string; claimResponseId?: string; paymentReconciliationId?: string }) => rest;

function sourceHeaders(req: Request, source: SourceRow): Record<string, string> {
  const kept: Record<string, string> = { method: req.method, ...keptHeaders(req, ['x-sender-timestamp', 'x-sender-signature']) };
  // The required header is a credential: only that it was there.
  const required = (source.options as TyroOptions).requiredHeaderHash;
  if (required && req.get(required.name) !== undefined) kept[required.name.toLowerCase()] = '(present)';
  return kept;
}

function unreadEvent(source: SourceRow, raw: RawMessage, eventType: string, requestId: string): InboundEvent {
  const hash = createHash('sha256').update(raw.text).digest('hex').slice(0, 16);
  return { tenantId: source.tenantId, source: SOURCE, sourceId: source.id, eventType, dedupeKey: `${eventType}|${requestId}|${hash}`, canonical: null, body: null, raw };
}

async function journalAlone(deps: InboundDeps, event: InboundEvent, status: EventStatus, answer: StoredAnswer, req: Request, error?: string): Promise<void> {
  await recordAlone(deps.db, event, { status, answer, ...(error && { error }) }, (journalErr) => req.log?.error({ err: journalErr }, 'could not journal the tyro event'));
}
