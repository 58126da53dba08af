/**
 * Entry of the delivery thread (delivery.ts startDeliveryThread): this server's configuration, a
 * pool of its own (DELIVERY_POOL_SIZE) and the delivery worker, until the parent says 'stop'.
 */
import { parentPort } from 'node:worker_threads';
import { loadConfig } from './config.ts';
import { openDeliveryDatabase, startDelivery } from './delivery.ts';
import type { DeliveryThreadMessage } from './delivery.ts';
import { createLogger } from './logger.ts';
import { closeAgents } from './subscriptions/index.ts';

const port = parentPort!;
const tell = (m: DeliveryThreadMessage): void => port.postMessage(m);

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const db = await openDeliveryDatabase(config);
  const worker = await startDelivery(config, db, logger).catch(async (err: unknown) => {
    await db.close().catch(() => {});
    throw err;
  });
  port.once('message', async () => {
    await worker.stop();
    closeAgents();
    await db.close();
    tell({ type: 'stopped' });
    port.close();
  });
  tell({ type: 'started' });
}

run().catch((err: unknown) => tell({ type: 'failed', message: err instanceof Error ? err.message : String(err) }));
