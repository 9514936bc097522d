/**
 * Adversarial review, session 29: 3ef2625 (every JWKS fetch reads the issuer's metadata first;
 * NestJS memo keeps the route's handler) and 5adf976 (RSA signatures must be k octets and below
 * the modulus, RFC 8017 §8.2.2, before any runtime's crypto).
 * The invariant: never looser than a cold verifier (a fresh verifier, metadata + JWKS fetched,
 * jose), and never refusing what it accepts.
 * Real servers on 127.0.0.1, port 0; only `Date` is faked where a clock is needed.
 */
import 'reflect-metadata';
import {
  createHash,
  generateKeyPair as generateNodeKeyPair,
  randomUUID,
  sign as nodeSign,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { promisify } from 'node:util';
import type express from 'express';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { Controller, Get, Next, Param, Res } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import { Auth, RequireAuth, ResourceGuardModule } from 'resource-guard/nestjs';
import { verifySignature } from '../src/signature.ts';
import { dpopRequest, ORIGIN } from './helpers/dpop.ts';
import { bearer, jsonServer, rawRequest } from './helpers/http.ts';
import type { JsonRoute } from './helpers/http.ts';
import { AUDIENCE, ISSUER, b64url, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';
import { startNest } from './helpers/nest-app.ts';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  for (const close of closers.splice(0)) await close();
});

// ───────────────────────────── 5adf976: RSA signature range ─────────────────────────────

const generateRsa = promisify(generateNodeKeyPair);

interface RsaKey {
  readonly bits: number;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public JWK as published (no alg: usable for every RSA algorithm). */
  readonly jwk: JWK;
  /** The modulus octets (no leading zero). */
  readonly n: Buffer;
}

async function rsaKey(bits: number, kid = `rsa-${bits}`): Promise<RsaKey> {
  // OpenSSL may give a modulus a bit short of an odd size: asked again (bounded) until exact.
  let pair = await generateRsa('rsa', { modulusLength: bits });
  for (let i = 0; i < 8 && pair.publicKey.asymmetricKeyDetails?.modulusLength !== bits; i++) {
    pair = await generateRsa('rsa', { modulusLength: bits });
  }
  const { privateKey, publicKey } = pair;
  expect(publicKey.asymmetricKeyDetails?.modulusLength).toBe(bits);
  const exported = publicKey.export({ format: 'jwk' }) as JWK;
  return {
    bits,
    privateKey,
    publicKey,
    jwk: { ...exported, kid, use: 'sig' },
    n: Buffer.from(exported.n as string, 'base64url'),
  };
}

const HASH: Record<string, string> = {
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
};
const SALT: Record<string, number> = { PS256: 32, PS384: 48, PS512: 64 };

/** The signature octets of `input` (node:crypto; k octets, as RFC 8017's I2OSP writes it). */
function rsaSign(key: RsaKey, alg: string, input: string): Buffer {
  const pss = alg.startsWith('PS');
  return nodeSign(HASH[alg] as string, Buffer.from(input), {
    key: key.privateKey,
    ...(pss ? { padding: 6, saltLength: SALT[alg] } : {}),
  });
}

/** A signed access token; `kid` defaults to the key's. */
function rsaToken(key: RsaKey, alg: string, claims = m2mClaims(), kid = key.jwk.kid) {
  const input = `${b64url(JSON.stringify({ alg, typ: 'at+jwt', kid }))}.${b64url(JSON.stringify(claims))}`;
  const signature = rsaSign(key, alg, input);
  return { input, signature, token: `${input}.${b64url(signature)}` };
}

const toBigInt = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
const toBytes = (value: bigint, length: number) =>
  Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');

const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;

/** The cold oracle: jose alone, with the JWK as published. */
async function coldAccepts(jwk: JWK, token: string, alg: string): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet({ keys: [jwk] }), {
      algorithms: [alg],
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
    });
    return true;
  } catch {
    return false;
  }
}

