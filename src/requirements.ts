import { Rejection } from './errors.ts';
import { checkOrganization } from './organization.ts';
import type { AuthInfo, Requirements } from './types.ts';

export type { Requirements } from './types.ts';

/**
 * A requirement value given per call that is not one (see `REQUEST_REQUIREMENTS`): a scope no
 * token is granted, a claim value no claim equals or includes. An object of this module's own, so
 * no token's value (parsed JSON) is ever identical to it; shown as `null` in details.
 */
export const UNMATCHABLE = Object.freeze(Object.create(null)) as unknown as string;
const shown = (value: unknown) => (value === UNMATCHABLE ? null : value);

/**
 * Route requirements against a verified token, on every request (cached token or not): the
 * organization rule first, then machine-only, scopes, claim values, and last your own `checks`.
 * Synchronous (`undefined`) unless a check answers with a promise.
 */
export function checkRequirements(
  auth: AuthInfo,
  requirements: Requirements,
  audiences: ReadonlySet<string>,
  checkTimeout = 2,
): Promise<void> | undefined {
  checkOrganization(auth, requirements, audiences);
  if (requirements.machine === true && !auth.isMachine) {
    throw new Rejection('machine_required', {
      subject: auth.subject,
      clientId: auth.clientId ?? null,
    });
  }
  checkScopes(auth.scopes, requirements);
  if (requirements.claimEquals !== undefined) checkClaimEquals(auth, requirements.claimEquals);
  if (requirements.claimIncludes !== undefined) {
    checkClaimIncludes(auth, requirements.claimIncludes);
  }
  return requirements.checks === undefined
    ? undefined
    : runChecks(auth, requirements.checks, checkTimeout * 1000);
}

function checkClaimEquals(
  auth: AuthInfo,
  rules: Readonly<Record<string, string | number | boolean>>,
): void {
  for (const claim in rules) {
    const actual = Object.hasOwn(auth.claims, claim) ? auth.claims[claim] : undefined;
    if (actual !== rules[claim]) {
      throw new Rejection('claim_mismatch', { claim, expected: shown(rules[claim]), actual });
    }
  }
}

function checkClaimIncludes(
  auth: AuthInfo,
  rules: Readonly<Record<string, readonly string[]>>,
): void {
  for (const claim in rules) {
    const actual = Object.hasOwn(auth.claims, claim) ? auth.claims[claim] : undefined;
    const values =
      typeof actual === 'string'
        ? actual.split(' ')
        : Array.isArray(actual)
          ? actual.filter((v): v is string => typeof v === 'string')
          : [];
    const missing = (rules[claim] as readonly string[]).filter((v) => !values.includes(v));
    if (missing.length > 0) {
      throw new Rejection('claim_mismatch', { claim, missing: missing.map(shown) });
    }
  }
}

/** Your checks, in order; the first that says no refuses. A throwing check is your bug: rethrown. */
function runChecks(
  auth: AuthInfo,
  checks: NonNullable<Requirements['checks']>,
  timeoutMs: number,
): Promise<void> | undefined {
  const names = Object.keys(checks);
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const answer = (checks[name] as (auth: AuthInfo) => unknown)(auth);
    if (answer instanceof Promise) {
      return bounded(answer, name, timeoutMs).then((ok) => rest(ok, name, i));
    }
    if (answer !== true) throw new Rejection('check_failed', { check: name });
  }
  return undefined;

  function rest(ok: unknown, name: string, i: number): Promise<void> | undefined {
    if (ok !== true) throw new Rejection('check_failed', { check: name });
    const remaining = Object.fromEntries(names.slice(i + 1).map((n) => [n, checks[n]]));
    return names.length > i + 1
      ? runChecks(auth, remaining as typeof checks, timeoutMs)
      : undefined;
  }
}

/** A check's answer within `checkTimeout`; past it, `check_unavailable` (503), never a hang. */
function bounded(answer: Promise<unknown>, name: string, timeoutMs: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Rejection('check_unavailable', { check: name, timeoutMs }, undefined, 5)),
      timeoutMs,
    );
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/** Exact scope matching: all-of, or any-of with `any`. */
export function checkScopes(granted: readonly string[], requirements: Requirements): void {
  const required = requirements.scopes;
  if (required === undefined) {
    // `any` over no list at all (a route table entry whose `scopes` went missing) is any one of
    // none, as `scopes: []` is: it admits no token.
    if (requirements.any !== true) return;
    throw new Rejection('insufficient_scope', { required: [], granted: [...granted], any: true });
  }
  // A handful of scopes: `includes` (exact string equality) beats building a Set per request; an
  // indexed loop, not a callback or an iterator (which allocates on a frozen array), on this
  // every-request path. All of none is met; any one of none never is (a list built at run time
  // that comes out empty must not open an `any` route to every token).
  const any = requirements.any === true;
  let ok = !any;
  for (let i = 0; i < required.length; i++) {
    if (granted.includes(required[i] as string) === any) {
      ok = any;
      break;
    }
  }
  if (!ok) {
    throw new Rejection('insufficient_scope', {
      required: required.map(shown),
      granted: [...granted],
      any,
    });
  }
}
