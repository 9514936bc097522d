/**
 * Adversarial pass, session 23: a black-box attacker who read only README.md and STANDARDS.md.
 * Everything goes through the public API (`createVerifier`, `verify`, `authenticate`, `guard`,
 * `logto`, the adapters over loopback HTTP); every token corpus is also run through a cold,
 * by-the-book jose verification (`createLocalJWKSet` + `jwtVerify` with the RFC 9068 profile)
 * so that the library is held to "never looser than a cold verification", not only to its own
 * expectations.
 *
 * Classes tried: signed-claim shapes (JSON quirks, duplicate members, `__proto__`, numbers at the
 * edges, iss/aud/scope/scp/cnf/organization variants), Authorization header grammar (47 forms,
 * three request shapes), JWKS key metadata (`alg`, `key_ops`, `use`, kid types), DPoP proofs (60
 * shapes) and replay-key spellings, requirement and option mutation after creation, hooks that
 * misbehave, cookies, challenges, JWKS and discovery faults, leaks into events and hooks, 1 MB
 * pathological headers, duplicate Authorization fields and HEAD over every example server, route
 * options (machine, organization, optional, dpop) on five adapters and NestJS, configuration
 * validation of issuer-like URLs.
 *
 * What held is asserted as is (each assertion can fail). What did not hold is an `it.fails` with
 * a `BUG:` note.
 */
import 'reflect-metadata';
import { connect } from 'node:net';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { createLocalJWKSet, exportJWK, importJWK, jwtVerify } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, CHANNELS, createVerifier, logto, MemoryReplayStore } from 'resource-guard';
import type { AuthInfo, Verifier, VerifierOptions } from 'resource-guard';
import { Auth, RequireAuth, ResourceGuardModule } from 'resource-guard/nestjs';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { ath, dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { DpopFixture, ProofKey } from './helpers/dpop.ts';
import { listen, targets } from './contract/targets.ts';

let key: TestKey; // the issuer's (ES256)
let v: Verifier; // a default verifier over its static key set
let good: string; // a valid M2M token with read:products write:products

beforeAll(async () => {
  // Many verifiers are created on purpose: silence the "verifier per request" hint.
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  key = await makeKey('ES256');
  v = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
  good = await mint(key, m2mClaims());
});

afterAll(() => vi.restoreAllMocks());

const base = (): VerifierOptions => ({
  issuer: ISSUER,
  audience: AUDIENCE,
  jwks: { keys: [key.jwk] },
});
const bearerReq = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const now = () => Math.floor(Date.now() / 1000);

/** A cold, by-the-book verification: jose with the RFC 9068 profile, then the route's scope. */
async function cold(token: string, jwks: JWK[] = [key.jwk], scope = 'read:products') {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: jwks }), {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      clockTolerance: 5,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    });
    const granted = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    return granted.includes(scope) ? 'ok' : 'scope';
  } catch {
    return 'refused';
  }
}

// ---------------------------------------------------------------------------------------------
// Signed tokens: every shape is signed with the issuer's real key
// ---------------------------------------------------------------------------------------------

describe('signed hostile shapes: exact outcome, and never looser than a cold jose verification', () => {
  const H = () => ({ alg: 'ES256', typ: 'at+jwt', kid: key.kid });
  const claims = (o: Record<string, unknown> = {}) => JSON.stringify(m2mClaims(o));
  /** [name, header, payload, library outcome on a read:products route] */
  const cases = (): [string, unknown, unknown, string][] => [
    [
      '__proto__ smuggles scope',
      H(),
      claims({ scope: undefined }).replace(/^\{/, '{"__proto__":{"scope":"read:products"},'),
      '403 insufficient_scope',
    ],
    [
      '__proto__ smuggles typ',
      `{"__proto__":{"typ":"at+jwt"},"alg":"ES256","kid":"${key.kid}"}`,
      claims(),
      '401 typ_mismatch',
    ],
    [
      '__proto__ smuggles organization_id',
      H(),
      claims().replace(/^\{/, '{"__proto__":{"organization_id":"acme"},'),
      'ok',
    ],
    ['duplicate iss (last wins)', H(), claims().replace(/^\{/, '{"iss":"https://evil",'), 'ok'],
    [
      'duplicate alg none then ES256',
      `{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"${key.kid}"}`,
      claims(),
      'ok',
    ],
    ['crit []', { ...H(), crit: [] }, claims(), '401 unsupported_crit'],
    ['crit [b64] without b64', { ...H(), crit: ['b64'] }, claims(), '401 unsupported_crit'],
    [
      'b64:false with crit',
      { ...H(), b64: false, crit: ['b64'] },
      claims(),
      '401 unsupported_crit',
    ],
    ['crit [exp]', { ...H(), crit: ['exp'] }, claims(), '401 unsupported_crit'],
    ['cty JWT (nested)', { ...H(), cty: 'JWT' }, claims(), '401 malformed_token'],
    ['x5c junk (ignored)', { ...H(), x5c: ['MIIB'] }, claims(), 'ok'],
    ['x5u', { ...H(), x5u: 'https://evil/c.pem' }, claims(), '401 untrusted_key_header'],
    ['jku', { ...H(), jku: 'https://evil/jwks' }, claims(), '401 untrusted_key_header'],
    ['jwk = the real key', { ...H(), jwk: { ...key.jwk } }, claims(), '401 untrusted_key_header'],
    ['typ AT+JWT', { ...H(), typ: 'AT+JWT' }, claims(), 'ok'],
    ['typ Application/AT+JWT', { ...H(), typ: 'Application/AT+JWT' }, claims(), 'ok'],
    ['typ "at+jwt "', { ...H(), typ: 'at+jwt ' }, claims(), '401 typ_mismatch'],
    ['typ with params', { ...H(), typ: 'application/at+jwt; a=b' }, claims(), '401 typ_mismatch'],
    ['typ JWT (ID token)', { ...H(), typ: 'JWT' }, claims(), '401 typ_mismatch'],
    ['typ array', { ...H(), typ: ['at+jwt'] }, claims(), '401 typ_mismatch'],
    ['kid number', { ...H(), kid: 5 }, claims(), '401 malformed_token'],
    ['kid null', { ...H(), kid: null }, claims(), '401 malformed_token'],
    ['kid path traversal', { ...H(), kid: '../../../../etc/passwd' }, claims(), '401 unknown_kid'],
    ['kid 100k chars', { ...H(), kid: 'a'.repeat(100_000) }, claims(), '401 token_too_large'],
    [
      'exp 1e309 (Infinity)',
      H(),
      claims().replace(/"exp":\d+/, '"exp":1e309'),
      '401 invalid_claim',
    ],
    ['exp -0', H(), claims({ exp: -0 }), '401 expired'],
    ['exp fractional', H(), claims({ exp: now() + 100.5 }), 'ok'],
    ['exp as string', H(), claims({ exp: String(now() + 100) }), '401 invalid_claim'],
    ['exp 1.9e9 notation', H(), claims().replace(/"exp":\d+/, '"exp":1.9e9'), 'ok'],
    ['exp true', H(), claims({ exp: true }), '401 invalid_claim'],
    ['exp array', H(), claims({ exp: [now() + 100] }), '401 invalid_claim'],
    ['nbf in the future', H(), claims({ nbf: now() + 100 }), '401 not_yet_valid'],
    ['nbf null', H(), claims({ nbf: null }), '401 invalid_claim'],
    ['iat -1e309', H(), claims().replace(/"iat":\d+/, '"iat":-1e309'), '401 invalid_claim'],
    ['iat null', H(), claims({ iat: null }), '401 invalid_claim'],
    ['iat in the future', H(), claims({ iat: now() + 60 }), '401 issued_in_future'],
    ['iss + trailing slash', H(), claims({ iss: `${ISSUER}/` }), '401 issuer_mismatch'],
    ['iss upper case', H(), claims({ iss: ISSUER.toUpperCase() }), '401 issuer_mismatch'],
    ['iss as [ISSUER]', H(), claims({ iss: [ISSUER] }), '401 invalid_claim'],
    [
      'iss %-encoded',
      H(),
      claims({ iss: ISSUER.replace('oidc', '%6fidc') }),
      '401 issuer_mismatch',
    ],
    [
      'iss with Cyrillic о',
      H(),
      claims({ iss: ISSUER.replace('oidc', '\u043eidc') }),
      '401 issuer_mismatch',
    ],
    ['aud [ours, other]', H(), claims({ aud: [AUDIENCE, 'x'] }), 'ok'],
    ['aud []', H(), claims({ aud: [] }), '401 invalid_claim'],
    ['aud [null, ours]', H(), claims({ aud: [null, AUDIENCE] }), '401 invalid_claim'],
    ['aud {0: ours}', H(), claims({ aud: { 0: AUDIENCE } }), '401 invalid_claim'],
    ['aud ours + "/"', H(), claims({ aud: `${AUDIENCE}/` }), '401 audience_mismatch'],
    [
      'aud [ours, organization]',
      H(),
      claims({ aud: [AUDIENCE, 'urn:logto:organization:acme'] }),
      '403 organization_token',
    ],
    ['azp of another client', H(), claims({ azp: 'other' }), 'ok'],
    ['scope as array', H(), claims({ scope: ['read:products'] }), '401 invalid_claim'],
    ['scope tab-separated', H(), claims({ scope: 'x\tread:products' }), '403 insufficient_scope'],
    ['scope LF-separated', H(), claims({ scope: 'x\nread:products' }), '403 insufficient_scope'],
    [
      'scope NBSP-separated',
      H(),
      claims({ scope: 'x\u00a0read:products' }),
      '403 insufficient_scope',
    ],
    [
      'scope VT-separated',
      H(),
      claims({ scope: 'x\u000bread:products' }),
      '403 insufficient_scope',
    ],
    ['scope with a prefix', H(), claims({ scope: 'read:productsX' }), '403 insufficient_scope'],
    ['scope double space', H(), claims({ scope: 'x  read:products' }), 'ok'],
    [
      'scope "x" + scp [read]',
      H(),
      claims({ scope: 'x', scp: ['read:products'] }),
      '403 insufficient_scope',
    ],
    [
      'scope "" + scp [read]',
      H(),
      claims({ scope: '', scp: ['read:products'] }),
      '403 insufficient_scope',
    ],
    [
      'scope null + scp [read]',
      H(),
      claims({ scope: null, scp: ['read:products'] }),
      '401 invalid_claim',
    ],
    [
      'scp "read" (string)',
      H(),
      claims({ scope: undefined, scp: 'read:products' }),
      '401 invalid_claim',
    ],
    [
      'scp ["x read:products"]',
      H(),
      claims({ scope: undefined, scp: ['x read:products'] }),
      '403 insufficient_scope',
    ],
    ['sub/client_id numbers', H(), claims({ sub: 5, client_id: 5 }), '401 invalid_claim'],
    ['jti number', H(), claims({ jti: 5 }), '401 invalid_claim'],
    ['client_id null', H(), claims({ client_id: null }), '401 invalid_claim'],
    ['cnf {}', H(), claims({ cnf: {} }), '401 cnf_unsupported'],
    ['cnf null', H(), claims({ cnf: null }), '401 cnf_unsupported'],
    ['cnf "x"', H(), claims({ cnf: 'x' }), '401 cnf_unsupported'],
    ['cnf.jkt a number', H(), claims({ cnf: { jkt: 5 } }), '401 cnf_unsupported'],
    ['payload with BOM', H(), `\ufeff${claims()}`, '401 malformed_token'],
    ['header with BOM', `\ufeff${JSON.stringify(H())}`, claims(), '401 malformed_token'],
    ['payload + trailing data', H(), `${claims()} x`, '401 malformed_token'],
    ['payload + /* comment */', H(), `${claims()}/*c*/`, '401 malformed_token'],
    ['payload an array', H(), JSON.stringify([m2mClaims()]), '401 malformed_token'],
    ['payload a JWT string', H(), JSON.stringify(good), '401 malformed_token'],
    ['organization_id 5', H(), claims({ organization_id: 5 }), '401 invalid_claim'],
    ['organization_id null', H(), claims({ organization_id: null }), '401 invalid_claim'],
    ['organization_id ""', H(), claims({ organization_id: '' }), '403 organization_token'],
    ['organization_id []', H(), claims({ organization_id: [] }), '401 invalid_claim'],
    ['\\u-escaped claim name', H(), claims().replace('"scope"', '"\\u0073cope"'), 'ok'],
  ];

  it('each shape gets its exact answer; whatever the library accepts, jose accepts too', async () => {
    const table: Record<string, string> = {};
    const expected: Record<string, string> = {};
    const looser: string[] = [];
    for (const [name, header, payload, want] of cases()) {
      const token = await signRaw(key, header, payload);
      const got = await outcome(v.authenticate(bearerReq(token), { scopes: ['read:products'] }));
      table[name] = got;
      expected[name] = want;
      if (got === 'ok' && (await cold(token)) !== 'ok') looser.push(name);
    }
    expect(table).toEqual(expected);
    expect(looser).toEqual([]);
  });

  it('alg confusion: none in any case, HS256 keyed with the public key, RS/ES/EdDSA mismatches', async () => {
    const { createHmac } = await import('node:crypto');
    const b = (x: unknown) => Buffer.from(JSON.stringify(x)).toString('base64url');
    const payload = b(m2mClaims());
    const results: string[] = [];
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      results.push(
        await outcome(v.verify(`${b({ alg, typ: 'at+jwt', kid: key.kid })}.${payload}.`)),
      );
    }
    for (const secret of [JSON.stringify(key.jwk), (await exportJWK(key.privateKey)).x as string]) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        const input = `${b({ alg, typ: 'at+jwt', kid: key.kid })}.${payload}`;
        const mac = createHmac(`sha${alg.slice(2)}`, secret)
          .update(input)
          .digest('base64url');
        results.push(await outcome(v.verify(`${input}.${mac}`)));
      }
    }
    for (const alg of ['RS256', 'PS256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']) {
      results.push(
        await outcome(
          v.verify(await signRaw(key, { alg, typ: 'at+jwt', kid: key.kid }, m2mClaims())),
        ),
      );
    }
    expect(results.slice(0, 10).every((r) => r === '401 alg_not_allowed')).toBe(true);
    // RS256/PS256 over an EC key, or the wrong curve: no key fits.
    expect(results.slice(10)).toEqual(Array(6).fill('401 key_mismatch'));
    // An all-zero ECDSA signature (CVE-2022-21449) and r = s = n.
    const [h, p] = good.split('.') as [string, string];
    const n = Buffer.from(
      'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
      'hex',
    );
    expect(await outcome(v.verify(`${h}.${p}.${Buffer.alloc(64).toString('base64url')}`))).toBe(
      '401 bad_signature',
    );
    expect(
      await outcome(v.verify(`${h}.${p}.${Buffer.concat([n, n]).toString('base64url')}`)),
    ).toBe('401 bad_signature');
  });
});

