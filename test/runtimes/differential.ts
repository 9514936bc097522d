/**
 * The runtime differential: a corpus of hostile (and some valid) requests, made on Node with real
 * keys, sent to app.mjs's `/decide` (Bearer) and `/decide/dpop` (DPoP allowed) routes on the
 * runtime under test, and answered first by the SAME app, importing the SAME installed package,
 * on plain Node (a child process in the app folder): the oracle. Every runtime must answer every
 * request exactly as Node did: the same HTTP status and `error` code, and for an accepted request
 * the same client and scopes. A runtime that accepts what Node refuses is a trust bug; one that
 * refuses what Node accepts, an availability bug; a different refusal (status or code) is a
 * divergence too. Independently of Node, the cases marked `must` must be refused (400, 401 or 403)
 * or accepted (200) by the oracle.
 *
 * Both routes verify with a static key set (the `jwks` option): nothing is fetched, so a decision
 * depends on the request alone. The same bytes go to both sides, once each and in the same order
 * (the verified-token cache and the DPoP replay store see the same history). Times in the corpus
 * sit well away from every limit (`clockTolerance` and DPoP `maxAge` are 300 s here), so the
 * seconds between the oracle's answer and the runtime's change no decision.
 *
 * smoke.ts calls {@link prepareDifferential} before the runtime starts (the keys go into
 * config.mjs) and `run()` once it listens. A divergence listed in {@link KNOWN_BUGS} (a bug in
 * src/) or {@link RUNTIME_QUIRKS} (the runtime's HTTP layer, not src/) is reported but does not
 * fail the run. The request goes over HTTP/1.1 to the runtime, as a Web Request to the oracle:
 * what the runtime's server does to a request before the app sees it is part of what is compared.
 */
import {
  constants,
  createHash,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  privateEncrypt,
  randomUUID,
  sign,
} from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { spawn } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ISSUER = 'https://issuer.diff.example/oidc';
const AUDIENCE = 'https://shopping.api';
const OTHER_AUDIENCE = 'https://other.api';
const DPOP_ORIGIN = 'https://api.diff.example';
const DECIDE = '/decide';
const DPOP_PATH = '/decide/dpop';
const HTU = `${DPOP_ORIGIN}${DPOP_PATH}`;
/** The differential verifiers' `clockTolerance` and DPoP `maxAge`, in seconds: roomy limits. */
const TOLERANCE = 300;
const DPOP_MAX_AGE = 300;
/**
 * How long every time-relative case keeps its decision after the corpus is made, in ms. The
 * nearest limit: a proof issued 200 s ahead becomes acceptable 140 s later (60 s of proof skew).
 * Past it the run is reported as unreliable.
 */
const TIME_MARGIN_MS = 130_000;
const REQUEST_TIMEOUT = 5000;

/** `<target> <case id>` for every target in `targets`. */
const on = (targets: readonly string[], ...ids: string[]): string[] =>
  targets.flatMap((target) => ids.map((id) => `${target} ${id}`));
const WORKERD = ['workerd', 'workerd-nodejs-compat'];

/**
 * Divergences known to be bugs in src/, as `<target> <case id>` (targets: bun, deno, workerd,
 * workerd-nodejs-compat; `node` for a `must` case Node's own answer fails), each with a `// BUG:`
 * comment, e.g. `...on(['bun', 'deno'], 'jwks-spelling.rsa-base64')`. Each is still reported but
 * does not fail the run. Fix src/, then delete the entry: a listed divergence that no longer shows
 * is reported as stale.
 *
 * Found by this differential and fixed in src/ (commit 17c5ddc, src/public-key.ts): a small-order
 * Ed25519 key verified forgeries on Bun, Deno and workerd (`weak-keys.ed25519-small-order.*`,
 * `dpop-signature.ed25519-small-order-key`); an RSA key with e = 1 verified forgeries on Node
 * (`weak-keys.rsa-e1.forged`, `dpop-signature.rsa-e1-key`); JWKS keys spelled with `+/` or a stray
 * `=` verified on Node only (`jwks-spelling.rsa-base64`, `.p384-base64`, `.p384-extra-padding`);
 * a proof `jwk` in the base64 alphabet verified on Node and workerd only (`dpop-header.jwk-base64`).
 */
export const KNOWN_BUGS: ReadonlySet<string> = new Set<string>([]);

/**
 * Divergences that are not src/'s: the runtime's HTTP layer hands the app another request than
 * the one sent, and resource-guard answers that request as Node would answer it. Reported, never
 * failing.
 */
export const RUNTIME_QUIRKS: ReadonlySet<string> = new Set<string>([
  // Deno.serve gives `request.url` the raw request target (`/decide/x/../dpop`), where Node's
  // Request, Bun and workerd serialize it (`/decide/dpop`); dpop-request.ts pathOf() refuses a
  // target that parsing would rewrite (the router may read it otherwise), so Deno answers 401
  // dpop_htu_mismatch where the others accept. Safe: Deno routers see the raw path too.
  'deno dpop-htu.request-target.dot-segment',
  // workerd drops an empty Authorization field that precedes another (only for Authorization:
  // another header keeps `, b`), so the app sees one credential; Node's Headers joins the two
  // (`, Bearer <token>`) and resource-guard refuses that as multiple_credentials (400). The token
  // that is left is verified in full: nothing passes unverified.
  ...on(WORKERD, 'authorization.two-fields.first-empty'),
]);

/** One check, for smoke.ts's tally. */
/** One check, for smoke.ts's tally. */
export interface DifferentialCheck {
  readonly label: string;
  readonly expected: readonly number[];
  readonly got: string;
  readonly ok: boolean;
}

type Json = Record<string, unknown>;
/** What the oracle must answer, when that is not Node's choice. */
type Must = 'accept' | 'refuse' | undefined;
/** A segment's content: an object (JSON.stringify), JSON text as is, or raw bytes. */
type Content = Json | string | Uint8Array;
type Signer = (input: Buffer) => Buffer;

interface Case {
  readonly id: string;
  /** Its class: the report counts per class. */
  readonly cls: string;
  readonly path: string;
  readonly method: string;
  /** Header fields in order; a name given twice is sent as two fields. */
  readonly headers: readonly (readonly [string, string])[];
  /** What the oracle itself must answer, whatever Node's verifier does. */
  readonly must?: 'accept' | 'refuse' | undefined;
  /** Node's answer is printed (classes where what Node does is the rule to follow). */
  readonly notable?: boolean | undefined;
}

interface Decision {
  /** HTTP status; 0 when no answer came (`reason` says why). */
  readonly status: number;
  /** The body's `error` member (`-` when there is none). */
  readonly error: string;
  /** `x-decision-reason`: the AuthError's reason (shown, never compared). */
  readonly reason: string;
  /** For a 2xx: the client, subject and scopes the route saw. */
  readonly granted: string;
}

const b64 = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64url');
const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');

function encode(content: Content): string {
  if (content instanceof Uint8Array) return b64(content);
  return b64(typeof content === 'string' ? content : JSON.stringify(content));
}

/** `JSON.stringify(object)` with raw JSON members (text) appended. */
const withRaw = (object: Json, members: string): string =>
  `${JSON.stringify(object).slice(0, -1)}${Object.keys(object).length > 0 ? ',' : ''}${members}}`;

/** JSON text with raw bytes spliced in. */
const spliced = (before: string, bytes: readonly number[], after: string): Uint8Array =>
  Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]);

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The same value spelled with non-zero unused trailing bits (a length of 4n+2 or 4n+3). */
function trailingBits(segment: string): string {
  const rest = segment.length % 4;
  if (rest !== 2 && rest !== 3) throw new Error(`no unused bits at length ${segment.length}`);
  const last = ALPHABET.indexOf(segment[segment.length - 1] as string);
  return `${segment.slice(0, -1)}${ALPHABET[last | 1]}`;
}

/** A segment with `=` padding (two when its length needs none). */
const padded = (segment: string): string =>
  `${segment}${'='.repeat((4 - (segment.length % 4)) % 4) || '=='}`;

/** A segment made 4n+1 characters long (no base64 at all) by appending `A`s. */
const length4n1 = (segment: string): string =>
  `${segment}${'A'.repeat((((1 - segment.length) % 4) + 4) % 4 || 4)}`;

/** base64 (`+/` alphabet, `=` padded) of a base64url value. */
const toBase64 = (value: string): string => Buffer.from(value, 'base64url').toString('base64');

// Curve orders (SEC 2) and the Ed25519 group order L (RFC 8032).
const ORDER: Readonly<Record<string, bigint>> = {
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  ES384: BigInt(
    '0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973',
  ),
  ES512: BigInt(
    `0x01ff${'ffffffff'.repeat(7)}fffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409`,
  ),
};
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;
for (const [alg, bits] of [
  ['ES256', 256],
  ['ES384', 384],
  ['ES512', 521],
] as const) {
  if ((ORDER[alg] as bigint).toString(2).length !== bits) throw new Error(`the ${alg} order`);
}

const toBig = (bytes: Uint8Array): bigint =>
  bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
/** Big-endian in exactly `size` octets; `undefined` when the value does not fit. */
function fromBig(value: bigint, size: number): Buffer | undefined {
  const hex = value.toString(16).padStart(size * 2, '0');
  return hex.length > size * 2 ? undefined : Buffer.from(hex, 'hex');
}

/** An r||s signature changed by `change(r, s, n)`; `undefined` when the result does not fit. */
function ecdsaVariant(
  signature: Buffer,
  alg: string,
  change: (r: bigint, s: bigint, n: bigint) => readonly [bigint, bigint],
): Buffer | undefined {
  const size = signature.length / 2;
  const n = ORDER[alg] as bigint;
  const [r, s] = change(toBig(signature.subarray(0, size)), toBig(signature.subarray(size)), n);
  const rb = fromBig(r, size);
  const sb = fromBig(s, size);
  return rb && sb && Buffer.concat([rb, sb]);
}

/** DER (a SEQUENCE of two INTEGERs) of an r||s signature. */
function toDer(signature: Buffer): Buffer {
  const size = signature.length / 2;
  const integer = (bytes: Buffer) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    let body = bytes.subarray(i);
    if (((body[0] as number) & 0x80) !== 0) body = Buffer.concat([Buffer.from([0]), body]);
    return Buffer.concat([Buffer.from([0x02, body.length]), body]);
  };
  const content = Buffer.concat([
    integer(signature.subarray(0, size)),
    integer(signature.subarray(size)),
  ]);
  const length =
    content.length < 0x80 ? Buffer.from([content.length]) : Buffer.from([0x81, content.length]);
  return Buffer.concat([Buffer.from([0x30]), length, content]);
}

/** An Ed25519 signature R||S with S (little-endian) changed; `undefined` when it does not fit. */
function ed25519Variant(signature: Buffer, change: (s: bigint) => bigint): Buffer | undefined {
  const s = change(toBig(Buffer.from(signature.subarray(32)).reverse()));
  const bytes = fromBig(s, 32);
  return bytes && Buffer.concat([signature.subarray(0, 32), bytes.reverse()]);
}

/** The Ed25519 identity point (y = 1), a point of small order. */
const ED25519_IDENTITY = Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]);
/** The identity's encoding with the sign bit of x set (x = 0, so "negative zero"). */
const ED25519_IDENTITY_SIGNED = Buffer.concat([
  Buffer.from([1]),
  Buffer.alloc(30),
  Buffer.from([0x80]),
]);
/** A base64url text with a `.` (no base64 character) inside it. */
const dotted = (text: string): string => `${text.slice(0, 10)}.${text.slice(10)}`;
/** A base64url text with a space inside it. */
const spaced = (text: string): string => `${text.slice(0, 10)} ${text.slice(10)}`;

/** 1 + λ(n) for an RSA private key (λ = lcm(p − 1, q − 1)): as forgeable an exponent as 1. */
function exponentOnePlusLambda(key: KeyObject): Buffer {
  const { p, q } = key.export({ format: 'jwk' });
  const [p1, q1] = [p, q].map((v) => toBig(Buffer.from(v as string, 'base64url')) - 1n) as [
    bigint,
    bigint,
  ];
  const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));
  const hex = (1n + (p1 * q1) / gcd(p1, q1)).toString(16);
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
}

