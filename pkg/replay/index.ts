export {
  MemoryReplayStore,
  assertReplayArguments,
  MAX_REPLAY_KEY_BYTES,
  type ReplayStore,
  type MemoryReplayStoreOptions,
} from '../authcore/replay-store.js';
export {
  JournalReplayStore,
  type JournalReplayStoreOptions,
  type JournalFsyncMode,
} from './journal-store.js';
export {
  RedisReplayStore,
  type RedisReplayStoreOptions,
  type RedisReplayStoreConnectOptions,
} from './redis-store.js';
