import { pathToFileURL } from 'node:url';
import { createClient } from 'redis';
import { createVerifier, WarmUpError } from 'resource-guard';
import type { DpopOptions, KeyHealth, Verifier } from 'resource-guard';
import { redisReplayStore } from 'resource-guard/redis';

/**
 * The shopping API's configuration, from the environment:
 * - `ISSUER` (e.g. https://tenant.logto.app/oidc), or `LOGTO_ENDPOINT` (issuer = `${LOGTO_ENDPOINT}/oidc`)
 * - `AUDIENCE`: the API resource indicator. Default: https://shopping.api
 * - `JWKS_URI`: optional; default from the issuer's discovery document
 * - `PORT` (default 3000), `HOST` (default 127.0.0.1)
 * - `DPOP`: `allowed` (Bearer or DPoP) or `required` (DPoP only); unset: DPoP off
 * - `PUBLIC_ORIGIN`: the origin clients call (`https://api.example.com` behind a proxy), which
 *   DPoP proofs name; comma-separated for several. Default: `http://HOST:PORT` (and
 *   `http://localhost:PORT` on loopback)
 * - `REDIS_URL`: remember used DPoP proofs in Redis, shared by every instance of the API; unset:
 *   in memory (right for one instance only)
 */
export interface ApiConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUri?: string;
  readonly port: number;
  readonly host: string;
  readonly dpop?: 'allowed' | 'required';
  readonly publicOrigins?: readonly string[];
  readonly redisUrl?: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const endpoint = env.LOGTO_ENDPOINT?.trim().replace(/\/+$/, '');
  const issuer = env.ISSUER?.trim() || (endpoint ? `${endpoint}/oidc` : undefined);
  if (!issuer) {
    throw new ConfigError(
      'Set ISSUER (e.g. https://your-tenant.logto.app/oidc) or LOGTO_ENDPOINT ' +
        '(e.g. https://your-tenant.logto.app); AUDIENCE defaults to https://shopping.api.',
    );
  }
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`PORT must be a port number, got ${JSON.stringify(env.PORT)}`);
  }
  const jwksUri = env.JWKS_URI?.trim();
  const host = env.HOST?.trim() || '127.0.0.1';
  const dpop = env.DPOP?.trim();
  if (dpop && dpop !== 'allowed' && dpop !== 'required') {
    throw new ConfigError(`DPOP is allowed or required (or unset), got ${JSON.stringify(dpop)}`);
  }
  const publicOrigins = env.PUBLIC_ORIGIN?.split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  if (dpop && !publicOrigins?.length && port === 0) {
    throw new ConfigError('DPOP with PORT=0 needs PUBLIC_ORIGIN: the origin clients call');
  }
  const redisUrl = env.REDIS_URL?.trim();
  return {
    issuer,
    audience: env.AUDIENCE?.trim() || 'https://shopping.api',
    ...(jwksUri ? { jwksUri } : {}),
    port,
    host,
    ...(dpop ? { dpop: dpop as 'allowed' | 'required' } : {}),
    ...(publicOrigins?.length ? { publicOrigins } : {}),
    ...(redisUrl ? { redisUrl } : {}),
  };
}

/**
 * DPoP as configured: proofs must name the public origin; used proofs are remembered in Redis
 * when `REDIS_URL` is set (every instance then refuses a proof another one accepted).
 */
function dpopFromConfig(config: ApiConfig & { dpop: 'allowed' | 'required' }): DpopOptions {
  const origins = dpopOrigins(config);
  if (config.redisUrl === undefined) return { mode: config.dpop, origin: origins };
  // Commands fail at once while Redis is unreachable (a 503), rather than queue until it is back.
  const redis = createClient({ url: config.redisUrl, disableOfflineQueue: true });
  let down = false;
  redis.on('error', (error: Error) => {
    if (!down) console.warn(`Redis unreachable (DPoP requests get 503): ${error.message}`);
    down = true;
  });
  redis.on('ready', () => {
    if (down) console.warn('Redis reachable again');
    down = false;
  });
  redis.connect().catch(() => undefined); // reconnects on its own; errors reported above
  return { mode: config.dpop, origin: origins, replay: redisReplayStore(redis) };
}

