import { MemoryReplayStore } from '../authcore/memory-replay-store.js';
import type { ReplayStore } from '../authcore/replay-store.js';
import type { AdapterConfig } from './config.js';
import type { Logger } from '../runtime/logger.js';
import type { AdapterMetrics } from '../runtime/metrics.js';
import { amnesiaWindowSeconds } from '../replay/amnesia.js';
import { JournalReplayStore, type JournalReplayStoreEvent } from '../replay/journal-store.js';
import { RedisReplayStore, type RedisReplayStoreEvent } from '../replay/redis-store.js';

/** What {@link openReplayStore} reports to. */
export interface ReplayStoreDeps {
  readonly log: Logger;
  readonly onError?: () => void;
  /** Epoch seconds (default system clock). */
  readonly clock?: () => number;
  /** `trustplane_replay_amnesia_total` and `trustplane_replay_fail_closed_until_seconds`. */
  readonly metrics?: Pick<AdapterMetrics, 'replayAmnesia' | 'replayFailClosedUntil'>;
}

/**
 * Open the replay store the configuration names: the memory store with its CBOR journal (single
 * process; `replayJournal: "off"` keeps it in memory only), or Redis (shared across workers and
 * replicas). Both fail closed for one window (maximum passport lifetime + 2 × skew) when they find
 * they lost consumed jtis; each such loss is one error line, a count in
 * `trustplane_replay_amnesia_total` and the window's end in
 * `trustplane_replay_fail_closed_until_seconds`. Rejects when the store cannot be opened
 * (Redis unreachable, or with an eviction policy that can drop jti keys): the adapter never starts
 * without one.
 */
export async function openReplayStore(config: AdapterConfig, deps: ReplayStoreDeps): Promise<ReplayStore> {
  const window = amnesiaWindowSeconds(config.maxLifetimeSeconds, config.skewSeconds);
  if (config.replayStore === 'redis') {
    return RedisReplayStore.connect({
      url: config.redisUrl!,
      keyPrefix: config.redisKeyPrefix,
      commandTimeoutMs: config.redisCommandTimeoutMs,
      amnesiaWindowSeconds: window,
      checkIntervalMs: config.redisCheckIntervalMs,
      allowEviction: config.redisAllowEviction,
      coldStart: config.redisColdStart,
      ...(config.redisMaxmemoryPolicy !== undefined ? { maxmemoryPolicy: config.redisMaxmemoryPolicy } : {}),
      ...(deps.clock ? { now: deps.clock } : {}),
      ...(deps.onError ? { onError: deps.onError } : {}),
      onEvent: (event) => reportRedisEvent(deps, event),
    });
  }
  if (config.replayJournal === 'off') {
    deps.log.warn('replay journal is off: jtis consumed before a restart could be replayed after it', {});
    return new MemoryReplayStore({ maxEntriesPerScope: config.replayMaxEntriesPerSubject });
  }
  return JournalReplayStore.open(config.replayJournal, {
    fsync: config.replayJournalFsync,
    maxEntriesPerScope: config.replayMaxEntriesPerSubject,
    amnesiaWindowSeconds: window,
    ...(deps.clock ? { now: deps.clock } : {}),
    onEvent: (event) => reportJournalEvent(deps, event),
  });
}

const REDIS_CAUSES: Readonly<Record<string, string>> = {
  epoch_missing:
    'its sentinel is gone (restarted without persistence, flushed, or failed over to an empty replica)',
  epoch_changed: 'another replica found a loss',
  counter_rollback: 'its write counter went back (an older snapshot, a lost AOF tail, or a lagging replica)',
  keys_evicted: 'it evicted keys',
  cold_start: 'it had no sentinel at startup (redisColdStart fail-closed)',
  window_shared: 'another replica found a loss whose fail-closed window is still running',
};

function reportAmnesia(deps: ReplayStoreDeps, store: string, cause: string, until: number): void {
  deps.metrics?.replayAmnesia.inc({ store, cause });
  deps.metrics?.replayFailClosedUntil.set(until);
}

