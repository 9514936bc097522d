/**
 * A Logto-shaped authorization server for local development and tests, built on oidc-provider
 * (the library Logto itself is built on). It issues client-credentials access tokens exactly as a
 * Logto tenant does: ES384 keys with RFC 7638 thumbprint kids, `typ: at+jwt`, issuer
 * `<endpoint>/oidc`, `aud` = the resource indicator, `scope` from the app's roles. A token request
 * with a DPoP proof (RFC 9449) gets a DPoP-bound token (`cnf.jkt`), as oidc-provider's `dPoP`
 * feature issues them (Logto keeps that feature off for now).
 *
 * Not part of the package: a stand-in for your Logto tenant.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import type Provider from 'oidc-provider';
import { createProof } from './dpop-proof.ts';
import type { ProofKey } from './dpop-proof.ts';

/** A machine-to-machine app registered with the issuer. */
export interface DemoApp {
  readonly id: string;
  readonly secret: string;
  /** The API permissions (scopes) its role grants on each resource. */
  readonly scopes: Readonly<Record<string, readonly string[]>>;
}

export interface IssuerOptions {
  /** Default: 0 (any free port). */
  readonly port?: number;
  /** Default: 127.0.0.1. */
  readonly host?: string;
  /** API resources and the permissions each defines. Default: https://shopping.api. */
  readonly resources?: Readonly<Record<string, readonly string[]>>;
  /** Signing algorithm. Default: ES384 (Logto's default). */
  readonly alg?: 'ES384' | 'ES256' | 'ES512' | 'RS256' | 'PS256' | 'EdDSA';
  /** Access token lifetime in seconds. Default: 3600 (Logto's default). */
  readonly accessTokenTTL?: number;
}

export interface Issuer {
  /** The `iss` of its tokens: `<endpoint>/oidc`. */
  readonly issuer: string;
  /** Like a Logto endpoint: the issuer is `${endpoint}/oidc`. */
  readonly endpoint: string;
  readonly tokenEndpoint: string;
  readonly jwksUri: string;
  readonly apps: { readonly reader: DemoApp; readonly writer: DemoApp };
  /** The current private signing keys, newest first (tests sign hostile tokens with them). */
  readonly signingKeys: readonly JWK[];
  /** Organizations and their members, as a Logto tenant would have them. */
  readonly organizations: Readonly<Record<string, DemoOrganization>>;
  /**
   * Gets a token the way Logto's M2M guide does. With `organization`, an organization-level
   * token: for `resource` = an API, the token carries `organization_id`; for `resource` =
   * `urn:logto:organization:<id>`, it is an organization token. With `dpop`, a token bound to
   * that key (`cnf.jkt`), to be presented with `Authorization: DPoP` and a proof.
   */
  token(
    app: DemoApp,
    options?: {
      resource?: string | null;
      scope?: string;
      organization?: string;
      dpop?: ProofKey;
    },
  ): Promise<string>;
  /** Adds a new signing key; with `grace: false` the old key leaves the JWKS at once. */
  rotate(options?: { grace?: boolean }): Promise<JWK>;
  close(): Promise<void>;
}

export const SHOPPING_API = 'https://shopping.api';

/** A Logto organization: the apps that are members, and the organization permissions it grants. */
export interface DemoOrganization {
  readonly members: readonly string[];
  readonly permissions: readonly string[];
}

/**
 * oidc-provider 9 warns that Node 20 is not its preferred runtime and that its in-memory store is
 * for development: both true and expected here, so its console notices are muted while it loads
 * and while a provider is built.
 */
async function quietly<T>(work: () => T | Promise<T>): Promise<T> {
  const { warn, info } = console;
  const mute =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) return;
      original(...args);
    };
  console.warn = mute(warn);
  console.info = mute(info);
  try {
    return await work();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

async function signingKey(alg: NonNullable<IssuerOptions['alg']>): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' };
}

function app(id: string, scopes: Record<string, readonly string[]>): DemoApp {
  return { id, secret: randomBytes(24).toString('base64url'), scopes };
}

/**
 * Starts the issuer on loopback.
 *
 * @example
 * ```ts
 * const issuer = await startIssuer({ port: 3001 });
 * const token = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
 * ```
 */
