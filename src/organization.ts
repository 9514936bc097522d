/**
 * Every organization rule in one place. Logto issues three shapes of token:
 * - global API resource: `aud` = the API, no organization; its scopes come from global roles;
 * - organization-level API resource: `aud` = the API AND `organization_id`; its scopes come from
 *   a role IN that organization, so it must not open routes that are not about that organization;
 * - organization token: `aud = urn:logto:organization:<id>` (accepted only with the verifier's
 *   `organizations: true`); its scopes are organization permissions, not API scopes.
 * A token of either organization-scoped shape opens a route only when the route names its
 * organization, or says `anyOrganization: true`. An empty organization matches nothing.
 */
import { Rejection } from './errors.ts';
import type { AuthInfo, Requirements } from './types.ts';

/** Logto's organization token audience: `urn:logto:organization:<id>`. */
export const ORGANIZATION_AUDIENCE = 'urn:logto:organization:';

/** `urn:logto:organization:<id>` with a non-empty id. */
export function isOrganizationAudience(aud: string): boolean {
  return aud.startsWith(ORGANIZATION_AUDIENCE) && aud.length > ORGANIZATION_AUDIENCE.length;
}

/**
 * The organization a token is for: its `organization_id`, or its organization audience. A token
 * that names two organizations (two organization audiences, or an `organization_id` that differs
 * from its organization audience) is refused as `invalid_claim`: whichever the route checked, the
 * handler would read the same `auth.organizationId`.
 */
export function tokenOrganization(
  organizationId: unknown,
  audience: readonly string[],
): string | undefined {
  let fromAudience: string | undefined;
  for (const aud of audience) {
    if (!isOrganizationAudience(aud)) continue;
    const id = aud.slice(ORGANIZATION_AUDIENCE.length);
    if (fromAudience !== undefined && fromAudience !== id) {
      throw new Rejection('invalid_claim', { claim: 'aud', problem: 'two organizations' });
    }
    fromAudience = id;
  }
  if (typeof organizationId !== 'string') return fromAudience;
  if (fromAudience !== undefined && fromAudience !== organizationId) {
    throw new Rejection('invalid_claim', {
      claim: 'organization_id',
      problem: 'differs from the organization audience',
    });
  }
  return organizationId;
}

/**
 * A verified token against the route's organization rule:
 * - the route names organization X: an API token must carry `organization_id === X`; an
 *   organization token must have the audience `urn:logto:organization:X`;
 * - the route names none: an organization-scoped token is refused (`organization_token`) unless
 *   the route says `anyOrganization: true`; an organization token without our API in its
 *   audience is refused (`audience_mismatch`) unless likewise.
 */
export function checkOrganization(
  auth: AuthInfo,
  requirements: Requirements,
  audiences: ReadonlySet<string>,
): void {
  const { organization } = requirements;
  const tokenOrg = auth.organizationId;
  if (organization === undefined) {
    const api = forApi(auth.audience, audiences);
    if (tokenOrg === undefined && api) return;
    if (tokenOrg !== undefined && tokenOrg !== '' && requirements.anyOrganization === true) return;
    if (!api) {
      throw new Rejection('audience_mismatch', { expected: [...audiences], actual: auth.audience });
    }
    throw new Rejection('organization_token', {
      organization: tokenOrg,
      hint: 'this route names no organization; set anyOrganization: true on it to accept organization-scoped tokens',
    });
  }
  const matches =
    organization !== '' &&
    (forApi(auth.audience, audiences)
      ? auth.claims.organization_id === organization
      : auth.audience.includes(`${ORGANIZATION_AUDIENCE}${organization}`));
  if (!matches) {
    throw new Rejection('organization_mismatch', {
      expected: organization,
      actual: tokenOrg ?? null,
    });
  }
}

/**
 * Whether the token's audience names this API. An indexed loop: no closure, and no iterator (which
 * allocates on a frozen array) on the per-request path.
 */
function forApi(audience: readonly string[], audiences: ReadonlySet<string>): boolean {
  for (let i = 0; i < audience.length; i++) if (audiences.has(audience[i] as string)) return true;
  return false;
}
