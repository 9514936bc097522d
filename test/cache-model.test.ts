/**
 * The verified-token cache must be invisible. A model-based property (fast-check `commands`):
 * for ANY sequence of key-set changes (add, remove, replace under the same kid, duplicate kids,
 * outage, recovery) interleaved with the passage of time (a clock stepped back too) and with requests (new and repeated
 * tokens, bursts of concurrent first sightings racing a refresh), a verifier with the cache
 * answers exactly what a verifier without it answers at that moment.
 *
 * Both verifiers read the same simulated issuer (through the `fetch` option), with the same
 * clock, so their key sets move in lockstep: the only difference left is the cache. `npm test`
 * runs a seeded sample; `npm run fuzz` runs FUZZ_RUNS (100,000 by default: use a smaller
 * CACHE_MODEL_RUNS to bound it) sequences.
 */
import fc from 'fast-check';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

const RUNS = Number(process.env.CACHE_MODEL_RUNS ?? (process.env.FUZZ_RUNS ? 2000 : 40));
const SEED = Number(process.env.FUZZ_SEED ?? 9068);
const JWKS_URI = 'https://issuer.model.test/oidc/jwks';

/** The simulated issuer: which JWKs it publishes, and whether its JWKS endpoint is down. */
interface World {
  published: JWK[];
  down: boolean;
  /** Milliseconds each JWKS answer takes (so a refresh can land mid-burst). */
  latency: number;
}

interface Real {
  readonly world: World;
  readonly cached: Verifier;
  readonly cold: Verifier;
}

type Model = Record<string, never>;

const answer = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'ok',
    (error: unknown) => {
      if (error instanceof AuthError) return `${error.status} ${error.reason}`;
      throw error; // anything else is a bug (a 500)
    },
  );

/** Lets background refreshes land (the simulated JWKS answers on a real timer). */
const settle = (world: World) => new Promise((r) => setTimeout(r, world.latency + 5));

let pool: TestKey[];
/** Tokens by pool index: long-lived ones and one that expires within the run. */
let tokens: { key: number; token: string }[];
let start: number;

beforeAll(async () => {
  start = Date.now();
  vi.useFakeTimers({ toFake: ['Date'], now: start });
  pool = await Promise.all([
    makeKey('ES256', 'a'),
    makeKey('ES256', 'a'), // another key under the same kid: a replacement, or a duplicate kid
    makeKey('RS256', 'b'), // RSA 2048 verifies inline: the synchronous path
    makeKey('RS256', 'b'),
    makeKey('ES256', 'c'),
  ]);
  const now = Math.floor(start / 1000);
  tokens = [];
  for (const [index, key] of pool.entries()) {
    // Long-lived, short-lived, and one not valid before a minute from now.
    for (const extra of [{}, { exp: now + 400 }, { nbf: now + 60 }]) {
      const claims = m2mClaims({ iat: now, exp: now + 100_000, ...extra });
      tokens.push({ key: index, token: await mint(key, claims) });
    }
  }
});
afterAll(() => vi.useRealTimers());

function system(requestScoped: boolean): Real {
  const world: World = { published: [pool[0]!.jwk, pool[2]!.jwk], down: false, latency: 0 };
  const fetch = async () => {
    await new Promise((r) => setTimeout(r, world.latency));
    if (world.down) return new Response('down', { status: 503 });
    return Response.json({ keys: world.published });
  };
  const options = {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: JWKS_URI,
    keys: { maxAge: 60, maxStale: 120, cooldown: 5 },
    requestScoped,
    fetch,
  };
  return {
    world,
    cached: createVerifier(options),
    cold: createVerifier({ ...options, cache: false }),
  };
}

const advance = (seconds: number) => vi.setSystemTime(Date.now() + seconds * 1000);

/** One request to both verifiers; the answers must be the same. */
async function compare(real: Real, token: string): Promise<void> {
  const cached = await answer(real.cached.verify(token, { scopes: ['read:products'] }));
  const cold = await answer(real.cold.verify(token, { scopes: ['read:products'] }));
  expect(cached, `cached vs cold for a token of key ${token.slice(0, 12)}…`).toBe(cold);
}

