import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createVerifier, logto } from 'resource-guard';
import type { LogtoOptions, Requirements, VerifierOptions } from 'resource-guard';
import { resolveRequirements } from '../src/options.ts';
import { OPTION_RULES } from '../src/option-rules.ts';

const base: VerifierOptions = {
  issuer: 'https://tenant.example.test/oidc',
  audience: 'https://shopping.api',
};
const logtoBase: LogtoOptions = {
  endpoint: 'https://tenant.example.test',
  audience: 'https://shopping.api',
};

const ORIGIN = 'https://api.example';
const SECRET = 'a nonce secret of at least 32 characters';

/** Where an option of each level goes, to build a whole input around one patch. */
const levels = {
  verifier: (patch: object) => createVerifier({ ...base, ...patch } as VerifierOptions),
  keys: (patch: object) => createVerifier({ ...base, keys: patch }),
  cache: (patch: object) => createVerifier({ ...base, cache: patch }),
  resourceMetadata: (patch: object) => createVerifier({ ...base, resourceMetadata: patch }),
  requirements: (patch: object) => createVerifier(base).guard(patch as Requirements),
  logto: (patch: object) => createVerifier(logto({ ...logtoBase, ...patch } as LogtoOptions)),
  dpop: (patch: object) => createVerifier({ ...base, dpop: { origin: ORIGIN, ...patch } }),
  dpopNonce: (patch: object) =>
    createVerifier({ ...base, dpop: { origin: ORIGIN, nonce: { secret: SECRET, ...patch } } }),
} satisfies Record<keyof typeof OPTION_RULES, unknown>;
type LevelName = keyof typeof levels;

/** The prefix of option paths at each level, as messages name them. */
const prefix = (level: LevelName) => OPTION_RULES[level].prefix;

/** Runs `run` and returns the TypeError it throws; fails on success or on any other error. */
function configErrorOf(run: () => unknown): TypeError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toMatch(/^resource-guard: `/);
    return error as TypeError;
  }
  throw new Error('expected a TypeError, got success');
}

/** The message names this option path, in backticks. */
const naming = (path: string) => new RegExp(`\`${path.replace(/[.$]/g, '\\$&')}\``);

describe('createVerifier options', () => {
  it.each([
    ['issuer', { issuer: '' }],
    ['issuer', { issuer: [] }],
    ['issuer', { issuer: 'not a url' }],
    ['issuer', { issuer: ['https://a.example', 5] }],
    ['audience', { audience: undefined }],
    ['audience', { audience: [''] }],
    ['jwksUri', { jwksUri: 'ftp://keys.example/jwks' }],
    ['algorithms', { algorithms: ['HS256'] }],
    ['algorithms', { algorithms: ['none'] }],
    ['algorithms', { algorithms: [] }],
    ['clockTolerance', { clockTolerance: -1 }],
    ['maxTokenAge', { maxTokenAge: Number.NaN }],
    ['keys.maxAge', { keys: { maxAge: -5 } }],
    ['keys.timeout', { keys: { timeout: 0 } }],
    ['keys.timeout', { keys: { timeout: 3e6 } }],
    ['keys', { keys: 'abc' }],
    ['jwksUri', { jwksUri: 'http://tenant.example.test/oidc/jwks' }],
    ['cache', { cache: 'big' }],
    ['cache.maxEntries', { cache: { maxEntries: -1 } }],
    ['keys.cooldown', { keys: { cooldown: Number.POSITIVE_INFINITY } }],
    ['realm', { realm: 'a"b' }],
    ['onRejected', { onRejected: 'log' }],
    ['strict', { strict: 'yes' }],
  ])('a bad `%s` is refused with an error naming it', (name, patch) => {
    expect(configErrorOf(() => levels.verifier(patch)).message).toMatch(naming(name));
  });

  it('never mutates the caller’s options and freezes what it returns', () => {
    const options = {
      ...base,
      issuer: [base.issuer as string],
      algorithms: ['ES384' as const],
      keys: { maxAge: 60 },
    };
    const snapshot = structuredClone(options);
    const verifier = createVerifier(options);
    expect(options).toEqual(snapshot);
    expect(Object.isFrozen(verifier)).toBe(true);
  });

  it('accepts deeply frozen options at every level', () => {
    const options = deepFreeze({
      ...base,
      issuer: [base.issuer as string],
      algorithms: ['ES384'],
      requiredClaims: ['jti'],
      keys: { maxAge: 60, cooldown: 1, timeout: 0.001, maxStale: 0 },
      cache: { maxEntries: 5, maxBytes: 1024 },
      resourceMetadata: {
        resourceName: 'Shopping',
        scopesSupported: ['read:products'],
        authorizationServers: ['https://tenant.example.test/oidc'],
        resourceDocumentation: 'https://shopping.api/docs',
      },
    } as VerifierOptions);
    const verifier = createVerifier(options);
    expect(verifier.resourceMetadata?.document.scopes_supported).toEqual(['read:products']);
    expect(Object.isFrozen(verifier.guard(deepFreeze({ scopes: ['read:products'] })))).toBe(true);
  });

  it('ignores symbol keys', () => {
    expect(() => levels.verifier({ [Symbol('note')]: 1 })).not.toThrow();
    expect(() => levels.requirements({ [Symbol('note')]: 1 })).not.toThrow();
  });
});

