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
