/**
 * Adversarial pass, session 20: resource exhaustion by an unauthenticated attacker. The attacker
 * sends requests; at most they choose token headers and payloads they cannot sign, or replay one
 * valid token (and one of its DPoP proofs). Hunted: memory that grows with the number of hostile
 * requests, work per request that is super-linear in its size, outbound requests to the issuer
 * that grow with hostile traffic, timers that pile up, promises that never settle, listeners that
 * leak. Growth is measured by counts (fetches through the `fetch` option, node:crypto verify
 * calls, jose key imports, active timers) and by heap after a full GC; no timing assertion except
 * a few generous "well under a second for input that takes a millisecond" bounds.
 *
 * Guards assert what held; `it.fails` marks an attack that succeeds today (a `// Was a bug:` comment
 * says what grows, by how much, for what input), written as the library should behave.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as jose from 'jose';
import type { JWK } from 'jose';
import { AuthError, CHANNELS, createVerifier } from 'resource-guard';
import type { RejectionEvent, VerifierOptions } from 'resource-guard';
import { nodeCrypto } from '../src/node-crypto.ts';
import { ath, dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

// Counts jose key imports (the DPoP proof-key import goes through jose's importJWK).
vi.mock('jose', async (importOriginal) => {
  const real = await importOriginal<typeof jose>();
  const counts = { importJWK: 0 };
  return {
    ...real,
    __counts: counts,
    importJWK: (...args: Parameters<typeof real.importJWK>) => {
      counts.importJWK++;
      return real.importJWK(...args);
    },
  };
});
const joseCounts = (jose as unknown as { __counts: { importJWK: number } }).__counts;

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;
/** Heap in use after a full collection, in bytes. */
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const MB = 1024 * 1024;
const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const JWKS_URL = 'https://issuer.test/jwks';

/** A JWKS endpoint behind the `fetch` option: what it serves, how often and for what URL it was asked. */
function issuerFetch(keys: () => JWK[], delayMs = 0) {
  const world = { fetches: 0, urls: [] as string[], hang: false };
  const fetch = (async (input: string | URL, init?: RequestInit) => {
    world.fetches++;
    const url = String(input);
    world.urls.push(url);
    if (world.hang) {
      // Never answers, honours the abort (as undici does).
      return new Promise<Response>((_, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)),
      );
    }
    if (delayMs > 0) await sleep(delayMs);
    if (url.endsWith('/.well-known/openid-configuration')) {
      const issuer = url.slice(0, -'/.well-known/openid-configuration'.length);
      return Response.json({ issuer, jwks_uri: `${issuer}/jwks` });
    }
    return Response.json({ keys: keys() });
  }) as typeof globalThis.fetch;
  return { world, fetch };
}

function verifierOn(fetch: typeof globalThis.fetch, options: Partial<VerifierOptions> = {}) {
  return createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: JWKS_URL,
    fetch,
    ...options,
  });
}

/** An ES384-sized signature that is canonical base64url and verifies nothing. */
const junkSignature = (bytes = 96) => b64url(randomBytes(bytes));

/** A token the attacker can make: any header and payload, a signature that verifies nothing. */
const forged = (header: Record<string, unknown>, payload: Record<string, unknown> = m2mClaims()) =>
  rawToken({ alg: 'ES384', typ: 'at+jwt', ...header }, payload, junkSignature());

/** Runs `n` calls, at most `width` at a time; returns each outcome. */
async function inBatches(n: number, width: number, run: (i: number) => Promise<unknown>) {
  const outcomes: string[] = [];
  for (let start = 0; start < n; start += width) {
    const batch = Array.from({ length: Math.min(width, n - start) }, (_, j) =>
      outcome(run(start + j)),
    );
    outcomes.push(...(await Promise.all(batch)));
  }
  return outcomes;
}

const tally = (outcomes: readonly string[]) => {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
};

/**
 * Counts node:crypto signature verifications (token and proof signatures both go through it). A
 * plain wrapper, not a spy: a spy would keep every call's arguments and skew the heap readings.
 */
