/**
 * Errors as values: every auth operation answers `ok` or a refusal with its HTTP status, an OAuth
 * 2.0 error code (RFC 6749 §5.2, RFC 6750 §3.1) and a message for humans. Each route renders the
 * refusal in its own contract's shape (/api, /oauth2, /admin, /fhir).
 */
export type ErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'invalid_scope'
  | 'unsupported_grant_type'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'rate_limited'
  | 'not_found'
  | 'conflict';

export interface Refusal {
  ok: false;
  status: number;
  code: ErrorCode;
  message: string;
  /** Seconds until a rate-limited caller may try again. */
  retryAfter?: number;
}

export type Result<T> = { ok: true; value: T } | Refusal;

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });

export function refuse(status: number, code: ErrorCode, message: string, retryAfter?: number): Refusal {
  return { ok: false, status, code, message, ...(retryAfter !== undefined && { retryAfter }) };
}
