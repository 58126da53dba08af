import { createHash } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { z } from 'zod';
import { keptHeaders } from '../headers.ts';
import { claimIdSystem, recordPayerDecision } from '../../billing/index.ts';
import type { PayerDecisionInput, PayerDecisionOutcome } from '../../billing/index.ts';
import { databaseUnavailable } from '../../db/unavailable.ts';
import { FULL_ACCESS } from '../../fhir/access.ts';
import { PostgresRepository } from '../../fhir/repository.ts';
import { inspectJson } from '../../http/json-guard.ts';
import { decodeUtf8 } from '../body.ts';
import { handleOnce, recordAlone } from '../journal.ts';
import type { EventStatus, InboundEvent, RawMessage, StoredAnswer } from '../journal.ts';
import type { InboundDeps } from '../sender.ts';
import { TOO_MANY, admitSource, underFailureLimit } from '../sources/authenticate.ts';
import { hmacSha256HexMatches, signingSecretOf } from '../sources/signing.ts';
import { findSource } from '../sources/store.ts';
import type { SourceRow } from '../sources/store.ts';
import type { CuracelOptions, CuracelSource } from './options.ts';

/**
 * POST /api/webhooks/<kind>/:sourceId for Curacel's two kinds. The sender signs the raw body
 * (x-curacel-signature, hex HMAC-SHA256) from PHP, which escapes `/` and non-ASCII, so the bytes
 * as received are verified, never a re-serialisation. Then, in ONE transaction: the journal's
 * dedupe lock, the billing command, the journal row; commit, answer. Every post is journalled raw,
 * refused ones included. Answers are JSON: `{message, ...}`; a 400 names the field (`field`); 429
 * with Retry-After past the limit of bad signatures; 503 with Retry-After while the database is unreachable.
 */
export interface CuracelKind<T> {
  kind: string;
  schema: z.ZodType<T>;
  /** The journal's event type and dedupe key: one key per platform claim or PA request. */
  identify(body: T): { eventType: string; dedupeKey: string };
  input(body: T, source: CuracelSource): PayerDecisionInput;
}

const MAX_BODY = 1024 * 1024;
const SIGNATURE = 'x-curacel-signature';

