/**
 * Regression guards from an adversarial review of the operations work (issue 13): what an
 * attacker's token can and cannot put into events and metrics, and how much network a readiness
 * probe can cause. Against a real JWKS server on loopback and the OpenTelemetry SDK.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import type { MetricData } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CHANNELS } from 'resource-guard';
import type { RejectionEvent } from 'resource-guard';
import { instrument } from 'resource-guard/otel';
import { fixtureVerifier, jwks, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { ISSUER, m2mClaims, mint } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

useKeySetFixture();

const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every event on every resource-guard channel, as JSON, until the test ends. */
function everyEvent(): string[] {
  const seen: string[] = [];
  for (const name of Object.values(CHANNELS)) {
    const listener = (message: unknown) => seen.push(JSON.stringify(message));
    subscribe(name, listener);
    cleanups.push(() => void unsubscribe(name, listener));
  }
  return seen;
}

const outage = () => jwks.behave((_req, res) => res.writeHead(503).end());

describe('what a hostile token can reach', () => {
  it('no event carries its iss, kid, sub or client id, and the details it reaches are bounded', async () => {
    const events = everyEvent();
    const rejections: RejectionEvent[] = [];
    const { verifier } = fixtureVerifier({ onRejected: (event) => rejections.push(event) });
    await verifier.warm();
    const marker = 'zq7hostile';
    const long = marker.repeat(300); // 3,000 characters: within maxTokenLength
    const tokens = [
      // Another issuer, differing from the configured one only in a 3,000-character scheme.
      await mint(key, m2mClaims({ iss: `${long}://tenant.example.test/oidc` })),
      await mint(key, m2mClaims({ iss: `https://${marker}.example/${long}` })),
      await mint(key, m2mClaims(), { kid: long }),
      await mint(key, m2mClaims({ sub: long, client_id: marker, aud: 'https://other.api' })),
    ];
    const reasons: string[] = [];
    for (const token of tokens) reasons.push(await outcome(verifier.verify(token)));
    expect(reasons).toEqual([
      '401 issuer_mismatch',
      '401 issuer_mismatch',
      '401 unknown_kid',
      '401 audience_mismatch',
    ]);
    expect(rejections[0]?.details.hint).toMatch(/^the issuers differ only in the scheme/);
    // Accepted, then answered from the cache: its subject and client id stay out of the events.
    const accepted = await mint(key, m2mClaims({ sub: marker, client_id: marker }));
    expect(await outcome(verifier.verify(accepted))).toBe('ok');
    expect(await outcome(verifier.verify(accepted))).toBe('ok');
    expect(events.length).toBeGreaterThanOrEqual(tokens.length + 2);
    for (const event of events) expect(event).not.toContain(marker);
    // onRejected does see the token's values (that is its job), clipped to 200 characters.
    for (const { details } of rejections) {
      for (const value of Object.values(details)) {
        if (typeof value === 'string') expect(value.length).toBeLessThanOrEqual(201);
      }
    }
  });

  it('a flood of distinct hostile issuers adds no OpenTelemetry series', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const instrumentation = instrument({ meterProvider: new MeterProvider({ readers: [reader] }) });
    cleanups.push(() => reader.shutdown());
    cleanups.push(() => instrumentation.stop());
    const series = async () => {
      exporter.reset();
      await reader.forceFlush();
      const points = new Map<string, number>();
      for (const resource of exporter.getMetrics()) {
        for (const scope of resource.scopeMetrics) {
          for (const metric of scope.metrics as MetricData[]) {
            points.set(metric.descriptor.name, metric.dataPoints.length);
          }
        }
      }
      return points;
    };
    const { verifier } = fixtureVerifier();
    await verifier.warm();
    const hostile = (i: number) => mint(key, m2mClaims({ iss: `https://evil-${i}.example/oidc` }));
    await outcome(verifier.verify(await hostile(0)));
    const before = await series();
    for (let i = 1; i <= 50; i++) await outcome(verifier.verify(await hostile(i)));
    expect(await series()).toEqual(before);
  });
});

describe('how much network a readiness probe can cause', () => {
  it('an empty set probed 100 times at once is fetched once', async () => {
    const { verifier } = fixtureVerifier();
    for (let i = 0; i < 100; i++) expect(verifier.health()[0]?.state).toBe('empty');
    await vi.waitFor(() => expect(verifier.health()[0]?.state).toBe('fresh'));
    expect(jwks.hits).toBe(1);
  });

  it('an unavailable set probed in a loop is fetched once per back-off, not per probe', async () => {
    outage();
    const { verifier } = fixtureVerifier();
    verifier.health();
    await vi.waitFor(() => expect(verifier.health()[0]?.state).toBe('unavailable'));
    for (let i = 0; i < 200; i++) verifier.health();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(jwks.hits).toBe(1);
    expect(verifier.health()[0]?.retryInSeconds).toBeGreaterThan(0);
  });

  it('a stale set probed in a loop starts one refresh, then backs off', async () => {
    const { verifier } = fixtureVerifier({ keys: { maxAge: 60 } });
    await verifier.warm();
    const time = clock();
    time.advance(61);
    outage();
    expect(verifier.health()[0]?.state).toBe('stale');
    await vi.waitFor(() => expect(verifier.health()[0]?.lastError).toContain('HTTP 503'));
    for (let i = 0; i < 200; i++) expect(verifier.health()[0]?.state).toBe('stale');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(jwks.hits).toBe(2); // warm-up, then one refresh
  });

  it('request-scoped: a probe never fetches', async () => {
    const { verifier } = fixtureVerifier({ requestScoped: true });
    for (let i = 0; i < 10; i++) expect(verifier.health()[0]?.state).toBe('empty');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(jwks.hits).toBe(0);
  });

  it('warm() racing the first requests shares one fetch', async () => {
    const { verifier } = fixtureVerifier();
    const token = await mint(key);
    const results = await Promise.all([
      verifier.warm(),
      ...Array.from({ length: 20 }, () => verifier.verify(token)),
    ]);
    expect(results).toHaveLength(21);
    expect(jwks.hits).toBe(1);
  });

  it('one shared jwksUri for several issuers: one fetch, each issuer reported once', async () => {
    const issuers = [ISSUER, 'https://b.example.test/oidc', 'https://c.example.test/oidc'];
    const { verifier } = fixtureVerifier({ issuer: issuers });
    const report = await verifier.warm();
    expect(report.map((entry) => [entry.issuer, entry.state])).toEqual(
      issuers.map((issuer) => [issuer, 'fresh']),
    );
    expect(jwks.hits).toBe(1);
  });
});
