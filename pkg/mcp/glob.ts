/**
 * Compile a name pattern: exact text, where `*` matches any run of characters (`/` included) and
 * `\*` is a literal star. The whole name must match.
 * @param pattern the pattern of a tool, prompt or resource rule
 * @returns an anchored regular expression (no backtracking hazard: only `.*` groups)
 * @example compileGlob('github_*').test('github_create_issue') // true
 */
export function compileGlob(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && pattern[i + 1] === '*') {
      source += '\\*';
      i++;
    } else if (ch === '*') {
      // Consecutive stars are one star: keeps the expression linear.
      if (!source.endsWith('[\\s\\S]*')) source += '[\\s\\S]*';
    } else {
      source += ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`, 'u');
}