// ---------------------------------------------------------------------------------------------
// The Authorization header (RFC 6750 §2.1)
// ---------------------------------------------------------------------------------------------

describe('Authorization header grammar: a plain headers object, rawHeaders and a Web Request agree', () => {
  const forms = (t: string): [string, string, string][] => [
    ['Bearer', `Bearer ${t}`, 'ok'],
    ['bearer', `bearer ${t}`, 'ok'],
    ['BEARER', `BEARER ${t}`, 'ok'],
    ['two spaces', `Bearer  ${t}`, 'ok'],
    ['trailing space', `Bearer ${t} `, 'ok'],
    ['trailing tab', `Bearer ${t}\t`, 'ok'],
    ['leading space', ` Bearer ${t}`, 'ok'],
    ['tab separator', `Bearer\t${t}`, '400 malformed_header'],
    ['space then tab', `Bearer \t${t}`, '400 malformed_header'],
    ['NBSP separator', `Bearer\u00a0${t}`, '400 malformed_header'],
    ['trailing comma', `Bearer ${t},`, '400 malformed_header'],
    ['two credentials', `Bearer ${t}, Bearer ${t}`, '400 multiple_credentials'],
    ['Basic then Bearer', `Basic abc, Bearer ${t}`, '400 multiple_credentials'],
    ['empty then Bearer', `, Bearer ${t}`, '400 multiple_credentials'],
    ['two tokens', `Bearer ${t} ${t}`, '400 malformed_header'],
    ['Bearer Bearer', `Bearer Bearer ${t}`, '400 malformed_header'],
    ['empty', '', '401 missing_token'],
    ['scheme only', 'Bearer', '400 malformed_header'],
    ['scheme and space', 'Bearer ', '400 malformed_header'],
    ['Basic', 'Basic dXNlcjpwYXNz', '401 missing_token'],
    ['DPoP without the dpop option', `DPoP ${t}`, '401 missing_token'],
    ['Bearer=token', `Bearer=${t}`, '400 malformed_header'],
    ['no separator', `Bearer${t}`, '401 missing_token'],
    ['token68 padding =', `Bearer ${t}=`, '401 malformed_token'],
    ['token68 padding ==', `Bearer ${t}==`, '401 malformed_token'],
    ['non-ASCII in the token', `Bearer ${t}é`, '400 malformed_header'],
    ['{} after the token', `Bearer ${t}{}`, '400 malformed_header'],
    ['token68 charset only', 'Bearer a-b_c~d+e/f', '401 opaque_token'],
    ['trailing dot', `Bearer ${t}.`, '401 malformed_token'],
    ['leading dot', `Bearer .${t}`, '401 malformed_token'],
    ['five segments', 'Bearer a.b.c.d.e', '401 encrypted_token'],
    ['two segments', 'Bearer a.b', '401 malformed_token'],
    ['1 MB of a', `Bearer ${'a'.repeat(1_000_000)}`, '401 token_too_large'],
    ['token + 100k', `Bearer ${t}${'a'.repeat(100_000)}`, '401 token_too_large'],
  ];

  it('every form gets its exact answer, whichever way the header arrives', async () => {
    const got: Record<string, string[]> = {};
    const want: Record<string, string[]> = {};
    for (const [name, value, expected] of forms(good)) {
      const plain = await outcome(v.authenticate({ headers: { authorization: value } }));
      const raw = await outcome(
        v.authenticate({ headers: { authorization: value }, rawHeaders: ['Authorization', value] }),
      );
      const web = await outcome(
        v.authenticate(new Request('http://x/', { headers: { authorization: value } })),
      );
      got[name] = [plain, raw, web];
      want[name] = [expected, expected, expected];
    }
    expect(got).toEqual(want);
  });

  it('odd header containers: arrays, non-strings, duplicate raw fields, two spellings of the name', async () => {
    const t = good;
    const req = (r: unknown) => outcome(v.authenticate(r as { headers: Record<string, string> }));
    expect(await req({ headers: { authorization: [`Bearer ${t}`] } })).toBe('ok');
    expect(await req({ headers: { authorization: [`Bearer ${t}`, `Bearer ${t}`] } })).toBe(
      '400 multiple_credentials',
    );
    expect(await req({ headers: { authorization: 5 } })).toBe('401 missing_token');
    expect(await req({ headers: { authorization: null } })).toBe('401 missing_token');
    expect(await req({ headers: { authorization: { toString: () => `Bearer ${t}` } } })).toBe(
      '401 missing_token',
    );
    expect(await req({ headers: { authorization: `Bearer ${t}\u0000` } })).toBe(
      '400 malformed_header',
    );
    expect(await req({ headers: { authorization: `Bearer ${t}\r` } })).toBe('400 malformed_header');
    const rawTwice = ['Authorization', `Bearer ${t}`, 'authorization', `Bearer ${t}`];
    expect(await req({ headers: { authorization: `Bearer ${t}` }, rawHeaders: rawTwice })).toBe(
      '400 multiple_credentials',
    );
    const rawEmptyFirst = ['Authorization', '', 'authorization', `Bearer ${t}`];
    expect(await req({ headers: { authorization: '' }, rawHeaders: rawEmptyFirst })).toBe(
      '400 multiple_credentials',
    );
    expect(
      await req({ headers: { Authorization: 'Bearer x', authorization: `Bearer ${t}` } }),
    ).toBe('400 multiple_credentials');
  });

  it('1 MB pathological headers and cookies are answered in linear time (no ReDoS)', async () => {
    const N = 1_000_000;
    const vc = createVerifier({ ...base(), cookie: 'at' });
    const shapes: Record<string, string>[] = [
      { authorization: ' '.repeat(N) },
      { authorization: `${'\t'.repeat(N)}x` },
      { authorization: `Bearer${' '.repeat(N)}x y` },
      { authorization: `Bearer a${'='.repeat(N)}!` },
      { authorization: ','.repeat(N) },
      { authorization: `${', '.repeat(N / 2)}Bearer x` },
      { authorization: 'Bearer a, '.repeat(N / 10) },
      { authorization: 'Bearer '.repeat(N / 7) },
      { cookie: 'a=b; '.repeat(N / 5) },
      { cookie: ';'.repeat(N) },
      { cookie: 'at=; '.repeat(N / 5) },
      { cookie: `at=${' '.repeat(N)}x` },
    ];
    for (const headers of shapes) {
      const start = performance.now();
      const answer = await outcome(vc.authenticate({ headers }));
      expect(answer).toMatch(/^40[01] /);
      expect(performance.now() - start).toBeLessThan(1000);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Key metadata in the JWKS: RFC 8725 §3.1, one algorithm per key
// ---------------------------------------------------------------------------------------------

describe('a JWKS key is used only as its metadata allows, as jose does (static and fetched sets)', () => {
  it('alg, key_ops and use of the published key; kids of other JSON types', async () => {
    const rsa = await makeKey('RS256');
    const sign = async (k: TestKey, alg: string, kid?: unknown) => {
      const privateKey =
        alg === k.alg
          ? k.privateKey
          : ((await importJWK(await exportJWK(k.privateKey), alg)) as CryptoKey);
      return mint({ ...k, alg, privateKey }, m2mClaims(), {
        alg,
        ...(kid === undefined ? {} : { kid }),
      });
    };
    const cases: [string, JWK, string, string][] = [
      [
        'RSA key alg PS256, token RS256',
        { ...rsa.jwk, alg: 'PS256' },
        await sign(rsa, 'RS256'),
        '401 key_mismatch',
      ],
      [
        'RSA key alg RS384, token RS256',
        { ...rsa.jwk, alg: 'RS384' },
        await sign(rsa, 'RS256'),
        '401 key_mismatch',
      ],
      [
        'RSA key alg RSA-OAEP',
        { ...rsa.jwk, alg: 'RSA-OAEP' },
        await sign(rsa, 'RS256'),
        '401 key_mismatch',
      ],
      ['EC key alg ES384, token ES256', { ...key.jwk, alg: 'ES384' }, good, '401 key_mismatch'],
      ['EC key alg none', { ...key.jwk, alg: 'none' }, good, '401 key_mismatch'],
      ['EC key alg HS256', { ...key.jwk, alg: 'HS256' }, good, '401 key_mismatch'],
      ['EC key alg es256 (case)', { ...key.jwk, alg: 'es256' }, good, '401 key_mismatch'],
      ['key_ops [sign]', { ...key.jwk, key_ops: ['sign'] }, good, '401 key_mismatch'],
      ['key_ops [encrypt]', { ...key.jwk, key_ops: ['encrypt'] }, good, '401 key_mismatch'],
      ['key_ops []', { ...key.jwk, key_ops: [] }, good, '401 key_mismatch'],
      ['key_ops [verify]', { ...key.jwk, key_ops: ['verify'] }, good, 'ok'],
      ['x5c junk beside n/x', { ...key.jwk, x5c: ['junk'] }, good, 'ok'],
    ];
    const table: Record<string, string[]> = {};
    const want: Record<string, string[]> = {};
    for (const [name, jwk, token, expected] of cases) {
      const statics = await outcome(
        createVerifier({ ...base(), jwks: { keys: [jwk] } }).verify(token),
      );
      const fetched = await outcome(
        createVerifier({
          issuer: ISSUER,
          audience: AUDIENCE,
          jwksUri: `${ISSUER}/jwks`,
          fetch: (async () => Response.json({ keys: [jwk] })) as typeof fetch,
        }).verify(token),
      );
      const jose = await cold(token, [jwk]);
      table[name] = [statics, fetched, jose === 'ok' ? 'ok' : 'refused'];
      want[name] = [expected, expected, expected === 'ok' ? 'ok' : 'refused'];
    }
    expect(table).toEqual(want);
    // A kid that is not a string never matches its String() spelling.
    for (const kid of [5, ['a'], true, null, {}]) {
      const jwk = { ...key.jwk, kid } as unknown as JWK;
      const token = await mint(key, m2mClaims(), { kid: String(kid) });
      const fetched = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: `${ISSUER}/jwks`,
        fetch: (async () => Response.json({ keys: [jwk] })) as typeof fetch,
      });
      expect(await outcome(fetched.verify(token))).not.toBe('ok');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449)
// ---------------------------------------------------------------------------------------------

describe('DPoP proofs bent every way (RFC 9449 §4.3, §6.1, §7.1)', () => {
  let fx: DpopFixture;
  let pk: ProofKey;
  let pk2: ProofKey;
  beforeAll(async () => {
    fx = await dpopFixture();
    [pk, pk2] = await Promise.all([makeProofKey(), makeProofKey()]);
  });
  const U = `${ORIGIN}/products`;

  interface Case {
    readonly method?: string;
    readonly url?: string;
    readonly htm?: unknown;
    readonly htu?: unknown;
    readonly header?: Record<string, unknown>;
    readonly payload?: Record<string, unknown>;
    readonly scheme?: string;
    /** 'plain': no cnf; 'other': bound to pk2; 'extra': cnf with another member too. */
    readonly token?: 'plain' | 'other' | 'extra' | 'x5t';
    readonly signer?: 'other';
  }

  it('each proof shape gets its exact answer', async () => {
    const cases: Record<string, [Case, string]> = {
      baseline: [{}, 'ok'],
      'htm lower case': [{ htm: 'get' }, '401 dpop_htm_mismatch'],
      'htm "GET "': [{ htm: 'GET ' }, '401 dpop_htm_mismatch'],
      'htm HEAD on GET': [{ htm: 'HEAD' }, '401 dpop_htm_mismatch'],
      'htm GET on HEAD': [{ method: 'HEAD', htm: 'GET' }, '401 dpop_htm_mismatch'],
      'htm array': [{ htm: ['GET'] }, '401 dpop_proof_invalid'],
      'htu default port': [{ htu: 'https://api.shop.example:443/products' }, 'ok'],
      'htu upper-case host and scheme': [{ htu: 'HTTPS://API.SHOP.EXAMPLE/products' }, 'ok'],
      'htu upper-case path': [{ htu: `${ORIGIN}/Products` }, '401 dpop_htu_mismatch'],
      'htu with query (ignored)': [{ htu: `${U}?a=1` }, 'ok'],
      'htu with fragment (ignored)': [{ htu: `${U}#f` }, 'ok'],
      'htu with userinfo': [
        { htu: 'https://evil@api.shop.example/products' },
        '401 dpop_htu_mismatch',
      ],
      'htu host with trailing dot': [
        { htu: 'https://api.shop.example./products' },
        '401 dpop_htu_mismatch',
      ],
      'htu http': [{ htu: 'http://api.shop.example/products' }, '401 dpop_htu_mismatch'],
      'htu trailing slash': [{ htu: `${U}/` }, '401 dpop_htu_mismatch'],
      'htu %70 (unreserved escape)': [{ htu: `${ORIGIN}/%70roducts` }, 'ok'],
      'htu other origin': [{ htu: 'https://evil.example/products' }, '401 dpop_htu_mismatch'],
      'htu array': [{ htu: [U] }, '401 dpop_proof_invalid'],
      'request //products': [{ url: '//products' }, '401 dpop_htu_mismatch'],
      'request with a query': [{ url: '/products?x=1' }, 'ok'],
      'iat +3 s': [{ payload: { iatOffset: 3 } }, 'ok'],
      'iat +8 s': [{ payload: { iatOffset: 8 } }, '401 dpop_proof_stale'],
      'iat -63 s': [{ payload: { iatOffset: -63 } }, 'ok'],
      'iat -68 s': [{ payload: { iatOffset: -68 } }, '401 dpop_proof_stale'],
      'iat string': [{ payload: { iat: String(now()) } }, '401 dpop_proof_invalid'],
      'jti ""': [{ payload: { jti: '' } }, '401 dpop_proof_invalid'],
      'jti number': [{ payload: { jti: 5 } }, '401 dpop_proof_invalid'],
      'jti 5000 chars': [{ payload: { jti: 'j'.repeat(5000) } }, '401 dpop_proof_invalid'],
      'ath missing': [{ payload: { ath: undefined } }, '401 dpop_proof_invalid'],
      'ath padded with =': [{ payload: { ath: 'PAD' } }, '401 dpop_ath_mismatch'],
      'ath upper-cased': [{ payload: { ath: 'UPPER' } }, '401 dpop_ath_mismatch'],
      'typ DPOP+JWT': [{ header: { typ: 'DPOP+JWT' } }, 'ok'],
      'typ application/dpop+jwt': [{ header: { typ: 'application/dpop+jwt' } }, 'ok'],
      'typ at+jwt': [{ header: { typ: 'at+jwt' } }, '401 dpop_proof_invalid'],
      'typ absent': [{ header: { typ: undefined } }, '401 dpop_proof_invalid'],
      'alg none': [{ header: { alg: 'none' } }, '401 dpop_proof_alg'],
      'alg HS256': [{ header: { alg: 'HS256' } }, '401 dpop_proof_alg'],
      'alg ES384 on a P-256 jwk': [{ header: { alg: 'ES384' } }, '401 dpop_proof_invalid'],
      'jwk with d': [{ header: { jwk: 'D' } }, '401 dpop_proof_invalid'],
      'jwk oct': [{ header: { jwk: { kty: 'oct', k: 'AAAA' } } }, '401 dpop_proof_invalid'],
      'jwk absent': [{ header: { jwk: undefined } }, '401 dpop_proof_invalid'],
      'jwk key_ops [sign]': [{ header: { jwk: 'OPS' } }, '401 dpop_proof_invalid'],
      crit: [{ header: { crit: ['x'], x: 1 } }, '401 dpop_proof_invalid'],
      'signed by another key': [{ signer: 'other' }, '401 dpop_proof_signature'],
      'token bound to another key': [{ token: 'other' }, '401 dpop_key_mismatch'],
      'plain token with DPoP': [{ token: 'plain' }, '401 dpop_unbound_token'],
      'cnf with an extra member': [{ token: 'extra' }, '401 cnf_unsupported'],
      'cnf jkt + x5t#S256': [{ token: 'x5t' }, '401 cnf_unsupported'],
      'bound token as Bearer': [{ scheme: 'Bearer' }, '401 dpop_bound_token'],
      'scheme dpop (lower case)': [{ scheme: 'dpop' }, 'ok'],
    };
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [name, [c, expected]] of Object.entries(cases)) {
      const method = c.method ?? 'GET';
      const cnf =
        c.token === 'plain'
          ? undefined
          : c.token === 'other'
            ? { jkt: pk2.jkt }
            : c.token === 'extra'
              ? { jkt: pk.jkt, foo: 1 }
              : c.token === 'x5t'
                ? { jkt: pk.jkt, 'x5t#S256': 'abc' }
                : { jkt: pk.jkt };
      const token = await mint(fx.issuerKey, m2mClaims(cnf === undefined ? {} : { cnf }));
      const header: Record<string, unknown> = { ...c.header };
      if (header.jwk === 'D') header.jwk = { ...pk.publicJwk, d: 'AAAA' };
      if (header.jwk === 'OPS') header.jwk = { ...pk.publicJwk, key_ops: ['sign'] };
      if ('jwk' in header && header.jwk === undefined) header.jwk = undefined;
      const payload: Record<string, unknown> = { ...c.payload };
      if ('htm' in c) payload.htm = c.htm;
      if ('htu' in c) payload.htu = c.htu;
      if (typeof payload.iatOffset === 'number') {
        payload.iat = now() + payload.iatOffset;
        delete payload.iatOffset;
      }
      if (payload.ath === 'PAD') payload.ath = `${ath(token)}=`;
      if (payload.ath === 'UPPER') payload.ath = ath(token).toUpperCase();
      const signer = c.signer === 'other' ? { ...pk2, publicJwk: pk.publicJwk } : pk;
      const p = await proof(signer, method, U, token, { header, payload });
      const request = dpopRequest(token, p, {
        method,
        url: c.url ?? '/products',
        scheme: c.scheme ?? 'DPoP',
      });
      got[name] = await outcome(fx.verifier.authenticate(request));
      want[name] = expected;
    }
    expect(got).toEqual(want);
  });

  it('a proof is consumed once whatever the request URL spelling, the signature spelling (high S) or the jwk spelling', async () => {
    const token = await fx.bound(pk);
    const p = await proof(pk, 'GET', U, token);
    const answers: string[] = [];
    for (const url of [
      '/products',
      '/products?a=1',
      '/products?a=2',
      '/%70roducts',
      '/products#x',
      U,
      `${ORIGIN}:443/products`,
    ]) {
      answers.push(await outcome(fx.verifier.authenticate(dpopRequest(token, p, { url }))));
    }
    expect(answers).toEqual(['ok', ...Array(6).fill('401 dpop_replayed')]);

    // ECDSA malleability: (r, n - s) verifies too, and must not be a second use.
    const fresh = await proof(pk, 'GET', U, token);
    const [h, pl, sig] = fresh.split('.') as [string, string, string];
    const raw = Buffer.from(sig, 'base64url');
    const order = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const s = BigInt(`0x${raw.subarray(32).toString('hex')}`);
    const highS = Buffer.concat([
      raw.subarray(0, 32),
      Buffer.from((order - s).toString(16).padStart(64, '0'), 'hex'),
    ]);
    const twin = `${h}.${pl}.${highS.toString('base64url')}`;
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, twin)))).toBe('ok');
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, fresh)))).toBe(
      '401 dpop_replayed',
    );

    // The same jti under other spellings of the same htu, key or method.
    const jti = { payload: { jti: 'fixed-jti-s23' } };
    expect(
      await outcome(
        fx.verifier.authenticate(dpopRequest(token, await proof(pk, 'GET', U, token, jti))),
      ),
    ).toBe('ok');
    for (const [method, url, header] of [
      ['GET', `${U}?q=1`, {}],
      ['GET', `${U}#f`, {}],
      ['GET', 'https://API.shop.example:443/%70roducts', {}],
      ['GET', U, { jwk: { ...pk.publicJwk, kid: 'zz' } }],
    ] as [string, string, Record<string, unknown>][]) {
      const again = await proof(pk, method, url, token, { ...jti, header });
      expect(await outcome(fx.verifier.authenticate(dpopRequest(token, again, { method })))).toBe(
        '401 dpop_replayed',
      );
    }
    // The default in-memory store is shared by every verifier of the process.
    const sibling = createVerifier({
      ...base(),
      jwks: { keys: [fx.issuerKey.jwk] },
      dpop: { origin: ORIGIN },
    });
    const once = await proof(pk, 'GET', U, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, once)))).toBe('ok');
    expect(await outcome(sibling.authenticate(dpopRequest(token, once)))).toBe('401 dpop_replayed');
    // (A verifier given a store of its own does not see it: why instances must share one.)
    const isolated = createVerifier({
      ...base(),
      jwks: { keys: [fx.issuerKey.jwk] },
      dpop: { origin: ORIGIN, replay: new MemoryReplayStore() },
    });
    expect(await outcome(isolated.authenticate(dpopRequest(token, once)))).toBe('ok');
  });

  it('the error goes in the challenge of the scheme used (RFC 9449 §7.1), with scope on a 403', async () => {
    const vd = createVerifier({
      ...base(),
      jwks: { keys: [fx.issuerKey.jwk] },
      dpop: { origin: ORIGIN },
      resourceMetadata: {},
    });
    const challenge = async (request: Parameters<Verifier['authenticate']>[0], req = {}) => {
      try {
        await vd.authenticate(request, req);
        return 'ok';
      } catch (error) {
        if (!(error instanceof AuthError)) throw error;
        expect(error.headers['cache-control']).toBe('no-store');
        return `${error.status} ${error.headers['www-authenticate']}`;
      }
    };
    const bound = await fx.bound(pk, { scope: 'x' });
    const www = await challenge(dpopRequest(bound, await proof(pk, 'GET', U, bound)), {
      scopes: ['read:products'],
    });
    expect(www).toMatch(
      /^403 Bearer realm="https:\/\/shopping\.api", resource_metadata="[^"]+", DPoP realm="https:\/\/shopping\.api", error="insufficient_scope", error_description="[ -~]+", scope="read:products", algs="[A-Za-z0-9 ]+", resource_metadata="[^"]+"$/,
    );
    expect(
      await challenge({ method: 'GET', url: '/products', headers: {} }, { dpop: 'required' }),
    ).toMatch(
      /^401 DPoP realm="https:\/\/shopping\.api", algs="[^"]+", resource_metadata="[^"]+"$/,
    );
    expect(
      await challenge(
        {
          method: 'GET',
          url: '/products',
          headers: { authorization: `Bearer ${await fx.plain()}` },
        },
        { dpop: 'required' },
      ),
    ).toMatch(
      /^401 DPoP realm="[^"]+", error="invalid_token", error_description="[ -~]+", algs="[^"]+", resource_metadata="[^"]+"$/,
    );
    expect(await challenge(dpopRequest('a.b.c', ['x.y.z', 'x.y.z']))).toMatch(
      /^400 Bearer realm="[^"]+", resource_metadata="[^"]+", DPoP realm="[^"]+", error="invalid_request", /,
    );
    // optional never downgrades a Bearer token on a DPoP-required route to anonymous
    expect(
      await challenge(
        {
          method: 'GET',
          url: '/products',
          headers: { authorization: `Bearer ${await fx.plain()}` },
        },
        { optional: true, dpop: 'required' },
      ),
    ).toMatch(/^401 DPoP /);
  });
});