export async function startIssuer(options: IssuerOptions = {}): Promise<Issuer> {
  const alg = options.alg ?? 'ES384';
  const resources = options.resources ?? {
    [SHOPPING_API]: ['read:products', 'write:products'],
  };
  const apps = {
    reader: app('shopping-reader', { [SHOPPING_API]: ['read:products'] }),
    writer: app('shopping-writer', { [SHOPPING_API]: ['read:products', 'write:products'] }),
  };
  const { default: OidcProvider, errors } = await quietly(() => import('oidc-provider'));
  let keys: JWK[] = [await signingKey(alg)];
  const organizations: Record<string, DemoOrganization> = {
    acme: {
      members: [apps.reader.id, apps.writer.id],
      permissions: ['read:orders', 'write:orders'],
    },
    globex: { members: [apps.writer.id], permissions: ['read:orders'] },
  };
  const ORG = 'urn:logto:organization:';
  const member = (organization: unknown, clientId: string) =>
    typeof organization === 'string' &&
    organizations[organization]?.members.includes(clientId) === true;
  let provider: Provider | undefined;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (provider === undefined || !(url === '/oidc' || url.startsWith('/oidc/'))) {
      res.writeHead(404).end();
      return;
    }
    // Mount under /oidc like Logto: oidc-provider derives the mount path from originalUrl.
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
    req.url = url.slice('/oidc'.length) || '/';
    provider.callback()(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject); // a port in use: the caller says which variable to change
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port, address } = server.address() as AddressInfo;
  const endpoint = `http://${address}:${port}`;
  const issuer = `${endpoint}/oidc`;

  const build = () => {
    const next = new OidcProvider(issuer, {
      clients: Object.values(apps).map((demo) => ({
        client_id: demo.id,
        client_secret: demo.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: alg,
      })),
      enabledJWA: { idTokenSigningAlgValues: [alg] },
      jwks: { keys: keys as never },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        // RFC 9449: a token request carrying a DPoP proof gets a token bound to its key.
        dPoP: { enabled: true },
        introspection: { enabled: false },
        revocation: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as unknown as string,
          useGrantedResource: () => true,
          getResourceServerInfo(ctx, indicator, client) {
            if (indicator.startsWith(ORG)) {
              // An organization token: aud = urn:logto:organization:<id>, organization permissions.
              const id = indicator.slice(ORG.length);
              if (!member(id, client.clientId)) throw new errors.InvalidTarget();
              return {
                scope: (organizations[id] as DemoOrganization).permissions.join(' '),
                audience: indicator,
                accessTokenTTL: options.accessTokenTTL ?? 3600,
                accessTokenFormat: 'jwt',
                jwt: { sign: { alg } },
              };
            }
            const permissions = resources[indicator];
            if (permissions === undefined) throw new errors.InvalidTarget();
            const requested = (ctx.oidc.body as Record<string, unknown> | undefined)
              ?.organization_id;
            if (requested !== undefined && !member(requested, client.clientId)) {
              throw new errors.InvalidTarget('the app is not a member of this organization');
            }
            const granted = Object.values(apps).find((a) => a.id === client.clientId)?.scopes[
              indicator
            ];
            return {
              scope: (granted ?? []).filter((s) => permissions.includes(s)).join(' '),
              audience: indicator,
              accessTokenTTL: options.accessTokenTTL ?? 3600,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg } },
            };
          },
        },
      },
      ttl: { ClientCredentials: options.accessTokenTTL ?? 3600 },
      // An organization-level API resource token carries organization_id, as Logto's does.
      extraTokenClaims(ctx) {
        // client_credentials declares no extra parameters: read Logto's organization_id from the body.
        const organization = (ctx.oidc.body as Record<string, unknown> | undefined)
          ?.organization_id;
        const resource = (ctx.oidc.body as Record<string, unknown> | undefined)?.resource;
        if (typeof organization !== 'string' || typeof resource !== 'string') return undefined;
        return resource.startsWith(ORG) ? undefined : { organization_id: organization };
      },
      cookies: { keys: [randomBytes(16).toString('hex')] },
    });
    next.proxy = false;
    return next;
  };
  provider = await quietly(build);

  return {
    issuer,
    endpoint,
    tokenEndpoint: `${issuer}/token`,
    jwksUri: `${issuer}/jwks`,
    apps,
    organizations,
    get signingKeys() {
      return keys;
    },
    async token(demo, { resource = SHOPPING_API, scope, organization, dpop } = {}) {
      const body = new URLSearchParams({ grant_type: 'client_credentials' });
      if (resource !== null) body.set('resource', resource);
      if (scope !== undefined) body.set('scope', scope);
      if (organization !== undefined) body.set('organization_id', organization);
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${demo.id}:${demo.secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          ...(dpop && {
            dpop: await createProof(dpop, { method: 'POST', url: `${issuer}/token` }),
          }),
        },
        body,
      });
      const json = (await response.json()) as {
        access_token?: string;
        error?: string;
        error_description?: string;
      };
      if (!response.ok || json.access_token === undefined) {
        throw new Error(
          `token request failed: ${response.status} ${json.error ?? ''} ${json.error_description ?? ''}`,
        );
      }
      return json.access_token;
    },
    async rotate({ grace = true } = {}) {
      const fresh = await signingKey(alg);
      keys = grace ? [fresh, ...keys] : [fresh];
      provider = await quietly(build);
      return fresh;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
