import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The embedded database's template: a data directory fresh from initdb, made once at install
 * (`npm ci` runs scripts/embedded-template.ts) and kept beside the packages, under PGlite's version
 * so that an upgrade makes a new one. initdb takes seconds and about 600 MB at its peak (PGlite runs
 * it in a second WebAssembly instance); copying files takes neither. A new data directory is
 * copied from the directory; a memory:// database (the tests') loads the same cluster as a
 * tarball. Without a template, PGlite runs initdb as before.
 */
export interface EmbeddedTemplate {
  dir: string;
  tarball: string;
}

const ROOT = new URL('../../', import.meta.url);

export function embeddedTemplate(): EmbeddedTemplate | undefined {
  try {
    const { version } = JSON.parse(readFileSync(new URL('node_modules/@electric-sql/pglite/package.json', ROOT), 'utf8')) as { version: string };
    const base = fileURLToPath(new URL(`node_modules/.cache/fhir-billing/pglite-${version}/`, ROOT));
    return { dir: join(base, 'datadir'), tarball: join(base, 'datadir.tar.gz') };
  } catch {
    return undefined;
  }
}

/** PG_VERSION is what initdb writes first and what PGlite looks for to decide it has a cluster. */
export const hasCluster = (dataDir: string): boolean => existsSync(join(dataDir, 'PG_VERSION'));

/**
 * Fills a data directory that holds no cluster from the template; false when there is none. The
 * marker file goes last, so a copy cut short is seen as no cluster, and copied again, next time.
 */
export function copyTemplateInto(dataDir: string): boolean {
  const template = embeddedTemplate();
  if (!template || !hasCluster(template.dir)) return false;
  const marker = join(template.dir, 'PG_VERSION');
  cpSync(template.dir, dataDir, { recursive: true, force: true, filter: (source) => source !== marker });
  cpSync(marker, join(dataDir, 'PG_VERSION'));
  return true;
}
