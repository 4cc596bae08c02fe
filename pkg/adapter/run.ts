import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { AdapterConfig } from './config.js';
import { WORKER_SLOT_ENV } from './ledger.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { createAdminServer } from './admin-server.js';
import { startAdapter, type Adapter } from './server.js';

interface WorkerStatus {
  readonly tp: 'status';
  readonly ready: boolean;
  readonly checks: Record<string, string>;
}
type ControlMessage = { readonly tp: 'reload' } | { readonly tp: 'shutdown' };

function isStatus(m: unknown): m is WorkerStatus {
  return typeof m === 'object' && m !== null && (m as { tp?: unknown }).tp === 'status';
}

function isControl(m: unknown): m is ControlMessage {
  const tp = typeof m === 'object' && m !== null ? (m as { tp?: unknown }).tp : undefined;
  return tp === 'reload' || tp === 'shutdown';
}

/** Restart backoff of a cluster worker slot: the first restart after 500 ms, doubling each time… */
export const WORKER_RESTART_BASE_MS = 500;
/** …up to 30 s. */
export const WORKER_RESTART_MAX_MS = 30_000;
/** A worker that had been listening this long before it exited restarts its slot's backoff. */
export const WORKER_STABLE_MS = 60_000;
/**
 * A process whose startup failed exits (code 1) within this long even when a handle (a cluster
 * IPC channel, a timer, a reconnecting client) would keep its event loop alive.
 */
const FAILED_START_EXIT_MS = 1_000;

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** After a failed start: exit once the caller has reported the error, whatever is still open. */
function exitAfterFailedStart(): void {
  process.exitCode = 1;
  // Unref'd: the process exits by itself when nothing else is open; this only ends a stuck one.
  setTimeout(() => process.exit(1), FAILED_START_EXIT_MS).unref();
}

/**
 * Stop once on the first SIGTERM/SIGINT; a repeated signal while stopping is logged and ignored
 * (the drain is bounded by `shutdownTimeoutMs`; SIGKILL ends the process at once).
 */
function onStopSignals(log: Logger, stop: (signal: string) => void): void {
  let stopping = false;
  const handle = (signal: string) => {
    if (stopping) {
      log.warn('already draining: signal ignored', { signal });
      return;
    }
    stopping = true;
    stop(signal);
  };
  process.on('SIGTERM', () => handle('SIGTERM'));
  process.on('SIGINT', () => handle('SIGINT'));
}

/**
 * Run the adapter as a service until SIGTERM/SIGINT: one process, or with `workers > 1` a cluster
 * primary that forks the workers (they share the listener), serves the admin port with metrics
 * aggregated over all workers, restarts a worker that exits (with backoff), forwards SIGHUP
 * (reload) and drains every worker on shutdown. A second SIGTERM/SIGINT during the drain is logged
 * and ignored. Resolves when the service has stopped.
 *
 * This is a process's service loop: when the adapter (or a cluster worker) cannot start, the
 * returned promise rejects with the reason and the process exits with code 1 within a second, even
 * if an open handle would otherwise keep it alive.
 */
export async function runAdapter(config: AdapterConfig, log?: Logger): Promise<void> {
  const logger = log ?? createLogger(config.logLevel, process.stderr, { instance: config.instance });
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, logger);
  if (cluster.isWorker) return runWorker(config, logger);
  let adapter: Adapter;
  try {
    adapter = await startAdapter(config, { log: logger });
  } catch (e) {
    exitAfterFailedStart();
    throw e;
  }
  await untilSignalled(adapter, logger);
}

function untilSignalled(adapter: Adapter, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onHup = () => {
      log.info('SIGHUP: reloading bundles', {});
      void adapter.reload();
    };
    process.on('SIGHUP', onHup);
    onStopSignals(log, (signal) => {
      log.info('shutting down', { signal });
      process.off('SIGHUP', onHup);
      void adapter.close().then(resolve);
    });
  });
}

async function runWorker(config: AdapterConfig, log: Logger): Promise<void> {
  // Control messages and signals are taken from the start: a shutdown that arrives while the
  // worker is still starting is honoured once it has started (or it has failed and exits anyway).
  let adapter: Adapter | undefined;
  let stop: (() => void) | undefined;
  let stopRequested = false;
  const requestStop = () => {
    stopRequested = true;
    stop?.();
  };
  process.on('message', (m: unknown) => {
    if (!isControl(m)) return;
    if (m.tp === 'reload') void adapter?.reload();
    else requestStop();
  });
  // The primary drives shutdown; a signal sent to the whole process group (and any repeat) is
  // handled once.
  process.on('SIGTERM', requestStop);
  process.on('SIGINT', requestStop);
  process.on('SIGHUP', () => undefined);
  process.once('disconnect', requestStop);
  try {
    adapter = await startAdapter(config, { log, admin: false });
  } catch (e) {
    log.error('worker failed to start', { slot: process.env[WORKER_SLOT_ENV], error: errorText(e) });
    // The open IPC channel would keep this worker alive, never listening: leave it, and exit
    // non-zero so that the primary sees the failure and starts a replacement (with backoff).
    // cluster.worker.disconnect, not process.disconnect: on an unannounced disconnect the cluster
    // module exits the worker at once with code 0, which would hide the failure.
    exitAfterFailedStart();
    if (process.connected) cluster.worker?.disconnect();
    throw e;
  }
  const running = adapter;
  // Constructing an AggregatorRegistry in a worker installs prom-client's reply-to-primary listener.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([running.metrics.registry]);
  const report = async () => {
    const r = await running.ready();
    if (process.connected)
      process.send?.({ tp: 'status', ready: r.ready, checks: r.checks } satisfies WorkerStatus);
  };
  await report();
  const timer = setInterval(() => void report(), 1_000);
  timer.unref();
  await new Promise<void>((resolve) => {
    let stopping = false;
    stop = () => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      void running.close().then(resolve);
    };
    if (stopRequested) stop();
  });
  if (process.connected) process.disconnect?.();
}

