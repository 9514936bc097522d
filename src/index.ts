export { createVerifier } from './verifier.ts';
export type {
  AccessTokenClaims,
  CustomClaims,
  AuthInfo,
  Awaitable,
  Guard,
  HeadersGetter,
  HeaderValue,
  KeyHealth,
  KeyState,
  RequestContext,
  RequestLike,
  OptionalRequirements,
  RequestTarget,
  Requirements,
  RequestRequirements,
  Verifier,
} from './types.ts';
export { AuthError, KeySourceError, WarmUpError } from './errors.ts';
export type {
  AuthErrorBody,
  AuthErrorCode,
  ChallengeParams,
  KeySourceErrorCode,
  RejectionEvent,
  RejectionReason,
} from './errors.ts';
export { DEFAULT_ALGORITHMS } from './options.ts';
export type { Algorithm, VerifierOptions } from './options.ts';
export { logto } from './logto.ts';
export type { LogtoOptions } from './logto.ts';
export type { KeySetOptions } from './key-set.ts';
export { MemoryReplayStore } from './replay-store.ts';
export type { MemoryReplayStoreOptions, ReplayStore } from './replay-store.ts';
export type { DpopMode, DpopNonceOptions, DpopOptions } from './dpop-options.ts';
export type { TokenCacheOptions } from './token-cache.ts';
export {
  authErrorResponse,
  RESOURCE_METADATA_HEADERS,
  sendAuthError,
  sendResourceMetadata,
} from './http.ts';
export type { ResourceMetadata, ResourceMetadataOptions } from './resource-metadata.ts';
export type { ServerResponseLike } from './http.ts';
export { CHANNELS } from './diagnostics.ts';
export type {
  CacheEvictEvent,
  DecisionEvent,
  KeysFetchEvent,
  KeysStateEvent,
} from './diagnostics.ts';
