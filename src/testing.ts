/**
 * `resource-guard/testing`: an in-process, Logto-shaped issuer for testing YOUR API — keys, a
 * JWKS, and `mint()` for access tokens your guarded routes accept. For tests only: import it from
 * test files, never from application code; it refuses to run when `NODE_ENV=production`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK, JWTHeaderParameters } from 'jose';
import * as check from './option-checks.ts';
import type { VerifierOptions } from './options.ts';

/** The algorithms a test issuer signs with: Logto's ES384 and the ones a tenant may rotate to. */
export type TestAlgorithm = (typeof ALGORITHMS)[number];
const ALGORITHMS = ['ES384', 'ES256', 'ES512', 'RS256', 'PS256', 'EdDSA'] as const;

/** `createTestIssuer()` options. Unknown keys are refused. */
export interface TestIssuerOptions {
  /** `iss` of its tokens. Default: `https://issuer.test/oidc` (a reserved, never-real domain). */
  readonly issuer?: string;
  /** `aud` of its tokens: your API resource indicator. Default: `https://api.test`. */
  readonly audience?: string;
  /** Signing algorithm. Default: `ES384` (Logto's default). */
  readonly algorithm?: TestAlgorithm;
  /**
   * `false`: no network — `verifierOptions.fetch` answers the JWKS from memory. `true`: serve the
   * JWKS on `http://127.0.0.1:<free port>`, for an API started separately. Default: `false`.
   */
  readonly serve?: boolean;
}

/** `mint()` options. Unknown keys are refused. */
export interface MintOptions {
  /** Granted scopes, as `scope` (space-delimited). Default: none (`scope` absent, as in Logto). */
  readonly scopes?: readonly string[];
  /** `sub`. Default: `test-app`. */
  readonly sub?: string;
  /** `client_id`. Default: `sub` (a machine-to-machine token); another value makes a user token. */
  readonly clientId?: string;
  /** `organization_id`, as for a Logto organization-level API resource. Default: none. */
  readonly organizationId?: string;
  /** `aud`, e.g. `urn:logto:organization:<id>` for an organization token. Default: the issuer's. */
  readonly audience?: string;
  /** More claims, applied last: they may override any claim, and `undefined` removes one. */
  readonly claims?: Readonly<Record<string, unknown>>;
  /**
   * Lifetime in seconds. Default: 3600. `<= 0`: already expired, issued an hour before `exp` (within
   * the verifier's `clockTolerance`, 5 s, `-4` still passes: use `-60`).
   */
  readonly expiresIn?: number;
  /**
   * Header overrides for negative tests: `typ` and `kid` are signed as given (`undefined` removes
   * them); an `alg` other than the key's is written over the signed header (a tampered token).
   */
  readonly header?: {
    readonly typ?: string | undefined;
    readonly kid?: string | undefined;
    readonly alg?: string;
  };
}

/** What to spread into `createVerifier()`. */
export interface TestVerifierOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUri: string;
  /** Without `serve`: answers the JWKS URL from memory and refuses any other request. */
  readonly fetch?: typeof globalThis.fetch;
}

export interface TestIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUri: string;
  /** The public JWKS as it stands: the current key first, then the previous one (if any). */
  readonly jwks: { readonly keys: readonly JWK[] };
  readonly verifierOptions: TestVerifierOptions;
  /** A Logto-shaped access token (`typ: at+jwt`, RFC 7638 `kid`, M2M claims by default). */
  mint(options?: MintOptions): Promise<string>;
  /**
   * A new signing key; the old one stays in the JWKS as Logto's Previous key unless
   * `dropPrevious`. A verifier that already holds the keys refetches for a new `kid` at most once
   * per `keys.cooldown` (30 s): build it after rotating, or give it `keys: { cooldown: 0 }`.
   */
  rotate(options?: { readonly dropPrevious?: boolean }): Promise<JWK>;
  /** Stops the JWKS server (with `serve: true`). Idempotent. */
  close(): Promise<void>;
}