/** The Ed25519 base point B. */
const ED25519_BASE = Buffer.from('58'.padEnd(64, '6'), 'hex');

/** A coordinate changed in its last bit: (x, y') is not on the curve. */
const offCurve = (y: Buffer): Buffer => {
  const copy = Buffer.from(y);
  copy[copy.length - 1] = (copy[copy.length - 1] as number) ^ 1;
  return copy;
};

/** EMSA-PKCS1-v1_5 (RFC 8017 §9.2) of a SHA-256 digest, for a 2048-bit modulus. */
const emsaPkcs1Sha256 = (digest: Buffer): Buffer =>
  Buffer.concat([
    Buffer.from([0, 1]),
    Buffer.alloc(256 - 54, 0xff),
    Buffer.from('003031300d060960864801650304020105000420', 'hex'),
    digest,
  ]);

const publicJwk = (key: KeyObject): JsonWebKey => createPublicKey(key).export({ format: 'jwk' });

/** RFC 7638 thumbprint of a public JWK as spelled (its required members, in order). */
function thumbprint(jwk: JsonWebKey): string {
  const members =
    jwk.kty === 'RSA'
      ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
      : jwk.kty === 'OKP'
        ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
        : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return sha256(JSON.stringify(members));
}

/** Every key of the run: the issuer's (in the static JWKS, and some that are not) and clients'. */
interface Keys {
  readonly p256: KeyObject;
  readonly p384: KeyObject;
  readonly p521: KeyObject;
  readonly ed: KeyObject;
  readonly rsa: KeyObject;
  readonly rsa1024: KeyObject;
  readonly sharedB: KeyObject;
  readonly nokid: KeyObject;
  readonly enc: KeyObject;
  readonly trailing: KeyObject;
  /** A P-384 key whose coordinates, in base64, hold `+` or `/`. */
  readonly spelled: KeyObject;
  /** RSA with the public exponent 3 (small, but a real key). */
  readonly rsaE3: KeyObject;
  /** Not in the JWKS: an attacker's. */
  readonly attacker: KeyObject;
  readonly octSecret: Buffer;
  /** DPoP clients' keys. */
  readonly proof: KeyObject;
  readonly thief: KeyObject;
  readonly proofEd: KeyObject;
  readonly proofRsa: KeyObject;
  readonly jwks: readonly JsonWebKey[];
}

function makeKeys(): Keys {
  const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve }).privateKey;
  const rsaKey = (modulusLength: number) =>
    generateKeyPairSync('rsa', { modulusLength }).privateKey;
  /** A P-256 or P-384 key whose x or y, written in base64, holds `+` or `/`. */
  const plusSlash = (namedCurve: string) => {
    for (;;) {
      const key = ec(namedCurve);
      const { x, y } = publicJwk(key);
      if (/[+/]/.test(toBase64(x as string) + toBase64(y as string))) return key;
    }
  };
  const p256 = ec('P-256');
  const rsa = rsaKey(2048);
  const rsa1024 = rsaKey(1024);
  const keys = {
    p256,
    p384: ec('P-384'),
    p521: ec('P-521'),
    ed: generateKeyPairSync('ed25519').privateKey,
    rsa,
    rsa1024,
    sharedA: ec('P-256'),
    sharedB: ec('P-256'),
    nokid: ec('P-256'),
    enc: ec('P-256'),
    trailing: ec('P-256'),
    spelled: plusSlash('P-384'),
    rsaE3: generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).privateKey,
    attacker: ec('P-256'),
    octSecret: Buffer.from('the oct key of the differential JWKS, 32+ bytes'),
    proof: plusSlash('P-256'),
    thief: ec('P-256'),
    proofEd: generateKeyPairSync('ed25519').privateKey,
    proofRsa: rsaKey(2048),
  };
  const rsaJwk = publicJwk(rsa);
  const n = Buffer.from(rsaJwk.n as string, 'base64url');
  const small = publicJwk(rsa1024);
  const trailing = publicJwk(keys.trailing);
  const spelled = publicJwk(keys.spelled);
  const p521 = publicJwk(keys.p521);
  const jwks: JsonWebKey[] = [
    { ...publicJwk(p256), kid: 'p256', use: 'sig' },
    { ...publicJwk(keys.p384), kid: 'p384', alg: 'ES384' },
    { ...publicJwk(keys.p521), kid: 'p521' },
    { ...publicJwk(keys.ed), kid: 'ed25519' },
    { ...rsaJwk, kid: 'rsa' },
    { ...rsaJwk, kid: 'rsa-rs256', alg: 'RS256' },
    { ...publicJwk(keys.sharedA), kid: 'shared' },
    { ...publicJwk(keys.sharedB), kid: 'shared' },
    publicJwk(keys.nokid),
    { ...publicJwk(keys.enc), kid: 'p256-enc', use: 'enc' },
    { ...small, kid: 'rsa-1024' },
    // A 1024-bit modulus behind 128 zero octets: written 2048 bits long, still a 1024-bit key.
    {
      ...small,
      kid: 'rsa-1024-padded',
      n: b64(Buffer.concat([Buffer.alloc(128), Buffer.from(small.n as string, 'base64url')])),
    },
    { kty: 'oct', kid: 'oct', k: b64(keys.octSecret) },
    // The issuer's own keys in spellings some issuers use (the same values each time): a valid
    // token must verify on every runtime if it does on Node.
    { ...rsaJwk, kid: 'rsa-zero-octet', n: b64(Buffer.concat([Buffer.alloc(1), n])) },
    { ...rsaJwk, kid: 'rsa-base64', n: toBase64(rsaJwk.n as string) },
    { ...trailing, kid: 'p256-trailing-bits', x: trailingBits(trailing.x as string) },
    {
      ...spelled,
      kid: 'p384-base64',
      x: toBase64(spelled.x as string),
      y: toBase64(spelled.y as string),
    },
    // P-256 coordinates (32 octets) take one `=` of padding; P-384 ones (48) none at all.
    {
      ...trailing,
      kid: 'p256-padded',
      x: `${trailing.x as string}=`,
      y: `${trailing.y as string}=`,
    },
    { ...spelled, kid: 'p384-extra-padding', x: `${spelled.x as string}=` },
    { ...rsaJwk, kid: 'rsa-e-zero-octet', e: 'AAEAAQ' },
    { ...p521, kid: 'p521-key-ops-verify', key_ops: ['verify'] },
    { ...p521, kid: 'p521-key-ops-sign', key_ops: ['sign'] },
    { ...p521, kid: 'p521-ext-false', ext: false },
    // Degenerate keys an issuer should never publish: a point off the curve, the Ed25519 identity
    // (small order: R = identity and S = 0 verify any message), RSA with e = 1 (the signature is
    // the encoded message itself). Anyone can "sign" with the last two.
    {
      ...p521,
      kid: 'p521-off-curve',
      y: b64(offCurve(Buffer.from(p521.y as string, 'base64url'))),
    },
    { kty: 'OKP', crv: 'Ed25519', kid: 'ed25519-small-order', x: b64(ED25519_IDENTITY) },
    { kty: 'RSA', kid: 'rsa-e1', n: rsaJwk.n as string, e: 'AQ' },
    { ...publicJwk(keys.rsaE3), kid: 'rsa-e3' },
    // The same weaknesses written so that a reader of the values alone can miss them: the identity
    // key with a character outside base64 (Node's decoder skips it) or its sign bit set, and an
    // RSA exponent of 1 + λ(n), under which s^e = s as with e = 1.
    {
      kty: 'OKP',
      crv: 'Ed25519',
      kid: 'ed25519-small-order-dot',
      x: dotted(b64(ED25519_IDENTITY)),
    },
    {
      kty: 'OKP',
      crv: 'Ed25519',
      kid: 'ed25519-small-order-space',
      x: spaced(b64(ED25519_IDENTITY)),
    },
    {
      kty: 'OKP',
      crv: 'Ed25519',
      kid: 'ed25519-small-order-junk',
      x: `${b64(ED25519_IDENTITY)}=junk`,
    },
    {
      kty: 'OKP',
      crv: 'Ed25519',
      kid: 'ed25519-small-order-sign',
      x: b64(ED25519_IDENTITY_SIGNED),
    },
    { kty: 'RSA', kid: 'rsa-e1-lambda', n: rsaJwk.n as string, e: b64(exponentOnePlusLambda(rsa)) },
  ];
  return { ...keys, jwks };
}

const SHA: Readonly<Record<string, string>> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

/** How `alg` signs with `key` (node:crypto, so nothing refuses to make a hostile signature). */
function signer(alg: string, key: KeyObject, saltLength?: number): Signer {
  const hash = SHA[alg.slice(2)] as string;
  switch (alg.slice(0, 2)) {
    case 'ES':
      return (input) => sign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
    case 'RS':
      return (input) => sign(hash, input, key);
    case 'PS':
      return (input) =>
        sign(hash, input, {
          key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: saltLength ?? Number(alg.slice(2)) / 8,
        });
    default:
      return (input) => sign(null, input, key); // EdDSA, Ed25519
  }
}

/** RS256 with the encoded message (RFC 8017 §9.2) built by `em` from the digest, raw RSA. */
const rawRs256 =
  (key: KeyObject, em: (digest: Buffer) => Buffer): Signer =>
  (input) =>
    privateEncrypt(
      { key, padding: constants.RSA_NO_PADDING },
      em(createHash('sha256').update(input).digest()),
    );

const hmac =
  (secret: Uint8Array | string): Signer =>
  (input) =>
    createHmac('sha256', secret).update(input).digest();

interface TokenSpec {
  readonly header?: Content;
  readonly payload?: Content;
  readonly signer?: Signer;
  /** Changes the encoded header and payload before signing (what is signed is what is sent). */
  readonly segments?: (header: string, payload: string) => readonly [string, string];
  /** Changes the signature bytes. */
  readonly signature?: (signature: Buffer) => Buffer;
  /** Changes the signature's text. */
  readonly signatureText?: (text: string) => string;
}

/** Drops the members whose value is `undefined`. */
function defined(object: Json): Json {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}

/**
 * The corpus: every case, in the order they are sent, and the signature variants that could not
 * be made (a value that does not fit the encoding, such as r + n on P-256).
 */
