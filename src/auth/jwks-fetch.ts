import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { JSONWebKeySet } from 'jose';
import { OutboundUrlError, guardedLookup, isPublicAddress } from '../net/url-guard.ts';

/**
 * Fetches a client's JWK Set from its registered jwksUrl (SMART Backend Services). Unless the
 * operator sets OUTBOUND_ALLOW_PRIVATE_NETWORKS=true the URL must be https and must not reach a
 * private, loopback or link-local address: the check runs on the address actually connected to
 * (guardedLookup), so DNS rebinding cannot slip past it. Small, with a timeout, fetched per token
 * request (a client asks for a token about once per token lifetime, so nothing is cached).
 */
const TIMEOUT_MS = 5000;
const MAX_BYTES = 64 * 1024;

/** Refuses a jwksUrl we would never fetch; run when a client is registered and before each fetch. */
export function checkJwksUrl(raw: string, allowPrivate: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'jwksUrl is not a URL';
  }
  if (url.protocol !== 'https:' && !(allowPrivate && url.protocol === 'http:')) return 'jwksUrl must be https';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && (host === 'localhost' || (/^[\d.]+$|:/.test(host) && !isPublicAddress(host)))) {
    return 'jwksUrl must not point at a private or loopback address';
  }
  return undefined;
}

export function fetchJwks(raw: string, allowPrivate: boolean): Promise<JSONWebKeySet> {
  const problem = checkJwksUrl(raw, allowPrivate);
  if (problem) return Promise.reject(new OutboundUrlError(problem));
  const url = new URL(raw);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'GET', headers: { accept: 'application/json' }, timeout: TIMEOUT_MS, ...(!allowPrivate && { lookup: guardedLookup }) },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`jwksUrl answered ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BYTES) req.destroy(new Error('jwksUrl response too large'));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JSONWebKeySet;
            if (!Array.isArray(body?.keys)) throw new Error('jwksUrl did not return a JWK Set');
            resolve(body);
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('jwksUrl timed out')));
    req.on('error', reject);
    req.end();
  });
}
