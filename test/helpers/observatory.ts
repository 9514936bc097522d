/** A test's view of resource-guard's telemetry: events, OpenTelemetry metrics and spans, warnings. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { CHANNELS } from 'resource-guard';
import { instrument } from 'resource-guard/otel';

export interface Observed {
  readonly channel: string;
  readonly message: Record<string, unknown>;
}

/** Subscribers on every channel, an instrumented meter and tracer, and a warning collector. */
/**
 * Everything an operator sees of a verifier, in one place for a test: every
 * `node:diagnostics_channel` event, the OpenTelemetry metrics and spans of `instrument()`
 * (in-memory readers), and process warnings. Its teardowns go to `cleanups` (run them after the
 * test).
 */
export function observatory(cleanups: (() => unknown)[]) {
  const events: Observed[] = [];
  for (const name of Object.values(CHANNELS)) {
    const listener = (message: unknown) =>
      events.push({ channel: name, message: message as Record<string, unknown> });
    subscribe(name, listener);
    cleanups.push(() => unsubscribe(name, listener));
  }
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const spans = new InMemorySpanExporter();
  const instrumentation = instrument({
    meterProvider: new MeterProvider({ readers: [reader] }),
    tracerProvider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  });
  cleanups.push(() => reader.shutdown());
  cleanups.push(() => instrumentation.stop());
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  cleanups.push(() => process.off('warning', onWarning));

  /** Per metric: its distinct attribute sets (sorted JSON). */
  const series = async (): Promise<Map<string, Set<string>>> => {
    exporter.reset();
    await reader.forceFlush();
    const out = new Map<string, Set<string>>();
    for (const resource of exporter.getMetrics()) {
      for (const scope of resource.scopeMetrics) {
        for (const metric of scope.metrics) {
          const set = out.get(metric.descriptor.name) ?? new Set<string>();
          for (const point of metric.dataPoints) {
            const attributes = point.attributes as Record<string, unknown>;
            set.add(
              JSON.stringify(
                Object.keys(attributes)
                  .sort()
                  .map((k) => [k, attributes[k]]),
              ),
            );
          }
          out.set(metric.descriptor.name, set);
        }
      }
    }
    return out;
  };
  /** Everything OpenTelemetry would export, as text. */
  const exported = async () => {
    const all = await series();
    const text = [...all].map(([name, set]) => `${name} ${[...set].join(' ')}`).join('\n');
    const spanText = spans
      .getFinishedSpans()
      .map((span) => JSON.stringify([span.name, span.attributes, span.status, span.events]))
      .join('\n');
    return `${text}\n${spanText}`;
  };
  /** The variety of the events: each event without its timings. */
  const shapes = () =>
    new Set(
      events.map(({ channel, message }) => {
        const { duration: _d, startTime: _s, ...rest } = message;
        return `${channel} ${JSON.stringify(rest)}`;
      }),
    );
  return { events, spans, warnings, series, exported, shapes };
}
