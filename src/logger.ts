import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; secrets and tokens never reach them. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: ['req.headers.authorization', 'req.headers.cookie', '*.clientSecret', '*.client_secret', '*.client_assertion', '*.accessToken', '*.access_token'],
  });
}
