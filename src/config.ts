import { z } from 'zod';
import { parseSealingKey } from './auth/sealing.ts';
import { normalizeCidr } from './net/addresses.ts';
import { parseSchedule } from './subscriptions/retry.ts';

/** Environment → typed configuration, read once at start. Every variable is listed in README.md. */
const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** PostgreSQL connection string; absent means the embedded database under DATA_DIR. */
  DATABASE_URL: z.string().min(1).optional(),
  /** PostgreSQL schema for our tables; created if missing. */
  DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  /** Pool size for DATABASE_URL. */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).default(20),
  /** How often to check whether tables need ANALYZE (embedded, or PostgreSQL with autovacuum off); 0: never. */
  ANALYZE_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(30),
  /** Public base URL used in Location headers and Bundle links; defaults to the request's host. */
  PUBLIC_BASE_URL: z.url().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How long SIGTERM waits for in-flight requests before exiting anyway. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /** How long, after SIGTERM, an idle keep-alive connection may still bring a request. */
  SHUTDOWN_IDLE_GRACE_MS: z.coerce.number().int().min(0).default(1000),
  /** Default delays between delivery attempts; attempts = delays + 1 unless a Subscription says. */
  DELIVERY_RETRY_SCHEDULE: z.string().default('30s,2m,10m,30m,1h,3h,6h,12h'),
  DELIVERY_CONCURRENCY: z.coerce.number().int().min(1).default(128),
  /** Most notifications of one subscription leased, sent in order and recorded together. */
  DELIVERY_RUN_SIZE: z.coerce.number().int().min(1).max(1000).default(100),
  /** PostgreSQL connections of the delivery worker's own pool when API and worker share a process. */
  DELIVERY_POOL_SIZE: z.coerce.number().int().min(1).default(4),
  /** Fallback polling for due notifications and retries; commits wake workers at once (NOTIFY). */
  DELIVERY_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(1000),
  OUTBOUND_ALLOW_PRIVATE_NETWORKS: z.enum(['true', 'false']).default('false'),
  /** The operations console at /console (src/console/); `false` serves nothing there. */
  CONSOLE_ENABLED: z.enum(['true', 'false']).default('true'),
  /** At start, ensure this tenant and (when both are set) this client with every scope plus admin. */
  BOOTSTRAP_TENANT: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/).default('default'),
  BOOTSTRAP_CLIENT_ID: z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/).optional(),
  BOOTSTRAP_CLIENT_SECRET: z.string().min(16, 'at least 16 characters').max(512).optional(),
  TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
  /** `iss` and `aud` of access tokens; default PUBLIC_BASE_URL, else `fhir-billing`. */
  TOKEN_ISSUER: z.string().min(1).optional(),
  /** log2 of scrypt's N for client secret hashes. */
  SECRET_HASH_COST: z.coerce.number().int().min(10).max(20).default(15),
  /** 32 bytes (base64 or hex) that seal the secrets we must read back (webhook sources' HMAC keys). */
  SECRETS_KEY: z
    .string()
    .optional()
    .refine((v) => v === undefined || parseSealingKey(v) !== undefined, '32 bytes as base64 or 64 hex digits (openssl rand -base64 32)'),
  /** Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed; empty: none. */
  TRUSTED_PROXIES: z
    .string()
    .default('127.0.0.0/8,::1/128')
    .transform((s) => s.split(',').map((c) => c.trim()).filter(Boolean))
    .refine((list) => list.every((c) => normalizeCidr(c) !== undefined), 'a comma-separated list of IP addresses or CIDRs'),
}).refine((e) => (e.BOOTSTRAP_CLIENT_ID === undefined) === (e.BOOTSTRAP_CLIENT_SECRET === undefined), {
  message: 'set both BOOTSTRAP_CLIENT_ID and BOOTSTRAP_CLIENT_SECRET, or neither',
  path: ['BOOTSTRAP_CLIENT_SECRET'],
});

export type Config = {
  port: number;
  databaseUrl: string | undefined;
  databaseSchema: string | undefined;
  dataDir: string;
  databasePoolSize: number;
  /** 0: never (db/statistics.ts). */
  analyzeIntervalMs: number;
  baseUrl: string | undefined;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  shutdownTimeoutMs: number;
  shutdownIdleGraceMs: number;
  delivery: {
    retrySchedule: number[];
    concurrency: number;
    runSize: number;
    poolSize: number;
    pollIntervalMs: number;
  };
  outboundAllowPrivateNetworks: boolean;
  consoleEnabled: boolean;
  trustedProxies: string[];
  auth: {
    issuer: string | undefined;
    tokenTtlSeconds: number;
    hashCost: number;
    sealingKey: Buffer | undefined;
    bootstrap: { tenant: string; clientId: string | undefined; clientSecret: string | undefined };
  };
};

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    databaseSchema: e.DATABASE_SCHEMA,
    dataDir: e.DATA_DIR,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    analyzeIntervalMs: e.ANALYZE_INTERVAL_SECONDS * 1000,
    baseUrl: e.PUBLIC_BASE_URL?.replace(/\/$/, ''),
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    shutdownIdleGraceMs: e.SHUTDOWN_IDLE_GRACE_MS,
    delivery: {
      retrySchedule: parseSchedule(e.DELIVERY_RETRY_SCHEDULE),
      concurrency: e.DELIVERY_CONCURRENCY,
      runSize: e.DELIVERY_RUN_SIZE,
      poolSize: e.DELIVERY_POOL_SIZE,
      pollIntervalMs: e.DELIVERY_POLL_INTERVAL_MS,
    },
    outboundAllowPrivateNetworks: e.OUTBOUND_ALLOW_PRIVATE_NETWORKS === 'true',
    consoleEnabled: e.CONSOLE_ENABLED === 'true',
    trustedProxies: e.TRUSTED_PROXIES,
    auth: {
      issuer: e.TOKEN_ISSUER,
      tokenTtlSeconds: e.TOKEN_TTL_SECONDS,
      hashCost: e.SECRET_HASH_COST,
      sealingKey: e.SECRETS_KEY === undefined ? undefined : parseSealingKey(e.SECRETS_KEY),
      bootstrap: { tenant: e.BOOTSTRAP_TENANT, clientId: e.BOOTSTRAP_CLIENT_ID, clientSecret: e.BOOTSTRAP_CLIENT_SECRET },
    },
  };
}
