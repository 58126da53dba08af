import http from 'node:http';

/**
 * The load generator: N concurrent clients, each one request at a time over its own keep-alive
 * connection, for a fixed time. It uses node:http with a keep-alive Agent rather than fetch: on a
 * 2-core machine the generator competes with the server and PostgreSQL for CPU, and http.request
 * costs about a third of fetch's client CPU per request (GET /healthz, 32 clients: ~37 µs against
 * ~110 µs for fetch, undici with WHATWG streams; 15,000/s against 7,000/s).
 */
export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Only when asked for; otherwise the body is drained unread. */
  body?: string;
}

/** The server under test: where it listens and, once it wants one, the access token to send. */
export interface Target {
  baseUrl: string;
  /** e.g. `Bearer eyJ...`; absent while the server asks for no token. */
  authorization?: string;
}

export class HttpClient {
  readonly #agent: http.Agent;
  readonly #host: string;
  readonly #port: number;
  readonly #authorization: string | undefined;

  constructor(target: Target, maxSockets: number) {
    const url = new URL(target.baseUrl);
    this.#host = url.hostname;
    this.#port = Number(url.port);
    this.#authorization = target.authorization;
    this.#agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  request(method: string, path: string, body?: string, readBody = false): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { accept: 'application/fhir+json' };
      if (this.#authorization) headers.authorization = this.#authorization;
      if (body !== undefined) {
        headers['content-type'] = path.startsWith('/fhir') ? 'application/fhir+json' : 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const req = http.request({ host: this.#host, port: this.#port, method, path, headers, agent: this.#agent }, (res) => {
        if (!readBody) {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
        } else {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        }
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export interface LoadResult {
  clients: number;
  seconds: number;
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  firstError?: string;
}

/** One unit of work: a request; resolves to whether it succeeded (an error message otherwise). */
export type Work = (client: HttpClient) => Promise<true | string>;

/**
 * Runs `clients` loops of `work` for `warmupSeconds` unmeasured, then `seconds` measured: a request
 * counts if it starts inside the window, and the rate divides by the time until the last one ends.
 */
export async function runLoad(target: Target, clients: number, seconds: number, warmupSeconds: number, work: Work): Promise<LoadResult> {
  const client = new HttpClient(target, clients);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let measuring = false;
  let stopAt = Number.POSITIVE_INFINITY;

  const loop = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      // A request counts if it starts inside the measured window.
      const counted = measuring;
      const start = process.hrtime.bigint();
      let outcome: true | string;
      try {
        outcome = await work(client);
      } catch (err) {
        outcome = String(err);
      }
      if (outcome !== true) {
        errors++;
        firstError ??= outcome;
        stopAt = 0; // a failing server is not measured: end the phase now
      } else if (counted) {
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }
  };

  const loops = Promise.all(Array.from({ length: clients }, loop));
  await Promise.race([loops, sleep(warmupSeconds * 1000)]);
  const t0 = performance.now();
  if (errors === 0) {
    measuring = true;
    stopAt = t0 + seconds * 1000;
  }
  await loops;
  const elapsed = (performance.now() - t0) / 1000;
  client.close();
  const sorted = Float64Array.from(latencies).sort();
  return {
    clients,
    seconds: elapsed,
    requests: latencies.length,
    perSecond: latencies.length / elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    errors,
    firstError,
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** `count` requests one after another (one client), after `warmupSeconds` of the same unmeasured. */
export async function runSequential(target: Target, count: number, warmupSeconds: number, work: Work): Promise<LoadResult> {
  const client = new HttpClient(target, 1);
  const warmEnd = performance.now() + warmupSeconds * 1000;
  while (performance.now() < warmEnd) await work(client);
  const latencies = new Float64Array(count);
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    const outcome = await work(client).catch((err: unknown) => String(err));
    latencies[i] = Number(process.hrtime.bigint() - start) / 1e6;
    if (outcome !== true) {
      errors++;
      firstError ??= outcome;
      break;
    }
  }
  const elapsed = (performance.now() - t0) / 1000;
  client.close();
  latencies.sort();
  return {
    clients: 1,
    seconds: elapsed,
    requests: count,
    perSecond: count / elapsed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errors,
    firstError,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
