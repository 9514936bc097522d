/** Keys, tokens and a JWKS server on loopback, shared by the benchmarks. */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';

export const ISSUER = 'https://bench.example.test/oidc';
export const AUDIENCE = 'https://shopping.api';
export const ALGORITHMS = ['ES384', 'RS256', 'ES256', 'EdDSA'] as const;
export type BenchAlg = (typeof ALGORITHMS)[number];

export interface BenchKey {
  readonly alg: BenchAlg;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly jwk: JWK;
}

export async function benchKey(alg: BenchAlg): Promise<BenchKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const exported = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(exported);
  return { alg, kid, privateKey, publicKey, jwk: { ...exported, kid, alg, use: 'sig' } };
}

let serial = 0;

/** A Logto-shaped M2M access token, valid for an hour. */
export function benchToken(
  key: BenchKey,
  scope = 'read:products write:products',
  extra: Record<string, unknown> = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...extra, scope, client_id: 'bench-app' })
    .setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid })
    .setJti(`bench-${process.pid}-${serial++}`)
    .setSubject('bench-app')
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(key.privateKey);
}

export async function jwksServer(keys: JWK[]): Promise<{ url: string; server: Server }> {
  const body = JSON.stringify({ keys });
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, server };
}