describe('5adf976: moduli whose length is no multiple of 8 bits, big keys, every RSA alg', () => {
  // SOUND: k is counted from the modulus's value, ceil(4k/3) characters are asked, and the top
  // three octets decide as a whole-number comparison would, for k ≡ 0, 1 and 2 mod 3.
  it('2050, 2052, 2056, 2062, 3072, 3074, 4096 bits: valid tokens ok (as jose), s + n and n refused', async () => {
    const keys = await Promise.all(
      [2050, 2052, 2056, 2062, 3072, 3074, 4096].map((b) => rsaKey(b)),
    );
    for (const key of keys) {
      const verifier = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [key.jwk] },
        algorithms: [...RSA_ALGS],
        cache: false,
      });
      const k = key.n.length;
      const n = toBigInt(key.n);
      for (const alg of RSA_ALGS) {
        const { input, signature, token } = rsaToken(key, alg);
        expect(signature.length, `${key.bits} ${alg}`).toBe(k);
        expect(await coldAccepts(key.jwk, token, alg), `${key.bits} ${alg} cold`).toBe(true);
        expect(await outcome(verifier.verify(token)), `${key.bits} ${alg}`).toBe('ok');
        const s = toBigInt(signature);
        const variants = [toBytes(n, k), toBytes(s + n, k + 1)];
        if (s + n < 1n << BigInt(8 * k)) variants.push(toBytes(s + n, k));
        for (const variant of variants) {
          expect(await outcome(verifier.verify(`${input}.${b64url(variant)}`))).toBe(
            '401 bad_signature',
          );
        }
      }
    }
  });

  // SOUND: a modulus whose top octet is 0x02 or 0x03 (2050 bits) makes about a third of all
  // signatures start with a zero octet; a 2048-bit key about one in 256. Both are k octets, and
  // accepted.
  it('signatures with leading zero octets (2050- and 2048-bit keys) are accepted', async () => {
    const [odd, even] = await Promise.all([rsaKey(2050), rsaKey(2048)]);
    for (const [key, tries] of [
      [odd, 64],
      [even, 4000],
    ] as const) {
      const verifier = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [key.jwk] },
        algorithms: ['RS256'],
        cache: false,
      });
      let found: string | undefined;
      for (let i = 0; i < tries && found === undefined; i++) {
        const { signature, token } = rsaToken(key, 'RS256');
        if (signature[0] === 0) found = token;
      }
      expect(found, `${key.bits}`).toBeDefined();
      expect(await coldAccepts(key.jwk, found as string, 'RS256')).toBe(true);
      expect(await outcome(verifier.verify(found as string)), `${key.bits}`).toBe('ok');
    }
  });

  // SOUND: `n` published with leading zero octets, or in standard base64 with padding: the
  // modulus is read from its value (k octets), so tokens verify as with the canonical spelling.
  it('a JWKS `n` with leading zero octets, or written in padded standard base64: tokens ok', async () => {
    const key = await rsaKey(2056);
    const padded = { ...key.jwk, n: b64url(Buffer.concat([Buffer.alloc(2), key.n])) };
    const standard = { ...key.jwk, n: key.n.toString('base64') };
    for (const jwk of [padded, standard]) {
      const verifier = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [jwk] },
        algorithms: ['PS512', 'RS256'],
        cache: false,
      });
      for (const alg of ['PS512', 'RS256']) {
        expect(await outcome(verifier.verify(rsaToken(key, alg).token)), alg).toBe('ok');
      }
    }
  });

  // SOUND: the tie (the top three octets equal the modulus's) falls through to a whole compare.
  // A real signature ties about once in 2^16..2^24, so the modulus handed in is crafted around
  // a real signature: above it (the crypto still decides: ok), equal to it, and below it.
  it('top-three-octet ties: decided by the whole value, then by the crypto', async () => {
    const key = await rsaKey(2048);
    const { signature, token } = rsaToken(key, 'RS256');
    const k = key.n.length;
    const s = toBigInt(signature);
    const top = signature.subarray(0, 3);
    const above = Buffer.concat([top, Buffer.alloc(k - 3, 0xff)]);
    expect(toBigInt(above) > s).toBe(true);
    expect(await verifySignature(token, key.publicKey, 'RS256', above)).toBe(true);
    expect(await verifySignature(token, key.publicKey, 'RS256', toBytes(s, k))).toBe(false);
    expect(await verifySignature(token, key.publicKey, 'RS256', toBytes(s - 1n, k))).toBe(false);
    // A modulus one octet shorter or longer than the signature: refused before any crypto.
    expect(await verifySignature(token, key.publicKey, 'RS256', above.subarray(1))).toBe(false);
    expect(
      await verifySignature(
        token,
        key.publicKey,
        'RS256',
        Buffer.concat([Buffer.from([1]), above]),
      ),
    ).toBe(false);
  });

  // SOUND: the signature segment's spelling is judged before the range: `=` padding, a length
  // of 4n + 1 and non-zero trailing bits are malformed; none reaches fitsModulus's decode.
  it('signature segment spellings: padding, 4n+1 length, trailing bits: refused, no 500', async () => {
    const key = await rsaKey(2050); // k = 257: 343 characters, the last one carrying 2 spare bits
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      algorithms: ['PS256'],
      cache: false,
    });
    const { input, token } = rsaToken(key, 'PS256');
    const sig = token.slice(input.length + 1);
    expect(sig.length).toBe(343);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(sig.at(-1) as string);
    const spellings = [
      `${sig}=`,
      `${sig}A`, // 344 characters: 258 octets, not k
      `${sig}AA`, // 345 = 4n + 1
      sig.slice(0, -1) + alphabet[last ^ 1], // a spare bit set
      `${sig.slice(0, -1)}`, // 342: 256 octets
    ];
    const outcomes = await Promise.all(
      spellings.map((s) => outcome(verifier.verify(`${input}.${s}`))),
    );
    for (const answer of outcomes) expect(answer).toMatch(/^401 (malformed_token|bad_signature)$/);
    expect(await outcome(verifier.verify(token))).toBe('ok');
  });
});

