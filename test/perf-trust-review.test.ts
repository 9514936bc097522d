/**
 * Trust guards for the performance changes: the token cache's short key and admission policy, the
 * adaptive signature route's `pooled` counter, the shared adapter outcome and the character-code
 * header comparisons. Each asserts the library is never looser than a cold, cache-less check.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AuthInfo } from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import type { Outcome } from 'resource-guard/kit';
import { Rejection } from '../src/errors.ts';
import { extractBearerToken } from '../src/request.ts';
import { signatureRoute, verifySignature } from '../src/signature.ts';
import { SingleFlight } from '../src/single-flight.ts';
import { TokenCache } from '../src/token-cache.ts';
import { shortKey } from '../src/token-key.ts';
import type { Voucher } from '../src/token-cache.ts';
import { bearer } from './helpers/http.ts';
import { fixtureVerifier, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { AUDIENCE, m2mClaims, mint } from './helpers/keys.ts';

useKeySetFixture();

const trusted: Voucher = { trusted: true, vouches: () => true };
const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;

/** Two distinct 12-character base64url tails with the same 30-bit short key (birthday search). */
function collidingTails(): readonly [string, string] {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const seen = new Map<number, string>();
  for (let n = 0; ; n++) {
    let tail = '';
    let x = n;
    for (let i = 0; i < 12; i++, x = Math.floor(x / 64)) tail += alphabet[x % 64];
    const hash = shortKey(tail);
    const other = seen.get(hash);
    if (other !== undefined && other !== tail) return [other, tail];
    seen.set(hash, tail);
  }
}

