/**
 * The small primitives a SQL engine needs from a database: run a statement, read rows, and
 * run a function inside one serializable transaction. The metadata logic is written once
 * above this (SqlMetaEngine); SQLite and PostgreSQL each implement only this driver.
 * Statements use `?` placeholders and portable SQL; drivers translate what differs.
 */
export type SqlValue = number | string | Buffer | null;
export type Row = Record<string, SqlValue>;

export interface SqlRunner {
  all(sql: string, params?: SqlValue[]): Promise<Row[]>;
  get(sql: string, params?: SqlValue[]): Promise<Row | undefined>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: SqlValue[]): Promise<number>;
}

export interface SqlDriver extends SqlRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * True when other processes may use the same database (PostgreSQL): changes are then
   * announced with `notify` inside the transaction and heard through `listen`, by every
   * instance in commit order. False (SQLite): one process; callers announce locally.
   */
  readonly shared: boolean;
  notify?(tx: SqlRunner, channel: string, payload: string): Promise<void>;
  listen?(channel: string, handler: (payload: string) => void): Promise<() => void>;
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Column types per dialect, substituted into the schema: {int} and {blob}. */
export function dialectSql(sql: string, dialect: SqlDriver['dialect']): string {
  return dialect === 'postgres'
    ? sql.replaceAll('{int}', 'BIGINT').replaceAll('{blob}', 'BYTEA')
    : sql.replaceAll('{int}', 'INTEGER').replaceAll('{blob}', 'BLOB');
}