/** node:crypto as Deno's behaves (test/rsa-signature-range.test.ts): s >= n reduced mod n. */
function reducingRuntime() {
  const crypto = process.getBuiltinModule('node:crypto');
  const real = crypto.verify.bind(crypto) as (...args: unknown[]) => unknown;
  return vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
    const [, , key, signature] = args as [unknown, unknown, { key?: unknown }, Uint8Array];
    const keyObject = key?.key as
      { asymmetricKeyType?: string; export(o: { format: 'jwk' }): JWK } | undefined;
    if (keyObject?.asymmetricKeyType === 'rsa' || keyObject?.asymmetricKeyType === 'rsa-pss') {
      const nBytes = Buffer.from(keyObject.export({ format: 'jwk' }).n as string, 'base64url');
      const n = toBigInt(nBytes);
      const s = toBigInt(signature);
      if (s >= n) args[3] = toBytes(s % n, nBytes.length);
    }
    return real(...args);
  }) as never);
}

describe('5adf976: DPoP proofs by RSA keys', () => {
  /** A proof signed by an RSA key, its jwk as given. */
  function rsaProof(key: RsaKey, alg: string, jwk: JWK, token: string, method = 'GET') {
    const header = { typ: 'dpop+jwt', alg, jwk };
    const payload = {
      jti: randomUUID(),
      htm: method,
      htu: `${ORIGIN}/products`,
      iat: Math.floor(Date.now() / 1000),
      ath: createHash('sha256').update(token).digest('base64url'),
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    return { input, signature: rsaSign(key, alg, input) };
  }

  // SOUND: proof keys of 2050 and 3074 bits and one with `n` padded by a zero octet: a valid
  // proof is accepted; the same proof with s + n (in k octets when it fits) or n is refused, even
  // on a runtime whose crypto reduces s mod n (the range is checked before it).
  it('odd-length and zero-padded RSA proof keys: valid proofs ok, s + n and n refused', async () => {
    const issuerKey = await makeKey('ES256');
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      dpop: { origin: ORIGIN },
      cache: false,
    });
    const keys = await Promise.all([rsaKey(2050), rsaKey(3074)]);
    const reducing = reducingRuntime(); // node:crypto as Deno's: s >= n reduced mod n first
    for (const key of keys) {
      const canonical = { kty: 'RSA', n: key.jwk.n as string, e: key.jwk.e as string };
      const zeroPadded = { ...canonical, n: b64url(Buffer.concat([Buffer.alloc(1), key.n])) };
      for (const [jwk, alg] of [
        [canonical, 'PS256'],
        [zeroPadded, 'RS512'],
        [canonical, 'PS512'],
      ] as const) {
        const jkt = await calculateJwkThumbprint(jwk);
        const token = await mint(issuerKey, m2mClaims({ cnf: { jkt } }));
        const { input, signature } = rsaProof(key, alg, jwk, token);
        expect(
          await outcome(verifier.authenticate(dpopRequest(token, `${input}.${b64url(signature)}`))),
          `${key.bits} ${alg}`,
        ).toBe('ok');
        const k = key.n.length;
        const n = toBigInt(key.n);
        // Each on a fresh proof (jti), so a refusal is the signature's, not a replay's.
        const respellings: ((s: bigint) => Buffer | undefined)[] = [
          () => toBytes(n, k),
          (s) => toBytes(s + n, k + 1),
          (s) => (s + n < 1n << BigInt(8 * k) ? toBytes(s + n, k) : undefined),
        ];
        for (const respell of respellings) {
          const fresh = rsaProof(key, alg, jwk, token);
          const bytes = respell(toBigInt(fresh.signature));
          if (bytes === undefined) continue;
          expect(
            await outcome(
              verifier.authenticate(dpopRequest(token, `${fresh.input}.${b64url(bytes)}`)),
            ),
            `${key.bits} ${alg}`,
          ).toBe('401 dpop_proof_signature');
        }
      }
    }
    expect(reducing).toHaveBeenCalled();
  });
});