// ---------------------------------------------------------------------------------------------
// State the caller still holds: requirements and options objects mutated after use
// ---------------------------------------------------------------------------------------------

describe('requirements and options are read once: mutating them later never loosens a decision', () => {
  it('a requirements object mutated between two requests with the same (cached) token', async () => {
    const token = await mint(key, m2mClaims({ scope: 'read:products' }));
    const req: { scopes: string[]; machine?: boolean } = { scopes: ['read:products'] };
    expect(await outcome(v.authenticate(bearerReq(token), req))).toBe('ok');
    req.scopes.push('admin');
    expect(await outcome(v.authenticate(bearerReq(token), req))).toBe('403 insufficient_scope');
    req.scopes = ['admin'];
    expect(await outcome(v.authenticate(bearerReq(token), req))).toBe('403 insufficient_scope');
    const user = await mint(key, m2mClaims({ sub: 'user-1', scope: 'read:products' }));
    const userReq: { scopes: string[]; machine?: boolean } = { scopes: ['read:products'] };
    expect(await outcome(v.authenticate(bearerReq(user), userReq))).toBe('ok');
    userReq.machine = true;
    expect(await outcome(v.authenticate(bearerReq(user), userReq))).toBe('403 machine_required');
  });

  it('issuer, audience, algorithms, requiredClaims and the static keys are copied at creation', async () => {
    const audience = [AUDIENCE];
    const issuer = [ISSUER];
    const jwk = { ...key.jwk };
    const keys = [jwk];
    const algorithms = ['ES384'];
    const requiredClaims: string[] = [];
    const vv = createVerifier({ issuer, audience, jwks: { keys }, requiredClaims });
    const va = createVerifier({
      ...base(),
      algorithms: algorithms as NonNullable<VerifierOptions['algorithms']>,
    });
    algorithms.push('ES256');
    expect(await outcome(va.verify(good))).toBe('401 alg_not_allowed');
    audience.push('https://evil.api');
    expect(await outcome(vv.verify(await mint(key, m2mClaims({ aud: 'https://evil.api' }))))).toBe(
      '401 audience_mismatch',
    );
    issuer.push('https://evil.iss');
    expect(await outcome(vv.verify(await mint(key, m2mClaims({ iss: 'https://evil.iss' }))))).toBe(
      '401 issuer_mismatch',
    );
    const attacker = await makeKey('ES256');
    keys.push(attacker.jwk);
    expect(await outcome(vv.verify(await mint(attacker, m2mClaims())))).toBe('401 unknown_kid');
    Object.assign(jwk, { x: attacker.jwk.x, y: attacker.jwk.y });
    expect(await outcome(vv.verify(await mint({ ...attacker, kid: key.kid }, m2mClaims())))).toBe(
      '401 bad_signature',
    );
    requiredClaims.push('tenant');
    expect(await outcome(vv.verify(good))).toBe('ok');
  });

  it('prototype-named scopes and claims match nothing a token lacks', async () => {
    const none = await mint(key, m2mClaims({ scope: undefined }));
    for (const name of [
      'constructor',
      'toString',
      '__proto__',
      'hasOwnProperty',
      'valueOf',
      'length',
    ]) {
      expect(await outcome(v.verify(none, { scopes: [name] })), name).toBe(
        '403 insufficient_scope',
      );
      expect(await outcome(v.verify(none, { scopes: [name, 'zzz'], any: true }))).toBe(
        '403 insufficient_scope',
      );
      expect(await outcome(v.verify(good, { claimIncludes: { [name]: ['x'] } }))).toBe(
        '403 claim_mismatch',
      );
      expect(await outcome(v.verify(good, { claimEquals: { [name]: 'x' } }))).toBe(
        '403 claim_mismatch',
      );
      expect(
        await outcome(createVerifier({ ...base(), requiredClaims: [name] }).verify(good)),
      ).toBe('401 missing_claim');
    }
    const roles = await mint(key, m2mClaims({ roles: 'admins a  b' }));
    expect(await outcome(v.verify(roles, { claimIncludes: { roles: ['admin'] } }))).toBe(
      '403 claim_mismatch',
    );
    expect(await outcome(v.verify(roles, { claimIncludes: { roles: ['length'] } }))).toBe(
      '403 claim_mismatch',
    );
    expect(
      await outcome(
        v.verify(await mint(key, m2mClaims({ tenant: '5' })), { claimEquals: { tenant: 5 } }),
      ),
    ).toBe('403 claim_mismatch');
  });

  it('an organization that is not exactly the token’s matches nothing; contradictory options throw', async () => {
    const acme = await mint(key, m2mClaims({ organization_id: 'acme' }));
    for (const organization of [
      new String('acme'),
      ['acme'],
      { toString: () => 'acme' },
      '',
      undefined,
      null,
      ' acme',
      'ACME',
    ]) {
      expect(await outcome(v.verify(acme, { organization } as never))).toBe(
        '403 organization_mismatch',
      );
    }
    expect(() => v.guard({ organization: 'acme', anyOrganization: true })).toThrow(TypeError);
    expect(await outcome(v.verify(acme, { scopes: [], any: true }))).toBe('403 organization_token');
    const ov = createVerifier({ ...base(), organizations: true });
    const orgToken = (aud: unknown, extra = {}) => mint(key, m2mClaims({ aud, ...extra }));
    expect(
      await outcome(
        ov.verify(await orgToken('urn:logto:organization:acme'), { organization: 'acme' }),
      ),
    ).toBe('ok');
    expect(
      await outcome(
        ov.verify(await orgToken('URN:LOGTO:ORGANIZATION:acme'), { organization: 'acme' }),
      ),
    ).toBe('401 audience_mismatch');
    expect(
      await outcome(
        ov.verify(await orgToken('urn:logto:organization:acme', { organization_id: 'other' }), {
          organization: 'acme',
        }),
      ),
    ).toBe('401 invalid_claim');
    expect(
      await outcome(
        ov.verify(await orgToken(['urn:logto:organization:other', 'urn:logto:organization:acme']), {
          organization: 'acme',
        }),
      ),
    ).toBe('401 invalid_claim');
    expect(
      await outcome(ov.verify(await orgToken('urn:logto:organization:'), { organization: '' })),
    ).toBe('401 audience_mismatch');
  });
});