export function curacelRoutes<T>(k: CuracelKind<T>, deps: InboundDeps): Router {
  const routes = express.Router();
  const path = `/api/webhooks/${k.kind}/:sourceId`;
  const fhirBase = (req: Request): string => `${deps.baseUrl ?? `${req.protocol}://${req.get('host')}`}/fhir`;

  routes.post(path, express.raw({ type: () => true, limit: MAX_BODY }), async (req: Request, res: Response) => {
    const source = await findSource(deps.db, req.params.sourceId as string);
    if (!source || source.kind !== k.kind) {
      res.status(404).json({ message: 'Unknown webhook source' });
      return;
    }
    const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const text = decodeUtf8(bytes);
    const raw: RawMessage = { contentType: req.get('content-type') ?? null, text: text ?? bytes.toString('latin1'), headers: keptHeaders(req, [SIGNATURE]) };
    const refuse = async (status: number, message: string, extra: Record<string, unknown> = {}, eventType = `${k.kind}.refused`): Promise<void> => {
      const body = { message, ...extra };
      await journalAlone(deps, unreadEvent(k.kind, source, raw, eventType, String(req.id)), 'refused', { status, body }, req);
      res.status(status).json(body);
    };

    const denied = admitSource(req, source);
    if (denied) return refuse(denied.status, denied.message, {}, `${k.kind}.unauthenticated`);
    const options = source.options as CuracelOptions;
    const signature = req.get(SIGNATURE);
    if (signature === undefined) {
      if (!options.acceptUnsigned) return refuse(401, `The ${SIGNATURE} header is required`, {}, `${k.kind}.unauthenticated`);
    } else {
      // Bad signatures are limited as bad passwords are (sources/authenticate.ts): 429 past the limit.
      const checked = await underFailureLimit(req, source, deps.auth, async () => ((await signatureMatches(deps, source, bytes, signature)) ? undefined : 'mismatch'));
      if (checked.limited) {
        res.set('Retry-After', String(checked.retryAfter));
        return refuse(429, TOO_MANY, { retryAfter: checked.retryAfter }, `${k.kind}.unauthenticated`);
      }
      if (checked.failure) return refuse(401, `The ${SIGNATURE} header does not match the body`, {}, `${k.kind}.unauthenticated`);
    }
    if (text === undefined) return refuse(400, 'The body is not valid UTF-8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return refuse(400, 'The body is not JSON');
    }
    // Too deep or too many values, NUL or lone surrogates: nothing downstream could take it safely.
    const unsafe = inspectJson(json);
    if (unsafe) return refuse(unsafe.status, unsafe.message, { field: unsafe.pointer?.slice(1).replaceAll('/', '.') ?? null });
    const parsed = k.schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.map(String).join('.');
      return refuse(400, `${field || 'body'}: ${issue.message}`, { field: field || null });
    }
    const { eventType, dedupeKey } = k.identify(parsed.data);
    const event: InboundEvent = { tenantId: source.tenantId, source: k.kind, sourceId: source.id, eventType, dedupeKey, canonical: parsed.data, body: json, raw };
    const repo = new PostgresRepository(deps.db, { tenantId: source.tenantId, access: FULL_ACCESS, baseUrl: fhirBase(req) }, { observer: deps.observer });
    try {
      const answer = await handleOnce(repo, event, async (tx) => {
        const system = source.claimIdentifierSystem ?? (await claimIdSystem(tx.conn, source.tenantId));
        const mapped: CuracelSource = { id: source.id, name: source.name, currency: options.currency, claimIdentifierSystem: system };
        const done = await recordPayerDecision(tx, k.input(parsed.data, mapped));
        return { status: 'processed', answer: { status: 200, body: answerOf(eventType, done) } };
      });
      res.status(answer.status).json(answer.body);
    } catch (err) {
      if (databaseUnavailable(err)) return unavailable(res, err);
      req.log?.error({ err, sourceId: source.id, dedupeKey }, `${k.kind} event failed; rolled back`);
      const body = { message: `Not stored: processing failed (request id ${String(req.id)}); please retry` };
      await journalAlone(deps, event, 'failed', { status: 500, body }, req, (err as Error)?.message ?? String(err));
      res.status(500).json(body);
    }
  });

  routes.use(path, (err: { status?: number; type?: string; message?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.too.large') res.status(413).json({ message: 'The body is too large (at most 1 MiB)' });
    else if (err.status !== undefined && err.status >= 400 && err.status < 500) res.status(400).json({ message: err.message ?? 'Unreadable request body' });
    else if (databaseUnavailable(err)) unavailable(res, err);
    else {
      req.log?.error({ err }, `${k.kind} webhook failed`);
      res.status(500).json({ message: `Not stored: processing failed (request id ${String(req.id)}); please retry` });
    }
  });
  return routes;
}

/** The database is away (nothing was kept, not even in the journal): 503 and when to retry. */
function unavailable(res: Response, err: unknown): void {
  const down = databaseUnavailable(err)!;
  res.set('Retry-After', String(down.retryAfterSeconds));
  res.status(503).json({ message: down.message });
}

async function signatureMatches(deps: InboundDeps, source: SourceRow, body: Buffer, given: string): Promise<boolean> {
  const secret = await signingSecretOf(deps.db, deps.auth.settings, source);
  return secret !== undefined && hmacSha256HexMatches(secret, body, given.trim());
}

const ANSWER: Record<PayerDecisionOutcome['status'], string> = {
  created: 'Stored: decision recorded',
  updated: 'Stored: decision updated',
  unchanged: 'Stored: the decision was already recorded; nothing changed',
  'out-of-date': 'Stored: a later decision is already recorded; nothing changed',
};

function answerOf(eventType: string, done: PayerDecisionOutcome): Record<string, unknown> {
  return {
    message: ANSWER[done.status],
    event: eventType,
    status: done.status,
    claim: `Claim/${done.claimId}`,
    claimCreated: done.claimCreated,
    claimResponse: `ClaimResponse/${done.claimResponseId}`,
  };
}

/** A post refused before we knew what it was: its own dedupe key (never a duplicate of another). */
function unreadEvent(kind: string, source: SourceRow, raw: RawMessage, eventType: string, requestId: string): InboundEvent {
  const hash = createHash('sha256').update(raw.text).digest('hex').slice(0, 16);
  return { tenantId: source.tenantId, source: kind, sourceId: source.id, eventType, dedupeKey: `refused|${requestId}|${hash}`, canonical: null, body: null, raw };
}

async function journalAlone(deps: InboundDeps, event: InboundEvent, status: EventStatus, answer: StoredAnswer, req: Request, error?: string): Promise<void> {
  await recordAlone(deps.db, event, { status, answer, ...(error && { error }) }, (journalErr) => req.log?.error({ err: journalErr }, `could not journal the ${event.source} post`));
}
