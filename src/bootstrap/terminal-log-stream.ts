// The hub's log on a terminal: JSON lines written through Node's own tty.WriteStream on a non-blocking descriptor of
// the log's own, with the same bound, drop events and exit contract as the sonic-boom destination (log-stream.ts).
//
// Why not sonic-boom: on a terminal it needs a non-blocking descriptor (a blocking write waits in a thread-pool
// thread that an unread terminal never lets return, and the process cannot then exit), and on a non-blocking one it
// answers each EAGAIN with a fixed 100 ms sleep. A terminal's buffer is a few KiB, so a terminal that IS read got the
// log at a few KiB per 100 ms: 20,000 debug lines took 51 s instead of 9.7 s, and a busy hub at debug (or info under
// a burst of requests) dropped at the 8 MiB bound lines the terminal would have taken. libuv's stream writes try the
// write at once and, on EAGAIN, wait for the terminal to be writable (epoll): no thread pool, no sleeps, the lines go
// as fast as the terminal is read, and an unread terminal holds no thread and no exit.
import { EventEmitter } from 'node:events';
import { closeSync, readFileSync, writeSync } from 'node:fs';
import { WriteStream } from 'node:tty';

/** How long a crash's exit (not exitAfterLog's) may spend writing what is still held, as sonic-boom's exit flush. */
export const TERMINAL_EXIT_FLUSH_MS = 2_000;
/** How long an exit may wait for room for the one newline that finishes a line cut short (see finishAtExit). */
const FINISH_LINE_MS = 100;
const RETRY_SLEEP_MS = 10;
const NEWLINE = 0x0a;

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** O_APPEND, which the log opens its terminal descriptor with as a mark (see the constructor). */
const O_APPEND = 0o2000;

/** The file status flags of descriptor `fd`, from /proc (Linux), or undefined. */
const fdFlags = (fd: number): number | undefined => {
  try {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    return flags === undefined ? undefined : parseInt(flags, 8);
  } catch {
    return undefined;
  }
};

/** The libuv handle under a tty.WriteStream: writeQueueSize is what of the write under way is not written yet. */
type StreamHandle = { setBlocking?: (blocking: boolean) => number; writeQueueSize?: unknown };

/**
 * Where the stream reads Node's internals: the libuv handle under a tty.WriteStream (`_handle`: its setBlocking and
 * writeQueueSize). Neither is documented, and a Node release may rename or drop them; the stream then refuses to be
 * made (hubLogDestination falls back to sonic-boom, and says so once). Replaced by tests to play such a Node.
 */
export const nodeInternals = {
  handleOf: (tty: WriteStream): StreamHandle | undefined => (tty as unknown as { _handle?: StreamHandle })._handle,
};

/** Streams whose held lines a crash's exit writes (process 'exit': no event loop left), bounded. */
const openStreams = new Set<TerminalLogStream>();
let exitHookInstalled = false;
const installExitHook = (): void => {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const stream of openStreams) stream.finishAtExit(TERMINAL_EXIT_FLUSH_MS);
  });
};

/**
 * The log on the terminal open as `fd` (a descriptor of the log's own, opened with O_APPEND: this stream closes it
 * when it ends; see the constructor for the O_APPEND). Lines
 * beyond `maxLength` bytes held for the terminal are dropped whole ('drop', as sonic-boom's maxLength), and
 * 'write' is said once a write went out (the terminal is read again), 'drain' once nothing is held (everything
 * written, or the terminal failed and what was held is dropped).
 */
export class TerminalLogStream extends EventEmitter {
  private readonly tty: WriteStream;
  /** Whole lines not handed to the terminal yet, and their bytes. */
  private queued: string[] = [];
  private queuedBytes = 0;
  /** The lines handed to libuv, being written; undefined when none is. */
  private writing: Buffer | undefined;
  /** Nothing is written any more: the terminal failed (EIO: hung up), the stream was closed, or the exit came. */
  private stopped = false;
  /** end() was called: no line is taken any more, and the stream closes once those held are written. */
  private ending = false;

  constructor(
    private readonly fd: number,
    readonly maxLength: number,
  ) {
    super();
    try {
      this.tty = new WriteStream(fd);
    } catch (error) {
      closeSync(fd); // the stream is not made: its descriptor is not left open
      throw error;
    }
    try {
      // libuv writes a terminal without blocking only on a descriptor it opened again itself (by the terminal's name,
      // over `fd`); where it cannot (no name for the terminal), it writes in blocking mode, and a non-blocking
      // descriptor would then make it spin on EAGAIN. That descriptor would still be ours, O_APPEND as we opened it.
      const flags = fdFlags(fd);
      if (flags === undefined || (flags & O_APPEND) !== 0) throw new Error('libuv did not open the terminal again: it would write it in blocking mode');
      // tty.WriteStream puts a terminal in blocking mode (its writes would then block the event loop itself on an
      // unread terminal); libuv's own mode for it, non-blocking with writability awaited on epoll, is what the log
      // needs. Both internals are checked here, at the start, not when the exit needs writeQueueSize.
      const handle = nodeInternals.handleOf(this.tty);
      if (typeof handle?.setBlocking !== 'function' || typeof handle.writeQueueSize !== 'number') {
        throw new Error("this Node's tty stream has no _handle.setBlocking or _handle.writeQueueSize");
      }
      if (handle.setBlocking(false) !== 0) throw new Error('the terminal cannot be written without blocking');
    } catch (error) {
      this.tty.destroy(); // closes `fd`
      throw error;
    }
    this.tty.on('error', () => this.fail());
    this.tty.once('close', () => this.emit('close'));
    openStreams.add(this);
    installExitHook();
  }

