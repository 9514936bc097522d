// Serves app.mjs on 127.0.0.1 (a free port) with the runtime's own server, Bun.serve or
// Deno.serve, and prints `listening <port>` for smoke.ts.
import app from './app.mjs';

const { Bun, Deno } = globalThis;
if (Bun !== undefined) {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch });
  console.log(`listening ${server.port}`);
} else if (Deno !== undefined) {
  Deno.serve(
    { hostname: '127.0.0.1', port: 0, onListen: ({ port }) => console.log(`listening ${port}`) },
    app.fetch,
  );
} else {
  throw new Error('serve.mjs runs on Bun or Deno');
}
