import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { fixtureVerifier } from './helpers/key-set-fixture.ts';
import { startJwksServer } from './helpers/jwks-server.ts';
import type { JwksServer } from './helpers/jwks-server.ts';
import {
  AUDIENCE,
  b64url,
  ISSUER,
  m2mClaims,
  makeKey,
  mint,
  rawToken,
  signRaw,
} from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

let jwks: JwksServer;
let es384: TestKey;
let rs256: TestKey;
let es256: TestKey;
let eddsa: TestKey;

beforeAll(async () => {
  [es384, rs256, es256, eddsa] = await Promise.all([
    makeKey('ES384'),
    makeKey('RS256'),
    makeKey('ES256'),
    makeKey('EdDSA'),
  ]);
  jwks = await startJwksServer([es384.jwk, rs256.jwk, es256.jwk, eddsa.jwk]);
});
afterAll(() => jwks.close());

const verifierFor = (options: Partial<VerifierOptions> = {}) =>
  fixtureVerifier({ jwksUri: jwks.url, ...options });

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection, got a verified token');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

const now = () => Math.floor(Date.now() / 1000);

describe('a genuine Logto-shaped token', () => {
  it('verifies and exposes a typed auth object', async () => {
    const { verifier } = verifierFor();
    const token = await mint(es384);
    const auth = await verifier.verify(token, { scopes: ['read:products'] });
    expect(auth.subject).toBe('app-123');
    expect(auth.clientId).toBe('app-123');
    expect(auth.isMachine).toBe(true);
    expect(auth.issuer).toBe(ISSUER);
    expect(auth.audience).toEqual([AUDIENCE]);
    expect(auth.scopes).toEqual(['read:products', 'write:products']);
    expect(auth.header).toMatchObject({ alg: 'ES384', typ: 'at+jwt', kid: es384.kid });
    expect(auth.claims.jti).toMatch(/^jti-/);
    expect(auth.token).toBe(token);
    expect(Object.isFrozen(auth)).toBe(true);
  });

  it('is deeply frozen: a handler cannot change what the next request with the token sees', async () => {
    const { verifier } = verifierFor();
    const token = await mint(
      es384,
      m2mClaims({ roles: ['reader'], act: { sub: 'agent', nested: { tags: ['a'] } } }),
    );
    const first = await verifier.verify<{ roles: string[]; act: { nested: { tags: string[] } } }>(
      token,
    );
    expect(() => first.claims.roles.push('admin')).toThrow(TypeError);
    expect(() => first.claims.act.nested.tags.push('b')).toThrow(TypeError);
    expect(() => {
      (first.claims as { scope?: string }).scope = 'admin';
    }).toThrow(TypeError);
    expect(() => (first.scopes as string[]).push('admin')).toThrow(TypeError);
    expect(() => (first.audience as string[]).push('https://other.api')).toThrow(TypeError);
    expect(() => {
      (first.header as { kid?: string }).kid = 'x';
    }).toThrow(TypeError);
    const second = await verifier.verify<{ roles: string[] }>(token);
    expect(second.claims.roles).toEqual(['reader']);
    expect(second.scopes).toEqual(['read:products', 'write:products']);
  });

  it('a required claim named like an Object.prototype member must be the token’s own', async () => {
    const { verifier } = verifierFor({ requiredClaims: ['constructor', 'toString'] });
    const error = await rejection(verifier.verify(await mint(es384)));
    expect(error.reason).toBe('missing_claim');
  });

  it('bad requirements reject the promise (never a synchronous throw from verify/authenticate)', async () => {
    const { verifier } = verifierFor();
    const bad = { scope: ['read:products'] } as never;
    const pending = verifier.verify('x.y.z', bad);
    await expect(pending).rejects.toThrow(TypeError);
    await expect(verifier.authenticate({ headers: {} }, bad)).rejects.toThrow(/`scope`/);
  });

  it('keeps the token out of logs and JSON', async () => {
    const { verifier } = verifierFor();
    const token = await mint(es384);
    const auth = await verifier.verify(token);
    expect(JSON.stringify(auth)).not.toContain(token);
    const { inspect } = await import('node:util');
    expect(inspect(auth, { depth: 5 })).not.toContain(token);
  });

  it.each(['RS256', 'ES256', 'EdDSA'])('verifies %s', async (alg) => {
    const { verifier } = verifierFor();
    const key = { RS256: rs256, ES256: es256, EdDSA: eddsa }[alg] as TestKey;
    await expect(verifier.verify(await mint(key))).resolves.toMatchObject({ subject: 'app-123' });
  });

  it('accepts typ application/at+jwt in any case, and aud as an array', async () => {
    const { verifier } = verifierFor();
    const token = await mint(es384, m2mClaims({ aud: ['https://other.api', AUDIENCE] }), {
      typ: 'Application/AT+JWT',
    });
    await expect(verifier.verify(token)).resolves.toBeDefined();
  });

  it('allows `exp` within the clock tolerance, and not beyond it', async () => {
    const { verifier } = verifierFor({ clockTolerance: 5 });
    await expect(
      verifier.verify(await mint(es384, m2mClaims({ exp: now() - 2 }))),
    ).resolves.toBeDefined();
    const error = await rejection(
      verifier.verify(await mint(es384, m2mClaims({ exp: now() - 8 }))),
    );
    expect(error.reason).toBe('expired');
  });

  it('reads scopes from an scp array when there is no scope claim', async () => {
    const { verifier } = verifierFor();
    const token = await mint(es384, m2mClaims({ scope: undefined, scp: ['read:products'] }));
    await expect(verifier.verify(token, { scopes: ['read:products'] })).resolves.toBeDefined();
  });

  it('with strict: false accepts typ JWT and a token without client_id/jti/iat', async () => {
    const { verifier } = verifierFor({ strict: false });
    const claims = m2mClaims({ client_id: undefined, jti: undefined, iat: undefined });
    const auth = await verifier.verify(await mint(es384, claims, { typ: 'JWT' }));
    expect(auth.clientId).toBeUndefined();
    expect(auth.isMachine).toBe(false);
  });
});

