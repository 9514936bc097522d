import type { AuthInfo } from './verifier.ts';
import { Rejection } from './errors.ts';

/** Logto's organization token audience: `urn:logto:organization:<id>`. */
export const ORGANIZATION_AUDIENCE = 'urn:logto:organization:';

/** What a route needs from a verified token. Checked on every request, cached token or not. */
export interface Requirements {
  /** Scopes the token must carry, compared exactly (never by substring). Default: none. */
  readonly scopes?: readonly string[];
  /** `true`: any one of `scopes` is enough. Default: `false` (all of them). */
  readonly any?: boolean;
  /** `true`: only machine-to-machine tokens (`sub === client_id`). Default: `false`. */
  readonly machine?: boolean;
  /**
   * The organization this request is about (from a route parameter or header: the adapters'
   * `organization` option). The token must be for it: a Logto organization token
   * (`aud = urn:logto:organization:<id>`, with the verifier's `organizations: true`), or a token
   * for an organization-level API resource whose `organization_id` equals it. Default: none.
   */
  readonly organization?: string;
  /**
   * `true`: this route, which names no organization, also accepts organization-scoped tokens
   * (an `organization_id` claim, or an organization audience) of ANY organization; the handler
   * must then scope its data by `auth.organizationId`. Default: `false` — such tokens are refused
   * on routes that name no organization (their scopes come from a role in one organization).
   */
  readonly anyOrganization?: boolean;
}

/** The organization a token is for: its `organization_id`, or its organization audience. */
export function tokenOrganization(
  organizationId: unknown,
  audience: readonly string[],
): string | undefined {
  if (typeof organizationId === 'string') return organizationId;
  const urn = audience.find((aud) => aud.startsWith(ORGANIZATION_AUDIENCE));
  return urn?.slice(ORGANIZATION_AUDIENCE.length);
}

/**
 * Route requirements against a verified token: the organization first (an organization token is
 * valid only where the route names its organization), then machine-only, then scopes.
 */
export function checkRequirements(
  auth: AuthInfo,
  requirements: Requirements,
  audiences: ReadonlySet<string>,
): void {
  const forApi = auth.audience.some((aud) => audiences.has(aud));
  const { organization } = requirements;
  if (organization === undefined) {
    // An organization-only token (no API audience) opens no route that names no organization.
    if (!forApi)
      throw new Rejection('audience_mismatch', { expected: [...audiences], actual: auth.audience });
  } else if (
    forApi
      ? auth.claims.organization_id !== organization
      : !auth.audience.includes(`${ORGANIZATION_AUDIENCE}${organization}`)
  ) {
    throw new Rejection('organization_mismatch', {
      expected: organization,
      actual: auth.organizationId ?? null,
    });
  }
  if (requirements.machine === true && !auth.isMachine) {
    throw new Rejection('machine_required', {
      subject: auth.subject,
      clientId: auth.clientId ?? null,
    });
  }
  checkScopes(auth.scopes, requirements);
}

/** Exact scope matching: all-of, or any-of with `any`. */
export function checkScopes(granted: readonly string[], requirements: Requirements): void {
  const required = requirements.scopes;
  if (required === undefined || required.length === 0) return;
  // A handful of scopes: `includes` (exact string equality) beats building a Set per request.
  const ok = requirements.any
    ? required.some((s) => granted.includes(s))
    : required.every((s) => granted.includes(s));
  if (!ok) {
    throw new Rejection('insufficient_scope', {
      required: [...required],
      granted: [...granted],
      any: requirements.any === true,
    });
  }
}
