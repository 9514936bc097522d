import { Rejection } from './errors.ts';
import { checkOrganization } from './organization.ts';
import type { AuthInfo, Requirements } from './types.ts';

export type { Requirements } from './types.ts';

/**
 * Route requirements against a verified token, on every request (cached token or not): the
 * organization rule first, then machine-only, then scopes.
 */
export function checkRequirements(
  auth: AuthInfo,
  requirements: Requirements,
  audiences: ReadonlySet<string>,
): void {
  checkOrganization(auth, requirements, audiences);
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
