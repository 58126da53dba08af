import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import ipaddr from 'ipaddr.js';

/**
 * Outbound URLs may not reach private networks unless the operator allows it: an endpoint that is,
 * or resolves to, a loopback, private, link-local, unique-local, CGNAT, multicast or unspecified
 * address (cloud metadata at 169.254.169.254 included) is refused. The check runs when a
 * Subscription is written and again at connect time (`guardedLookup`), against DNS rebinding.
 */
export class OutboundUrlError extends Error {}

export function assertHttpUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new OutboundUrlError(`Not a URL: ${endpoint}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new OutboundUrlError(`Endpoint must be http(s): ${endpoint}`);
  }
  return url;
}

export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  // process() turns IPv4-mapped IPv6 (::ffff:10.0.0.1) into IPv4, so it cannot sneak past.
  return ipaddr.process(address).range() === 'unicast';
}

/** Resolves the endpoint's host now and refuses it if any address is not public. */
export async function assertPublicEndpoint(endpoint: string, allowPrivate: boolean): Promise<void> {
  const url = assertHttpUrl(endpoint);
  if (allowPrivate) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = ipaddr.isValid(host)
    ? [host]
    : await new Promise<string[]>((resolve, reject) =>
        dnsLookup(host, { all: true }, (err, list) => (err ? reject(new OutboundUrlError(`Cannot resolve ${host}: ${err.code}`)) : resolve(list.map((a) => a.address)))),
      );
  const refused = addresses.find((a) => !isPublicAddress(a));
  if (refused) throw new OutboundUrlError(`Endpoint ${host} resolves to a non-public address (${refused})`);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for http.request that refuses non-public answers at connect time. */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, list) => {
    if (err) return callback(err, []);
    const refused = list.find((a) => !isPublicAddress(a.address));
    if (refused) return callback(new OutboundUrlError(`${hostname} resolved to non-public ${refused.address}`), []);
    if (options.all) callback(null, list);
    else callback(null, list[0].address, list[0].family);
  });
}
