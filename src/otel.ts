/**
 * OpenTelemetry for resource-guard (`resource-guard/otel`): metrics and spans made from the
 * `node:diagnostics_channel` events (see `CHANNELS`), so a verifier pays nothing for them until
 * `instrument()` is called. `@opentelemetry/api` is an optional peer dependency: install it (your
 * OpenTelemetry SDK brings it) to use this module.
 *
 * Attributes are bounded: outcome, reason, status, cache use, the configured issuer and the JWKS
 * URL. Never the token, the subject or the client id.
 */
import { metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type {
  Attributes,
  MeterProvider,
  ObservableCallback,
  TracerProvider,
} from '@opentelemetry/api';
import { CHANNELS, subscribeTo } from './diagnostics.ts';
import { keySetStates } from './key-set.ts';
import type {
  CacheEvictEvent,
  DecisionEvent,
  KeysFetchEvent,
  KeysStateEvent,
} from './diagnostics.ts';
import type { KeyState } from './types.ts';

export interface InstrumentOptions {
  /** Default: the global meter provider (`metrics.setGlobalMeterProvider`, or the SDK's). */
  readonly meterProvider?: MeterProvider;
  /** Default: the global tracer provider. */
  readonly tracerProvider?: TracerProvider;
}

/**
 * What {@link instrument} returns: `stop()` unsubscribes and stops observing (the instruments stay
 * registered with the meter: OpenTelemetry cannot remove them).
 */
export interface Instrumentation {
  stop(): void;
}

const SCOPE = 'resource-guard';
const STATES: readonly KeyState[] = ['empty', 'fresh', 'stale', 'unavailable'];
/** How bad a state is, for an issuer served by several key sets: the worst is reported. */
const SEVERITY: Readonly<Record<KeyState, number>> = {
  fresh: 0,
  stale: 1,
  empty: 2,
  unavailable: 3,
};
/** Key sets whose state is kept. */
const MAX_SETS = 256;
/** Seconds: a cache hit takes microseconds, a first sighting up to a millisecond, a fetch more. */
const DURATION_BUCKETS = [
  0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
  0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Records resource-guard's decisions, key-set fetches, key-set states and cache evictions as
 * OpenTelemetry metrics, and each key-set fetch as a span:
 *
 * | instrument | kind | attributes |
 * |---|---|---|
 * | `resource_guard.decisions` | counter | `resource_guard.outcome`, `resource_guard.reason`, `http.response.status_code`, `resource_guard.cache_hit`, `resource_guard.issuer` |
 * | `resource_guard.decision.duration` | histogram (s), all but accepted cache hits | the same |
 * | `resource_guard.jwks.fetches` | counter | `resource_guard.outcome`, `error.type`, `http.response.status_code`, `url.full` |
 * | `resource_guard.jwks.fetch.duration` | histogram (s) | the same |
 * | `resource_guard.jwks.keys` | gauge | `resource_guard.issuer` |
 * | `resource_guard.keys.state` | gauge (1 for the current state, 0 for the others) | `resource_guard.issuer`, `resource_guard.keys.state` |
 * | `resource_guard.cache.evictions` | counter | `resource_guard.reason` |
 *
 * Key sets created before the call are reported as they last changed (their state and keys);
 * their earlier fetches and decisions are not counted. A second call with the same meter provider returns the first one's instrumentation. Needs `node:diagnostics_channel` (Node, Bun, Deno, Workers with `nodejs_compat`).
 *
 * @example
 * ```ts
 * import { instrument } from 'resource-guard/otel';
 *
 * instrument(); // the global meter and tracer providers, as your OpenTelemetry SDK set them up
 * ```
 */
export function instrument(options: InstrumentOptions = {}): Instrumentation {
  const meterProvider = options.meterProvider ?? metrics.getMeterProvider();
  // Once per meter provider: a second call would count every event twice.
  const running = instrumented.get(meterProvider);
  if (running !== undefined) return running;
  const instrumentation = start(meterProvider, options.tracerProvider ?? trace.getTracerProvider());
  instrumented.set(meterProvider, instrumentation);
  return instrumentation;
}

const instrumented = new WeakMap<MeterProvider, Instrumentation>();

function start(meterProvider: MeterProvider, tracerProvider: TracerProvider): Instrumentation {
  const meter = meterProvider.getMeter(SCOPE);
  const tracer = tracerProvider.getTracer(SCOPE);

  // Decisions are counted here and reported when the metrics are collected: a cache hit costs a
  // fraction of a microsecond, and a synchronous counter would cost it several times that.
  const decisionCounts = new Map<string, { readonly attributes: Attributes; value: number }>();
  const decisions = meter.createObservableCounter('resource_guard.decisions', {
    description: 'Requests (and verify() calls) decided: accepted, refused, anonymous or error',
    unit: '{decision}',
  });
  const observeDecisions: ObservableCallback = (result) => {
    for (const { attributes, value } of decisionCounts.values()) result.observe(value, attributes);
  };
  decisions.addCallback(observeDecisions);
  const decisionDuration = meter.createHistogram('resource_guard.decision.duration', {
    description:
      'Time from the request to the decision; every decision but an accepted cache hit (the bulk of traffic, a fraction of a microsecond)',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  const fetches = meter.createCounter('resource_guard.jwks.fetches', {
    description: 'Key-set (JWKS) fetches, discovery included',
    unit: '{fetch}',
  });
  const fetchDuration = meter.createHistogram('resource_guard.jwks.fetch.duration', {
    description: 'Duration of a key-set fetch, discovery included',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  const evictions = meter.createCounter('resource_guard.cache.evictions', {
    description: 'Verified tokens dropped from the cache before their expiry',
    unit: '{token}',
  });

  // Per key set (its frozen issuers list is its identity: two verifiers of one issuer, for two
  // audiences say, have a key set each), reported per issuer: the worst state and the fewest keys
  // of the sets serving it, so one set's recovery never hides another's outage. Held weakly: a
  // verifier let go (replaced at a reload, say) stops counting once it is collected.
  type SetEntry = { state?: KeyState; keys?: number; readonly ref: WeakRef<readonly string[]> };
  const setEntries = new WeakMap<readonly string[], SetEntry>();
  /** The sets reported, least recently changed first. */
  const liveSets = new Set<WeakRef<readonly string[]>>();
  const setOf = (issuers: readonly string[]) => {
    let entry = setEntries.get(issuers);
    if (entry === undefined) {
      entry = { ref: new WeakRef(issuers) };
      setEntries.set(issuers, entry);
    }
    // Last in the order: a set whose state just changed is the last one forgotten.
    if (!liveSets.delete(entry.ref) && liveSets.size >= MAX_SETS) {
      // Bounded (a verifier per request is warned about already): collected sets go first, then
      // the one that changed least recently, listed again (with its new state) when it changes.
      for (const ref of liveSets) if (ref.deref() === undefined) liveSets.delete(ref);
      if (liveSets.size >= MAX_SETS) liveSets.delete(liveSets.values().next().value!);
    }
    liveSets.add(entry.ref);
    return entry;
  };
  const perIssuer = <T>(read: (entry: SetEntry) => T | undefined) => {
    const found = new Map<string, T[]>();
    for (const ref of liveSets) {
      const issuers = ref.deref();
      const entry = issuers && setEntries.get(issuers);
      if (issuers === undefined || entry === undefined) {
        liveSets.delete(ref);
        continue;
      }
      const value = read(entry);
      if (value === undefined) continue;
      for (const issuer of issuers) found.set(issuer, [...(found.get(issuer) ?? []), value]);
    }
    return found;
  };
  const stateGauge = meter.createObservableGauge('resource_guard.keys.state', {
    description:
      "Each issuer's key-set state (the worst of the sets serving it): 1 for the current one, 0 for the others",
    unit: '1',
  });
  const observeStates: ObservableCallback = (result) => {
    for (const [issuer, found] of perIssuer((entry) => entry.state)) {
      const current = found.reduce((a, b) => (SEVERITY[b] > SEVERITY[a] ? b : a));
      for (const state of STATES) {
        result.observe(state === current ? 1 : 0, {
          'resource_guard.issuer': issuer,
          'resource_guard.keys.state': state,
        });
      }
    }
  };
  stateGauge.addCallback(observeStates);
  // Sets created (and warmed) before this call: as they last published, not from their next change.
  for (const { issuers, state, keys } of keySetStates()) {
    const entry = setOf(issuers);
    entry.state = state;
    if (keys !== undefined) entry.keys = keys;
  }
  const keysGauge = meter.createObservableGauge('resource_guard.jwks.keys', {
    description: 'Usable keys in the last key set fetched (the fewest of the sets serving it)',
    unit: '{key}',
  });
  const observeKeys: ObservableCallback = (result) => {
    for (const [issuer, counts] of perIssuer((entry) => entry.keys)) {
      result.observe(Math.min(...counts), { 'resource_guard.issuer': issuer });
    }
  };
  keysGauge.addCallback(observeKeys);

  const onDecision = (message: unknown) => {
    const event = message as DecisionEvent;
    const { outcome, cached, reason, status, issuer } = event;
    // Bounded: outcomes × reasons × statuses × 2 × the configured issuers.
    const key = `${outcome} ${String(cached)} ${reason ?? ''} ${status ?? ''} ${issuer ?? ''}`;
    let entry = decisionCounts.get(key);
    if (entry === undefined) {
      const attributes: Attributes = {
        'resource_guard.outcome': outcome,
        'resource_guard.cache_hit': cached,
      };
      if (reason !== undefined) attributes['resource_guard.reason'] = reason;
      if (status !== undefined) attributes['http.response.status_code'] = status;
      if (issuer !== undefined) attributes['resource_guard.issuer'] = issuer;
      entry = { attributes: Object.freeze(attributes), value: 0 };
      decisionCounts.set(key, entry);
    }
    entry.value++;
    if (!(cached && outcome === 'accepted')) {
      decisionDuration.record(event.duration / 1000, entry.attributes);
    }
  };

  const onFetch = (message: unknown) => {
    const event = message as KeysFetchEvent;
    const attributes: Attributes = { 'resource_guard.outcome': event.outcome };
    if (event.url !== undefined) attributes['url.full'] = event.url;
    if (event.error !== undefined) attributes['error.type'] = event.error;
    if (event.status !== undefined) attributes['http.response.status_code'] = event.status;
    fetches.add(1, attributes);
    fetchDuration.record(event.duration / 1000, attributes);
    if (event.keys !== undefined) setOf(event.issuers).keys = event.keys;
    const span = tracer.startSpan('resource_guard.jwks.fetch', {
      kind: SpanKind.CLIENT,
      startTime: event.startTime,
      attributes: {
        ...attributes,
        'resource_guard.issuer': [...event.issuers],
        ...(event.keys === undefined ? {} : { 'resource_guard.jwks.keys': event.keys }),
      },
    });
    if (event.outcome === 'error') {
      span.setStatus({ code: SpanStatusCode.ERROR, message: event.error ?? 'error' });
    }
    span.end(event.startTime + event.duration);
  };

  const onState = (message: unknown) => {
    const event = message as KeysStateEvent;
    setOf(event.issuers).state = event.to;
  };

  const onEvict = (message: unknown) => {
    const event = message as CacheEvictEvent;
    evictions.add(event.count, { 'resource_guard.reason': event.reason });
  };

  const stops = [
    subscribeTo(CHANNELS.decision, onDecision),
    subscribeTo(CHANNELS.keysFetch, onFetch),
    subscribeTo(CHANNELS.keysState, onState),
    subscribeTo(CHANNELS.cacheEvict, onEvict),
  ];
  let stopped = false;
  const instrumentation: Instrumentation = Object.freeze({
    stop() {
      if (stopped) return;
      stopped = true;
      for (const stop of stops) stop();
      // Nothing more is observed (the SDK keeps exporting the last cumulative values it has).
      decisions.removeCallback(observeDecisions);
      stateGauge.removeCallback(observeStates);
      keysGauge.removeCallback(observeKeys);
      if (instrumented.get(meterProvider) === instrumentation) instrumented.delete(meterProvider);
    },
  });
  return instrumentation;
}