interface HostileCase {
  name: string;
  token: () => Promise<string>;
  reason: string;
  options?: Partial<VerifierOptions>;
}

const foreign = () => makeKey('ES384');

const hostile: HostileCase[] = [
  {
    name: 'alg none',
    token: async () => rawToken({ alg: 'none', typ: 'at+jwt', kid: es384.kid }, m2mClaims()),
    reason: 'alg_not_allowed',
  },
  {
    name: 'HS256 keyed with the public key (algorithm confusion)',
    token: async () => {
      const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: rs256.kid }));
      const payload = b64url(JSON.stringify(m2mClaims()));
      const secret = JSON.stringify(rs256.jwk);
      const mac = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      return `${header}.${payload}.${mac}`;
    },
    reason: 'alg_not_allowed',
  },
  {
    name: 'tampered payload',
    token: async () => {
      const [header, , signature] = (await mint(es384)).split('.');
      const payload = b64url(
        JSON.stringify(m2mClaims({ scope: 'read:products write:products admin' })),
      );
      return `${header}.${payload}.${signature}`;
    },
    reason: 'bad_signature',
  },
  {
    name: 'a foreign key under a trusted kid',
    token: async () => {
      const attacker = await foreign();
      return mint({ ...attacker, kid: es384.kid }, m2mClaims());
    },
    reason: 'bad_signature',
  },
  {
    name: 'a jku header pointing at the attacker',
    token: async () => mint(await foreign(), m2mClaims(), { jku: `${jwks.origin}/evil-jwks` }),
    reason: 'untrusted_key_header',
  },
  {
    name: 'an embedded jwk header',
    token: async () => {
      const attacker = await foreign();
      return mint(attacker, m2mClaims(), { jwk: attacker.jwk, kid: undefined });
    },
    reason: 'untrusted_key_header',
  },
  {
    name: 'an x5u header',
    token: async () => mint(es384, m2mClaims(), { x5u: 'https://attacker.example/cert.pem' }),
    reason: 'untrusted_key_header',
  },
  {
    name: 'the wrong issuer',
    token: async () => mint(es384, m2mClaims({ iss: 'https://evil.example/oidc' })),
    reason: 'issuer_mismatch',
  },
  {
    name: 'an issuer differing by a trailing slash',
    token: async () => mint(es384, m2mClaims({ iss: `${ISSUER}/` })),
    reason: 'issuer_mismatch',
  },
  {
    name: 'the wrong audience',
    token: async () => mint(es384, m2mClaims({ aud: 'https://shopping.api/' })),
    reason: 'audience_mismatch',
  },
  {
    name: 'an ID token (typ JWT, aud = client id)',
    token: async () => mint(es384, m2mClaims({ aud: 'app-123' }), { typ: 'JWT' }),
    reason: 'typ_mismatch',
  },
  {
    name: 'no typ',
    token: async () => mint(es384, m2mClaims(), { typ: undefined }),
    reason: 'typ_mismatch',
  },
  {
    name: 'expired',
    token: async () => mint(es384, m2mClaims({ iat: now() - 7200, exp: now() - 3600 })),
    reason: 'expired',
  },
  {
    name: 'nbf in the future',
    token: async () => mint(es384, m2mClaims({ nbf: now() + 600 })),
    reason: 'not_yet_valid',
  },
  {
    name: 'iat in the future',
    token: async () => mint(es384, m2mClaims({ iat: now() + 600 })),
    reason: 'issued_in_future',
  },
  {
    name: 'missing exp',
    token: async () => mint(es384, m2mClaims({ exp: undefined })),
    reason: 'missing_claim',
  },
  {
    name: 'exp = 1e309 (Infinity once parsed)',
    token: async () => {
      const claims = JSON.stringify(m2mClaims({ exp: 12345 })).replace('12345', '1e309');
      return signRaw(es384, { alg: 'ES384', typ: 'at+jwt', kid: es384.kid }, claims);
    },
    reason: 'invalid_claim',
  },
  {
    name: 'exp as a string',
    token: async () => mint(es384, m2mClaims({ exp: String(now() + 3600) })),
    reason: 'invalid_claim',
  },
  {
    name: 'missing client_id (RFC 9068 requires it)',
    token: async () => mint(es384, m2mClaims({ client_id: undefined })),
    reason: 'missing_claim',
  },
  {
    name: 'client_id that is not a string',
    token: async () => mint(es384, m2mClaims({ client_id: 123 })),
    reason: 'invalid_claim',
  },
  {
    name: 'organization_id that is not a string',
    token: async () => mint(es384, m2mClaims({ organization_id: 42 })),
    reason: 'invalid_claim',
  },
  {
    name: 'scope that is not a string',
    token: async () => mint(es384, m2mClaims({ scope: ['read:products'] })),
    reason: 'invalid_claim',
  },
  {
    name: 'an unknown crit extension',
    token: async () =>
      signRaw(
        es384,
        {
          alg: 'ES384',
          typ: 'at+jwt',
          kid: es384.kid,
          crit: ['urn:example:must'],
          'urn:example:must': 1,
        },
        m2mClaims(),
      ),
    reason: 'unsupported_crit',
  },
  {
    name: 'ES256 signed under an ES384 kid',
    token: async () => mint({ ...es256, kid: es384.kid }, m2mClaims()),
    reason: 'key_mismatch',
  },
  {
    name: 'an algorithm outside the caller allow-list',
    token: async () => mint(rs256),
    reason: 'alg_not_allowed',
    options: { algorithms: ['ES384'] },
  },
  {
    name: 'an opaque token',
    token: async () => 'oTJHdVZ2M0pXQ0pfWHpyZXpYVEJDTGxfRFFrMA',
    reason: 'opaque_token',
  },
  {
    name: 'an encrypted token (JWE)',
    token: async () => 'eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d',
    reason: 'encrypted_token',
  },
  {
    name: 'a non-canonical spelling of a valid signature (unused trailing bits set)',
    token: async () => {
      const token = await mint(rs256); // 256-byte signature: 342 chars, 4 unused bits at the end
      const last = token.at(-1) as string;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      return token.slice(0, -1) + alphabet[alphabet.indexOf(last) | 1];
    },
    reason: 'malformed_token',
  },
  {
    name: 'segments that are not JSON',
    token: async () => 'bm90IGpzb24.bm90IGpzb24.c2ln',
    reason: 'malformed_token',
  },
  {
    name: 'too old for maxTokenAge',
    token: async () => mint(es384, m2mClaims({ iat: now() - 120 })),
    reason: 'token_too_old',
    options: { maxTokenAge: 60 },
  },
];

