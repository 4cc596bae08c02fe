import type { QueriedRecord } from './query-records.js';

/** Options for {@link formatTable}. */
export interface FormatTableOptions {
  /** Widest a column gets; longer cells are cut with `…` (default 48). */
  readonly maxWidth?: number;
}

/**
 * A plain fixed-width text table (a header line, then one line per record; two spaces between
 * columns; no colours). Cells are the record's members as text (`-` when absent); control
 * and bidi-override characters are shown as `?`, so a hostile record cannot send terminal escape sequences.
 * @param records the rows
 * @param columns member names, in order; they are also the header
 * @param options `maxWidth`
 * @returns the table, each line ending with a newline
 * @throws RangeError for an empty column list or a `maxWidth` below 4
 * @example
 * process.stdout.write(formatTable(rows, ['time', 'decision', 'status', 'reason']))
 */
export function formatTable(
  records: readonly QueriedRecord[],
  columns: readonly string[],
  options: FormatTableOptions = {},
): string {
  const maxWidth = options.maxWidth ?? 48;
  if (columns.length === 0) throw new RangeError('formatTable needs at least one column');
  if (!Number.isSafeInteger(maxWidth) || maxWidth < 4)
    throw new RangeError('maxWidth must be an integer >= 4');
  const rows = [
    [...columns],
    ...records.map((record) => columns.map((column) => cellText(record[column], maxWidth))),
  ];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => [...(row[i] ?? '')].length)));
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, i) => cell + ' '.repeat((widths[i] ?? 0) - [...cell].length))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

function cellText(value: unknown, maxWidth: number): string {
  let text: string;
  if (value === undefined || value === null || value === '') text = '-';
  else if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else text = JSON.stringify(value) ?? '-';
  // C0, DEL and C1 controls (ESC, CSI …) would let a record drive the terminal; bidi overrides and
  // line separators would let it disguise other cells.
  // eslint-disable-next-line no-control-regex
  text = text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, '?');
  const chars = [...text];
  return chars.length > maxWidth ? `${chars.slice(0, maxWidth - 1).join('')}…` : text;
}