// ───────────────────────────── 3ef2625: discovery per fetch ─────────────────────────────

/** An issuer at `<origin>/oidc`, its metadata and JWKS answered as the test decides. */
async function issuerServer(route: (origin: string) => JsonRoute) {
  const server = await jsonServer(route);
  closers.push(server.close);
  return server;
}
const META = '/oidc/.well-known/openid-configuration';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('3ef2625: request-scoped key sets with a metadata read per refresh', () => {
  // FIXED (session 29), was FAULT: a request-scoped refresh was presumed cut off after keys.timeout + 1 s, but with discovery it is two requests (up to 2-3 x timeout): a live refresh is duplicated.
  // src/key-set.ts #otherRefreshUnderWay (the `timeout + 1` window) was written for one JWKS
  // request; since 3ef2625 every refresh is metadata + JWKS, each with its own timeout. An issuer
  // answering each in 2.1 s of a 3 s timeout (both succeed, 4.2 s in all) got a second refresh
  // from the request that waited 4 s, while the first was still under way and about to succeed.
  // (0.9 s to spare on each request's timeout: a loaded CI machine must not time one out.)
  it('a slow-but-live refresh (metadata then JWKS, each within the timeout) is not fetched twice', async () => {
    const key = await makeKey('ES256');
    let metadataReads = 0;
    let jwksReads = 0;
    const fetch = (async (input: URL | RequestInfo) => {
      const url = String(input);
      if (url.includes('/.well-known/')) {
        metadataReads++;
        await sleep(2100);
        return Response.json({ issuer: ISSUER, jwks_uri: 'https://tenant.example.test/oidc/jwks' });
      }
      jwksReads++;
      await sleep(2100);
      return Response.json({ keys: [key.jwk] });
    }) as typeof globalThis.fetch;
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      fetch,
      requestScoped: true,
      keys: { timeout: 3 },
      cache: false,
    });
    const token = await mint(key);
    const first = outcome(verifier.verify(token));
    await sleep(50);
    const second = outcome(verifier.verify(token));
    expect([await first, await second]).toEqual(['ok', 'ok']);
    // Observed: 2 metadata reads and 2 JWKS reads (the second request's own refresh at ~4 s).
    expect({ metadataReads, jwksReads }).toEqual({ metadataReads: 1, jwksReads: 1 });
  });
});

