/**
 * `resource-guard/otel` against real traffic: the Express example on loopback, a real JWKS server,
 * and the OpenTelemetry SDK's in-memory metric and span exporters.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AddressInfo } from 'node:net';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { instrument } from 'resource-guard/otel';
import type { Instrumentation } from 'resource-guard/otel';
import { createApp } from '../examples/express.ts';
import { fixtureVerifier, jwks, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import { startJwksServer } from './helpers/jwks-server.ts';
import { clock } from './helpers/outcome.ts';

useKeySetFixture();

let exporter: InMemoryMetricExporter;
let reader: PeriodicExportingMetricReader;
let spans: InMemorySpanExporter;
let instrumentation: Instrumentation;
let server: Server | undefined;

beforeEach(() => {
  exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  spans = new InMemorySpanExporter();
  instrumentation = instrument({
    meterProvider: new MeterProvider({ readers: [reader] }),
    tracerProvider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  });
});

afterEach(async () => {
  instrumentation.stop();
  await reader.shutdown();
  if (server) await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** The Express example on loopback with `verifier`; returns a fetch for its paths. */
async function serve(verifier: ReturnType<typeof fixtureVerifier>['verifier']) {
  server = createApp(verifier).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return (path: string, token?: string) =>
    fetch(`${origin}${path}`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    }).then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    });
}

/** Every metric exported so far, by name. */
async function collect(from = reader): Promise<Map<string, MetricData>> {
  exporter.reset();
  await from.forceFlush();
  const byName = new Map<string, MetricData>();
  for (const resource of exporter.getMetrics()) {
    for (const scope of resource.scopeMetrics) {
      for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric);
    }
  }
  return byName;
}

/** The counter's points as `attribute=value,...: count`, sorted. */
function points(metric: MetricData | undefined, names: readonly string[]): string[] {
  return (metric?.dataPoints ?? [])
    .map((point: DataPoint<unknown>) => {
      const label = names.map((name) => `${name}=${String(point.attributes[name])}`).join(',');
      const value =
        metric?.dataPointType === DataPointType.HISTOGRAM
          ? (point.value as Histogram).count
          : (point.value as number);
      return `${label}: ${value}`;
    })
    .sort();
}

