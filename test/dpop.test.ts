/**
 * DPoP (RFC 9449), the resource-server side: the proof checks of §4.3, the binding of §6.1, the
 * schemes and challenges of §7, nonces (§9) and replay (§11.1), through `authenticate()`.
 */
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { createHmac } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, MemoryReplayStore } from 'resource-guard';
import type { ReplayStore, RejectionEvent, VerifierOptions } from 'resource-guard';
import {
  ath,
  dpopFixture,
  dpopRequest,
  fx,
  key,
  makeProofKey,
  ORIGIN,
  other,
  proof,
  dpopOptions,
  useDpopFixture,
} from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, makeKey, signRaw } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

const URL_ = `${ORIGIN}/products`;

useDpopFixture();

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

describe('a DPoP request', () => {
  it('is accepted with a proof for this method, URL and token, by the bound key', async () => {
    const token = await fx.bound(key);
    const auth = await fx.verifier.authenticate(
      dpopRequest(token, await proof(key, 'GET', URL_, token)),
      { scopes: ['read:products'] },
    );
    expect(auth.claims.cnf?.jkt).toBe(key.jkt);
  });

  it('the htu ignores query and fragment; the request query too; the scheme is case-insensitive', async () => {
    const token = await fx.bound(key);
    const p = await proof(key, 'POST', `${URL_}?page=2#top`, token);
    expect(
      await outcome(
        fx.verifier.authenticate(
          dpopRequest(token, p, { method: 'POST', url: '/products?page=3', scheme: 'dpop' }),
        ),
      ),
    ).toBe('ok');
  });

  it('reads the path of a Web Request, never its origin (which came from the Host header)', async () => {
    const token = await fx.bound(key);
    const request = new Request('http://evil.example:8080/products', {
      headers: { authorization: `DPoP ${token}`, dpop: await proof(key, 'GET', URL_, token) },
    });
    expect(await outcome(fx.verifier.authenticate(request))).toBe('ok');
  });

  it('is checked on every request, cached token or not: a second proof is needed', async () => {
    const token = await fx.bound(key);
    const first = await proof(key, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, first)))).toBe('ok');
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, first)))).toBe(
      '401 dpop_replayed',
    );
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, undefined)))).toBe(
      '401 dpop_proof_missing',
    );
    const second = await proof(key, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, second)))).toBe('ok');
  });

  it('a replayed proof is refused however the request differs (another URL form, another host)', async () => {
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
    const again = dpopRequest(token, p, { url: '/products?x=1', host: 'other.example' });
    expect(await outcome(fx.verifier.authenticate(again))).toBe('401 dpop_replayed');
  });

  it('concurrent presentations of one proof: exactly one is accepted', async () => {
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', URL_, token);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => outcome(fx.verifier.authenticate(dpopRequest(token, p)))),
    );
    expect(answers.filter((a) => a === 'ok')).toHaveLength(1);
    expect(answers.filter((a) => a === '401 dpop_replayed')).toHaveLength(19);
  });
});