describe('hostile tokens', () => {
  it.each(hostile)('rejects $name', async ({ token: make, reason, options }) => {
    const { verifier, events } = verifierFor(options);
    const token = await make();
    const error = await rejection(verifier.verify(token));
    expect(error.reason).toBe(reason);
    expect(error.status).toBe(401);
    expect(error.code).toBe('invalid_token');
    expect(error.headers['www-authenticate']).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", error="invalid_token", error_description="[^"\\]+"$/,
    );
    // Nothing the client or the hook sees contains the token.
    expect(JSON.stringify(error.body)).not.toContain(token);
    expect(error.message).not.toContain(token);
    expect(events).toHaveLength(1);
    expect(events[0]?.reason).toBe(reason);
    expect(JSON.stringify(events[0]?.details)).not.toContain(token);
  });

  it('never fetches keys for an untrusted issuer or a wrong audience', async () => {
    const before = jwks.hits;
    const { verifier } = verifierFor();
    await rejection(
      verifier.verify(await mint(es384, m2mClaims({ iss: 'https://evil.example/oidc' }))),
    );
    await rejection(verifier.verify(await mint(es384, m2mClaims({ aud: 'https://other.api' }))));
    expect(jwks.hits).toBe(before);
  });

  it('never fetches a jku URL', async () => {
    let evilHits = 0;
    jwks.behave((req, res) => {
      evilHits++;
      res.end('{}');
    });
    try {
      const { verifier } = verifierFor();
      await rejection(verifier.verify(await mint(es384, m2mClaims(), { jku: jwks.url })));
      expect(evilHits).toBe(0);
    } finally {
      jwks.behave(undefined);
    }
  });

  it('tells the operator exactly what differed', async () => {
    const { verifier, events } = verifierFor();
    await rejection(
      verifier.verify(await mint(es384, m2mClaims({ iss: 'https://tenant.example.test' }))),
    );
    await rejection(verifier.verify(await mint(es384, m2mClaims({ aud: 'https://other.api' }))));
    await rejection(verifier.verify(await mint(es384, m2mClaims({ exp: now() - 100 }))));
    expect(events.map((e) => [e.reason, e.details])).toEqual([
      [
        'issuer_mismatch',
        {
          expected: [ISSUER],
          actual: 'https://tenant.example.test',
          hint: 'a Logto issuer is the endpoint followed by /oidc',
        },
      ],
      ['audience_mismatch', { expected: [AUDIENCE], actual: ['https://other.api'] }],
      ['expired', expect.objectContaining({ expiredSecondsAgo: expect.any(Number) })],
    ]);
    expect((events[2]?.details.expiredSecondsAgo as number) >= 100).toBe(true);
  });
});