describe('options that could hide from a check', () => {
  it('an option inherited from a (null-prototype) parent is refused, not silently ignored', () => {
    const defaults = Object.assign(Object.create(null) as object, {
      algorithms: ['RS256'],
      requiredClaims: ['tenant'],
      maxTokenAge: 60,
    });
    const options = Object.assign(Object.create(defaults) as object, base);
    expect(() => createVerifier(options as VerifierOptions)).toThrow(
      /resource-guard: `algorithms` is inherited/,
    );
  });

  it('a misspelt option hidden as non-enumerable is still named', () => {
    const options = { ...base };
    Object.defineProperty(options, 'clockTolerence', { value: 0, enumerable: false });
    expect(() => createVerifier(options)).toThrow(
      /`clockTolerence`.*did you mean `clockTolerance`/,
    );
  });

  it('a claim rule or an unknown name inherited as a non-enumerable member is refused', async () => {
    /** `Object.create(parent)`, where `parent` (null prototype) holds `name` out of sight. */
    const hiding = (name: string, value: unknown, own: object = {}): object => {
      const parent = Object.create(null) as object;
      Object.defineProperty(parent, name, { value, enumerable: false });
      return Object.assign(Object.create(parent) as object, own);
    };
    const verifier = createVerifier(base);
    expect(() =>
      verifier.guard({ claimEquals: hiding('tenant_id', 'acme', { plan: 'paid' }) as never }),
    ).toThrow(/`claimEquals\.tenant_id` is inherited/);
    expect(() => verifier.guard({ claimIncludes: hiding('roles', ['admin']) as never })).toThrow(
      /`claimIncludes\.roles` is inherited/,
    );
    expect(() =>
      verifier.guard({ checks: hiding('paid plan', () => false, { other: () => true }) as never }),
    ).toThrow(/`checks\."paid plan"` is inherited/);
    expect(() => createVerifier(hiding('clockTolerence', 0, base) as VerifierOptions)).toThrow(
      /`clockTolerence` is inherited/,
    );
    await expect(
      verifier.verify('x', { claimEquals: hiding('tenant_id', 'acme') as never }),
    ).rejects.toThrow(/`claimEquals\.tenant_id` is inherited/);
  });

  it("an own member shadowing the base, and another realm's Object.prototype, pass", async () => {
    const { runInNewContext } = await import('node:vm');
    const verifier = createVerifier(base);
    const parent = Object.create(null) as object;
    Object.defineProperty(parent, 'tenant_id', { value: 'other', enumerable: false });
    const shadowed = Object.create(parent) as object;
    Object.defineProperty(shadowed, 'tenant_id', { value: 'acme', enumerable: true });
    expect(() => verifier.guard({ claimEquals: shadowed as never })).not.toThrow();
    const foreign = runInNewContext('({ tenant_id: "acme" })') as object;
    expect(Object.getPrototypeOf(foreign)).not.toBe(Object.prototype);
    expect(() => verifier.guard({ claimEquals: foreign as never })).not.toThrow();
    expect(() =>
      createVerifier(
        runInNewContext('({ issuer: i, audience: a })', {
          i: base.issuer,
          a: base.audience,
        }) as VerifierOptions,
      ),
    ).not.toThrow();
  });

  it('a getter or a Proxy that throws while the options are read is a resource-guard TypeError', () => {
    const getter = { ...base };
    Object.defineProperty(getter, 'realm', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });
    const proxy = new Proxy(base, {
      ownKeys() {
        throw new RangeError('trap');
      },
    });
    for (const options of [getter, proxy]) {
      expect(() => createVerifier(options)).toThrow(TypeError);
      expect(() => createVerifier(options)).toThrow(/^resource-guard: `options` could not be read/);
    }
  });
});

