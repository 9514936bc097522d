/**
 * Fast minting of many distinct, valid, Logto-shaped access tokens with node:crypto (no jose), on
 * the libuv thread pool (both cores), for the benchmarks that must never send a token twice.
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AUDIENCE, ISSUER } from './fixtures.ts';

export type MintAlg = 'ES256' | 'ES384' | 'RS256' | 'EdDSA';

export interface MintKey {
  readonly alg: MintAlg;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly jwk: Record<string, unknown>;
}

const HASH: Record<MintAlg, string | null> = {
  ES256: 'sha256',
  ES384: 'sha384',
  RS256: 'sha256',
  EdDSA: null,
};

export function mintKey(alg: MintAlg, kid = `mint-${alg.toLowerCase()}`): MintKey {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' });
  const jwk = { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, jwk };
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
let serial = 0;

/** `count` tokens, each with its own jti (so each is a first sighting), valid for an hour. */
export async function mintTokens(
  key: MintKey,
  count: number,
  scope = 'read:products write:products',
): Promise<string[]> {
  const header = encode({ alg: key.alg, typ: 'at+jwt', kid: key.kid });
  const now = Math.floor(Date.now() / 1000);
  const out: string[] = new Array<string>(count);
  const batch = 256;
  for (let start = 0; start < count; start += batch) {
    const jobs: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + batch); i++) {
      const payload = encode({
        scope,
        client_id: 'bench-app',
        jti: `bench-${process.pid}-${serial++}`,
        sub: 'bench-app',
        iss: ISSUER,
        aud: AUDIENCE,
        iat: now,
        exp: now + 3600,
      });
      const input = `${header}.${payload}`;
      jobs.push(
        new Promise<void>((resolve, reject) =>
          sign(
            HASH[key.alg],
            Buffer.from(input),
            { key: key.privateKey, dsaEncoding: 'ieee-p1363' },
            (error, signature) => {
              if (error) return reject(error);
              out[i] = `${input}.${signature.toString('base64url')}`;
              resolve();
            },
          ),
        ),
      );
    }
    await Promise.all(jobs);
  }
  return out;
}
