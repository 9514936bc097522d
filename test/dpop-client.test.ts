/**
 * DPoP end to end, as `npm start` shows it: the embedded oidc-provider issuer binds a token to the
 * M2M client's key (its `dPoP` feature), and the client calls the Express example API with a
 * fresh proof per request, picking up the API's server nonce on the way.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import { generateProofKey } from '../examples/dpop-proof.ts';
import { createApp } from '../examples/express.ts';
import { startIssuer } from '../examples/issuer.ts';
import type { Issuer } from '../examples/issuer.ts';
import { createM2MClient } from '../examples/m2m-client.ts';

let issuer: Issuer;
let api: string;
let close: () => void;

beforeAll(async () => {
  issuer = await startIssuer();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const verifier = createVerifier({
    issuer: issuer.issuer,
    audience: 'https://shopping.api',
    dpop: {
      mode: 'required',
      origin: api,
      nonce: { secret: 'an example secret shared by the instances' },
    },
  });
  server.on('request', createApp(verifier));
  close = () => server.close();
});
afterAll(async () => {
  close();
  await issuer.close();
});

const clientOptions = () => ({
  tokenEndpoint: issuer.tokenEndpoint,
  appId: issuer.apps.reader.id,
  appSecret: issuer.apps.reader.secret,
  resource: 'https://shopping.api',
  scope: 'read:products',
});

describe('the M2M client with a DPoP key', () => {
  it('gets a bound token once and calls the API with proofs, following the server nonce', async () => {
    const client = createM2MClient({ ...clientOptions(), dpop: await generateProofKey() });
    const first = await client.fetch(`${api}/products`);
    expect(first.status).toBe(200);
    expect(((await first.json()) as { client: string }).client).toBe('shopping-reader');
    const [a, b] = await Promise.all([
      client.fetch(`${api}/products/p-1`),
      client.fetch(`${api}/products?page=2`),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(client.tokenRequests).toBe(1);
  });

  it('a Bearer client is refused by a DPoP-only API with the DPoP challenge', async () => {
    const client = createM2MClient(clientOptions());
    const answer = await client.fetch(`${api}/products`);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toMatch(
      /^DPoP realm=".+", error="invalid_token"/,
    );
  });
});
