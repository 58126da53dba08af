import type { Request } from 'express';

/** What every sender's journal row keeps of its request's headers (never Authorization). */
const KEPT_HEADERS = ['content-type', 'content-length', 'user-agent', 'x-forwarded-for', 'x-request-id'];

/**
 * The headers worth keeping in the journal: the addresses the request came from, KEPT_HEADERS
 * and the sender's own `more` (a signature, say), each cut to 1 KiB.
 */
export function keptHeaders(req: Request, more: readonly string[] = []): Record<string, string> {
  const kept: Record<string, string> = { 'remote-address': req.socket.remoteAddress ?? '', 'client-address': req.ip ?? '' };
  for (const name of [...KEPT_HEADERS, ...more]) {
    const value = req.headers[name];
    if (typeof value === 'string') kept[name] = value.slice(0, 1024);
  }
  return kept;
}
