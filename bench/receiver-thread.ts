/**
 * The bench's webhook receiver, in a thread of its own (bench/subscriptions.ts startReceiver):
 * it answers 200 at once and reports each arrival with the time it came (process.hrtime, the
 * monotonic clock every thread shares). In the bench's own thread, an arrival was timed only when
 * that thread, busy sending 200 writes a second, got to it.
 */
import { createServer } from 'node:http';
import { parentPort } from 'node:worker_threads';

export type FromReceiver = { type: 'listening'; port: number } | { type: 'arrival'; path: string; events: number; atMs: number } | { type: 'closed' };

const port = parentPort!;
const tell = (m: FromReceiver): void => port.postMessage(m);

/** An empty body is a classic ping (one event); a Backport bundle carries its notification-events (a handshake none). */
function eventsIn(body: string): number {
  if (body.length === 0) return 1;
  return body.split('"notification-event"').length - 1;
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const atMs = Number(process.hrtime.bigint()) / 1e6;
    res.writeHead(200).end();
    tell({ type: 'arrival', path: req.url!, events: eventsIn(Buffer.concat(chunks).toString('utf8')), atMs });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => tell({ type: 'listening', port: (server.address() as { port: number }).port }));
port.on('message', () => {
  server.closeAllConnections();
  server.close(() => {
    tell({ type: 'closed' });
    port.close();
  });
});