describe('the token cache under a hostile key space', () => {
  const [tailA, tailB] = collidingTails();
  const a = `header.payloadA.sig${tailA}`;
  const b = `header.payloadB.sig${tailB}`;

  it('two tokens sharing the short key never share an answer, and a replaced entry is gone', () => {
    const cache = new TokenCache<string>({ maxEntries: 10, maxBytes: 1 << 20 });
    expect(shortKey(a)).toBe(shortKey(b));
    cache.set(a, 'A', NOW - HOUR, NOW + HOUR, trusted);
    expect(cache.get(b, NOW)).toBeUndefined();
    expect(cache.get(a, NOW)).toBe('A');
    cache.set(b, 'B', NOW - HOUR, NOW + HOUR, trusted);
    expect(cache.get(a, NOW)).toBeUndefined();
    expect(cache.get(b, NOW)).toBe('B');
    expect(cache.size).toBe(1);
  });

  it('in flight, two tokens sharing the short key never share a verification', async () => {
    const flight = new SingleFlight<string>();
    expect(shortKey(a)).toBe(shortKey(b));
    let runs = 0;
    const verify = (answer: string) => () => {
      runs++;
      return nextTurn().then(() => answer);
    };
    const first = flight.run(a, verify('A'));
    const other = flight.run(b, verify('B')); // its short key is taken: verified on its own
    const again = flight.run(a, verify('A again')); // the same token: shares the first
    const ahead = `x${a.slice(1)}`; // differs before the tail: same short key, another token
    const lookalike = flight.run(ahead, verify('X'));
    expect(await Promise.all([first, other, again, lookalike])).toEqual(['A', 'B', 'A', 'X']);
    expect(runs).toBe(3);
    // Settled: nothing is shared any more.
    expect(await flight.run(a, verify('A later'))).toBe('A later');
  });

  it('a token that differs only before its last 12 characters is a miss', () => {
    const cache = new TokenCache<string>({ maxEntries: 10, maxBytes: 1 << 20 });
    const token = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.${'x'.repeat(30)}TAILTAILTAIL`;
    cache.set(token, 'good', NOW - HOUR, NOW + HOUR, trusted);
    const forged = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiIn0.${'x'.repeat(30)}TAILTAILTAIL`;
    expect(cache.get(forged, NOW)).toBeUndefined();
    expect(cache.get(`${token.slice(0, 5)}${token.slice(6)}`, NOW)).toBeUndefined();
    expect(cache.get(`Q${token}`, NOW)).toBeUndefined();
  });

  it('admission by second sighting: a colliding token in the seen table is never answered', () => {
    const cache = new TokenCache<string>({ maxEntries: 4, maxBytes: 1 << 20 }, 2);
    cache.get('miss-1', NOW);
    cache.get('miss-2', NOW);
    cache.set(a, 'A', NOW - HOUR, NOW + HOUR, trusted); // first sighting: only remembered
    expect(cache.size).toBe(0);
    cache.set(b, 'B', NOW - HOUR, NOW + HOUR, trusted); // "seen" through a's hash: stored
    expect(cache.get(a, NOW)).toBeUndefined();
    expect(cache.get(b, NOW)).toBe('B');
  });

  it('no entry survives its window or its key, whatever the churn and compaction', () => {
    const cache = new TokenCache<string>({ maxEntries: 64, maxBytes: 1 << 20 }, 1 << 30);
    let revoked = false;
    const key: Voucher = {
      get trusted() {
        return !revoked;
      },
      vouches: () => !revoked,
    };
    const tokens: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const token = `t.${i}.${(i * 7919).toString(36)}`;
      tokens.push(token);
      cache.set(token, token, NOW - HOUR + i, NOW + i, key);
      if (i % 3 === 0) cache.set(tokens[i >> 1] as string, 'again', NOW - HOUR, NOW + HOUR, key);
    }
    expect(cache.size).toBeLessThanOrEqual(64);
    expect(cache.queued).toBeLessThanOrEqual(2 * 64 + 1024);
    for (const token of tokens) {
      const value = cache.get(token, NOW + 4999);
      if (value !== undefined) expect(value).toBe('again'); // past every first window
      expect(cache.get(token, NOW - HOUR - 1)).toBeUndefined(); // before validFrom
    }
    revoked = true;
    for (const token of tokens) expect(cache.get(token, NOW)).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});

function jws(privateKey: KeyObject, alg: string, hash: string | null, n: number): string {
  const header = Buffer.from(JSON.stringify({ alg })).toString('base64url');
  const input = `${header}.${Buffer.from(`payload ${n}`).toString('base64url')}`;
  const signature = sign(hash, Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

describe('the pooled counter', () => {
  it('returns to zero after pool verifications that fail, throw or fall back to jose', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const good = jws(ec.privateKey, 'ES256', 'sha256', 1);
    const shortSig = `${good.slice(0, good.lastIndexOf('.'))}.AAAA`; // wrong length for P-256
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    signatureRoute.force = 'pool';
    try {
      const answers = await Promise.all([
        verifySignature(good, ec.publicKey, 'ES256'),
        verifySignature(shortSig, ec.publicKey, 'ES256'),
        verifySignature(good, rsa.publicKey, 'RS256'), // wrong key type for the algorithm
        verifySignature(good, ec.publicKey, 'ES256'),
      ]);
      expect(answers).toEqual([true, false, false, true]);
    } finally {
      signatureRoute.force = undefined;
    }
    await nextTurn();
    // Nothing left on the pool: a lone adaptive verification in a fresh turn is inline (a boolean).
    expect(verifySignature(good, ec.publicKey, 'ES256')).toBe(true);
  });
});

describe('the shared adapter outcome on the async path', () => {
  it('hands each request its own req, res and next, once, with answers settling out of order', async () => {
    const guard = routeGuard<{ readonly id: string }>(fixtureVerifier().verifier);
    const calls: string[] = [];
    const outcome: Outcome<void, AuthInfo | undefined, { readonly id: string }, string, string> = {
      pass: (auth, req, res, next) =>
        void calls.push(`pass ${auth?.clientId} ${req.id} ${res} ${next}`),
      respond: (error, req, res, next) =>
        void calls.push(`respond ${error.reason} ${req.id} ${res} ${next}`),
      fail: (_error, req, res, next) => void calls.push(`fail ${req.id} ${res} ${next}`),
    };
    const tokens = await Promise.all(
      Array.from({ length: 8 }, (_, i) => mint(key, m2mClaims({ client_id: `client-${i}` }))),
    );
    const runs = tokens.map((token, i) =>
      guard.run(
        { id: `req-${i}` },
        { headers: bearer(i % 3 === 2 ? `${token.slice(0, -4)}AAAA` : token) },
        outcome,
        `res-${i}`,
        `next-${i}`,
      ),
    );
    await Promise.all(runs);
    expect(calls.sort()).toEqual(
      tokens
        .map((_, i) =>
          i % 3 === 2
            ? `respond bad_signature req-${i} res-${i} next-${i}`
            : `pass client-${i} req-${i} res-${i} next-${i}`,
        )
        .sort(),
    );
  });
});

describe('the Authorization header, by character code', () => {
  const read = (request: Parameters<typeof extractBearerToken>[0]) => {
    try {
      return extractBearerToken(request, 4096);
    } catch (error) {
      if (error instanceof Rejection) return error.reason;
      throw error;
    }
  };

  it('accepts Bearer in any ASCII case only', () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      expect(read({ headers: { authorization: `${scheme} abc` } })).toBe('abc');
    }
    // Lookalikes and characters whose case folding lands in ASCII: no Bearer credentials.
    for (const scheme of [
      'Beare\u0280',
      'ʙearer',
      'Ｂearer',
      'Bearer'.replace('e', 'е'),
      'B\u0000earer',
    ]) {
      expect(read({ headers: { authorization: `${scheme} abc` } })).not.toBe('abc');
    }
    for (const bit of [0x100, 0x10000 - 0x20]) {
      const scheme = String.fromCharCode('B'.charCodeAt(0) + bit) + 'earer';
      expect(read({ headers: { authorization: `${scheme} abc` } })).not.toBe('abc');
    }
  });

  it('reads only a header named authorization in ASCII case; lookalike names are other headers', () => {
    const lookalikes = [
      'authorızation', // dotless i
      'AUTHORİZATION', // dotted capital I
      'authoriz\u0430tion', // Cyrillic a
      'authori\u017Aation', // Ź
      'authorizatioN'.replace('N', '\u039D'), // Greek capital nu
      '\u0041uthorization'.replace('A', '\u0141'),
    ];
    for (const name of lookalikes) {
      if (name.toLowerCase() === 'authorization') continue;
      expect(read({ headers: { [name]: 'Bearer abc' } })).toBe('missing_token');
      expect(read({ rawHeaders: [name, 'Bearer abc'], headers: {} })).toBe('missing_token');
    }
    expect(read({ rawHeaders: ['AuThOrIzAtIoN', 'Bearer abc'], headers: {} })).toBe('abc');
    expect(
      read({
        rawHeaders: ['Authorization', 'Bearer abc', 'AUTHORIZATION', 'Bearer def'],
        headers: {},
      }),
    ).toBe('multiple_credentials');
  });

  it('an odd-length raw list never reads a name as a value', () => {
    expect(read({ rawHeaders: ['Authorization'], headers: {} })).toBe('missing_token');
    expect(read({ rawHeaders: ['X', 'Authorization', 'Y'], headers: {} })).toBe('missing_token');
  });
});