describe('unknown and misspelt options', () => {
  it.each([
    ['verifier', { algorithm: ['ES384'] }, 'algorithm', 'algorithms'],
    ['verifier', { requiredClaim: ['jti'] }, 'requiredClaim', 'requiredClaims'],
    ['verifier', { jwksURI: 'https://tenant.example.test/jwks' }, 'jwksURI', 'jwksUri'],
    ['verifier', { max_token_length: 100 }, 'max_token_length', 'maxTokenLength'],
    ['verifier', { issuers: ['https://a.example'] }, 'issuers', 'issuer'],
    ['keys', { coolDown: 5 }, 'keys.coolDown', 'keys.cooldown'],
    ['keys', { max_stale: 5 }, 'keys.max_stale', 'keys.maxStale'],
    ['cache', { maxentries: 5 }, 'cache.maxentries', 'cache.maxEntries'],
    [
      'resourceMetadata',
      { scopeSupported: [] },
      'resourceMetadata.scopeSupported',
      'resourceMetadata.scopesSupported',
    ],
    ['requirements', { scope: ['read'] }, 'scope', 'scopes'],
    ['requirements', { organisation: 'acme' }, 'organisation', 'organization'],
    ['requirements', { anyOrganisation: true }, 'anyOrganisation', 'anyOrganization'],
    ['logto', { customDomain: ['auth.example.com'] }, 'customDomain', 'customDomains'],
    ['logto', { keys: { timeOut: 1 } }, 'keys.timeOut', 'keys.timeout'],
  ] as const)('%s: `%o` names `%s` and suggests `%s`', (level, patch, path, suggestion) => {
    const { message } = configErrorOf(() => levels[level](patch));
    expect(message).toMatch(naming(path));
    expect(message).toContain(`did you mean \`${suggestion}\`?`);
  });

  /** Typos of a key: the last letter dropped, the first two different letters swapped, caps. */
  const typos = (key: string) => {
    const i = [...key].findIndex((char, j) => char !== key[j + 1]);
    const swapped = key.slice(0, i) + key.charAt(i + 1) + key.charAt(i) + key.slice(i + 2);
    return [key.slice(0, -1), swapped, key.toUpperCase()].filter((typo) => typo !== key);
  };
  const everyOption = (Object.keys(levels) as LevelName[]).flatMap((level) =>
    Object.keys(OPTION_RULES[level].rules).flatMap((key) =>
      typos(key).map((typo) => [level, key, typo] as const),
    ),
  );

  it.each(everyOption)(
    '%s: every option: `%s` misspelt as `%s` is named and suggested',
    (level, key, typo) => {
      const { message } = configErrorOf(() => levels[level]({ [typo]: 1 }));
      expect(message).toMatch(naming(prefix(level) + typo));
      expect(message).toContain(`did you mean \`${prefix(level)}${key}\`?`);
    },
  );

  it('an unknown key is refused even when its value is undefined (a known one is then absent)', () => {
    expect(configErrorOf(() => levels.verifier({ algorithm: undefined })).message).toMatch(
      naming('algorithm'),
    );
    expect(configErrorOf(() => levels.requirements({ scope: undefined })).message).toMatch(
      naming('scope'),
    );
    expect(() => levels.verifier({ algorithms: undefined, keys: undefined })).not.toThrow();
    expect(() => levels.requirements({ scopes: undefined, any: undefined })).not.toThrow();
    // Except a route's organization: undefined there would open a route meant for one
    // organization (an unset `process.env.ORG_ID`) to every global token.
    expect(configErrorOf(() => levels.requirements({ organization: undefined })).message).toMatch(
      /`organization` is undefined: a route for an organization must name it/,
    );
  });

  it('an unknown key with no near match lists the known ones', () => {
    const { message } = configErrorOf(() => levels.keys({ xyzzy: 1 }));
    expect(message).toMatch(naming('keys.xyzzy'));
    expect(message).toContain('maxAge');
  });

  it.each(['scopes', 'scope', 'any', 'machine', 'organization', 'anyOrganization'])(
    'a route requirement (`%s`) given to createVerifier or logto says where it goes',
    (key) => {
      for (const level of ['verifier', 'logto'] as const) {
        const { message } = configErrorOf(() => levels[level]({ [key]: ['read'] }));
        expect(message).toMatch(naming(key));
        expect(message).toMatch(/route requirement.*verifier\.guard\(\).*requireAuth\(\)/);
      }
    },
  );

  it('`organization` given to createVerifier also suggests `organizations`', () => {
    expect(configErrorOf(() => levels.verifier({ organization: 'acme' })).message).toContain(
      'did you mean `organizations`?',
    );
  });

  it.each(['issuer', 'jwksUri'])('`%s` given to logto() says it comes from `endpoint`', (key) => {
    const { message } = configErrorOf(() => logto({ ...logtoBase, [key]: 'https://x.example' }));
    expect(message).toMatch(naming(key));
    expect(message).toContain('`endpoint`');
  });

  it('a verifier option given to a route says it belongs to createVerifier', () => {
    const { message } = configErrorOf(() => levels.requirements({ audience: 'x' }));
    expect(message).toMatch(naming('audience'));
    expect(message).toContain('createVerifier()');
  });
});

