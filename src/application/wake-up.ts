/**
 * A signal that ends waits early, once: a loop's stop(), a sender's close().
 *
 *   const stopping = new WakeUp();
 *   await stopping.race(sleep(1000));   // the sleep's value, or undefined as soon as fire() is called
 *   stopping.fire();                     // ends every race in progress, and every later one at once
 *
 * Why not `Promise.race([p, stopPromise])` with one long-lived stop promise: each race leaves a reaction on that
 * promise (two promises, two closures and a context, ~312 bytes) which only its settling frees. The background
 * loops raced theirs a dozen times a second while idle and once or more per append under load: the hub's heap grew
 * ~356 MB a day idle and ~1 KB per HTTP request, for as long as it ran. Here each race registers a callback that is
 * removed as soon as its own promise settles, so what is held is bounded by the races in progress.
 */
export class WakeUp {
  private readonly waiters = new Set<() => void>();
  private fired = false;

  get isFired(): boolean {
    return this.fired;
  }

  /** Races still waiting (for tests: 0 once every raced promise has settled or fire() was called). */
  get pending(): number {
    return this.waiters.size;
  }

  fire(): void {
    if (this.fired) return;
    this.fired = true;
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** `p`'s outcome, or undefined once fire() is called (at once if it was). A rejection of `p` after that is ignored. */
  race<T>(p: Promise<T>): Promise<T | undefined> {
    if (this.fired) {
      p.catch(() => undefined);
      return Promise.resolve(undefined);
    }
    return new Promise<T | undefined>((resolve, reject) => {
      const wake = (): void => resolve(undefined);
      this.waiters.add(wake);
      p.then(
        (value) => {
          this.waiters.delete(wake);
          resolve(value);
        },
        (error: unknown) => {
          this.waiters.delete(wake);
          reject(error);
        },
      );
    });
  }
}
