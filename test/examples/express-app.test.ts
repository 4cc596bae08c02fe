import { exampleServerSuite } from './helpers.js';

// examples/express-app/server.ts as a real process: Express 5 + trustplane/middleware/node, placed
// before express.json().
exampleServerSuite({
  name: 'express-app',
  script: 'examples/express-app/server.ts',
  component: 'middleware-node',
});
