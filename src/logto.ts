import type { VerifierOptions } from './options.ts';

/** Options of the {@link logto} preset: a Logto endpoint instead of issuer and JWKS URLs. */
export interface LogtoOptions extends Omit<VerifierOptions, 'issuer' | 'jwksUri'> {
  /** The tenant endpoint, e.g. `https://your-tenant.logto.app` (no `/oidc`). */
  readonly endpoint: string;
  /**
   * The tenant's custom domain(s), e.g. `auth.example.com` or `https://auth.example.com`. Tokens
   * requested through a custom domain carry `https://<domain>/oidc` as issuer: both are accepted.
   */
  readonly customDomains?: readonly string[];
}

/** The algorithms Logto signs with: ES384 by default; RSA and P-256/P-521 after a rotation. */
const LOGTO_ALGORITHMS = ['ES384', 'ES256', 'ES512', 'RS256', 'RS384', 'RS512'] as const;

/**
 * Verifier options for a Logto tenant: issuer `${endpoint}/oidc` (plus one per custom domain),
 * JWKS `${endpoint}/oidc/jwks`, the strict RFC 9068 profile and Logto's algorithms. Everything else
 * passes through.
 *
 * @example
 * ```ts
 * const verifier = createVerifier(
 *   logto({ endpoint: 'https://your-tenant.logto.app', audience: 'https://shopping.api' }),
 * );
 * ```
 */
export function logto(options: LogtoOptions): VerifierOptions {
  const { endpoint, customDomains = [], ...rest } = options;
  if (typeof endpoint !== 'string' || !URL.canParse(endpoint)) {
    throw new TypeError('resource-guard: `endpoint` must be the Logto endpoint URL');
  }
  const base = endpoint.replace(/\/+$/, '');
  if (base.endsWith('/oidc')) {
    throw new TypeError('resource-guard: `endpoint` is the Logto endpoint without `/oidc`');
  }
  const custom = customDomains.map((domain) => {
    const url = new URL(/^https?:\/\//.test(domain) ? domain : `https://${domain}`);
    return `${url.origin}/oidc`;
  });
  return {
    algorithms: [...LOGTO_ALGORITHMS],
    strict: true,
    ...rest,
    issuer: [`${base}/oidc`, ...custom],
    jwksUri: `${base}/oidc/jwks`,
  };
}
