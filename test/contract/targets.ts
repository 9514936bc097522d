/**
 * The servers the adapter contract suite runs against: the shopping API example on each framework,
 * started on loopback with a given verifier. Adding an adapter means adding one entry here.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Verifier } from 'resource-guard';
import { createApp as expressApp } from '../../examples/express.ts';
import { createApp as fastifyApp } from '../../examples/fastify.ts';
import { createApp as koaApp } from '../../examples/koa.ts';
import { createHandler } from '../../examples/node-http.ts';
import { createHandle, nodeServer } from '../../examples/web.ts';

export interface Running {
  readonly url: string;
  close(): Promise<void>;
}

export interface Target {
  readonly name: string;
  start(verifier: Verifier): Promise<Running>;
}

/** Listens on 127.0.0.1, port 0; `close()` drops keep-alive connections too. */
export async function listen(server: Server): Promise<Running> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const targets: readonly Target[] = [
  { name: 'express', start: async (verifier) => listen(createServer(expressApp(verifier))) },
  { name: 'koa', start: async (verifier) => listen(createServer(koaApp(verifier).callback())) },
  {
    name: 'fastify',
    async start(verifier) {
      const app = await fastifyApp(verifier);
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
    },
  },
  {
    name: 'node:http',
    start: async (verifier) => {
      const handler = createHandler(verifier);
      return listen(createServer((req, res) => void handler(req, res)));
    },
  },
  { name: 'web Request', start: async (verifier) => listen(nodeServer(createHandle(verifier))) },
  {
    name: 'hono',
    async start(verifier) {
      // What @hono/node-server's serve({ fetch, port, hostname }) listens with.
      const { createAdaptorServer } = await import('@hono/node-server');
      const { createApp } = await import('../../examples/hono.ts');
      return listen(createAdaptorServer({ fetch: createApp(verifier).fetch }) as Server);
    },
  },
  {
    name: 'hapi',
    async start(verifier) {
      const { createApp } = await import('../../examples/hapi.ts');
      const server = await createApp(verifier, { port: 0, host: '127.0.0.1' });
      await server.start();
      return { url: server.info.uri, close: () => server.stop({ timeout: 0 }) };
    },
  },
  ...(['express', 'fastify'] as const).map((platform): Target => ({
    name: `nestjs (${platform})`,
    async start(verifier) {
      const { createApp } = await import('../../examples/nestjs.ts');
      const app = await createApp(verifier, { platform });
      await app.listen(0, '127.0.0.1');
      const server = app.getHttpServer() as Server;
      const { port } = server.address() as AddressInfo;
      return {
        url: `http://127.0.0.1:${port}`,
        async close() {
          server.closeAllConnections();
          await app.close();
        },
      };
    },
  })),
];