describe('option shapes', () => {
  it.each([
    ['options', null],
    ['options', 'https://tenant.example.test/oidc'],
    ['options', [base]],
    ['options', undefined],
  ])('`%s` must be an object: %o', (path, options) => {
    expect(configErrorOf(() => createVerifier(options as never)).message).toMatch(naming(path));
  });

  it.each([
    // null objects, arrays where objects are expected
    ['resourceMetadata', { resourceMetadata: null }],
    ['resourceMetadata', { resourceMetadata: [] }],
    ['keys', { keys: null }],
    ['keys', { keys: [600] }],
    ['keys', { keys: new Map() }],
    ['cache', { cache: null }],
    ['cache', { cache: true }],
    ['cache', { cache: [] }],
    // strings where lists are expected
    ['resourceMetadata.scopesSupported', { resourceMetadata: { scopesSupported: 'read' } }],
    [
      'resourceMetadata.authorizationServers',
      { resourceMetadata: { authorizationServers: 'https://x.example' } },
    ],
    ['requiredClaims', { requiredClaims: 'jti' }],
    ['algorithms', { algorithms: 'ES384' }],
    // items of the wrong kind
    ['requiredClaims', { requiredClaims: [''] }],
    ['requiredClaims', { requiredClaims: [Object.create(null)] }],
    ['algorithms', { algorithms: [null] }],
    ['resourceMetadata.scopesSupported', { resourceMetadata: { scopesSupported: ['a b'] } }],
    ['resourceMetadata.authorizationServers', { resourceMetadata: { authorizationServers: [] } }],
    ['resourceMetadata.resource', { resourceMetadata: { resource: 'not a url' } }],
    ['resourceMetadata.resource', { resourceMetadata: { resource: 'https://a.example/?q' } }],
    ['resourceMetadata.resource', { audience: 'shopping', resourceMetadata: {} }],
    ['resourceMetadata.resourceDocumentation', { resourceMetadata: { resourceDocumentation: 5 } }],
    ['resourceMetadata.resourceName', { resourceMetadata: { resourceName: null } }],
    // numbers: NaN, Infinity, negative, non-integer counts, beyond the bounds
    ['clockTolerance', { clockTolerance: Number.NaN }],
    ['clockTolerance', { clockTolerance: '5' }],
    ['maxTokenAge', { maxTokenAge: Number.POSITIVE_INFINITY }],
    ['keys.maxStale', { keys: { maxStale: -1 } }],
    ['keys.timeout', { keys: { timeout: 600.5 } }],
    ['cache.maxEntries', { cache: { maxEntries: 1.5 } }],
    ['cache.maxBytes', { cache: { maxBytes: Number.NaN } }],
    ['cache.maxBytes', { cache: { maxBytes: 2 ** 60 } }],
    ['maxTokenLength', { maxTokenLength: 0 }],
    ['maxTokenLength', { maxTokenLength: 100.5 }],
    ['maxTokenLength', { maxTokenLength: 2 * 1024 * 1024 }],
    ['fetch', { fetch: {} }],
    ['organizations', { organizations: 1 }],
    ['issuer', { issuer: new String('https://tenant.example.test/oidc') }],
    ['jwksUri', { jwksUri: null }],
  ])('`%s`: a wrong shape is a TypeError naming it (%o)', (path, patch) => {
    expect(configErrorOf(() => levels.verifier(patch)).message).toMatch(naming(path));
  });

  it('`maxTokenLength` is a whole number of characters, up to 1 MiB', () => {
    expect(configErrorOf(() => levels.verifier({ maxTokenLength: 1.5 })).message).toMatch(
      /`maxTokenLength`.*characters/,
    );
    expect(() => levels.verifier({ maxTokenLength: 1 })).not.toThrow();
    expect(() => levels.verifier({ maxTokenLength: 1024 * 1024 })).not.toThrow();
  });

  it('keeps the bounds of durations: keys.timeout from 0.001 to 600 s, others from 0', () => {
    expect(() =>
      levels.keys({ timeout: 0.001, maxAge: 0, cooldown: 0, maxStale: 0 }),
    ).not.toThrow();
    expect(() => levels.keys({ timeout: 600 })).not.toThrow();
    expect(() => levels.verifier({ clockTolerance: 0, maxTokenAge: 0 })).not.toThrow();
    expect(() => levels.cache({ maxEntries: 0, maxBytes: 0 })).not.toThrow();
    expect(() => levels.verifier({ cache: false })).not.toThrow();
  });

  it('a single string stays allowed for `issuer` and `audience`, as documented', () => {
    expect(() => levels.verifier({ issuer: 'https://a.example', audience: 'api' })).not.toThrow();
  });
});

