import { randomUUID } from 'node:crypto';
import type { RecordedEvent } from '../../src/application/ports/event-store';

/** The registry tests' time: 2024-03-10 12:00 UTC, in epoch seconds, and an epoch second as the events write it. */
export const REGISTRY_T0 = Date.parse('2024-03-10T12:00:00Z') / 1000;
export const isoOfEpoch = (epoch: number): string => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');

/**
 * Document events as the registry projections apply them, at increasing global positions (each call of this its own
 * count): `submitted` a reading of `patientKey` measured at `epoch` (with `content`, a sealed one without a summary),
 * `deprecated` its replacement's mark.
 */
export const registryEvents = () => {
  let position = 0n;
  const recorded = (type: string, data: Record<string, unknown>): RecordedEvent => ({
    id: randomUUID(),
    type,
    data,
    metadata: {},
    streamName: `document-${String(data['uniqueId'])}`,
    streamVersion: type === 'DocumentSubmitted' ? 0n : 1n,
    globalPosition: ++position,
    recordedAt: new Date().toISOString(),
  });
  const submitted = (uniqueId: string, epoch: number, options: Readonly<{ patientKey: string; replaces?: string | null; content?: string }>): RecordedEvent =>
    recorded('DocumentSubmitted', {
      uniqueId,
      patientKey: options.patientKey,
      repositoryUniqueId: '2.25.1',
      observationId: null,
      creationTime: isoOfEpoch(epoch),
      serviceStartTime: isoOfEpoch(epoch),
      serviceStopTime: isoOfEpoch(epoch),
      mimeType: 'text/xml',
      hash: 'a'.repeat(64),
      size: 100,
      replaces: options.replaces ?? null,
      summary: (options.content ?? '') === '' ? { systolic: 120, diastolic: 80 } : null,
      content: options.content ?? '',
    });
  const deprecated = (uniqueId: string, replacedBy: string, epoch = REGISTRY_T0): RecordedEvent => recorded('DocumentDeprecated', { uniqueId, replacedBy, deprecatedAt: isoOfEpoch(epoch) });
  return { recorded, submitted, deprecated };
};
