// The notice of log lines dropped at the stream's bound (src/bootstrap/log-stream.ts), on a stream that stands in for
// sonic-boom: it says 'drop' for a line beyond its bound and 'write' when a write went out (the reader is back).
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { droppedLogLines, reportDroppedLogLines } from '../../src/bootstrap/log-stream';

class BoundedStream extends EventEmitter {
  readonly maxLength = 1024;
  readonly written: Record<string, unknown>[] = [];
  write(line: string): void {
    this.written.push(JSON.parse(line));
  }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

it('says how many lines were dropped, the erasure records apart, once a write goes out again; at every level but silent', async () => {
  const stream = new BoundedStream();
  const logger = pino({ level: 'error' }, stream);
  reportDroppedLogLines(logger);
  stream.emit('drop', '{"level":30,"msg":"request completed"}\n');
  stream.emit('drop', '{"level":30,"event":"PatientErased","patientKey":"k","msg":"patient erased"}\n');
  stream.emit('drop', '{"level":30,"consultationId":"c","msg":"consultation content erased"}\n');
  await nextTurn();
  expect(stream.written).toEqual([]); // nothing said while the reader is away
  stream.emit('write', 100);
  stream.emit('write', 100);
  await nextTurn();
  expect(stream.written).toEqual([expect.objectContaining({ level: 40, droppedLines: 3, droppedErasureLines: 2, msg: expect.stringContaining('GET /erasures lists every erasure') })]);
  // Said once; the total stays for the metric.
  stream.emit('write', 100);
  await nextTurn();
  expect({ notices: stream.written.length, total: droppedLogLines(logger) }).toEqual({ notices: 1, total: 3 });
});

it('a notice that is dropped itself (the reader stalled again) loses no count: the next notice says its lines too', async () => {
  const stream = new BoundedStream();
  let dropNextWrite = false;
  const write = stream.write.bind(stream);
  stream.write = (line: string) => {
    if (!dropNextWrite) return write(line);
    dropNextWrite = false;
    stream.emit('drop', line);
  };
  const logger = pino({ level: 'info' }, stream);
  reportDroppedLogLines(logger);
  stream.emit('drop', '{"level":30,"msg":"request completed"}\n');
  stream.emit('drop', '{"level":30,"event":"PatientErased","patientKey":"k","msg":"patient erased"}\n');
  // The reader takes one write, and is stalled again when the notice comes: the notice is dropped at the bound.
  dropNextWrite = true;
  stream.emit('write', 100);
  await nextTurn();
  expect(stream.written).toEqual([]);
  stream.emit('write', 100);
  await nextTurn();
  // The two lines, and the first notice (a line dropped too); every dropped line is in a notice, as in the metric.
  expect(stream.written).toEqual([expect.objectContaining({ droppedLines: 3, droppedErasureLines: 1 })]);
  expect(droppedLogLines(logger)).toBe(3);
});
