import { MemoryReplayStore } from '../authcore/memory-replay-store.js';
import type { ReplayStore } from '../authcore/replay-store.js';
import type { AdapterConfig } from './config.js';
import type { Logger } from '../runtime/logger.js';
import { JournalReplayStore } from '../replay/journal-store.js';
import { RedisReplayStore } from '../replay/redis-store.js';

/**
 * Open the replay store the configuration names: the memory store with its CBOR journal (single
 * process; `replayJournal: "off"` keeps it in memory only), or Redis (shared across workers and
 * replicas). Rejects when the store cannot be opened: the adapter never starts without one.
 */
export async function openReplayStore(
  config: AdapterConfig,
  deps: { readonly log: Logger; readonly onError?: () => void; readonly clock?: () => number },
): Promise<ReplayStore> {
  if (config.replayStore === 'redis') {
    return RedisReplayStore.connect({
      url: config.redisUrl!,
      keyPrefix: config.redisKeyPrefix,
      commandTimeoutMs: config.redisCommandTimeoutMs,
      ...(deps.onError ? { onError: deps.onError } : {}),
    });
  }
  if (config.replayJournal === 'off') {
    deps.log.warn('replay journal is off: jtis consumed before a restart could be replayed after it', {});
    return new MemoryReplayStore({ maxEntriesPerScope: config.replayMaxEntriesPerSubject });
  }
  return JournalReplayStore.open(config.replayJournal, {
    fsync: config.replayJournalFsync,
    maxEntriesPerScope: config.replayMaxEntriesPerSubject,
    ...(deps.clock ? { now: deps.clock } : {}),
  });
}
