import type { AuthError } from './errors.ts';
import { isMetadataRequest, RESOURCE_METADATA_HEADERS } from './resource-metadata.ts';
import type { ResourceMetadata } from './types.ts';

export { RESOURCE_METADATA_HEADERS } from './resource-metadata.ts';

/** The part of a node `ServerResponse` that {@link sendAuthError} uses. */
export interface ServerResponseLike {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: string): unknown;
}

/**
 * Writes an {@link AuthError} to a node `ServerResponse`: its status, `WWW-Authenticate` (or
 * `Retry-After`) and a JSON body `{ error, error_description }`.
 *
 * @example
 * ```ts
 * http.createServer(async (req, res) => {
 *   try {
 *     const auth = await verifier.authenticate(req, { scopes: ['read:products'] });
 *     res.end(JSON.stringify({ hello: auth.clientId }));
 *   } catch (error) {
 *     if (error instanceof AuthError) return sendAuthError(res, error);
 *     throw error;
 *   }
 * });
 * ```
 */
export function sendAuthError(res: ServerResponseLike, error: AuthError): void {
  res.writeHead(error.status, { ...error.headers, 'content-type': 'application/json' });
  res.end(JSON.stringify(error.body));
}

/**
 * Turns an {@link AuthError} into a Web `Response`, for Web-standard handlers (Hono, Bun, Deno,
 * Next.js route handlers).
 *
 * @example
 * ```ts
 * export async function GET(request: Request) {
 *   try {
 *     const auth = await verifier.authenticate(request, { scopes: ['read:products'] });
 *     return Response.json({ products: [], client: auth.clientId });
 *   } catch (error) {
 *     if (error instanceof AuthError) return authErrorResponse(error);
 *     throw error;
 *   }
 * }
 * ```
 */
export function authErrorResponse(error: AuthError): Response {
  return error.getResponse();
}

/**
 * Answers a node request for the RFC 9728 metadata document: `true` when `path` is the metadata
 * path and the answer was written, `false` otherwise (the request is yours).
 *
 * @example
 * ```ts
 * if (verifier.resourceMetadata && sendResourceMetadata(req, res, verifier.resourceMetadata)) return;
 * ```
 */
export function sendResourceMetadata(
  req: { method?: string | undefined; url?: string | undefined },
  res: ServerResponseLike,
  metadata: ResourceMetadata,
): boolean {
  if (!isMetadataRequest(metadata, req.method, req.url)) return false;
  res.writeHead(200, { ...RESOURCE_METADATA_HEADERS });
  res.end(JSON.stringify(metadata.document));
  return true;
}