interface SigningKey {
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

const fail = check.configError;
const level = <R extends check.Rules>(rules: R, path: string, noun: string) =>
  ({ rules, path, prefix: path === 'options' ? '' : `${path}.`, noun, hints: {} }) as const;
const plainObject: check.Check<Readonly<Record<string, unknown>>> = (value, path) =>
  check.isPlainObject(value)
    ? { ...value }
    : fail(path, `must be a plain object (got ${check.describe(value)})`);

const ISSUER_OPTIONS = level(
  {
    issuer: check.withDefault(check.httpUrlString, 'https://issuer.test/oidc'),
    audience: check.withDefault(check.nonEmptyString, 'https://api.test'),
    algorithm: check.withDefault<TestAlgorithm>((value, path) => {
      if (ALGORITHMS.includes(value as TestAlgorithm)) return value as TestAlgorithm;
      return fail(path, `must be one of ${ALGORITHMS.join(', ')} (got ${check.describe(value)})`);
    }, 'ES384'),
    serve: check.withDefault(check.boolean, false),
  },
  'options',
  'a createTestIssuer() option',
);

const HEADER_OVERRIDES = ['typ', 'kid', 'alg'];
const MINT_OPTIONS = level(
  {
    scopes: check.withDefault(check.list(check.isScopeToken, 'scope tokens'), []),
    sub: check.withDefault(check.nonEmptyString, 'test-app'),
    clientId: check.optional(check.nonEmptyString),
    organizationId: check.optional(check.nonEmptyString),
    audience: check.optional(check.nonEmptyString),
    claims: check.withDefault(plainObject, {}),
    expiresIn: check.withDefault((value, path) => {
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      return fail(path, `must be a finite number of seconds (got ${check.describe(value)})`);
    }, 3600),
    header: check.withDefault((value, path) => {
      const header = plainObject(value, path);
      for (const [name, member] of Object.entries(header)) {
        if (!HEADER_OVERRIDES.includes(name)) fail(`${path}.${name}`, 'is not typ, kid or alg');
        if (member !== undefined && typeof member !== 'string') {
          fail(`${path}.${name}`, 'must be a string (or undefined, to remove it)');
        }
      }
      return header as Readonly<Record<string, string | undefined>>;
    }, {}),
  },
  'mint',
  'a mint() option',
);

// A compile error when an option has no rule, or a rule no option.
const _issuerRules: check.Covers<typeof ISSUER_OPTIONS.rules, TestIssuerOptions> = true;
const _mintRules: check.Covers<typeof MINT_OPTIONS.rules, MintOptions> = true;

const ROTATE_OPTIONS = level(
  { dropPrevious: check.withDefault(check.boolean, false) },
  'rotate',
  'a rotate() option',
);

async function newKey(alg: TestAlgorithm): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const exported = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(exported);
  return { privateKey, jwk: Object.freeze({ ...exported, kid, alg, use: 'sig' }) };
}

