import http from 'node:http';
import https from 'node:https';
import ipaddr from 'ipaddr.js';
import type { OutboundRequest } from './render.ts';
import { OutboundUrlError, guardedLookup, isPublicAddress } from '../net/url-guard.ts';

export interface HttpResult {
  /** Absent on a network error or timeout. */
  status?: number;
  retryAfter?: string;
  error?: string;
  latencyMs: number;
}

// Keep-alive: most deliveries go to the same few receivers, and a new TLS handshake per event
// would dominate latency.
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

/**
 * One HTTP attempt. Redirects are not followed (a 3xx is an answer, not a success). Unless private
 * networks are allowed, the address is checked when the connection is made, not only when the
 * Subscription was written, so a DNS answer that changed in between cannot reach inside.
 */
export function sendRequest(
  req: OutboundRequest,
  headers: Record<string, string>,
  timeoutMs: number,
  allowPrivate: boolean,
  /** Abandons the attempt (the worker could not keep its lease); the result says why. */
  abandon?: AbortSignal,
): Promise<HttpResult> {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(req.url);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      if (!allowPrivate && ipaddr.isValid(host) && !isPublicAddress(host)) throw new OutboundUrlError(`${host} is not a public address`);
    } catch (err) {
      resolve({ error: (err as Error).message, latencyMs: elapsed() });
      return;
    }
    const body = Buffer.from(req.body);
    const client = url.protocol === 'https:' ? https : http;
    const signal = abandon ? AbortSignal.any([AbortSignal.timeout(timeoutMs), abandon]) : AbortSignal.timeout(timeoutMs);
    const send = (staleRetry: boolean): void => {
      const request = client.request(
        url,
        {
          method: req.method,
          agent: agents[url.protocol as 'http:' | 'https:'],
          ...(!allowPrivate && { lookup: guardedLookup }),
          headers: {
            ...headers,
            ...(req.contentType && { 'Content-Type': req.contentType }),
            'Content-Length': String(body.length),
            'User-Agent': 'fhir-billing-subscriptions',
          },
          signal,
        },
        (res) => {
          res.resume(); // the answer's body is not needed; drain it so the socket is reused
          res.on('end', () =>
            resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'], latencyMs: elapsed() }),
          );
          res.on('error', (err) => resolve({ error: err.message, latencyMs: elapsed() }));
        },
      );
      request.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the receiver closed just as we reused it: the request almost surely
        // never reached it, so it goes once more on a new connection, as Node's documentation
        // advises (at worst a duplicate, which receivers drop by webhook-id).
        if (staleRetry && request.reusedSocket && err.code === 'ECONNRESET' && !signal.aborted) {
          send(false);
          return;
        }
        const stopped = err.name === 'AbortError' || err.name === 'TimeoutError';
        const why = abandon?.aborted ? String(abandon.reason ?? 'abandoned') : `timed out after ${timeoutMs} ms`;
        resolve({ error: stopped ? why : err.message, latencyMs: elapsed() });
      });
      request.end(body);
    };
    send(true);
  });
}

export function closeAgents(): void {
  agents['http:'].destroy();
  agents['https:'].destroy();
}
