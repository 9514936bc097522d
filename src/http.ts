import type { AuthError } from './errors.ts';

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
  return new Response(JSON.stringify(error.body), {
    status: error.status,
    headers: { ...error.headers, 'content-type': 'application/json' },
  });
}
