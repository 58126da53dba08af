/**
 * `npm ci` (postinstall): makes the embedded database's template (src/db/embedded-template.ts), a
 * data directory fresh from initdb, and the same as a gzipped tarball for memory:// databases.
 * Never fails the install: without the template the server runs initdb itself, only slower and
 * with a higher peak of memory.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { embeddedTemplate, hasCluster } from '../src/db/embedded-template.ts';

async function main(): Promise<void> {
  const template = embeddedTemplate();
  if (!template || (hasCluster(template.dir) && existsSync(template.tarball))) return;
  const started = performance.now();
  mkdirSync(dirname(template.dir), { recursive: true });
  // Made aside and renamed into place, so an install cut short leaves no half-made template.
  const partial = `${template.dir}.${process.pid}.partial`;
  rmSync(partial, { recursive: true, force: true });
  const pglite = await PGlite.create(partial);
  const tarball = await pglite.dumpDataDir('gzip');
  await pglite.close();
  rmSync(template.dir, { recursive: true, force: true });
  renameSync(partial, template.dir);
  writeFileSync(`${template.tarball}.partial`, Buffer.from(await tarball.arrayBuffer()));
  renameSync(`${template.tarball}.partial`, template.tarball);
  process.stdout.write(`embedded database template made in ${Math.round(performance.now() - started)} ms: ${template.dir}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`embedded database template not made (new data directories will run initdb): ${(err as Error).message}\n`);
});