// ---------------------------------------------------------------------------------------------
// Hooks, cookies, getToken
// ---------------------------------------------------------------------------------------------

describe('hooks that misbehave fail closed; cookies and getToken obey the header rules', () => {
  it('onRejected that throws, rejects or never settles changes nothing and leaks no rejection', async () => {
    const unhandled: unknown[] = [];
    const record = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', record);
    try {
      for (const onRejected of [
        async () => {
          throw new Error('async');
        },
        () => {
          throw new Error('sync');
        },
        () => new Promise<void>(() => undefined),
      ]) {
        const vv = createVerifier({
          ...base(),
          onRejected: onRejected as NonNullable<VerifierOptions['onRejected']>,
        });
        expect(await outcome(vv.verify('x.y.z'))).toBe('401 malformed_token');
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', record);
    }
  });

  it('isRevoked answering anything but a boolean (or a promise of one) is a 503; checks need exactly true', async () => {
    const thenable = (value: boolean) => ({
      then: (resolve: (x: boolean) => void) => resolve(value),
    });
    for (const hook of [
      () => 1,
      () => 'false',
      () => thenable(false),
      () => new Boolean(false),
      () => undefined,
    ]) {
      const vv = createVerifier({ ...base(), isRevoked: hook as never, revocationTimeout: 0.3 });
      expect(await outcome(vv.verify(good))).toBe('503 revocation_unavailable');
    }
    for (const check of [
      () => 1,
      () => 'true',
      () => thenable(true),
      () => new Boolean(true),
      async () => 1,
    ]) {
      expect(await outcome(v.verify(good, { checks: { c: check as never } }))).toBe(
        '403 check_failed',
      );
    }
    const slow = createVerifier({ ...base(), checkTimeout: 0.3 });
    expect(
      await outcome(slow.verify(good, { checks: { c: () => new Promise(() => undefined) } })),
    ).toBe('503 check_unavailable');
  });

  it('getToken answering non-strings, padded or prefixed tokens is refused, never accepted or a crash', async () => {
    const cases: [() => unknown, string][] = [
      [() => 123, '400 malformed_header'],
      [() => ({}), '400 malformed_header'],
      [() => [good], '400 malformed_header'],
      [() => new String(good), '400 malformed_header'],
      [async () => good, '400 malformed_header'],
      [() => ` ${good} `, '400 malformed_header'],
      [() => `Bearer ${good}`, '400 malformed_header'],
      [() => `${good}\u0000`, '400 malformed_header'],
      [() => '', '401 missing_token'],
      [() => null, '401 missing_token'],
      [() => 'a'.repeat(10_000_000), '401 token_too_large'],
      [() => good, 'ok'],
    ];
    for (const [getToken, expected] of cases) {
      const vg = createVerifier({ ...base(), getToken: getToken as never });
      expect(await outcome(vg.authenticate({ headers: {} }))).toBe(expected);
    }
    const vg = createVerifier({ ...base(), getToken: () => good });
    expect(await outcome(vg.authenticate(bearerReq(good)))).toBe('400 multiple_credentials');
  });

  it('cookies: exact name, one occurrence, the token grammar', async () => {
    const vk = createVerifier({ ...base(), cookie: 'access_token' });
    const cases: [string, string][] = [
      [`access_token=${good}`, 'ok'],
      [`a=b;access_token=${good}; c=d`, 'ok'],
      [`access_token="${good}"`, 'ok'],
      [` access_token = ${good} `, 'ok'],
      [`access_token=${good}; access_token=${good}`, '400 multiple_credentials'],
      [`access_token=; access_token=${good}`, '400 multiple_credentials'],
      [`Access_Token=${good}`, '401 missing_token'],
      [`xaccess_token=${good}`, '401 missing_token'],
      [`access_token2=${good}`, '401 missing_token'],
      [`a=b, access_token=${good}`, '401 missing_token'],
      ['access_token=', '401 missing_token'],
      [`access_token=${encodeURIComponent(good).replace(/e/g, '%65')}`, '400 malformed_header'],
      [`access_token=${good}{}`, '400 malformed_header'],
      [`access_token=Bearer ${good}`, '400 malformed_header'],
      [`access_token=${'a'.repeat(100_000)}`, '401 token_too_large'],
    ];
    for (const [cookie, expected] of cases) {
      expect(await outcome(vk.authenticate({ headers: { cookie } })), cookie.slice(0, 30)).toBe(
        expected,
      );
    }
    expect(
      await outcome(
        vk.authenticate({
          headers: { cookie: `access_token=${good}`, authorization: `Bearer ${good}` },
        }),
      ),
    ).toBe('400 multiple_credentials');
    const twice = ['Cookie', `access_token=${good}`, 'Cookie', `access_token=${good}`];
    expect(
      await outcome(
        vk.authenticate({ headers: { cookie: `access_token=${good}` }, rawHeaders: twice }),
      ),
    ).toBe('400 multiple_credentials');
    for (const name of ['__proto__', 'constructor']) {
      const odd = createVerifier({ ...base(), cookie: name });
      expect(await outcome(odd.authenticate({ headers: { cookie: 'x=1' } }))).toBe(
        '401 missing_token',
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Key-set faults through the `fetch` option
// ---------------------------------------------------------------------------------------------

describe('JWKS and discovery faults: a 503 with Retry-After within the timeout, never a 401 or a crash', () => {
  const J = `${ISSUER}/jwks`;
  const D = `${ISSUER}/.well-known/openid-configuration`;
  const through = (fetchImpl: (url: string) => unknown) =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: J,
      keys: { timeout: 0.5 },
      fetch: fetchImpl as unknown as typeof fetch,
    });
  const expect503 = async (vv: Verifier) => {
    const start = Date.now();
    try {
      await vv.verify(good);
      throw new Error('accepted');
    } catch (error) {
      expect(error).toBeInstanceOf(AuthError);
      const e = error as AuthError;
      expect(`${e.status} ${e.reason}`).toBe('503 keys_unavailable');
      expect(e.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expect(e.headers['cache-control']).toBe('no-store');
    }
    expect(Date.now() - start).toBeLessThan(2000);
  };

  it('a fetch that ignores the abort signal, drips, floods, lies or throws', async () => {
    const chunk = new Uint8Array(1 << 20).fill(32);
    const faults: ((url: string) => unknown)[] = [
      () => new Promise(() => undefined),
      () => {
        throw new Error('sync');
      },
      async () => ({}),
      async () => null,
      async () => 'x',
      async () =>
        new Response(
          new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode('{"keys":[')) }),
        ),
      async () => new Response(new ReadableStream({ pull: (c) => c.enqueue(chunk) })),
      async () => new Response(null),
      async () => Response.json(null),
      async () => Response.json({ keys: {} }),
      async () => new Response(`{"__proto__":{"keys":[${JSON.stringify(key.jwk)}]}}`),
      async () => new Response(null, { status: 302, headers: { location: J } }),
      async () => new Response('x', { status: 429, headers: { 'retry-after': '9999' } }),
      async () => ({
        ok: true,
        status: 200,
        headers: new Headers(),
        get body() {
          throw new Error('body');
        },
        text: async () => {
          throw new Error('text');
        },
        json: async () => {
          throw new Error('json');
        },
        arrayBuffer: async () => {
          throw new Error('arrayBuffer');
        },
      }),
    ];
    for (const fault of faults) await expect503(through(fault));
    // Duplicate members: the last `keys` wins, as JSON.parse has it.
    const dup = through(
      async () => new Response(`{"keys":[],"keys":[${JSON.stringify(key.jwk)}]}`),
    );
    expect(await outcome(dup.verify(good))).toBe('ok');
  });

  it('discovery: the document must name exactly this issuer and a usable https JWKS URL', async () => {
    const disco = (doc: unknown) =>
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        keys: { timeout: 0.5 },
        fetch: (async (url: string) => {
          if (String(url) === D) return Response.json(doc);
          return Response.json({ keys: [key.jwk] });
        }) as unknown as typeof fetch,
      });
    expect(await outcome(disco({ issuer: ISSUER, jwks_uri: J }).verify(good))).toBe('ok');
    for (const doc of [
      { issuer: 'https://evil.example/oidc', jwks_uri: J },
      { jwks_uri: J },
      { issuer: `${ISSUER}/`, jwks_uri: J },
      { issuer: ISSUER, jwks_uri: 'http://tenant.example.test/oidc/jwks' },
      { issuer: ISSUER, jwks_uri: '/oidc/jwks' },
      { issuer: ISSUER, jwks_uri: 'https://u:p@tenant.example.test/oidc/jwks' },
      { issuer: ISSUER, jwks_uri: 'file:///etc/passwd' },
      {
        issuer: ISSUER,
        jwks_uri: `data:application/json,${encodeURIComponent(JSON.stringify({ keys: [key.jwk] }))}`,
      },
      { issuer: ISSUER, jwks_uri: 5 },
    ]) {
      await expect503(disco(doc));
    }
  });

  it('several issuers: a key vouches only for the issuer whose JWKS listed it', async () => {
    const kB = await makeKey('ES256');
    const A = 'https://a.example/oidc';
    const B = 'https://b.example/oidc';
    const vm = createVerifier({
      issuer: [A, B],
      audience: AUDIENCE,
      fetch: (async (url: string) => {
        const u = String(url);
        for (const [iss, k] of [
          [A, key],
          [B, kB],
        ] as const) {
          if (u === `${iss}/.well-known/openid-configuration`)
            return Response.json({ issuer: iss, jwks_uri: `${iss}/jwks` });
          if (u === `${iss}/jwks`) return Response.json({ keys: [k.jwk] });
        }
        return new Response('', { status: 404 });
      }) as unknown as typeof fetch,
    });
    expect(await outcome(vm.verify(await mint(key, m2mClaims({ iss: A }))))).toBe('ok');
    expect(await outcome(vm.verify(await mint(kB, m2mClaims({ iss: B }))))).toBe('ok');
    expect(await outcome(vm.verify(await mint(key, m2mClaims({ iss: B }))))).toBe(
      '401 unknown_kid',
    );
    expect(
      await outcome(vm.verify(await mint(key, m2mClaims({ iss: B }), { kid: undefined }))),
    ).toBe('401 bad_signature');
    expect(
      await outcome(vm.verify(await mint({ ...key, kid: kB.kid }, m2mClaims({ iss: B })))),
    ).toBe('401 bad_signature');
  });
});

describe('load on the issuer stays bounded, request-scoped or not', () => {
  it.each([false, true])(
    'requestScoped %s: 50 cold requests, a kid flood, a probe and warm() storm',
    async (requestScoped) => {
      let fetches = 0;
      const slow = async () => {
        fetches++;
        await new Promise((resolve) => setTimeout(resolve, 100));
        return Response.json({ keys: [key.jwk] });
      };
      const vv = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: `${ISSUER}/jwks`,
        requestScoped,
        fetch: slow as unknown as typeof fetch,
      });
      const tokens = await Promise.all(Array.from({ length: 50 }, () => mint(key, m2mClaims())));
      expect(new Set(await Promise.all(tokens.map((t) => outcome(vv.verify(t)))))).toEqual(
        new Set(['ok']),
      );
      expect(fetches).toBe(1);
      const flood = await Promise.all(
        Array.from({ length: 50 }, (_, i) => mint({ ...key, kid: `k${i}` }, m2mClaims())),
      );
      expect(new Set(await Promise.all(flood.map((t) => outcome(vv.verify(t)))))).toEqual(
        new Set(['401 unknown_kid']),
      );
      expect(fetches).toBe(1);
      let failures = 0;
      const down = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: `${ISSUER}/jwks`,
        requestScoped,
        fetch: (async () => {
          failures++;
          throw new Error('down');
        }) as unknown as typeof fetch,
      });
      for (let i = 0; i < 200; i++) down.health();
      const answers = await Promise.all(tokens.map((t) => outcome(down.verify(t))));
      for (let i = 0; i < 100; i++) await down.warm().catch(() => undefined);
      expect(new Set(answers)).toEqual(new Set(['503 keys_unavailable']));
      expect(failures).toBeLessThanOrEqual(2);
    },
  );
});

