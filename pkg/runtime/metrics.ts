import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The adapter's Prometheus metrics, in their own registry (one per adapter instance). */
export interface AdapterMetrics {
  readonly registry: Registry;
  readonly decisions: Counter<'outcome' | 'reason' | 'route'>;
  readonly verifySeconds: Histogram<'outcome'>;
  readonly upstreamSeconds: Histogram<'status_class'>;
  readonly upstreamErrors: Counter<'kind'>;
  readonly inFlight: Gauge;
  readonly bundleReloads: Counter<'bundle' | 'result'>;
  readonly bundleLoadedAt: Gauge<'bundle'>;
  readonly bundleIssuedAt: Gauge<'bundle'>;
  /** Fetches of a bundle URL by bundle, result (success, failure) and reason. */
  readonly bundleFetches: Counter<'bundle' | 'result' | 'reason'>;
  readonly replayStoreErrors: Counter;
  readonly replayAmnesia: Counter<'store' | 'cause'>;
  readonly replayFailClosedUntil: Gauge;
  readonly auditWriteFailures: Counter;
  readonly auditBufferDepth: Gauge;
  readonly auditConflicts: Counter;
  readonly bufferedBodyBytes: Gauge;
  readonly overloadRefusals: Counter<'kind'>;
}

/** Options for {@link createAdapterMetrics}. */
export interface AdapterMetricsOptions {
  /** Also collect Node process metrics (default true). */
  readonly processMetrics?: boolean;
  /** Supplies bundle ages at scrape time, seconds by bundle name. */
  readonly bundleAges?: () => Readonly<Record<string, number | undefined>>;
  /** Supplies, for bundles pulled from a URL, the seconds since their source last answered. */
  readonly bundleContactAges?: () => Readonly<Record<string, number | undefined>>;
}

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const UPSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Create the adapter metrics. Names are prefixed `trustplane_`; label values are bounded (reason
 * codes, route ids from the signed bundle, fixed enums), never caller-chosen strings.
 * @example
 * const metrics = createAdapterMetrics(); await metrics.registry.metrics()
 */
export function createAdapterMetrics(options: AdapterMetricsOptions = {}): AdapterMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'trustplane_' });
  const registers = [registry];
  const bundleAges = options.bundleAges;
  const ageGauge = new Gauge({
    name: 'trustplane_bundle_age_seconds',
    help: 'Seconds since the loaded bundle was issued (issued_at), by bundle.',
    labelNames: ['bundle'],
    registers,
    collect() {
      if (!bundleAges) return;
      for (const [bundle, age] of Object.entries(bundleAges()))
        if (age !== undefined) this.set({ bundle }, age);
    },
  });
  void ageGauge;
  const contactAges = options.bundleContactAges;
  new Gauge({
    name: 'trustplane_bundle_source_contact_age_seconds',
    help: 'Seconds since the bundle URL last answered (200 or 304), by bundle; absent for files.',
    labelNames: ['bundle'],
    registers,
    collect() {
      if (!contactAges) return;
      for (const [bundle, age] of Object.entries(contactAges()))
        if (age !== undefined) this.set({ bundle }, age);
    },
  });
  return {
    registry,
    decisions: new Counter({
      name: 'trustplane_decisions_total',
      help: 'Authorization decisions by outcome, reason code and route.',
      labelNames: ['outcome', 'reason', 'route'],
      registers,
    }),
    verifySeconds: new Histogram({
      name: 'trustplane_verification_duration_seconds',
      help: 'Time to decide one request (body read excluded), by outcome.',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    upstreamSeconds: new Histogram({
      name: 'trustplane_upstream_duration_seconds',
      help: 'Time from forwarding to upstream response headers, by status class.',
      labelNames: ['status_class'],
      buckets: UPSTREAM_BUCKETS,
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'trustplane_upstream_errors_total',
      help: 'Upstream failures after an allow, by kind (connect, timeout, reset).',
      labelNames: ['kind'],
      registers,
    }),
    inFlight: new Gauge({
      name: 'trustplane_in_flight_requests',
      help: 'Requests being verified or proxied.',
      registers,
    }),
    bundleReloads: new Counter({
      name: 'trustplane_bundle_reloads_total',
      help: 'Bundle reload attempts by bundle (trust_material, policy) and result (success, failure).',
      labelNames: ['bundle', 'result'],
      registers,
    }),
    bundleLoadedAt: new Gauge({
      name: 'trustplane_bundle_loaded_timestamp_seconds',
      help: 'When the bundle in force was loaded (epoch seconds).',
      labelNames: ['bundle'],
      registers,
    }),
    bundleIssuedAt: new Gauge({
      name: 'trustplane_bundle_issued_timestamp_seconds',
      help: 'The issued_at of the bundle in force (epoch seconds).',
      labelNames: ['bundle'],
      registers,
    }),
    bundleFetches: new Counter({
      name: 'trustplane_bundle_fetches_total',
      help: 'Fetches of a bundle URL by bundle, result (success, failure) and reason (none, not_modified; network, timeout, http_status, unauthorized, too_large; or the refusal of the document: bundle_signature_invalid, bundle_conflict, invalid_bundle, ...).',
      labelNames: ['bundle', 'result', 'reason'],
      registers,
    }),
    replayStoreErrors: new Counter({
      name: 'trustplane_replay_store_errors_total',
      help: 'Replay store failures (each denied the request with replay_store_unavailable).',
      registers,
    }),
    replayAmnesia: new Counter({
      name: 'trustplane_replay_amnesia_total',
      help: 'Times the replay store found it had lost consumed jtis (store redis or journal; cause e.g. epoch_missing, keys_evicted, damaged_records).',
      labelNames: ['store', 'cause'],
      registers,
    }),
    replayFailClosedUntil: new Gauge({
      name: 'trustplane_replay_fail_closed_until_seconds',
      help: 'End of the replay store fail-closed window after a loss (epoch seconds; 0 when none): passports that may predate the loss are refused until then.',
      // workers: the latest window of any of them
      aggregator: 'max',
      registers,
    }),
    auditWriteFailures: new Counter({
      name: 'trustplane_audit_write_failures_total',
      help: 'Audit events that could not be written.',
      registers,
    }),
    auditBufferDepth: new Gauge({
      name: 'trustplane_audit_buffer_depth',
      help: 'Ledger records waiting to be written (PostgreSQL ledger: memory and disk buffer).',
      registers,
    }),
    auditConflicts: new Counter({
      name: 'trustplane_audit_conflicts_total',
      help: 'Spilled ledger records that conflict with the committed chain (a fork loser), set aside in a <spill>.conflict-<ms>.jsonl file at start.',
      registers,
    }),
    bufferedBodyBytes: new Gauge({
      name: 'trustplane_buffered_body_bytes',
      help: 'Request body bytes buffered right now (reserved against maxBufferedBodyBytes).',
      registers,
    }),
    overloadRefusals: new Counter({
      name: 'trustplane_overload_refusals_total',
      help: 'Requests and connections refused for capacity: kind body_budget (503 overloaded), in_flight (maxInFlight reached: 503 overloaded before the request is read), upstream_queue (no upstream connection within upstreamQueueTimeoutMs: 503 overloaded before the jti is consumed) or connections (maxConnections reached: the connection is closed).',
      labelNames: ['kind'],
      registers,
    }),
  };
}
