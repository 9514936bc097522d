import { pathToFileURL } from 'node:url';
import { createVerifier } from 'resource-guard';
import type { Verifier } from 'resource-guard';

/**
 * The shopping API's configuration, from the environment:
 * - `ISSUER` (e.g. https://tenant.logto.app/oidc), or `LOGTO_ENDPOINT` (issuer = `${LOGTO_ENDPOINT}/oidc`)
 * - `AUDIENCE`: the API resource indicator. Default: https://shopping.api
 * - `JWKS_URI`: optional; default from the issuer's discovery document
 * - `PORT` (default 3000), `HOST` (default 127.0.0.1)
 */
export interface ApiConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUri?: string;
  readonly port: number;
  readonly host: string;
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
  return {
    issuer,
    audience: env.AUDIENCE?.trim() || 'https://shopping.api',
    ...(jwksUri ? { jwksUri } : {}),
    port,
    host: env.HOST?.trim() || '127.0.0.1',
  };
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
  });
}

/** Runs `serve(configFromEnv())` when the file is the program, exiting clearly on bad config. */
export function runIfMain(moduleUrl: string, serve: (config: ApiConfig) => Promise<unknown>): void {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  Promise.resolve()
    .then(() => serve(configFromEnv()))
    .catch((error: unknown) => {
      console.error(error instanceof ConfigError ? error.message : error);
      process.exit(1);
    });
}
