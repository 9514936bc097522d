/**
 * Adversarial review, session 20: the diff 5703840..48cd04b in src/ (RSA size from the modulus's
 * value, one strict JWS segment reader, cty, DPoP header memory after verification, empty query
 * or fragment in URLs). Hunted: regressions (legitimate keys, proofs and tokens refused),
 * anything looser, races and leaks in the #pending / #headers logic, Buffer / no-Buffer
 * differences, and client faults answered 5xx.
 *
 * Normal tests assert what held (each can fail). `it.fails` marks a confirmed bug: the test asserts
 * the right behaviour, `// Was a bug:` says what happens instead.
 */
import { createPrivateKey, createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as jose from 'jose';
import type { JWK } from 'jose';
import { createVerifier, logto } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { checkProofHeader } from '../src/dpop-jws.ts';
import { jsonObject } from '../src/jws-segment.ts';
import { Rejection } from '../src/errors.ts';
import { ath, dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { DpopFixture, ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

// Counts jose key imports (the DPoP proof-key import goes through jose's importJWK), and can make
// the next ones fail (a transient failure) or wait on a gate (a slow import).
vi.mock('jose', async (importOriginal) => {
  const real = await importOriginal<typeof jose>();
  const control = { importJWK: 0, failNext: 0, gate: undefined as Promise<void> | undefined };
  return {
    ...real,
    __control: control,
    importJWK: async (...args: Parameters<typeof real.importJWK>) => {
      control.importJWK++;
      if (control.gate !== undefined) await control.gate;
      if (control.failNext > 0) {
        control.failNext--;
        throw new Error('transient import failure');
      }
      return real.importJWK(...args);
    },
  };
});
type Control = { importJWK: number; failNext: number; gate: Promise<void> | undefined };
const control = (jose as unknown as { __control: Control }).__control;

afterEach(() => {
  control.failNext = 0;
  control.gate = undefined;
  vi.unstubAllGlobals();
});

const URL_ = `${ORIGIN}/products`;
const b64 = (value: string | Uint8Array) => Buffer.from(value).toString('base64url');

// ---------------------------------------------------------------------------------------------
// RSA material
// ---------------------------------------------------------------------------------------------

const big = (b: string) => BigInt(`0x${Buffer.from(b, 'base64url').toString('hex')}`);
const unsigned = (value: bigint) => {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  return Buffer.from(hex, 'hex').toString('base64url');
};
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

/** A real 8192-bit RSA key's primes (generating one takes seconds to a minute); the rest derived. */
const P8192 =
  '-XauuGYuPE0ZF6SVw20oxTMry7N5wFiC5LPAX_2tZx1tHlQFXEzfhqn0_IkPuTa6f7HqZ74ZFrG5c8XI0WBzZzbi5sMocF121i9du8wN3ABsPzHcnxyngRByiUkdLcfCcHMoSyRO2tuKzz48D8gbh2UgdZpfLx_E8607BDSGrTt6VbGMcClHr7qQL0zCOnl1L7UpCApZgJn6khVJDZk43vBEOl-NG1oI3GWyA3_PVf-hAeiJ9iU-uMJjh2Uv4SkVVXjUbiBkDiAnQEQe6gZycryvkxDqU4NFIgAH1AmodSm4J1EXjjLTrl58MoVlaRLiDJFyCeiChvEbGYQZmGuWBi83aU9nV_an_8Z2cDGqW39S7RmbcbpiLHYRZmiRUIczPEHOHScKTQ-z6TGnsFQy5XcYK_7RSSTy04vgcDoZP4EvQZ_57Wbn6YinCpVPTdknUqojVsV4fi7ld-WlMUNkRDnURBJnxTcGAG2-XLbojVMv4kgtJS7_kGesFRFdbUpUFMx2i2mw0e8uq3kvWAUNKfcnWogPVYvyHO26FOpmFe79-andu_2XCozaYKgXqpXPjHaPvH_uDbQCjUjz_w6MUDLMXB3TBeMiR8yFKdM5_HEPZKmTWp97f3-A4aVCB5HV55d4If_vdy_gIqAkCPG9J29CcbToTVpxuke6m9OoyXk';
const Q8192 =
  '5-momOxDbAiFs60J0MXNBFOlrTX_DDIFD76992D7KQJqolCeI4mAJF_MoxORxf20-hoLpt_DT2WJvDWlaBFH7X2B8ufTIvQ9QO5b2Qc_yrrvq8QHCa_eZCANX6EwnO19FzGUq9Rj9Xy0jQv-1xVAm941RIkUTWmh2_6HhFYaEqcbVPrreCDat_CR2RqI_4iIy4CmGsBQcZhmdxQbB2EFb9aEAilChQXk-S2bcYKywL55v3TzbOdkayFqjP4_OebvpGYT3BdimUXUtQstnZ1KNjFNmFXEbsRZ7LjC9cnV8J3G_pkL2m8f72uqUFEnnhLJ1XpfVurrMxJ7s9jUrYeO098RBz8pIVDUJ15CYvgs-grgxzm3b3wkBSeQdIOOgDKTZ-8gNVzkG5bYqZGUwch9wxjO8LrWlGn4wQxMU8dedMDMv196g7eydXu99fWEceCPHhFJuaNwJ8VUJxdogjm9I7LDcoM10xNR71MBRiDXViCYI0Yx_3Ot6bsmwXRusoZe_cHsbB9EIc5XcAwhXtR_Wjg-FdTzle0sBE7EUUbI2YPDvDT-WWLk-dKQWU65NVPhsZDxSIeP9HZeVaKnWsuGF51A7ORghqbnX7-qDfmWt_8OKRaR40o4XfWCdnK6WuKbf-qWwhM_4-SIiF31Wul0RbHUMKNR1o9wUuptddy_siM';

interface Rsa {
  readonly privateKey: KeyObject;
  /** The public JWK as node (and WebCrypto) export it: minimal n. */
  readonly jwk: JWK;
}

function rsaFromPrimes(pB64: string, qB64: string): Rsa {
  const p = big(pB64);
  const q = big(qB64);
  const e = 65537n;
  const d = modInverse(e, (p - 1n) * (q - 1n));
  const full = {
    kty: 'RSA',
    n: unsigned(p * q),
    e: unsigned(e),
    d: unsigned(d),
    p: unsigned(p),
    q: unsigned(q),
    dp: unsigned(d % (p - 1n)),
    dq: unsigned(d % (q - 1n)),
    qi: unsigned(modInverse(q, p)),
  };
  return {
    privateKey: createPrivateKey({ key: full, format: 'jwk' }),
    jwk: { kty: 'RSA', n: full.n, e: full.e },
  };
}

function rsa(bits: number): Rsa {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const { n, e } = publicKey.export({ format: 'jwk' });
  return { privateKey, jwk: { kty: 'RSA', n: n as string, e: e as string } };
}

/** `n` written with `zeros` leading zero octets (what some libraries emit: a sign octet). */
const leadingZeros = (jwk: JWK, zeros: number): JWK => ({
  ...jwk,
  n: Buffer.concat([Buffer.alloc(zeros), Buffer.from(jwk.n as string, 'base64url')]).toString(
    'base64url',
  ),
});

/** A compact JWS, RS256 or PS256, with node:crypto. */
function signRsa(privateKey: KeyObject, header: object, payload: object, alg = 'RS256'): string {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
  const signature = createSign('sha256')
    .update(input)
    .sign(
      alg === 'PS256'
        ? { key: privateKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }
        : privateKey,
    );
  return `${input}.${signature.toString('base64url')}`;
}

const proofClaims = (token: string, extra: Record<string, unknown> = {}) => ({
  jti: randomUUID(),
  htm: 'GET',
  htu: URL_,
  iat: Math.floor(Date.now() / 1000),
  ath: ath(token),
  ...extra,
});

/** A bound token for `jwk` and an RSA proof signed with `privateKey`, `jwk` in its header. */
async function rsaProof(fx: DpopFixture, privateKey: KeyObject, jwk: JWK, alg = 'RS256') {
  const token = await mint(
    fx.issuerKey,
    m2mClaims({ cnf: { jkt: await jose.calculateJwkThumbprint(jwk) } }),
  );
  const dpop = signRsa(privateKey, { typ: 'dpop+jwt', alg, jwk }, proofClaims(token), alg);
  return dpopRequest(token, dpop);
}

let r2048: Rsa;
let r8192: Rsa;
let issuer: TestKey;
let fx: DpopFixture;
let client: ProofKey;

beforeAll(async () => {
  r2048 = rsa(2048);
  r8192 = rsaFromPrimes(P8192, Q8192);
  issuer = await makeKey('ES256');
  fx = await dpopFixture({}, issuer);
  client = await makeProofKey();
});

// ---------------------------------------------------------------------------------------------
// 1. RSA size from the modulus's value
// ---------------------------------------------------------------------------------------------

describe('RSA key size counted from the modulus (key-source usableKeys, dpop-jws checkProofHeader)', () => {
  const fetched = (jwk: JWK): VerifierOptions => ({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: 'https://tenant.example.test/oidc/jwks',
    fetch: async () => Response.json({ keys: [{ ...jwk, kid: 'r', alg: 'RS256', use: 'sig' }] }),
  });
  const rsToken = (key: Rsa) =>
    signRsa(key.privateKey, { alg: 'RS256', typ: 'at+jwt', kid: 'r' }, m2mClaims());

  it('a 2048-bit JWKS key, n minimal or with one leading zero octet (a sign octet): tokens accepted', async () => {
    for (const jwk of [r2048.jwk, leadingZeros(r2048.jwk, 1)]) {
      const verifier = createVerifier(fetched(jwk));
      expect(await outcome(verifier.verify(rsToken(r2048)))).toBe('ok');
      expect(verifier.health()[0]?.keys).toBe(1);
    }
  });

  it('an 8192-bit JWKS key and a static-set 8192-bit key: tokens accepted (no upper bound for the issuer)', async () => {
    expect(await outcome(createVerifier(fetched(r8192.jwk)).verify(rsToken(r8192)))).toBe('ok');
    const staticSet = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [{ ...leadingZeros(r8192.jwk, 1), kid: 'r', alg: 'RS256', use: 'sig' }] },
    });
    expect(await outcome(staticSet.verify(rsToken(r8192)))).toBe('ok');
  });

  // BUG (low, interop regression): rsaModulusBits returns 0 for an `n` that is not *unpadded
  // base64url*, so usableKeys now drops a 2048-bit key whose n carries '=' padding or the
  // standard base64 alphabet ('+', '/'). Before the diff the key was kept (length check) and jose /
  // node imported it: tokens verified. Now the key is silently ignored; a set whose only key is
  // written that way is "no usable signing key": every token 503 keys_unavailable (a static set:
  // TypeError at start-up). The spelling is non-conformant (RFC 7515 §2), but the size check was
  // meant to count the modulus's value, not to add a spelling rule that only RSA `n` gets (EC x/y
  // and RSA e are not checked). Counting bits from a lenient decode (as the import does) keeps both.
  it('a 2048-bit JWKS key whose n is written padded ("=") or in the base64 alphabet still verifies its tokens', async () => {
    const n = r2048.jwk.n as string;
    const padded = { ...r2048.jwk, n: n + '='.repeat((4 - (n.length % 4)) % 4) };
    const standard = {
      ...r2048.jwk,
      n: Buffer.from(n, 'base64url').toString('base64').replace(/=+$/, ''),
    };
    expect(padded.n).not.toBe(n);
    expect(standard.n).toMatch(/[+/]/);
    const answers = [];
    for (const jwk of [padded, standard]) {
      answers.push(await outcome(createVerifier(fetched(jwk)).verify(rsToken(r2048))));
    }
    expect(answers).toEqual(['ok', 'ok']); // today: ['503 keys_unavailable', '503 keys_unavailable']
  });

  it('DPoP: a 2048-bit RSA proof key (RS256 and PS256), n minimal or with one leading zero octet: ok', async () => {
    for (const alg of ['RS256', 'PS256']) {
      for (const jwk of [r2048.jwk, leadingZeros(r2048.jwk, 1)]) {
        const request = await rsaProof(fx, r2048.privateKey, jwk, alg);
        expect(
          await outcome(fx.verifier.authenticate(request)),
          `${alg} ${(jwk.n as string).length}`,
        ).toBe('ok');
      }
    }
  });

  it('DPoP: an 8192-bit RSA proof key, n minimal (1366 chars) or with one leading zero octet (1367): ok', async () => {
    const withZero = leadingZeros(r8192.jwk, 1);
    expect((r8192.jwk.n as string).length).toBe(1366);
    expect((withZero.n as string).length).toBe(1367);
    for (const jwk of [r8192.jwk, withZero]) {
      expect(
        await outcome(fx.verifier.authenticate(await rsaProof(fx, r8192.privateKey, jwk))),
      ).toBe('ok');
    }
  });

  it('DPoP: the bounds are not looser than before, and a refusal is always a 401 dpop_proof_invalid', async () => {
    const ALL = new Set(['RS256']);
    const modulus = (octets: number, top: number, zeros = 0) => {
      const bytes = Buffer.alloc(zeros + octets, 0xa5);
      bytes.fill(0, 0, zeros);
      bytes[zeros] = top;
      return bytes.toString('base64url');
    };
    const verdict = (n: string) => {
      try {
        checkProofHeader({ typ: 'dpop+jwt', alg: 'RS256', jwk: { kty: 'RSA', e: 'AQAB', n } }, ALL);
        return 'ok';
      } catch (error) {
        expect(error).toBeInstanceOf(Rejection);
        return (error as Rejection).reason;
      }
    };
    expect(verdict(modulus(256, 0x80))).toBe('ok'); // 2048 bits
    expect(verdict(modulus(256, 0x80, 1))).toBe('ok');
    expect(verdict(modulus(256, 0x7f))).toBe('dpop_proof_invalid'); // 2047 bits
    expect(verdict(modulus(128, 0x80, 128))).toBe('dpop_proof_invalid'); // 1024 bits in 256 octets
    expect(verdict(modulus(1024, 0xff))).toBe('ok'); // 8192 bits
    expect(verdict(modulus(1024, 0xff, 1))).toBe('ok');
    expect(verdict(modulus(1024, 0xff, 2))).toBe('dpop_proof_invalid'); // n 1368 chars
    expect(verdict(modulus(1025, 0x01))).toBe('dpop_proof_invalid'); // 8193 bits in 1367 chars
    expect(verdict('A'.repeat(1367))).toBe('dpop_proof_invalid');
    expect(verdict(`${modulus(256, 0x80)}AAA`)).toBe('dpop_proof_invalid'); // 345 chars: 4n+1
    // `=` padding: the size reads the value, not the spelling, but since session 21 a proof's jwk
    // must be spelled as unpadded base64url (one spelling, one thumbprint on every runtime).
    expect(verdict(`${modulus(256, 0x80)}=`)).toBe('dpop_proof_invalid');
    expect(verdict(`${modulus(128, 0x80, 128)}=`)).toBe('dpop_proof_invalid');
    fc.assert(
      fc.property(fc.string({ maxLength: 1400 }), (n) => {
        const v = verdict(n);
        return v === 'ok' || v === 'dpop_proof_invalid';
      }),
      { seed: 2020, numRuns: 300 },
    );
  });

  it('DPoP: a zero-padded 1024-bit proof key is 401 even through the full path, never a 5xx', async () => {
    const small = rsa(1024);
    const padded = leadingZeros(
      small.jwk,
      256 - Buffer.from(small.jwk.n as string, 'base64url').length,
    );
    expect(
      await outcome(fx.verifier.authenticate(await rsaProof(fx, small.privateKey, padded))),
    ).toBe('401 dpop_proof_invalid');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. One strict JWS segment reader
// ---------------------------------------------------------------------------------------------

describe('jws-segment: legitimate segments, and the same answer with and without Buffer', () => {
  /** jws-segment loaded where there is no Buffer (a fresh module instance). */
  async function withoutBuffer(): Promise<typeof jsonObject> {
    vi.stubGlobal('Buffer', undefined);
    try {
      const path = '../src/jws-segment.ts?no-buffer';
      const module = (await import(/* @vite-ignore */ path)) as { jsonObject: typeof jsonObject };
      return module.jsonObject;
    } finally {
      vi.unstubAllGlobals();
    }
  }

  it('Buffer and no-Buffer readers agree on every base64url string and every encoded JSON value', async () => {
    const bare = await withoutBuffer();
    expect(bare).not.toBe(jsonObject); // a second instance, evaluated without Buffer
    expect(typeof globalThis.Buffer).toBe('function');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('');
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 40 }), (chars) => {
        const s = chars.join('');
        expect(bare(s)).toEqual(jsonObject(s));
      }),
      { seed: 1, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), (bytes) => {
        const s = b64(bytes);
        expect(bare(s)).toEqual(jsonObject(s));
      }),
      { seed: 2, numRuns: 1000 },
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue({ stringUnit: 'binary' })),
        fc.constantFrom('', ' ', '\n\t ', '\r\n'),
        (object, ws) => {
          const s = b64(`${ws}${JSON.stringify(object)}${ws}`);
          const parsed = JSON.parse(JSON.stringify(object));
          expect(jsonObject(s)).toEqual(parsed);
          expect(bare(s)).toEqual(parsed);
        },
      ),
      { seed: 3, numRuns: 500 },
    );
    // A BOM and invalid UTF-8 are refused by both.
    for (const bytes of [
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]),
      Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
      Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]), // CESU surrogate
    ]) {
      expect(jsonObject(b64(bytes))).toBeUndefined();
      expect(bare(b64(bytes))).toBeUndefined();
    }
  });

  it('tokens in legitimate forms are accepted: unicode claims, escaped surrogates, JSON whitespace, every segment length', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuer.jwk] },
    });
    const header = { alg: 'ES256', typ: 'at+jwt', kid: issuer.kid };
    const forms: string[] = [];
    // Pretty-printed header and payload (RFC 8259 whitespace).
    forms.push(
      await signRaw(
        issuer,
        JSON.stringify(header, null, 2),
        `\n ${JSON.stringify(m2mClaims())}\r\n`,
      ),
    );
    // Non-ASCII and escaped lone surrogates (valid JSON in valid UTF-8).
    forms.push(
      await signRaw(issuer, header, { ...m2mClaims(), name: 'Zoë 🚀 東京', note: '\\ud800' }),
    );
    forms.push(
      await signRaw(issuer, header, `${JSON.stringify(m2mClaims()).slice(0, -1)},"x":"\\ud83d"}`),
    );
    // Every payload length modulo 3 (segment lengths 4n, 4n+2, 4n+3).
    for (let i = 0; i < 6; i++)
      forms.push(await mint(issuer, m2mClaims({ jti: 'fixed', pad: 'x'.repeat(i) })));
    const lengths = new Set(forms.map((t) => t.split('.')[1]!.length % 4));
    expect([...lengths].sort()).toEqual([0, 2, 3]);
    for (const token of forms) expect(await outcome(verifier.verify(token))).toBe('ok');
  });

  it('real proofs (jose SignJWT with exportJWK: what the dpop / oauth4webapi client libraries send) are accepted for every family', async () => {
    for (const alg of ['ES256', 'ES384', 'ES512', 'PS256', 'RS256', 'EdDSA']) {
      const pair = await jose.generateKeyPair(alg, { extractable: true });
      const jwk = await jose.exportJWK(pair.publicKey);
      const token = await mint(
        issuer,
        m2mClaims({ cnf: { jkt: await jose.calculateJwkThumbprint(jwk) } }),
      );
      for (let i = 0; i < 2; i++) {
        const dpop = await new jose.SignJWT({ htm: 'GET', htu: URL_, ath: ath(token) })
          .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk })
          .setIssuedAt()
          .setJti(randomUUID())
          .sign(pair.privateKey);
        expect(await outcome(fx.verifier.authenticate(dpopRequest(token, dpop))), alg).toBe('ok');
      }
    }
  });

  it('a proof whose header or payload is not canonical is 401 dpop_proof_invalid, never a 5xx', async () => {
    const token = await fx.bound(client);
    const good = await proof(client, 'GET', URL_, token);
    const [h, p, s] = good.split('.') as [string, string, string];
    const tweak = (segment: string) => {
      // Set an unused trailing bit (segments of 4n+2 / 4n+3 characters), or add a 4n+1st character.
      if (segment.length % 4 === 0) return `${segment}A`;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(segment.at(-1)!);
      return segment.slice(0, -1) + alphabet[last | 1];
    };
    for (const bad of [`${tweak(h)}.${p}.${s}`, `${h}.${tweak(p)}.${s}`]) {
      expect(await outcome(fx.verifier.authenticate(dpopRequest(token, bad)))).toBe(
        '401 dpop_proof_invalid',
      );
    }
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, good)))).toBe('ok');
  });
});

