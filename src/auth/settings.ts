import type { SealingSettings } from './sealing.ts';
import { DEFAULT_HASH_COST } from './secrets.ts';

/** How authentication behaves; from config.ts in the server, overridable in tests. */
export interface AuthSettings extends SealingSettings {
  /** `iss` (and `aud`) of our access tokens: TOKEN_ISSUER, else PUBLIC_BASE_URL, else `fhir-billing`. */
  issuer: string;
  /**
   * The token endpoint's public URL (PUBLIC_BASE_URL, else http://localhost:PORT, + /oauth2/token).
   * A private_key_jwt assertion's aud must be it or the issuer: both come from configuration, never
   * from a request's Host header, which the caller chooses.
   */
  tokenEndpointUrl?: string;
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

/** The audiences a client assertion may name. */
export function assertionAudiences(settings: AuthSettings): string[] {
  return settings.tokenEndpointUrl ? [settings.tokenEndpointUrl, settings.issuer] : [settings.issuer];
}

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
