/**
 * Review of 17c5ddc (src/public-key.ts): keys anyone can sign for, canonical JWK spellings, DPoP
 * proof keys. What it found (a `Was a bug:` note each) was fixed in the same session; the other tests
 * are properties that held.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint } from 'jose';
import type { JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import { RemoteKeySet } from '../src/key-set.ts';
import { usableKeys } from '../src/key-source.ts';
import { hasCanonicalMembers, weakKeyProblem, withCanonicalMembers } from '../src/public-key.ts';
import {
  dpopFixture,
  dpopRequest,
  makeProofKey,
  ORIGIN,
  proof,
  proofClaims,
} from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import { ED25519_SMALL_ORDER, emsaPkcs1Sha256 } from './helpers/forgeries.ts';

const IDENTITY = Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]); // Ed25519 identity point
const CANONICAL_IDENTITY = IDENTITY.toString('base64url');
/** R = identity, S = 0: verifies every message under a small-order key (Node's OpenSSL too). */
const SMALL_ORDER_SIG = b64url(Buffer.concat([IDENTITY, Buffer.alloc(32)]));

const toBig = (s: string) => BigInt(`0x${Buffer.from(s, 'base64url').toString('hex') || '0'}`);
function fromBig(v: bigint): string {
  const hex = v.toString(16);
  return Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex').toString('base64url');
}
const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));

