/**
 * What observability costs a request, in one process, interleaved rounds: the same verifier and
 * route guard (`resource-guard/kit`'s `routeGuard().run`, as the adapters call it) with
 *
 * - `none`: nobody subscribed to resource-guard's diagnostics channels (the default);
 * - `subscriber`: one do-nothing `node:diagnostics_channel` subscriber on the decision channel
 *   (the events are built and published);
 * - `otel`: `instrument()` from `resource-guard/otel` with the OpenTelemetry SDK's MeterProvider
 *   (a reader that exports once an hour: recording, not exporting, is measured).
 *
 * For a repeat token (the cache hit: where a fixed cost weighs most) and a first-seen ES256 token.
 * Ratio = the case's µs per request / `none`'s, per round: median [min–max].
 *
 *   npm run bench:otel [-- --rounds 15 --ms 150]
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { CHANNELS, createVerifier } from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import { instrument } from 'resource-guard/otel';
import { benchKey, benchToken, AUDIENCE, ISSUER, jwksServer } from './fixtures.ts';

export interface OtelRow {
  readonly path: 'repeat' | 'first-seen ES256';
  readonly mode: 'none' | 'subscriber' | 'otel';
  /** µs per request, median of rounds. */
  readonly us: number;
  /** This mode / `none`, per round: median, min, max. */
  readonly ratio: readonly [number, number, number];
}

const MODES = ['none', 'subscriber', 'otel'] as const;
type Mode = (typeof MODES)[number];

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

export async function runOtel({ rounds = 15, ms = 150 } = {}): Promise<OtelRow[]> {
  const key = await benchKey('ES256');
  const { url, server } = await jwksServer([key.jwk]);
  const verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: url,
    cache: { maxEntries: 100_000 },
  });
  const guard = routeGuard(verifier, { scopes: ['read:products'] });
  const outcome = {
    pass: (auth: unknown) => auth,
    respond: (error: unknown) => {
      throw error;
    },
    fail: (error: unknown) => {
      throw error;
    },
  };
  const repeat = { headers: { authorization: `Bearer ${await benchToken(key)}` } };
  await guard.run(repeat, repeat, outcome);
  // First-seen tokens: each used once, across all modes and rounds.
  const perRound = 120;
  const fresh: { headers: { authorization: string } }[] = [];
  for (let i = 0; i < perRound * rounds * MODES.length; i++) {
    fresh.push({ headers: { authorization: `Bearer ${await benchToken(key)}` } });
  }
  let cursor = 0;

  const meterReader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 3_600_000,
  });
  const provider = new MeterProvider({ readers: [meterReader] });
  const noop = () => undefined;
  let otel: { stop(): void } | undefined;
  const enter = (mode: Mode) => {
    if (mode === 'subscriber') subscribe(CHANNELS.decision, noop);
    if (mode === 'otel') otel = instrument({ meterProvider: provider });
  };
  const leave = (mode: Mode) => {
    if (mode === 'subscriber') unsubscribe(CHANNELS.decision, noop);
    if (mode === 'otel') otel?.stop();
  };

  const timeRepeat = () => {
    let ops = 0;
    const start = performance.now();
    const until = start + ms;
    while (performance.now() < until) {
      for (let i = 0; i < 200; i++) guard.run(repeat, repeat, outcome);
      ops += 200;
    }
    return ((performance.now() - start) * 1000) / ops;
  };
  const timeFresh = async () => {
    const start = performance.now();
    for (let i = 0; i < perRound; i++) {
      const request = fresh[cursor++] as (typeof fresh)[number];
      await guard.run(request, request, outcome);
    }
    return ((performance.now() - start) * 1000) / perRound;
  };

  const rows: OtelRow[] = [];
  for (const path of ['repeat', 'first-seen ES256'] as const) {
    const samples: Record<Mode, number[]> = { none: [], subscriber: [], otel: [] };
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no mode always runs first (or last) after a GC.
      const order = MODES.map((_, i) => MODES[(i + round) % MODES.length] as Mode);
      for (const mode of order) {
        enter(mode);
        samples[mode].push(path === 'repeat' ? timeRepeat() : await timeFresh());
        leave(mode);
      }
    }
    for (const mode of MODES) {
      const ratios = samples[mode].map((us, i) => us / (samples.none[i] as number));
      rows.push({
        path,
        mode,
        us: median(samples[mode]),
        ratio: [median(ratios), Math.min(...ratios), Math.max(...ratios)],
      });
    }
  }
  await provider.shutdown();
  server.close();
  return rows;
}

export function otelTable(rows: readonly OtelRow[]): string {
  const lines = [
    '| path | mode | µs per request | mode / none: median [min–max] |',
    '|---|---|---:|---:|',
  ];
  for (const row of rows) {
    const [mid, low, high] = row.ratio;
    lines.push(
      `| ${row.path} | ${row.mode} | ${row.us.toFixed(3)} | ${mid.toFixed(3)} [${low.toFixed(2)}–${high.toFixed(2)}] |`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: { rounds: { type: 'string', default: '15' }, ms: { type: 'string', default: '150' } },
  });
  const rows = await runOtel({ rounds: Number(values.rounds), ms: Number(values.ms) });
  console.log(otelTable(rows));
}
