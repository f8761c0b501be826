import type { AggregateOptions, AggregateStreamResult, EventStore } from '../../application/ports/event-store';

/**
 * aggregateStream as every adapter implements it: one consistent readStream of the whole stream, folded with
 * `evolve` from `initialState()`, with the version read alongside (the expected version of the next append).
 */
export const aggregateByReading = async <State>(
  store: Pick<EventStore, 'readStream'>,
  streamName: string,
  options: AggregateOptions<State>,
): Promise<AggregateStreamResult<State>> => {
  const { events, currentVersion } = await store.readStream(streamName);
  return { state: events.reduce(options.evolve, options.initialState()), currentVersion };
};
