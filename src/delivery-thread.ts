/**
 * Entry of the delivery thread (delivery.ts startDeliveryThread): this server's configuration, a
 * pool of its own (DELIVERY_POOL_SIZE) and the delivery worker, until the parent says stop.
 * Subscriptions are moved by the parent thread (it asks; the answer comes back as 'moved').
 */
import { parentPort } from 'node:worker_threads';
import { loadConfig } from './config.ts';
import { openDeliveryDatabase, startDelivery } from './delivery.ts';
import type { FromDeliveryThread, ToDeliveryThread } from './delivery.ts';
import { createLogger } from './logger.ts';
import { closeAgents } from './subscriptions/index.ts';
import type { MoveSubscription } from './subscriptions/index.ts';

const port = parentPort!;
const tell = (m: FromDeliveryThread): void => port.postMessage(m);
const moving = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
let lastMove = 0;

const moveSubscription: MoveSubscription = (tenantId, subscriptionId, status, error) =>
  new Promise((resolve, reject) => {
    const id = ++lastMove;
    moving.set(id, { resolve, reject });
    tell({ type: 'move', id, tenantId, subscriptionId, status, ...(error !== undefined && { error }) });
  });

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const db = await openDeliveryDatabase(config);
  const worker = await startDelivery(config, db, logger, moveSubscription).catch(async (err: unknown) => {
    await db.close().catch(() => {});
    throw err;
  });
  port.on('message', async (m: ToDeliveryThread) => {
    if (m.type === 'moved') {
      const waiting = moving.get(m.id);
      moving.delete(m.id);
      if (m.failure === undefined) waiting?.resolve();
      else waiting?.reject(new Error(m.failure));
      return;
    }
    await worker.stop();
    closeAgents();
    await db.close();
    tell({ type: 'stopped' });
    port.close();
  });
  tell({ type: 'started' });
}

run().catch((err: unknown) => tell({ type: 'failed', message: err instanceof Error ? err.message : String(err) }));
