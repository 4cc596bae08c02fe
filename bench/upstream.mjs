// Benchmark upstream: a plain node:http server that reads the request body and answers 200 with a
// small JSON body. Run by bench/adapter.mjs as its own process (child_process.fork), so it does not
// share the load generator's event loop.
//
//   node bench/upstream.mjs [PORT]   (default 0 = any free port; the bound port is reported over IPC
//                                      when forked, else printed on stdout)
//
// IPC: {cmd: 'cpu'} → {cpu: process.cpuUsage()}. Exits when the parent disconnects.

import console from 'node:console';
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';
import process from 'node:process';

const port = Number(process.argv[2] ?? 0);

const server = createServer((req, res) => {
  let bytes = 0;
  req.on('data', (chunk) => {
    bytes += chunk.length;
  });
  req.on('end', () => {
    const body = `{"ok":true,"method":"${req.method}","bytes":${bytes}}`;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-bench-upstream': '1',
    });
    res.end(body);
  });
});
// Longer than any pause in the benchmark, so pooled proxy→upstream connections are never closed
// under a request (keep-alive race).
server.keepAliveTimeout = 120_000;

server.listen(port, '127.0.0.1', () => {
  const bound = server.address().port;
  if (process.send) process.send({ port: bound });
  else console.log(`upstream listening on 127.0.0.1:${bound}`);
});

process.on('message', (m) => {
  if (m?.cmd === 'cpu') process.send({ cpu: process.cpuUsage() });
});
process.on('disconnect', () => process.exit(0));
