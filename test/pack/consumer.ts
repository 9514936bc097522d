// Type-checked against the tarball's .d.ts files only.
import express from 'express';
import { createClient } from 'redis';
import { AuthError, createVerifier, logto } from 'resource-guard';
import type { AuthInfo, RejectionEvent, VerifierOptions } from 'resource-guard';
import { requireAuth } from 'resource-guard/express';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { resourceGuard } from 'resource-guard/fastify';
import { redisReplayStore } from 'resource-guard/redis';
import type { DpopOptions, ReplayStore } from 'resource-guard';

const options: VerifierOptions = {
  issuer: 'https://tenant.logto.app/oidc',
  audience: 'https://shopping.api',
  keys: { maxAge: 600 },
  onRejected: (event: RejectionEvent) => console.log(event.reason),
};
const verifier = createVerifier(options);
const app = express();
app.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (req, res) => {
  const auth: AuthInfo | undefined = req.auth;
  res.json({ client: auth?.clientId, scopes: auth?.scopes });
});
koaAuth(verifier, { errors: 'throw', organization: (ctx) => ctx.get('x-organization') });
const org = createVerifier(
  logto({
    endpoint: 'https://tenant.logto.app',
    audience: 'https://shopping.api',
    organizations: true,
  }),
);
app.get(
  '/orgs/:id',
  requireAuth(org, { machine: true, organization: (req) => req.params.id as string }),
  (_req, res) => res.end(),
);
void resourceGuard;
const replay: ReplayStore = redisReplayStore({ sendCommand: async () => 'OK' });
// The newest node-redis major's client, as the README creates it (never connected here).
void redisReplayStore(createClient({ url: 'redis://127.0.0.1:6379', disableOfflineQueue: true }));
const dpop: DpopOptions = { mode: 'required', origin: 'https://api.shop.example', replay };
app.get(
  '/dpop',
  requireAuth(createVerifier({ ...options, dpop }), { dpop: 'required' }),
  (req, res) => res.json({ jkt: req.auth?.claims.cnf?.jkt }),
);
void (async () => {
  try {
    const auth = await verifier.verify<{ organization_id?: string }>('token');
    const organization: string | undefined = auth.claims.organization_id;
    void organization;
  } catch (error) {
    if (error instanceof AuthError) console.log(error.status, error.headers['www-authenticate']);
  }
})();
