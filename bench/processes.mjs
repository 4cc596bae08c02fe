// Process and loopback helpers the benchmarks share: child processes tracked and killed on every
// exit path, a free loopback port, and a GET on a fresh connection.

import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import process from 'node:process';

const children = new Set();
const atExit = [];

/** Track a child process: it is SIGKILLed when this process exits (normally or on a signal). */
export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL every tracked child still running. */
export function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

/** Run `fn` at exit, after the children are killed (e.g. remove a temp directory). */
export function onExit(fn) {
  atExit.push(fn);
}

process.on('exit', () => {
  killAll();
  for (const fn of atExit) {
    try {
      fn();
    } catch {
      // best effort at exit
    }
  }
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** A loopback port free right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** GET on a fresh connection; resolves { status, text }. */
export function fetchText(url, timeoutMs = 5_000) {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}
