import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Auth keeps tenants and clients; the book currency is billing's (billing/book-currency.ts owns its
 * lock, the money-booked check and the change). Only auth's routers, which hand requests to
 * whichever layer answers them, may import billing; auth's logic and SQL know nothing of it.
 */
const AUTH = 'src/auth';
const BILLING_TABLES = ['ledger_entry', 'unmatched_payment', 'payment_reversal', 'adjudication', 'remittance', 'tenant-currency'];

describe('auth does not reach into billing', () => {
  const files = readdirSync(AUTH).filter((f) => f.endsWith('.ts') && !f.endsWith('-routes.ts'));

  it.each(files)('%s imports nothing of billing and names none of its tables or locks', (file) => {
    const text = readFileSync(join(AUTH, file), 'utf8');
    expect(text).not.toMatch(/from '\.\.\/billing\//);
    for (const name of BILLING_TABLES) expect(text, name).not.toContain(name);
  });
});
