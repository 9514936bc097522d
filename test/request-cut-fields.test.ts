/**
 * A request whose header fields the server may have cut. node 20 (and Deno's node:http) keep the
 * first `server.maxHeadersCount` fields (1,000 by default) and drop the rest without a word, where
 * newer node answers 431: a second `Authorization`, `DPoP` proof, `Host` or `Cookie` field after a
 * thousand others would be unseen, and the one-credential rules (RFC 6750 §2, RFC 9449 §4.3)
 * bypassed. Such a request is refused (400 `multiple_credentials`): whether it holds one credential
 * cannot be told. Found by the wire differential (test/runtimes/wire.ts) on Deno and node 20.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { RequestLike, Verifier } from 'resource-guard';
import { dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import { listenLoopback, rawStatus } from './helpers/http.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

let key: TestKey;
let verifier: Verifier;
let good: string;
/** Signed by another key under the same kid: never acceptable. */
let forged: string;

beforeAll(async () => {
  key = await makeKey('ES256');
  const other = await makeKey('ES256');
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
  good = await mint(key, m2mClaims());
  forged = await mint({ ...other, kid: key.kid }, m2mClaims());
});

/** `count` padding fields, as node's raw list holds them. */
const pad = (count: number) => Array.from({ length: count }, (_, i) => [`p${i}`, '']).flat();

async function outcome(request: RequestLike): Promise<string> {
  try {
    await verifier.authenticate(request);
    return '200';
  } catch (error) {
    if (error instanceof AuthError) return `${error.status} ${error.reason}`;
    return `500 ${String(error)}`;
  }
}

describe('a raw field list that may have been cut is refused', () => {
  it('at 1,000 fields (node and Deno keep 1,000 by default); 999 are read', async () => {
    const authorization = ['Authorization', `Bearer ${good}`];
    expect(await outcome({ headers: {}, rawHeaders: [...authorization, ...pad(998)] })).toBe('200');
    expect(await outcome({ headers: {}, rawHeaders: [...authorization, ...pad(999)] })).toBe(
      '400 multiple_credentials',
    );
    // The case node 20 made: the second field is not in the list at all.
    expect(await outcome({ headers: {}, rawHeaders: [...authorization, ...pad(1030)] })).toBe(
      '400 multiple_credentials',
    );
    const error = (await verifier
      .authenticate({ headers: {}, rawHeaders: [...authorization, ...pad(1200)] })
      .catch((e: unknown) => e)) as AuthError;
    expect(error.details).toMatchObject({ fields: 1201 });
    expect(JSON.stringify(error.details)).not.toContain(good);
  });

  it("at the server's own maxHeadersCount, when it is lower; 0 or junk count as the default", async () => {
    const withLimit = (maxHeadersCount: unknown, fields: number): RequestLike =>
      ({
        headers: {},
        rawHeaders: ['authorization', `Bearer ${good}`, ...pad(fields - 1)],
        socket: { server: { maxHeadersCount } },
      }) as RequestLike;
    expect(await outcome(withLimit(10, 9))).toBe('200');
    expect(await outcome(withLimit(10, 10))).toBe('400 multiple_credentials');
    expect(await outcome(withLimit(5000, 999))).toBe('200');
    expect(await outcome(withLimit(5000, 1000))).toBe('400 multiple_credentials');
    for (const junk of [0, -1, Number.NaN, '10', null, undefined]) {
      expect(await outcome(withLimit(junk, 999))).toBe('200');
      expect(await outcome(withLimit(junk, 1000))).toBe('400 multiple_credentials');
    }
    // An HTTP/2 request's socket proxy throws once its stream is gone: the default, no TypeError.
    const throwing = {
      headers: {},
      rawHeaders: ['authorization', `Bearer ${good}`],
      get socket(): never {
        throw new Error('ERR_HTTP2_SOCKET_UNBOUND');
      },
    } as RequestLike;
    expect(await outcome(throwing)).toBe('200');
  });

  it('for a token from a cookie, and for a DPoP proof or a Host', async () => {
    const cookies = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      cookie: 'at',
    });
    const cookieOutcome = (fields: number) =>
      cookies
        .authenticate({ headers: {}, rawHeaders: ['Cookie', `at=${good}`, ...pad(fields - 1)] })
        .then(
          () => '200',
          (e: unknown) => (e instanceof AuthError ? `${e.status} ${e.reason}` : '500'),
        );
    expect(await cookieOutcome(999)).toBe('200');
    expect(await cookieOutcome(1000)).toBe('400 multiple_credentials');

    // A bound token and its proof, read; with 1,000 fields in all, refused before either is used.
    const fx = await dpopFixture();
    const proofKey = await makeProofKey();
    const bound = await fx.bound(proofKey);
    const withPadding = async (fields: number) => {
      const request = dpopRequest(bound, await proof(proofKey, 'GET', `${ORIGIN}/products`, bound));
      const rawHeaders = [...request.rawHeaders, ...pad(fields - request.rawHeaders.length / 2)];
      return fx.verifier.authenticate({ ...request, rawHeaders }).then(
        () => '200',
        (e: unknown) => (e instanceof AuthError ? `${e.status} ${e.reason}` : '500'),
      );
    };
    expect(await withPadding(999)).toBe('200');
    expect(await withPadding(1000)).toBe('400 multiple_credentials');
  });
});

describe('over the wire: a second Authorization hidden after 1,100 fields', () => {
  let server: Awaited<ReturnType<typeof listenLoopback>>;
  beforeAll(async () => {
    server = await listenLoopback(
      createServer((req, res) => {
        verifier.authenticate(req).then(
          () => res.writeHead(200).end('ok'),
          (error: unknown) => {
            const status = error instanceof AuthError ? error.status : 500;
            res.writeHead(status).end();
          },
        );
      }),
    );
  });
  afterAll(() => server.close());

  const send = (lines: string[]) => rawStatus(server.port, lines);
  const padding = Array.from({ length: 1100 }, (_, i) => `p${i}:`);

  it('is never accepted: 400 here (node 20 drops the field), or node’s own 431', async () => {
    expect(await send([`Authorization: Bearer ${good}`])).toBe(200);
    expect([400, 431]).toContain(
      await send([`Authorization: Bearer ${good}`, ...padding, `Authorization: Bearer ${forged}`]),
    );
    expect([400, 431]).toContain(await send([`Authorization: Bearer ${good}`, ...padding]));
  });
});
