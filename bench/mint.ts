/**
 * Fast minting of many distinct, valid, Logto-shaped access tokens with node:crypto (no jose), on
 * the libuv thread pool (both cores), for the benchmarks that must never send a token twice.
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AUDIENCE, ISSUER } from './fixtures.ts';

export type MintAlg = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'PS256' | 'EdDSA';

export interface MintKey {
  readonly alg: MintAlg;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly jwk: Record<string, unknown>;
}

const HASH: Record<MintAlg, string | null> = {
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
  RS256: 'sha256',
  PS256: 'sha256',
  EdDSA: null,
};

export function mintKey(alg: MintAlg, kid = `mint-${alg.toLowerCase()}`): MintKey {
  const { privateKey } =
    alg === 'RS256' || alg === 'PS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: CURVE[alg] as string });
  const jwk = { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, jwk };
}

const CURVE: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
// PS256: PSS padding, salt length = hash length (RFC 7518 §3.5).
const PSS = { padding: 6, saltLength: 32 };

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
            { key: key.privateKey, dsaEncoding: 'ieee-p1363', ...(key.alg === 'PS256' ? PSS : {}) },
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
