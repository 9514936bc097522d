/**
 * `npm start`: the shopping API guarded by resource-guard.
 *
 * - With ISSUER or LOGTO_ENDPOINT set: the API against that tenant.
 * - Otherwise: an embedded, Logto-shaped authorization server on 127.0.0.1:3001 (issuer
 *   http://127.0.0.1:3001/oidc) with two demo M2M apps, and the API on 127.0.0.1:3000. It prints
 *   ready-to-paste commands that get a token and call the API.
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
import { serve } from './express.ts';
import { SHOPPING_API, startIssuer } from './issuer.ts';
import type { DemoApp } from './issuer.ts';

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
  const config = configFromEnv({ ...process.env, ISSUER: issuer.issuer });
  const { port: apiPort } = (await serve(config)).address() as AddressInfo;
  const api = `http://${config.host}:${apiPort}`;

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
`);
}

main().catch((error: unknown) => {
  console.error(
    startupProblem(error, { [ISSUER_PORT]: 'ISSUER_PORT', [METRICS_PORT]: 'METRICS_PORT' }),
  );
  process.exit(1);
});