describe('scopes', () => {
  it('are matched exactly, never by substring or prefix', async () => {
    const { verifier } = verifierFor();
    const token = await mint(
      es384,
      m2mClaims({ scope: 'read:products-archive xread:products read' }),
    );
    const error = await rejection(verifier.verify(token, { scopes: ['read:products'] }));
    expect(error.status).toBe(403);
    expect(error.code).toBe('insufficient_scope');
    expect(error.headers['www-authenticate']).toBe(
      'Bearer realm="https://shopping.api", error="insufficient_scope", error_description="The access token lacks the required scope", scope="read:products"',
    );
  });

  it('are all-of by default and any-of with any: true', async () => {
    const { verifier } = verifierFor();
    const token = await mint(es384, m2mClaims({ scope: 'read:products' }));
    await rejection(verifier.verify(token, { scopes: ['read:products', 'write:products'] }));
    await expect(
      verifier.verify(token, { scopes: ['read:products', 'write:products'], any: true }),
    ).resolves.toBeDefined();
  });

  it('are none when the scope claim is absent or empty', async () => {
    const { verifier } = verifierFor();
    for (const scope of [undefined, '']) {
      const token = await mint(es384, m2mClaims({ scope }));
      expect((await verifier.verify(token)).scopes).toEqual([]);
      const error = await rejection(verifier.verify(token, { scopes: ['read:products'] }));
      expect(error.reason).toBe('insufficient_scope');
    }
  });

  it('requirements are checked for syntax', () => {
    const { verifier } = verifierFor();
    expect(() => verifier.guard({ scopes: ['read products'] })).toThrow(/`scopes`/);
    expect(() => verifier.guard({ scopes: ['a"b'] })).toThrow(/`scopes`/);
  });
});

