import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import ipaddr from 'ipaddr.js';

/**
 * Outbound URLs may not reach private networks unless the operator allows it: an endpoint that is,
 * or resolves to, anything but a public unicast address (loopback, private, link-local,
 * unique-local, CGNAT, multicast, unspecified, cloud metadata at 169.254.169.254, and IPv6 forms
 * that carry one of those) is refused. The check runs when a
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

/**
 * Whether an address is on the public internet. IPv4 (in any form ipaddr.js reads: 2130706433,
 * 0x7f.1, 0177.0.0.1, 127.1) must be plain unicast: not loopback, private, link-local, CGNAT,
 * multicast, broadcast, reserved or unspecified. IPv6 must be global unicast (2000::/3, so the
 * IPv4-compatible ::a.b.c.d, discard, unique- and site-local, link-local, multicast and the
 * unspecified address are out) outside any special range; an IPv6 address that carries an IPv4
 * one a gateway or the socket reaches (IPv4-mapped, IPv4-translated, NAT64 64:ff9b::/96, 6to4) is
 * public only if that IPv4 address is. Teredo and local-use NAT64 are refused outright.
 */
export function isPublicAddress(address: string): boolean {
  const canonical = address.includes(':') ? canonicalIPv6(address) : address;
  if (canonical === undefined || !ipaddr.isValid(canonical)) return false;
  const parsed = ipaddr.parse(canonical);
  if (parsed.kind() === 'ipv4') return parsed.range() === 'unicast';
  const v6 = parsed as ipaddr.IPv6;
  const embedded = embeddedIPv4(v6);
  if (embedded) return embedded.range() === 'unicast';
  return v6.range() === 'unicast' && v6.match(GLOBAL_UNICAST);
}

/**
 * IPv6 as the WHATWG URL parser writes it (what the socket will dial): ipaddr.js reads
 * `::a.b.c.d` as IPv4-mapped, where it is the IPv4-compatible ::a.b:c.d.
 */
function canonicalIPv6(address: string): string | undefined {
  try {
    return new URL(`http://[${address.replace(/^\[|\]$/g, '')}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

const GLOBAL_UNICAST = ipaddr.parseCIDR('2000::/3') as [ipaddr.IPv6, number];
const WELL_KNOWN_NAT64 = ipaddr.parseCIDR('64:ff9b::/96') as [ipaddr.IPv6, number];

/** The IPv4 address an IPv6 one stands for, where it stands for one we can check. */
function embeddedIPv4(v6: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const bytes = v6.toByteArray();
  const range = v6.range();
  if (range === 'ipv4Mapped' || range === 'rfc6145' || v6.match(WELL_KNOWN_NAT64)) {
    return new ipaddr.IPv4(bytes.slice(12, 16));
  }
  if (range === '6to4') return new ipaddr.IPv4(bytes.slice(2, 6));
  return undefined;
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
