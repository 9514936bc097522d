/**
 * `npm start`: the shopping API guarded by resource-guard.
 *
 * - With ISSUER or LOGTO_ENDPOINT set: the API against that tenant.
 * - Otherwise: an embedded, Logto-shaped authorization server on 127.0.0.1:3001 (issuer
 *   http://127.0.0.1:3001/oidc) with two demo M2M apps, and the API on 127.0.0.1:3000 accepting
 *   Bearer and DPoP tokens (`DPOP=allowed` unless set). It calls the API both ways once, then
 *   prints ready-to-paste commands that get a token and call the API.
 *
 * Either way: OpenTelemetry metrics in Prometheus format on 127.0.0.1:9464/metrics
 * (METRICS_PORT), and the keys' health at GET /health/keys on the API.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { instrument } from 'resource-guard/otel';
import { ConfigError, configFromEnv, startupProblem } from './config.ts';
import { generateProofKey } from './dpop-proof.ts';
import { serve } from './express.ts';
import { SHOPPING_API, startIssuer } from './issuer.ts';
import type { DemoApp } from './issuer.ts';
import { createM2MClient } from './m2m-client.ts';

const port = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(
      `${name} must be a port number, got ${JSON.stringify(process.env[name])}`,
    );
  }
  return value;
};
let ISSUER_PORT = 3001;
let METRICS_PORT = 9464;

/** resource-guard's metrics, served in Prometheus format by the OpenTelemetry exporter. */
async function serveMetrics(host: string): Promise<string> {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  instrument({ meterProvider: new MeterProvider({ readers: [exporter] }) });
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') exporter.getMetricsRequestHandler(req, res);
    else res.writeHead(404).end();
  });
  server.listen(METRICS_PORT, host);
  await once(server, 'listening');
  return `http://${host}:${(server.address() as AddressInfo).port}/metrics`;
}

/** A free port on `host` (bound, then released), for an API that must know its port up front. */
async function freePort(host: string): Promise<number> {
  const probe = createServer();
  probe.listen(0, host);
  await once(probe, 'listening');
  const { port: free } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return free;
}

async function main() {
  ISSUER_PORT = port('ISSUER_PORT', ISSUER_PORT);
  METRICS_PORT = port('METRICS_PORT', METRICS_PORT);
  const host = process.env.HOST?.trim() || '127.0.0.1';
  const metrics = await serveMetrics(host); // before the verifier: it sees the first fetch
  if (process.env.ISSUER || process.env.LOGTO_ENDPOINT) {
    const config = configFromEnv();
    const { port: apiPort } = (await serve(config)).address() as AddressInfo;
    console.log(`
Metrics (Prometheus): ${metrics}
Keys' health:         http://${config.host}:${apiPort}/health/keys`);
    return;
  }
  const issuer = await startIssuer({ port: ISSUER_PORT });
  // DPoP proofs name the API's origin, so its port must be known before the verifier is built.
  const apiPort = process.env.PORT === '0' ? String(await freePort(host)) : process.env.PORT;
  const config = configFromEnv({
    ...process.env,
    ISSUER: issuer.issuer,
    DPOP: process.env.DPOP ?? 'allowed',
    ...(apiPort === undefined ? {} : { PORT: apiPort }),
  });
  const { port: listening } = (await serve(config)).address() as AddressInfo;
  const api = `http://${config.host}:${listening}`;

  // Both ways, once: a Bearer token, and a DPoP-bound token with a proof per request.
  for (const dpop of [undefined, await generateProofKey()]) {
    const client = createM2MClient({
      tokenEndpoint: issuer.tokenEndpoint,
      appId: issuer.apps.reader.id,
      appSecret: issuer.apps.reader.secret,
      resource: SHOPPING_API,
      scope: 'read:products',
      ...(dpop ? { dpop } : {}),
    });
    const response = await client.fetch(`${api}/products`);
    await response.body?.cancel();
    console.log(`${dpop ? 'DPoP  ' : 'Bearer'} GET /products → ${response.status}`);
  }

  const tokenCommand = (app: DemoApp, scope: string) =>
    [
      `curl -s -X POST ${issuer.tokenEndpoint} \\`,
      `  -H "Authorization: Basic ${Buffer.from(`${app.id}:${app.secret}`).toString('base64')}" \\`,
      `  -H "Content-Type: application/x-www-form-urlencoded" \\`,
      `  --data-urlencode "grant_type=client_credentials" \\`,
      `  --data-urlencode "resource=${SHOPPING_API}" \\`,
      `  --data-urlencode "scope=${scope}"`,
    ].join('\n');
  const extract = `node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token'`;
  const { reader, writer } = issuer.apps;

  console.log(`
Embedded Logto-shaped issuer: ${issuer.issuer}   (set LOGTO_ENDPOINT or ISSUER to use your tenant)

Demo M2M apps (client credentials):
  reader  id ${reader.id}  secret ${reader.secret}  roles: read:products
  writer  id ${writer.id}  secret ${writer.secret}  roles: read:products write:products

1. Get an access token, as in Logto's machine-to-machine guide:

${tokenCommand(reader, 'read:products')}

2. Call the API with it:

TOKEN=$(${tokenCommand(reader, 'read:products').replaceAll('\n', '\n  ')} | ${extract})
curl -s ${api}/products -H "Authorization: Bearer $TOKEN"

3. Write with the writer app (the reader gets 403 insufficient_scope):

TOKEN=$(${tokenCommand(writer, 'read:products write:products').replaceAll('\n', '\n  ')} | ${extract})
curl -s -X POST ${api}/products -H "Authorization: Bearer $TOKEN" \\
  -H "Content-Type: application/json" -d '{"name":"Milk frother","price":35}'

Without a token: curl -si ${api}/products
Optional authentication (anonymous, or "personalized": true with $TOKEN):
  curl -s ${api}/products/featured

Operations: the keys' health (a readiness probe) and resource-guard's metrics (Prometheus):
  curl -s ${api}/health/keys
  curl -s ${metrics}

4. Or run the M2M client example (token cached until it expires, one retry on 401):

LOGTO_ENDPOINT=${issuer.endpoint} APP_ID=${reader.id} APP_SECRET=${reader.secret} npm run example:m2m

5. DPoP (RFC 9449): the same client with a key; its token is bound to the key (cnf.jkt) and
   every call carries a fresh proof (this API: DPOP=${config.dpop ?? 'off'}):

DPOP=1 LOGTO_ENDPOINT=${issuer.endpoint} APP_ID=${reader.id} APP_SECRET=${reader.secret} npm run example:m2m
`);
}

main().catch((error: unknown) => {
  console.error(
    startupProblem(error, { [ISSUER_PORT]: 'ISSUER_PORT', [METRICS_PORT]: 'METRICS_PORT' }),
  );
  process.exit(1);
});
