import { exampleServerSuite } from './helpers.js';

// examples/hono-app/server.ts as a real process: Hono + trustplane/middleware/hono behind the
// example's own node:http adapter.
exampleServerSuite({ name: 'hono-app', script: 'examples/hono-app/server.ts', component: 'middleware-hono' });
