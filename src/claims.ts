import type { JWTPayload } from 'jose';
import { Rejection } from './errors.ts';
import { isOrganizationAudience } from './organization.ts';

export type { AccessTokenClaims } from './types.ts';

export interface ClaimRules {
  readonly issuers: ReadonlySet<string>;
  readonly audiences: ReadonlySet<string>;
  readonly clockTolerance: number;
  readonly maxTokenAge: number | undefined;
  /** Claims that must be present (always `iss sub aud exp`; strict adds `iat jti client_id`). */
  readonly requiredClaims: readonly string[];
}

/** RFC 8725 §3.8: the issuer, checked before any key is fetched. */
export function checkIssuer(payload: JWTPayload, issuers: ReadonlySet<string>): string {
  const { iss } = payload;
  if (typeof iss !== 'string') {
    throw iss === undefined
      ? new Rejection('missing_claim', { claim: 'iss' })
      : new Rejection('invalid_claim', { claim: 'iss', problem: 'not a string' });
  }
  if (!issuers.has(iss)) {
    throw new Rejection('issuer_mismatch', {
      expected: [...issuers],
      actual: iss,
      hint: issuerHint(iss, issuers),
    });
  }
  return iss;
}

function issuerHint(actual: string, issuers: ReadonlySet<string>): string | undefined {
  for (const expected of issuers) {
    if (expected.replace(/\/$/, '') === actual.replace(/\/$/, '')) {
      return 'the issuers differ only by a trailing slash; iss must match exactly';
    }
    if (`${actual.replace(/\/$/, '')}/oidc` === expected || `${expected}/oidc` === actual) {
      return 'a Logto issuer is the endpoint followed by /oidc';
    }
    const hint = urlHint(expected, actual);
    if (hint !== undefined) return hint;
  }
  return undefined;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * What tells two URLs apart when only one part does: the scheme (http vs https: a proxy that
 * terminates TLS, or an issuer configured with the wrong one), a loopback alias (`localhost` vs
 * `127.0.0.1`: Logto's `ENDPOINT` names the host the tokens carry), or the port.
 */
function urlHint(expected: string, actual: string): string | undefined {
  let a: URL;
  let b: URL;
  try {
    a = new URL(expected);
    b = new URL(actual);
  } catch {
    return undefined;
  }
  const rest = (url: URL) => `${url.pathname}${url.search}`;
  if (rest(a) !== rest(b)) return undefined;
  if (a.protocol !== b.protocol && a.hostname === b.hostname) {
    return `the issuers differ only in the scheme (${b.protocol.slice(0, -1)} in the token, ${a.protocol.slice(0, -1)} configured): configure the issuer exactly as the tokens name it`;
  }
  if (a.protocol !== b.protocol) return undefined;
  if (
    a.hostname !== b.hostname &&
    LOOPBACK_NAMES.has(a.hostname) &&
    LOOPBACK_NAMES.has(b.hostname) &&
    a.port === b.port
  ) {
    return `the issuers differ only in the loopback name (${b.hostname} in the token, ${a.hostname} configured): the token carries the host the issuer was configured with (Logto's ENDPOINT)`;
  }
  if (a.hostname === b.hostname && a.port !== b.port) {
    return 'the issuers differ only in the port';
  }
  return undefined;
}

/**
 * RFC 8707 / RFC 9068 §4: `aud` must contain one of our identifiers (exact match), or, with
 * `organizations`, a Logto organization audience (its organization is checked per route).
 */
export function checkAudience(
  payload: JWTPayload,
  audiences: ReadonlySet<string>,
  organizations = false,
): string[] {
  const { aud } = payload;
  const list = typeof aud === 'string' ? [aud] : aud;
  if (list === undefined) throw new Rejection('missing_claim', { claim: 'aud' });
  if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'string')) {
    throw new Rejection('invalid_claim', {
      claim: 'aud',
      problem: 'not a string or array of strings',
    });
  }
  const accepted = (a: string) => audiences.has(a) || (organizations && isOrganizationAudience(a));
  if (!list.some(accepted)) {
    throw new Rejection('audience_mismatch', { expected: [...audiences], actual: list });
  }
  return list;
}

const STRING_CLAIMS = ['sub', 'jti', 'client_id', 'scope', 'organization_id'] as const;
const TIME_CLAIMS = ['exp', 'nbf', 'iat'] as const;
const TYPED_CLAIMS: ReadonlySet<string> = new Set([...STRING_CLAIMS, ...TIME_CLAIMS]);

/**
 * After the signature: claim presence and types, then the time window with `clockTolerance`
 * (`exp` required, `nbf` honoured, `iat` not in the future, `maxTokenAge`).
 */
