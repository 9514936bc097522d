/**
 * The crypto route is chosen by capability: where node:crypto's verify cannot verify a known-good
 * signature the way resource-guard calls it (Cloudflare Workers with nodejs_compat refuses a
 * KeyObject in the options form), every key goes through jose and WebCrypto; and an environment
 * that cannot verify at all is a server fault (503), never "bad signature". Its own file: the
 * probe runs once per process (per test file here), before any other verification.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { RejectionEvent } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { startJwksServer } from './helpers/jwks-server.ts';
import { AUDIENCE, ISSUER, makeKey, mint } from './helpers/keys.ts';

afterEach(() => vi.restoreAllMocks());

describe('a runtime whose node:crypto verify refuses the KeyObject form (workerd, nodejs_compat)', () => {
  it('verifies valid tokens through WebCrypto and still refuses tampered ones', async () => {
    const nodeCrypto = process.getBuiltinModule('node:crypto');
    const refuse = vi.spyOn(nodeCrypto, 'verify').mockImplementation(() => {
      throw new TypeError('The "key" argument must be of type string or an instance of Buffer');
    });
    const [es, rs] = await Promise.all([makeKey('ES384'), makeKey('RS256')]);
    const jwks = await startJwksServer([es.jwk, rs.jwk]);
    try {
      const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url });
      for (const key of [es, rs]) {
        const token = await mint(key);
        expect(await outcome(verifier.verify(token))).toBe('ok');
        const tampered = `${token.slice(0, -4)}${token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
        expect(await outcome(verifier.verify(tampered))).toBe('401 bad_signature');
      }
      // The probe found the route broken once per family; later tokens skip node:crypto.
      const probes = refuse.mock.calls.length;
      await verifier.verify(await mint(es));
      expect(refuse.mock.calls.length).toBe(probes);
    } finally {
      await jwks.close();
    }
  });

  // ES256 here: a family the test above has not yet seen verify through jose.
  it('a runtime that cannot verify at all answers 503 crypto_unavailable, not 401', async () => {
    const nodeCrypto = process.getBuiltinModule('node:crypto');
    vi.spyOn(nodeCrypto, 'verify').mockImplementation(() => {
      throw new TypeError('not here');
    });
    vi.spyOn(crypto.subtle, 'verify').mockRejectedValue(
      new DOMException('Unrecognized algorithm name', 'NotSupportedError'),
    );
    const key = await makeKey('ES256');
    const jwks = await startJwksServer([key.jwk]);
    try {
      const events: RejectionEvent[] = [];
      const verifier = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: jwks.url,
        onRejected: (event) => events.push(event),
      });
      expect(await outcome(verifier.verify(await mint(key)))).toBe('503 crypto_unavailable');
      expect(events[0]?.details).toMatchObject({ alg: 'ES256' });
      expect(events[0]?.cause).toBeDefined();
    } finally {
      await jwks.close();
    }
  });
});
