import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAdapter, startUpstream, type TestAdapter, type Upstream } from '../helpers/adapter.js';
import { createWorld, signedJson, type World } from '../helpers/fixture.js';

// Unauthenticated memory exhaustion: an adapter that buffered every body before looking at the
// credentials grew by a gigabyte under 1,500 stalled 1 MiB uploads. Bodies are now read only once
// the passport, route and policy have passed, and every buffered byte counts against one budget
// (maxBufferedBodyBytes): beyond it a body is refused 503 `overloaded` before it is read.

const MIB = 1024 * 1024;

let world: World;
let upstream: Upstream;
let tp: TestAdapter;

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream();
  tp = await startTestAdapter(world, {
    upstream: upstream.url,
    maxBodyBytes: MIB,
    maxBufferedBodyBytes: 2 * MIB,
  });
});
afterAll(async () => {
  await tp?.adapter.close();
  await upstream?.close();
});

/** Open a raw connection, send `head` and `prefix`, then stall; resolves with the first bytes answered. */
function stalledUpload(head: string, prefix: Buffer): { socket: Socket; answer: Promise<string> } {
  const u = new URL(tp.base);
  const socket = connect(Number(u.port), u.hostname);
  const answer = new Promise<string>((resolve) => {
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) resolve(got);
    });
    socket.on('close', () => resolve(got));
    socket.on('error', () => resolve(got));
  });
  socket.write(head);
  socket.write(prefix);
  return { socket, answer };
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${tp.admin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels}`) && !l.startsWith('#'));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('attack: unauthenticated memory exhaustion', () => {
  it('200 stalled 1 MiB uploads without credentials are answered 401 at once and buffer nothing', async () => {
    const head =
      'POST /v1/orders HTTP/1.1\r\nHost: orders.example\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${MIB}\r\n\r\n`;
    const uploads = Array.from({ length: 200 }, () => stalledUpload(head, Buffer.alloc(4096, 0x61)));
    try {
      const answers = await Promise.all(uploads.map((u) => u.answer));
      // Every one answered without waiting for its body (which never comes).
      expect(answers.filter((a) => a.startsWith('HTTP/1.1 401'))).toHaveLength(200);
      expect(answers.every((a) => /x-trustplane-reason: missing_passport/i.test(a))).toBe(true);
      expect(answers.every((a) => /connection: close/i.test(a))).toBe(true);
      expect(await metric('trustplane_buffered_body_bytes')).toBe(0);
      expect(upstream.requests).toHaveLength(0);
    } finally {
      for (const u of uploads) u.socket.destroy();
    }
  });

  it('bodies of valid requests beyond the budget are refused 503 overloaded before they are read', async () => {
    const refusedBefore = await metric('trustplane_overload_refusals_total', '{kind="body_budget"}');
    const stalled: ReturnType<typeof stalledUpload>[] = [];
    try {
      // Four signed 1 MiB uploads that stall after their first bytes: each passes the passport and
      // route checks and reserves its declared length; the 2 MiB budget holds two.
      for (let i = 0; i < 4; i++) {
        const body = JSON.stringify({ pad: 'x'.repeat(MIB - 20) });
        const s = await signedJson(world, body);
        const headers = Object.entries({
          ...s.headers,
          host: 'orders.example',
          'content-length': String(body.length),
        })
          .map(([k, v]) => `${k}: ${v}`)
          .join('\r\n');
        stalled.push(
          stalledUpload(`POST /v1/orders HTTP/1.1\r\n${headers}\r\n\r\n`, Buffer.from(body.slice(0, 1024))),
        );
        // Let each reach its body read before the next arrives.
        await new Promise((r) => setTimeout(r, 150));
      }
      const answers = await Promise.race([
        Promise.all(stalled.slice(2).map((u) => u.answer)),
        new Promise<string[]>((r) => setTimeout(() => r([]), 10_000)),
      ]);
      expect(answers).toHaveLength(2);
      for (const a of answers) {
        expect(a.startsWith('HTTP/1.1 503')).toBe(true);
        expect(a).toMatch(/x-trustplane-reason: overloaded/i);
      }
      // Two declared lengths are held (each body is MiB - 10 bytes).
      expect(await metric('trustplane_buffered_body_bytes')).toBe(2 * (MIB - 10));
      expect(await metric('trustplane_overload_refusals_total', '{kind="body_budget"}')).toBe(
        refusedBefore + 2,
      );
    } finally {
      for (const u of stalled) u.socket.destroy();
    }
    // The budget is given back when the exchanges end.
    const deadline = Date.now() + 10_000;
    while ((await metric('trustplane_buffered_body_bytes')) !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await metric('trustplane_buffered_body_bytes')).toBe(0);
  });
});

describe('attack: slow clients hold sockets only until their deadlines', () => {
  it('slow headers and a slow body are cut within about a second of headersTimeoutMs / requestTimeoutMs', async () => {
    const slow = await startTestAdapter(world, {
      upstream: upstream.url,
      headersTimeoutMs: 1_000,
      requestTimeoutMs: 2_000,
    });
    try {
      const u = new URL(slow.base);
      const timeToClose = (send: (s: Socket) => void) =>
        new Promise<number>((resolve) => {
          const started = Date.now();
          const socket = connect(Number(u.port), u.hostname, () => send(socket));
          socket.on('data', () => undefined);
          socket.on('close', () => resolve(Date.now() - started));
          socket.on('error', () => undefined);
          // A drip that never finishes.
          const drip = setInterval(() => socket.writable && socket.write('a'), 200);
          socket.on('close', () => clearInterval(drip));
        });
      // A valid passport for a body that never finishes: the body is read (and never completes).
      const body = JSON.stringify({ pad: 'x'.repeat(50_000) });
      const signedPost = await signedJson(world, body);
      const postHead = Object.entries({
        ...signedPost.headers,
        host: 'orders.example',
        'content-length': String(body.length),
      })
        .map(([k, v]) => `${k}: ${v}`)
        .join('\r\n');
      const [headers, slowBody] = await Promise.all([
        timeToClose((s) => s.write('GET /v1/orders/search HTTP/1.1\r\nHost: orders.example\r\nX-Slow: ')),
        timeToClose((s) => s.write(`POST /v1/orders HTTP/1.1\r\n${postHead}\r\n\r\n`)),
      ]);
      // Node checks deadlines once a second here (connectionsCheckingInterval), not every 30 s.
      expect(headers).toBeGreaterThanOrEqual(900);
      expect(headers).toBeLessThan(1_000 + 2_500);
      expect(slowBody).toBeGreaterThanOrEqual(1_900);
      expect(slowBody).toBeLessThan(2_000 + 2_500);
    } finally {
      await slow.adapter.close();
    }
  });
});
