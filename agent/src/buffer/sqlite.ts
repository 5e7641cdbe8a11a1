/**
 * The one adapter over the `sqlite3` package (STYLE: each SDK in exactly one file). Its
 * callback API is turned into promises here and nowhere else.
 *
 * Limits of sqlite3 v6 worth knowing when using this adapter:
 * - `run()` steps a statement ONCE. A statement that yields rows as it works stops after the
 *   first row: `PRAGMA incremental_vacuum(N)` frees one page per row, so through `run()` it
 *   frees a single page. Use `exec()` (sqlite3_exec steps to completion) or `all()` for it.
 * - `lastID` / `changes` come from sqlite3_last_insert_rowid / sqlite3_changes, so after a
 *   statement that is not an INSERT / UPDATE / DELETE they still show the previous one's.
 * - Statements on one connection are queued on the libuv pool, not isolated: a read issued
 *   while a transaction is open on the same connection sees its uncommitted rows. Callers
 *   serialize transactions against reads themselves.
 */
import sqlite3 from 'sqlite3';

/** A value that can be bound to a `?` / `?NNN` parameter. */
export type SqlValue = string | number | bigint | Buffer | null;

export interface RunResult {
  /** Rowid of the last row inserted on this connection (for a multi-row INSERT: the last row). */
  lastID: number;
  /** Rows changed by the last INSERT / UPDATE / DELETE. */
  changes: number;
}

/** An SQLite error as sqlite3 raises it: `code` is e.g. `SQLITE_FULL`, `errno` the numeric code. */
export interface SqliteError extends Error {
  code?: string;
  errno?: number;
}

/** The async surface of one SQLite connection that the agent uses. */
export interface Database {
  readonly path: string;
  /** Runs one statement, stepping it once (see the module comment). */
  run(sql: string, params?: readonly SqlValue[]): Promise<RunResult>;
  /** First row, or undefined when there is none. */
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Runs several `;`-separated statements without parameters, each to completion. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens (creating if missing) the SQLite database at `path`, read-write, or with `readOnly` an
 * existing one for reading only (a second connection: sqlite3 runs each connection's statements
 * on the libuv thread pool, so a reader's queries do not wait behind the writer's).
 * Rejects with the sqlite3 error when the file cannot be opened.
 */
export function openDatabase(path: string, options: { readOnly?: boolean } = {}): Promise<Database> {
  const mode = options.readOnly === true ? sqlite3.OPEN_READONLY : sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE;
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path, mode, (err) => {
      if (err) reject(err);
      else resolve(wrap(db, path));
    });
  });
}

function wrap(db: sqlite3.Database, path: string): Database {
  return {
    path,
    run(sql, params = []) {
      return new Promise((resolve, reject) => {
        // sqlite3 passes lastID / changes as `this` of the callback: it must not be an arrow.
        db.run(sql, params, function (this: sqlite3.RunResult, err: Error | null) {
          if (err) reject(err);
          else resolve({ lastID: this.lastID, changes: this.changes });
        });
      });
    },
    get<T>(sql: string, params: readonly SqlValue[] = []) {
      return new Promise<T | undefined>((resolve, reject) => {
        db.get<T>(sql, params, (err, row) => {
          if (err) reject(err);
          else resolve(row);
        });
      });
    },
    all<T>(sql: string, params: readonly SqlValue[] = []) {
      return new Promise<T[]>((resolve, reject) => {
        db.all<T>(sql, params, (err, rows) => {
          if (err) reject(err);
          else resolve(rows);
        });
      });
    },
    exec(sql) {
      return new Promise((resolve, reject) => {
        db.exec(sql, (err) => {
          if (err) reject(err);
          else resolve();
        });
      });
    },
    close() {
      return new Promise((resolve, reject) => {
        db.close((err) => {
          if (err) reject(err);
          else resolve();
        });
      });
    },
  };
}