/** One worker position of the cluster; a restarted worker keeps its slot (and so its ledger chain). */
interface WorkerSlot {
  readonly index: number;
  worker: Worker | undefined;
  /** When the current worker started listening. */
  listeningAt: number | undefined;
  /** Since when no worker of this slot listens (undefined while one does). */
  downSince: number | undefined;
  /** Consecutive restarts without a worker that stayed up `WORKER_STABLE_MS`. */
  restarts: number;
  restartTimer: NodeJS.Timeout | undefined;
}

async function runPrimary(config: AdapterConfig, log: Logger): Promise<void> {
  const statuses = new Map<number, WorkerStatus>();
  let stopping = false;
  const startedAt = Date.now();
  const slots: WorkerSlot[] = Array.from({ length: config.workers }, (_, index) => ({
    index,
    worker: undefined,
    listeningAt: undefined,
    downSince: startedAt,
    restarts: 0,
    restartTimer: undefined,
  }));
  const slotOf = new Map<number, WorkerSlot>();

  const aggregator = new AggregatorRegistry();
  const admin = createAdminServer({
    metrics: {
      registry: {
        metrics: () => aggregator.clusterMetrics(),
        contentType: aggregator.contentType,
      },
    },
    // Liveness: a slot without a listening worker for workerDownHealthLimitMs makes the pod
    // unhealthy, so that an orchestrator replaces it (readiness alone would only take it out of
    // rotation, forever, when the workers cannot come back by themselves).
    live: () => {
      if (stopping) return { ok: true };
      const now = Date.now();
      const down = slots.filter((s) => s.downSince !== undefined);
      const longest = Math.max(0, ...down.map((s) => now - s.downSince!));
      if (longest < config.workerDownHealthLimitMs) return { ok: true };
      return {
        ok: false,
        reason: 'workers_down',
        details: {
          workers: `${config.workers - down.length}/${config.workers}`,
          down_ms: longest,
          limit_ms: config.workerDownHealthLimitMs,
        },
      };
    },
    ready: async () => {
      const live = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined && !w.isDead());
      const checks: Record<string, string> = {
        workers: `${statuses.size}/${config.workers}`,
      };
      let ready = !stopping && statuses.size === config.workers && live.length === config.workers;
      for (const [id, s] of statuses) {
        if (!s.ready) {
          ready = false;
          checks[`worker_${id}`] = Object.entries(s.checks)
            .filter(([, v]) => v !== 'ok')
            .map(([k, v]) => `${k}=${v}`)
            .join(',');
        }
      }
      return { ready, checks };
    },
  });
  // The admin port first: if it cannot listen, no worker has been forked yet and the process exits.
  const i = config.adminListen.lastIndexOf(':');
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(
      Number(config.adminListen.slice(i + 1)),
      config.adminListen.slice(0, i).replace(/^\[|\]$/g, ''),
      () => resolve(),
    );
  });

  const fork = (slot: WorkerSlot): void => {
    slot.restartTimer = undefined;
    if (stopping) return;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    slot.listeningAt = undefined;
    slotOf.set(worker.id, slot);
    worker.on('message', (m: unknown) => {
      if (isStatus(m)) statuses.set(worker.id, m);
    });
    worker.once('listening', () => {
      slot.listeningAt = Date.now();
      slot.downSince = undefined;
      log.info('worker listening', { slot: slot.index, worker: worker.id, pid: worker.process.pid });
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    statuses.delete(worker.id);
    const slot = slotOf.get(worker.id);
    slotOf.delete(worker.id);
    if (slot === undefined || slot.worker !== worker) return;
    slot.worker = undefined;
    if (stopping) return;
    const now = Date.now();
    const upMs = slot.listeningAt !== undefined ? now - slot.listeningAt : 0;
    slot.listeningAt = undefined;
    slot.downSince ??= now;
    if (upMs >= WORKER_STABLE_MS) slot.restarts = 0;
    const delay = Math.min(WORKER_RESTART_BASE_MS * 2 ** Math.min(slot.restarts, 16), WORKER_RESTART_MAX_MS);
    slot.restarts += 1;
    log.error('worker exited; restarting', {
      slot: slot.index,
      worker: worker.id,
      pid: worker.process.pid,
      code: code ?? undefined,
      signal: signal ?? undefined,
      up_ms: upMs,
      restart_in_ms: delay,
      restarts: slot.restarts,
    });
    slot.restartTimer = setTimeout(() => fork(slot), delay);
  });
  for (const slot of slots) fork(slot);
  log.info('adapter primary started', { workers: config.workers, admin: config.adminListen });

  await new Promise<void>((resolve) => {
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading bundles in every worker', {});
      for (const w of Object.values(cluster.workers ?? {}))
        w?.send({ tp: 'reload' } satisfies ControlMessage);
    });
    onStopSignals(log, (signal) => {
      stopping = true;
      log.info('shutting down workers', { signal });
      for (const slot of slots) clearTimeout(slot.restartTimer);
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      for (const w of workers) if (w.isConnected()) w.send({ tp: 'shutdown' } satisfies ControlMessage);
      const deadline = setTimeout(() => {
        for (const w of workers) if (!w.isDead()) w.kill('SIGKILL');
      }, config.shutdownTimeoutMs + 5_000);
      deadline.unref();
      const check = () => {
        if (workers.every((w) => w.isDead())) {
          clearTimeout(deadline);
          admin.close(() => resolve());
          admin.closeAllConnections();
        } else setTimeout(check, 50);
      };
      check();
    });
  });
}