function reportRedisEvent(deps: ReplayStoreDeps, event: RedisReplayStoreEvent): void {
  switch (event.type) {
    case 'amnesia':
      reportAmnesia(deps, 'redis', event.cause, event.until);
      deps.log.error(
        'replay store lost consumed jtis: failing closed for passports that may predate the loss (503 replay_store_amnesia, /readyz replay_store amnesia)',
        {
          store: 'redis',
          cause: event.cause,
          detail: REDIS_CAUSES[event.cause] ?? event.cause,
          until: new Date(event.until * 1000).toISOString(),
        },
      );
      return;
    case 'recovered':
      deps.log.info('replay store fail-closed window over', { store: 'redis' });
      return;
    case 'epoch_created':
      deps.log.warn(
        'replay store sentinel created: a new Redis, or one that lost its data while no adapter ran (see docs/operations.md, Redis requirements)',
        { store: 'redis' },
      );
      return;
    case 'eviction_policy':
      (event.allowed ? deps.log.warn : deps.log.error).call(
        deps.log,
        event.allowed
          ? 'Redis maxmemory-policy can evict jti keys; allowed by redisAllowEviction: each eviction fails closed for one window'
          : 'Redis maxmemory-policy can evict jti keys: every request is refused 503 until it is noeviction',
        { store: 'redis', policy: event.policy ?? 'unknown' },
      );
      return;
    case 'eviction_policy_ok':
      deps.log.info('Redis maxmemory-policy is noeviction again', { store: 'redis' });
      return;
  }
}

const JOURNAL_PATH_PROBLEMS: Readonly<Record<string, string>> = {
  missing: 'the journal file was unlinked (or its directory removed) while the adapter ran',
  replaced: 'another file was renamed over the journal while the adapter ran',
};

function reportJournalEvent(deps: ReplayStoreDeps, event: JournalReplayStoreEvent): void {
  if (event.type === 'recovered') {
    deps.log.info('replay store fail-closed window over', { store: 'journal' });
    return;
  }
  if (event.type === 'journal_rewritten') {
    deps.log.warn('replay journal file was lost while running and has been rewritten from memory', {
      store: 'journal',
      cause: event.cause,
      detail: JOURNAL_PATH_PROBLEMS[event.cause] ?? event.cause,
    });
    return;
  }
  if (event.type === 'journal_rewrite_failed') {
    deps.log.error(
      'replay journal file was lost while running and cannot be rewritten: every request is refused 503 replay_store_unavailable (/readyz replay_store journal_write_failed) until it can',
      {
        store: 'journal',
        cause: event.cause,
        detail: JOURNAL_PATH_PROBLEMS[event.cause] ?? event.cause,
        error: event.error,
      },
    );
    return;
  }
  if (event.cause === 'restored') {
    // Not a new loss: the window an earlier run opened is still running.
    deps.metrics?.replayFailClosedUntil.set(event.until);
    deps.log.warn('replay journal: still failing closed after an earlier loss', {
      store: 'journal',
      until: new Date(event.until * 1000).toISOString(),
    });
    return;
  }
  reportAmnesia(deps, 'journal', event.cause, event.until);
  deps.log.error(
    event.cause === 'empty_journal'
      ? 'replay journal is empty (the adapter never leaves an empty journal: its contents were lost): failing closed for passports that may predate the loss (503 replay_store_amnesia, /readyz replay_store amnesia)'
      : 'replay journal had damaged records (checksum mismatch, torn or zero-filled tail or head): failing closed for passports that may predate them (503 replay_store_amnesia, /readyz replay_store amnesia)',
    {
      store: 'journal',
      cause: event.cause,
      bytes: event.bytes ?? 0,
      offset: event.firstOffset ?? 0,
      until: new Date(event.until * 1000).toISOString(),
    },
  );
}