describe('the challenge', () => {
  it('carries the realm when configured', async () => {
    const { verifier } = verifierFor({ realm: 'shopping' });
    const missing = await rejection(verifier.authenticate({ headers: {} }));
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="shopping"');
    const bad = await rejection(verifier.verify('a.b.c'));
    expect(bad.headers['www-authenticate']).toMatch(
      /^Bearer realm="shopping", error="invalid_token"/,
    );
  });
});

describe('what operators see', () => {
  it('bounds the attacker-chosen values quoted in details', async () => {
    const { verifier, events } = verifierFor();
    const long = `https://${'a'.repeat(5000)}.example/oidc`;
    await rejection(verifier.verify(await mint(es384, m2mClaims({ iss: long }))));
    const actual = events[0]?.details.actual as string;
    expect(actual.length).toBeLessThanOrEqual(201);
    expect(long.startsWith(actual.slice(0, -1))).toBe(true);
  });

  it('an AuthError built by hand never puts an unsafe value into its challenge', () => {
    const error = new AuthError('insufficient_scope', {
      scopes: ['read"products'],
      challenge: { realm: 'a\r\nSet-Cookie: x=1' },
    });
    expect(error.headers['www-authenticate']).toBe(
      'Bearer error="insufficient_scope", error_description="The access token lacks the required scope"',
    );
    expect(error.statusCode).toBe(403);
    expect(error.expose).toBe(true);
  });
});

describe('an async hook that rejects', () => {
  it('neither changes the answer nor leaves an unhandled rejection', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: jwks.url,
      onRejected: async () => {
        throw new Error('log sink down');
      },
    });
    const error = await rejection(verifier.verify('opaque'));
    expect(error.reason).toBe('opaque_token');
    await new Promise((r) => setTimeout(r, 20)); // vitest fails the run on an unhandled rejection
  });
});

describe('a hook that throws', () => {
  it('does not change the answer', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: jwks.url,
      onRejected: () => {
        throw new Error('logger down');
      },
    });
    const error = await rejection(verifier.verify('opaque'));
    expect(error.reason).toBe('opaque_token');
  });
});

describe('an AuthError shown by a default error page', () => {
  it('has no stack frames, and inspecting it shows neither details nor the cause', async () => {
    const { inspect } = await import('node:util');
    const { verifier } = verifierFor({
      isRevoked: () => {
        throw new Error('db password=hunter2');
      },
    });
    const error = await rejection(verifier.verify(await mint(es384)));
    expect(error.reason).toBe('revocation_unavailable');
    expect(error.stack).not.toMatch(/\n\s+at /);
    const shown = `${inspect(error)} ${String(error.stack)} ${String(error)}`;
    expect(shown).not.toContain('hunter2');
    expect(shown).not.toMatch(/\.ts:\d|\.js:\d/);
    expect((error.cause as Error).message).toContain('hunter2'); // still there for onRejected
  });
});
