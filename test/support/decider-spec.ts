import type { Decider } from '../../src/domain/shared/decider';

/**
 * given / when / then for deciders: fold the given events into state with the decider's own evolve, decide
 * the command, and compare what happened with what was expected.
 *
 *   DeciderSpec.for(decider).given([...events]).when(command).then([...expectedEvents])
 *   DeciderSpec.for(decider).given([...events]).when(command).thenThrows(ConflictError, 'some_code')
 *   DeciderSpec.for(decider).given([...events]).when(command).thenNothing()
 */
type ErrorClass = abstract new (...args: never[]) => Error;

export class DeciderSpec<Command, Event, State> {
  private constructor(private readonly decider: Decider<Command, Event, State>) {}

  static for<C, E, S>(decider: Decider<C, E, S>): DeciderSpec<C, E, S> {
    return new DeciderSpec(decider);
  }

  given(events: readonly Event[]): { when(command: Command): Outcome<Event> } {
    return {
      when: (command: Command) => new Outcome<Event>(() => this.decider.decide(command, events.reduce(this.decider.evolve, this.decider.initialState()))),
    };
  }
}

class Outcome<Event> {
  constructor(private readonly run: () => readonly Event[]) {}

  then(expected: readonly Event[]): void {
    expect(this.run()).toEqual(expected);
  }

  /** The events decided, for checks of their own. */
  events(): readonly Event[] {
    return this.run();
  }

  thenNothing(): void {
    expect(this.run()).toEqual([]);
  }

  /** Expects an error of this class, and with this `code` when one is given. Returns it for further checks. */
  thenThrows(errorClass: ErrorClass, code?: string): Error {
    let thrown: unknown;
    let events: readonly Event[] | undefined;
    try {
      events = this.run();
    } catch (error) {
      thrown = error;
    }
    if (thrown === undefined) throw new Error(`expected ${errorClass.name} to be thrown, but decide returned ${JSON.stringify(events)}`);
    expect(thrown).toBeInstanceOf(errorClass);
    if (code !== undefined) expect((thrown as { code?: unknown }).code).toBe(code);
    return thrown as Error;
  }
}