describe('hostile proofs and tokens', () => {
  const now = () => Math.floor(Date.now() / 1000);
  type Case = [
    name: string,
    build: () => Promise<{ token: string; proofs: string[]; scheme?: string; method?: string }>,
    expected: string,
  ];
  const cases: Case[] = [
    [
      'wrong htm',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'POST', URL_, t)] };
      },
      '401 dpop_htm_mismatch',
    ],
    [
      'htm in lower case',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'get', URL_, t)] };
      },
      '401 dpop_htm_mismatch',
    ],
    [
      'wrong htu path',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'GET', `${ORIGIN}/admin`, t)] };
      },
      '401 dpop_htu_mismatch',
    ],
    [
      'htu on another origin (the Host header sent)',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', 'https://api.shop.example.evil/products', t)],
        };
      },
      '401 dpop_htu_mismatch',
    ],
    [
      'htu over http',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', 'http://api.shop.example/products', t)],
        };
      },
      '401 dpop_htu_mismatch',
    ],
    [
      'htu not a URL',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'GET', '/products', t)] };
      },
      '401 dpop_htu_mismatch',
    ],
    [
      'iat too old',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { payload: { iat: now() - 120 } })],
        };
      },
      '401 dpop_proof_stale',
    ],
    [
      'iat in the future',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { payload: { iat: now() + 60 } })],
        };
      },
      '401 dpop_proof_stale',
    ],
    [
      'iat a string',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { payload: { iat: String(now()) } })],
        };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'no jti',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { payload: { jti: undefined } })],
        };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'missing ath',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'GET', URL_, undefined)] };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'ath of another token',
      async () => {
        const t = await fx.bound(key);
        const u = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'GET', URL_, u)] };
      },
      '401 dpop_ath_mismatch',
    ],
    [
      'typ JWT',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'GET', URL_, t, { header: { typ: 'JWT' } })] };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'no jwk',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { header: { jwk: undefined } })],
        };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'jwk with private members',
      async () => {
        const t = await fx.bound(key);
        const { d } = await exportJWK(key.privateKey);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { header: { jwk: { ...key.publicJwk, d } } })],
        };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'jwk of another key than the signer',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { header: { jwk: other.publicJwk } })],
        };
      },
      '401 dpop_key_mismatch', // refused on the binding, before any signature check
    ],
    [
      'an unknown crit header',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { header: { crit: ['x'], x: 1 } })],
        };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'alg none',
      async () => {
        const t = await fx.bound(key);
        const header = b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk }));
        const payload = b64url(
          JSON.stringify({ jti: 'n', htm: 'GET', htu: URL_, iat: now(), ath: '' }),
        );
        return { token: t, proofs: [`${header}.${payload}.`] };
      },
      '401 dpop_proof_alg',
    ],
    [
      'HS256 keyed with the public key',
      async () => {
        const t = await fx.bound(key);
        const header = b64url(
          JSON.stringify({ typ: 'dpop+jwt', alg: 'HS256', jwk: key.publicJwk }),
        );
        const payload = b64url(JSON.stringify({ jti: 'h', htm: 'GET', htu: URL_, iat: now() }));
        const mac = createHmac('sha256', JSON.stringify(key.publicJwk))
          .update(`${header}.${payload}`)
          .digest('base64url');
        return { token: t, proofs: [`${header}.${payload}.${mac}`] };
      },
      '401 dpop_proof_alg',
    ],
    [
      'tampered payload',
      async () => {
        const t = await fx.bound(key);
        const [h, , s] = (await proof(key, 'GET', URL_, t)).split('.');
        return {
          token: t,
          proofs: [
            `${h}.${b64url(JSON.stringify({ jti: 'x', htm: 'GET', htu: URL_, iat: now(), ath: ath(t) }))}.${s}`,
          ],
        };
      },
      '401 dpop_proof_signature',
    ],
    [
      'not a JWS',
      async () => ({ token: await fx.bound(key), proofs: ['not-a-proof'] }),
      '401 dpop_proof_invalid',
    ],
    [
      'oversized proof',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t, { payload: { pad: 'x'.repeat(9000) } })],
        };
      },
      '401 dpop_proof_invalid',
    ],
    [
      'two DPoP headers',
      async () => {
        const t = await fx.bound(key);
        return {
          token: t,
          proofs: [await proof(key, 'GET', URL_, t), await proof(key, 'GET', URL_, t)],
        };
      },
      '400 dpop_multiple_proofs',
    ],
    [
      'no DPoP header',
      async () => ({ token: await fx.bound(key), proofs: [] }),
      '401 dpop_proof_missing',
    ],
    [
      'proof key is not cnf.jkt',
      async () => {
        const t = await fx.bound(other);
        return { token: t, proofs: [await proof(key, 'GET', URL_, t)] };
      },
      '401 dpop_key_mismatch',
    ],
    [
      'a plain token with the DPoP scheme',
      async () => {
        const t = await fx.plain();
        return { token: t, proofs: [await proof(key, 'GET', URL_, t)] };
      },
      '401 dpop_unbound_token',
    ],
    [
      'a token also bound by mTLS (cnf x5t#S256)',
      async () => {
        const t = await fx.bound(key, { cnf: { jkt: key.jkt, 'x5t#S256': 'abc' } });
        return { token: t, proofs: [await proof(key, 'GET', URL_, t)] };
      },
      '401 cnf_unsupported',
    ],
    [
      'a DPoP-bound token with the Bearer scheme',
      async () => ({ token: await fx.bound(key), proofs: [], scheme: 'Bearer' }),
      '401 dpop_bound_token',
    ],
    [
      'a DPoP-bound token with the Bearer scheme and a proof',
      async () => {
        const t = await fx.bound(key);
        return { token: t, proofs: [await proof(key, 'GET', URL_, t)], scheme: 'Bearer' };
      },
      '401 dpop_bound_token',
    ],
    [
      'an mTLS-bound token with the Bearer scheme',
      async () => ({
        token: await fx.plain({ cnf: { 'x5t#S256': 'abc' } }),
        proofs: [],
        scheme: 'Bearer',
      }),
      '401 cnf_unsupported',
    ],
    [
      'an invalid token with a valid proof',
      async () => {
        const t = `${(await fx.bound(key)).slice(0, -4)}AAAA`;
        return { token: t, proofs: [await proof(key, 'GET', URL_, t)] };
      },
      '401 bad_signature',
    ],
  ];

  it.each(cases)('%s → %s, never accepted', async (_name, build, expected) => {
    const { token, proofs, scheme } = await build();
    const request = dpopRequest(token, proofs, { ...(scheme ? { scheme } : {}) });
    const error = await rejection(fx.verifier.authenticate(request));
    expect(`${error.status} ${error.reason}`).toBe(expected);
    // Neither the client nor a log sees the token or the proof.
    const shown =
      JSON.stringify(error.headers) +
      JSON.stringify(error.body) +
      error.message +
      JSON.stringify(error.details);
    for (const part of [token, ...proofs]
      .flatMap((p) => p.split('.'))
      .filter((p) => p.length > 8)) {
      expect(shown).not.toContain(part);
    }
  });

  it('the htu in details carries no query, fragment or credentials', async () => {
    const token = await fx.bound(key);
    const p = await proof(
      key,
      'GET',
      'https://user:secret@api.shop.example/admin?key=secret#x',
      token,
    );
    const error = await rejection(fx.verifier.authenticate(dpopRequest(token, p)));
    expect(error.reason).toBe('dpop_htu_mismatch');
    expect(error.details).toEqual({
      expected: `${ORIGIN}/products`,
      actual: 'not an absolute http(s) URL without credentials',
    });
    const q = await proof(key, 'GET', `${ORIGIN}/admin?key=secret`, token);
    const other = await rejection(fx.verifier.authenticate(dpopRequest(token, q)));
    expect(other.details).toEqual({ expected: `${ORIGIN}/products`, actual: `${ORIGIN}/admin` });
  });

  it('a proof reused with another token (same key) is refused', async () => {
    const first = await fx.bound(key);
    const second = await fx.bound(key);
    const p = await proof(key, 'GET', URL_, first);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(second, p)))).toBe(
      '401 dpop_ath_mismatch',
    );
  });

  it('property: any single-character mutation of a valid proof is refused', async () => {
    const token = await fx.bound(key);
    const valid = await proof(key, 'GET', URL_, token);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= ';
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: valid.length - 1 }),
        fc.constantFrom(...alphabet),
        async (at, char) => {
          fc.pre(valid[at] !== char);
          const mutated = valid.slice(0, at) + char + valid.slice(at + 1);
          const answer = await outcome(fx.verifier.authenticate(dpopRequest(token, mutated)));
          expect(answer).not.toBe('ok');
          expect(answer).toMatch(/^40[01] /);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('htu normalisation (RFC 9449 §4.3, RFC 3986 §6.2.2)', () => {
  useDpopFixture();
  const UNRESERVED = 'AZaz09-._~';
  /** Reserved characters a path may hold as they are (`?`, `#` end it; `[`, `]` are escaped). */
  const RESERVED = "/@!$&'()*+,;=:";
  const hex = (char: string) => char.charCodeAt(0).toString(16).padStart(2, '0');
  /** A segment character as written: plain, or escaped with lower or upper hex. */
  const written = fc.record({
    char: fc.constantFrom(...UNRESERVED, 'p', 'r', 'o'),
    form: fc.constantFrom('plain', 'lower', 'upper'),
  });
  const spell = ({ char, form }: { char: string; form: string }) =>
    form === 'plain' ? char : form === 'lower' ? `%${hex(char)}` : `%${hex(char).toUpperCase()}`;
  /** A path whose segments differ only in how their unreserved characters are escaped. */
  const twoSpellings = fc
    .array(fc.array(written, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 3 })
    .chain((segments) =>
      fc.tuple(
        fc.constant(segments),
        fc.constant(segments.map((segment) => segment.map((c) => ({ ...c, form: 'plain' })))),
      ),
    );

  it('property: a proof and a request that spell the same path differently are one path', async () => {
    const token = await fx.bound(key);
    await fc.assert(
      fc.asyncProperty(twoSpellings, fc.boolean(), async ([escaped, plain], proofEscaped) => {
        const path = (segments: readonly { char: string; form: string }[][]) =>
          segments.map((segment) => `/${segment.map(spell).join('')}`).join('');
        // Only segments that are not dot segments once decoded: those the parser rewrites.
        fc.pre(!/\/\.{1,2}(\/|$)/.test(path(plain)));
        const [proofPath, requestPath] = proofEscaped
          ? [path(escaped), path(plain)]
          : [path(plain), path(escaped)];
        const p = await proof(key, 'GET', `${ORIGIN}${proofPath}`, token);
        const answer = await outcome(
          fx.verifier.authenticate(dpopRequest(token, p, { url: requestPath })),
        );
        expect(answer).toBe('ok');
      }),
      { numRuns: 120 },
    );
  });

  it('property: an escaped reserved character never matches itself unescaped, in any hex case', async () => {
    const token = await fx.bound(key);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...RESERVED),
        fc.boolean(),
        fc.boolean(),
        async (char, upper, proofEscaped) => {
          const escape = `%${upper ? hex(char).toUpperCase() : hex(char)}`;
          const [proofPath, requestPath] = proofEscaped
            ? [`/a${escape}b`, `/a${char}b`]
            : [`/a${char}b`, `/a${escape}b`];
          const p = await proof(key, 'GET', `${ORIGIN}${proofPath}`, token);
          const answer = await outcome(
            fx.verifier.authenticate(dpopRequest(token, p, { url: requestPath })),
          );
          expect(answer).not.toBe('ok');
        },
      ),
      { numRuns: 80 },
    );
  });

  it('the hex case of an escape that stays escaped does not matter', async () => {
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', `${ORIGIN}/files/a%2fb%c3%a9`, token);
    expect(
      await outcome(fx.verifier.authenticate(dpopRequest(token, p, { url: '/files/a%2Fb%C3%A9' }))),
    ).toBe('ok');
  });
});

