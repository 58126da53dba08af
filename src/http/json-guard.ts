import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * What every route does to a body before it looks inside: parse it within a size limit, then walk
 * it once, without recursion, to refuse what no handler can take safely. Deep nesting overflows the
 * stack of every recursive consumer downstream (validation, FHIRPath, JSON Patch, zod); millions of
 * nodes cost seconds of event loop per request; NUL characters and lone surrogates cannot be stored
 * in PostgreSQL text or jsonb. Checked here, they are a 400 or 413 before any work, and no handler
 * has to defend itself. The refusal reaches each router's error handler as a body-parser-style
 * error (`status`, `type`, `message`), which each renders in its own contract's shape.
 */

export interface JsonLimits {
  /** Deepest nesting of objects and arrays (the top-level value is depth 1). */
  maxDepth: number;
  /** Most values (objects, arrays, strings, numbers, booleans, nulls) in the whole document. */
  maxNodes: number;
}

/** Roomy for any real FHIR resource (a few thousand values, nesting of 20 or so). */
export const DEFAULT_JSON_LIMITS: JsonLimits = { maxDepth: 64, maxNodes: 100_000 };

export interface BodyRefusal {
  status: 400 | 413;
  message: string;
  /** Where in the body, as a JSON Pointer (`/channel/header/1`), when one value is at fault. */
  pointer?: string;
}

/** Error a refused body travels as, shaped like body-parser's so existing handlers map its status. */
export class UnsafeBodyError extends Error {
  readonly status: 400 | 413;
  readonly type = 'entity.unsafe';
  readonly expose = true;
  readonly pointer: string | undefined;
  constructor(refusal: BodyRefusal) {
    super(refusal.message);
    this.status = refusal.status;
    this.pointer = refusal.pointer;
  }
}

/** A string PostgreSQL and FHIR can hold: no NUL, no lone UTF-16 surrogate. Why not, if not. */
export function unsafeTextReason(text: string): string | undefined {
  if (text.includes('\u0000')) return 'contains a NUL character (\\u0000)';
  if (!text.isWellFormed()) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return undefined;
}

/** The first reason `value` may not be processed, or undefined. Iterative: depth costs no stack. */
export function inspectJson(value: unknown, limits: JsonLimits = DEFAULT_JSON_LIMITS): BodyRefusal | undefined {
  const stack: { value: unknown; depth: number; path: string }[] = [{ value, depth: 1, path: '' }];
  let nodes = 0;
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (++nodes > limits.maxNodes) {
      return { status: 413, message: `The JSON body has more than ${limits.maxNodes} values` };
    }
    const v = item.value;
    if (typeof v === 'string') {
      const reason = unsafeTextReason(v);
      if (reason) return { status: 400, message: `The string at ${item.path || '/'} ${reason}`, pointer: item.path };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (item.depth > limits.maxDepth) {
      return { status: 400, message: `The JSON body is nested more than ${limits.maxDepth} levels deep` };
    }
    if (Array.isArray(v)) {
      // Counted before pushing, so a huge flat array is refused without first being copied.
      if (nodes + v.length > limits.maxNodes) return { status: 413, message: `The JSON body has more than ${limits.maxNodes} values` };
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth: item.depth + 1, path: `${item.path}/${i}` });
      continue;
    }
    const keys = Object.keys(v);
    if (nodes + keys.length > limits.maxNodes) return { status: 413, message: `The JSON body has more than ${limits.maxNodes} values` };
    for (const key of keys) {
      const reason = unsafeTextReason(key);
      if (reason) return { status: 400, message: `A property name at ${item.path || '/'} ${reason}`, pointer: item.path };
      stack.push({ value: (v as Record<string, unknown>)[key], depth: item.depth + 1, path: `${item.path}/${key}` });
    }
  }
  return undefined;
}

const inspected = new WeakSet<Request>();

/**
 * Middleware: refuses an already parsed `req.body` that inspectJson finds unsafe. The first guard
 * a request passes decides (a route-specific budget mounted first wins over a general one).
 */
export function guardParsedBody(limits: JsonLimits = DEFAULT_JSON_LIMITS): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (inspected.has(req) || req.body === undefined) {
      next();
      return;
    }
    inspected.add(req);
    const refusal = inspectJson(req.body, limits);
    next(refusal ? new UnsafeBodyError(refusal) : undefined);
  };
}

export interface JsonBodyOptions {
  /** Byte limit of the raw body, as body-parser takes it ('64kb', '4mb'). */
  limit: string;
  /** Media types parsed as JSON (default: application/json and every +json type). */
  type?: string | string[] | ((req: import('node:http').IncomingMessage) => boolean);
  limits?: JsonLimits;
}

/** express.json within a byte limit, then the structural guard. */
export function jsonBody(options: JsonBodyOptions): RequestHandler[] {
  return [
    express.json({ type: options.type ?? ['application/json', 'application/*+json'], limit: options.limit, strict: false }),
    guardParsedBody(options.limits),
  ];
}

/**
 * A query string value or header that cannot be processed: the first offending parameter and why.
 * Values arrive percent-decoded, so `%00` is a NUL here.
 */
export function inspectQuery(query: Record<string, unknown>): string | undefined {
  for (const [key, value] of Object.entries(query)) {
    const keyReason = unsafeTextReason(key);
    if (keyReason) return `A query parameter name ${keyReason}`;
    for (const v of Array.isArray(value) ? value : [value]) {
      const reason = typeof v === 'string' ? unsafeTextReason(v) : undefined;
      if (reason) return `Query parameter ${key} ${reason}`;
    }
  }
  return undefined;
}
