import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { signRequest } from '../../../pkg/proof/index.js';
import { CliError, collect } from '../io.js';
import { addPassportOptions, issueFromFlags, type PassportFlags } from './passport.js';
import { loadPrivateKey } from './keys.js';

interface SignFlags extends PassportFlags {
  method: string;
  url?: string;
  path?: string;
  baseUrl?: string;
  routeId: string;
  header?: string[];
  body?: string;
  bodyFile?: string;
  nonce?: string;
  cover?: string[];
  curl?: boolean;
  json?: boolean;
}

/** POSIX shell single-quote. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The body (`--body` or `--body-file`, exact bytes) and headers (`--header 'Name: value'`, names
 * lowercased) of a request given on the command line; a body without `Content-Type` is sent as
 * `application/octet-stream` (so the header that is covered is the one sent).
 */
export function requestBodyAndHeaders(opts: {
  body?: string | undefined;
  bodyFile?: string | undefined;
  header?: string[] | undefined;
}): { body: Uint8Array | undefined; headers: Record<string, string> } {
  if (opts.body !== undefined && opts.bodyFile !== undefined) {
    throw new CliError('give only one of --body or --body-file', 'usage', 2);
  }
  let body: Uint8Array | undefined;
  if (opts.bodyFile !== undefined) {
    try {
      body = new Uint8Array(readFileSync(opts.bodyFile));
    } catch {
      throw new CliError(`cannot read ${opts.bodyFile}`, 'io');
    }
  } else if (opts.body !== undefined) {
    body = new TextEncoder().encode(opts.body);
  }
  const headers = parseHeaders(opts.header);
  if (body !== undefined && body.length > 0 && headers['content-type'] === undefined) {
    headers['content-type'] = 'application/octet-stream';
  }
  return { body, headers };
}

function parseHeaders(lines: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines ?? []) {
    const colon = line.indexOf(':');
    if (colon < 1) throw new CliError(`--header ${JSON.stringify(line)} must be 'Name: value'`, 'usage', 2);
    const name = line.slice(0, colon).trim();
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name))
      throw new CliError(`invalid header name ${name}`, 'usage', 2);
    out[name.toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}

/** `trustplane sign` */
export function registerSign(program: Command): void {
  addPassportOptions(
    program
      .command('sign')
      .description(
        'Self-issue a passport and sign ONE request with it: prints the five proof headers (or a curl command, or JSON).',
      ),
  )
    .option('--method <method>', 'HTTP method', 'GET')
    .option('--url <url>', 'absolute target URL: scheme, authority, path and query exactly as sent')
    .option('--path <path>', 'path (and query) to append to --base-url')
    .option('--base-url <url>', 'origin for --path, e.g. https://orders.example')
    .requiredOption('--route-id <id>', 'route id the verifier resolves for this request')
    .option('--header <header>', "request header 'Name: value' (repeatable)", collect)
    .option('--body <text>', 'request body (UTF-8)')
    .option('--body-file <file>', 'request body from a file (exact bytes)')
    .option('--nonce <nonce>', 'fixed nonce (default random; for reproducible vectors)')
    .option('--cover <header>', 'also cover this header in the transcript (repeatable)', collect)
    .option('--curl', 'print a runnable curl command')
    .option('--json', 'print the headers as JSON')
    .addHelpText(
      'after',
      [
        '',
        'A body without a Content-Type header is sent as application/octet-stream.',
        '',
        'Examples:',
        '  trustplane sign --private-key @caller.key --issuer https://issuer.example --subject service:orders-client \\',
        '    --audience orders-api --trust-domain example.local --kid caller-2026-01 \\',
        '    --method POST --url https://orders.example/v1/orders --route-id orders.create \\',
        '    --header \'Content-Type: application/json\' --body \'{"order_id":"ord_123"}\' --curl',
      ].join('\n'),
    )
    .action(async (opts: SignFlags) => {
      if ((opts.url === undefined) === (opts.path === undefined)) {
        throw new CliError('give exactly one of --url or --path (with --base-url)', 'usage', 2);
      }
      if (opts.path !== undefined && opts.baseUrl === undefined)
        throw new CliError('--path needs --base-url', 'usage', 2);
      const { body, headers } = requestBodyAndHeaders(opts);
      const url =
        opts.url ??
        `${opts.baseUrl!.replace(/\/+$/, '')}${opts.path!.startsWith('/') ? '' : '/'}${opts.path!}`;
      const key = await loadPrivateKey(opts.privateKey);
      const { token } = await issueFromFlags(opts, key);
      const signed = await signRequest({
        method: opts.method.toUpperCase(),
        url,
        routeId: opts.routeId,
        passport: token,
        requestKey: key,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(opts.cover ? { coveredHeaders: opts.cover } : {}),
        ...(opts.nonce !== undefined ? { nonce: opts.nonce } : {}),
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(signed.headers, null, 2)}\n`);
      } else if (opts.curl) {
        const parts = ['curl', '-sS', '--path-as-is', '-X', opts.method.toUpperCase(), shellQuote(url)];
        for (const [name, value] of Object.entries(signed.headers))
          parts.push('-H', shellQuote(`${name}: ${value}`));
        if (opts.bodyFile !== undefined) parts.push('--data-binary', shellQuote(`@${opts.bodyFile}`));
        else if (opts.body !== undefined) parts.push('--data-raw', shellQuote(opts.body));
        process.stdout.write(`${parts.join(' ')}\n`);
      } else {
        for (const [name, value] of Object.entries(signed.headers))
          process.stdout.write(`${name}: ${value}\n`);
      }
    });
}