/**
 * A cached token remembers the route requirements it last passed (src/verifier.ts admitCached), so
 * a repeat on the same route skips re-reading its claims. Never looser: any interleaving of routes
 * (scopes all/any, machine, organizations, claim rules, user checks, an organization read from the
 * request) over tokens of every shape answers exactly what a verifier without a cache answers, and
 * a revocation hook is still asked on every request.
 */
describe('the cached pass per route', () => {
  const routes: Record<string, Parameters<typeof routeGuard>[1]> = {
    none: {},
    read: { scopes: ['read:products'] },
    write: { scopes: ['write:products'] },
    both: { scopes: ['read:products', 'write:products'] },
    either: { scopes: ['read:products', 'write:products'], any: true },
    machine: { machine: true, scopes: ['read:products'] },
    anyOrg: { anyOrganization: true },
    orgFromRequest: { organization: (req: unknown) => (req as { org?: string }).org },
    claimEq: { claimEquals: { client_id: 'app-1' } },
    claimIn: { claimIncludes: { roles: ['admin'] } },
    checked: { checks: { even: (auth: AuthInfo) => (auth.claims.n as number) % 2 === 0 } },
  };
  const outcome: Outcome<string, AuthInfo | undefined, unknown, undefined, undefined> = {
    pass: () => 'ok',
    respond: (error) => `${error.status} ${error.reason}`,
    fail: (error) => `fail ${String(error)}`,
  };

  it('answers what a cold verifier answers, for any interleaving of routes and tokens', async () => {
    const shapes = [
      m2mClaims({ client_id: 'app-1', n: 2 }),
      m2mClaims({ client_id: 'app-2', scope: 'read:products', n: 3 }),
      m2mClaims({ client_id: 'app-1', scope: 'write:products', roles: ['admin'], n: 4 }),
      { ...m2mClaims({ n: 5 }), sub: 'user-1', client_id: 'spa' },
      m2mClaims({ organization_id: 'org-1', n: 6 }),
      m2mClaims({ aud: [AUDIENCE, 'urn:logto:organization:org-2'], n: 8 }),
    ];
    const tokens = await Promise.all(shapes.map((claims) => mint(key, claims)));
    const cached = fixtureVerifier().verifier;
    const cold = fixtureVerifier({ cache: false }).verifier;
    const guards = Object.fromEntries(
      Object.entries(routes).map(([name, options]) => [
        name,
        [routeGuard(cached, options), routeGuard(cold, options)] as const,
      ]),
    );
    const names = Object.keys(routes);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            route: fc.constantFrom(...names),
            token: fc.nat(tokens.length - 1),
            org: fc.constantFrom(undefined, 'org-1', 'org-2'),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        async (script) => {
          for (const { route, token, org } of script) {
            const request = { headers: bearer(tokens[token]!), org };
            const [hot, fresh] = guards[route]!;
            const a = await hot.run(request, request, outcome);
            const b = await fresh.run(request, request, outcome);
            expect(a, `${route} token ${token} org ${org}`).toBe(b);
          }
        },
      ),
      { numRuns: 150, seed: 4242 },
    );
  });

  it('asks a revocation hook on every request, the same route or not', async () => {
    let asked = 0;
    const { verifier } = fixtureVerifier({
      isRevoked: () => {
        asked++;
        return asked > 3;
      },
    });
    const token = await mint(key);
    const guard = routeGuard(verifier, { scopes: ['read:products'] });
    const request = { headers: bearer(token) };
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await guard.run(request, request, outcome));
    expect(answers).toEqual(['ok', 'ok', 'ok', '401 revoked', '401 revoked']);
    expect(asked).toBe(5);
  });

  it('runs your checks on every request, the same route or not', async () => {
    let calls = 0;
    const { verifier } = fixtureVerifier();
    const token = await mint(key);
    const guard = routeGuard(verifier, { checks: { alternate: () => calls++ % 2 === 0 } });
    const request = { headers: bearer(token) };
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) answers.push(await guard.run(request, request, outcome));
    expect(answers).toEqual(['ok', '403 check_failed', 'ok', '403 check_failed']);
    expect(calls).toBe(4);
  });
});