/** The origins DPoP proofs must name: PUBLIC_ORIGIN, else the API's own address. */
function dpopOrigins(config: ApiConfig): readonly string[] {
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(config.host);
  return (
    config.publicOrigins ?? [
      `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`,
      ...(loopback ? [`http://localhost:${config.port}`] : []),
    ]
  );
}

/** The verifier every example uses: rejections are logged by reason, never with the token. */
export function verifierFromConfig(config: ApiConfig): Verifier {
  return createVerifier({
    issuer: config.issuer,
    audience: config.audience,
    ...(config.jwksUri ? { jwksUri: config.jwksUri } : {}),
    // RFC 9728: GET /.well-known/oauth-protected-resource tells clients how to get a token.
    resourceMetadata: {
      resourceName: 'Shopping API',
      scopesSupported: ['read:products', 'write:products'],
    },
    onRejected: (event) => console.warn(`rejected: ${event.reason}`, event.details),
    ...(config.dpop ? { dpop: dpopFromConfig({ ...config, dpop: config.dpop }) } : {}),
  });
}

/**
 * The verifier, its keys fetched before the API listens: the first request does not pay for the
 * fetch, and a failure shows at boot with its cause (the API still starts: it answers 503 until
 * the keys can be had, and `GET /health/keys` says so).
 */
export async function startVerifier(config: ApiConfig): Promise<Verifier> {
  const verifier = verifierFromConfig(config);
  console.log(
    `Issuer ${config.issuer}, audience ${config.audience}, keys from ${config.jwksUri ?? 'discovery'}`,
  );
  if (config.dpop) {
    const store = config.redisUrl ? 'in Redis (REDIS_URL)' : 'in memory (one instance)';
    console.log(
      `DPoP ${config.dpop}: proofs name ${dpopOrigins(config).join(' or ')}; used proofs kept ${store}`,
    );
  }
  try {
    for (const { issuer, keys, jwksUri } of await verifier.warm()) {
      console.log(`Keys of ${issuer}: ${keys} from ${jwksUri}`);
    }
  } catch (error) {
    if (!(error instanceof WarmUpError)) throw error;
    console.error(
      `${error.message}\nThe API starts anyway: it answers 503 until the keys can be fetched (GET /health/keys).`,
    );
  }
  return verifier;
}

/** `GET /health/keys`, for a readiness probe: 200 while the keys can verify, 503 when not. */
export function keysHealth(verifier: Verifier): {
  status: 200 | 503;
  body: { status: 'ok' | 'unavailable'; issuers: readonly KeyHealth[] };
} {
  const issuers = verifier.health();
  const ok = issuers.every(({ state }) => state === 'fresh' || state === 'stale');
  return { status: ok ? 200 : 503, body: { status: ok ? 'ok' : 'unavailable', issuers } };
}

/**
 * What to tell the user when the program cannot start: the config problem, or which variable to
 * change when a port is taken.
 */
export function startupProblem(
  error: unknown,
  portVariables: Record<number, string> = {},
): unknown {
  if (error instanceof ConfigError) return error.message;
  const { code, port, address } = (error ?? {}) as {
    code?: unknown;
    port?: unknown;
    address?: unknown;
  };
  if (code === 'EADDRINUSE' || code === 'EACCES') {
    const variable = (typeof port === 'number' && portVariables[port]) || 'PORT';
    const what = code === 'EADDRINUSE' ? 'is in use' : 'needs privileges';
    return `Port ${String(port)} on ${String(address)} ${what}: set ${variable} to another port (e.g. ${variable}=0 for any free one).`;
  }
  return error;
}

/** Runs `serve(configFromEnv())` when the file is the program, exiting clearly on bad config. */
export function runIfMain(moduleUrl: string, serve: (config: ApiConfig) => Promise<unknown>): void {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  Promise.resolve()
    .then(() => serve(configFromEnv()))
    .catch((error: unknown) => {
      console.error(startupProblem(error));
      process.exit(1);
    });
}
