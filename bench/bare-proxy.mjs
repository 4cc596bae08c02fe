// Baseline for bench/adapter.mjs: a minimal node:http reverse proxy with no authorization. It does
// what the adapter does minus the verification: buffer the request body, forward headers and body
// over a pooled keep-alive connection (same pool settings as the adapter), pipe the response back.
//
//   node bench/bare-proxy.mjs UPSTREAM_PORT [PORT]   (port reported over IPC when forked)
//
// IPC: {cmd: 'cpu'} → {cpu: process.cpuUsage()}. Exits when the parent disconnects.

import console from 'node:console';
import { Buffer } from 'node:buffer';
import { Agent, createServer, request } from 'node:http';
import process from 'node:process';

// The same hop-by-hop set the adapter strips, so both proxies forward the same headers.
import { isHopByHop } from '../dist/pkg/adapter/hop-by-hop.js';

const upstreamPort = Number(process.argv[2]);
const port = Number(process.argv[3] ?? 0);
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0) {
  console.error('usage: node bench/bare-proxy.mjs UPSTREAM_PORT [PORT]');
  process.exit(2);
}

// The adapter's defaults: keepAlive, maxSockets 256 (upstreamMaxSockets), maxFreeSockets 64.
const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });

function copyHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !isHopByHop(name, undefined)) out[name] = value;
  }
  return out;
}

const server = createServer((req, res) => {
  const chunks = [];
  let total = 0;
  req.on('data', (chunk) => {
    chunks.push(chunk);
    total += chunk.length;
  });
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
    const headers = copyHeaders(req.headers);
    if (total > 0 || req.headers['content-length'] !== undefined) headers['content-length'] = String(total);
    const up = request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, copyHeaders(upRes.headers));
        upRes.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":"upstream unavailable"}');
      } else res.destroy();
    });
    up.end(total > 0 ? body : undefined);
  });
});
server.keepAliveTimeout = 120_000;

server.listen(port, '127.0.0.1', () => {
  const bound = server.address().port;
  if (process.send) process.send({ port: bound });
  else console.log(`bare proxy listening on 127.0.0.1:${bound} → 127.0.0.1:${upstreamPort}`);
});

process.on('message', (m) => {
  if (m?.cmd === 'cpu') process.send({ cpu: process.cpuUsage() });
});
process.on('disconnect', () => process.exit(0));