export function checkClaims(payload: JWTPayload, rules: ClaimRules, nowSeconds: number): void {
  for (const claim of rules.requiredClaims) {
    const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
    // A required claim that is `null` has no value: missing (the registered claims' own type
    // checks below refuse a null as `invalid_claim`).
    if (value === undefined || (value === null && !TYPED_CLAIMS.has(claim))) {
      throw new Rejection('missing_claim', { claim });
    }
  }
  for (const claim of STRING_CLAIMS) {
    const value = payload[claim];
    if (value !== undefined && typeof value !== 'string') {
      throw new Rejection('invalid_claim', { claim, problem: 'not a string' });
    }
  }
  for (const claim of TIME_CLAIMS) {
    const value = payload[claim];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
      throw new Rejection('invalid_claim', { claim, problem: 'not a finite NumericDate' });
    }
  }
  const { scp } = payload as { scp?: unknown };
  if (scp !== undefined && !(Array.isArray(scp) && scp.every((s) => typeof s === 'string'))) {
    throw new Rejection('invalid_claim', { claim: 'scp', problem: 'not an array of strings' });
  }

  checkLifetime(payload, rules, nowSeconds);
}

/**
 * A checked token's time window (`exp`, `nbf`, `iat` not in the future, `iat + maxTokenAge`) at
 * `nowSeconds`: checked at its verification, and again once the work that follows it has been
 * awaited (the `isRevoked` hook, `checks`, a DPoP replay insert: seconds at most), so that an
 * answer given after the token expired, or after the clock stepped back before its start, is the
 * refusal a verification started then would give.
 */
export function checkLifetime(payload: JWTPayload, rules: ClaimRules, nowSeconds: number): void {
  const tolerance = rules.clockTolerance;
  const { nbf, iat } = payload as { nbf?: number; iat?: number };
  checkExpiry(payload, rules, nowSeconds);
  // A start (`nbf`, `iat`) is judged against the whole second, as jose's clock reads: a fractional
  // NumericDate (RFC 7519 §2 allows them) is then refused whenever a cold jose refuses it, where
  // the fraction of a second already gone would let it in up to a second early. An end (`exp`,
  // `maxTokenAge`) is judged against the exact time, which is the stricter there.
  const whole = Math.floor(nowSeconds);
  if (nbf !== undefined && nbfAhead(nbf, whole, tolerance)) {
    throw new Rejection('not_yet_valid', { validInSeconds: Math.ceil(nbf - whole), nbf });
  }
  if (iat !== undefined && iatAhead(iat, whole, tolerance)) {
    throw new Rejection('issued_in_future', { secondsAhead: Math.ceil(iat - whole), iat });
  }
  checkAge(payload, rules, nowSeconds);
}

/** `nbf` still ahead at the whole second `whole`: jose's own comparison. */
const nbfAhead = (nbf: number, whole: number, tolerance: number) => nbf > whole + tolerance;

/**
 * `iat` in the future at the whole second `whole`, by our comparison or jose's (`now - iat <
 * -tolerance`, with `maxTokenAge`): with a fractional tolerance the two can round apart by an ulp,
 * and either one refusing refuses.
 */
const iatAhead = (iat: number, whole: number, tolerance: number) =>
  iat > whole + tolerance || whole - iat < -tolerance;

/**
 * The first whole second (in seconds) at which {@link checkLifetime} accepts the token's start
 * (`nbf`, `iat`) by the same comparisons; `-Infinity` with neither, `Infinity` where no second
 * is found (a NumericDate so large that adding one changes nothing).
 */
export function firstAcceptedSecond(
  claims: { readonly iat?: number | undefined; readonly nbf?: unknown },
  tolerance: number,
): number {
  const nbf = typeof claims.nbf === 'number' ? claims.nbf : undefined;
  const { iat } = claims;
  const ahead = (whole: number) =>
    (nbf !== undefined && nbfAhead(nbf, whole, tolerance)) ||
    (iat !== undefined && iatAhead(iat, whole, tolerance));
  let from = Math.ceil(Math.max(nbf ?? -Infinity, iat ?? -Infinity) - tolerance);
  for (let step = 0; step < 3 && ahead(from); step++) from += 1;
  return ahead(from) ? Infinity : from;
}

function checkExpiry(payload: JWTPayload, rules: ClaimRules, nowSeconds: number): void {
  const { exp } = payload as { exp: number };
  if (exp <= nowSeconds - rules.clockTolerance) {
    throw new Rejection('expired', { expiredSecondsAgo: Math.floor(nowSeconds - exp), exp });
  }
}

function checkAge(payload: JWTPayload, rules: ClaimRules, nowSeconds: number): void {
  const tolerance = rules.clockTolerance;
  const { iat } = payload as { iat?: number };
  if (rules.maxTokenAge !== undefined) {
    if (iat === undefined) throw new Rejection('missing_claim', { claim: 'iat' });
    const age = nowSeconds - iat;
    if (age - tolerance > rules.maxTokenAge) {
      throw new Rejection('token_too_old', {
        ageSeconds: Math.floor(age),
        maxTokenAge: rules.maxTokenAge,
      });
    }
  }
}

/** The granted scopes: `scope` (space-delimited, RFC 6749 §3.3) or else an `scp` array. */
export function grantedScopes(payload: JWTPayload): string[] {
  const { scope, scp } = payload as { scope?: unknown; scp?: unknown };
  if (typeof scope === 'string') return scope.split(' ').filter((s) => s !== '');
  if (Array.isArray(scp)) return scp.filter((s): s is string => typeof s === 'string' && s !== '');
  return [];
}
