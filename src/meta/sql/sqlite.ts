/**
 * SqlDriver on SQLite through better-sqlite3, in WAL mode with synchronous=FULL so that a
 * commit that returned survives power loss. One connection; every statement and transaction
 * runs through one queue, so a transaction that awaits never interleaves with another
 * request's reads or writes on the same connection.
 */
import Database from 'better-sqlite3';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Row, SqlDriver, SqlRunner, SqlValue } from './driver.js';

export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly shared = false;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly direct: SqlRunner;

  private constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 10000');
    this.direct = {
      all: async (sql, params = []) => this.prepare(sql).all(...params) as Row[],
      get: async (sql, params = []) => this.prepare(sql).get(...params) as Row | undefined,
      run: async (sql, params = []) => this.prepare(sql).run(...params).changes,
    };
  }

  static async open(file: string): Promise<SqliteDriver> {
    if (file !== ':memory:') await fs.mkdir(path.dirname(file), { recursive: true });
    return new SqliteDriver(file);
  }

  all(sql: string, params?: SqlValue[]): Promise<Row[]> { return this.serial(() => this.direct.all(sql, params)); }
  get(sql: string, params?: SqlValue[]): Promise<Row | undefined> { return this.serial(() => this.direct.get(sql, params)); }
  run(sql: string, params?: SqlValue[]): Promise<number> { return this.serial(() => this.direct.run(sql, params)); }

  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.direct);
        this.db.exec('COMMIT');
        return result;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  /** Runs DDL (several statements) outside the queue's transactions. */
  exec(sql: string): Promise<void> {
    return this.serial(async () => { this.db.exec(sql); });
  }

  async close(): Promise<void> {
    await this.queue.catch(() => {});
    this.db.close();
  }

  private prepare(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}
