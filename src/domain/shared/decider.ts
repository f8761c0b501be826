/**
 * A decider is three pure pieces: decide what happens, evolve state from what happened, and where to start.
 * No I/O, no clock, no randomness: time and ids arrive inside the command.
 */
export interface Decider<Command, Event, State> {
  decide(command: Command, state: State): readonly Event[];
  evolve(state: State, event: Event): State;
  initialState(): State;
}

/** A domain event: a discriminated union member with a `type` and a readonly `data` payload. */
export type DomainEvent<Type extends string = string, Data extends object = object> = Readonly<{
  type: Type;
  data: Readonly<Data>;
}>;

/** Fold a list of events into state (the tests' way to build an aggregate; the stores read streams with aggregateByReading). */
export const foldEvents = <Event, State>(decider: Pick<Decider<unknown, Event, State>, 'evolve' | 'initialState'>, events: readonly Event[]): State =>
  events.reduce(decider.evolve, decider.initialState());

/** Compile-time exhaustiveness check for switches over discriminated unions. */
export const assertNever = (value: never): never => {
  throw new Error(`unexpected case: ${JSON.stringify(value)}`);
};
