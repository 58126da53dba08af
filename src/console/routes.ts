import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Router } from 'express';

/**
 * The operations console at /console: static ES modules (public/) and the three npm packages they
 * import (Preact, htm, uPlot), served from node_modules as they ship, so nothing is built and
 * nothing comes from a CDN. Every file is read once, at start. The page talks only to our public
 * APIs with a token it keeps in memory.
 */
export const CONSOLE_PATH = '/console';

const PUBLIC = join(dirname(fileURLToPath(import.meta.url)), 'public');
const require = createRequire(import.meta.url);
/** A package's folder, from its main file (not every package exports ./package.json). */
function packageDir(name: string): string {
  const main = require.resolve(name);
  const marker = `${sep}node_modules${sep}${name}${sep}`;
  return main.slice(0, main.lastIndexOf(marker) + marker.length);
}

interface Asset {
  type: string;
  body: Buffer;
}

function vendorAssets(): Record<string, Asset> {
  const js = (text: string): Asset => ({ type: 'text/javascript; charset=utf-8', body: Buffer.from(text) });
  const read = (pkg: string, file: string): string => readFileSync(join(packageDir(pkg), file), 'utf8');
  return {
    'vendor/preact.js': js(read('preact', 'dist/preact.module.js')),
    // The hooks module imports the bare name "preact"; without an import map (the CSP allows no
    // inline script) the browser needs a path.
    'vendor/hooks.js': js(read('preact', 'hooks/dist/hooks.module.js').replace(/from\s*["']preact["']/g, 'from"./preact.js"')),
    'vendor/htm.js': js(read('htm', 'dist/htm.module.js')),
    'vendor/uplot.js': js(read('uplot', 'dist/uPlot.esm.js')),
    'vendor/uplot.css': { type: 'text/css; charset=utf-8', body: Buffer.from(read('uplot', 'dist/uPlot.min.css')) },
  };
}

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', html: 'text/html; charset=utf-8' };

function publicAssets(dir = PUBLIC, prefix = ''): Record<string, Asset> {
  const out: Record<string, Asset> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) Object.assign(out, publicAssets(path, `${prefix}${entry.name}/`));
    else {
      const ext = entry.name.split('.').pop() ?? '';
      if (TYPES[ext]) out[`${prefix}${entry.name}`] = { type: TYPES[ext], body: readFileSync(path) };
    }
  }
  return out;
}

export function consoleRoutes(): Router {
  const assets = { ...publicAssets(), ...vendorAssets() };
  const routes = express.Router();
  const headers = {
    // Scripts and styles from here only; uPlot sizes its canvas through element styles.
    'Content-Security-Policy':
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  };
  // `/console` and `/console/` match one route (non-strict routing): only the first redirects, so
  // the page's relative URLs resolve under /console/.
  routes.get(CONSOLE_PATH, (req, res, next) => (req.originalUrl.split('?')[0].endsWith('/') ? next() : res.redirect(301, `${CONSOLE_PATH}/`)));
  routes.get(`${CONSOLE_PATH}/*path`, (req, res) => {
    const name = (req.params as { path: string[] }).path.join('/') || 'index.html';
    const asset = assets[name] ?? (name.includes('.') ? undefined : assets['index.html']);
    if (!asset) return void res.status(404).set(headers).type('text/plain').send('Not found');
    res.status(200).set(headers).type(asset.type).send(asset.body);
  });
  routes.get(`${CONSOLE_PATH}/`, (_req, res) => res.status(200).set(headers).type(TYPES.html).send(assets['index.html'].body));
  return routes;
}