describe('modes and challenges (RFC 9449 §7.1)', () => {
  const realm = 'realm="https://shopping.api"';
  const algs = 'algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA Ed25519"';

  it('allowed: Bearer still works for a plain token; the missing-token challenge offers both', async () => {
    const token = await fx.plain();
    expect(
      await outcome(fx.verifier.authenticate(dpopRequest(token, [], { scheme: 'Bearer' }))),
    ).toBe('ok');
    const error = await rejection(fx.verifier.authenticate({ headers: {} }));
    expect(error.headers['www-authenticate']).toBe(`Bearer ${realm}, DPoP ${realm}, ${algs}`);
  });

  it('a proof error is on the DPoP challenge; a Bearer token error on the Bearer one', async () => {
    const token = await fx.bound(key);
    const proofError = await rejection(
      fx.verifier.authenticate(dpopRequest(token, await proof(key, 'POST', URL_, token))),
    );
    expect(proofError.headers['www-authenticate']).toBe(
      `Bearer ${realm}, DPoP ${realm}, error="invalid_dpop_proof", error_description="The DPoP proof is for another HTTP method", ${algs}`,
    );
    const bound = await rejection(
      fx.verifier.authenticate(dpopRequest(token, [], { scheme: 'Bearer' })),
    );
    expect(bound.headers['www-authenticate']).toMatch(
      /^Bearer realm="[^"]+", error="invalid_token", error_description="The access token is DPoP-bound[^"]*", DPoP realm="[^"]+", algs="[^"]+"$/,
    );
  });

  it('required (per verifier): a Bearer token is refused; only the DPoP challenge', async () => {
    const { verifier, plain } = await dpopFixture(
      { dpop: { origin: ORIGIN, mode: 'required' } },
      fx.issuerKey,
    );
    const error = await rejection(
      verifier.authenticate(dpopRequest(await plain(), [], { scheme: 'Bearer' })),
    );
    expect(error.reason).toBe('dpop_required');
    expect(error.headers['www-authenticate']).toMatch(
      /^DPoP realm="[^"]+", error="invalid_token", error_description="[^"]+", algs="[^"]+"$/,
    );
    const missing = await rejection(verifier.authenticate({ headers: {} }));
    expect(missing.headers['www-authenticate']).toBe(`DPoP ${realm}, ${algs}`);
    expect(await outcome(verifier.verify(await plain()))).toBe('401 dpop_required');
    expect(await outcome(verifier.authenticate({ headers: {} }, { optional: true }))).toBe('ok');
  });

  it('per route: disabled, allowed, required over the verifier’s mode', async () => {
    const token = await fx.bound(key);
    const plain = await fx.plain();
    const disabled = fx.verifier.guard({ dpop: 'disabled' });
    const required = fx.verifier.guard({ dpop: 'required' });
    expect(await outcome(disabled(dpopRequest(token, await proof(key, 'GET', URL_, token))))).toBe(
      '401 missing_token',
    );
    expect(await outcome(disabled(dpopRequest(plain, [], { scheme: 'Bearer' })))).toBe('ok');
    expect(await outcome(required(dpopRequest(plain, [], { scheme: 'Bearer' })))).toBe(
      '401 dpop_required',
    );
    expect(await outcome(required(dpopRequest(token, await proof(key, 'GET', URL_, token))))).toBe(
      'ok',
    );
  });

  it('without the dpop option: DPoP is off, a bound token is refused as Bearer, a DPoP route is a TypeError', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [fx.issuerKey.jwk] },
    });
    const token = await fx.bound(key);
    expect(await outcome(verifier.authenticate(dpopRequest(token, [], { scheme: 'Bearer' })))).toBe(
      '401 dpop_bound_token',
    );
    expect(await outcome(verifier.verify(token))).toBe('401 dpop_bound_token');
    const error = await rejection(verifier.authenticate({ headers: {} }));
    expect(error.headers['www-authenticate']).toBe(`Bearer ${realm}`);
    expect(() => verifier.guard({ dpop: 'allowed' })).toThrow(/`dpop` on a route needs/);
    await expect(verifier.authenticate({ headers: {} }, { dpop: 'required' })).rejects.toThrow(
      TypeError,
    );
  });

  it('the origin is required, and a misspelt DPoP option is named', () => {
    const base = { issuer: ISSUER, audience: AUDIENCE };
    expect(() => createVerifier({ ...base, dpop: {} })).toThrow(/`dpop\.origin` is required/);
    expect(() => createVerifier({ ...base, dpop: { origin: 'https://a.example/path' } })).toThrow(
      /`dpop\.origin`/,
    );
    expect(() =>
      createVerifier({ ...base, dpop: { orign: 'https://a.example' } as never }),
    ).toThrow(/did you mean `dpop\.origin`/);
    expect(() =>
      createVerifier({ ...base, dpop: { origin: 'https://a.example', mode: 'on' as never } }),
    ).toThrow(/`dpop\.mode`/);
    expect(() =>
      createVerifier({
        ...base,
        dpop: { origin: 'https://a.example', nonce: { secret: 'short' } },
      }),
    ).toThrow(/`dpop\.nonce\.secret`/);
    expect(() => createVerifier({ ...base, dpop: { trustHost: true } })).not.toThrow();
  });

  it('trustHost: the htu host is the request’s Host header', async () => {
    const { verifier } = await dpopFixture({ dpop: { trustHost: true } }, fx.issuerKey);
    const token = await fx.bound(key);
    const at = (url: string, host: string) =>
      proof(key, 'GET', url, token).then((p) =>
        outcome(verifier.authenticate(dpopRequest(token, p, { host }))),
      );
    expect(await at('http://127.0.0.1:8080/products', '127.0.0.1:8080')).toBe('ok');
    expect(await at('http://127.0.0.1:8080/products', '127.0.0.1:9090')).toBe(
      '401 dpop_htu_mismatch',
    );
  });
});

