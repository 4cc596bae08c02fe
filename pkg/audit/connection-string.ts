/**
 * A connection URL fit for messages: the password (in the userinfo or a `password` parameter) is
 * replaced by `***`; something that is not a URL is not echoed at all.
 * @param url a `postgres://` / `postgresql://` URL
 * @returns the URL without its password
 * @example
 * redactConnectionString('postgresql://app:s3cret@db:5432/ledger') // 'postgresql://app:***@db:5432/ledger'
 */
export function redactConnectionString(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '<connection string>';
  }
  if (parsed.password !== '') parsed.password = '***';
  for (const key of [...parsed.searchParams.keys()]) {
    if (/pass/i.test(key)) parsed.searchParams.set(key, '***');
  }
  return parsed.toString();
}

/** The secrets a message must not repeat: the raw URL and its password (raw and decoded). */
export function secretsOf(url: string): string[] {
  const secrets = [url];
  try {
    const parsed = new URL(url);
    const values = [
      parsed.password,
      ...[...parsed.searchParams].filter(([k]) => /pass/i.test(k)).map(([, v]) => v),
    ];
    for (const value of values) {
      if (value === '') continue;
      secrets.push(value);
      try {
        secrets.push(decodeURIComponent(value));
      } catch {
        // not percent-encoded
      }
    }
  } catch {
    // not a URL: the whole string is the secret
  }
  return secrets.filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}