// ---------------------------------------------------------------------------------------------
// 3. cty
// ---------------------------------------------------------------------------------------------

describe('cty (token.ts checkHeader)', () => {
  it('a nested-JWT cty in any case, or a non-string cty, is 401 malformed_token; other media types and none pass', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuer.jwk] },
    });
    for (const cty of [
      'JWT',
      'jwt',
      'Jwt',
      'application/jwt',
      'APPLICATION/JWT',
      7,
      null,
      ['JWT'],
      {},
    ]) {
      expect(
        await outcome(verifier.verify(await mint(issuer, m2mClaims(), { cty }))),
        String(cty),
      ).toBe('401 malformed_token');
    }
    for (const cty of [undefined, 'json', 'application/json', 'at+jwt']) {
      expect(
        await outcome(verifier.verify(await mint(issuer, m2mClaims(), { cty }))),
        String(cty),
      ).toBe('ok');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. DPoP: headers remembered after a verified proof, imports shared while pending
// ---------------------------------------------------------------------------------------------

describe('DPoP header memory (#headers) and shared imports (#pending)', () => {
  async function fresh(extra: Partial<VerifierOptions> = {}) {
    const key = await makeProofKey();
    const f = await dpopFixture(extra, issuer);
    const token = await f.bound(key);
    const valid = () => proof(key, 'GET', URL_, token);
    /** Same header as the client's, a signature that does not verify. */
    const forged = async () => {
      const p = await valid();
      const [h, payload] = p.split('.');
      return `${h}.${payload}.${b64(Buffer.alloc(64, 7))}`;
    };
    const run = async (dpop: string) => outcome(f.verifier.authenticate(dpopRequest(token, dpop)));
    return { key, f, token, valid, forged, run };
  }

  /** Holds every import until `open()`; `started()` resolves once `count` imports have begun. */
  function gate() {
    let open!: () => void;
    control.gate = new Promise<void>((resolve) => (open = resolve));
    const base = control.importJWK;
    const started = async (count = 1) => {
      for (let i = 0; i < 500 && control.importJWK - base < count; i++) {
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    };
    return { open, started };
  }

  // BUG (low, performance; present before the diff too): #pending is filled only after the
  // awaited thumbprint (Dpop.#headerOf: `await proofKeyThumbprint(...)` comes before
  // `#pending.set`), so proofs under one new header that arrive together (a client's first burst,
  // or a cold start with many clients) all miss #pending and each imports the key: 10 concurrent
  // first proofs = 10 imports, not the one the comment ("Imports under way, shared by concurrent
  // proofs") promises. A second #pending.get after the await (or a pending entry set before it)
  // would share them.
  it('10 valid proofs under one new header arriving together share one import', async () => {
    const { valid, run } = await fresh();
    const proofs = await Promise.all(Array.from({ length: 10 }, valid));
    const before = control.importJWK;
    expect(await Promise.all(proofs.map(run))).toEqual(Array(10).fill('ok'));
    expect(control.importJWK - before).toBe(1); // today: 10
  });

  it('a proof arriving while an import is under way shares it; then the header is known (no more imports)', async () => {
    const { valid, run } = await fresh();
    const [a, b] = await Promise.all([valid(), valid()]);
    const before = control.importJWK;
    const g = gate();
    const first = run(a);
    await g.started();
    const second = run(b);
    await new Promise((resolve) => setTimeout(resolve, 20));
    g.open();
    expect(await Promise.all([first, second])).toEqual(['ok', 'ok']);
    control.gate = undefined;
    expect(control.importJWK - before).toBe(1);
    expect(await run(await valid())).toBe('ok');
    expect(control.importJWK - before).toBe(1);
  });

  it('a failed import is not kept: the proof sharing it is refused (401, not 5xx), the next proof imports again and passes', async () => {
    const { valid, run } = await fresh();
    const [a, b] = await Promise.all([valid(), valid()]);
    control.failNext = 1;
    const before = control.importJWK;
    const g = gate();
    const first = run(a);
    await g.started();
    const second = run(b);
    await new Promise((resolve) => setTimeout(resolve, 20));
    g.open();
    expect(await Promise.all([first, second])).toEqual([
      '401 dpop_proof_invalid',
      '401 dpop_proof_invalid',
    ]);
    control.gate = undefined;
    expect(control.importJWK - before).toBe(1);
    expect(await run(await valid())).toBe('ok');
    expect(control.importJWK - before).toBe(2);
  });

  it('a forged and a valid proof sharing one pending import: 401 and ok, and the header is then known', async () => {
    const { valid, forged, run } = await fresh();
    const [bad, good] = [await forged(), await valid()];
    const before = control.importJWK;
    const g = gate();
    const first = run(bad);
    await g.started();
    const second = run(good);
    await new Promise((resolve) => setTimeout(resolve, 20));
    g.open();
    expect(await Promise.all([first, second])).toEqual(['401 dpop_proof_signature', 'ok']);
    control.gate = undefined;
    expect(control.importJWK - before).toBe(1);
    expect(await run(await valid())).toBe('ok');
    expect(control.importJWK - before).toBe(1);
  });

  it('forged proofs alone never make the header known (each one imports; no pending promise is left behind)', async () => {
    const { valid, forged, run } = await fresh();
    const before = control.importJWK;
    for (let i = 0; i < 3; i++) expect(await run(await forged())).toBe('401 dpop_proof_signature');
    expect(control.importJWK - before).toBe(3);
    expect(await run(await valid())).toBe('ok');
    expect(await run(await valid())).toBe('ok');
    expect(control.importJWK - before).toBe(4);
  });

  it('a valid proof refused after its signature (use_dpop_nonce, replay, route requirements) leaves its header known', async () => {
    const nonce = { secret: 'a shared secret of thirty-two bytes or more' };
    const { valid, run, f, token, key } = await fresh({ dpop: { origin: ORIGIN, nonce } });
    const before = control.importJWK;
    expect(await run(await valid())).toBe('401 dpop_nonce_required');
    expect(control.importJWK - before).toBe(1);
    const error = (await f.verifier
      .authenticate(dpopRequest(token, await valid()))
      .catch((e: unknown) => e)) as {
      headers: Record<string, string>;
    };
    const current = error.headers['DPoP-Nonce'] ?? error.headers['dpop-nonce'];
    expect(typeof current).toBe('string');
    const withNonce = await proof(key, 'GET', URL_, token, { payload: { nonce: current } });
    expect(await run(withNonce)).toBe('ok');
    expect(await run(withNonce)).toBe('401 dpop_replayed');
    const narrow = await f.verifier
      .authenticate(
        dpopRequest(token, await proof(key, 'GET', URL_, token, { payload: { nonce: current } })),
        { scopes: ['admin'] } as never,
      )
      .then(
        () => 'ok',
        (e: { status: number; reason: string }) => `${e.status} ${e.reason}`,
      );
    expect(narrow).toMatch(/^403 /);
    expect(control.importJWK - before).toBe(1);
  });

  it("a proof refused before its signature (htu, ath) leaves nothing known: the client's next proof imports", async () => {
    const { key, token, valid, run } = await fresh();
    const before = control.importJWK;
    expect(await run(await proof(key, 'GET', `${ORIGIN}/elsewhere`, token))).toBe(
      '401 dpop_htu_mismatch',
    );
    expect(
      await run(await proof(key, 'GET', URL_, token, { payload: { ath: ath('other') } })),
    ).toBe('401 dpop_ath_mismatch');
    expect(control.importJWK - before).toBe(2);
    expect(await run(await valid())).toBe('ok');
    expect(control.importJWK - before).toBe(3);
  });

  it('requestScoped (Workers): no shared import, every concurrent proof passes, then the header is known', async () => {
    const key = await makeProofKey();
    const f = await dpopFixture({ requestScoped: true }, issuer);
    const tokens = await Promise.all(Array.from({ length: 3 }, () => f.bound(key)));
    const proofs = await Promise.all(tokens.map((t) => proof(key, 'GET', URL_, t)));
    const before = control.importJWK;
    const g = gate();
    const pending = tokens.map((t, i) =>
      outcome(f.verifier.authenticate(dpopRequest(t, proofs[i]!))),
    );
    await g.started(3);
    g.open();
    expect(await Promise.all(pending)).toEqual(['ok', 'ok', 'ok']);
    control.gate = undefined;
    expect(control.importJWK - before).toBe(3);
    expect(
      await outcome(
        f.verifier.authenticate(dpopRequest(tokens[0]!, await proof(key, 'GET', URL_, tokens[0]!))),
      ),
    ).toBe('ok');
    expect(control.importJWK - before).toBe(3);
  });

  it('a known header never serves a token bound to another key: 401 dpop_key_mismatch, no import', async () => {
    const { valid, run, f } = await fresh();
    expect(await run(await valid())).toBe('ok');
    const otherToken = await f.bound(await makeProofKey());
    const before = control.importJWK;
    expect(await outcome(f.verifier.authenticate(dpopRequest(otherToken, await valid())))).toBe(
      '401 dpop_key_mismatch',
    );
    expect(control.importJWK - before).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Empty query or fragment, custom-domain password
// ---------------------------------------------------------------------------------------------

describe('hasQueryOrFragment (resourceMetadata.resource, logto customDomains)', () => {
  const withResource = (resource: string) => () =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuer.jwk] },
      resourceMetadata: { resource },
    });
  const withDomain = (domain: string) => () =>
    logto({ endpoint: 'https://tenant.logto.app', audience: AUDIENCE, customDomains: [domain] });

  it('refuses bare ? and #, and a password; accepts an encoded %3F / %23 in the path and plain domains', () => {
    for (const r of [
      'https://shopping.api/?',
      'https://shopping.api/#',
      'https://shopping.api/a?#',
      // Credentials, even a user alone, are never published (session 23).
      'https://user%3F@shopping.api/',
    ]) {
      expect(withResource(r), r).toThrow(TypeError);
    }
    for (const r of [
      'https://shopping.api',
      'https://shopping.api/v1/',
      'https://shopping.api/a%3Fb%23c',
    ]) {
      expect(withResource(r), r).not.toThrow();
    }
    for (const d of [
      'auth.example.com?',
      'https://auth.example.com#',
      'https://:pw@auth.example.com',
      'https://u:pw@auth.example.com',
    ]) {
      expect(withDomain(d), d).toThrow(TypeError);
    }
    for (const d of [
      'auth.example.com',
      'https://auth.example.com',
      'https://auth.example.com/',
      'auth.example.com:8443',
    ]) {
      expect(withDomain(d), d).not.toThrow();
    }
  });
});