describe('route requirements', () => {
  it.each([
    ['scopes', { scopes: 'read:products' }],
    ['scopes', { scopes: ['read products'] }],
    ['scopes', { scopes: [''] }],
    ['scopes', { scopes: null }],
    ['any', { any: 'yes' }],
    ['machine', { machine: 1 }],
    ['organization', { organization: '' }],
    ['organization', { organization: 42 }],
    ['anyOrganization', { anyOrganization: 'true' }],
    ['anyOrganization', { organization: 'acme', anyOrganization: true }],
    ['requirements', null],
    ['requirements', ['read:products']],
    ['requirements', 'read:products'],
  ])('`%s`: %o is a TypeError naming it', (path, requirements) => {
    const verifier = createVerifier(base);
    expect(configErrorOf(() => verifier.guard(requirements as never)).message).toMatch(
      naming(path),
    );
  });

  it('a string for `scopes` gets the hint to use an array', () => {
    expect(configErrorOf(() => levels.requirements({ scopes: 'read' })).message).toMatch(/array/);
  });

  it('`organization` with `anyOrganization: true` names both', () => {
    const { message } = configErrorOf(() =>
      levels.requirements({ organization: 'acme', anyOrganization: true }),
    );
    expect(message).toMatch(naming('organization'));
  });

  it('resolves to a frozen object: the flags always present, the lists copied', () => {
    const scopes = ['read:products'];
    const resolved = resolveRequirements({ scopes, organization: 'acme' });
    expect(resolved).toEqual({
      scopes: ['read:products'],
      any: false,
      machine: false,
      organization: 'acme',
      anyOrganization: false,
      optional: false,
    });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(Object.isFrozen(resolved.scopes)).toBe(true);
    expect(resolved.scopes).not.toBe(scopes);
    expect(resolveRequirements(undefined)).toEqual({
      any: false,
      machine: false,
      anyOrganization: false,
      optional: false,
    });
    expect(resolveRequirements({ anyOrganization: true, any: true })).toMatchObject({
      any: true,
      anyOrganization: true,
    });
    expect('organization' in resolveRequirements({})).toBe(false);
  });
});