class Publish implements fc.AsyncCommand<Model, Real> {
  constructor(readonly key: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const jwk = pool[this.key]!.jwk;
    if (!real.world.published.includes(jwk)) real.world.published.push(jwk);
  }
  toString = () => `publish(${this.key})`;
}

class Unpublish implements fc.AsyncCommand<Model, Real> {
  constructor(readonly key: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const jwk = pool[this.key]!.jwk;
    real.world.published = real.world.published.filter((k) => k !== jwk);
  }
  toString = () => `unpublish(${this.key})`;
}

/** The key under a kid replaced by the other key of that kid (no grace period). */
class Replace implements fc.AsyncCommand<Model, Real> {
  constructor(readonly kid: 'a' | 'b') {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const [x, y] = this.kid === 'a' ? [pool[0]!.jwk, pool[1]!.jwk] : [pool[2]!.jwk, pool[3]!.jwk];
    real.world.published = real.world.published.map((k) => (k === x ? y : k === y ? x : k));
  }
  toString = () => `replace(${this.kid})`;
}

class Outage implements fc.AsyncCommand<Model, Real> {
  constructor(readonly down: boolean) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    real.world.down = this.down;
  }
  toString = () => `outage(${this.down})`;
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly seconds: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    advance(this.seconds);
    await settle(real.world);
  }
  toString = () => `advance(${this.seconds})`;
}

class Request implements fc.AsyncCommand<Model, Real> {
  constructor(readonly token: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    await compare(real, tokens[this.token]!.token);
    await settle(real.world);
  }
  toString = () => `request(${this.token})`;
}

/**
 * Concurrent first sightings and repeats while the issuer changes and a slow refresh (started by
 * an unknown kid, or by stale keys) lands in the middle. Answers during a race may go either way; afterwards every
 * token must be answered as the cold verifier answers it.
 */
class Burst implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly tokens: number[],
    readonly change: fc.AsyncCommand<Model, Real>,
    readonly trigger: number,
  ) {}
  check = () => true;
  async run(m: Model, real: Real) {
    real.world.latency = 3;
    await this.change.run(m, real);
    // The same requests reach both verifiers, so that their key sets see the same traffic.
    const racing = [...this.tokens, this.trigger].flatMap((t) => [
      answer(real.cached.verify(tokens[t]!.token)),
      answer(real.cold.verify(tokens[t]!.token)),
    ]);
    await Promise.all(racing);
    await settle(real.world);
    real.world.latency = 0;
    for (const t of new Set([...this.tokens, this.trigger])) await compare(real, tokens[t]!.token);
  }
  toString = () => `burst([${this.tokens.join(',')}], ${String(this.change)}, ${this.trigger})`;
}

const keyIndex = fc.integer({ min: 0, max: 4 });
const tokenIndex = fc.integer({ min: 0, max: 14 });
const change = fc.oneof(
  keyIndex.map((k) => new Publish(k)),
  keyIndex.map((k) => new Unpublish(k)),
  fc.constantFrom('a' as const, 'b' as const).map((kid) => new Replace(kid)),
  fc.boolean().map((down) => new Outage(down)),
);
const commands = [
  change,
  fc.integer({ min: 1, max: 90 }).map((s) => new Advance(s)),
  fc.integer({ min: -40, max: -1 }).map((s) => new Advance(s)), // a clock stepped back
  tokenIndex.map((t) => new Request(t)),
  tokenIndex.map((t) => new Request(t)),
  fc
    .tuple(fc.array(tokenIndex, { minLength: 1, maxLength: 12 }), change, tokenIndex)
    .map(([ts, c, trigger]) => new Burst(ts, c, trigger)),
];

describe.each([
  ['', false],
  [' (request-scoped, as on Cloudflare Workers)', true],
])('the verified-token cache is invisible (model-based)%s', (_name, requestScoped) => {
  it(
    'answers what a verifier without a cache answers, for any interleaving',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
          vi.setSystemTime(start);
          const real = system(requestScoped);
          await fc.asyncModelRun(() => ({ model: {}, real }), cmds);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
    },
    RUNS * 2_000,
  );
});