  /** Bytes held for the terminal: the write under way and the lines behind it. */
  get pendingBytes(): number {
    return (this.writing?.length ?? 0) + this.queuedBytes;
  }

  write(line: string): boolean {
    const bytes = Buffer.byteLength(line);
    if (this.stopped || this.ending || this.pendingBytes + bytes > this.maxLength) {
      this.emit('drop', line);
      return false;
    }
    this.queued.push(line);
    this.queuedBytes += bytes;
    if (this.writing === undefined) this.writeQueued();
    return true;
  }

  /**
   * Ends the stream: lines logged after it are dropped, those held are written, and then its descriptor (its own,
   * no other logger's) is closed ('close').
   */
  end(): void {
    if (this.ending) return;
    this.ending = true;
    if (this.writing === undefined) this.close();
  }

  /** Ends the stream at once: what is held is dropped, uncounted, and its descriptor closed ('close'). */
  destroy(): void {
    this.ending = true;
    this.close();
  }

  /**
   * At the process's exit (no event loop left): writes what is held for up to `flushMs`, then, if the terminal got
   * part of a line only, finishes it with a newline, so that whatever is written next (the next process's first
   * line) starts a line of its own and stays parseable. exitAfterLog, which has waited on the event loop already,
   * gives 0. Nothing is written after it.
   */
  finishAtExit(flushMs: number): void {
    if (this.stopped) return;
    this.stopped = true;
    openStreams.delete(this);
    const handle = nodeInternals.handleOf(this.tty);
    let rest: Buffer = Buffer.alloc(0);
    let lastWritten = NEWLINE;
    if (this.writing !== undefined) {
      const unwritten = handle?.writeQueueSize;
      // Without libuv's count of what is left, where the terminal's bytes end is not known: nothing more is written.
      if (typeof unwritten !== 'number' || unwritten < 0 || unwritten > this.writing.length) return;
      const written = this.writing.length - unwritten;
      if (written > 0) lastWritten = this.writing[written - 1] ?? NEWLINE;
      rest = this.writing.subarray(written);
    }
    rest = Buffer.concat([rest, Buffer.from(this.queued.join(''))]);
    this.queued = [];
    this.queuedBytes = 0;
    if (flushMs > 0 && rest.length > 0) {
      const flushed = this.writeSyncFor(rest, flushMs);
      if (flushed > 0) lastWritten = rest[flushed - 1] ?? NEWLINE;
    }
    if (lastWritten !== NEWLINE) this.writeSyncFor(Buffer.from('\n'), FINISH_LINE_MS);
  }

  /** Writes `bytes` to the terminal, waiting out EAGAIN for at most `ms`; the bytes written. */
  private writeSyncFor(bytes: Buffer, ms: number): number {
    let done = 0;
    let triesLeft = Math.max(1, Math.ceil(ms / RETRY_SLEEP_MS));
    while (done < bytes.length) {
      try {
        done += writeSync(this.fd, bytes, done);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || --triesLeft <= 0) break;
        sleepSync(RETRY_SLEEP_MS);
      }
    }
    return done;
  }

  /** Hands every queued line to libuv as one write (lines whole, in order); the next goes when it is written. */
  private writeQueued(): void {
    if (this.stopped) return;
    if (this.queued.length === 0) {
      this.writing = undefined;
      this.emit('drain');
      if (this.ending) this.close();
      return;
    }
    const chunk = Buffer.from(this.queued.join(''));
    this.queued = [];
    this.queuedBytes = 0;
    this.writing = chunk;
    this.tty.write(chunk, (error) => {
      if (error || this.writing !== chunk) return; // fail() has dropped it
      this.writing = undefined;
      this.emit('write', chunk.length);
      this.writeQueued();
    });
  }

  private close(): void {
    this.stopped = true;
    this.writing = undefined;
    this.queued = [];
    this.queuedBytes = 0;
    openStreams.delete(this);
    this.tty.destroy();
  }

  /** The terminal cannot be written (EIO: it hung up): what is held, and every line after it, is dropped. */
  private fail(): void {
    if (this.stopped) return;
    const cut = this.writing === undefined ? [] : this.writing.toString('utf8').split('\n').slice(0, -1).map((line) => `${line}\n`);
    const held = [...cut, ...this.queued];
    this.stopped = true;
    this.writing = undefined;
    this.queued = [];
    this.queuedBytes = 0;
    openStreams.delete(this);
    for (const line of held) this.emit('drop', line);
    this.emit('drain');
  }
}
