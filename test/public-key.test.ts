/**
 * src/public-key.ts: what a public JWK is worth trusting, judged the same way on every runtime.
 * An RSA key's size is its modulus's value, however `n` is written: zero octets in front of it
 * (which an attacker can add to make a 1024-bit key pass a length check) count for nothing.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { calculateJwkThumbprint } from 'jose';
import { describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import {
  hasCanonicalMembers,
  rsaModulusBits,
  weakKeyProblem,
  withCanonicalMembers,
} from '../src/public-key.ts';
import { ED25519_SMALL_ORDER, emsaPkcs1Sha256 } from './helpers/forgeries.ts';
import {
  dpopFixture,
  dpopRequest,
  makeProofKey,
  ORIGIN,
  proof,
  proofClaims,
} from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';

const keys = [1024, 2048, 3072].map((modulusLength) => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength });
  return { modulusLength, n: publicKey.export({ format: 'jwk' }).n as string };
});

const padded = (n: string, zeros: number) =>
  Buffer.concat([Buffer.alloc(zeros), Buffer.from(n, 'base64url')]).toString('base64url');

describe('rsaModulusBits', () => {
  it("is node's modulusLength, with any number of leading zero octets", () => {
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.nat({ max: 300 }), (key, zeros) => {
        expect(rsaModulusBits(padded(key.n, zeros))).toBe(key.modulusLength);
      }),
      { seed: 20, numRuns: 200 },
    );
  });

  it('counts the bits of any big-endian value', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const value = BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
        expect(rsaModulusBits(Buffer.from(bytes).toString('base64url'))).toBe(
          value === 0n ? 0 : value.toString(2).length,
        );
      }),
      { seed: 21, numRuns: 300 },
    );
  });

  it('is 0 for what is not unpadded base64url', () => {
    for (const n of [undefined, 42, '', 'AAAA', 'A', 'ABCDE', '====', 'ab cd', 'ab.cd', 'ab=cd']) {
      expect(rsaModulusBits(n)).toBe(0);
    }
  });

  it('reads `=` padding and the `+/` alphabet as a key import does: the value counts, not the spelling', () => {
    for (const key of keys) {
      const bytes = Buffer.from(key.n, 'base64url');
      expect(rsaModulusBits(bytes.toString('base64'))).toBe(key.modulusLength);
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const value = Buffer.from(bytes);
        expect(rsaModulusBits(value.toString('base64'))).toBe(
          rsaModulusBits(value.toString('base64url')),
        );
      }),
      { seed: 22, numRuns: 300 },
    );
  });
});

/** A token "signed" for an RSA key with e = 1: the signature is the encoded digest, no key needed. */
function forgedForExponentOne(kid: string, claims: Record<string, unknown>): string {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(emsaPkcs1Sha256(input))}`;
}

const okp = (x: Buffer) => ({ kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') });

describe('weakKeyProblem: keys anyone can sign for, refused on every runtime', () => {
  const n = keys[1]!.n;
  it('an RSA exponent that is not odd and at least 3', () => {
    for (const e of ['', 'AA', 'AQ', 'AAE', 'AAAB', 'Ag', 'AQAA', 'AAAAAA']) {
      expect(weakKeyProblem({ kty: 'RSA', n, e }), e).toMatch(/exponent/);
    }
    for (const e of ['Aw', 'AQAB', 'AAEAAQ', 'AQAB=', 'Aw==', 'AQAAAAE']) {
      expect(weakKeyProblem({ kty: 'RSA', n, e }), e).toBeUndefined();
    }
    expect(weakKeyProblem({ kty: 'RSA', n, e: 1 })).toMatch(/not base64url/);
    // Any e ≡ 1 mod λ(n) is as forgeable as 1, and at least λ(n) + 1: over 2^256, refused.
    expect(
      weakKeyProblem({ kty: 'RSA', n, e: Buffer.alloc(33, 0xff).toString('base64url') }),
    ).toMatch(/exponent/);
    expect(
      weakKeyProblem({ kty: 'RSA', n, e: Buffer.alloc(32, 0xff).toString('base64url') }),
    ).toBeUndefined();
    expect(weakKeyProblem({ kty: 'RSA', n, e: `AQAB${'A'.repeat(300)}` })).toMatch(/exponent/);
  });

  it('an Ed25519 key of small order, either sign bit, written any way', () => {
    for (const hex of ED25519_SMALL_ORDER) {
      const x = Buffer.from(hex, 'hex');
      const flipped = Buffer.from(x);
      flipped[31] = (flipped[31] as number) ^ 0x80;
      expect(weakKeyProblem(okp(x)), hex).toMatch(/small order/);
      expect(weakKeyProblem(okp(flipped)), `${hex} signed`).toMatch(/small order/);
      expect(weakKeyProblem({ ...okp(x), x: `${x.toString('base64')}` }), `${hex} base64`).toMatch(
        /small order/,
      );
    }
  });

  it('real keys pass: generated Ed25519, EC and RSA keys', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), () => {
        const { publicKey } = generateKeyPairSync('ed25519');
        expect(weakKeyProblem(publicKey.export({ format: 'jwk' }))).toBeUndefined();
      }),
      { seed: 21, numRuns: 50 },
    );
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(weakKeyProblem(publicKey.export({ format: 'jwk' }))).toBeUndefined();
    expect(weakKeyProblem({ kty: 'RSA', n, e: 'AQAB' })).toBeUndefined();
  });
});

describe('canonical members: one spelling of a key for every runtime', () => {
  it('withCanonicalMembers rewrites +/ and = into unpadded base64url, the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (bytes) => {
        const canonical = Buffer.from(bytes).toString('base64url');
        const base64 = Buffer.from(bytes).toString('base64');
        const jwk = { kty: 'EC', x: base64, y: 'AQAB=' };
        const fixed = withCanonicalMembers(jwk);
        expect(fixed).toEqual({ kty: 'EC', x: canonical, y: 'AQAB' });
        expect(hasCanonicalMembers(fixed)).toBe(true);
        expect(hasCanonicalMembers(jwk)).toBe(base64 === canonical && false);
        expect(withCanonicalMembers(fixed)).toBe(fixed);
      }),
      { seed: 22, numRuns: 300 },
    );
  });

  it("an RSA key's n and e in their fewest octets: one key however it is written", () => {
    const n = keys[1]!.n;
    const zeros = Buffer.concat([Buffer.alloc(3), Buffer.from(n, 'base64url')]).toString('base64');
    expect(withCanonicalMembers({ kty: 'RSA', n: zeros, e: 'AAEAAQ' })).toEqual({
      kty: 'RSA',
      n,
      e: 'AQAB',
    });
    const same = { kty: 'RSA', n, e: 'AQAB' };
    expect(withCanonicalMembers(same)).toBe(same);
    // EC coordinates keep their length, leading zero octets included.
    const ec = { kty: 'EC', crv: 'P-256', x: Buffer.alloc(32).toString('base64url'), y: 'AAAB' };
    expect(withCanonicalMembers(ec)).toBe(ec);
  });

  it('a member with non-zero trailing bits or of length 4n+1 is not canonical', () => {
    expect(hasCanonicalMembers({ kty: 'OKP', x: 'AB' })).toBe(false); // trailing bits
    expect(hasCanonicalMembers({ kty: 'OKP', x: 'AAAAA' })).toBe(false); // 4n+1
    expect(hasCanonicalMembers({ kty: 'OKP', x: 'AA' })).toBe(true);
    expect(hasCanonicalMembers({ kty: 'OKP', x: 7 })).toBe(false);
  });
});

describe('through the verifier (Node)', () => {
  it('Was a bug: a JWKS RSA key with e = 1 verified a token anyone can forge (OpenSSL accepts it); now the key is never trusted', async () => {
    const kid = 'e1';
    const claims = m2mClaims();
    const token = forgedForExponentOne(kid, claims);
    const jwk = { kty: 'RSA', kid, n: keys[1]!.n, e: 'AQ', alg: 'RS256', use: 'sig' };
    // The static set with only that key is no set at all...
    expect(() =>
      createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [jwk] } }),
    ).toThrow(/no usable public signing key/);
    // ...and beside a good key, the weak one verifies nothing.
    const good = await makeKey('ES256');
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [good.jwk, jwk] },
    });
    await expect(verifier.verify(token)).rejects.toMatchObject({ status: 401 });
    await expect(verifier.verify(await mint(good))).resolves.toMatchObject({
      clientId: expect.any(String),
    });
  });

  it('a JWKS key written in base64 (+/ and =) verifies as its canonical spelling does', async () => {
    const key = await makeKey('ES256');
    const spelled = {
      ...key.jwk,
      x: Buffer.from(key.jwk.x as string, 'base64url').toString('base64'),
      y: Buffer.from(key.jwk.y as string, 'base64url').toString('base64'),
    };
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [spelled] },
    });
    await expect(verifier.verify(await mint(key))).resolves.toMatchObject({
      scopes: expect.any(Array),
    });
  });

  it('Was a bug: a DPoP proof whose jwk has e = 1 (anyone can sign for it), or is spelled in base64, is a malformed proof', async () => {
    const fixture = await dpopFixture();
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = publicKey.export({ format: 'jwk' }).n as string;
    const jwkE1 = { kty: 'RSA', n, e: 'AQ' };
    const jkt = await calculateJwkThumbprint(jwkE1, 'sha256');
    const token = await mint(fixture.issuerKey, m2mClaims({ cnf: { jkt } }));
    const payload = proofClaims('GET', `${ORIGIN}/products`, token);
    const input = `${b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'RS256', jwk: jwkE1 }))}.${b64url(JSON.stringify(payload))}`;
    const forged = `${input}.${b64url(emsaPkcs1Sha256(input))}`;
    const refusal = await fixture.verifier
      .authenticate(dpopRequest(token, forged))
      .catch((e: unknown) => e);
    expect(refusal).toMatchObject({
      reason: 'dpop_proof_invalid',
      details: { problem: expect.stringMatching(/weak key/) },
    });

    const proofKey = await makeProofKey();
    const base64Jwk = {
      ...proofKey.publicJwk,
      x: Buffer.from(proofKey.publicJwk.x as string, 'base64url').toString('base64'),
    };
    const bound = await fixture.bound(proofKey);
    const spelledProof = await proof(proofKey, 'GET', `${ORIGIN}/products`, bound, {
      header: { jwk: base64Jwk },
    });
    // Only a spelling that differs is refused: the x of this key in base64 may equal base64url.
    if (base64Jwk.x !== proofKey.publicJwk.x) {
      const spelledRefusal = await fixture.verifier
        .authenticate(dpopRequest(bound, spelledProof))
        .catch((e: unknown) => e);
      expect(spelledRefusal).toMatchObject({ reason: 'dpop_proof_invalid' });
    }
  });

  it('a DPoP proof whose jwk is a small-order Ed25519 key is a malformed proof', async () => {
    const fixture = await dpopFixture();
    const jwk = okp(Buffer.from(ED25519_SMALL_ORDER[1] as string, 'hex'));
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    const token = await mint(fixture.issuerKey, m2mClaims({ cnf: { jkt } }));
    const payload = proofClaims('GET', `${ORIGIN}/products`, token);
    // R = the identity, S = 0: valid for every message under a small-order key on BoringSSL.
    const signature = Buffer.concat([
      Buffer.from(ED25519_SMALL_ORDER[1] as string, 'hex'),
      Buffer.alloc(32),
    ]);
    const forged = rawToken({ typ: 'dpop+jwt', alg: 'EdDSA', jwk }, payload, b64url(signature));
    const refusal = await fixture.verifier
      .authenticate(dpopRequest(token, forged))
      .catch((e: unknown) => e);
    expect(refusal).toMatchObject({
      reason: 'dpop_proof_invalid',
      details: { problem: expect.stringMatching(/small order/) },
    });
  });
});
