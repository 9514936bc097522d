// Koa with @koa/router and resource-guard/koa, as the README shows it.
import { createServer } from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import { requireAuth } from 'resource-guard/koa';
import { dpopVerifier, listen, MARKER, SCOPES, verifier } from './common.mjs';

const router = new Router();
router.get('/products', requireAuth(verifier, { scopes: SCOPES }), (ctx) => {
  ctx.body = { client: ctx.state.auth?.clientId };
});
router.get('/dpop', requireAuth(dpopVerifier, { scopes: SCOPES }), (ctx) => {
  ctx.body = { client: ctx.state.auth?.clientId };
});
const app = new Koa();
app.use((ctx, next) => {
  ctx.set(MARKER, 'koa');
  return next();
});
app.use(router.routes());
listen(createServer(app.callback()));
