/**
 * What a ledger reader yields in place of an input it could not read as JSON (a line that is not
 * JSON, or longer than the line bound). It takes the record's position, so {@link verifyLedgerStream}
 * reports it there as `malformed_record` (and {@link verifyChain} too, as a record without chain
 * fields); {@link queryRecords} skips it. It is a class so that no JSON content can forge one.
 */
export class UnreadableRecord {
  /**
   * @param problem why the input was unreadable (no content of the input itself)
   */
  constructor(readonly problem: string) {}
}