describe('3ef2625: sound', () => {
  /** An issuer whose metadata the test shapes; JWKS at /jwks and /elsewhere. */
  async function shapedIssuer(
    shape: (origin: string) => { status: number; body: unknown } | undefined,
    keys: Record<string, unknown> = {},
  ) {
    const key = await makeKey('ES256');
    const server = await issuerServer((origin) => (path) => {
      if (path === META) return shape(origin);
      if (path === '/oidc/jwks' || path === '/elsewhere') {
        return { status: 200, body: { keys: [key.jwk] } };
      }
      return undefined;
    });
    const verifier = createVerifier({
      issuer: server.issuer,
      audience: AUDIENCE,
      keys: { cooldown: 0, ...keys },
      cache: false,
    });
    const token = await mint(key, m2mClaims({ iss: server.issuer }));
    return { server, verifier, key, token };
  }

  // SOUND: metadata that is not the issuer's (issuer mismatch, trailing slash, case), a jwks_uri
  // that is not a URL, http on a non-loopback host, credentials, a list or JSON that is not an
  // object: 503 keys_unavailable, as a cold verifier; no 500; the token not echoed.
  it.each([
    ['issuer differs', (o: string) => ({ issuer: `${o}/other`, jwks_uri: `${o}/oidc/jwks` })],
    [
      'issuer with a trailing slash',
      (o: string) => ({ issuer: `${o}/oidc/`, jwks_uri: `${o}/oidc/jwks` }),
    ],
    ['no jwks_uri', (o: string) => ({ issuer: `${o}/oidc` })],
    [
      'jwks_uri not a string',
      (o: string) => ({ issuer: `${o}/oidc`, jwks_uri: [`${o}/oidc/jwks`] }),
    ],
    [
      'jwks_uri with credentials',
      (o: string) => ({ issuer: `${o}/oidc`, jwks_uri: o.replace('//', '//u:p@') + '/oidc/jwks' }),
    ],
    [
      'jwks_uri plain http elsewhere',
      (o: string) => ({ issuer: `${o}/oidc`, jwks_uri: 'http://keys.example.test/jwks' }),
    ],
    ['document is an array', () => [1, 2]],
    ['document is null', () => null],
  ])('metadata %s: 503 keys_unavailable, nothing echoed', async (_name, body) => {
    const { verifier, token } = await shapedIssuer((origin) => ({
      status: 200,
      body: body(origin),
    }));
    let error: unknown;
    try {
      await verifier.verify(token);
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ status: 503, reason: 'keys_unavailable' });
    const shown = JSON.stringify({ error, health: verifier.health() });
    expect(shown).not.toContain(token.split('.')[2]);
    expect(shown).not.toContain('u:p@');
  });

  // SOUND: a jwks_uri on another origin is followed as a cold verifier follows it, and the keys
  // answer only for this issuer's tokens.
  it('a jwks_uri on another (loopback) origin is followed; health names it', async () => {
    const keysHost = await issuerServer(() => () => undefined);
    const { verifier, token, server } = await shapedIssuer((origin) => ({
      status: 200,
      body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/elsewhere` },
    }));
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(verifier.health()[0]?.jwksUri).toBe(`${server.origin}/elsewhere`);
    expect(keysHost.hits).toEqual([]);
  });

  // SOUND: metadata failing after keys were had: stale keys serve within maxStale, health and
  // keys:fetch report the metadata URL's failure, maxStale counts from the last JWKS success, and
  // a metadata recovery with a JWKS failure does not reset it.
  it('metadata down, then up with the JWKS down: maxStale counts from the last good keys', async () => {
    const state = { meta: 200, jwks: 200 };
    const key = await makeKey('ES256');
    const server = await issuerServer((origin) => (path) => {
      if (path === META) {
        return state.meta === 200
          ? { status: 200, body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/oidc/jwks` } }
          : { status: state.meta, body: {} };
      }
      if (path === '/oidc/jwks') {
        return state.jwks === 200
          ? { status: 200, body: { keys: [key.jwk] } }
          : { status: state.jwks, body: {} };
      }
      return undefined;
    });
    const events: { outcome: string; url?: string; error?: string }[] = [];
    const listener = (message: unknown) => events.push(message as (typeof events)[number]);
    subscribe('resource-guard:keys:fetch', listener);
    try {
      const verifier = createVerifier({
        issuer: server.issuer,
        audience: AUDIENCE,
        keys: { maxAge: 60, maxStale: 120, cooldown: 0 },
        cache: false,
      });
      const tokenOf = () => mint(key, m2mClaims({ iss: server.issuer }));
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
      const advance = (s: number) => vi.setSystemTime(Date.now() + s * 1000);
      expect(await outcome(verifier.verify(await tokenOf()))).toBe('ok');
      state.meta = 500;
      advance(61);
      expect(await outcome(verifier.verify(await tokenOf()))).toBe('ok'); // stale
      await vi.waitFor(() => expect(verifier.health()[0]?.lastError).toMatch(/500/));
      expect(events.at(-1)).toMatchObject({ outcome: 'error', url: `${server.origin}${META}` });
      state.meta = 200;
      state.jwks = 503;
      advance(61); // back-off (1 s) over
      expect(await outcome(verifier.verify(await tokenOf()))).toBe('ok'); // stale still
      await vi.waitFor(() => expect(verifier.health()[0]?.lastError).toMatch(/503/));
      expect(events.at(-1)).toMatchObject({ outcome: 'error', url: `${server.origin}/oidc/jwks` });
      advance(61); // 183 s since the last good keys: past maxAge + maxStale
      expect(await outcome(verifier.verify(await tokenOf()))).toBe('503 keys_unavailable');
    } finally {
      unsubscribe('resource-guard:keys:fetch', listener);
    }
  });

  // SOUND: a metadata server that never answers is cut off at keys.timeout; a 3xx is not
  // followed; a body over 256 KiB is refused: each a 503, never a hang.
  it('metadata that hangs, redirects or is huge: 503 within the timeout', async () => {
    const key = await makeKey('ES256');
    const cases: Record<string, (origin: string) => Response | Promise<Response>> = {
      hang: () => new Promise<Response>(() => undefined),
      redirect: (o) => new Response(null, { status: 302, headers: { location: `${o}/x` } }),
      huge: (o) =>
        Response.json({
          issuer: `${o}/oidc`,
          jwks_uri: `${o}/oidc/jwks`,
          pad: 'x'.repeat(300_000),
        }),
      notJson: () => new Response('<html>', { status: 200 }),
    };
    for (const [name, answer] of Object.entries(cases)) {
      const origin = 'https://slow.example.test';
      const fetch = (async (input: URL | RequestInfo, init?: RequestInit) => {
        const url = String(input);
        if (url.includes('/.well-known/')) {
          const result = answer(origin);
          return init?.signal
            ? Promise.race([
                result,
                new Promise<Response>((_, reject) =>
                  init.signal?.addEventListener('abort', () => reject(new Error('aborted'))),
                ),
              ])
            : result;
        }
        return Response.json({ keys: [key.jwk] });
      }) as typeof globalThis.fetch;
      const verifier = createVerifier({
        issuer: `${origin}/oidc`,
        audience: AUDIENCE,
        fetch,
        keys: { timeout: 0.3 },
        cache: false,
      });
      const started = Date.now();
      const answerOf = await outcome(
        verifier.verify(await mint(key, m2mClaims({ iss: `${origin}/oidc` }))),
      );
      expect(answerOf, name).toBe('503 keys_unavailable');
      expect(Date.now() - started, name).toBeLessThan(2000);
    }
  });
});