describe('server nonces (RFC 9449 §9)', () => {
  const nonce = { secret: 'a shared secret of thirty-two bytes or more' };

  it('a proof with the previous step’s nonce passes, and dpopNonce(req) gives the current one; only then', async () => {
    // A store of its own: this test moves the clock ahead, and the default store (one per process)
    // would judge every later test's proofs too old by that time once the clock is back.
    const replay = new MemoryReplayStore();
    const a = await dpopFixture({ dpop: { origin: ORIGIN, nonce, replay } }, fx.issuerKey);
    const token = await fx.bound(key);
    const nonceOf = (step: number) =>
      `${step}.${createHmac('sha256', nonce.secret).update(`resource-guard dpop nonce ${step}`).digest().subarray(0, 16).toString('base64url')}`;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      // Mid-step (now or in the next step, minutes ahead): no boundary is crossed below.
      const now = Date.now();
      const mid = Math.floor(now / 300_000) * 300_000 + 150_000;
      vi.setSystemTime(mid >= now ? mid : mid + 300_000);
      const step = Math.floor(Date.now() / 1000 / 300);
      const answer = async (withNonce: string | undefined) => {
        const request = dpopRequest(
          token,
          await proof(key, 'GET', URL_, token, { payload: { nonce: withNonce } }),
        );
        return [await outcome(a.verifier.authenticate(request)), a.verifier.dpopNonce(request)];
      };
      expect(await answer(nonceOf(step - 1))).toEqual(['ok', nonceOf(step)]);
      expect(await answer(nonceOf(step))).toEqual(['ok', undefined]);
      expect(await answer(nonceOf(step - 2))).toEqual(['401 dpop_nonce_required', undefined]);
      // A Bearer request, a verifier without nonces or without DPoP: nothing to send.
      const plain = dpopRequest(await fx.plain(), [], { scheme: 'Bearer' });
      expect(await outcome(a.verifier.authenticate(plain))).toBe('ok');
      expect(a.verifier.dpopNonce(plain)).toBeUndefined();
      expect(fx.verifier.dpopNonce(plain)).toBeUndefined();
      const { dpop: _off, ...withoutDpop } = dpopOptions(fx.issuerKey);
      const noDpop = createVerifier(withoutDpop);
      expect(noDpop.dpopNonce(plain)).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('use_dpop_nonce with a DPoP-Nonce header; the nonce works on every instance sharing the secret', async () => {
    const a = await dpopFixture({ dpop: { origin: ORIGIN, nonce } }, fx.issuerKey);
    const b = await dpopFixture({ dpop: { origin: ORIGIN, nonce } }, fx.issuerKey);
    const token = await fx.bound(key);
    const first = await rejection(
      a.verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
    );
    expect(first.reason).toBe('dpop_nonce_required');
    expect(first.body.error).toBe('use_dpop_nonce');
    expect(first.headers['www-authenticate']).toMatch(/DPoP realm="[^"]+", error="use_dpop_nonce"/);
    const issued = first.headers['dpop-nonce'] as string;
    expect(issued).toMatch(/^\d+\.[\w-]{22}$/);
    const withNonce = await proof(key, 'GET', URL_, token, { payload: { nonce: issued } });
    expect(await outcome(b.verifier.authenticate(dpopRequest(token, withNonce)))).toBe('ok');
    const forged = await proof(key, 'GET', URL_, token, {
      payload: { nonce: `${issued.split('.')[0]}.AAAAAAAAAAAAAAAAAAAAAA` },
    });
    expect(await outcome(b.verifier.authenticate(dpopRequest(token, forged)))).toBe(
      '401 dpop_nonce_required',
    );
    const otherSecret = await dpopFixture(
      { dpop: { origin: ORIGIN, nonce: { secret: 'another secret, also thirty-two bytes long' } } },
      fx.issuerKey,
    );
    const again = await proof(key, 'GET', URL_, token, { payload: { nonce: issued } });
    expect(await outcome(otherSecret.verifier.authenticate(dpopRequest(token, again)))).toBe(
      '401 dpop_nonce_required',
    );
  });

  it('a nonce expires after its step and the next', async () => {
    const { verifier } = await dpopFixture(
      { dpop: { origin: ORIGIN, nonce: { ...nonce, step: 60 } } },
      fx.issuerKey,
    );
    const token = await fx.bound(key);
    const issued = (
      await rejection(
        verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
      )
    ).headers['dpop-nonce'] as string;
    const time = clock();
    try {
      time.advance(125);
      const late = await proof(key, 'GET', URL_, token, { payload: { nonce: issued } });
      expect(await outcome(verifier.authenticate(dpopRequest(token, late)))).toBe(
        '401 dpop_nonce_required',
      );
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the replay store', () => {
  const failing = (insert: ReplayStore['insertIfAbsent']): Partial<VerifierOptions> => ({
    dpop: { origin: ORIGIN, replay: { insertIfAbsent: insert }, replayTimeout: 0.05 },
  });

  it.each([
    [
      'throws',
      () => {
        throw new Error('store down');
      },
    ],
    ['rejects', () => Promise.reject(new Error('store down'))],
    ['hangs', () => new Promise<boolean>(() => undefined)],
    ['answers nonsense', () => 'OK' as unknown as boolean],
  ])('a store that %s: 503 with Retry-After, never accepted', async (_name, insert) => {
    const events: RejectionEvent[] = [];
    const { verifier } = await dpopFixture(
      { ...failing(insert), onRejected: (e) => events.push(e) },
      fx.issuerKey,
    );
    const token = await fx.bound(key);
    const error = await rejection(
      verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
    );
    expect(error.status).toBe(503);
    expect(error.reason).toBe('dpop_replay_unavailable');
    expect(Number(error.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(error.body)).not.toContain('store down');
    expect(events[0]?.reason).toBe('dpop_replay_unavailable');
  });

  it('is keyed by proof key, htu and jti; only a fully valid proof reaches it; TTL covers the window', async () => {
    const calls: [string, number][] = [];
    const store = new MemoryReplayStore();
    const { verifier } = await dpopFixture(
      {
        dpop: {
          origin: ORIGIN,
          maxAge: 30,
          replay: {
            insertIfAbsent: (k, ttl) => (calls.push([k, ttl]), store.insertIfAbsent(k, ttl)),
          },
        },
      },
      fx.issuerKey,
    );
    const token = await fx.bound(key);
    await outcome(verifier.authenticate(dpopRequest(token, await proof(key, 'POST', URL_, token))));
    expect(calls).toHaveLength(0);
    expect(
      await outcome(
        verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
      ),
    ).toBe('ok');
    expect(calls).toHaveLength(1);
    expect(calls[0]?.[0]).toMatch(/^[\w-]{43}$/); // a hash: no jti or URL in the store
    // The window, both ends, the tolerance again for the instances' clocks, and a second.
    expect(calls[0]?.[1]).toBe((30 + 3 * 5 + 1) * 1000);
  });

  it('the memory store is bounded: full of live proofs, it refuses (503) rather than forgets', async () => {
    const store = new MemoryReplayStore({ maxEntries: 2 });
    expect(store.insertIfAbsent('a', 60_000)).toBe(true);
    expect(store.insertIfAbsent('a', 60_000)).toBe(false);
    expect(store.insertIfAbsent('b', 60_000)).toBe(true);
    expect(() => store.insertIfAbsent('c', 60_000)).toThrow(/unexpired/);
    const time = clock();
    try {
      time.advance(61);
      expect(store.insertIfAbsent('c', 60_000)).toBe(true);
      expect(store.size).toBe(1); // a and b swept
      expect(store.insertIfAbsent('a', 60_000)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('an unsupported proof algorithm', () => {
  it('is refused when the allow-list leaves it out', async () => {
    const { verifier } = await dpopFixture(
      { dpop: { origin: ORIGIN, algorithms: ['ES384'] } },
      fx.issuerKey,
    );
    const token = await fx.bound(key);
    expect(
      await outcome(
        verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
      ),
    ).toBe('401 dpop_proof_alg');
  });

  it('a P-384 key claiming ES256 is refused', async () => {
    const p384 = await makeKey('ES384');
    const { kid: _kid, alg: _alg, use: _use, ...jwk } = p384.jwk;
    const token = await fx.bound({
      ...key,
      jkt: await calculateJwkThumbprint(jwk),
    } as ProofKey);
    const p = await signRaw(
      p384,
      { typ: 'dpop+jwt', alg: 'ES256', jwk },
      {
        jti: 'x',
        htm: 'GET',
        htu: URL_,
        iat: Math.floor(Date.now() / 1000),
        ath: ath(token),
      },
    );
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toMatch(
      /^401 dpop_proof_(invalid|signature)$/,
    );
  });
});

describe('RFC 9728 metadata with DPoP', () => {
  it('announces the proof algorithms, and that DPoP is required where it is', async () => {
    const metadata = (mode: 'allowed' | 'required') =>
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [fx.issuerKey.jwk] },
        resourceMetadata: {},
        dpop: { origin: ORIGIN, mode, algorithms: ['ES256', 'EdDSA'] },
      }).resourceMetadata?.document;
    expect(metadata('allowed')).toMatchObject({
      dpop_signing_alg_values_supported: ['ES256', 'EdDSA'],
    });
    expect(metadata('allowed')).not.toHaveProperty('dpop_bound_access_tokens_required');
    expect(metadata('required')).toMatchObject({ dpop_bound_access_tokens_required: true });
  });
});

describe('one proof, one spelling', () => {
  it('a signature whose unused trailing bits are set is refused (not a second valid proof)', async () => {
    const token = await fx.bound(key);
    const valid = await proof(key, 'GET', URL_, token);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(valid.at(-1) as string);
    const variant = valid.slice(0, -1) + alphabet[last | 1];
    expect(variant).not.toBe(valid);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, variant)))).toBe(
      '401 dpop_proof_invalid',
    );
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, valid)))).toBe('ok');
  });
});

describe('where the request’s method and URL come from', () => {
  it('Express: a router mounted at /api checks htu against originalUrl, not the router’s url', async () => {
    const { default: express } = await import('express');
    const { requireAuth } = await import('resource-guard/express');
    const { createServer } = await import('node:http');
    const app = express();
    const router = express.Router();
    router.get('/products', requireAuth(fx.verifier), (_req, res) => void res.json({ ok: true }));
    app.use('/api', router);
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const token = await fx.bound(key);
      const call = async (path: string) =>
        (
          await fetch(`http://127.0.0.1:${port}/api/products`, {
            headers: {
              authorization: `DPoP ${token}`,
              dpop: await proof(key, 'GET', `${ORIGIN}${path}`, token),
            },
          })
        ).status;
      expect(await call('/api/products')).toBe(200);
      expect(await call('/products')).toBe(401);
    } finally {
      server.close();
    }
  });

  it('the kit asks the adapter for the target only on routes that accept DPoP', async () => {
    const { routeGuard } = await import('resource-guard/kit');
    const { verifier } = await dpopFixture({}, fx.issuerKey);
    const plainVerifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [fx.issuerKey.jwk] },
    });
    let asked = 0;
    const target = () => (asked++, { method: 'GET', url: '/products' });
    const outcomeOf = { pass: () => 'pass', respond: () => 'respond', fail: () => 'fail' };
    const bearer = { headers: { authorization: `Bearer ${await fx.plain()}` } };
    await routeGuard(plainVerifier, {}, target).run({}, bearer, outcomeOf);
    await routeGuard(verifier, { dpop: 'disabled' }, target).run({}, bearer, outcomeOf);
    expect(asked).toBe(0);
    const token = await fx.bound(key);
    const request = {
      headers: { authorization: `DPoP ${token}`, dpop: await proof(key, 'GET', URL_, token) },
    };
    expect(await routeGuard(verifier, {}, target).run({}, request, outcomeOf)).toBe('pass');
    expect(asked).toBe(1);
    expect(() => routeGuard(verifier, {}, 'originalUrl' as never)).toThrow(/`target`/);
  });

  it('a DPoP request and a token from another source (getToken) is two credentials: 400', async () => {
    const token = await fx.bound(key);
    const { verifier } = await dpopFixture({ getToken: () => 'x.y.z' }, fx.issuerKey);
    expect(
      await outcome(
        verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
      ),
    ).toBe('400 multiple_credentials');
  });

  it('a request whose URL is unknown cannot prove htu: refused, never a 500', async () => {
    const token = await fx.bound(key);
    const request = {
      headers: { authorization: `DPoP ${token}`, dpop: await proof(key, 'GET', URL_, token) },
    };
    expect(await outcome(fx.verifier.authenticate(request))).toBe('401 dpop_htm_mismatch');
    const noUrl = { ...request, method: 'GET' };
    expect(await outcome(fx.verifier.authenticate(noUrl))).toBe('401 dpop_htu_mismatch');
  });
});