describe('resource-guard/otel', () => {
  it('counts each decision under exactly its outcome, reason, status and cache use', async () => {
    const { verifier } = fixtureVerifier();
    const get = await serve(verifier);
    const reader = await mint(key, m2mClaims({ scope: 'read:products' }));
    const noScope = await mint(key, m2mClaims({ scope: '' }));
    const expired = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) - 600 }));

    expect(await get('/products', reader)).toBe(200);
    expect(await get('/products', reader)).toBe(200); // a cache hit
    expect(await get('/products', noScope)).toBe(403);
    expect(await get('/products', expired)).toBe(401);
    expect(await get('/products', expired)).toBe(401);
    expect(await get('/products')).toBe(401);
    expect(await get('/products/featured')).toBe(200); // anonymous

    const names = [
      'resource_guard.outcome',
      'resource_guard.reason',
      'http.response.status_code',
      'resource_guard.cache_hit',
    ];
    const metrics = await collect();
    const expected = [
      'resource_guard.outcome=accepted,resource_guard.reason=undefined,http.response.status_code=undefined,resource_guard.cache_hit=false: 1',
      'resource_guard.outcome=accepted,resource_guard.reason=undefined,http.response.status_code=undefined,resource_guard.cache_hit=true: 1',
      'resource_guard.outcome=anonymous,resource_guard.reason=undefined,http.response.status_code=undefined,resource_guard.cache_hit=false: 1',
      'resource_guard.outcome=refused,resource_guard.reason=expired,http.response.status_code=401,resource_guard.cache_hit=false: 2',
      'resource_guard.outcome=refused,resource_guard.reason=insufficient_scope,http.response.status_code=403,resource_guard.cache_hit=false: 1',
      'resource_guard.outcome=refused,resource_guard.reason=missing_token,http.response.status_code=401,resource_guard.cache_hit=false: 1',
    ];
    expect(points(metrics.get('resource_guard.decisions'), names)).toEqual(expected);
    // Timed: every decision but an accepted cache hit (a fraction of a microsecond).
    expect(points(metrics.get('resource_guard.decision.duration'), names)).toEqual(
      expected.filter((line) => !line.includes('outcome=accepted') || !line.includes('hit=true')),
    );
    const accepted = metrics
      .get('resource_guard.decisions')
      ?.dataPoints.find((point) => point.attributes['resource_guard.outcome'] === 'accepted');
    expect(accepted?.attributes['resource_guard.issuer']).toBe(ISSUER);
    // Bounded attributes only: no token, subject or client id anywhere.
    const text = JSON.stringify([...metrics.values()].map((metric) => metric.dataPoints));
    for (const secret of [reader, noScope, 'app-123']) expect(text).not.toContain(secret);
  });

  it('a refusal per reason increments exactly its counter, and nothing else', async () => {
    const { verifier } = fixtureVerifier();
    const get = await serve(verifier);
    const other = await makeKey('ES384');
    const now = Math.floor(Date.now() / 1000);
    const cases: [reason: string, status: number, token: () => Promise<string | undefined>][] = [
      ['missing_token', 401, async () => undefined],
      ['malformed_token', 401, async () => 'a.b.c'],
      ['opaque_token', 401, async () => 'opaque-access-token'],
      ['typ_mismatch', 401, () => mint(key, m2mClaims(), { typ: 'JWT' })],
      [
        'alg_not_allowed',
        401,
        async () => rawToken({ alg: 'none', typ: 'at+jwt', kid: key.kid }, m2mClaims()),
      ],
      ['issuer_mismatch', 401, () => mint(key, m2mClaims({ iss: 'https://evil.example/oidc' }))],
      ['audience_mismatch', 401, () => mint(key, m2mClaims({ aud: 'https://other.api' }))],
      ['unknown_kid', 401, () => mint(other)],
      ['bad_signature', 401, () => mint(other, m2mClaims(), { kid: key.kid })],
      ['expired', 401, () => mint(key, m2mClaims({ exp: now - 600 }))],
      ['not_yet_valid', 401, () => mint(key, m2mClaims({ nbf: now + 600 }))],
      ['insufficient_scope', 403, () => mint(key, m2mClaims({ scope: 'write:products' }))],
    ];
    const series = async () =>
      new Map(
        points((await collect()).get('resource_guard.decisions'), [
          'resource_guard.outcome',
          'resource_guard.reason',
          'http.response.status_code',
        ]).map((line) => {
          const [label, count] = line.split(': ') as [string, string];
          return [label, Number(count)] as const;
        }),
      );
    for (const [reason, status, token] of cases) {
      const before = await series();
      expect(await get('/products', await token())).toBe(status);
      const after = await series();
      const label = `resource_guard.outcome=refused,resource_guard.reason=${reason},http.response.status_code=${status}`;
      const changed = [...after].filter(([name, count]) => count !== (before.get(name) ?? 0));
      expect(changed, reason).toEqual([[label, (before.get(label) ?? 0) + 1]]);
    }
  });

  it('follows a JWKS outage in the state gauge and fetch metrics, and the recovery', async () => {
    const time = clock();
    const { verifier } = fixtureVerifier({ keys: { maxAge: 60, maxStale: 60, cooldown: 1 } });
    const get = await serve(verifier);
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 3600 }));
    const state = async () =>
      points((await collect()).get('resource_guard.keys.state'), ['resource_guard.keys.state'])
        .filter((line) => line.endsWith(': 1'))
        .map((line) => line.split('=')[1]?.split(':')[0]);

    expect(await get('/products', token)).toBe(200);
    expect(await state()).toEqual(['fresh']);
    expect(verifier.health()[0]?.state).toBe('fresh');

    jwks.behave((_req, res) => res.writeHead(503).end());
    time.advance(61);
    expect(await get('/products', token)).toBe(200); // stale keys still serve
    await vi.waitFor(() => expect(verifier.health()[0]?.lastError).toMatch(/^HTTP 503/));
    expect(await state()).toEqual(['stale']);
    time.advance(61);
    expect(await get('/products', token)).toBe(503);
    expect(await state()).toEqual(['unavailable']);
    expect(verifier.health()[0]?.state).toBe('unavailable');

    jwks.behave(undefined);
    time.advance(2);
    expect(await get('/products', token)).toBe(200);
    expect(await state()).toEqual(['fresh']);
    expect(verifier.health()[0]).toMatchObject({ state: 'fresh', lastError: null });

    const metrics = await collect();
    const fetches = points(metrics.get('resource_guard.jwks.fetches'), [
      'resource_guard.outcome',
      'error.type',
      'http.response.status_code',
    ]);
    expect(fetches).toEqual([
      expect.stringMatching(
        /^resource_guard.outcome=error,error.type=HTTP 503,http.response.status_code=503: [1-9]$/,
      ),
      'resource_guard.outcome=ok,error.type=undefined,http.response.status_code=undefined: 2',
    ]);
    expect(points(metrics.get('resource_guard.jwks.keys'), ['resource_guard.issuer'])).toEqual([
      `resource_guard.issuer=${ISSUER}: 1`,
    ]);

    // A span per fetch, the failed ones marked as errors, none holding a token.
    const finished = spans.getFinishedSpans();
    expect(finished.length).toBeGreaterThanOrEqual(3);
    expect(finished.every((span) => span.name === 'resource_guard.jwks.fetch')).toBe(true);
    expect(finished.filter((span) => span.status.code === 2).length).toBeGreaterThanOrEqual(1);
    expect(finished[0]?.attributes['url.full']).toBe(jwks.url);
    expect(JSON.stringify(finished.map((span) => span.attributes))).not.toContain(token);
  });

  it('instrument() twice on one meter provider counts once; stop() stops the gauges too', async () => {
    const provider = new MeterProvider({
      readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
    });
    const first = instrument({ meterProvider: provider });
    expect(instrument({ meterProvider: provider })).toBe(first);
    first.stop();
    expect(instrument({ meterProvider: provider })).not.toBe(first);
    // The suite's own instrumentation (beforeEach): stopped, its state gauge reports nothing more.
    const { verifier } = fixtureVerifier();
    await verifier.warm();
    expect(
      points((await collect()).get('resource_guard.keys.state'), ['resource_guard.keys.state']),
    ).toContain('resource_guard.keys.state=fresh: 1');
    instrumentation.stop();
    jwks.behave((_req, res) => res.writeHead(503).end());
    const down = fixtureVerifier({ issuer: 'https://down.example.test/oidc' }).verifier;
    await down.warm().catch(() => undefined);
    expect(down.health()[0]?.state).toBe('unavailable');
    const after = points((await collect()).get('resource_guard.keys.state'), [
      'resource_guard.issuer',
      'resource_guard.keys.state',
    ]);
    expect(after.filter((line) => line.includes('down.example.test'))).toEqual([]);
    await provider.shutdown();
  });

  it('one issuer served by two verifiers: the gauges show the worst set, and never flap', async () => {
    const other = await startJwksServer([key.jwk]);
    try {
      const a = fixtureVerifier({ audience: 'https://shopping.api' }).verifier;
      const b = fixtureVerifier({ audience: 'https://billing.api', jwksUri: other.url }).verifier;
      await Promise.all([a.warm(), b.warm()]);
      const state = async () =>
        points((await collect()).get('resource_guard.keys.state'), [
          'resource_guard.issuer',
          'resource_guard.keys.state',
        ])
          // Sets of the file's earlier tests, not collected yet, report their own issuers.
          .filter((line) => line.includes(ISSUER) && line.endsWith(': 1'));
      expect(await state()).toEqual([
        `resource_guard.issuer=${ISSUER},resource_guard.keys.state=fresh: 1`,
      ]);
      // b's keys go away and b's set becomes unavailable; a's set stays fresh and keeps publishing.
      other.behave((_req, res) => res.writeHead(503).end());
      clock().advance(13 * 3600); // past maxAge + maxStale
      try {
        expect(b.health()[0]?.state).toBe('unavailable');
        await new Promise((r) => setTimeout(r, 50));
        await a.warm(); // a's set hears from its (healthy) JWKS again: fresh, and says so last
        expect(a.health()[0]?.state).toBe('fresh');
        expect(await state()).toEqual([
          `resource_guard.issuer=${ISSUER},resource_guard.keys.state=unavailable: 1`,
        ]);
        // b recovers: the issuer is fresh again.
        other.behave(undefined);
        vi.setSystemTime(Date.now() + 600_000); // past the back-off of b's failed refresh
        await b.warm();
        expect(b.health()[0]?.state).toBe('fresh');
        expect(await state()).toEqual([
          `resource_guard.issuer=${ISSUER},resource_guard.keys.state=fresh: 1`,
        ]);
      } finally {
        vi.useRealTimers();
      }
    } finally {
      await other.close();
    }
  });

  it('verifiers warmed before instrument() are reported at once, not from their next change', async () => {
    const down = await startJwksServer([key.jwk]);
    down.behave((_req, res) => res.writeHead(503).end());
    const early = 'https://early.example.test/oidc';
    const broken = 'https://early-down.example.test/oidc';
    const own = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [own] });
    try {
      // The suite's instrumentation is stopped: these sets change state with nobody listening.
      instrumentation.stop();
      const fresh = fixtureVerifier({ issuer: early }).verifier;
      const unavailable = fixtureVerifier({ issuer: broken, jwksUri: down.url }).verifier;
      await fresh.warm();
      await unavailable.warm().catch(() => undefined);
      instrument({ meterProvider: provider });
      const metrics = await collect(own);
      const mine = (line: string) => line.includes('early');
      expect(
        points(metrics.get('resource_guard.keys.state'), [
          'resource_guard.issuer',
          'resource_guard.keys.state',
        ])
          .filter(mine)
          .filter((line) => line.endsWith(': 1')),
      ).toEqual([
        `resource_guard.issuer=${broken},resource_guard.keys.state=unavailable: 1`,
        `resource_guard.issuer=${early},resource_guard.keys.state=fresh: 1`,
      ]);
      expect(
        points(metrics.get('resource_guard.jwks.keys'), ['resource_guard.issuer']).filter(mine),
      ).toEqual([`resource_guard.issuer=${early}: 1`]);
    } finally {
      await provider.shutdown();
      await down.close();
    }
  });

  it('a verifier let go stops counting: its outage does not outlive it', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const down = await startJwksServer([key.jwk]);
    down.behave((_req, res) => res.writeHead(503).end());
    const state = async () =>
      points((await collect()).get('resource_guard.keys.state'), [
        'resource_guard.issuer',
        'resource_guard.keys.state',
      ]).filter((line) => line.includes(ISSUER) && line.endsWith(': 1'));
    try {
      await (async () => {
        // A verifier whose keys never load, then dropped (a reload replaced it, say).
        const old = fixtureVerifier({ jwksUri: down.url }).verifier;
        await old.warm().catch(() => undefined);
        expect(old.health()[0]?.state).toBe('unavailable');
      })();
      expect(await state()).toEqual([
        `resource_guard.issuer=${ISSUER},resource_guard.keys.state=unavailable: 1`,
      ]);
      const replacement = fixtureVerifier().verifier;
      await replacement.warm();
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      expect(await state()).toEqual([
        `resource_guard.issuer=${ISSUER},resource_guard.keys.state=fresh: 1`,
      ]);
    } finally {
      await down.close();
    }
  });

  it('records nothing once stopped', async () => {
    const { verifier } = fixtureVerifier();
    instrumentation.stop();
    await verifier.verify(await mint(key));
    const metrics = await collect();
    expect(metrics.get('resource_guard.decisions')?.dataPoints ?? []).toEqual([]);
  });
});
