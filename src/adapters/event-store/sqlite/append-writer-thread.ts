import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import {
  fromWriterError,
  prepareWriterStatements,
  toWriterError,
  writePlannedBatch,
  type PlannedAppend,
  type PlannedOutcome,
  type WriterError,
} from './append-writer';

/**
 * Runs writePlannedBatch on a worker thread with a connection of its own to the same file, so that a COMMIT
 * (writing the batch's pages into the WAL, then the fsync of synchronous=FULL: together ~1-15 ms on a shared
 * virtual disk) no longer stops the event loop. The main thread keeps planning, serving requests and reading
 * while the batch commits. One batch at a time: the store sends the next one after this one's reply.
 *
 * The thread holds the write lock only inside writePlannedBatch. It is unref'd while idle, so an open store does
 * not keep a process alive, and ref'd while a batch is in flight, so that batch's callers are answered.
 */

const WORKER_MARK = 'telemed-rts/sqlite-append-writer';

type WorkerInit = Readonly<{ mark: typeof WORKER_MARK; file: string; busyTimeoutMs: number }>;
type Request = Readonly<{ kind: 'write'; id: number; batch: readonly PlannedAppend[]; recordedAt: string }> | Readonly<{ kind: 'close' }>;
type Reply =
  | Readonly<{ id: number; ok: true; outcomes: PlannedOutcome[] }>
  | Readonly<{ id: number; ok: false; error: WriterError }>;

export class AppendWriterThread {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly inFlight = new Map<number, { resolve: (outcomes: PlannedOutcome[]) => void; reject: (error: unknown) => void }>();
  private failure: Error | undefined;
  private readonly exited: Promise<void>;

  constructor(file: string, busyTimeoutMs: number) {
    const init: WorkerInit = { mark: WORKER_MARK, file, busyTimeoutMs };
    const { script, evaluate } = workerScript();
    this.worker = new Worker(script, { eval: evaluate, workerData: init });
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => this.settle(reply));
    this.worker.on('error', (error) => this.fail(error));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        this.fail(new Error(`SQLite append writer thread exited (code ${code})`));
        resolve();
      });
    });
  }

  /** Commit `batch` on the writer thread; resolves with one outcome per append after COMMIT. */
  write(batch: readonly PlannedAppend[], recordedAt: string): Promise<PlannedOutcome[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<PlannedOutcome[]>((resolve, reject) => {
      this.inFlight.set(id, { resolve, reject });
      if (this.inFlight.size === 1) this.worker.ref();
      this.worker.postMessage({ kind: 'write', id, batch, recordedAt } satisfies Request);
    });
  }

  /** Close the thread's connection and wait for the thread to end. */
  async close(): Promise<void> {
    if (this.failure === undefined) this.worker.postMessage({ kind: 'close' } satisfies Request);
    this.worker.ref();
    await this.exited;
  }

  private settle(reply: Reply): void {
    const waiting = this.inFlight.get(reply.id);
    if (waiting === undefined) return;
    this.inFlight.delete(reply.id);
    if (this.inFlight.size === 0) this.worker.unref();
    if (reply.ok) waiting.resolve(reply.outcomes);
    else waiting.reject(fromWriterError(reply.error));
  }

  /** The thread crashed or ended: whatever was in flight fails (its transaction rolled back), and so does what follows. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const [id, waiting] of this.inFlight) {
      this.inFlight.delete(id);
      waiting.reject(error);
    }
  }
}

/**
 * Built (dist/*.js): the thread runs this very file. From TypeScript sources (jest, test/support/ts-register.js)
 * there is no .js to run, so the thread compiles the sources as it loads them, as ts-register does.
 */
function workerScript(): { script: string; evaluate: boolean } {
  if (!__filename.endsWith('.ts')) return { script: __filename, evaluate: false };
  const typescript = require.resolve('typescript');
  const script = `
    const fs = require('node:fs');
    const ts = require(${JSON.stringify(typescript)});
    require.extensions['.ts'] = (module, filename) => {
      const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
        fileName: filename,
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      });
      module._compile(outputText, filename);
    };
    require(${JSON.stringify(__filename)});
  `;
  return { script, evaluate: true };
}

// ---- the thread ----

function isWorkerInit(data: unknown): data is WorkerInit {
  return typeof data === 'object' && data !== null && (data as { mark?: unknown }).mark === WORKER_MARK;
}

function runWriterThread(init: WorkerInit): void {
  const port = parentPort;
  if (port === null) return;
  let db: BetterSqlite3.Database;
  try {
    db = new BetterSqlite3(init.file);
    // The file is in WAL mode already (the store's own connection switched it); these are per connection.
    db.pragma(`busy_timeout = ${init.busyTimeoutMs}`);
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
  } catch (error) {
    // Every write fails with this until the store is closed.
    port.on('message', (request: Request) => {
      if (request.kind === 'close') port.close();
      else port.postMessage({ id: request.id, ok: false, error: toWriterError(error) } satisfies Reply);
    });
    return;
  }
  const sql = prepareWriterStatements(db);
  port.on('message', (request: Request) => {
    if (request.kind === 'close') {
      db.close();
      port.close();
      return;
    }
    let reply: Reply;
    try {
      reply = { id: request.id, ok: true, outcomes: writePlannedBatch(db, sql, request.batch, request.recordedAt) };
    } catch (error) {
      reply = { id: request.id, ok: false, error: toWriterError(error) };
    }
    port.postMessage(reply);
  });
}

if (!isMainThread && isWorkerInit(workerData)) runWriterThread(workerData);
