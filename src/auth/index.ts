// Authentication: tenants, API clients, access tokens, SMART scopes and the Express middleware.
export { BOOTSTRAP_SCOPES, bootstrapAuth, createClient, createTenant, deleteClient, ensureBootstrapClient, listClients, listTenants, rotateSecret } from './admin.ts';
export type { ClientCredentials, ClientInput, ClientView, TenantInput } from './admin.ts';
export { adminRoutes } from './admin-routes.ts';
export { createSigningKey, listSigningKeys, publicJwks, rotateSigningKeys } from './keys.ts';
export { adminAuth, bearerAuth, fhirAuth, webhookAuth } from './middleware.ts';
export type { AuthDeps, AuthLocals } from './middleware.ts';
export { createFailureLimiter } from './rate-limit.ts';
export type { FailureLimiter } from './rate-limit.ts';
export { ADMIN_SCOPE, ALL_FHIR_SCOPE, ScopeSet, WEBHOOK_SCOPE, parseScopes } from './scopes.ts';
export { DEFAULT_ISSUER, authSettings } from './settings.ts';
export type { AuthSettings } from './settings.ts';
export { parseSealingKey, seal, unseal } from './sealing.ts';
export type { SealingSettings } from './sealing.ts';
export { retireSigningKey, tenantExists } from './store.ts';
export { ApiTokenBody, OAUTH_TOKEN_PATH, tokenRoutes } from './token-routes.ts';
export { MAX_TOKEN_TTL_SECONDS, issueAccessToken, verifyAccessToken } from './tokens.ts';
export type { IssuedToken, Principal } from './tokens.ts';