function buildCorpus(keys: Keys, nowMs: number): { cases: Case[]; skipped: string[] } {
  const now = Math.floor(nowMs / 1000);
  const cases: Case[] = [];
  const skipped: string[] = [];
  const ids = new Set<string>();
  /** The class of the cases added next. */
  let cls = '';
  interface AddOptions {
    readonly must?: Must;
    readonly notable?: boolean;
    readonly path?: string;
    readonly method?: string;
  }
  const add = (id: string, headers: Case['headers'], options: AddOptions = {}) => {
    const full = `${cls}.${id}`;
    if (ids.has(full)) throw new Error(`duplicate case id ${full}`);
    ids.add(full);
    cases.push({
      id: full,
      cls,
      path: options.path ?? DECIDE,
      method: options.method ?? 'GET',
      headers,
      must: options.must,
      notable: options.notable,
    });
  };
  const bearer = (token: string): [string, string][] => [['authorization', `Bearer ${token}`]];
  /** A Bearer request with `token` on /decide: Node decides (`note`: and its answer is shown). */
  const send = (id: string, token: string, must?: Must, notable?: boolean) =>
    add(id, bearer(token), { must, notable: notable ?? false });
  const accept = (id: string, token: string) => send(id, token, 'accept');
  const refuse = (id: string, token: string) => send(id, token, 'refuse');
  const note = (id: string, token: string) => send(id, token, undefined, true);

  const claims = (over: Json = {}): Json =>
    defined({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'diff-app',
      client_id: 'diff-app',
      jti: randomUUID(),
      iat: now - 60,
      exp: now + 3600,
      scope: 'read:products',
      ...over,
    });
  const header = (over: Json = {}): Json =>
    defined({ alg: 'ES256', typ: 'at+jwt', kid: 'p256', ...over });
  const es256 = signer('ES256', keys.p256);

  function jws(spec: TokenSpec = {}): string {
    let h = encode(spec.header ?? header());
    let p = encode(spec.payload ?? claims());
    if (spec.segments !== undefined) [h, p] = spec.segments(h, p);
    const input = `${h}.${p}`;
    let signature = (spec.signer ?? es256)(Buffer.from(input, 'latin1'));
    if (spec.signature !== undefined) signature = spec.signature(signature);
    const text = b64(signature);
    return `${input}.${spec.signatureText === undefined ? text : spec.signatureText(text)}`;
  }
  /** A token signed by the P-256 key (kid p256) with these claims and header members. */
  const token = (over: Json = {}, headerOver: Json = {}) =>
    jws({ payload: claims(over), header: header(headerOver) });
  /** A token signed with `alg` by `key`, the header's other members as given. */
  const signed = (alg: string, key: KeyObject, headerOver: Json = {}, over: Json = {}) =>
    jws({
      header: header({ alg, ...headerOver }),
      payload: claims(over),
      signer: signer(alg, key),
    });
  /** A token whose payload (or header) is this JSON text or these bytes. */
  const rawPayload = (payload: Content) => jws({ payload });
  const rawHeader = (h: Content) => jws({ header: h });
  /** A token with its signature changed: `undefined` when the change cannot be made. */
  const mutated = (
    alg: string,
    key: KeyObject,
    kid: string,
    change: (signature: Buffer) => Buffer | undefined,
  ): string | undefined => {
    let possible = true;
    const made = jws({
      header: header({ alg, kid }),
      signer: signer(alg, key),
      signature: (signature) => {
        const changed = change(signature);
        if (changed === undefined) possible = false;
        return changed ?? signature;
      },
    });
    return possible ? made : undefined;
  };

  // ── Controls: a valid token per algorithm and key (every runtime must accept them).
  cls = 'valid';
  const controls: readonly [string, string, KeyObject][] = [
    ['ES256', 'p256', keys.p256],
    ['ES384', 'p384', keys.p384],
    ['ES512', 'p521', keys.p521],
    ['EdDSA', 'ed25519', keys.ed],
    ['Ed25519', 'ed25519', keys.ed],
    ['RS256', 'rsa', keys.rsa],
    ['RS384', 'rsa', keys.rsa],
    ['RS512', 'rsa', keys.rsa],
    ['PS256', 'rsa', keys.rsa],
    ['PS384', 'rsa', keys.rsa],
    ['PS512', 'rsa', keys.rsa],
    ['RS256', 'rsa-rs256', keys.rsa],
  ];
  for (const [alg, kid, key] of controls) accept(`${alg}.${kid}`, signed(alg, key, { kid }));
  accept('shared-kid.second-key', signed('ES256', keys.sharedB, { kid: 'shared' }));
  accept('no-kid.key-without-kid', signed('ES256', keys.nokid, { kid: undefined }));
  accept('no-kid.p256', token({}, { kid: undefined }));
  accept('no-kid.rsa', signed('RS256', keys.rsa, { kid: undefined }));
  const repeated = token();
  accept('repeat.first', repeated);
  accept('repeat.cached', repeated);

  // ── The issuer's own keys spelled as some issuers write them (the same values).
  cls = 'jwks-spelling';
  note('rsa-zero-octet', signed('RS256', keys.rsa, { kid: 'rsa-zero-octet' }));
  note('rsa-base64', signed('RS256', keys.rsa, { kid: 'rsa-base64' }));
  note('p256-trailing-bits', signed('ES256', keys.trailing, { kid: 'p256-trailing-bits' }));
  note('p384-base64', signed('ES384', keys.spelled, { kid: 'p384-base64' }));
  note('p256-padded', signed('ES256', keys.trailing, { kid: 'p256-padded' }));
  note('p384-extra-padding', signed('ES384', keys.spelled, { kid: 'p384-extra-padding' }));
  note('rsa-e-zero-octet', signed('RS256', keys.rsa, { kid: 'rsa-e-zero-octet' }));
  note('p521-key-ops-verify', signed('ES512', keys.p521, { kid: 'p521-key-ops-verify' }));
  note('p521-key-ops-sign', signed('ES512', keys.p521, { kid: 'p521-key-ops-sign' }));
  note('p521-ext-false', signed('ES512', keys.p521, { kid: 'p521-ext-false' }));

  // ── Degenerate keys in the issuer's set: what Node accepts under them is the rule.
  cls = 'weak-keys';
  refuse('p521-off-curve', signed('ES512', keys.p521, { kid: 'p521-off-curve' }));
  const forged = (alg: string, kid: string, signature: (input: Buffer) => Buffer) =>
    jws({ header: header({ alg, kid }), signer: signature });
  // Under the identity key, R = identity and S = 0 verify any message, and so do R = B, S = 1.
  const identityForgery = () => Buffer.concat([ED25519_IDENTITY, Buffer.alloc(32)]);
  const baseForgery = () => Buffer.concat([ED25519_BASE, Buffer.from([1]), Buffer.alloc(31)]);
  const e1Forgery = (input: Buffer) => emsaPkcs1Sha256(createHash('sha256').update(input).digest());
  send(
    'ed25519-small-order.forged',
    forged('EdDSA', 'ed25519-small-order', identityForgery),
    'refuse',
    true,
  );
  send(
    'ed25519-small-order.forged-r-b',
    forged('EdDSA', 'ed25519-small-order', baseForgery),
    'refuse',
    true,
  );
  send('rsa-e1.forged', forged('RS256', 'rsa-e1', e1Forgery), 'refuse', true);
  for (const kid of ['dot', 'space', 'junk', 'sign'].map((v) => `ed25519-small-order-${v}`)) {
    send(`${kid}.forged`, forged('EdDSA', kid, identityForgery), 'refuse', true);
  }
  send('rsa-e1-lambda.forged', forged('RS256', 'rsa-e1-lambda', e1Forgery), 'refuse', true);
  accept('rsa-e3.valid', signed('RS256', keys.rsaE3, { kid: 'rsa-e3' }));

  // ── alg: none, HMAC keyed with public material, confusion between key types.
  cls = 'alg';
  const unsigned = () => Buffer.alloc(0);
  for (const alg of ['none', 'None', 'NONE', 'nOnE', '']) {
    refuse(`none.${alg || 'empty'}`, jws({ header: header({ alg }), signer: unsigned }));
  }
  refuse('none.with-signature', token({}, { alg: 'none' }));
  refuse('missing', token({}, { alg: undefined }));
  refuse('number', token({}, { alg: 256 }));
  refuse('array', token({}, { alg: ['ES256'] }));
  const rsaPem = createPublicKey(keys.rsa).export({ type: 'spki', format: 'pem' }) as string;
  const rsaJwk = publicJwk(keys.rsa);
  const hs: readonly [string, string | undefined, Uint8Array | string][] = [
    ['rsa-pem', 'rsa', rsaPem],
    ['rsa-jwk-json', 'rsa', JSON.stringify({ ...rsaJwk, kid: 'rsa' })],
    ['rsa-n', 'rsa', Buffer.from(rsaJwk.n as string, 'base64url')],
    ['p256-x', 'p256', Buffer.from(publicJwk(keys.p256).x as string, 'base64url')],
    ['oct-key', 'oct', keys.octSecret],
    ['no-kid', undefined, rsaPem],
  ];
  for (const [id, kid, secret] of hs) {
    refuse(`hs256.${id}`, jws({ header: header({ alg: 'HS256', kid }), signer: hmac(secret) }));
  }
  const hs384 = (input: Buffer) => createHmac('sha384', keys.octSecret).update(input).digest();
  refuse('hs384.oct-key', jws({ header: header({ alg: 'HS384', kid: 'oct' }), signer: hs384 }));
  refuse('rs256.kid-oct', signed('RS256', keys.rsa, { kid: 'oct' }));
  refuse('es256.kid-rsa', token({}, { kid: 'rsa' }));
  refuse('es256.kid-p384', signed('ES256', keys.p384, { kid: 'p384' }));
  refuse('es384.kid-p256', signed('ES384', keys.p256, { kid: 'p256' }));
  refuse('eddsa.kid-p256', signed('EdDSA', keys.ed, { kid: 'p256' }));
  refuse('es256k', token({}, { alg: 'ES256K' }));
  const sha1 = (input: Buffer) => sign('sha1', input, keys.rsa);
  refuse('rs1', jws({ header: header({ alg: 'RS1', kid: 'rsa' }), signer: sha1 }));
  refuse('ps256.kid-rsa-rs256', signed('PS256', keys.rsa, { kid: 'rsa-rs256' }));
  const rsaSigned = (alg: string, signedAs: string) =>
    jws({ header: header({ alg, kid: 'rsa' }), signer: signer(signedAs, keys.rsa) });
  refuse('ps256-header.rs256-signature', rsaSigned('PS256', 'RS256'));
  refuse('rs256-header.ps256-signature', rsaSigned('RS256', 'PS256'));
  refuse('rs384-header.rs256-signature', rsaSigned('RS384', 'RS256'));
  refuse('ps384-header.ps256-signature', rsaSigned('PS384', 'PS256'));
  refuse('es256.attacker-key', signed('ES256', keys.attacker));

  // ── kid tricks.
  cls = 'kid';
  const kids: readonly [string, unknown][] = [
    ['empty', ''],
    ['number', 1],
    ['null', null],
    ['array', ['p256']],
    ['object', { kid: 'p256' }],
    ['case', 'P256'],
    ['trailing-space', 'p256 '],
    ['path', '../p256'],
    ['proto', '__proto__'],
    ['constructor', 'constructor'],
    ['has-own', 'hasOwnProperty'],
    ['zero-width', 'p256\u200b'],
    ['nul', 'p256\u0000'],
    ['long', 'k'.repeat(3000)],
    ['enc-key', 'p256-enc'],
    ['oct-key', 'oct'],
    ['rsa-1024', 'rsa-1024'],
    ['rsa-1024-padded', 'rsa-1024-padded'],
    ['unknown', 'no-such-kid'],
  ];
  for (const [id, kid] of kids) refuse(id, token({}, { kid }));
  refuse('enc-key.signed-by-it', signed('ES256', keys.enc, { kid: 'p256-enc' }));
  refuse('rsa-1024.signed-by-it', signed('RS256', keys.rsa1024, { kid: 'rsa-1024' }));
  refuse('rsa-1024-padded.signed-by-it', signed('RS256', keys.rsa1024, { kid: 'rsa-1024-padded' }));
  refuse('rsa-1024.under-kid-rsa', signed('RS256', keys.rsa1024, { kid: 'rsa' }));
  refuse('rsa-1024.no-kid', signed('RS256', keys.rsa1024, { kid: undefined }));
  refuse('no-kid.attacker-key', signed('ES256', keys.attacker, { kid: undefined }));
  refuse('shared.attacker-key', signed('ES256', keys.attacker, { kid: 'shared' }));

  // ── Headers that name a key; crit, b64, cty, typ.
  cls = 'key-headers';
  refuse('jwk.attacker', signed('ES256', keys.attacker, { jwk: publicJwk(keys.attacker) }));
  refuse('jwk.issuer-key', token({}, { jwk: publicJwk(keys.p256) }));
  refuse('jku', token({}, { jku: 'https://attacker.example/jwks' }));
  refuse('x5u', token({}, { x5u: 'https://attacker.example/cert' }));
  refuse('jku.null', token({}, { jku: null }));
  refuse('x5c.attacker', signed('ES256', keys.attacker, { x5c: ['MIIB'] }));
  note('x5c.issuer-signed', token({}, { x5c: ['MIIB'] }));
  note('x5t', token({}, { x5t: 'abc', 'x5t#S256': 'def' }));

  cls = 'crit';
  refuse('b64', token({}, { crit: ['b64'], b64: false }));
  refuse('exp', token({}, { crit: ['exp'], exp: now + 60 }));
  refuse('unknown', token({}, { crit: ['urn:x'], 'urn:x': true }));
  refuse('empty-list', token({}, { crit: [] }));
  refuse('string', token({}, { crit: 'b64' }));
  refuse('null', token({}, { crit: null }));
  cls = 'b64';
  note('false.no-crit', token({}, { b64: false }));
  note('true', token({}, { b64: true }));
  {
    // An unencoded payload (RFC 7797) signed as such, sent encoded: never a valid access token.
    const h = encode(header({ b64: false, crit: ['b64'] }));
    const payload = JSON.stringify(claims());
    refuse('false.unencoded', `${h}.${b64(payload)}.${b64(es256(Buffer.from(`${h}.${payload}`)))}`);
  }
  cls = 'cty';
  for (const cty of ['JWT', 'jwt', 'application/jwt', 'Application/JWT']) {
    refuse(cty.replace(/\W/g, '_'), token({}, { cty }));
  }
  note('jwt-space', token({}, { cty: 'JWT ' }));
  refuse('number', token({}, { cty: 1 }));
  note('json', token({}, { cty: 'json' }));
  cls = 'typ';
  for (const typ of ['at+jwt', 'AT+JWT', 'At+Jwt', 'application/at+jwt', 'APPLICATION/AT+JWT']) {
    accept(`accepted.${typ.replace(/\W/g, '_')}`, token({}, { typ }));
  }
  const badTypes: readonly [string, unknown][] = [
    ['jwt', 'JWT'],
    ['missing', undefined],
    ['empty', ''],
    ['dpop', 'dpop+jwt'],
    ['trailing-space', 'at+jwt '],
    ['nul', 'at+jwt\u0000'],
    ['application-jwt', 'application/jwt'],
    ['params', 'application/at+jwt; charset=utf-8'],
    ['array', ['at+jwt']],
    ['null', null],
    ['kelvin', 'at+jwt\u212a'],
    ['dotless-i', 'applıcation/at+jwt'],
    ['fullwidth', 'ａｔ+jwt'],
    ['id-token', 'id_token+jwt'],
  ];
  for (const [id, typ] of badTypes) refuse(id, token({}, { typ }));

  // ── base64url and the compact form (altered segments are signed as sent).
  cls = 'base64url';
  const valid = token();
  const [vh, vp, vs] = valid.split('.') as [string, string, string];
  const resigned = (h: string, p: string) => jws({ segments: () => [h, p] });
  refuse('header.padding', resigned(padded(vh), vp));
  refuse('payload.padding', resigned(vh, padded(vp)));
  refuse('signature.padding', `${vh}.${vp}.${padded(vs)}`);
  send(
    'header.base64',
    resigned(toBase64(vh).replace(/=+$/, ''), vp),
    /[-_]/.test(vh) ? 'refuse' : undefined,
  );
  refuse('payload.base64', resigned(vh, toBase64(vp)));
  send('signature.base64', `${vh}.${vp}.${toBase64(vs)}`, /[-_]/.test(vs) ? 'refuse' : undefined);
  refuse('header.4n+1', resigned(length4n1(vh), vp));
  refuse('payload.4n+1', resigned(vh, length4n1(vp)));
  refuse('signature.4n+1', `${vh}.${vp}.${length4n1(vs)}`);
  {
    // Segments whose length leaves unused bits (JSON padded with spaces until it does).
    let payloadText = JSON.stringify(claims());
    while (b64(payloadText).length % 4 === 0) payloadText += ' ';
    let headerText = JSON.stringify(header());
    while (b64(headerText).length % 4 === 0) headerText += ' ';
    const odd = (h: string, p: string, which: 0 | 1) =>
      jws({
        header: h,
        payload: p,
        segments: (a, b) => (which === 0 ? [trailingBits(a), b] : [a, trailingBits(b)]),
      });
    refuse('header.trailing-bits', odd(headerText, JSON.stringify(claims()), 0));
    refuse('payload.trailing-bits', odd(JSON.stringify(header()), payloadText, 1));
    accept('payload.spaces', jws({ payload: payloadText }));
  }
  refuse('signature.trailing-bits', `${vh}.${vp}.${trailingBits(vs)}`); // 86 characters
  refuse('segments.2', `${vh}.${vp}`);
  refuse('segments.4', `${vh}.${vp}.${vs}.${vs}`);
  refuse('segments.5', `${vh}.${vp}.${vs}.${vs}.${vs}`);
  refuse('segments.empty-signature', `${vh}.${vp}.`);
  refuse('segments.empty-header', `.${vp}.${vs}`);
  refuse('segments.empty-payload', resigned(vh, ''));
  refuse('leading-dot', `.${valid}`);
  refuse('trailing-dot', `${valid}.`);
  refuse('opaque', 'b3BhcXVlLWFjY2Vzcy10b2tlbg');
  refuse('tilde', `${vh}.${vp}.${vs.slice(0, -1)}~`);
  refuse('header.json-array', rawHeader(`[${JSON.stringify(header())}]`));
  refuse('payload.json-array', rawPayload(`[${JSON.stringify(claims())}]`));
  refuse('payload.json-string', rawPayload(JSON.stringify(JSON.stringify(claims()))));
  refuse('payload.null', rawPayload('null'));

  // ── Bytes that are not UTF-8; byte-order marks; characters JSON refuses raw.
  cls = 'utf8';
  const [before, after] = JSON.stringify(claims({ sub: 'SUB' })).split('SUB') as [string, string];
  const inSub = (bytes: readonly number[]) => rawPayload(spliced(before, bytes, after));
  const bom = [0xef, 0xbb, 0xbf];
  send('bom.header', rawHeader(spliced('', bom, JSON.stringify(header()))), 'refuse', true);
  send('bom.payload', rawPayload(spliced('', bom, JSON.stringify(claims()))), 'refuse', true);
  const utf16 = Buffer.from(JSON.stringify(claims()), 'utf16le');
  refuse('bom.utf16-payload', rawPayload(Buffer.concat([Buffer.from([0xff, 0xfe]), utf16])));
  accept('bom.in-string', inSub([...bom, 0x78]));
  const invalid: readonly [string, readonly number[]][] = [
    ['overlong-slash', [0xc0, 0xaf]],
    ['overlong-nul', [0xc0, 0x80]],
    ['overlong-3', [0xe0, 0x80, 0xaf]],
    ['surrogate-high', [0xed, 0xa0, 0x80]],
    ['surrogate-pair-cesu', [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]],
    ['truncated', [0xe2, 0x82]],
    ['lone-continuation', [0x80]],
    ['latin1', [0xe9]],
    ['ff', [0xff]],
    ['f5', [0xf5, 0x80, 0x80, 0x80]],
    ['above-10ffff', [0xf4, 0x90, 0x80, 0x80]],
    ['five-bytes', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ];
  for (const [id, bytes] of invalid) send(`payload.${id}`, inSub(bytes), 'refuse', true);
  {
    const [hb, ha] = JSON.stringify(header({ kid: 'KID' })).split('KID') as [string, string];
    refuse('header.kid-overlong', rawHeader(spliced(hb, [0xc0, 0xaf], ha)));
    const [tb, ta] = JSON.stringify(header({ typ: 'TYP' })).split('TYP') as [string, string];
    refuse('header.typ-invalid', rawHeader(spliced(tb, [...Buffer.from('at+jwt'), 0xff], ta)));
  }
  accept('noncharacter-fffe', inSub([0xef, 0xbf, 0xbe]));
  accept('noncharacter-10ffff', inSub([0xf4, 0x8f, 0xbf, 0xbf]));
  note('escaped-lone-surrogate', rawPayload(`${before}\\ud800${after}`));
  accept('escaped-nul', rawPayload(`${before}a\\u0000b${after}`));
  refuse('raw-nul', inSub([0x00]));
  refuse('raw-control', inSub([0x1f]));
  accept('raw-del', inSub([0x7f]));
  accept('raw-line-separator', inSub([0xe2, 0x80, 0xa8]));

  // ── JSON: duplicate members, syntax outside RFC 8259, odd whitespace, depth.
  cls = 'json';
  const base = claims();
  const { iss: _iss, exp: _exp, aud: _aud, ...rest } = base;
  const members = (text: string) => rawPayload(withRaw(rest, text));
  const good = { iss: `"iss":"${ISSUER}"`, aud: `"aud":"${AUDIENCE}"`, exp: `"exp":${now + 3600}` };
  const evil = '"iss":"https://evil.example/oidc"';
  note('dup.iss.bad-then-good', members(`${evil},${good.iss},${good.exp},${good.aud}`));
  refuse('dup.iss.good-then-bad', members(`${good.iss},${evil},${good.exp},${good.aud}`));
  refuse(
    'dup.exp.expired-last',
    members(`${good.iss},${good.aud},${good.exp},"exp":${now - 3600}`),
  );
  note('dup.exp.valid-last', members(`${good.iss},${good.aud},"exp":${now - 3600},${good.exp}`));
  refuse(
    'dup.aud.other-last',
    members(`${good.iss},${good.exp},${good.aud},"aud":"${OTHER_AUDIENCE}"`),
  );
  const noScope = { ...base, scope: undefined };
  note(
    'dup.scope.wider-last',
    rawPayload(withRaw(noScope, '"scope":"none","scope":"read:products"')),
  );
  const headerWith = (members: Json, text: string) => rawHeader(withRaw(members, text));
  const typKid = { typ: 'at+jwt', kid: 'p256' };
  refuse('dup.header.alg-none-last', headerWith(typKid, '"alg":"ES256","alg":"none"'));
  note('dup.header.alg-none-first', headerWith(typKid, '"alg":"none","alg":"ES256"'));
  refuse(
    'dup.header.typ-jwt-last',
    headerWith({ alg: 'ES256', kid: 'p256' }, '"typ":"at+jwt","typ":"JWT"'),
  );
  note('dup.header.kid', headerWith({ alg: 'ES256', typ: 'at+jwt' }, '"kid":"rsa","kid":"p256"'));
  refuse('proto.scope', rawPayload(withRaw(noScope, '"__proto__":{"scope":"read:products"}')));
  refuse('proto.exp', members(`${good.iss},${good.aud},"__proto__":{"exp":${now + 3600}}`));
  refuse(
    'proto.header-alg',
    rawHeader('{"__proto__":{"alg":"ES256"},"typ":"at+jwt","kid":"p256"}'),
  );
  const json = JSON.stringify(base);
  const syntax: readonly [string, string][] = [
    ['trailing-comma', withRaw(base, '"x":1,')],
    ['single-quotes', withRaw(base, "'x':1")],
    ['comment', withRaw(base, '"x":1/* c */')],
    ['nan', withRaw(base, '"x":NaN')],
    ['infinity', withRaw(base, '"x":Infinity')],
    ['leading-zero', withRaw(base, '"x":01')],
    ['plus', withRaw(base, '"x":+1')],
    ['dot-first', withRaw(base, '"x":.5')],
    ['dot-last', withRaw(base, '"x":1.')],
    ['hex', withRaw(base, '"x":0x10')],
    ['unquoted-key', withRaw(base, 'x:1')],
    ['bad-escape', withRaw(base, '"x":"\\x41"')],
    ['short-unicode-escape', withRaw(base, '"x":"\\u41"')],
    ['two-objects', `${json}{}`],
    ['trailing-text', `${json} x`],
    ['nbsp', `\u00a0${json}`],
    ['line-separator', `\u2028${json}`],
    ['vertical-tab', `\u000b${json}`],
    ['form-feed', `\u000c${json}`],
    ['unclosed', json.slice(0, -1)],
    ['empty', ''],
  ];
  for (const [id, text] of syntax) refuse(`syntax.${id}`, rawPayload(text));
  accept('whitespace.json', rawPayload(` \t\r\n${JSON.stringify(base, null, '\t')}\r\n `));
  accept('escaped-key', rawPayload(json.replace('"iss"', '"\\u0069ss"')));
  const nested = JSON.parse(`${'['.repeat(2500)}${']'.repeat(2500)}`) as unknown;
  note('deep.array', token({ deep: nested }));
  note(
    'deep.object',
    rawPayload(withRaw(base, `"deep":${'{"a":'.repeat(700)}1${'}'.repeat(700)}`)),
  );
  accept(
    'many-members',
    token(Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`c${i}`, i]))),
  );

  // ── NumericDate claims written as JSON numbers of every shape.
  cls = 'numbers';
  const numbers: readonly [string, string, Must][] = [
    ['exp.1e400', '1e400', 'refuse'],
    ['exp.-1e400', '-1e400', 'refuse'],
    ['exp.max-double', '1.7976931348623157e308', 'accept'],
    ['exp.max-double-long', '1.7976931348623158079e308', undefined],
    [
      'exp.halfway-to-infinity',
      '1.797693134862315807937289714053034150799341327710418e308',
      undefined,
    ],
    ['exp.above-halfway', '1.7976931348623159e308', 'refuse'],
    ['exp.301-digits', `1${'0'.repeat(300)}`, 'accept'],
    ['exp.310-digits', `1${'0'.repeat(309)}`, 'refuse'],
    ['exp.exponent-upper', '1E10', 'accept'],
    ['exp.exponent-plus', '1e+10', 'accept'],
    ['exp.negative-exponent', `${now + 3600}0000e-4`, 'accept'],
    ['exp.fraction-digits', `${now + 3600}.999999999999999999999`, 'accept'],
    ['exp.unsafe-integer', '9007199254740993', 'accept'],
    ['exp.1e21', '1e21', 'accept'],
    ['exp.tiny', '1e-400', 'refuse'],
    ['exp.minus-zero', '-0', 'refuse'],
    ['exp.zero', '0', 'refuse'],
    ['exp.string', `"${now + 3600}"`, 'refuse'],
    ['exp.true', 'true', 'refuse'],
    ['exp.null', 'null', 'refuse'],
    ['exp.array', `[${now + 3600}]`, 'refuse'],
    ['exp.object', `{"n":${now + 3600}}`, 'refuse'],
    ['nbf.1e400', '1e400', 'refuse'],
    ['nbf.-1e400', '-1e400', 'refuse'],
    ['nbf.max-double', '1.7976931348623157e308', 'refuse'],
    ['nbf.string', `"${now}"`, 'refuse'],
    ['nbf.minus-zero', '-0', 'accept'],
    ['iat.1e400', '1e400', 'refuse'],
    ['iat.max-double', '1.7976931348623157e308', 'refuse'],
    ['iat.-1e308', '-1e308', 'accept'],
    ['iat.string', `"${now}"`, 'refuse'],
    ['iat.null', 'null', 'refuse'],
  ];
  for (const [id, literal, must] of numbers) {
    const claim = id.slice(0, id.indexOf('.'));
    const { [claim]: _drop, ...others } = base;
    send(id, rawPayload(withRaw(others, `"${claim}":${literal}`)), must, must === undefined);
  }
  // Every time sits at least 150 s away from the limit it tests (clockTolerance 300 s).
  cls = 'time';
  refuse('exp.past-beyond-tolerance', token({ exp: now - TOLERANCE - 300 }));
  accept('exp.past-within-tolerance', token({ exp: now - TOLERANCE + 150 }));
  accept('exp.far-future', token({ exp: now + 10 * 365 * 86400 }));
  refuse('exp.missing', token({ exp: undefined }));
  refuse('exp.fractional-past', token({ exp: now - TOLERANCE - 300 + 0.5 }));
  refuse('nbf.future-beyond-tolerance', token({ nbf: now + TOLERANCE + 300 }));
  accept('nbf.future-within-tolerance', token({ nbf: now + TOLERANCE - 150 }));
  accept('nbf.past', token({ nbf: now - 60 }));
  refuse('iat.future-beyond-tolerance', token({ iat: now + TOLERANCE + 300 }));
  accept('iat.future-within-tolerance', token({ iat: now + TOLERANCE - 150 }));
  refuse('iat.missing', token({ iat: undefined }));
  accept('iat.long-ago', token({ iat: now - 10 * 365 * 86400 }));
  note('exp-before-iat', token({ iat: now + 100, exp: now + 50 }));

  // ── Issuer and audience: exact string matches only.
  cls = 'iss';
  const issuers: readonly [string, unknown][] = [
    ['trailing-slash', `${ISSUER}/`],
    ['no-oidc', 'https://issuer.diff.example'],
    ['upper-host', ISSUER.replace('issuer.diff', 'ISSUER.DIFF')],
    ['upper-path', ISSUER.replace('/oidc', '/OIDC')],
    ['http', ISSUER.replace('https', 'http')],
    ['default-port', ISSUER.replace('.example', '.example:443')],
    ['trailing-space', `${ISSUER} `],
    ['leading-space', ` ${ISSUER}`],
    ['nul', `${ISSUER}\u0000`],
    ['cyrillic-i', ISSUER.replace('issuer', 'іssuer')],
    ['fullwidth-slash', ISSUER.replace('/oidc', '／oidc')],
    ['array', [ISSUER]],
    ['empty', ''],
    ['null', null],
    ['number', 1],
    ['missing', undefined],
  ];
  for (const [id, iss] of issuers) refuse(id, token({ iss }));
  cls = 'aud';
  accept('exact-array', token({ aud: [AUDIENCE] }));
  accept('array-with-extra', token({ aud: [OTHER_AUDIENCE, AUDIENCE] }));
  const audiences: readonly [string, unknown][] = [
    ['array-other-only', [OTHER_AUDIENCE]],
    ['array-empty', []],
    ['array-nested', [[AUDIENCE]]],
    ['array-with-number', [AUDIENCE, 1]],
    ['array-with-null', [AUDIENCE, null]],
    ['trailing-slash', `${AUDIENCE}/`],
    ['upper', AUDIENCE.toUpperCase()],
    ['upper-host', AUDIENCE.replace('shopping', 'SHOPPING')],
    ['trailing-space', `${AUDIENCE} `],
    ['comma-list', `${OTHER_AUDIENCE},${AUDIENCE}`],
    ['space-list', `${OTHER_AUDIENCE} ${AUDIENCE}`],
    ['empty', ''],
    ['null', null],
    ['object', { aud: AUDIENCE }],
    ['missing', undefined],
    ['organization', 'urn:logto:organization:o1'],
  ];
  for (const [id, aud] of audiences) refuse(id, token({ aud }));

  // ── Other claims, and scopes (the route needs read:products).
  cls = 'claims';
  const others: readonly [string, Json, Must][] = [
    ['sub.missing', { sub: undefined }, 'refuse'],
    ['sub.number', { sub: 1 }, 'refuse'],
    ['client_id.missing', { client_id: undefined }, 'refuse'],
    ['client_id.array', { client_id: ['diff-app'] }, 'refuse'],
    ['jti.missing', { jti: undefined }, 'refuse'],
    ['jti.number', { jti: 1 }, 'refuse'],
    ['cnf.jkt', { cnf: { jkt: sha256('x') } }, 'refuse'],
    ['cnf.empty', { cnf: {} }, 'refuse'],
    ['cnf.null', { cnf: null }, 'refuse'],
    ['cnf.x5t', { cnf: { 'x5t#S256': sha256('x') } }, 'refuse'],
    ['organization_id', { organization_id: 'o1' }, 'refuse'], // 403: not an organization route
    ['organization_id.number', { organization_id: 1 }, 'refuse'],
    ['user-token', { sub: 'user-1' }, 'accept'],
  ];
  for (const [id, over, must] of others) send(id, token(over), must);
  cls = 'scope';
  accept('two', token({ scope: 'read:products write:products' }));
  accept('spaces-around', token({ scope: '  read:products  ' }));
  const scopes: readonly [string, unknown][] = [
    ['tab', 'read:products\twrite:products'],
    ['newline', 'read:products\nwrite:products'],
    ['nbsp', 'read:products\u00a0write:products'],
    ['em-space', 'read:products\u2003write:products'],
    ['ideographic-space', 'read:products\u3000write:products'],
    ['line-separator', 'read:products\u2028write'],
    ['zero-width-space', 'read:products\u200b'],
    ['nul', 'read:products\u0000'],
    ['comma', 'read:products,write:products'],
    ['upper', 'READ:PRODUCTS'],
    ['prefix', 'read:product'],
    ['superstring', 'read:productsx'],
    ['fullwidth-colon', 'read：products'],
    ['modifier-letter', 'ʳead:products'],
    ['empty', ''],
    ['missing', undefined],
    ['array', ['read:products']],
    ['number', 1],
  ];
  for (const [id, scope] of scopes) refuse(id, token({ scope }));
  note('scp.only', token({ scope: undefined, scp: ['read:products'] }));
  refuse('scp.with-scope-without', token({ scope: 'other', scp: ['read:products'] }));
  refuse('scp.not-strings', token({ scope: undefined, scp: [1] }));

  // ── ECDSA signatures: encodings and malleability (what Node does is the rule).
  cls = 'ecdsa';
  const curves: readonly [string, string, KeyObject][] = [
    ['ES256', 'p256', keys.p256],
    ['ES384', 'p384', keys.p384],
    ['ES512', 'p521', keys.p521],
  ];
  for (const [alg, kid, key] of curves) {
    const variant = (id: string, change: (s: Buffer) => Buffer | undefined, must?: Must) => {
      const made = mutated(alg, key, kid, change);
      if (made === undefined) skipped.push(`${cls}.${alg}.${id}`);
      else send(`${alg}.${id}`, made, must, must !== 'refuse');
    };
    const rs =
      (change: (r: bigint, s: bigint, n: bigint) => readonly [bigint, bigint]) =>
      (signature: Buffer) =>
        ecdsaVariant(signature, alg, change);
    variant(
      'low-s',
      rs((r, s, n) => [r, s > n >> 1n ? n - s : s]),
      'accept',
    );
    variant(
      'high-s',
      rs((r, s, n) => [r, s > n >> 1n ? s : n - s]),
    );
    variant(
      's-plus-n',
      rs((r, s, n) => [r, s + n]),
      'refuse',
    );
    variant(
      'r-plus-n',
      rs((r, s, n) => [r + n, s]),
      'refuse',
    );
    variant(
      's-zero',
      rs((r) => [r, 0n]),
      'refuse',
    );
    variant(
      'r-zero',
      rs((_r, s) => [0n, s]),
      'refuse',
    );
    variant(
      's-equals-n',
      rs((r, _s, n) => [r, n]),
      'refuse',
    );
    variant(
      'r-s-swapped',
      rs((r, s) => [s, r]),
      'refuse',
    );
    variant('der', toDer, 'refuse');
    variant(
      'zero-prefixed',
      (s) => {
        const size = s.length / 2;
        const zero = Buffer.alloc(1);
        return Buffer.concat([zero, s.subarray(0, size), zero, s.subarray(size)]);
      },
      'refuse',
    );
    variant('truncated', (s) => s.subarray(0, s.length - 1), 'refuse');
    variant('extended', (s) => Buffer.concat([s, Buffer.alloc(1)]), 'refuse');
    variant('zeros', (s) => Buffer.alloc(s.length), 'refuse');
    variant('empty', () => Buffer.alloc(0), 'refuse');
  }
  refuse('ES384-signature.as-ES256', jws({ signer: signer('ES384', keys.p256) }));

  cls = 'ed25519';
  const edVariant = (id: string, change: (s: Buffer) => Buffer | undefined) => {
    for (const alg of ['EdDSA', 'Ed25519']) {
      const made = mutated(alg, keys.ed, 'ed25519', change);
      if (made === undefined) skipped.push(`${cls}.${alg}.${id}`);
      else send(`${alg}.${id}`, made, 'refuse', true);
    }
  };
  edVariant('s-plus-l', (s) => ed25519Variant(s, (v) => v + ED25519_L));
  edVariant('s-plus-2l', (s) => ed25519Variant(s, (v) => v + 2n * ED25519_L));
  edVariant('s-equals-l', (s) => ed25519Variant(s, () => ED25519_L));
  const flip = (at: number, bits: number) => (s: Buffer) => {
    const copy = Buffer.from(s);
    copy[at] = (copy[at] as number) ^ bits;
    return copy;
  };
  edVariant('s-top-bit', flip(63, 0x80));
  edVariant('r-flipped', flip(0, 1));
  edVariant('identity-r-zero-s', () => Buffer.concat([Buffer.from([1]), Buffer.alloc(63)]));
  edVariant('zeros', () => Buffer.alloc(64));
  edVariant('truncated', (s) => s.subarray(0, 63));
  edVariant('extended', (s) => Buffer.concat([s, Buffer.alloc(1)]));

  // ── RSA: PKCS #1 v1.5 encodings (built by hand, signed with raw RSA), PSS salts, lengths.
  cls = 'rsa-pkcs1';
  const rs256 = (em: (digest: Buffer) => Buffer) =>
    jws({ header: header({ alg: 'RS256', kid: 'rsa' }), signer: rawRs256(keys.rsa, em) });
  const K = 256;
  const info = (hex: string) => Buffer.from(hex, 'hex');
  const SHA256_INFO = info('3031300d060960864801650304020105000420');
  /** EM = 0x00 || type || padding || 0x00 || T || tail, exactly K octets. */
  const frame = (type: number, padding: Buffer, t: Buffer, tail = Buffer.alloc(0)) => {
    const em = Buffer.concat([Buffer.from([0, type]), padding, Buffer.from([0]), t, tail]);
    if (em.length !== K) throw new Error(`EM of ${em.length} octets`);
    return em;
  };
  const ff = (length: number) => Buffer.alloc(length, 0xff);
  const t = (prefix: Buffer, digest: Buffer) => Buffer.concat([prefix, digest]);
  accept(
    'raw-standard',
    rs256((d) => frame(1, ff(K - 54), t(SHA256_INFO, d))),
  );
  const noNull = info('302f300b06096086480165030402010420');
  note(
    'digest-info-without-null',
    rs256((d) => frame(1, ff(K - 52), t(noNull, d))),
  );
  const longLength = info('308131300d060960864801650304020105000420');
  send(
    'digest-info-long-length',
    rs256((d) => frame(1, ff(K - 55), t(longLength, d))),
    'refuse',
    true,
  );
  const tail = (length: number) => Buffer.alloc(length, 0x41);
  refuse(
    'garbage-after-digest',
    rs256((d) => frame(1, ff(K - 62), t(SHA256_INFO, d), tail(8))),
  );
  refuse(
    'short-padding',
    rs256((d) => frame(1, ff(7), t(SHA256_INFO, d), tail(K - 61))),
  );
  refuse(
    'block-type-2',
    rs256((d) => frame(2, Buffer.alloc(K - 54, 0x42), t(SHA256_INFO, d))),
  );
  refuse(
    'block-type-0',
    rs256((d) => frame(0, Buffer.alloc(K - 54), t(SHA256_INFO, d))),
  );
  const sha1Info = info('3021300906052b0e03021a05000414');
  refuse(
    'sha1-digest-info',
    rs256((d) => frame(1, ff(K - 38), t(sha1Info, d.subarray(0, 20)))),
  );
  const sha512Oid = info('3031300d060960864801650304020305000420');
  refuse(
    'sha512-oid',
    rs256((d) => frame(1, ff(K - 54), t(sha512Oid, d))),
  );
  cls = 'rsa-pss';
  for (const salt of [0, 20, 64, 222]) {
    note(
      `PS256.salt-${salt}`,
      jws({
        header: header({ alg: 'PS256', kid: 'rsa' }),
        signer: signer('PS256', keys.rsa, salt),
      }),
    );
  }
  note(
    'PS512.salt-32',
    jws({ header: header({ alg: 'PS512', kid: 'rsa' }), signer: signer('PS512', keys.rsa, 32) }),
  );
  cls = 'rsa-length';
  const rsaChanged = (change: (s: Buffer) => Buffer) =>
    mutated('RS256', keys.rsa, 'rsa', change) as string;
  send(
    'zero-prefixed',
    rsaChanged((s) => Buffer.concat([Buffer.alloc(1), s])),
    'refuse',
    true,
  );
  refuse(
    'truncated',
    rsaChanged((s) => s.subarray(0, s.length - 1)),
  );
  refuse(
    'zeros',
    rsaChanged((s) => Buffer.alloc(s.length)),
  );
  refuse(
    'modulus',
    rsaChanged(() => Buffer.from(rsaJwk.n as string, 'base64url')),
  );
  refuse(
    'one',
    rsaChanged((s) => Buffer.concat([Buffer.alloc(s.length - 1), Buffer.from([1])])),
  );
  // A signature whose first octet is zero (1 in 256), as is and without that octet.
  for (let i = 0; i <= 4000; i++) {
    if (i === 4000) skipped.push(`${cls}.leading-zero`);
    const candidate = signed('RS256', keys.rsa, { kid: 'rsa' }, { n: i });
    const dot = candidate.lastIndexOf('.');
    const signature = Buffer.from(candidate.slice(dot + 1), 'base64url');
    if (signature[0] !== 0) continue;
    accept('leading-zero.kept', candidate);
    note('leading-zero.stripped', `${candidate.slice(0, dot)}.${b64(signature.subarray(1))}`);
    break;
  }

  // ── The Authorization field: schemes, whitespace, repeats (a fresh valid token each time).
  cls = 'authorization';
  const field = (value: string): Case['headers'] => [['authorization', value]];
  const fields: readonly [string, Case['headers'], Must][] = [
    ['lowercase-scheme', field(`bearer ${token()}`), 'accept'],
    ['uppercase-scheme', field(`BEARER ${token()}`), 'accept'],
    ['mixed-case-scheme', field(`bEaReR ${token()}`), 'accept'],
    ['uppercase-name', [['AUTHORIZATION', `Bearer ${token()}`]], 'accept'],
    ['two-spaces', field(`Bearer  ${token()}`), undefined],
    ['tab-after-scheme', field(`Bearer\t${token()}`), 'refuse'],
    ['nbsp-after-scheme', field(`Bearer\u00a0${token()}`), 'refuse'],
    ['nbsp-after-token', field(`Bearer ${token()}\u00a0`), 'refuse'],
    ['spaces-around', field(`   Bearer ${token()}   `), 'accept'],
    ['tabs-around', field(`\tBearer ${token()}\t`), 'accept'],
    ['two-fields', [...field(`Bearer ${token()}`), ...field(`Bearer ${token()}`)], 'refuse'],
    ['two-fields.same', [...field(`Bearer ${repeated}`), ...field(`Bearer ${repeated}`)], 'refuse'],
    ['two-fields.first-empty', [...field(''), ...field(`Bearer ${token()}`)], 'refuse'],
    ['two-fields.second-empty', [...field(`Bearer ${token()}`), ...field('')], 'refuse'],
    [
      'two-fields.name-case',
      [['Authorization', `Bearer ${token()}`], ...field(`Bearer ${token()}`)],
      'refuse',
    ],
    ['comma-two-tokens', field(`Bearer ${token()}, Bearer ${token()}`), 'refuse'],
    ['comma-basic-first', field(`Basic dXNlcjpwYXNz, Bearer ${token()}`), 'refuse'],
    ['comma-leading', field(`, Bearer ${token()}`), 'refuse'],
    ['comma-trailing', field(`Bearer ${token()},`), 'refuse'],
    ['comma-only', field(', ,'), 'refuse'],
    ['semicolon-trailing', field(`Bearer ${token()};`), 'refuse'],
    ['quoted-token', field(`Bearer "${token()}"`), 'refuse'],
    ['token-then-text', field(`Bearer ${token()} x`), 'refuse'],
    ['token-padded', field(`Bearer ${token()}==`), 'refuse'],
    ['scheme-only', field('Bearer'), 'refuse'],
    ['scheme-space', field('Bearer '), 'refuse'],
    ['longer-scheme', field(`Bearerx ${token()}`), 'refuse'],
    ['basic', field('Basic dXNlcjpwYXNz'), 'refuse'],
    ['dpop-scheme', field(`DPoP ${token()}`), 'refuse'],
    ['token-scheme', field(`Token ${token()}`), 'refuse'],
    ['none', [], 'refuse'],
    ['empty', field(''), 'refuse'],
    ['too-large', field(`Bearer ${'a'.repeat(9000)}`), 'refuse'],
    ['cookie-only', [['cookie', `access_token=${token()}`]], 'refuse'],
  ];
  for (const [id, headers, must] of fields) add(id, headers, { must });
  add('query-only', [], { path: `${DECIDE}?access_token=${token()}`, must: 'refuse' });
  add('post', bearer(token()), { method: 'POST', must: 'accept' });

  // ── DPoP (RFC 9449) on /decide/dpop: tokens bound to a client's key, proofs made here.
  const proofJwk = publicJwk(keys.proof);
  const jkt = thumbprint(proofJwk);
  const bound = (boundTo = jkt, over: Json = {}) => token({ cnf: { jkt: boundTo }, ...over });
  const proofSigner = signer('ES256', keys.proof);
  interface ProofSpec {
    readonly header?: Json;
    readonly payload?: Json;
    readonly signer?: Signer;
    readonly signature?: (signature: Buffer) => Buffer;
    /** JSON text (or bytes) for the whole header or payload. */
    readonly rawHeader?: Content;
    readonly rawPayload?: Content;
  }
  const proof = (accessToken: string, spec: ProofSpec = {}) =>
    jws({
      header:
        spec.rawHeader ?? defined({ typ: 'dpop+jwt', alg: 'ES256', jwk: proofJwk, ...spec.header }),
      payload:
        spec.rawPayload ??
        defined({
          jti: randomUUID(),
          htm: 'GET',
          htu: HTU,
          iat: now - 10,
          ath: sha256(accessToken),
          ...spec.payload,
        }),
      signer: spec.signer ?? proofSigner,
      ...(spec.signature === undefined ? {} : { signature: spec.signature }),
    });
  const presented = (accessToken: string, proofText: string): Case['headers'] => [
    ['authorization', `DPoP ${accessToken}`],
    ['dpop', proofText],
  ];
  interface DpopOptions extends AddOptions {
    readonly token?: string;
  }
  /** A DPoP request: `spec` changes the proof, `options.token` replaces the bound token. */
  const dpop = (id: string, spec: ProofSpec = {}, options: DpopOptions = {}) => {
    const accessToken = options.token ?? bound();
    add(id, presented(accessToken, proof(accessToken, spec)), { path: DPOP_PATH, ...options });
  };
  const dpopAdd = (id: string, headers: Case['headers'], must: Must) =>
    add(id, headers, { path: DPOP_PATH, must });

  cls = 'dpop';
  dpop('valid', {}, { must: 'accept' });
  {
    const accessToken = bound();
    const once = presented(accessToken, proof(accessToken));
    dpopAdd('replay.first', once, 'accept');
    dpopAdd('replay.again', once, 'refuse');
  }
  dpop('post', { payload: { htm: 'POST' } }, { method: 'POST', must: 'accept' });
  dpop('query-in-target', {}, { path: `${DPOP_PATH}?page=2`, must: 'accept' });
  dpop('unbound-token', {}, { must: 'refuse', token: token() });
  dpopAdd('bearer.unbound-token', bearer(token()), 'accept');
  dpopAdd('bearer.bound-token', bearer(bound()), 'refuse');
  dpopAdd('proof-missing', [['authorization', `DPoP ${bound()}`]], 'refuse');
  {
    const [a, b, c, d] = [bound(), bound(), bound(), bound()];
    dpopAdd('two-proofs', [...presented(a, proof(a)), ['dpop', proof(a)]], 'refuse');
    dpopAdd(
      'scheme-lowercase',
      [
        ['authorization', `dpop ${b}`],
        ['dpop', proof(b)],
      ],
      'accept',
    );
    dpopAdd(
      'proof-spaces-around',
      [
        ['authorization', `DPoP ${c}`],
        ['dpop', `  ${proof(c)}  `],
      ],
      'accept',
    );
    dpopAdd(
      'dpop-and-bearer',
      [
        ['authorization', `DPoP ${d}, Bearer ${d}`],
        ['dpop', proof(d)],
      ],
      'refuse',
    );
  }
  dpop('cnf.other-member', {}, { must: 'refuse', token: token({ cnf: { jkt, 'x5t#S256': 'x' } }) });
  dpop('cnf.other-key', {}, { must: 'refuse', token: bound(thumbprint(publicJwk(keys.thief))) });
  cls = 'dpop-htm';
  dpop('post-on-get', { payload: { htm: 'POST' } }, { must: 'refuse' });
  dpop('lowercase', { payload: { htm: 'get' } }, { must: 'refuse' });
  dpop('missing', { payload: { htm: undefined } }, { must: 'refuse' });
  dpop('array', { payload: { htm: ['GET'] } }, { must: 'refuse' });
  cls = 'dpop-htu';
  const htus: readonly [string, unknown, Must][] = [
    ['with-query', `${HTU}?page=2`, 'accept'],
    ['with-fragment', `${HTU}#x`, 'accept'],
    ['upper-host', HTU.replace('api.diff', 'API.DIFF'), 'accept'],
    ['default-port', HTU.replace('.example', '.example:443'), 'accept'],
    ['escaped-unreserved', HTU.replace('/dpop', '/%64pop'), 'accept'],
    ['dot-segment', HTU.replace('/dpop', '/x/../dpop'), undefined],
    ['fullwidth-host', HTU.replace('api', 'ａｐｉ'), undefined],
    ['backslashes', HTU.replace(/\//g, '\\'), undefined],
    ['tab-inside', HTU.replace('dpop', 'dp\top'), undefined],
    ['soft-hyphen-host', HTU.replace('api', 'a\u00adpi'), undefined],
    ['ideographic-dot', HTU.replace('diff.example', 'diff\u3002example'), undefined],
    ['trailing-dot-host', HTU.replace('.example', '.example.'), 'refuse'],
    ['escaped-slash', HTU.replace('/dpop', '%2Fdpop'), 'refuse'],
    ['stray-percent', `${HTU}%`, 'refuse'],
    ['trailing-slash', `${HTU}/`, 'refuse'],
    ['other-origin', HTU.replace('api.diff', 'evil'), 'refuse'],
    ['http', HTU.replace('https', 'http'), 'refuse'],
    ['other-port', HTU.replace('.example', '.example:8443'), 'refuse'],
    ['userinfo', HTU.replace('https://', 'https://user@'), 'refuse'],
    ['other-path', `${DPOP_ORIGIN}${DECIDE}`, 'refuse'],
    ['upper-path', HTU.replace('dpop', 'DPOP'), 'refuse'],
    ['relative', DPOP_PATH, 'refuse'],
    ['target-origin', `http://127.0.0.1${DPOP_PATH}`, 'refuse'],
    ['cyrillic-host', HTU.replace('api', 'аpi'), 'refuse'],
    ['missing', undefined, 'refuse'],
    ['number', 1, 'refuse'],
  ];
  for (const [id, htu, must] of htus) {
    dpop(id, { payload: { htu } }, { must, notable: must === undefined });
  }
  dpop('request-target.dot-segment', {}, { path: '/decide/x/../dpop', notable: true });
  cls = 'dpop-iat';
  const iats: readonly [string, unknown, Must][] = [
    ['recent', now - 100, 'accept'],
    ['ahead-within-skew', now + 30, 'accept'],
    ['ahead-beyond-skew', now + 200, 'refuse'],
    ['too-old', now - DPOP_MAX_AGE - 400, 'refuse'],
    ['fraction', now - 10.5, 'accept'],
    ['string', String(now), 'refuse'],
    ['missing', undefined, 'refuse'],
    ['null', null, 'refuse'],
  ];
  for (const [id, iat, must] of iats) dpop(id, { payload: { iat } }, { must });
  for (const literal of ['1e400', '-1e400', '1.7976931348623157e308']) {
    const accessToken = bound();
    const fields = { jti: randomUUID(), htm: 'GET', htu: HTU, ath: sha256(accessToken) };
    const rawProof = proof(accessToken, { rawPayload: withRaw(fields, `"iat":${literal}`) });
    dpopAdd(literal, presented(accessToken, rawProof), 'refuse');
  }
  cls = 'dpop-jti';
  dpop('missing', { payload: { jti: undefined } }, { must: 'refuse' });
  dpop('empty', { payload: { jti: '' } }, { must: 'refuse' });
  dpop('number', { payload: { jti: 1 } }, { must: 'refuse' });
  dpop('long', { payload: { jti: 'j'.repeat(257) } }, { must: 'refuse' });
  dpop('max-length', { payload: { jti: 'j'.repeat(256) } }, { must: 'accept' });
  {
    // The same jti in two proofs (two requests): the second is a replay.
    const jti = randomUUID();
    dpop('reused.first', { payload: { jti } }, { must: 'accept' });
    dpop('reused.second', { payload: { jti } }, { must: 'refuse' });
  }
  cls = 'dpop-ath';
  dpop('missing', { payload: { ath: undefined } }, { must: 'refuse' });
  dpop('other-token', { payload: { ath: sha256('another token') } }, { must: 'refuse' });
  {
    const accessToken = bound();
    const hash = createHash('sha256').update(accessToken).digest();
    const athAs = (id: string, ath: string) =>
      dpopAdd(id, presented(accessToken, proof(accessToken, { payload: { ath } })), 'refuse');
    athAs('base64-padded', hash.toString('base64'));
    athAs('hex', hash.toString('hex'));
    athAs('trailing-bits', trailingBits(hash.toString('base64url')));
    athAs('upper', hash.toString('base64url').toUpperCase());
  }
  cls = 'dpop-header';
  dpop('typ-upper', { header: { typ: 'DPOP+JWT' } }, { must: 'accept' });
  dpop('typ-application', { header: { typ: 'application/dpop+jwt' } }, { must: 'accept' });
  dpop('typ-jwt', { header: { typ: 'JWT' } }, { must: 'refuse' });
  dpop('typ-at-jwt', { header: { typ: 'at+jwt' } }, { must: 'refuse' });
  dpop('typ-missing', { header: { typ: undefined } }, { must: 'refuse' });
  dpop('alg-none', { header: { alg: 'none' }, signer: unsigned }, { must: 'refuse' });
  dpop(
    'alg-hs256',
    { header: { alg: 'HS256' }, signer: hmac(JSON.stringify(proofJwk)) },
    { must: 'refuse' },
  );
  dpop(
    'alg-es384-on-p256',
    { header: { alg: 'ES384' }, signer: signer('ES384', keys.proof) },
    { must: 'refuse' },
  );
  dpop('alg-eddsa-on-p256', { header: { alg: 'EdDSA' } }, { must: 'refuse' });
  dpop('jwk-missing', { header: { jwk: undefined } }, { must: 'refuse' });
  dpop(
    'jwk-private',
    { header: { jwk: keys.proof.export({ format: 'jwk' }) } },
    { must: 'refuse' },
  );
  dpop(
    'jwk-extra-members',
    { header: { jwk: { ...proofJwk, kid: 'k', alg: 'ES256', use: 'sig' } } },
    { must: 'accept' },
  );
  dpop('jwk-string', { header: { jwk: JSON.stringify(proofJwk) } }, { must: 'refuse' });
  dpop('crit', { header: { crit: ['urn:x'], 'urn:x': 1 } }, { must: 'refuse' });
  dpop('jku', { header: { jku: 'https://attacker.example/jwks' } }, { notable: true });
  dpop('kid', { header: { kid: 'p256' } }, { notable: true });
  const thiefJwk = publicJwk(keys.thief);
  dpop(
    'thief-key',
    { header: { jwk: thiefJwk }, signer: signer('ES256', keys.thief) },
    { must: 'refuse' },
  );
  dpop('thief-signature', { signer: signer('ES256', keys.thief) }, { must: 'refuse' });
  {
    // The client's key spelled otherwise (the same key), the token bound to that spelling.
    const spelled = (id: string, jwk: JsonWebKey) =>
      dpop(id, { header: { jwk } }, { notable: true, token: bound(thumbprint(jwk)) });
    spelled('jwk-trailing-bits', { ...proofJwk, x: trailingBits(proofJwk.x as string) });
    spelled('jwk-padded', { ...proofJwk, x: `${proofJwk.x as string}=` });
    spelled('jwk-base64', {
      ...proofJwk,
      x: toBase64(proofJwk.x as string),
      y: toBase64(proofJwk.y as string),
    });
  }
  {
    // The header segment with a BOM, or spelled with non-zero unused bits (signed as sent).
    const headerJson = JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: proofJwk });
    const a = bound();
    dpopAdd('bom', presented(a, proof(a, { rawHeader: spliced('', bom, headerJson) })), 'refuse');
    let spaced = headerJson;
    while (b64(spaced).length % 4 === 0) spaced += ' ';
    const b = bound();
    const odd = jws({
      header: spaced,
      payload: { jti: randomUUID(), htm: 'GET', htu: HTU, iat: now - 10, ath: sha256(b) },
      signer: proofSigner,
      segments: (h, p) => [trailingBits(h), p],
    });
    dpopAdd('trailing-bits', presented(b, odd), 'refuse');
  }
  cls = 'dpop-signature';
  const es =
    (change: (r: bigint, s: bigint, n: bigint) => readonly [bigint, bigint]) =>
    (signature: Buffer) =>
      ecdsaVariant(signature, 'ES256', change) as Buffer;
  dpop('high-s', { signature: es((r, s, n) => [r, s > n >> 1n ? s : n - s]) }, { notable: true });
  dpop('low-s', { signature: es((r, s, n) => [r, s > n >> 1n ? n - s : s]) }, { must: 'accept' });
  dpop('s-zero', { signature: es((r) => [r, 0n]) }, { must: 'refuse' });
  dpop('der', { signature: toDer }, { must: 'refuse' });
  {
    const a = bound();
    dpopAdd('trailing-bits', presented(a, trailingBits(proof(a))), 'refuse'); // 86 characters
  }
  const edJwk = publicJwk(keys.proofEd);
  const edProof = { header: { alg: 'EdDSA', jwk: edJwk }, signer: signer('EdDSA', keys.proofEd) };
  dpop('ed25519', edProof, { must: 'accept', token: bound(thumbprint(edJwk)) });
  const sPlusL = (s: Buffer) => ed25519Variant(s, (v) => v + ED25519_L) as Buffer;
  dpop(
    'ed25519.s-plus-l',
    { ...edProof, signature: sPlusL },
    { must: 'refuse', notable: true, token: bound(thumbprint(edJwk)) },
  );
  {
    // Degenerate client keys: anyone can make a proof that verifies under them.
    const identity = { kty: 'OKP', crv: 'Ed25519', x: b64(ED25519_IDENTITY) };
    const edForged = { header: { alg: 'EdDSA', jwk: identity }, signer: identityForgery };
    const edToken = { must: 'refuse', notable: true, token: bound(thumbprint(identity)) } as const;
    dpop('ed25519-small-order-key', edForged, edToken);
    const e1 = { kty: 'RSA', n: publicJwk(keys.proofRsa).n as string, e: 'AQ' };
    const e1Forged = { header: { alg: 'RS256', jwk: e1 }, signer: e1Forgery };
    dpop('rsa-e1-key', e1Forged, { must: 'refuse', notable: true, token: bound(thumbprint(e1)) });
    const signedIdentity = { kty: 'OKP', crv: 'Ed25519', x: b64(ED25519_IDENTITY_SIGNED) };
    dpop(
      'ed25519-small-order-sign-key',
      { header: { alg: 'EdDSA', jwk: signedIdentity }, signer: identityForgery },
      { must: 'refuse', notable: true, token: bound(thumbprint(signedIdentity)) },
    );
    const lambda = { kty: 'RSA', n: e1.n, e: b64(exponentOnePlusLambda(keys.proofRsa)) };
    dpop(
      'rsa-e1-lambda-key',
      { header: { alg: 'RS256', jwk: lambda }, signer: e1Forgery },
      { must: 'refuse', notable: true, token: bound(thumbprint(lambda)) },
    );
  }
  const clientRsa = publicJwk(keys.proofRsa);
  for (const alg of ['PS256', 'RS256']) {
    const spec = { header: { alg, jwk: clientRsa }, signer: signer(alg, keys.proofRsa) };
    dpop(alg, spec, { must: 'accept', token: bound(thumbprint(clientRsa)) });
  }
  const small = publicJwk(keys.rsa1024);
  const zeroPadded = {
    ...small,
    n: b64(Buffer.concat([Buffer.alloc(128), Buffer.from(small.n as string, 'base64url')])),
  };
  for (const [id, jwk] of [
    ['rsa-1024', small],
    ['rsa-1024-zero-padded', zeroPadded],
  ] as const) {
    const spec = { header: { alg: 'RS256', jwk }, signer: signer('RS256', keys.rsa1024) };
    dpop(id, spec, { must: 'refuse', token: bound(thumbprint(jwk)) });
  }
  return { cases, skipped };
}

