export { createVerifier } from './verifier.ts';
export type { AuthInfo, Guard, RejectionEvent, Verifier } from './verifier.ts';
export { AuthError } from './errors.ts';
export type {
  AuthErrorBody,
  AuthErrorCode,
  ChallengeParams,
  RejectionReason,
} from './errors.ts';
export { DEFAULT_ALGORITHMS } from './options.ts';
export type { Algorithm, VerifierOptions } from './options.ts';
export type { AccessTokenClaims, Requirements } from './claims.ts';
export type { KeySetOptions } from './key-set.ts';
export { KeySourceError } from './fetch-json.ts';
export type { KeySourceErrorCode } from './fetch-json.ts';
export type { HeadersGetter, HeaderValue, RequestLike } from './request.ts';
export { authErrorResponse, sendAuthError } from './http.ts';
export type { ServerResponseLike } from './http.ts';
