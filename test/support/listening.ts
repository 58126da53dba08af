import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { startTestApp } from './app.ts';
import type { TestApp } from './app.ts';

/**
 * The real app on a port of its own, for client libraries that speak HTTP themselves. The token
 * comes from our token endpoint the way a backend service gets one: client credentials (the
 * bootstrap client's id and secret, HTTP Basic) posted to the token URL the server advertises.
 */
export interface ListeningApp {
  t: TestApp;
  origin: string;
  fhirBase: string;
  close: () => Promise<void>;
  clientCredentialsToken: (tokenUrl: string) => Promise<string>;
}

export async function listen(): Promise<ListeningApp> {
  const t = await startTestApp();
  const server: Server = t.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const clientCredentialsToken = async (tokenUrl: string): Promise<string> => {
    const basic = Buffer.from(`${t.bootstrap.clientId}:${t.bootstrap.clientSecret}`).toString('base64');
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.cruds' }),
    });
    if (!res.ok) throw new Error(`token endpoint answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { access_token: string }).access_token;
  };
  return {
    t,
    origin,
    fhirBase: `${origin}/fhir`,
    clientCredentialsToken,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      await t.close();
    },
  };
}
