export { MemoryReplayStore, type MemoryReplayStoreOptions } from '../authcore/memory-replay-store.js';
export { assertReplayArguments, MAX_REPLAY_KEY_BYTES, type ReplayStore } from '../authcore/replay-store.js';
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