const restores: (() => void)[] = [];
afterEach(() => {
  for (const restore of restores.splice(0)) restore();
});
function countVerifies() {
  const crypto = nodeCrypto as unknown as Record<string, unknown>;
  const real = crypto.verify as (...a: unknown[]) => unknown;
  const counter = { calls: 0 };
  crypto.verify = (...args: unknown[]) => {
    counter.calls++;
    return real(...args);
  };
  restores.push(() => (crypto.verify = real));
  return counter;
}

let issuerKey: TestKey;
const issuerKeyOnce = async () => (issuerKey ??= await makeKey('ES384'));

// ---------------------------------------------------------------------------------------------
// 1. Outbound requests and key-set state under floods of kids, algs and issuers
// ---------------------------------------------------------------------------------------------

describe('floods that name keys: outbound requests and memory stay flat', () => {
  it('3,000 distinct unknown kids × every allowed alg: 2 fetches (load + one kid refetch), heap flat, one more per cooldown (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch, {
      algorithms: ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'],
    });
    const algs = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'];
    // Warm up the code paths once, then measure.
    await outcome(verifier.verify(forged({ kid: 'warm' })));
    const fetchesAfterWarm = world.fetches;
    const base = heap();
    const outcomes = await inBatches(3000, 200, (i) =>
      verifier.verify(forged({ kid: `kid-${i}-${'k'.repeat(200)}`, alg: algs[i % algs.length] })),
    );
    expect(tally(outcomes)).toEqual({ '401 unknown_kid': 3000 });
    expect(world.fetches).toBe(fetchesAfterWarm); // the warm-up's refetch opened the cooldown
    expect(world.fetches).toBeLessThanOrEqual(2);
    expect(heap() - base).toBeLessThan(2 * MB);
    const time = clock();
    time.advance(31);
    await inBatches(500, 250, (i) => verifier.verify(forged({ kid: `again-${i}` })));
    expect(world.fetches).toBe(fetchesAfterWarm + 1);
    expect(verifier.health()[0]).toMatchObject({ state: 'fresh', keys: 1 });
  });

  it('a known kid under 5 algs it does not fit, 2,000 times: no fetch, no signature check, heap flat (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch, {
      algorithms: ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'],
    });
    await verifier.warm();
    const verifies = countVerifies();
    const algs = ['ES256', 'ES512', 'RS256', 'PS256', 'EdDSA'];
    const base = heap();
    const outcomes = await inBatches(2000, 200, (i) =>
      verifier.verify(forged({ kid: key.kid, alg: algs[i % algs.length] })),
    );
    expect(tally(outcomes)).toEqual({ '401 key_mismatch': 2000 });
    expect(world.fetches).toBe(1);
    expect(verifies.calls).toBe(0);
    expect(heap() - base).toBeLessThan(2 * MB);
    expect(verifier.health()[0]?.state).toBe('fresh'); // the verifier was alive when measured
  });

  it('several issuers by discovery: kids flooded under each cost ≤ 3 requests per issuer; 3,000 unconfigured issuers cost none (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const issuers = Array.from({ length: 5 }, (_, i) => `https://t${i}.example.test/oidc`);
    const verifier = createVerifier({ issuer: issuers, audience: AUDIENCE, fetch });
    const base = heap();
    const strangers = await inBatches(3000, 300, (i) =>
      verifier.verify(
        forged(
          { kid: `k${i}` },
          m2mClaims({ iss: `https://evil${i}.example.test/oidc${'/x'.repeat(50)}` }),
        ),
      ),
    );
    expect(tally(strangers)).toEqual({ '401 issuer_mismatch': 3000 });
    expect(world.fetches).toBe(0);
    const flood = await inBatches(3000, 300, (i) =>
      verifier.verify(forged({ kid: `k${i}` }, m2mClaims({ iss: issuers[i % issuers.length] }))),
    );
    expect(tally(flood)).toEqual({ '401 unknown_kid': 3000 });
    // Per issuer: discovery, the JWKS, and at most one kid refetch.
    expect(world.fetches).toBeLessThanOrEqual(issuers.length * 3);
    for (const issuer of issuers) {
      expect(world.urls.filter((u) => u.startsWith(issuer)).length).toBeLessThanOrEqual(3);
    }
    expect(heap() - base).toBeLessThan(2 * MB);
    expect(verifier.health()).toHaveLength(issuers.length);
  });

  it('a token without kid against a 3-key set costs at most 3 signature checks, and a replay costs them again (no negative cache; guard)', async () => {
    const keys = await Promise.all([makeKey('ES384'), makeKey('ES384'), makeKey('ES384')]);
    const { world, fetch } = issuerFetch(() => keys.map((k) => k.jwk));
    const verifier = verifierOn(fetch);
    await verifier.warm();
    const token = forged({ kid: undefined });
    await outcome(verifier.verify(token)); // the runtime's one-time probe of node:crypto
    const verifies = countVerifies();
    for (let i = 0; i < 50; i++) {
      expect(await outcome(verifier.verify(token))).toBe('401 bad_signature');
    }
    expect(verifies.calls).toBe(150); // 3 per request, bounded by MAX_CANDIDATES (8)
    expect(world.fetches).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Concurrent first sightings, hung fetches, aborted requests: settling and timers
// ---------------------------------------------------------------------------------------------

describe('first sightings while the JWKS is slow or hung', () => {
  it('2,000 concurrent first sightings of one valid token: 1 fetch, 1 signature check, all accepted (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk], 200);
    const verifier = verifierOn(fetch);
    const token = await mint(key);
    const verifies = countVerifies();
    const answers = await Promise.all(
      Array.from({ length: 2000 }, () => outcome(verifier.verify(token))),
    );
    expect(tally(answers)).toEqual({ ok: 2000 });
    expect(world.fetches).toBe(1);
    expect(verifies.calls).toBe(1);
  });

  it('3,000 distinct tokens while the JWKS hangs: all 503 at the timeout, 1 fetch, timers and heap return (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    world.hang = true;
    const verifier = verifierOn(fetch, { keys: { timeout: 0.3 } });
    const tokens = Array.from({ length: 3000 }, (_, i) =>
      forged({ kid: `${key.kid}` }, m2mClaims({ jti: `j${i}` })),
    );
    await sleep(10);
    const baseTimers = timers();
    const base = heap();
    const answers = await Promise.all(tokens.map((t) => outcome(verifier.verify(t))));
    expect(tally(answers)).toEqual({ '503 keys_unavailable': 3000 });
    expect(world.fetches).toBe(1);
    await sleep(20);
    expect(timers()).toBeLessThanOrEqual(baseTimers);
    expect(heap() - base).toBeLessThan(2 * MB);
    expect(verifier.health()[0]?.lastError).toMatch(/timeout/); // alive when measured
  });

  it('300 HTTP requests aborted by their clients while the JWKS is slow: nothing stays behind (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk], 300);
    const verifier = verifierOn(fetch);
    let settled = 0;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      verifier
        .authenticate(req)
        .then(
          () => res.end('ok'),
          (error: unknown) => res.writeHead(error instanceof AuthError ? error.status : 500).end(),
        )
        .finally(() => settled++);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await sleep(10);
      const baseTimers = timers();
      const tokens = Array.from({ length: 300 }, (_, i) => forged({ kid: `gone-${i}` }));
      await Promise.all(
        tokens.map(
          (t) =>
            new Promise<void>((resolve) => {
              const socket = connect(port, '127.0.0.1', () => {
                socket.write(`GET / HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${t}\r\n\r\n`);
                setTimeout(() => {
                  socket.destroy();
                  resolve();
                }, 20);
              });
              socket.on('error', () => resolve());
            }),
        ),
      );
      // The JWKS answers 300 ms after the first request: waited for (up to 3 s, short of the 5 s
      // fetch timeout a verification left waiting would reach), not slept (600 ms was thin).
      const deadline = performance.now() + 3000;
      while (settled < 300 && performance.now() < deadline) await sleep(5);
      await sleep(20);
      expect(settled).toBe(300); // every verification settled, none left pending
      expect(world.fetches).toBe(1);
      expect(timers()).toBeLessThanOrEqual(baseTimers);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('3,000 concurrent distinct forged tokens under the known P-384 kid (pool route): all settle, timers and heap return (guard)', async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch);
    await verifier.warm();
    const tokens = Array.from({ length: 3000 }, (_, i) =>
      forged({ kid: key.kid }, m2mClaims({ jti: `p${i}` })),
    );
    await sleep(10);
    const baseTimers = timers();
    const base = heap();
    const verifies = countVerifies();
    const answers = await Promise.all(tokens.map((t) => outcome(verifier.verify(t))));
    expect(tally(answers)).toEqual({ '401 bad_signature': 3000 });
    expect(verifies.calls).toBe(3000);
    expect(world.fetches).toBe(1);
    await sleep(20);
    expect(timers()).toBeLessThanOrEqual(baseTimers);
    expect(heap() - base).toBeLessThan(2 * MB);
    expect(verifier.health()[0]?.state).toBe('fresh');
  });

  it("request-scoped: requests waiting on another request's refresh hold one timer each, never more (guard)", async () => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk], 400);
    const verifier = verifierOn(fetch, { requestScoped: true });
    const tokens = Array.from({ length: 200 }, (_, i) =>
      forged({ kid: key.kid }, m2mClaims({ jti: `r${i}` })),
    );
    await sleep(10);
    const baseTimers = timers();
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, timers())), 5);
    // Timers created while they wait: each waiting request polls every 10 ms (by design), so
    // the work is requests × wait / 10 ms, linear, never compounding.
    const realSetTimeout = globalThis.setTimeout;
    let created = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      created++;
      return realSetTimeout(...args);
    }) as typeof setTimeout;
    let answers: string[];
    try {
      answers = await Promise.all(tokens.map((t) => outcome(verifier.verify(t))));
    } finally {
      globalThis.setTimeout = realSetTimeout;
      clearInterval(sampler);
    }
    expect(tally(answers)).toEqual({ '401 bad_signature': 200 });
    expect(world.fetches).toBe(1);
    // One polling timer per waiting request, the fetch's own, the sampler.
    expect(peak - baseTimers).toBeLessThanOrEqual(200 + 3);
    expect(created).toBeLessThanOrEqual(200 * (400 / 10 + 10));
    await sleep(20);
    expect(timers()).toBeLessThanOrEqual(baseTimers);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Pathological tokens just under maxTokenLength: linear work, bounded details
