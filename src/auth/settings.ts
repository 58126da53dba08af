import { DEFAULT_HASH_COST } from './secrets.ts';

/** How authentication behaves; from config.ts in the server, overridable in tests. */
export interface AuthSettings {
  /** `iss` (and `aud`) of our access tokens: TOKEN_ISSUER, else PUBLIC_BASE_URL, else `fhir-billing`. */
  issuer: string;
  tokenTtlSeconds: number;
  /** log2 of scrypt's N for new secret hashes (SECRET_HASH_COST). */
  hashCost: number;
  /** Whether a client's jwksUrl may point at a private, loopback or link-local address (and use http). */
  allowPrivateNetworks: boolean;
  /** Failed token requests allowed per window, per client id and per remote address. */
  failuresPerClient: number;
  failuresPerAddress: number;
  failureWindowSeconds: number;
}

export const DEFAULT_ISSUER = 'fhir-billing';

export function authSettings(overrides: Partial<AuthSettings> = {}): AuthSettings {
  return {
    issuer: DEFAULT_ISSUER,
    tokenTtlSeconds: 3600,
    hashCost: DEFAULT_HASH_COST,
    allowPrivateNetworks: false,
    failuresPerClient: 10,
    failuresPerAddress: 100,
    failureWindowSeconds: 900,
    ...overrides,
  };
}
