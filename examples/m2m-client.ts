/**
 * The machine-to-machine client side, as Logto's M2M guide shows it: POST `<endpoint>/oidc/token`
 * with the app's id and secret as Basic credentials, `grant_type=client_credentials`, `resource`
 * and `scope`; then call the API with `Authorization: Bearer <token>`. The token is reused until
 * shortly before `expires_in`, concurrent callers share one token request, and a 401 from the API
 * gets one retry with a fresh token.
 *
 * With a DPoP key (RFC 9449; `DPOP=1`), the token request carries a proof, so the token is bound to
 * the key (`cnf.jkt`), and every API call sends `Authorization: DPoP <token>` with a fresh proof
 * for that method and URL. A server nonce (`use_dpop_nonce` and `DPoP-Nonce`) is picked up and the
 * call retried once.
 *
 *   LOGTO_ENDPOINT=http://127.0.0.1:3001 APP_ID=... APP_SECRET=... [DPOP=1] npm run example:m2m
 */
import { pathToFileURL } from 'node:url';
import { createProof, generateProofKey } from './dpop-proof.ts';
import type { ProofKey } from './dpop-proof.ts';

export interface M2MClientOptions {
  /** `${LOGTO_ENDPOINT}/oidc/token`. */
  readonly tokenEndpoint: string;
  readonly appId: string;
  readonly appSecret: string;
  /** The API resource indicator, e.g. https://shopping.api. */
  readonly resource: string;
  /** Space-separated permissions, e.g. `read:products`. */
  readonly scope?: string;
  /** Refresh this many seconds before the token expires. Default: 60 (or a tenth of its life). */
  readonly refreshMargin?: number;
  /** A DPoP key: tokens bound to it, proofs with every call. Default: Bearer tokens. */
  readonly dpop?: ProofKey;
}

export interface M2MClient {
  /** A valid access token, from the cache or a new token request. */
  getToken(): Promise<string>;
  /** `fetch` with the bearer token; one retry with a fresh token on a 401. */
  fetch(url: string | URL, init?: RequestInit): Promise<Response>;
  /** Token requests made so far. */
  readonly tokenRequests: number;
}

export function createM2MClient(options: M2MClientOptions): M2MClient {
  const credentials = Buffer.from(`${options.appId}:${options.appSecret}`).toString('base64');
  let cached: { token: string; refreshAt: number } | undefined;
  let inflight: Promise<string> | undefined;
  let tokenRequests = 0;
  const { dpop } = options;
  /** The last `DPoP-Nonce` of each server (the issuer's and the API's differ). */
  const nonces = new Map<string, string>();
  const proofFor = (method: string, url: string | URL, accessToken?: string) => {
    const nonce = nonces.get(new URL(url).origin);
    return createProof(dpop as ProofKey, {
      method,
      url,
      ...(accessToken === undefined ? {} : { accessToken }),
      ...(nonce === undefined ? {} : { nonce }),
    });
  };
  /** Remembers a server's nonce; `true` when the answer asked for one (`use_dpop_nonce`). */
  const tookNonce = (url: string | URL, response: Response): boolean => {
    const nonce = response.headers.get('dpop-nonce');
    if (nonce !== null) nonces.set(new URL(url).origin, nonce);
    const challenge = response.headers.get('www-authenticate') ?? '';
    return nonce !== null && (challenge.includes('use_dpop_nonce') || response.status === 400);
  };

  async function requestToken(): Promise<string> {
    tokenRequests++;
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      resource: options.resource,
    });
    if (options.scope) body.set('scope', options.scope);
    const post = async () =>
      fetch(options.tokenEndpoint, {
        method: 'POST',
        headers: {
          authorization: `Basic ${credentials}`,
          'content-type': 'application/x-www-form-urlencoded',
          ...(dpop && { dpop: await proofFor('POST', options.tokenEndpoint) }),
        },
        body,
      });
    let response = await post();
    if (dpop && tookNonce(options.tokenEndpoint, response)) {
      await response.body?.cancel();
      response = await post();
    }
    const json = (await response.json().catch(() => ({}))) as {
      access_token?: string;
      expires_in?: number;
      error?: string;
    };
    if (!response.ok || typeof json.access_token !== 'string') {
      throw new Error(`token request failed: HTTP ${response.status} ${json.error ?? ''}`.trim());
    }
    const lifetime = typeof json.expires_in === 'number' ? json.expires_in : 300;
    const margin = Math.min(options.refreshMargin ?? 60, lifetime / 10);
    cached = { token: json.access_token, refreshAt: Date.now() + (lifetime - margin) * 1000 };
    return json.access_token;
  }

  async function getToken(): Promise<string> {
    if (cached !== undefined && Date.now() < cached.refreshAt) return cached.token;
    inflight ??= requestToken().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function call(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const method = init.method ?? 'GET';
    const send = async (token: string) =>
      fetch(url, {
        ...init,
        headers: {
          ...(init.headers as Record<string, string>),
          ...(dpop
            ? { authorization: `DPoP ${token}`, dpop: await proofFor(method, url, token) }
            : { authorization: `Bearer ${token}` }),
        },
      });
    let first = await send(await getToken());
    if (first.status !== 401) return first;
    if (dpop && tookNonce(url, first)) {
      // The API wants its nonce in the proof: the same token, a new proof.
      await first.body?.cancel();
      first = await send(await getToken());
      if (first.status !== 401) return first;
    }
    // The API refused the token (revoked, keys rotated, clock skew): one retry with a fresh one.
    await first.body?.cancel();
    cached = undefined;
    return send(await getToken());
  }

  return {
    getToken,
    fetch: call,
    get tokenRequests() {
      return tokenRequests;
    },
  };
}

async function main() {
  const { LOGTO_ENDPOINT, APP_ID, APP_SECRET } = process.env;
  if (!LOGTO_ENDPOINT || !APP_ID || !APP_SECRET) {
    console.error(
      'Set LOGTO_ENDPOINT, APP_ID and APP_SECRET (npm start prints them for the demo apps).',
    );
    process.exit(1);
  }
  const client = createM2MClient({
    tokenEndpoint: `${LOGTO_ENDPOINT.replace(/\/+$/, '')}/oidc/token`,
    appId: APP_ID,
    appSecret: APP_SECRET,
    resource: process.env.RESOURCE ?? 'https://shopping.api',
    scope: process.env.SCOPE ?? 'read:products',
    ...(process.env.DPOP ? { dpop: await generateProofKey() } : {}),
  });
  const api = process.env.API_URL ?? 'http://127.0.0.1:3000';
  for (const path of ['/products', '/products/p-1']) {
    const response = await client.fetch(`${api}${path}`);
    console.log(`GET ${path} → ${response.status}`, await response.json());
  }
  console.log(
    `token requests: ${client.tokenRequests} (one ${process.env.DPOP ? 'DPoP-bound' : 'Bearer'} token, reused)`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
