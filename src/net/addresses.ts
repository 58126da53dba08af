import ipaddr from 'ipaddr.js';

/**
 * Address lists (a source's allowedIps, TRUSTED_PROXIES): CIDRs or single addresses, IPv4 or IPv6.
 * An IPv4 address seen as IPv6 (::ffff:10.0.0.1, as Node reports IPv4 peers on a dual-stack
 * socket) is compared as the IPv4 address it is.
 */
export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** The canonical text of a CIDR or address (an address becomes /32 or /128); undefined if unreadable. */
export function normalizeCidr(text: string): string | undefined {
  try {
    const [addr, bits] = text.includes('/') ? ipaddr.parseCIDR(text.trim()) : single(text.trim());
    return `${addr.toString()}/${bits}`;
  } catch {
    return undefined;
  }
}

function single(text: string): Cidr {
  const addr = ipaddr.process(text);
  return [addr, addr.kind() === 'ipv4' ? 32 : 128];
}

export function parseCidrs(list: readonly string[]): Cidr[] {
  return list.map((c) => (c.includes('/') ? ipaddr.parseCIDR(c) : single(c)));
}

/** Is `address` inside any of `ranges`? An unreadable address is inside none. */
export function addressIn(address: string | undefined, ranges: readonly Cidr[]): boolean {
  if (!address || !ipaddr.isValid(address)) return false;
  const addr = ipaddr.process(address);
  return ranges.some(([range, bits]) => {
    const r = range.kind() === 'ipv6' && (range as ipaddr.IPv6).isIPv4MappedAddress() ? (range as ipaddr.IPv6).toIPv4Address() : range;
    const b = r === range ? bits : bits - 96;
    return addr.kind() === r.kind() && addr.match(r as never, b);
  });
}