// ---------------------------------------------------------------------------------------------

describe('pathological base64url and JSON just under maxTokenLength', () => {
  /** Fits a token to `max` characters by padding a header member. */
  const shapes = (max: number): [string, string][] => {
    const room = Math.floor(((max - 400) * 3) / 4) - 200;
    const json = (header: string, payload = JSON.stringify(m2mClaims())) =>
      `${b64url(header)}.${b64url(payload)}.${junkSignature()}`;
    const depth = Math.floor(room / 2);
    return [
      ['deep array typ', json(`{"alg":"ES384","typ":${'['.repeat(depth)}${']'.repeat(depth)}}`)],
      [
        'deep object crit',
        json(
          `{"alg":"ES384","typ":"at+jwt","crit":${'{"a":'.repeat(Math.floor(room / 6))}1${'}'.repeat(Math.floor(room / 6))}}`,
        ),
      ],
      [
        'many keys',
        json(
          `{"alg":"ES384","typ":"at+jwt",${Array.from({ length: Math.floor(room / 16) }, (_, i) => `"k${i}":${i}`).join(',')},"crit":["x"]}`,
        ),
      ],
      [
        'escapes in kid',
        json(`{"alg":"ES384","typ":"at+jwt","kid":"${'\\u0000\\n'.repeat(Math.floor(room / 8))}"}`),
      ],
      ['huge number alg', json(`{"alg":1${'0'.repeat(room)},"typ":"at+jwt"}`)],
      ['long alg', json(`{"alg":"${'A'.repeat(room)}","typ":"at+jwt"}`)],
      [
        'huge iss',
        json(
          '{"alg":"ES384","typ":"at+jwt","kid":"x"}',
          JSON.stringify(m2mClaims({ iss: `${ISSUER}${'/'.repeat(room)}` })),
        ),
      ],
      [
        'aud of many',
        json(
          '{"alg":"ES384","typ":"at+jwt","kid":"x"}',
          JSON.stringify(
            m2mClaims({ aud: Array.from({ length: Math.floor(room / 4) }, () => 'a') }),
          ),
        ),
      ],
      [
        'duplicate keys',
        json(
          `{"alg":"ES384",${'"typ":"x",'.repeat(Math.floor(room / 11))}"typ":"at+jwt","kid":"x"}`,
        ),
      ],
    ];
  };

  it('default 8 KiB: every shape is a 401 with details under 4 KiB; 900 of them well under a second (guard)', async () => {
    const key = await issuerKeyOnce();
    const events: RejectionEvent[] = [];
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch, { onRejected: (e) => events.push(e) });
    const cases = shapes(8192);
    for (const [, token] of cases) expect(token.length).toBeLessThanOrEqual(8192);
    const start = performance.now();
    for (let round = 0; round < 100; round++) {
      for (const [name, token] of cases) {
        const answer = await outcome(verifier.verify(token));
        expect(answer, name).toMatch(/^401 /);
      }
    }
    expect(performance.now() - start).toBeLessThan(5000); // ~50 µs each
    for (const event of events) expect(JSON.stringify(event.details).length).toBeLessThan(4096);
    expect(world.fetches).toBeLessThanOrEqual(1);
  });

  it('maxTokenLength 1 MiB: 390,000-deep nesting, 49,000 keys, a 0.8 MiB iss among 20 issuers: 401, never a RangeError, details bounded (guard)', async () => {
    const key = await issuerKeyOnce();
    const events: RejectionEvent[] = [];
    const { fetch } = issuerFetch(() => [key.jwk]);
    const issuers = Array.from({ length: 20 }, (_, i) => `https://t${i}.example.test/oidc`);
    const verifier = createVerifier({
      issuer: issuers,
      audience: AUDIENCE,
      fetch,
      maxTokenLength: 1024 * 1024,
      onRejected: (e) => events.push(e),
    });
    const start = performance.now();
    for (const [name, token] of shapes(1024 * 1024)) {
      expect(token.length).toBeLessThanOrEqual(1024 * 1024);
      expect(await outcome(verifier.verify(token)), name).toMatch(/^401 /);
      expect(
        await outcome(verifier.authenticate({ headers: { authorization: `Bearer ${token}` } })),
        name,
      ).toMatch(/^401 /);
    }
    expect(performance.now() - start).toBeLessThan(10_000);
    for (const event of events) expect(JSON.stringify(event.details).length).toBeLessThan(4096);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Giant headers: Authorization with many commas, DPoP, cookies
// ---------------------------------------------------------------------------------------------

describe('giant request headers', () => {
  const verifierFor = async (extra: Partial<VerifierOptions> = {}) => {
    const key = await issuerKeyOnce();
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    return { verifier: verifierOn(fetch, extra), world };
  };
  const MiB = 1024 * 1024;

  it('1 MiB Authorization fields of commas, spaces and schemes: 400/401 fast, no fetch, no echo (guard)', async () => {
    const { verifier, world } = await verifierFor({ dpop: { origin: ORIGIN } });
    const fields = [
      `Bearer ${','.repeat(MiB)}`,
      `Bearer ${', '.repeat(MiB / 2)}`,
      `${' ,'.repeat(MiB / 2)}Bearer abc`,
      `Bearer abc${' '.repeat(MiB)}`,
      `Bearer ${'a'.repeat(MiB)}`,
      `Bearer${'\t'.repeat(MiB)}abc`,
      `${'x'.repeat(MiB)}, Bearer abc`,
      `DPoP ${','.repeat(MiB)}`,
      `DPoP ${'a '.repeat(MiB / 2)}`,
      `${'Basic a,'.repeat(MiB / 8)}`,
    ];
    const start = performance.now();
    for (const field of fields) {
      const answers = [
        await outcome(verifier.authenticate({ headers: { authorization: field } })),
        await outcome(verifier.authenticate({ headers: new Headers({ authorization: field }) })),
        await outcome(verifier.authenticate({ headers: {}, rawHeaders: ['Authorization', field] })),
      ];
      for (const answer of answers) expect(answer).toMatch(/^(400|401) /);
    }
    expect(performance.now() - start).toBeLessThan(5000);
    expect(world.fetches).toBe(0);
  });

  it('a 1 MiB DPoP header, and 10,000 DPoP headers: refused without reading the proof (guard)', async () => {
    const { verifier } = await verifierFor({ dpop: { origin: ORIGIN } });
    const token = forged({ kid: 'x' });
    const huge = 'a'.repeat(MiB);
    const rawMany: string[] = ['Authorization', `DPoP ${token}`];
    for (let i = 0; i < 10_000; i++) rawMany.push('DPoP', 'a.b.c');
    const start = performance.now();
    expect(
      await outcome(
        verifier.authenticate({
          method: 'GET',
          url: '/products',
          headers: {},
          rawHeaders: ['Authorization', `DPoP ${token}`, 'DPoP', huge],
        }),
      ),
    ).toBe('401 dpop_proof_invalid');
    // 10,001 fields: past what node keeps, refused as a list that may have been cut (session 32).
    expect(
      await outcome(
        verifier.authenticate({ method: 'GET', url: '/', headers: {}, rawHeaders: rawMany }),
      ),
    ).toBe('400 multiple_credentials');
    // Under that count, as two proofs.
    expect(
      await outcome(
        verifier.authenticate({
          method: 'GET',
          url: '/',
          headers: {},
          rawHeaders: rawMany.slice(0, 2 * 999),
        }),
      ),
    ).toBe('400 dpop_multiple_proofs');
    expect(performance.now() - start).toBeLessThan(2000);
  });

  it('a 1 MiB Cookie header of 100,000 pairs: linear, one answer (guard)', async () => {
    const { verifier } = await verifierFor({ cookie: 'at' });
    const cookie = Array.from({ length: 100_000 }, (_, i) => `c${i}=${'v'.repeat(5)}`).join('; ');
    const start = performance.now();
    expect(await outcome(verifier.authenticate({ headers: { cookie } }))).toBe('401 missing_token');
    const twice = `${cookie}; at=a.b.c; at=d.e.f`;
    expect(await outcome(verifier.authenticate({ headers: { cookie: twice } }))).toBe(
      '400 multiple_credentials',
    );
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. DPoP: what one stolen bound token lets an attacker park in the verifier
// ---------------------------------------------------------------------------------------------

describe('DPoP with one stolen bound token (no private key)', () => {
  const URL_ = `${ORIGIN}/products`;

  /** Proofs the thief can make: the victim's public jwk, a padded header, a signature that fails. */
  async function thief() {
    const key = await makeProofKey();
    const fx = await dpopFixture();
    const token = await fx.bound(key);
    const payload = b64url(
      JSON.stringify({
        jti: 'stolen',
        htm: 'GET',
        htu: URL_,
        iat: Math.floor(Date.now() / 1000),
        ath: ath(token),
      }),
    );
    const pad = 'p'.repeat(5600); // the proof stays under maxProofLength (8192)
    const forgedProof = (i: number) =>
      `${b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk, pad: `${i}${pad}` }))}.${payload}.${junkSignature(64)}`;
    return { key, fx, token, forgedProof };
  }

  // Was a bug: src/dpop.ts Dpop.#headerOf remembers a proof's header (the whole header segment as the
  // Map key, and its imported key) once the header's jwk has the token's thumbprint, BEFORE the
  // proof's signature is checked. The jwk is public (it is in every proof the client sends) and
  // extra header members are free, so a thief holding one bound token (no private key) parks
  // MAX_KEYS = 1,000 distinct headers of up to maxProofLength each: 1,100 forged proofs of ~7.9 KB
  // here (every one answered 401 dpop_proof_signature) retain ~9.5 MB of heap after GC (about
  // 1000 × maxProofLength; measured 66 MB at maxProofLength 65,536), each costing a key import.
  // They also evict the real client's header, which is then imported again ("once per client
  // key" no longer holds). A header should be remembered only once a proof signed under it
  // verified.
  it('1,100 proofs with forged signatures leave nothing behind (retained heap < 1 MB)', async () => {
    const { key, fx, token, forgedProof } = await thief();
    expect(
      await outcome(
        fx.verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
      ),
    ).toBe('ok');
    const base = heap();
    const answers: string[] = [];
    for (let i = 0; i < 1100; i++) {
      answers.push(await outcome(fx.verifier.authenticate(dpopRequest(token, forgedProof(i)))));
    }
    expect(tally(answers)).toEqual({ '401 dpop_proof_signature': 1100 });
    const retained = heap() - base;
    // The verifier must still be alive when the heap is measured (else its memo is collected).
    expect(fx.verifier.health()).toHaveLength(1);
    expect(retained).toBeLessThan(1 * MB);
  });

  // Was a bug: the same, seen as work: after the thief's flood the real client's next proof imports its
  // key again (the header it sends with every proof was evicted by forged ones).
  it("forged proofs do not evict the real client's remembered header (no re-import)", async () => {
    const { key, fx, token, forgedProof } = await thief();
    const first = await proof(key, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, first)))).toBe('ok');
    for (let i = 0; i < 1001; i++) {
      await outcome(fx.verifier.authenticate(dpopRequest(token, forgedProof(i))));
    }
    const before = joseCounts.importJWK;
    const next = await proof(key, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, next)))).toBe('ok');
    expect(joseCounts.importJWK - before).toBe(0);
  });

  it('a replayed valid proof, 2,000 times: one replay-store entry, 1,999 × dpop_replayed, no import (guard)', async () => {
    const { key, fx, token } = await thief();
    const once = await proof(key, 'GET', URL_, token);
    const answers: string[] = [];
    const before = joseCounts.importJWK;
    for (let i = 0; i < 2000; i++) {
      answers.push(await outcome(fx.verifier.authenticate(dpopRequest(token, once))));
    }
    expect(tally(answers)).toEqual({ ok: 1, '401 dpop_replayed': 1999 });
    expect(joseCounts.importJWK - before).toBeLessThanOrEqual(1);
  });

  it('the same proof re-spelt by ECDSA malleability (r, n − s) is still a replay: no second store entry (guard)', async () => {
    const { key, fx, token } = await thief();
    const once = await proof(key, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, once)))).toBe('ok');
    // P-256's group order; s' = n − s verifies too (OpenSSL does not insist on low s).
    const n = BigInt('0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551');
    const dot = once.lastIndexOf('.');
    const raw = Buffer.from(once.slice(dot + 1), 'base64url');
    const s = BigInt(`0x${raw.subarray(32).toString('hex')}`);
    const flipped = Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex');
    const malleated = `${once.slice(0, dot)}.${b64url(Buffer.concat([raw.subarray(0, 32), flipped]))}`;
    expect(malleated).not.toBe(once);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, malleated)))).toBe(
      '401 dpop_replayed',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 6. The verified-token cache's admission, health() and event payloads under floods
// ---------------------------------------------------------------------------------------------

describe('cache admission, health and events under floods', () => {
  it('20,000 garbage Bearer values flip admission to second sightings: a new valid token costs at most one extra verification (guard)', async () => {
    const key = await issuerKeyOnce();
    const { fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch);
    await verifier.warm();
    for (let i = 0; i < 20_000; i++) {
      await outcome(verifier.authenticate({ headers: { authorization: `Bearer !garbage${i}` } }));
    }
    const token = await mint(key);
    const verifies = countVerifies();
    for (let i = 0; i < 20; i++) expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(verifies.calls).toBeLessThanOrEqual(2);
  });

  it('health() and decision events keep their size through 5,000 hostile tokens (guard)', async () => {
    const key = await issuerKeyOnce();
    const { fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch);
    await verifier.warm();
    const before = JSON.stringify(verifier.health().map(({ ageSeconds: _a, ...rest }) => rest));
    let largest = 0;
    let events = 0;
    const listener = (message: unknown) => {
      events++;
      largest = Math.max(largest, JSON.stringify(message).length);
    };
    subscribe(CHANNELS.decision, listener);
    try {
      await inBatches(5000, 500, (i) =>
        verifier.verify(
          forged(
            { kid: `k${i}${'\n'.repeat(100)}`, typ: 'at+jwt' },
            m2mClaims({ iss: i % 2 ? ISSUER : `x${'y'.repeat(300)}` }),
          ),
        ),
      );
    } finally {
      unsubscribe(CHANNELS.decision, listener);
    }
    expect(events).toBe(5000);
    expect(largest).toBeLessThan(300);
    const after = JSON.stringify(verifier.health().map(({ ageSeconds: _a, ...rest }) => rest));
    expect(after).toBe(before);
  });
});
