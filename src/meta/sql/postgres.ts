/**
 * SqlDriver on PostgreSQL through `pg`. Statements keep the engine's portable `?`
 * placeholders (translated to $1, $2, …); BIGINT columns come back as numbers. Transactions
 * run on one pooled connection each, at READ COMMITTED: the engine's first statement in every
 * mutation locks the CSN counter row, which serializes writers across every service instance.
 *
 * Cross-instance notifications use LISTEN/NOTIFY on a dedicated connection (`listen`), and a
 * NOTIFY sent inside a transaction (`notify`) is delivered only if, and when, it commits, in
 * commit order: several `lucid serve` instances over one database see one ordered stream.
 */
import pg from 'pg';
import { ServiceUnavailableError, UsageError } from '../../errors.js';
import type { Row, SqlDriver, SqlRunner, SqlValue } from './driver.js';

// BIGINT (int8) as a JavaScript number: every value Lucid stores fits in 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

function toPg(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * Statements as PostgreSQL runs them: each distinct text is a named prepared statement, parsed
 * and planned once per connection rather than on every call (the engine's statements are a
 * few dozen texts; texts beyond the bound, such as IN lists of every length, stay unnamed).
 */
const prepared = new Map<string, { name?: string; text: string }>();
const PREPARED_MAX = 1000;

function statement(sql: string, values: SqlValue[]): pg.QueryConfig {
  let s = prepared.get(sql);
  if (!s) {
    s = { text: toPg(sql), ...(prepared.size < PREPARED_MAX ? { name: `lucid_${prepared.size}` } : {}) };
    if (s.name) prepared.set(sql, s);
  }
  return { ...s, values };
}

type Queryable = pg.Pool | pg.PoolClient;

function runner(q: Queryable): SqlRunner {
  return {
    all: async (sql, params = []) => (await q.query(statement(sql, params))).rows as Row[],
    get: async (sql, params = []) => (await q.query(statement(sql, params))).rows[0] as Row | undefined,
    run: async (sql, params = []) => (await q.query(statement(sql, params))).rowCount ?? 0,
  };
}

function unreachable(url: string, e: unknown): Error {
  const code = (e as { code?: string }).code;
  if (code === '3D000') return new UsageError(`PostgreSQL database in ${redact(url)} does not exist: create it first (createdb)`);
  if (code === '28P01' || code === '28000') return new UsageError(`PostgreSQL refused the login in ${redact(url)}: check the user and password`);
  return new ServiceUnavailableError(`cannot reach PostgreSQL at ${redact(url)} (${code ?? (e as Error).message})`);
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly shared = true;
  private readonly direct: SqlRunner;
  private listener?: pg.Client;
  private readonly handlers = new Map<string, Set<(payload: string) => void>>();

  private constructor(private readonly pool: pg.Pool, private readonly url: string) {
    this.direct = runner(pool);
  }

  static async open(url: string): Promise<PostgresDriver> {
    const pool = new pg.Pool({ connectionString: url, max: 8 });
    pool.on('error', () => {}); // an idle connection dropped: the next query reconnects
    try {
      const c = await pool.connect();
      c.release();
    } catch (e) {
      await pool.end().catch(() => {});
      throw unreachable(url, e);
    }
    return new PostgresDriver(pool, url);
  }

  all(sql: string, params?: SqlValue[]): Promise<Row[]> { return this.direct.all(sql, params); }
  get(sql: string, params?: SqlValue[]): Promise<Row | undefined> { return this.direct.get(sql, params); }
  run(sql: string, params?: SqlValue[]): Promise<number> { return this.direct.run(sql, params); }

  async transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const c = await this.pool.connect().catch((e) => { throw unreachable(this.url, e); });
    try {
      await c.query('BEGIN');
      const result = await fn(runner(c));
      await c.query('COMMIT');
      return result;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  /** Sends `payload` on `channel` when the transaction `tx` commits. */
  async notify(tx: SqlRunner, channel: string, payload: string): Promise<void> {
    await tx.get('SELECT pg_notify(?, ?)', [channel, payload]);
  }

  /** Calls `handler` for every notification on `channel`, from any instance (this one too). */
  async listen(channel: string, handler: (payload: string) => void): Promise<() => void> {
    if (!this.listener) {
      this.listener = new pg.Client({ connectionString: this.url });
      this.listener.on('error', () => {});
      this.listener.on('notification', (m) => {
        for (const h of this.handlers.get(m.channel) ?? []) h(m.payload ?? '');
      });
      await this.listener.connect();
    }
    let set = this.handlers.get(channel);
    if (!set) {
      this.handlers.set(channel, (set = new Set()));
      await this.listener.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    }
    set.add(handler);
    return () => set!.delete(handler);
  }

  async close(): Promise<void> {
    await this.listener?.end().catch(() => {});
    await this.pool.end();
  }
}