describe('DPoP server nonces and the proof clock', () => {
  it('only the exact nonce this secret issued is accepted; no other spelling of it', async () => {
    const secret = 'a-long-enough-secret-for-nonces-123456';
    const fx = await dpopFixture({ dpop: { origin: ORIGIN, nonce: { secret } } });
    const fx2 = await dpopFixture(
      { dpop: { origin: ORIGIN, nonce: { secret: 'another-long-enough-secret-for-nonces-99' } } },
      fx.issuerKey,
    );
    const pk = await makeProofKey();
    const token = await fx.bound(pk);
    const U = `${ORIGIN}/products`;
    const nonceOf = async (f: DpopFixture) => {
      try {
        await f.verifier.authenticate(dpopRequest(token, await proof(pk, 'GET', U, token)));
      } catch (error) {
        expect((error as AuthError).reason).toBe('dpop_nonce_required');
        return (error as AuthError).headers['dpop-nonce'] as string;
      }
      throw new Error('accepted without a nonce');
    };
    const nonce = await nonceOf(fx);
    const foreign = await nonceOf(fx2);
    const [step, mac] = nonce.split('.') as [string, string];
    const last = mac.at(-1) === 'A' ? 'B' : 'A';
    for (const value of [
      foreign,
      `0${step}.${mac}`,
      `${Number(step) + 1}.${mac}`,
      `+${step}.${mac}`,
      `${step}e0.${mac}`,
      `0x${Number(step).toString(16)}.${mac}`,
      ` ${nonce}`,
      `${nonce}=`,
      `${step}.${mac.toUpperCase()}`,
      `${step}.${mac.slice(0, -1)}${last}`,
      Number(step),
      [nonce],
      '__proto__',
      '',
      'a'.repeat(5000),
    ]) {
      const p = await proof(pk, 'GET', U, token, { payload: { nonce: value } });
      expect(
        await outcome(fx.verifier.authenticate(dpopRequest(token, p))),
        String(value).slice(0, 40),
      ).toBe('401 dpop_nonce_required');
    }
    const p = await proof(pk, 'GET', U, token, { payload: { nonce } });
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
  });

  it.each([
    [300, 60],
    [0, 60],
    [5, 1],
    [60, 300],
  ])(
    'clockTolerance %i, maxAge %i: a proof’s window is maxAge + min(tolerance, 60) back, min(tolerance, 60) ahead',
    async (clockTolerance, maxAge) => {
      const fx = await dpopFixture({ clockTolerance, dpop: { origin: ORIGIN, maxAge } });
      const pk = await makeProofKey();
      const token = await fx.bound(pk);
      const skew = Math.min(clockTolerance, 60);
      const answers: string[] = [];
      for (const delta of [-(maxAge + skew) + 2, -(maxAge + skew) - 3, skew - 2, skew + 3, 63]) {
        const p = await proof(pk, 'GET', `${ORIGIN}/products`, token, {
          payload: { iat: now() + delta },
        });
        answers.push(await outcome(fx.verifier.authenticate(dpopRequest(token, p))));
      }
      const stale = '401 dpop_proof_stale';
      expect(answers).toEqual(['ok', stale, 'ok', stale, stale]);
    },
  );
});

