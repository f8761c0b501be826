/** Random ids come from a port so tests can make them deterministic. */
export interface IdGenerator {
  /** A new random UUID (v4). */
  uuid(): string;
}