// ─────────────────────────────── 3ef2625: the NestJS memo ───────────────────────────────

let nestKey: TestKey;
let nestVerifier: Verifier;
beforeAll(async () => {
  nestKey = await makeKey();
  nestVerifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [nestKey.jwk] },
  });
});

/** A Nest app of these controllers, started for the describe block; `get` asks as org-a's token. */
function orgApi(...controllers: (new (...args: never[]) => unknown)[]) {
  let api: Awaited<ReturnType<typeof startNest>>;
  let orgA: string;
  beforeAll(async () => {
    orgA = await mint(nestKey, m2mClaims({ organization_id: 'org-a' }));
    api = await startNest({
      imports: [ResourceGuardModule.forRoot({ verifier: nestVerifier })],
      controllers,
    });
  });
  afterAll(() => api.close());
  return { get: (path: string) => rawRequest(api.url, path, 'GET', bearer(orgA)) };
}

describe('3ef2625: one handler function serving two routes, @Next()', () => {
  /**
   * A common Nest pattern: a generic base controller whose handlers subclasses inherit, each
   * subclass mounted at its own prefix with the same (shared) class-level requirements. Both
   * routes run the SAME function (`context.getHandler()` is the prototype method) with the SAME
   * requirements object, yet each route's `organization` reads its own params.
   */
  const OrgRoute = RequireAuth({ organization: (req) => req.params.orgId });

  abstract class OrgResource {
    protected abstract serves(name: string | undefined): boolean;
    @Get()
    read(
      @Param() params: Record<string, string>,
      @Res() res: express.Response,
      @Next() next: () => void,
      @Auth() auth: AuthInfo,
    ) {
      if (!this.serves(params.name)) return next();
      res.json({
        org: params.orgId,
        tokenOrg: auth.organizationId,
        secret: `data of ${params.orgId}`,
      });
    }
  }
  // /files/:orgId/:name: only an organization's readme; anything else is handed on.
  @Controller('files/:orgId/:name')
  @OrgRoute
  class Files extends OrgResource {
    protected serves(name: string | undefined) {
      return name === 'readme';
    }
  }
  // /files/:name/:orgId: an organization's named export.
  @Controller('files/:name/:orgId')
  @OrgRoute
  class Exports extends OrgResource {
    protected serves() {
      return true;
    }
  }

  const { get } = orgApi(Files, Exports);

  // SOUND (control): each route alone checks its own :orgId.
  it('control: an org-a token reads org-a, not org-b, on either route alone', async () => {
    expect((await get('/files/org-a/readme')).status).toBe(200);
    expect((await get('/files/org-b/readme')).status).toBe(403);
  });

  // FIXED (session 29), was FAULT: the memo took (requirements, handler) for the route, but an inherited handler is one function on two routes: org-a's token reads org-b's export after @Next().
  // adapters/nestjs/index.ts:164 (`memo.handler === handler`): Files hands /files/org-a/org-b on
  // (its :orgId org-a passed); Exports' guard finds the same requirements object and the same
  // prototype method, and skips, though its :orgId is org-b.
  it("an inherited handler handed on to the sibling controller's route checks that route's org", async () => {
    const answer = await get('/files/org-a/org-b');
    // Observed: 200 {"org":"org-b","tokenOrg":"org-a","secret":"data of org-b"}.
    expect(answer.status).toBe(403);
  });
});

