// Run with `node --expose-gc -r ./test/support/ts-register.js test/support/drain-loop-heap.ts <passes>`: a DrainLoop
// whose wait and pause end at once, so its loop makes many passes; prints the heap (after a full GC) once the loop has
// warmed up and again after <passes> more, as JSON. A loop that keeps something per pass shows it here as growth.
import { DrainLoop } from '../../src/application/drain-loop';

declare const gc: () => void;

async function main(): Promise<void> {
  const passes = Number(process.argv[2] ?? 100_000);
  let drains = 0;
  const loop = new DrainLoop({
    drain: async () => {
      drains++;
      return true;
    },
    wait: () => new Promise((resolve) => setImmediate(resolve)), // a turn of the event loop, as a real wait takes
    onError: () => undefined,
    retryMs: 1,
    coalesceMs: 0,
  });
  const heapAfter = async (count: number): Promise<number> => {
    while (drains < count) await new Promise((r) => setImmediate(r));
    gc();
    return process.memoryUsage().heapUsed;
  };
  loop.start();
  const warm = await heapAfter(10_000);
  const end = await heapAfter(10_000 + passes);
  await loop.stop();
  process.stdout.write(JSON.stringify({ passes: drains - 10_000, warm, end }) + '\n');
}

void main();