describe('errors of the DPoP request itself', () => {
  it('two proofs, or a malformed DPoP field, are answered on the DPoP challenge', async () => {
    const token = await fx.bound(key);
    const two = await rejection(
      fx.verifier.authenticate(
        dpopRequest(token, [
          await proof(key, 'GET', URL_, token),
          await proof(key, 'GET', URL_, token),
        ]),
      ),
    );
    expect(two.headers['www-authenticate']).toMatch(
      /^Bearer realm="[^"]+", DPoP realm="[^"]+", error="invalid_request", error_description="[^"]+", algs="[^"]+"$/,
    );
    const malformed = await rejection(
      fx.verifier.authenticate({ headers: { authorization: 'DPoP abc{}', dpop: 'x' } }),
    );
    expect(malformed.reason).toBe('malformed_header');
    expect(malformed.headers['www-authenticate']).toMatch(
      /, DPoP realm="[^"]+", error="invalid_request"/,
    );
  });
});

describe('resource-guard/testing: createDpopKey', () => {
  it('binds a minted token to a key and signs proofs a DPoP verifier accepts, once', async () => {
    const { createDpopKey, createTestIssuer } = await import('resource-guard/testing');
    const testIssuer = await createTestIssuer({ audience: 'https://shopping.api' });
    const verifier = createVerifier({
      ...testIssuer.verifierOptions,
      dpop: { mode: 'required', origin: 'https://api.test' },
    });
    const dpopKey = await createDpopKey();
    const token = await testIssuer.mint({ claims: { cnf: { jkt: dpopKey.jkt } } });
    const headers = await dpopKey.headers(token, {
      method: 'GET',
      url: 'https://api.test/products?x=1',
    });
    const request = () => ({ method: 'GET', url: '/products', headers });
    expect(await outcome(verifier.authenticate(request()))).toBe('ok');
    // Another request (object) with the same proof: a replay.
    expect(await outcome(verifier.authenticate(request()))).toBe('401 dpop_replayed');
    expect(() => dpopKey.proof({} as never)).toThrow(TypeError);
  });
});

describe('requestScoped (Cloudflare Workers): nothing pending is shared between requests', () => {
  it('concurrent first proofs of one key each do their own work, and all verify', async () => {
    const nonce = { secret: 'a shared secret of thirty-two bytes or more' };
    const { verifier } = await dpopFixture(
      { requestScoped: true, dpop: { origin: ORIGIN, nonce } },
      fx.issuerKey,
    );
    const fresh = await makeProofKey();
    const token = await fx.bound(fresh);
    const first = await rejection(
      verifier.authenticate(dpopRequest(token, await proof(fresh, 'GET', URL_, token))),
    );
    const issued = first.headers['dpop-nonce'] as string;
    const proofs = await Promise.all(
      Array.from({ length: 5 }, () =>
        proof(fresh, 'GET', URL_, token, { payload: { nonce: issued } }),
      ),
    );
    const answers = await Promise.all(
      proofs.map((p) => outcome(verifier.authenticate(dpopRequest(token, p)))),
    );
    expect(answers).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
  });
});