describe('logto() options', () => {
  it.each([
    ['customDomains', { customDomains: 'auth.example.com' }],
    ['customDomains', { customDomains: ['auth example.com'] }],
    ['customDomains', { customDomains: ['auth.example.com/oidc'] }],
    ['customDomains', { customDomains: ['ftp://auth.example.com'] }],
    ['endpoint', { endpoint: 'https://tenant.example.test/oidc' }],
    ['endpoint', { endpoint: 'tenant.example.test' }],
    ['endpoint', { endpoint: undefined }],
    ['algorithms', { algorithms: 'ES384' }],
    ['options', null],
  ])('`%s`: %o is a TypeError naming it', (path, patch) => {
    const options = patch === null ? null : { ...logtoBase, ...patch };
    expect(configErrorOf(() => logto(options as never)).message).toMatch(naming(path));
  });

  it('custom domains as host names or origins; an undefined option keeps the preset', () => {
    // `algorithms: undefined`, as a JavaScript caller may write it (the types forbid it).
    const options = deepFreeze({
      ...logtoBase,
      customDomains: ['auth.example.com', 'https://id.example.com/'],
      algorithms: undefined,
    } as unknown as LogtoOptions);
    const snapshot = structuredClone(options);
    const result = logto(options);
    expect(result.issuer).toEqual([
      'https://tenant.example.test/oidc',
      'https://auth.example.com/oidc',
      'https://id.example.com/oidc',
    ]);
    expect(result.algorithms).toContain('ES384');
    expect(result.algorithms).not.toContain('PS256');
    expect(options).toEqual(snapshot);
  });
});

describe('any value at any option path', () => {
  /** Paths as [level, key] ('' key: the whole object of that level). */
  const paths = (Object.keys(levels) as LevelName[]).flatMap((level) => [
    [level, ''] as const,
    ...Object.keys(OPTION_RULES[level].rules).map((key) => [level, key] as const),
  ]);
  const anything = fc.anything({
    withNullPrototype: true,
    withBoxedValues: true,
    withMap: true,
    withSet: true,
    withDate: true,
    withTypedArray: true,
    withSparseArray: true,
    withBigInt: true,
    withObjectString: true,
  });
  /** Whole-object runs replace the level's object; the verifier's and logto's keep no base. */
  const run = (level: LevelName, key: string, value: unknown) => {
    if (key !== '') return levels[level]({ [key]: value });
    if (level === 'verifier') return createVerifier(value as VerifierOptions);
    if (level === 'logto') return createVerifier(logto(value as LogtoOptions));
    if (level === 'requirements') return createVerifier(base).guard(value as Requirements);
    if (level === 'dpopNonce') {
      return createVerifier({ ...base, dpop: { origin: ORIGIN, nonce: value as never } });
    }
    return createVerifier({ ...base, [level]: value });
  };

  it.each(paths)(
    '%s `%s`: success or a resource-guard TypeError, never another error; the input is untouched',
    (level, key) => {
      fc.assert(
        fc.property(fc.clone(anything, 2), fc.boolean(), ([value, copy], freeze) => {
          if (freeze) deepFreeze(value);
          try {
            run(level, key, value);
          } catch (error) {
            expect(error).toBeInstanceOf(TypeError);
            expect((error as Error).message.startsWith('resource-guard: ')).toBe(true);
          }
          expect(value).toStrictEqual(copy);
        }),
        { numRuns: 150 },
      );
    },
  );
});

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    if (ArrayBuffer.isView(value)) return value;
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      deepFreeze((value as Record<PropertyKey, unknown>)[key]);
    }
  }
  return value;
}
