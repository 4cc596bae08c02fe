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

/**
 * Run the adapter as a service until SIGTERM/SIGINT: one process, or with `workers > 1` a cluster
 * primary that forks the workers (they share the listener), serves the admin port with metrics
 * aggregated over all workers, forwards SIGHUP (reload) and drains every worker on shutdown.
 * Resolves when the service has stopped.
 */
export async function runAdapter(config: AdapterConfig, log?: Logger): Promise<void> {
  const logger = log ?? createLogger(config.logLevel, process.stderr, { instance: config.instance });
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, logger);
  if (cluster.isWorker) return runWorker(config, logger);
  const adapter = await startAdapter(config, { log: logger });
  await untilSignalled(adapter, logger);
}

function untilSignalled(adapter: Adapter, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onHup = () => {
      log.info('SIGHUP: reloading bundles', {});
      void adapter.reload();
    };
    const onStop = (signal: string) => {
      log.info('shutting down', { signal });
      process.off('SIGHUP', onHup);
      void adapter.close().then(resolve);
    };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => onStop('SIGTERM'));
    process.once('SIGINT', () => onStop('SIGINT'));
  });
}

async function runWorker(config: AdapterConfig, log: Logger): Promise<void> {
  const adapter = await startAdapter(config, { log, admin: false });
  // Constructing an AggregatorRegistry in a worker installs prom-client's reply-to-primary listener.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([adapter.metrics.registry]);
  const report = async () => {
    const r = await adapter.ready();
    if (process.connected)
      process.send?.({ tp: 'status', ready: r.ready, checks: r.checks } satisfies WorkerStatus);
  };
  await report();
  const timer = setInterval(() => void report(), 1_000);
  timer.unref();
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearInterval(timer);
      void adapter.close().then(resolve);
    };
    process.on('message', (m: unknown) => {
      if (!isControl(m)) return;
      if (m.tp === 'reload') void adapter.reload();
      else stop();
    });
    // The primary drives shutdown; a signal sent to the whole process group is handled once.
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => undefined);
    process.once('disconnect', stop);
  });
  process.disconnect?.();
}

async function runPrimary(config: AdapterConfig, log: Logger): Promise<void> {
  const statuses = new Map<number, WorkerStatus>();
  let stopping = false;
  // Each worker has a stable slot (0..workers-1), kept by its replacement: per-worker resources
  // (its ledger file and chain) continue across a worker restart.
  const slots = new Map<number, number>();
  const fork = (slot: number): Worker => {
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot) });
    slots.set(worker.id, slot);
    worker.on('message', (m: unknown) => {
      if (isStatus(m)) statuses.set(worker.id, m);
    });
    return worker;
  };
  cluster.on('exit', (worker, code, signal) => {
    statuses.delete(worker.id);
    const slot = slots.get(worker.id) ?? 0;
    slots.delete(worker.id);
    if (stopping) return;
    log.error('worker exited; starting a new one', {
      worker: worker.id,
      slot,
      code: code ?? undefined,
      signal: signal ?? undefined,
    });
    setTimeout(() => fork(slot), 500).unref();
  });
  for (let i = 0; i < config.workers; i += 1) fork(i);

  const aggregator = new AggregatorRegistry();
  const admin = createAdminServer({
    metrics: {
      registry: {
        metrics: () => aggregator.clusterMetrics(),
        contentType: aggregator.contentType,
      },
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
  const i = config.adminListen.lastIndexOf(':');
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(
      Number(config.adminListen.slice(i + 1)),
      config.adminListen.slice(0, i).replace(/^\[|\]$/g, ''),
      () => resolve(),
    );
  });
  log.info('adapter primary started', { workers: config.workers, admin: config.adminListen });

  await new Promise<void>((resolve) => {
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading bundles in every worker', {});
      for (const w of Object.values(cluster.workers ?? {}))
        w?.send({ tp: 'reload' } satisfies ControlMessage);
    });
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down workers', { signal });
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      for (const w of workers) w.send({ tp: 'shutdown' } satisfies ControlMessage);
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
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
