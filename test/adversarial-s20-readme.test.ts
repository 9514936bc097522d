/**
 * Adversarial review, session 20 — README.md and CONFORMANCE.md read as a contract. Each test
 * cites the claim it holds the library to. `it.fails` marks a confirmed divergence (the test
 * asserts the DOCUMENTED behaviour; `// BUG:` says what happens instead); `// DOC:` marks a
 * test of the actual (stricter or equally safe) behaviour where the README's wording is wrong.
 */
import { createHash, createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt } from 'jose';
import type { JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { createDpopKey, createTestIssuer } from 'resource-guard/testing';
import { dpopFixture, dpopRequest, ORIGIN } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, makeKey, m2mClaims, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

/** An RSA key pair of `bits`, its public JWK as node exports it. */
function rsa(bits: number): { privateKey: KeyObject; jwk: JWK } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, jwk: publicKey.export({ format: 'jwk' }) as JWK };
}

/**
 * The same public key with its modulus written on 256 octets (leading zero octets): what a JWKS
 * or a proof's `jwk` can carry. Node imports it as the 1024-bit key it is.
 */
function zeroPadded(jwk: JWK): JWK {
  const n = Buffer.from(jwk.n as string, 'base64url');
  const padded = Buffer.concat([Buffer.alloc(256 - n.length), n]).toString('base64url');
  return { kty: 'RSA', e: jwk.e as string, n: padded };
}

