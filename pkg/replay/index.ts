export { MemoryReplayStore, type MemoryReplayStoreOptions } from '../authcore/memory-replay-store.js';
export { assertReplayArguments, MAX_REPLAY_KEY_BYTES, type ReplayStore } from '../authcore/replay-store.js';
export { amnesiaWindowSeconds, DEFAULT_AMNESIA_WINDOW_SECONDS } from './amnesia.js';
export {
  JournalReplayStore,
  type JournalReplayStoreOptions,
  type JournalReplayStoreEvent,
  type JournalFsyncMode,
  type JournalPathProblem,
} from './journal-store.js';
export {
  RedisReplayStore,
  type RedisReplayStoreOptions,
  type RedisReplayStoreConnectOptions,
  type RedisReplayStoreEvent,
  type RedisAmnesiaCause,
  type RedisColdStart,
} from './redis-store.js';
