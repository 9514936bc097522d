/**
 * One server of the peers benchmark (bench/peers.ts), in its own process:
 *   tsx bench/peers-server.ts <resource-guard|rg-inline|rg-pool|rg-adaptive|fast-jwt|fastify-jwt|jose>
 * with BENCH_ISSUER, BENCH_JWKS and BENCH_ALG set. Fastify, GET /products behind an `onRequest`
 * hook that requires a valid access token for the API with `read:products`; identical handlers.
 * GET /__eld answers the event loop's delay since the last call (p99, max, in ms) and resets it.
 * Prints `{"port":N}` once listening.
 *
 * - resource-guard: its Fastify adapter, default options (rg-inline / rg-pool / rg-adaptive: the
 *   signature's route forced, to measure the choice the default makes).
 * - fast-jwt: a verifier created once with its cache on (`cache: true`), the PEM of the key
 *   taken once from the JWKS, `algorithms`, `allowedIss`, `allowedAud`: as a careful user would.
 * - fastify-jwt: @fastify/jwt as its README sets up a public key (`secret: { public }`, `verify`
 *   options), `request.jwtVerify()` in the hook. (Its README's JWKS recipe needs get-jwks, which is
 *   not installed: the static key it documents is the faster of the two anyway.)
 * - jose: `jwtVerify` with `createRemoteJWKSet`, written by hand in the hook.
 */
import { createPublicKey } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Fastify from 'fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fastJwt from 'fast-jwt';
import fastifyJwt from '@fastify/jwt';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createVerifier } from 'resource-guard';
import { requireAuth, resourceGuard } from 'resource-guard/fastify';

const [variant] = process.argv.slice(2);
const issuer = process.env.BENCH_ISSUER as string;
const jwksUri = process.env.BENCH_JWKS as string;
const alg = process.env.BENCH_ALG as string;
const audience = 'https://shopping.api';
const products = [
  { id: 'p-1', name: 'Espresso beans, 1 kg', price: 24.5 },
  { id: 'p-2', name: 'Ceramic pour-over dripper', price: 19 },
  { id: 'p-3', name: 'Burr grinder', price: 129 },
];
const hasScope = (scope: unknown) =>
  typeof scope === 'string' && scope.split(' ').includes('read:products');
const deny = (reply: FastifyReply) => reply.code(401).send({ error: 'invalid_token' });

const app = Fastify();
type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | void;
let hook: Hook | ReturnType<typeof requireAuth>;
let own: Hook;

if (variant?.startsWith('rg-') || variant === 'resource-guard') {
  if (variant !== 'resource-guard') {
    // The built module the package itself loads (a path, not a specifier: not public API).
    const internal = new URL('../dist/src/signature.js', import.meta.url).href;
    const { signatureRoute } = (await import(internal)) as {
      signatureRoute: { force: string | undefined };
    };
    signatureRoute.force = variant.slice(3);
  }
  const verifier = createVerifier({ issuer, audience, jwksUri });
  await app.register(resourceGuard, { verifier }); // declares request.auth, as the README says
  hook = requireAuth(verifier, { scopes: ['read:products'] });
} else {
  const { keys } = (await (await fetch(jwksUri)).json()) as { keys: Record<string, unknown>[] };
  const pem = createPublicKey({ key: keys[0] as never, format: 'jwk' })
    .export({ format: 'pem', type: 'spki' })
    .toString();
  if (variant === 'fast-jwt') {
    const verify = fastJwt.createVerifier({
      key: pem,
      cache: true,
      algorithms: [alg as never],
      allowedIss: issuer,
      allowedAud: audience,
    });
    own = async (request, reply) => {
      const header = request.headers.authorization;
      try {
        const claims = verify(header?.startsWith('Bearer ') ? header.slice(7) : '') as {
          scope?: unknown;
        };
        if (!hasScope(claims.scope)) return reply.code(403).send({ error: 'insufficient_scope' });
      } catch {
        return deny(reply);
      }
    };
  } else if (variant === 'fastify-jwt') {
    await app.register(fastifyJwt, {
      secret: { public: pem },
      verify: { algorithms: [alg as never], allowedIss: issuer, allowedAud: audience },
    });
    own = async (request, reply) => {
      try {
        const claims: { scope?: unknown } = await request.jwtVerify();
        if (!hasScope(claims.scope)) return reply.code(403).send({ error: 'insufficient_scope' });
      } catch {
        return deny(reply);
      }
    };
  } else if (variant === 'jose') {
    const jwks = createRemoteJWKSet(new URL(jwksUri));
    own = async (request, reply) => {
      const header = request.headers.authorization;
      try {
        const { payload } = await jwtVerify(
          header?.startsWith('Bearer ') ? header.slice(7) : '',
          jwks,
          {
            issuer,
            audience,
            algorithms: [alg],
            typ: 'at+jwt',
          },
        );
        if (!hasScope(payload.scope)) return reply.code(403).send({ error: 'insufficient_scope' });
      } catch {
        return deny(reply);
      }
    };
  } else {
    throw new Error(`unknown variant ${variant}`);
  }
  hook = own;
}

const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
app.get('/__eld', async () => {
  const out = { p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 };
  eld.reset();
  return out;
});
app.get('/products', { onRequest: hook as never }, async () => products);
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${JSON.stringify({ port: (app.server.address() as AddressInfo).port })}\n`);
process.on('SIGINT', () => process.exit(0));