/** The answer to one request, as the report compares it. */
function decisionOf(
  status: number,
  header: (name: string) => string | null | undefined,
  body: string,
): Decision {
  let error = '-';
  let granted = '';
  try {
    const parsed = JSON.parse(body) as Record<string, unknown> | null;
    if (parsed !== null && typeof parsed === 'object') {
      if (typeof parsed.error === 'string') error = parsed.error;
      if (status >= 200 && status < 300) {
        granted = JSON.stringify([parsed.client, parsed.subject, parsed.scopes]);
      }
    }
  } catch {
    error = `non-JSON body: ${body.slice(0, 40)}`;
  }
  return { status, error, reason: header('x-decision-reason') ?? '-', granted };
}

const same = (a: Decision, b: Decision) =>
  a.status === b.status && a.error === b.error && a.granted === b.granted;
const show = (d: Decision) =>
  d.status === 0
    ? `no answer (${d.reason})`
    : `${d.status} ${d.error}${d.reason === '-' ? '' : ` (${d.reason})`}${d.granted && ` ${d.granted}`}`;

/**
 * The runtime's answer over HTTP/1.1. The fields go as a raw list, exactly as given: a repeated
 * name is two fields, names keep their case (node:http would merge an object's keys).
 */
function askRuntime(base: URL, c: Case, agent: Agent): Promise<Decision> {
  const headers = [['host', base.host], ...c.headers].flat();
  if (c.method === 'POST') headers.push('content-length', '2');
  return new Promise((resolve) => {
    const failed = (error: Error) =>
      resolve({ status: 0, error: '-', reason: error.message, granted: '' });
    let request: ReturnType<typeof httpRequest>;
    try {
      request = httpRequest(
        {
          host: base.hostname,
          port: base.port,
          method: c.method,
          path: c.path,
          headers,
          // workerd drops a connection after a request whose body the worker did not read: a
          // POST gets a connection of its own.
          agent: c.method === 'POST' ? false : agent,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const body = Buffer.concat(chunks).toString();
            const get = (name: string) => {
              const value = response.headers[name];
              return Array.isArray(value) ? value.join(', ') : value;
            };
            resolve(decisionOf(response.statusCode ?? 0, get, body));
          });
          response.on('error', failed);
        },
      );
    } catch (error) {
      // node:http refuses to send it (a character no header field may hold).
      failed(error as Error);
      return;
    }
    request.setTimeout(REQUEST_TIMEOUT, () =>
      request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT} ms`)),
    );
    request.on('error', failed);
    if (c.method === 'POST') request.end('{}');
    else request.end();
  });
}

/**
 * The oracle's program: app.mjs, from the app folder, on plain Node (never under this driver's
 * tsx, whose tsconfig `paths` would map `resource-guard` to the repository's src/), each case as a
 * Web Request, one after another. Reads the cases (JSON) on stdin, writes the answers on stdout,
 * with the file `resource-guard` resolved to.
 */
const ORACLE = `
const app = (await import(new URL('./app.mjs', 'file://' + process.cwd() + '/').href)).default;
let input = '';
for await (const chunk of process.stdin) input += chunk;
const answers = [];
for (const c of JSON.parse(input)) {
  const headers = new Headers();
  for (const [name, value] of c.headers) headers.append(name, value);
  const init = { method: c.method, headers };
  if (c.method === 'POST') init.body = '{}';
  try {
    const response = await app.fetch(new Request(new URL(c.path, 'http://127.0.0.1:9'), init));
    const reason = response.headers.get('x-decision-reason');
    answers.push({ status: response.status, reason, body: await response.text() });
  } catch (error) {
    answers.push({ status: 0, reason: 'oracle threw: ' + String(error), body: '' });
  }
}
const resolved = import.meta.resolve('resource-guard');
process.stdout.write(JSON.stringify({ node: process.version, resolved, answers }));
`;

interface OracleAnswers {
  readonly node: string;
  readonly resolved: string;
  readonly answers: readonly { status: number; reason: string | null; body: string }[];
}

/** Node's answers to every case, from the oracle's program in the app folder. */
async function askOracle(appDir: string, cases: readonly Case[]): Promise<OracleAnswers> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', ORACLE], {
    cwd: appDir,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.stdin.end(JSON.stringify(cases));
  const code = await exited;
  if (code !== 0) throw new Error(`the oracle (node app.mjs) exited with ${code}`);
  return JSON.parse(output) as OracleAnswers;
}

export interface Differential {
  /** Options for app.mjs (config.mjs): `decide` and `decideDpop`. */
  readonly config: { readonly decide: Json; readonly decideDpop: Json };
  /** Builds the corpus, asks the oracle, then the runtime at `url`; prints the report. */
  run(target: string, url: string): Promise<DifferentialCheck[]>;
}

export function prepareDifferential(appDir: string): Differential {
  const keys = makeKeys();
  const decide = {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: keys.jwks },
    clockTolerance: TOLERANCE,
  };
  const config = {
    decide,
    decideDpop: { ...decide, dpop: { mode: 'allowed', origin: DPOP_ORIGIN, maxAge: DPOP_MAX_AGE } },
  };
  return { config, run: (target, url) => run(target, url, keys, appDir) };
}

async function run(
  target: string,
  url: string,
  keys: Keys,
  appDir: string,
): Promise<DifferentialCheck[]> {
  const started = performance.now();
  const madeAt = Date.now();
  const { cases, skipped } = buildCorpus(keys, madeAt);
  const built = performance.now();
  const fromNode = await askOracle(appDir, cases);
  const oracle = fromNode.answers.map(({ status, reason, body }) =>
    decisionOf(status, (name) => (name === 'x-decision-reason' ? reason : null), body),
  );
  const asked = performance.now();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const answers: Decision[] = [];
  const base = new URL(url);
  for (const c of cases) answers.push(await askRuntime(base, c, agent));
  agent.destroy();
  const done = performance.now();
  const elapsed = Date.now() - madeAt;

  const checks: DifferentialCheck[] = [];
  // The oracle must be the package under test, installed in the app folder (not a source tree).
  const installed = pathToFileURL(join(appDir, 'node_modules', 'resource-guard')).href;
  const packaged = fromNode.resolved.startsWith(`${installed}/`);
  checks.push({
    label: `the oracle (Node ${fromNode.node}) runs the installed package: ${fromNode.resolved}`,
    expected: [],
    got: fromNode.resolved,
    ok: packaged,
  });
  if (!packaged) console.log(`  FAIL the oracle resolved resource-guard to ${fromNode.resolved}`);
  const ms = (from: number, to: number) => `${((to - from) / 1000).toFixed(1)} s`;
  const dpopCount = cases.filter((c) => c.path.startsWith(DPOP_PATH)).length;
  console.log(
    `differential (oracle: Node ${fromNode.node}): ${cases.length} requests (${cases.length - dpopCount} Bearer on ${DECIDE}, ${dpopCount} on ${DPOP_PATH}) in ${ms(started, done)}: corpus ${ms(started, built)}, Node ${ms(built, asked)}, ${target} ${ms(asked, done)}`,
  );
  if (skipped.length > 0) console.log(`  not applicable here: ${skipped.join(', ')}`);

  /** Listed divergences seen in this run (the others are reported as stale). */
  const seenKnown = new Set<string>();
  // The oracle against the cases' own expectations (Node's verifier must get these right).
  const oracleWrong: string[] = [];
  cases.forEach((c, i) => {
    const d = oracle[i] as Decision;
    const wrong =
      c.must === 'accept' && d.status !== 200
        ? 'must accept'
        : c.must === 'refuse' && ![400, 401, 403].includes(d.status)
          ? 'must refuse'
          : d.status === 0 || d.status >= 500
            ? 'must answer, never 5xx'
            : undefined;
    if (wrong === undefined) return;
    if (KNOWN_BUGS.has(`node ${c.id}`)) {
      seenKnown.add(`node ${c.id}`);
      console.log(`  known bug ${c.id}: ${wrong}, Node ${show(d)}`);
      return;
    }
    oracleWrong.push(`${c.id}: ${wrong}, Node ${show(d)}`);
  });
  for (const line of oracleWrong) console.log(`  FAIL oracle ${line}`);
  checks.push({
    label: `Node (the oracle) answers every must-accept / must-refuse case as required (${cases.filter((c) => c.must).length} cases)`,
    expected: [0],
    got: String(oracleWrong.length),
    ok: oracleWrong.length === 0,
  });

  // The runtime against Node, per class.
  const byClass = new Map<
    string,
    { cases: number; agree: number; known: number; diverge: number }
  >();
  let divergences = 0;
  cases.forEach((c, i) => {
    const expected = oracle[i] as Decision;
    const got = answers[i] as Decision;
    const row = byClass.get(c.cls) ?? { cases: 0, agree: 0, known: 0, diverge: 0 };
    byClass.set(c.cls, row);
    row.cases++;
    if (same(expected, got)) {
      row.agree++;
      return;
    }
    const key = `${target} ${c.id}`;
    const looser =
      got.status >= 200 && got.status < 300 && !(expected.status >= 200 && expected.status < 300);
    const stricter =
      expected.status >= 200 && expected.status < 300 && !(got.status >= 200 && got.status < 300);
    const kind = looser
      ? 'LOOSER than Node (trust bug)'
      : stricter
        ? 'STRICTER than Node (availability bug)'
        : 'refused differently';
    const listed = KNOWN_BUGS.has(key) ? 'known bug' : RUNTIME_QUIRKS.has(key) ? 'quirk' : '';
    if (listed !== '') {
      seenKnown.add(key);
      row.known++;
      const why = listed === 'quirk' ? 'the runtime, not src/: see RUNTIME_QUIRKS' : kind;
      console.log(`  ${listed} ${c.id}: Node ${show(expected)}, ${target} ${show(got)}: ${why}`);
      return;
    }
    row.diverge++;
    divergences++;
    console.log(`  DIVERGES ${c.id}: Node ${show(expected)}, ${target} ${show(got)}: ${kind}`);
  });
  for (const key of [...KNOWN_BUGS, ...RUNTIME_QUIRKS]) {
    if ((key.startsWith(`${target} `) || key.startsWith('node ')) && !seenKnown.has(key)) {
      console.log(`  stale entry (no longer diverges): ${key}: delete it`);
    }
  }
  // Node's answers where Node's choice is the rule, grouped by answer.
  const notable = new Map<string, string[]>();
  cases.forEach((c, i) => {
    if (c.notable !== true) return;
    const answer = show(oracle[i] as Decision).replace(/ \[.*\]$/, '');
    notable.set(answer, [...(notable.get(answer) ?? []), c.id]);
  });
  console.log(`  Node's answers where Node's choice is the rule:`);
  for (const [answer, ids] of notable) console.log(`    ${answer}: ${ids.join(', ')}`);
  console.log(`  ${'class'.padEnd(16)} cases  agree  listed  diverge`);
  for (const [name, row] of byClass) {
    console.log(
      `  ${name.padEnd(16)} ${String(row.cases).padStart(5)}  ${String(row.agree).padStart(5)}  ${String(row.known).padStart(5)}  ${String(row.diverge).padStart(7)}`,
    );
    checks.push({
      label: `differential ${name}: ${target} answers as Node (${row.cases} cases)`,
      expected: [0],
      got: String(row.diverge),
      ok: row.diverge === 0,
    });
  }
  const late = elapsed > TIME_MARGIN_MS;
  checks.push({
    label: `differential: the corpus was answered within its time margin (${Math.round(elapsed / 1000)} s of ${TIME_MARGIN_MS / 1000} s)`,
    expected: [],
    got: `${elapsed} ms`,
    ok: !late,
  });
  const rows = [...byClass.values()];
  const agree = rows.reduce((sum, row) => sum + row.agree, 0);
  const listed = rows.reduce((sum, row) => sum + row.known, 0);
  console.log(
    `${target}: differential: ${agree}/${cases.length} answered as Node, ${listed} listed divergences (KNOWN_BUGS, RUNTIME_QUIRKS), ${divergences} unlisted`,
  );
  return checks;
}
