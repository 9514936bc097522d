import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real JWKS endpoint on loopback whose keys and behaviour a test can change. */
export interface JwksServer {
  readonly url: string;
  readonly origin: string;
  /** Requests received for the JWKS path. */
  readonly hits: number;
  keys: JWK[];
  /** Replace the answer (faults); `undefined` restores the normal JWKS answer. */
  behave(handler: Handler | undefined): void;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  let hits = 0;
  let custom: Handler | undefined;
  const state = { keys };
  const server = createServer((req, res) => {
    if (req.url !== '/jwks') {
      res.writeHead(404).end();
      return;
    }
    hits++;
    if (custom) return custom(req, res);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/jwks`,
    origin,
    get hits() {
      return hits;
    },
    get keys() {
      return state.keys;
    },
    set keys(next: JWK[]) {
      state.keys = next;
    },
    behave(handler) {
      custom = handler;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