/** A compact JWS over `header`.`payload`, RS256 (RSASSA-PKCS1-v1_5 SHA-256) with node:crypto. */
function signRs256(privateKey: KeyObject, header: object, payload: object): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createSign('sha256').update(input).sign(privateKey).toString('base64url')}`;
}

let small: { privateKey: KeyObject; jwk: JWK };
let big: { privateKey: KeyObject; jwk: JWK };
let es: TestKey;

beforeAll(async () => {
  small = rsa(1024);
  big = rsa(2048);
  es = await makeKey('ES256');
});

// ---------------------------------------------------------------------------------------------
// RSA keys under 2048 bits
// ---------------------------------------------------------------------------------------------

describe('RSA keys under 2048 bits are refused (README "Reliability": RSA under 2048 bits (refused); CONFORMANCE RFC 8725 §3.2)', () => {
  it('control (holds): a static set holding only a plainly written 1024-bit RSA key is a TypeError at start-up', () => {
    // README "Static keys": "a set with no usable public signing key is a TypeError at start-up".
    expect(() =>
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [{ ...small.jwk, kid: 'small', alg: 'RS256', use: 'sig' }] },
      }),
    ).toThrow(TypeError);
  });

  // Was a bug: the size was judged by the length of `n` as written (key-source.ts usableKeys), so
  // a 1024-bit modulus zero-padded to 256 octets counted as 2048 bits: createVerifier() succeeded.
  it('a static set holding only a 1024-bit RSA key whose n is zero-padded to 256 octets is a TypeError', () => {
    expect(() =>
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [{ ...zeroPadded(small.jwk), kid: 'small', alg: 'RS256', use: 'sig' }] },
      }),
    ).toThrow(TypeError);
  });

  // Was a bug: the padded key was kept in the set (health counted it); a token it signed was
  // answered 503 crypto_unavailable ("this runtime could not verify a signature at all") with
  // Retry-After, where an ignored key gives 401 (unknown_kid). Operators were told their
  // runtime's crypto was broken; clients were told to retry a token that will never pass.
  it('a token signed by a zero-padded 1024-bit RSA key from a fetched JWKS is a 401, never a 503', async () => {
    const jwks = {
      keys: [
        { ...zeroPadded(small.jwk), kid: 'small', alg: 'RS256', use: 'sig' },
        es.jwk, // a good key beside it: the set itself is usable
      ],
    };
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: 'https://tenant.example.test/oidc/jwks',
      fetch: async () => Response.json(jwks),
    });
    const token = signRs256(
      small.privateKey,
      { alg: 'RS256', typ: 'at+jwt', kid: 'small' },
      m2mClaims(),
    );
    expect(await outcome(verifier.verify(token))).toMatch(/^401 /);
    // README "Fixed limits": RSA under 2048 bits is "ignored" like any unusable key.
    expect(verifier.health()[0]?.keys).toBe(1);
  });

  it('control (holds): a token signed by a 2048-bit RSA key from the same kind of set is accepted', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [{ ...big.jwk, kid: 'big', alg: 'RS256', use: 'sig' }] },
    });
    const token = signRs256(
      big.privateKey,
      { alg: 'RS256', typ: 'at+jwt', kid: 'big' },
      m2mClaims(),
    );
    expect(await outcome(verifier.verify(token))).toBe('ok');
  });
});

describe('DPoP proof keys: RSA from 2048 bits (CONFORMANCE RFC 9449 §4.3 (6)-(7); README troubleshooting dpop_proof_invalid)', () => {
  /** A bound token and an RS256 proof for GET /products signed with `privateKey`, `jwk` in its header. */
  async function rsaProofRequest(privateKey: KeyObject, jwk: JWK) {
    const fx = await dpopFixture();
    const jkt = await calculateJwkThumbprint(jwk);
    const token = await mint(fx.issuerKey, m2mClaims({ cnf: { jkt } }));
    const proof = signRs256(
      privateKey,
      { typ: 'dpop+jwt', alg: 'RS256', jwk },
      {
        jti: randomUUID(),
        htm: 'GET',
        htu: `${ORIGIN}/products`,
        iat: Math.floor(Date.now() / 1000),
        ath: createHash('sha256').update(token).digest('base64url'),
      },
    );
    return { verifier: fx.verifier, request: dpopRequest(token, proof) };
  }

  it('control (holds): a 2048-bit RSA proof key is accepted', async () => {
    const { verifier, request } = await rsaProofRequest(big.privateKey, {
      kty: 'RSA',
      e: big.jwk.e as string,
      n: big.jwk.n as string,
    });
    expect(await outcome(verifier.authenticate(request))).toBe('ok');
  });

  it('control (holds): a plainly written 1024-bit RSA proof key is 401 dpop_proof_invalid', async () => {
    const { verifier, request } = await rsaProofRequest(small.privateKey, {
      kty: 'RSA',
      e: small.jwk.e as string,
      n: small.jwk.n as string,
    });
    expect(await outcome(verifier.authenticate(request))).toBe('401 dpop_proof_invalid');
  });

  // Was a bug: the client's own 1024-bit key with n zero-padded to 342 base64url characters passed
  // the length check (dpop-jws.ts MIN_RSA_N), node's route skipped it (under 2048 bits), jose
  // refused it with a TypeError, and viaJose reported that as 503 crypto_unavailable
  // (Retry-After: 30): any client could make the API answer 503 and report its crypto as broken.
  it('a zero-padded 1024-bit RSA proof key is 401 invalid_dpop_proof, never a 503', async () => {
    const { verifier, request } = await rsaProofRequest(small.privateKey, zeroPadded(small.jwk));
    const error = await verifier.authenticate(request).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).status).toBe(401);
    expect((error as AuthError).code).toBe('invalid_dpop_proof');
  });
});

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

describe('resourceMetadata.resource (CONFORMANCE RFC 9728 §1.2: "A URL with a query or fragment is refused at start-up")', () => {
  const options = (resource: string): VerifierOptions => ({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [es.jwk] },
    resourceMetadata: { resource },
  });

  it('control (holds): a non-empty query or fragment is a TypeError', () => {
    expect(() => createVerifier(options('https://shopping.api/?v=1'))).toThrow(TypeError);
    expect(() => createVerifier(options('https://shopping.api/#top'))).toThrow(TypeError);
  });

  // Was a bug: the check read URL.search / URL.hash, which are '' for a bare '?' or '#': the
  // resource was accepted and published as written ("resource": "https://shopping.api/?").
  it('an empty query ("?") or an empty fragment ("#") is refused too', () => {
    expect(() => createVerifier(options('https://shopping.api/?'))).toThrow(TypeError);
    expect(() => createVerifier(options('https://shopping.api/#'))).toThrow(TypeError);
  });
});

describe('maxTokenAge (README options table: "Refuse tokens whose `iat` is older than this")', () => {
  const verifier = () =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [es.jwk] },
      maxTokenAge: 60,
    });
  const aged = (seconds: number) =>
    mint(es, m2mClaims({ iat: Math.floor(Date.now() / 1000) - seconds }));

  it('control (holds): a token 70 s old (past maxTokenAge + clockTolerance) is 401 token_too_old', async () => {
    expect(await outcome(verifier().verify(await aged(70)))).toBe('401 token_too_old');
  });

  // DOC (fixed): clockTolerance (5 s) is allowed on top of maxTokenAge, for the issuer's clock, as
  // jose does; the README now says so. 63 s passes a 60 s limit, 66 s does not.
  it('maxTokenAge allows clockTolerance on top: 63 s passes 60 + 5, 66 s does not', async () => {
    expect(await outcome(verifier().verify(await aged(63)))).toBe('ok');
    expect(await outcome(verifier().verify(await aged(66)))).toBe('401 token_too_old');
  });
});

describe('option errors (README "createVerifier(options)")', () => {
  it('a misspelt nested option names its path and suggests the right one', () => {
    // README: "`keys.coolDown` is not an option: did you mean `keys.cooldown`?"
    // DOC: the message reads "`keys.coolDown` is not a `keys` option; did you mean `keys.cooldown`?"
    expect(() =>
      createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { coolDown: 1 } } as never),
    ).toThrow(/`keys\.coolDown` is not a `keys` option; did you mean `keys\.cooldown`\?/);
  });
});

describe('realm (README options table: "realm | the first audience")', () => {
  it('the default realm is the first audience that can be quoted, not the first audience', async () => {
    // DOC: README says "the first audience"; a first audience that would break the quoted header
    // (a `"`) is skipped for the next one (safer; the README should say so).
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: ['urn:"odd"', AUDIENCE],
      jwks: { keys: [es.jwk] },
    });
    const error = await verifier.authenticate({ headers: {} }).catch((e: unknown) => e);
    expect((error as AuthError).headers['www-authenticate']).toBe(`Bearer realm="${AUDIENCE}"`);
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP answers table
// ---------------------------------------------------------------------------------------------

