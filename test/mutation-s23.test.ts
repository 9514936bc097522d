/**
 * Session 23 mutation pass: one test per trust-critical check that a deliberate break of it
 * (a mutant of src/) left every other test passing. Each test passes on the current sources and
 * fails on its mutant (named in the test). Static key sets only: no network, no timers.
 */
import { KeyObject, sign } from 'node:crypto';
import { exportJWK } from 'jose';
import type { JWK } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { dpopFixture, dpopRequest, makeProofKey, proof } from './helpers/dpop.ts';
import type { DpopFixture, ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

const staticVerifier = (keys: JWK[], options: Partial<VerifierOptions> = {}) =>
  createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys }, cache: false, ...options });

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => new Error('expected a refusal, got a verified token'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

describe('token signature encoding', () => {
  let es256: TestKey;
  let ps256: TestKey;
  beforeAll(async () => {
    [es256, ps256] = await Promise.all([makeKey('ES256'), makeKey('PS256')]);
  });

  // Mutant: token.ts COMPACT_JWS accepts `=` in the signature segment.
  it('a signature written with base64 padding is malformed, not a second spelling of a valid token', async () => {
    const verifier = staticVerifier([es256.jwk]);
    const token = await mint(es256);
    // 64 octets: 86 characters, so padding would add `==`.
    expect(token.length - token.lastIndexOf('.') - 1).toBe(86);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    const error = await refusal(verifier.verify(`${token}==`));
    expect(error.reason).toBe('malformed_token');
  });

  // Mutant: signature.ts PS256 verified with saltLength auto-detection (RSA_PSS_SALTLEN_AUTO).
  it('PS256: only a PSS signature whose salt is the hash length verifies (RFC 7518 §3.5)', async () => {
    const verifier = staticVerifier([ps256.jwk]);
    const privateKey = KeyObject.from(ps256.privateKey);
    const withSalt = (saltLength: number) => {
      const input = `${b64url(JSON.stringify({ alg: 'PS256', typ: 'at+jwt', kid: ps256.kid }))}.${b64url(JSON.stringify(m2mClaims()))}`;
      const signature = sign('sha256', Buffer.from(input), {
        key: privateKey,
        padding: 6, // RSA_PKCS1_PSS_PADDING
        saltLength,
      });
      return `${input}.${b64url(signature)}`;
    };
    expect(await outcome(verifier.verify(withSalt(32)))).toBe('ok');
    for (const saltLength of [0, 20, 64]) {
      const error = await refusal(verifier.verify(withSalt(saltLength)));
      expect(error.reason, `salt ${saltLength}`).toBe('bad_signature');
    }
  });
});

describe('keys sharing one kid', () => {
  // Mutant: key-set.ts #select no longer refuses a kid listed more than MAX_CANDIDATES (8) times
  // before selecting: with only 8 of the 9 fitting the algorithm, the later count passed.
  it('a kid listed nine times is refused even when only eight of its keys fit the algorithm', async () => {
    const ec = await Promise.all(Array.from({ length: 8 }, () => makeKey('ES256', 'crowded')));
    const rsa = await makeKey('RS256', 'crowded');
    const token = await mint(ec[0] as TestKey);
    const verifier = staticVerifier([...ec.map((k) => k.jwk), rsa.jwk]);
    const error = await refusal(verifier.verify(token));
    expect(error.reason).toBe('key_mismatch');
    expect(error.details).toMatchObject({ keys: 9 });
    // Control: the same token with one key fewer under the kid verifies.
    const fewer = staticVerifier(ec.map((k) => k.jwk));
    expect(await outcome(fewer.verify(token))).toBe('ok');
  });
});

describe('DPoP proofs', () => {
  let fx: DpopFixture;
  let holder: ProofKey;
  beforeAll(async () => {
    [fx, holder] = await Promise.all([dpopFixture(), makeProofKey()]);
  });

  // Mutant: dpop-jws.ts checkProofHeader lowercases no more: `typ` compared case-sensitively.
  it('the proof typ is a media type: compared without case (RFC 7515 §4.1.9)', async () => {
    const token = await fx.bound(holder);
    for (const typ of ['DPoP+JWT', 'Application/DPoP+jwt']) {
      const p = await proof(holder, 'GET', 'https://api.shop.example/products', token, {
        header: { typ },
      });
      expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p))), typ).toBe('ok');
    }
  });

  // Mutant: dpop-jws.ts no longer refuses private members itself; the import then refuses a
  // private key for another reason, so only the operator's detail tells the two apart.
  it('a proof jwk carrying a private member is refused by name, before any import', async () => {
    const token = await fx.bound(holder);
    const { d } = await exportJWK(holder.privateKey);
    const p = await proof(holder, 'GET', 'https://api.shop.example/products', token, {
      header: { jwk: { ...holder.publicJwk, d } },
    });
    const error = await refusal(fx.verifier.authenticate(dpopRequest(token, p)));
    expect(error.reason).toBe('dpop_proof_invalid');
    expect(error.details).toMatchObject({ problem: 'jwk holds a private key', members: ['d'] });
  });

  // Mutant: dpop-request.ts readOneHeader takes the first of a headers record's array.
  it('two DPoP proofs as an array in a headers record are 400, never the first of them', async () => {
    const token = await fx.bound(holder);
    const url = 'https://api.shop.example/products';
    const [first, second] = await Promise.all([
      proof(holder, 'GET', url, token),
      proof(holder, 'GET', url, token),
    ]);
    const request = (dpop: string[]) => ({
      method: 'GET',
      url: '/products',
      headers: { host: 'api.shop.example', authorization: `DPoP ${token}`, dpop },
    });
    expect(
      await outcome(fx.verifier.authenticate(request([first as string, second as string]))),
    ).toBe('400 dpop_multiple_proofs');
    // Control: one proof in an array is one proof.
    expect(await outcome(fx.verifier.authenticate(request([second as string])))).toBe('ok');
  });

  // Mutant: dpop-request.ts hostOf answers the Host field when Host and :authority disagree.
  it('trustHost: Host and :authority that disagree name no host, so no proof can match', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [fx.issuerKey.jwk] },
      dpop: { trustHost: true },
    });
    const token = await fx.bound(holder);
    const request = async (host: string, authority: string, htuHost: string) => {
      const p = await proof(holder, 'GET', `https://${htuHost}/products`, token);
      return outcome(
        verifier.authenticate({
          method: 'GET',
          url: '/products',
          // As node's HTTP/2 compatibility API gives them: both views of the same fields.
          headers: {
            host,
            ':authority': authority,
            authorization: `DPoP ${token}`,
            dpop: p,
          },
          rawHeaders: [
            'Host',
            host,
            ':authority',
            authority,
            'Authorization',
            `DPoP ${token}`,
            'DPoP',
            p,
          ],
        }),
      );
    };
    expect(await request('api.shop.example', 'evil.example', 'api.shop.example')).toBe(
      '401 dpop_htu_mismatch',
    );
    expect(await request('api.shop.example', 'evil.example', 'evil.example')).toBe(
      '401 dpop_htu_mismatch',
    );
    // Control: the two agreeing (up to case) name the host.
    expect(await request('api.shop.example', 'API.shop.example', 'api.shop.example')).toBe('ok');
  });
});

describe('revocation memo', () => {
  // Mutant: revocation.ts #settle lets a slow "not revoked", asked before another request's
  // "revoked" landed, answer its own request with a pass.
  it('a slow "not revoked" that lands after a "revoked" for the same token refuses its request', async () => {
    const key = await makeKey('ES256');
    const answers: ((revoked: boolean) => void)[] = [];
    const verifier = staticVerifier([key.jwk], {
      revocationMemo: 60,
      isRevoked: () => new Promise<boolean>((resolve) => answers.push(resolve)),
    });
    const token = await mint(key);
    const slow = outcome(verifier.verify(token));
    const fast = outcome(verifier.verify(token));
    await vi.waitFor(() => expect(answers).toHaveLength(2));
    answers[1]?.(true);
    expect(await fast).toBe('401 revoked');
    answers[0]?.(false);
    expect(await slow).toBe('401 revoked');
    // And the memo keeps the revocation: no further question is asked.
    expect(await outcome(verifier.verify(token))).toBe('401 revoked');
    expect(answers).toHaveLength(2);
  });
});
