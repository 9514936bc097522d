import type { VerifierOptions } from './options.ts';
import type { Covers } from './option-checks.ts';
import { configError, ownData, resolveLevel } from './option-checks.ts';
import { isLoopback } from './fetch-json.ts';
import { OPTION_RULES } from './option-rules.ts';

/** Options of the {@link logto} preset: a Logto endpoint instead of issuer and JWKS URLs. */
export interface LogtoOptions extends Omit<VerifierOptions, 'issuer' | 'jwksUri'> {
  /** The tenant endpoint, e.g. `https://your-tenant.logto.app` (no `/oidc`). */
  readonly endpoint: string;
  /**
   * The tenant's custom domain(s), an array of host names or origins, e.g. `['auth.example.com']`
   * or `['https://auth.example.com']`. Tokens requested through a custom domain carry
   * `https://<domain>/oidc` as issuer: both are accepted. Default: none.
   */
  readonly customDomains?: readonly string[];
}

// A compile error when an option has no rule, or a rule no option.
const _everyOptionHasARule: Covers<typeof OPTION_RULES.logto.rules, LogtoOptions> = true;

/** The algorithms Logto signs with: ES384 by default; RSA and P-256/P-521 after a rotation. */
const LOGTO_ALGORITHMS = ['ES384', 'ES256', 'ES512', 'RS256', 'RS384', 'RS512'] as const;

const LOGTO_OPTION_NAMES = Object.freeze(Object.keys(OPTION_RULES.logto.rules));

/**
 * Verifier options for a Logto tenant: issuer `${endpoint}/oidc` (plus one per custom domain),
 * JWKS `${endpoint}/oidc/jwks` (unless `jwks` gives static keys), the strict RFC 9068 profile and
 * Logto's algorithms. Everything else passes through. Options are checked here as `createVerifier`
 * checks them: `issuer` and `jwksUri` are refused (they come from `endpoint`), and so is any
 * unknown key.
 *
 * @example
 * ```ts
 * const verifier = createVerifier(
 *   logto({ endpoint: 'https://your-tenant.logto.app', audience: 'https://shopping.api' }),
 * );
 * ```
 */
export function logto(options: LogtoOptions): VerifierOptions {
  // Each member read once, non-enumerable ones included: what is checked is what is passed on.
  const given = ownData(options, LOGTO_OPTION_NAMES);
  const { endpoint, customDomains } = resolveLevel(given ?? options, OPTION_RULES.logto);
  // As Logto writes its issuer: the host lower-cased, no default port, no trailing slash.
  const url = new URL(endpoint);
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  const custom = customDomains.map((domain) => {
    const url = new URL(/^https?:\/\//i.test(domain) ? domain : `https://${domain}`);
    return `${url.origin}/oidc`;
  });
  const fetched = given?.jwks === undefined;
  if (
    fetched &&
    url.protocol === 'http:' &&
    !isLoopback(url) &&
    custom.some((i) => i.startsWith('https:'))
  ) {
    // The keys come from the endpoint: over plain HTTP they could be swapped in transit.
    configError(
      'endpoint',
      'must use https when a custom domain does: the keys are fetched from it (http is allowed on loopback)',
    );
  }
  // Pass through what the caller set (createVerifier checks it again and fills the defaults).
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(given ?? {})) {
    if (key !== 'endpoint' && key !== 'customDomains' && value !== undefined) rest[key] = value;
  }
  return {
    algorithms: [...LOGTO_ALGORITHMS],
    strict: true,
    ...(rest as Omit<LogtoOptions, 'endpoint' | 'customDomains'>),
    issuer: [`${base}/oidc`, ...custom],
    // Static keys (`jwks`, no network) replace the tenant's JWKS.
    ...(fetched ? { jwksUri: `${base}/oidc/jwks` } : {}),
  };
}
