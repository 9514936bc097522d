// A stand-in for the authorization server in the projects' check.mjs (lib.sh copies it next to
// them, where jose is installed): a JWKS on loopback with one ES256 key, and access tokens for
// the client shop-app signed with it, valid for five minutes.
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

export const issuer = 'https://tenant.example.test/oidc';
const { publicKey, privateKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
export const jwks = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
});
await new Promise((resolve) => jwks.listen(0, '127.0.0.1', resolve));
export const jwksUri = `http://127.0.0.1:${jwks.address().port}/jwks`;

/** An access token for shop-app with `claims` added. */
export const sign = (claims) =>
  new SignJWT({ client_id: 'shop-app', ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .setIssuer(issuer)
    .setAudience('https://shopping.api')
    .setSubject('shop-app')
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