/** An RS256 token whose "signature" is the encoded digest: valid under any e ≡ 1 (mod λ(n)). */
function forgedRs256(kid: string): string {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid }))}.${b64url(JSON.stringify(m2mClaims()))}`;
  return `${input}.${b64url(emsaPkcs1Sha256(input))}`;
}
const forgedEdDsa = (kid: string) =>
  rawToken({ alg: 'EdDSA', typ: 'at+jwt', kid }, m2mClaims(), SMALL_ORDER_SIG);

const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPrivate = rsa2048.privateKey.export({ format: 'jwk' });
const N = rsaPrivate.n as string;

async function verdict(keys: unknown[], token: string): Promise<string> {
  const good = await makeKey('ES256');
  const verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [good.jwk, ...(keys as (string | JWK)[])] },
  });
  return verifier.verify(token).then(
    () => 'accepted',
    (error: unknown) => (error as { reason?: string }).reason ?? String(error),
  );
}

describe('JWKS: weak keys that still get through', () => {
  // Was a bug: a small-order Ed25519 x with a character outside base64 (a '.', a space, a newline, or
  // '=' followed by anything) is no base64 to looseBytes, so weakKeyProblem says nothing and
  // withCanonicalMembers leaves it "for the import to refuse"; but Node's import (Buffer base64)
  // skips such characters and imports the identity point. R = identity, S = 0 then verifies any
  // token: anyone forges tokens for an issuer whose JWKS carries such a key (the very case the fix
  // meant to close; Node's OpenSSL accepts it too, not only BoringSSL/Deno).
  // Fix: in usableKeys, drop any key whose present n/e/x/y is not base64 (looseBytes undefined),
  // i.e. treat "undecodable" as weak for every kty, instead of leaving it to the import.
  it.each([
    'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAA',
    `${CANONICAL_IDENTITY}=junk`,
    ` ${CANONICAL_IDENTITY}`,
    `${CANONICAL_IDENTITY}\n`,
  ])('an Ed25519 identity key whose x is %j forges a token', async (x) => {
    const jwk = { kty: 'OKP', crv: 'Ed25519', kid: 'so', alg: 'EdDSA', use: 'sig', x };
    expect(await verdict([jwk], forgedEdDsa('so'))).not.toBe('accepted');
  });

  // Was a bug: weakKeyProblem only refuses e even or e = 1, but any e ≡ 1 (mod λ(n)) is a key anyone can
  // sign for in exactly the same way (s^e = s mod n: the signature is the padded digest). e = λ(n)+1
  // is odd and ≥ 3; OpenSSL accepts any e < n for moduli up to 3072 bits. An issuer key published
  // with such an exponent (misconfiguration, the same threat as e = 1) lets anyone forge.
  // Fix: also bound e (FIPS 186-5: 2^16 < e < 2^256; or the DPoP path's 6-octet limit): any e ≡ 1
  // mod λ(n) other than 1 is at least λ(n)+1 > 2^1000. It also bounds the verification cost.
  it('an RSA key with e = λ(n) + 1 (odd, ≥ 3) forges an RS256 token', async () => {
    const p = toBig(rsaPrivate.p as string);
    const q = toBig(rsaPrivate.q as string);
    const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
    const jwk = { kty: 'RSA', n: N, e: fromBig(lambda + 1n), kid: 'lam', alg: 'RS256', use: 'sig' };
    expect(await verdict([jwk], forgedRs256('lam'))).not.toBe('accepted');
  });
});

describe('JWKS: weak keys that are refused (held)', () => {
  const E1 = ['AQ', 'AQ=', 'AQ==', 'AQ===', 'AAE', 'AAAB', 'AAAAAQ', 'AA==AQ', 'AQ AB', 'A Q'];
  it.each(E1)('e = %j (an exponent of 1 however spelled) forges nothing', async (e) => {
    const jwk = { kty: 'RSA', n: N, e, kid: 'e1', alg: 'RS256', use: 'sig' };
    expect(await verdict([jwk], forgedRs256('e1'))).not.toBe('accepted');
    expect(usableKeys({ keys: [jwk] }, 'x')).toHaveLength(0);
  });

  it('e as a number, array, object, or e = 1 with PS256/RS384/RS512, key_ops, use variants', () => {
    const weak: Record<string, unknown>[] = [
      { e: 1 },
      { e: ['AQ'] },
      { e: { toString: () => 'AQAB' } },
      { e: 'AQ', alg: 'PS256' },
      { e: 'AQ', alg: 'RS384' },
      { e: 'AQ', alg: 'RS512' },
      { e: 'AQ', key_ops: ['verify'] },
      { e: 'AQ', use: 'sig' },
      { e: 'AQ', use: undefined },
      { e: 'Ag' }, // even
      { e: '' },
    ];
    for (const extra of weak) {
      expect(
        usableKeys({ keys: [{ kty: 'RSA', n: N, ...extra }] }, 'x'),
        JSON.stringify(extra),
      ).toEqual([]);
    }
    for (const use of ['SIG', 'sig ', 'enc']) {
      expect(usableKeys({ keys: [{ kty: 'RSA', n: N, e: 'AQAB', use }] }, 'x')).toEqual([]);
    }
  });

  it('duplicate members and __proto__ in JSON: the last e (1) is the one judged', () => {
    const doc = JSON.parse(
      `{"keys":[{"kty":"RSA","n":"${N}","e":"AQAB","e":"AQ"},` +
        `{"kty":"RSA","n":"${N}","__proto__":{"e":"AQAB"},"e":"AQ"},` +
        `{"kty":"RSA","n":"${N}","__proto__":{"e":"AQAB"}},` +
        `{"kty":"OKP","crv":"Ed25519","x":"${b64url(randomUUID())}","x":"${CANONICAL_IDENTITY}"}]}`,
    ) as unknown;
    expect(usableKeys(doc, 'x')).toEqual([]);
  });

  it('every small-order Ed25519 encoding, sign bit set or not, in base64url, base64, padded', async () => {
    for (const hex of ED25519_SMALL_ORDER) {
      for (const sign of [0, 0x80]) {
        const bytes = Buffer.from(hex, 'hex');
        bytes[31] = (bytes[31] as number) | sign;
        for (const x of [
          bytes.toString('base64url'),
          bytes.toString('base64'),
          `${bytes.toString('base64url')}==`,
        ]) {
          expect(weakKeyProblem({ kty: 'OKP', crv: 'Ed25519', x }), x).toMatch(/small order/);
        }
      }
    }
    const jwk = { kty: 'OKP', crv: 'Ed25519', kid: 'so', x: IDENTITY.toString('base64') };
    expect(await verdict([jwk], forgedEdDsa('so'))).not.toBe('accepted');
  });

  it('kty/crv case variants are never usable (the filter and jose both compare exactly)', () => {
    for (const [kty, crv] of [
      ['okp', 'Ed25519'],
      ['OKP', 'ed25519'],
      ['OKP', 'ED25519'],
      ['rsa', undefined],
    ]) {
      const jwk = { kty, crv, x: CANONICAL_IDENTITY, n: N, e: 'AQ' };
      expect(usableKeys({ keys: [jwk] }, 'x')).toEqual([]);
    }
  });

  it('static jwks with PEM keys: an RSA PEM with e = 1 and an Ed25519 PEM of small order are refused', async () => {
    const rsaPem = createPublicKey({ key: { kty: 'RSA', n: N, e: 'AQ' }, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const edPem = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: CANONICAL_IDENTITY },
      format: 'jwk',
    })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    for (const pem of [rsaPem, edPem]) {
      expect(() =>
        createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [pem] } }),
      ).toThrow(/no usable public signing key/);
    }
    const rsaKid = await calculateJwkThumbprint({ kty: 'RSA', n: N, e: 'AQ' });
    const edKid = await calculateJwkThumbprint({
      kty: 'OKP',
      crv: 'Ed25519',
      x: CANONICAL_IDENTITY,
    });
    expect(await verdict([rsaPem, edPem], forgedRs256(rsaKid))).not.toBe('accepted');
    expect(await verdict([rsaPem, edPem], forgedEdDsa(edKid))).not.toBe('accepted');
  });
});

/** A key set over a document the test rewrites; an unknown kid forces a refetch (cooldown 0). */
function mutableSet(initial: unknown) {
  let document = initial;
  const set = new RemoteKeySet(async () => ({ url: 'test', document }), {
    maxAge: 600,
    cooldown: 0,
    timeout: 5,
    maxStale: 600,
    fetch: globalThis.fetch,
    requestScoped: false,
  });
  return {
    set,
    replace: async (next: unknown) => {
      document = next;
      await Promise.resolve(
        set.getCandidates({ alg: 'ES256', kid: `unknown-${randomUUID()}` }),
      ).catch(() => undefined);
    },
  };
}

describe('re-encoding: what users rely on', () => {
  it('a key listed twice (base64url and base64 +/=) is one key; a refresh that rewrites the spelling keeps the same TrustedKey', async () => {
    let key = await makeKey('ES256', 'k');
    // a key whose x or y differs between base64 and base64url
    while (!/[-_]/.test(`${key.jwk.x as string}${key.jwk.y as string}`))
      key = await makeKey('ES256', 'k');
    const spelled = {
      ...key.jwk,
      x: Buffer.from(key.jwk.x as string, 'base64url').toString('base64'),
      y: `${Buffer.from(key.jwk.y as string, 'base64url').toString('base64')}`,
    };
    const { set, replace } = mutableSet({ keys: [key.jwk, spelled] });
    const first = await set.getCandidates({ alg: 'ES256', kid: 'k' });
    expect(first).toHaveLength(1);
    expect(set.published.keys).toBe(1);
    await replace({ keys: [spelled] });
    const second = await set.getCandidates({ alg: 'ES256', kid: 'k' });
    expect(second[0]?.trusted).toBe(first[0]?.trusted);
    expect(first[0]?.trusted.trusted).toBe(true);
    // the kid is the issuer's, untouched; the thumbprint of the canonical form is the key's own
    expect(first[0]?.trusted.kid).toBe('k');
    expect(withCanonicalMembers(spelled as JWK)).toMatchObject({ x: key.jwk.x, y: key.jwk.y });
  });

  it('a PEM key in the static set gets the thumbprint of its canonical JWK as kid', async () => {
    const pem = rsa2048.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const kid = await calculateJwkThumbprint({ kty: 'RSA', n: N, e: 'AQAB' });
    const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [pem] } });
    const token = await mint({
      alg: 'RS256',
      kid,
      privateKey: rsa2048.privateKey,
      jwk: {},
    } as never);
    await expect(verifier.verify(token)).resolves.toMatchObject({ scopes: expect.any(Array) });
  });

  // Was a bug (low): re-encoding makes the spelling canonical base64url but not the value's minimal
  // octets (RFC 7518 §2 Base64urlUInt): e 'AAEAAQ' (65537 with a zero octet) is canonical, so the
  // same RSA key listed as 'AQAB' and 'AAEAAQ' is two keys (health() counts 2, both are candidates
  // for its kid, counting toward MAX_CANDIDATES), and a refresh that rewrites the spelling revokes
  // the key (every cached verification it vouched for is dropped). Fix: in withCanonicalMembers,
  // strip leading zero octets of RSA n/e (keep at least one octet) before re-encoding.
  it('the same RSA key with e = AQAB and AAEAAQ is one key', async () => {
    const { set } = mutableSet({
      keys: [
        { kty: 'RSA', kid: 'r', n: N, e: 'AQAB' },
        { kty: 'RSA', kid: 'r', n: N, e: 'AAEAAQ' },
      ],
    });
    await set.getCandidates({ alg: 'RS256', kid: 'r' });
    expect(set.published.keys).toBe(1);
  });
});

describe('DPoP proof keys', () => {
  async function forgedProof(jwk: Record<string, unknown>, alg = 'EdDSA') {
    const fixture = await dpopFixture();
    const jkt = await calculateJwkThumbprint(jwk as JWK, 'sha256').catch(() => 'none');
    const token = await mint(fixture.issuerKey, m2mClaims({ cnf: { jkt } }));
    const payload = proofClaims('GET', `${ORIGIN}/products`, token);
    const forged = rawToken({ typ: 'dpop+jwt', alg, jwk }, payload, SMALL_ORDER_SIG);
    return { fixture, token, forged };
  }

  it.each([
    'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAA',
    `${CANONICAL_IDENTITY}=junk`,
    ` ${CANONICAL_IDENTITY}`,
    IDENTITY.toString('base64'),
  ])('a small-order jwk spelled %j is dpop_proof_invalid (canonical check first)', async (x) => {
    const { fixture, token, forged } = await forgedProof({ kty: 'OKP', crv: 'Ed25519', x });
    const refusal = await fixture.verifier
      .authenticate(dpopRequest(token, forged))
      .catch((e: unknown) => e);
    expect(refusal).toMatchObject({ reason: 'dpop_proof_invalid' });
  });

  it('kty/crv case variants (okp, ed25519) are refused, never imported', async () => {
    for (const jwk of [
      { kty: 'okp', crv: 'Ed25519', x: CANONICAL_IDENTITY },
      { kty: 'OKP', crv: 'ed25519', x: CANONICAL_IDENTITY },
      { kty: 'OKP', crv: 'ED25519', x: CANONICAL_IDENTITY },
    ]) {
      for (const alg of ['EdDSA', 'Ed25519']) {
        const { fixture, token, forged } = await forgedProof(jwk, alg);
        const refusal = await fixture.verifier
          .authenticate(dpopRequest(token, forged))
          .catch((e: unknown) => e);
        expect(refusal, JSON.stringify(jwk) + alg).toMatchObject({ status: expect.any(Number) });
        expect((refusal as { reason: string }).reason).toMatch(/dpop_proof_invalid|dpop_proof_alg/);
      }
    }
  });

  it('the header memo: after the canonical header is remembered, a non-canonical spelling of the same key (concurrent, twice) is still refused', async () => {
    const fixture = await dpopFixture();
    const proofKey = await makeProofKey();
    const bound = await fixture.bound(proofKey);
    const ok = await proof(proofKey, 'GET', `${ORIGIN}/products`, bound);
    await expect(fixture.verifier.authenticate(dpopRequest(bound, ok))).resolves.toBeDefined();
    const x = proofKey.publicJwk.x as string;
    const spellings = [`${x}=`, ` ${x}`, Buffer.from(x, 'base64url').toString('base64')].filter(
      (s) => s !== x,
    );
    const proofs = await Promise.all(
      [...spellings, ...spellings].map((spelled) =>
        proof(proofKey, 'GET', `${ORIGIN}/products`, bound, {
          header: { jwk: { ...proofKey.publicJwk, x: spelled } },
        }),
      ),
    );
    const outcomes = await Promise.all(
      proofs.map((p) =>
        fixture.verifier.authenticate(dpopRequest(bound, p)).catch((e: unknown) => e),
      ),
    );
    for (const outcome of outcomes) expect(outcome).toMatchObject({ reason: 'dpop_proof_invalid' });
  });
});

describe('cost', () => {
  /** The fastest of `runs` calls, ms: the least disturbed by another test file, GC or the host. */
  const time = (f: () => unknown, runs = 8) => {
    let best = Infinity;
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      f();
      best = Math.min(best, performance.now() - start);
    }
    return best;
  };
  it('weakKeyProblem, hasCanonicalMembers, withCanonicalMembers are linear: 8192-bit n, 256 KiB garbage', () => {
    const n8192 = Buffer.concat([Buffer.from([0xc1]), randomBytes(1023)]).toString('base64url');
    const big = 'A'.repeat(256 * 1024);
    const bigB64 = `${'+/'.repeat(128 * 1024)}==`;
    const garbage = `${'A'.repeat(256 * 1024 - 1)}.`;
    const half = `${'A'.repeat(128 * 1024)}`;
    const timings: Record<string, number> = {};
    const cases: Record<string, Record<string, unknown>> = {
      n8192: { kty: 'RSA', n: n8192, e: 'AQAB' },
      e256k: { kty: 'RSA', n: n8192, e: `${big.slice(1)}B` },
      eB64_256k: { kty: 'RSA', n: bigB64, e: bigB64 },
      garbage256k: { kty: 'OKP', crv: 'Ed25519', x: garbage, n: garbage, e: garbage, y: garbage },
      eq128k: { kty: 'RSA', n: half, e: `${'='.repeat(128 * 1024)}` },
    };
    for (const [name, jwk] of Object.entries(cases)) {
      timings[`weak ${name}`] = time(() => weakKeyProblem(jwk));
      timings[`canonical? ${name}`] = time(() => hasCanonicalMembers(jwk));
      timings[`canonicalize ${name}`] = time(() => withCanonicalMembers(jwk as JWK));
    }
    // 16 times the input: linear is about 16 times the time (up to 52 measured on a loaded CI
    // machine: memory, not the algorithm); a quadratic step would be 256 times.
    const small = { kty: 'RSA', n: bigB64.slice(0, 16 * 1024), e: bigB64.slice(0, 16 * 1024) };
    const large = { kty: 'RSA', n: bigB64, e: bigB64 };
    timings['canonicalize 16k'] = time(() => withCanonicalMembers(small as JWK));
    timings['canonicalize 256k'] = time(() => withCanonicalMembers(large as JWK));
    console.log(
      JSON.stringify(
        timings,
        (_, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(3)) : v),
        1,
      ),
    );
    // At most the 256 KiB a JWKS body may be, read once per fetch: ~100 ms for two 256 KiB
    // `+/` members (decode + re-encode), linear.
    for (const ms of Object.values(timings)) expect(ms).toBeLessThan(1000);
    expect(timings['canonicalize 256k']!).toBeLessThan(timings['canonicalize 16k']! * 128 + 1);
  });
});