describe('verify() with what is not a token string', () => {
  it('is a 401, never a throw', async () => {
    for (const value of [
      undefined,
      null,
      5,
      new String(good),
      [good],
      ` ${good}`,
      `${good}\n`,
      `Bearer ${good}`,
      Buffer.from(good),
    ]) {
      expect(await outcome(v.verify(value as string))).toBe('401 malformed_token');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Leaks
// ---------------------------------------------------------------------------------------------

describe('no part of a token reaches an answer, a hook, an event or an inspected error', () => {
  it('twenty hostile ways of sending a real token', async () => {
    const seen: string[] = [];
    const rejections: unknown[] = [];
    const listener = (message: unknown) =>
      seen.push(inspect(message, { depth: 8, showHidden: true }));
    for (const channel of Object.values(CHANNELS)) subscribe(channel, listener);
    try {
      const vv = createVerifier({ ...base(), cookie: 'at', onRejected: (e) => rejections.push(e) });
      const [h, p, sig] = good.split('.') as [string, string, string];
      const flip = (x: string) => `${x.slice(0, -2)}${x.at(-2) === 'A' ? 'B' : 'A'}${x.at(-1)}`;
      const corpus: Record<string, string>[] = [
        { authorization: `Bearer ${good}` },
        { authorization: `Bearer ${h}.${p}.${flip(sig)}` },
        { authorization: `Bearer ${good}.${sig}` },
        { authorization: `Bearer ${good} ${good}` },
        { authorization: `Bearer\t${good}` },
        { authorization: `Bearer ${good}, Bearer ${good}` },
        { authorization: `Bearer ${good}{}` },
        { authorization: `Bearer ${good}=` },
        { authorization: `Bearer ${good}`, cookie: `at=${good}` },
        { cookie: `at=${good}; at=${good}` },
        { cookie: `at=${good}{}` },
        { authorization: `Basic ${good}` },
        { authorization: `DPoP ${good}` },
        { authorization: `Bearer ${sig}` },
        { authorization: `Bearer ${h}.${sig}` },
        { authorization: `Bearer ${h}.${p}.${sig}.${sig}.${sig}` },
        { authorization: `Bearer ${good}${'A'.repeat(9000)}` },
        { authorization: `Bearer ${sig}.${p}.${sig}` },
        { authorization: `Bearer ${h}.${sig}.${sig}` },
      ];
      const leaks: string[] = [];
      for (const headers of corpus) {
        seen.length = 0;
        rejections.length = 0;
        let faces = '';
        try {
          await vv.authenticate({ headers }, { scopes: ['zzz'] });
        } catch (error) {
          const e = error as AuthError;
          faces = `${inspect(e, { depth: 8, showHidden: true })}${JSON.stringify(e.headers)}${JSON.stringify(e.body)}${e.message}`;
        }
        const all = `${seen.join('\n')}${inspect(rejections, { depth: 8, showHidden: true })}${faces}`;
        for (const part of [
          h,
          p,
          sig,
          flip(sig),
          sig.slice(0, 20),
          sig.slice(-20),
          p.slice(10, 40),
        ]) {
          if (all.includes(part))
            leaks.push(`${Object.values(headers)[0]?.slice(0, 12)}: ${part.slice(0, 8)}`);
        }
      }
      expect(leaks).toEqual([]);
    } finally {
      for (const channel of Object.values(CHANNELS)) unsubscribe(channel, listener);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------------

/** Writes `text` as is on a fresh connection; everything the server sends until it closes. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.write(text, 'latin1'));
    socket.setTimeout(4000, () => {
      chunks.push(Buffer.from('\nTIMEOUT'));
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

describe('every example server: split Authorization fields, HEAD, obs-text, pipelining', () => {
  it.each(targets.map((target) => [target.name, target] as const))('%s', async (_name, target) => {
    const running = await target.start(createVerifier(base()));
    try {
      const port = Number(new URL(running.url).port);
      const line = (headers: string, method = 'GET', path = '/products') =>
        `${method} ${path} HTTP/1.1\r\nHost: a\r\n${headers}Connection: close\r\n\r\n`;
      const status = async (text: string) => {
        const answer = await exchange(port, text);
        expect(answer).not.toContain('TIMEOUT');
        expect(answer).not.toContain(good.split('.')[2] as string);
        return [...answer.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => m[1]).join('+');
      };
      for (const fields of [
        `Authorization:\r\nAuthorization: Bearer ${good}\r\n`,
        `Authorization: Bearer ${good}\r\nAuthorization:\r\n`,
        `Authorization:   \r\nAuthorization: Bearer ${good}\r\n`,
        `Authorization: Bearer ${good}\r\nAuthorization: Basic abc\r\n`,
        `Authorization: Basic abc\r\nAuthorization: Bearer ${good}\r\n`,
        `Authorization: Bearer ${good}\u00e9\r\n`,
      ]) {
        expect(await status(line(fields))).toBe('400');
      }
      expect(await status(line(`AUTHORIZATION: bEaReR ${good}\r\n`))).toBe('200');
      expect(
        await status(
          `GET /products HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${good}\r\n\r\n${line('')}`,
        ),
      ).toBe('200+401');
      const head = await exchange(port, line('', 'HEAD'));
      expect(head).toMatch(/^HTTP\/1\.1 (401|404) /);
      if (head.startsWith('HTTP/1.1 401'))
        expect(head).toMatch(/\r\nwww-authenticate: Bearer realm="https:\/\/shopping\.api"/i);
    } finally {
      await running.close();
    }
  });
});

describe('route options on five adapters over loopback: machine, organization, optional, dpop', () => {
  const PUB = 'https://api.shop.example';
  const routes: Record<string, Record<string, unknown>> = {
    m: { machine: true },
    org: { organization: true },
    any: { anyOrganization: true },
    opt: { optional: true },
    g: {},
    dreq: { dpop: 'required' },
    ddis: { dpop: 'disabled' },
    optdreq: { optional: true, dpop: 'required' },
  };
  const path = (name: string) => (name === 'org' ? '/orgs/:orgId/org' : `/${name}`);
  const show = (auth: unknown) => {
    const a = auth as Partial<AuthInfo> | undefined | null;
    return JSON.stringify({ sub: a?.subject ?? null, org: a?.organizationId ?? null });
  };
  type App = () => Promise<{ url: string; close(): Promise<void> }>;
  const apps = (vv: Verifier): Record<string, App> => ({
    async express() {
      const express = (await import('express')).default;
      const { requireAuth } = await import('resource-guard/express');
      const app = express();
      for (const [name, o] of Object.entries(routes)) {
        const options = {
          ...o,
          ...(o.organization
            ? { organization: (req: { params: Record<string, string> }) => req.params.orgId }
            : {}),
        };
        app.get(path(name), requireAuth(vv, options as never), (req, res) => {
          res.type('json').send(show((req as { auth?: unknown }).auth));
        });
      }
      return listen(createServer(app));
    },
    async koa() {
      const Koa = (await import('koa')).default;
      const Router = (await import('@koa/router')).default;
      const { requireAuth } = await import('resource-guard/koa');
      const router = new Router();
      for (const [name, o] of Object.entries(routes)) {
        const options = {
          ...o,
          ...(o.organization
            ? { organization: (ctx: { params: Record<string, string> }) => ctx.params.orgId }
            : {}),
        };
        router.get(path(name), requireAuth(vv, options as never), (ctx) => {
          ctx.type = 'json';
          ctx.body = show(ctx.state.auth);
        });
      }
      return listen(createServer(new Koa().use(router.routes()).callback()));
    },
    async fastify() {
      const Fastify = (await import('fastify')).default;
      const { requireAuth } = await import('resource-guard/fastify');
      const app = Fastify();
      for (const [name, o] of Object.entries(routes)) {
        const options = {
          ...o,
          ...(o.organization
            ? {
                organization: (r: { params: unknown }) =>
                  (r.params as Record<string, string>).orgId,
              }
            : {}),
        };
        app.get(path(name), { onRequest: requireAuth(vv, options as never) }, async (r, reply) =>
          reply.type('application/json').send(show((r as { auth?: unknown }).auth)),
        );
      }
      await app.listen({ port: 0, host: '127.0.0.1' });
      return {
        url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
        close: () => app.close(),
      };
    },
    async hono() {
      const { Hono } = await import('hono');
      const { createAdaptorServer } = await import('@hono/node-server');
      const { requireAuth } = await import('resource-guard/hono');
      const app = new Hono();
      for (const [name, o] of Object.entries(routes)) {
        const options = {
          ...o,
          ...(o.organization
            ? { organization: (c: { req: { param(k: string): string } }) => c.req.param('orgId') }
            : {}),
        };
        app.get(path(name), requireAuth(vv, options as never) as never, (c) =>
          c.body(show((c as unknown as { get(k: string): unknown }).get('auth')), 200, {
            'content-type': 'application/json',
          }),
        );
      }
      return listen(createAdaptorServer({ fetch: app.fetch }) as Server);
    },
    async hapi() {
      const Hapi = (await import('@hapi/hapi')).default;
      const { resourceGuard, SCHEME } = await import('resource-guard/hapi');
      const server = Hapi.server({ port: 0, host: '127.0.0.1' });
      await server.register({ plugin: resourceGuard, options: { verifier: vv } });
      for (const [name, o] of Object.entries(routes)) {
        const { optional, ...rest } = o;
        const options = {
          ...rest,
          ...(o.organization
            ? { organization: (r: { params: Record<string, string> }) => r.params.orgId }
            : {}),
        };
        server.auth.strategy(name, SCHEME, options as never);
        server.route({
          method: 'GET',
          path: path(name).replace(':orgId', '{orgId}'),
          options: { auth: { strategy: name, mode: optional ? 'optional' : 'required' } },
          handler: (r) => show((r.auth.credentials as { auth?: unknown } | null)?.auth),
        });
      }
      await server.start();
      return { url: server.info.uri, close: () => server.stop({ timeout: 0 }) };
    },
  });

  it('the same answers everywhere', async () => {
    const pk = await makeProofKey();
    const vv = createVerifier({ ...base(), organizations: true, dpop: { origin: PUB } });
    const user = await mint(key, m2mClaims({ sub: 'user-1' }));
    const orgLevel = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const orgToken = await mint(key, m2mClaims({ aud: 'urn:logto:organization:acme' }));
    const bound = await mint(key, m2mClaims({ cnf: { jkt: pk.jkt } }));
    const A = '{"sub":"app-123","org":"acme"}';
    const M = '{"sub":"app-123","org":null}';
    const ANON = '{"sub":null,"org":null}';
    /** [name, path, token or marker, scheme, expected status and body] */
    const requests: [string, string, string | undefined, string | undefined, string][] = [
      ['user on machine route', '/m', user, undefined, '403'],
      ['m2m on machine route', '/m', good, undefined, `200 ${M}`],
      ['org-level token on machine route', '/m', orgLevel, undefined, '403'],
      ['org-level token on global route', '/g', orgLevel, undefined, '403'],
      ['org token on global route', '/g', orgToken, undefined, '401'],
      ['org token on anyOrganization', '/any', orgToken, undefined, `200 ${A}`],
      ['org token on its org', '/orgs/acme/org', orgToken, undefined, `200 ${A}`],
      ['org token on another org', '/orgs/other/org', orgToken, undefined, '403'],
      ['org-level token, %-encoded org', '/orgs/ac%6De/org', orgLevel, undefined, `200 ${A}`],
      ['org-level token, upper-case org', '/orgs/ACME/org', orgLevel, undefined, '403'],
      ['org-level token, org + space', '/orgs/acme%20/org', orgLevel, undefined, '403'],
      ['global token on an org route', '/orgs/acme/org', good, undefined, '403'],
      ['optional, nothing', '/opt', undefined, undefined, `200 ${ANON}`],
      ['optional, Basic', '/opt', 'Basic abc', 'raw', `200 ${ANON}`],
      ['optional, bad token', '/opt', 'a.b.c', undefined, '401'],
      ['optional, org-level token', '/opt', orgLevel, undefined, '403'],
      ['optional, DPoP without proof', '/opt', good, 'DPoP-noproof', '401'],
      ['Bearer on dpop required', '/dreq', good, undefined, '401'],
      ['bound token as Bearer', '/dreq', bound, undefined, '401'],
      ['bound token with proof', '/dreq', bound, 'DPoP', `200 ${M}`],
      ['bound token on dpop disabled', '/ddis', bound, 'DPoP', '401'],
      ['bound token on default route', '/g', bound, 'DPoP', `200 ${M}`],
      ['HEAD with a GET proof', '/g', bound, 'DPoP-HEAD', '401'],
      ['optional + required, nothing', '/optdreq', undefined, undefined, `200 ${ANON}`],
      ['optional + required, Bearer', '/optdreq', good, undefined, '401'],
    ];
    const got: Record<string, string[]> = {};
    const want: Record<string, string[]> = {};
    for (const [adapter, build] of Object.entries(apps(vv))) {
      const running = await build();
      try {
        for (const [name, target, token, scheme, expected] of requests) {
          const headers: Record<string, string> = {};
          let method = 'GET';
          if (scheme === 'raw' && token) headers.authorization = token;
          else if (scheme === 'DPoP-noproof' && token) headers.authorization = `DPoP ${token}`;
          else if (scheme?.startsWith('DPoP') && token) {
            headers.authorization = `DPoP ${token}`;
            headers.dpop = await proof(pk, 'GET', PUB + target, token);
            if (scheme === 'DPoP-HEAD') method = 'HEAD';
          } else if (token) headers.authorization = `Bearer ${token}`;
          const answer = await fetch(running.url + target, { headers, method });
          const body = method === 'HEAD' ? '' : await answer.text();
          (got[name] ??= []).push(
            `${adapter} ${answer.status}${answer.status === 200 ? ` ${body}` : ''}`,
          );
          (want[name] ??= []).push(`${adapter} ${expected}`);
        }
      } finally {
        await running.close();
      }
    }
    expect(got).toEqual(want);
  });
});

describe('a handler that mutates what it is handed cannot change the next answer for the same token', () => {
  it('Hapi credentials.scope is a fresh copy per request; Express req.auth is frozen', async () => {
    const Hapi = (await import('@hapi/hapi')).default;
    const { resourceGuard, SCHEME } = await import('resource-guard/hapi');
    const server = Hapi.server();
    await server.register({ plugin: resourceGuard, options: { verifier: v } });
    server.auth.strategy('s23', SCHEME, {});
    server.route({
      method: 'GET',
      path: '/',
      options: { auth: 's23' },
      handler: (request) => {
        (request.auth.credentials as { scope: string[] }).scope.push('admin');
        return 'ok';
      },
    });
    server.route({
      method: 'GET',
      path: '/admin',
      options: { auth: { strategy: 's23', access: { scope: ['admin'] } } },
      handler: () => 'admin',
    });
    const token = await mint(key, m2mClaims({ scope: 'read:products' }));
    const headers = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 2; i++)
      expect((await server.inject({ url: '/', headers })).statusCode).toBe(200);
    expect((await server.inject({ url: '/admin', headers })).statusCode).toBe(403);

    const express = (await import('express')).default;
    const { requireAuth } = await import('resource-guard/express');
    const app = express();
    app.get('/', requireAuth(v), (req, res) => {
      let mutated = true;
      try {
        (req.auth?.scopes as string[]).push('admin');
      } catch {
        mutated = false;
      }
      res.json({ mutated });
    });
    const running = await listen(createServer(app));
    try {
      for (let i = 0; i < 2; i++) {
        const answer = await fetch(`${running.url}/`, { headers });
        expect(await answer.json()).toEqual({ mutated: false });
      }
      expect(await outcome(v.verify(token, { scopes: ['admin'] }))).toBe('403 insufficient_scope');
    } finally {
      await running.close();
    }
  });
});

@Controller('n')
@RequireAuth({ scopes: ['read:products'] })
class S23Controller {
  @Get('opt')
  @RequireAuth({ optional: true })
  opt(@Auth() auth: AuthInfo | undefined) {
    return { sub: auth?.subject ?? null };
  }

  @Get('m')
  @RequireAuth({ machine: true })
  machine(@Auth() auth: AuthInfo) {
    return { sub: auth.subject };
  }

  @Get('g')
  global(@Auth() auth: AuthInfo) {
    return { sub: auth.subject };
  }
}

describe.each(['express', 'fastify'] as const)(
  'NestJS on %s: optional and machine routes',
  (platform) => {
    let url: string;
    let close: () => Promise<void>;
    beforeAll(async () => {
      @Module({
        imports: [ResourceGuardModule.forRoot({ verifier: createVerifier(base()) })],
        controllers: [S23Controller],
      })
      class S23Module {}
      const adapter = platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
      const app = await NestFactory.create(S23Module, adapter, { logger: false });
      await app.listen(0, '127.0.0.1');
      const server = app.getHttpServer() as Server;
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      close = async () => {
        server.closeAllConnections();
        await app.close();
      };
    });
    afterAll(() => close());

    it('an anonymous request on an optional route is a 200 with no AuthInfo, never a 500', async () => {
      const user = await mint(key, m2mClaims({ sub: 'u1' }));
      const noScope = await mint(key, m2mClaims({ scope: undefined }));
      const orgLevel = await mint(key, m2mClaims({ organization_id: 'acme' }));
      const get = async (p: string, authorization?: string) => {
        const answer = await fetch(url + p, { headers: authorization ? { authorization } : {} });
        return `${answer.status} ${await answer.text()}`;
      };
      expect(await get('/n/opt')).toBe('200 {"sub":null}');
      expect(await get('/n/opt', 'Basic abc')).toBe('200 {"sub":null}');
      expect(await get('/n/opt', `Bearer ${noScope}`)).toBe('200 {"sub":"app-123"}');
      expect(await get('/n/opt', 'Bearer a.b.c')).toMatch(/^401 /);
      expect(await get('/n/m', `Bearer ${user}`)).toMatch(/^403 .*machine_required/);
      expect(await get('/n/m', `Bearer ${good}`)).toBe('200 {"sub":"app-123"}');
      expect(await get('/n/g', `Bearer ${orgLevel}`)).toMatch(/^403 .*organization_mismatch/);
      expect(await get('/n/g', `Bearer ${noScope}`)).toMatch(/^403 .*insufficient_scope/);
    });
  },
);

// ---------------------------------------------------------------------------------------------
// Configuration: issuer-like URLs
// ---------------------------------------------------------------------------------------------

describe('configuration of issuer-like URLs', () => {
  it('what is already refused at creation: credentials, non-http(s), empty', () => {
    expect(() => createVerifier({ ...base(), issuer: 'urn:x:y' })).toThrow(TypeError);
    expect(() => createVerifier({ ...base(), issuer: '' })).toThrow(TypeError);
    expect(() => logto({ endpoint: 'https://t.logto.app/oidc', audience: AUDIENCE })).toThrow(
      TypeError,
    );
    expect(() =>
      createVerifier(logto({ endpoint: 'https://u:p@t.logto.app', audience: AUDIENCE })),
    ).toThrow(TypeError);
    expect(() =>
      createVerifier({
        ...base(),
        audience: AUDIENCE,
        resourceMetadata: { resource: 'https://shopping.api#f' },
      }),
    ).toThrow(TypeError);
  });

  // Was a bug (fixed): `logto({ endpoint })` accepted an endpoint with a query or a fragment and builds a
  // malformed issuer and JWKS URL from it, with no TypeError (README: "Options are checked here: a
  // bad option throws a TypeError that names it"; RFC 8414 §2 / OIDC Discovery §3: an issuer has
  // no query or fragment; customDomains and resourceMetadata.resource already refuse `?` and `#`).
  //   logto({ endpoint: 'https://t.logto.app?x=1', audience })
  //   → issuer ['https://t.logto.app?x=1/oidc'], jwksUri 'https://t.logto.app?x=1/oidc/jwks',
  //     which is fetched as https://t.logto.app/?x=1/oidc/jwks (the tenant's root page);
  //     every real Logto token (iss https://t.logto.app/oidc) is then a 401 issuer_mismatch.
  // Now: a TypeError naming `endpoint`.
  it('logto() refuses an endpoint with a query, a fragment, credentials or whitespace', () => {
    for (const endpoint of [
      'https://t.logto.app?x=1',
      'https://t.logto.app#f',
      'https://t.logto.app/?',
      'https://u:p@t.logto.app',
      'https://t.logto.app\r',
      ' https://t.logto.app',
    ]) {
      expect(() => logto({ endpoint, audience: AUDIENCE }), endpoint).toThrow(TypeError);
    }
  });

  // Was a bug (fixed): `createVerifier({ issuer })` accepted an issuer with a query, a fragment, or surrounding
  // whitespace / a line break (a value read from a .env file with CRLF, say). The URL parser used
  // to validate it trims and strips them, so discovery and the JWKS work and health() says
  // `fresh`, while `iss` is compared with the raw string: every token of the real issuer is a
  // 401 issuer_mismatch, silently. Expected (README "a bad option throws a TypeError"; RFC 8414
  // §2): a TypeError naming `issuer`. Now it is one.
  //   createVerifier({ issuer: 'https://tenant.example.test/oidc\r', audience, jwks })
  it('createVerifier refuses an issuer with a query, a fragment, credentials or surrounding whitespace', () => {
    for (const issuer of [
      `${ISSUER}?x=1`,
      `${ISSUER}#f`,
      `${ISSUER}\r`,
      ` ${ISSUER}`,
      `${ISSUER}\n`,
      `${ISSUER}\t`,
      ISSUER.replace('https://', 'https://u:p@'),
      `${ISSUER}/a b`,
      ISSUER.replace('/oidc', '\\oidc'),
      [ISSUER, `${ISSUER}\r`],
    ]) {
      expect(() => createVerifier({ ...base(), issuer }), JSON.stringify(issuer)).toThrow(
        TypeError,
      );
    }
  });

  it('the TypeError names the option and shows the value escaped', () => {
    expect(() => createVerifier({ ...base(), issuer: `${ISSUER}\r` })).toThrow(
      /`issuer` must be .*\\r/,
    );
    expect(() => logto({ endpoint: 'https://t.logto.app\r', audience: AUDIENCE })).toThrow(
      /`endpoint` must be/,
    );
  });

  it('an audience with surrounding whitespace or a control character is refused', () => {
    for (const audience of [`${AUDIENCE} `, `${AUDIENCE}\r`, `\t${AUDIENCE}`, 'a\u0000b']) {
      expect(() => createVerifier({ ...base(), audience }), JSON.stringify(audience)).toThrow(
        /`audience` must be/,
      );
    }
    // Inner spaces stay allowed: not every issuer's audience is a URI.
    expect(() => createVerifier({ ...base(), audience: 'My API' })).not.toThrow();
  });

  it('logto() writes the issuer as Logto does: host lower-cased, no default port', () => {
    for (const endpoint of [
      'https://T.Logto.App',
      'https://t.logto.app:443',
      'https://t.logto.app//',
    ]) {
      const options = logto({ endpoint, audience: AUDIENCE });
      expect(options.issuer, endpoint).toEqual(['https://t.logto.app/oidc']);
      expect(options.jwksUri, endpoint).toBe('https://t.logto.app/oidc/jwks');
    }
    expect(logto({ endpoint: 'http://localhost:3001', audience: AUDIENCE }).issuer).toEqual([
      'http://localhost:3001/oidc',
    ]);
  });
});

describe('verify() with an empty string', () => {
  // Was an oddity: verify('') answered `opaque_token`, whose hint (request the token with
  // resource=…) sends the operator after the wrong mistake. Nothing is not an opaque token.
  it('is a malformed token, not an opaque one', async () => {
    const verifier = createVerifier(base());
    expect(await outcome(verifier.verify(''))).toBe('401 malformed_token');
    expect(await outcome(verifier.verify('opaque-random-string'))).toBe('401 opaque_token');
  });
});
