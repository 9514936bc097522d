export { createVerifier } from './verifier.ts';
export type { AuthInfo, Guard, RejectionEvent, RequestContext, Verifier } from './verifier.ts';
export { AuthError } from './errors.ts';
export type { AuthErrorBody, AuthErrorCode, ChallengeParams, RejectionReason } from './errors.ts';
export { DEFAULT_ALGORITHMS } from './options.ts';
export type { Algorithm, VerifierOptions } from './options.ts';
export type { AccessTokenClaims } from './claims.ts';
export type { Requirements } from './requirements.ts';
export { logto } from './logto.ts';
export type { LogtoOptions } from './logto.ts';
export type { KeySetOptions } from './key-set.ts';
export type { TokenCacheOptions } from './token-cache.ts';
export { KeySourceError } from './fetch-json.ts';
export type { KeySourceErrorCode } from './fetch-json.ts';
export type { HeadersGetter, HeaderValue, RequestLike } from './request.ts';
export {
  authErrorResponse,
  RESOURCE_METADATA_HEADERS,
  sendAuthError,
  sendResourceMetadata,
} from './http.ts';
export type { ResourceMetadata, ResourceMetadataOptions } from './resource-metadata.ts';
export type { ServerResponseLike } from './http.ts';