describe('HTTP answers table', () => {
  it('"with dpop: the replay store cannot answer" is 503, Retry-After: 5, no challenge, no-store', async () => {
    const fx = await dpopFixture({
      dpop: {
        origin: ORIGIN,
        replay: {
          insertIfAbsent: () => {
            throw new Error('store down');
          },
        },
      },
    });
    const key = await createDpopKey();
    const token = await mint(fx.issuerKey, m2mClaims({ cnf: { jkt: key.jkt } }));
    const headers = await key.headers(token, { method: 'GET', url: `${ORIGIN}/products` });
    const error = await fx.verifier
      .authenticate({ method: 'GET', url: '/products', headers })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    const { status, reason, body } = error as AuthError;
    expect([status, reason, body.error]).toEqual([
      503,
      'dpop_replay_unavailable',
      'temporarily_unavailable',
    ]);
    expect((error as AuthError).headers).toEqual({
      'cache-control': 'no-store',
      'retry-after': '5',
    });
  });

  it('"no Authorization header" on a DPoP-required verifier: 401 missing_token, the DPoP challenge alone', async () => {
    // README HTTP answers: "a `DPoP realm="…", algs="…"` challenge joins (or, where DPoP is
    // required, replaces) the `Bearer` one"; no error code for a request without credentials.
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [es.jwk] },
      dpop: { origin: ORIGIN, mode: 'required', algorithms: ['ES256'] },
    });
    const error = (await verifier
      .authenticate({ method: 'GET', url: '/products', headers: {} })
      .catch((e: unknown) => e)) as AuthError;
    expect([error.status, error.reason]).toEqual([401, 'missing_token']);
    expect(error.headers['www-authenticate']).toBe(`DPoP realm="${AUDIENCE}", algs="ES256"`);
  });
});

// ---------------------------------------------------------------------------------------------
// resource-guard/testing
// ---------------------------------------------------------------------------------------------

describe('resource-guard/testing mint() (README "Testing your API")', () => {
  it('expiresIn: -60 gives an expired token (401 expired)', async () => {
    const testIssuer = await createTestIssuer();
    const verifier = createVerifier({ ...testIssuer.verifierOptions });
    expect(await outcome(verifier.verify(await testIssuer.mint({ expiresIn: -60 })))).toBe(
      '401 expired',
    );
  });

  it('expiresIn: -5 is already refused: the 5 s leeway does not accept it', async () => {
    // DOC: README's mint() table says "the verifier's 5 s leeway accepts `-5`" (so does the
    // MintOptions doc comment). exp = now - 5 is refused (`exp <= now - clockTolerance`: RFC 7519
    // wants now < exp + leeway), whatever the sub-second timing; -4 is the last value accepted.
    const testIssuer = await createTestIssuer();
    const verifier = createVerifier({ ...testIssuer.verifierOptions });
    expect(await outcome(verifier.verify(await testIssuer.mint({ expiresIn: -5 })))).toBe(
      '401 expired',
    );
  });

  it('mint() does make DPoP-bound (cnf) tokens, refused as Bearer', async () => {
    // DOC: README "What it does not do" lists "no DPoP-bound (`cnf`) tokens", yet the section
    // above it (and createDpopKey) mints them with `claims: { cnf: { jkt } }`.
    const testIssuer = await createTestIssuer();
    const key = await createDpopKey();
    const token = await testIssuer.mint({ claims: { cnf: { jkt: key.jkt } } });
    expect(decodeJwt(token).cnf).toEqual({ jkt: key.jkt });
    const verifier = createVerifier({ ...testIssuer.verifierOptions });
    expect(await outcome(verifier.verify(token))).toBe('401 dpop_bound_token');
  });
});
