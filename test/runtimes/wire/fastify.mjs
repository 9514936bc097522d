// Fastify with the resource-guard/fastify plugin, as the README shows it (the guard an
// `onRequest` hook, before the body is parsed).
import Fastify from 'fastify';
import { resourceGuard, requireAuth } from 'resource-guard/fastify';
import { dpopVerifier, MARKER, SCOPES, verifier } from './common.mjs';

const app = Fastify();
app.addHook('onRequest', (_request, reply, done) => {
  reply.header(MARKER, 'fastify');
  done();
});
await app.register(resourceGuard, { verifier });
app.get('/products', { onRequest: app.requireAuth({ scopes: SCOPES }) }, async (request) => ({
  client: request.auth?.clientId,
}));
app.get('/dpop', { onRequest: requireAuth(dpopVerifier, { scopes: SCOPES }) }, async (request) => ({
  client: request.auth?.clientId,
}));
await app.listen({ host: '127.0.0.1', port: 0 });
console.log(`listening ${app.server.address().port}`);