describe('3ef2625: one handler method with two paths, @Next()', () => {
  const OrgRoute = RequireAuth({ organization: (req) => req.params.orgId });

  @Controller()
  class Reports {
    // One method: an organization's named report, and (second path) the latest report an
    // organization shares with another (`:owner`). A name it does not know is handed on.
    @Get(['orgs/:orgId/reports/:name', 'orgs/:owner/reports/:orgId'])
    @OrgRoute
    report(
      @Param() params: Record<string, string>,
      @Res() res: express.Response,
      @Next() next: () => void,
    ) {
      if (params.name !== undefined && !['q1', 'q2'].includes(params.name)) return next();
      res.json({ org: params.orgId, secret: `report of ${params.orgId}` });
    }
  }

  const { get } = orgApi(Reports);

  it('control: org-a reads its own report, not org-b', async () => {
    expect((await get('/orgs/org-a/reports/q1')).status).toBe(200);
    expect((await get('/orgs/org-b/reports/q1')).status).toBe(403);
  });

  // FIXED (session 29), was FAULT: the same handler on its second path skipped the check: /orgs/org-a/reports/org-b passes as org-a on path 1, then path 2 (orgId org-b) runs unchecked.
  it("the second path of the same handler checks that path's org", async () => {
    const answer = await get('/orgs/org-a/reports/org-b');
    // Observed: 200 {"org":"org-b","secret":"report of org-b"}.
    expect(answer.status).toBe(403);
  });
});