/** Serves `jwks()` at `path` on 127.0.0.1 (a free port); `close` is idempotent. */
async function serveJwks(path: string, jwks: () => unknown) {
  const server = createServer((req, res) => {
    const found = req.method === 'GET' && req.url === path;
    res
      .writeHead(found ? 200 : 404, {
        'content-type': 'application/json',
        'cache-control': 'no-cache',
      })
      .end(JSON.stringify(found ? jwks() : { error: 'not_found' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref(); // a forgotten close() does not keep the test process alive
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
  return { port: (server.address() as AddressInfo).port, close };
}

/**
 * Creates an in-process issuer of Logto-shaped access tokens, for testing your own guarded API.
 * Throws when `process.env.NODE_ENV` is `production` (in any case, spaces around it ignored): its
 * tokens open any API that trusts it.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { createTestIssuer } from 'resource-guard/testing';
 *
 * const testIssuer = await createTestIssuer({ audience: 'https://shopping.api' });
 * const verifier = createVerifier({ ...testIssuer.verifierOptions });
 * const token = await testIssuer.mint({ scopes: ['read:products'] });
 * await verifier.verify(token, { scopes: ['read:products'] }); // no network, no port
 * ```
 */
export async function createTestIssuer(options: TestIssuerOptions = {}): Promise<TestIssuer> {
  // Any spelling a shell leaves: `set NODE_ENV=production && node app` on Windows keeps the space.
  if (globalThis.process?.env?.NODE_ENV?.trim().toLowerCase() === 'production') {
    throw new Error(
      'resource-guard/testing: refusing to run with NODE_ENV=production (its tokens open any API ' +
        'that trusts it); import it from tests only',
    );
  }
  const { issuer, audience, algorithm, serve } = check.resolveLevel(options, ISSUER_OPTIONS);
  let keys: readonly SigningKey[] = [await newKey(algorithm)];
  let jwks = Object.freeze({ keys: Object.freeze(keys.map((k) => k.jwk)) });
  const jwksPath = `${new URL(issuer).pathname.replace(/\/+$/, '')}/jwks`;
  const served = serve ? await serveJwks(jwksPath, () => jwks) : undefined;
  const jwksUri = served
    ? `http://127.0.0.1:${served.port}${jwksPath}`
    : new URL(jwksPath, issuer).href;
  const fetch: typeof globalThis.fetch = async (input) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url !== jwksUri) {
      throw new TypeError(`resource-guard/testing: no network in tests (${url} is not the JWKS)`);
    }
    return Response.json(jwks, { headers: { 'cache-control': 'no-cache' } });
  };

  async function mint(input: MintOptions = {}): Promise<string> {
    const o = check.resolveLevel(input, MINT_OPTIONS);
    const key = keys[0] as SigningKey;
    const now = Math.floor(Date.now() / 1000);
    const exp = now + Math.trunc(o.expiresIn);
    const payload = {
      jti: randomBytes(16).toString('base64url'),
      sub: o.sub,
      client_id: o.clientId ?? o.sub,
      iat: o.expiresIn > 0 ? now : exp - 3600,
      exp,
      ...(o.scopes.length > 0 && { scope: o.scopes.join(' ') }),
      iss: issuer,
      aud: o.audience ?? audience,
      ...(o.organizationId !== undefined && { organization_id: o.organizationId }),
      ...o.claims,
    };
    const header = { alg: algorithm as string, typ: 'at+jwt', kid: key.jwk.kid, ...o.header };
    const token = await new SignJWT(payload)
      .setProtectedHeader({ ...header, alg: algorithm } as JWTHeaderParameters)
      .sign(key.privateKey);
    if (header.alg === algorithm) return token;
    // A header that says another alg than the one signed with: as if tampered with in transit.
    const tampered = Buffer.from(JSON.stringify(header)).toString('base64url');
    return tampered + token.slice(token.indexOf('.'));
  }

  async function rotate(input: { readonly dropPrevious?: boolean } = {}): Promise<JWK> {
    const { dropPrevious } = check.resolveLevel(input, ROTATE_OPTIONS);
    const key = await newKey(algorithm);
    keys = dropPrevious ? [key] : [key, keys[0] as SigningKey];
    jwks = Object.freeze({ keys: Object.freeze(keys.map((k) => k.jwk)) });
    return key.jwk;
  }

  const verifierOptions = { issuer, audience, jwksUri, ...(!served && { fetch }) };
  return Object.freeze({
    issuer,
    audience,
    jwksUri,
    get jwks() {
      return jwks;
    },
    verifierOptions: Object.freeze(verifierOptions) satisfies VerifierOptions,
    mint,
    rotate,
    close: served?.close ?? (() => Promise.resolve()),
  });
}

/** A DPoP client key for tests (RFC 9449), from {@link createDpopKey}. */
export interface TestDpopKey {
  /** The key's RFC 7638 thumbprint: bind a token to it with `mint({ claims: { cnf: { jkt } } })`. */
  readonly jkt: string;
  /** A fresh proof (new `jti`, `iat` now) for one request: `htm`, `htu` (no query), `ath`. */
  proof(request: TestDpopRequest): Promise<string>;
  /** `{ authorization: 'DPoP <token>', dpop: <proof> }` for one request. */
  headers(
    token: string,
    request: Omit<TestDpopRequest, 'token'>,
  ): Promise<{ authorization: string; dpop: string }>;
}

export interface TestDpopRequest {
  /** `GET`, `POST`, ... */
  readonly method: string;
  /** The URL as the API's `dpop.origin` names it, e.g. `https://api.test/products`. */
  readonly url: string;
  /** The access token the request carries (its hash becomes `ath`). */
  readonly token?: string;
  /** The server's `DPoP-Nonce`, when it asks for one. */
  readonly nonce?: string;
}

/**
 * A DPoP client key for testing an API with the `dpop` option: mint a token bound to it, then
 * send each request with a fresh proof.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { createDpopKey, createTestIssuer } from 'resource-guard/testing';
 *
 * const testIssuer = await createTestIssuer({ audience: 'https://shopping.api' });
 * const verifier = createVerifier({
 *   ...testIssuer.verifierOptions,
 *   dpop: { mode: 'required', origin: 'https://api.test' },
 * });
 * const key = await createDpopKey();
 * const token = await testIssuer.mint({ claims: { cnf: { jkt: key.jkt } } });
 * const headers = await key.headers(token, { method: 'GET', url: 'https://api.test/products' });
 * await verifier.authenticate({ method: 'GET', url: '/products', headers });
 * ```
 */
export async function createDpopKey(): Promise<TestDpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const jkt = await calculateJwkThumbprint(jwk);
  const proof = (request: TestDpopRequest): Promise<string> => {
    if (typeof request?.method !== 'string' || typeof request.url !== 'string') {
      fail('request', 'needs a `method` and a `url` (strings)');
    }
    const htu = new URL(request.url);
    htu.search = '';
    htu.hash = '';
    return new SignJWT({
      jti: randomBytes(16).toString('base64url'),
      htm: request.method,
      htu: htu.href,
      ...(request.token === undefined
        ? {}
        : { ath: createHash('sha256').update(request.token).digest('base64url') }),
      ...(request.nonce === undefined ? {} : { nonce: request.nonce }),
    })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk })
      .setIssuedAt()
      .sign(privateKey);
  };
  return Object.freeze({
    jkt,
    proof,
    async headers(token: string, request: Omit<TestDpopRequest, 'token'>) {
      return { authorization: `DPoP ${token}`, dpop: await proof({ ...request, token }) };
    },
  });
}
