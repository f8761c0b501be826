// The AsyncAPI 3.0 document of the hub's message contract, generated from the zod schemas in
// src/adapters/messaging/messages.ts so it cannot drift from what the code accepts. The committed copy is
// docs/asyncapi.yaml; test/unit/asyncapi.unit.spec.ts regenerates it and fails when it differs.
//
//   node -r ./test/support/ts-register.js src/sdk/asyncapi.ts            # rewrite docs/asyncapi.yaml
//   node -r ./test/support/ts-register.js src/sdk/asyncapi.ts --check    # exit 1 if it is out of date
//
// Written from a connected system's point of view: it sends on the uplink channel and receives on its downlink
// channel; operators receive from the dead letter channel.
import { z } from 'zod';
import {
  CONTRACT_VERSION,
  DOWNLINK_TYPES,
  DownlinkEnvelopeSchema,
  ExpertProfileSchema,
  MAX_BATCH_EXPERTS,
  UPLINK_TYPES,
  UplinkEnvelopeSchema,
  type DownlinkEnvelope,
  type ExpertProfile,
  type UplinkEnvelope,
} from '../adapters/messaging/messages';
import { DEFAULT_DEAD_LETTER_QUEUE, DEFAULT_DOWNLINK_QUEUE_PREFIX, DEFAULT_UPLINK_QUEUE } from './client';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const profile: ExpertProfile = {
  name: 'Zhang Min',
  title: 'Chief physician',
  specialties: ['cardiology', 'hypertension'],
  location: { city: 'Chengdu', hospital: 'West China Hospital' },
  languages: ['zh', 'en'],
  availability: 'available',
};
const envelope = { version: CONTRACT_VERSION, time: '2026-11-23T09:30:00.000+08:00' } as const;

/** The envelope's keys in the documented order. */
const ordered = <E extends { id: string; type: string; version: number; systemId: string; correlationId: string; time: string; payload: unknown }>(e: E): E =>
  ({ id: e.id, type: e.type, version: e.version, systemId: e.systemId, correlationId: e.correlationId, time: e.time, payload: e.payload }) as E;
const orderAll = <M extends Record<string, Parameters<typeof ordered>[0]>>(m: M): M => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, ordered(v)])) as M;

/** One complete, valid example of each message type (also in docs/messaging.md). */
export const EXAMPLE_UPLINK: { [T in UplinkEnvelope['type']]: Extract<UplinkEnvelope, { type: T }> } = orderAll({
  'system.join.requested': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', type: 'system.join.requested', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { name: 'Chengdu City', expectedBatches: 1, expectedExperts: 1 } },
  'experts.batch': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e02', type: 'experts.batch', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'dr-0042', ...profile }] } },
  'expert.registered': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e03', type: 'expert.registered', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e03', payload: { localExpertId: 'dr-0043', profile } },
  'expert.changed': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e04', type: 'expert.changed', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e04', payload: { localExpertId: 'dr-0043', profile: { ...profile, availability: 'limited' } } },
  'expert.retired': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e05', type: 'expert.retired', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e05', payload: { localExpertId: 'dr-0043' } },
});
const directoryExpert = { expertId: 'chengdu:dr-0042', homeSystemId: 'chengdu', profile, revision: 1 };
export const EXAMPLE_DOWNLINK: { [T in DownlinkEnvelope['type']]: Extract<DownlinkEnvelope, { type: T }> } = orderAll({
  'directory.expert.upserted': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e501', type: 'directory.expert.upserted', systemId: 'mianyang', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e02', payload: directoryExpert },
  'directory.expert.retired': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e502', type: 'directory.expert.retired', systemId: 'mianyang', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e05', payload: { expertId: 'chengdu:dr-0043', homeSystemId: 'chengdu', revision: 3 } },
  'directory.snapshot': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e503', type: 'directory.snapshot', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { snapshotId: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e5ff', batchIndex: 0, batchCount: 1, experts: [{ expertId: 'mianyang:li-7', homeSystemId: 'mianyang', profile: { ...profile, name: 'Li Na', location: { city: 'Mianyang', hospital: 'Mianyang Central Hospital' } }, revision: 2 }] } },
  'system.joined': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e504', type: 'system.joined', systemId: 'mianyang', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu' } },
});

const DESCRIPTIONS: Record<string, string> = {
  'system.join.requested': 'A system starts its join: how many experts.batch messages (and experts in all) will follow. Send it first and wait until the broker accepted it.',
  'experts.batch': `Part of the join upload: at most ${MAX_BATCH_EXPERTS} experts. Also checked, beyond the schema: batchIndex < batchCount, and a localExpertId appears once per batch. Batches may arrive in any order and more than once. When the last missing batch is in, the hub sends the joiner a directory.snapshot and the others its experts.`,
  'expert.registered': 'A new expert of the sending system (homeSystemId, if given, must be the sender).',
  'expert.changed': "A new profile for one of the sending system's experts.",
  'expert.retired': 'The expert leaves the directory.',
  'directory.expert.upserted': 'An expert of another system was registered or changed. Keep the highest revision per expertId.',
  'directory.expert.retired': 'An expert of another system was retired.',
  'directory.snapshot': 'Full directory for a newly joined system, in batches of at most 500 experts; one snapshotId for all parts.',
  'system.joined': 'To the joiner: its join is complete. To the others: a new system is in the hub.',
};

const camel = (type: string) => type.replace(/[.-]([a-z])/g, (_, c: string) => c.toUpperCase());

/** JSON Schema (draft-07, the AsyncAPI default schema format) of a zod schema, without the $schema key. */
export function jsonSchemaOf(schema: z.ZodType): Json {
  const out = z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Record<string, Json>;
  delete out['$schema'];
  return out;
}

const optionsOf = (union: typeof UplinkEnvelopeSchema | typeof DownlinkEnvelopeSchema) => {
  const byType = new Map<string, z.ZodType>();
  for (const option of union.options) byType.set((option.shape.type as z.ZodLiteral<string>).value, option as z.ZodType);
  return byType;
};

const headersFor = (type: string): Json => ({
  type: 'object',
  description: 'AMQP application-properties. The envelope in the body is authoritative; these copy it so brokers, tools and dead-letter records can route and search without parsing the body.',
  properties: {
    messageId: { type: 'string', format: 'uuid', description: 'The envelope id (idempotency key). Never dedupe on the AMQP message-id: ActiveMQ may replace it.' },
    type: { type: 'string', const: type },
    version: { type: 'integer', const: CONTRACT_VERSION },
    systemId: { type: 'string', description: 'Uplink: the sending system. Downlink: the receiving system.' },
    correlationId: { type: 'string' },
    contentType: { type: 'string', description: "'application/json' for a plain JSON body (the body codec may change with message security)." },
    codec: { type: 'string', description: "Body codec: 'json'." },
  },
  required: ['messageId', 'type', 'version', 'systemId', 'correlationId'],
});

const deadLetterHeaders: Json = {
  type: 'object',
  description: 'The original application-properties, plus the x-dlq-* ones the consumer that gave up added.',
  properties: {
    'x-dlq-reason': { type: 'string', description: "Why, e.g. 'bad_json: ...', 'bad_schema: payload.experts.0.name: ...', 'unknown_system', 'retry limit (5) reached: ...', 'wrong_receiver: ...', 'unknown_type: ...'." },
    'x-dlq-source-queue': { type: 'string' },
    'x-dlq-attempts': { type: 'integer', minimum: 1 },
    'x-dlq-at': { type: 'string', format: 'date-time' },
    messageId: { type: 'string' },
    type: { type: 'string' },
    systemId: { type: 'string' },
  },
  required: ['x-dlq-reason', 'x-dlq-source-queue', 'x-dlq-attempts', 'x-dlq-at'],
};

/** The AsyncAPI 3.0 document as a plain object. */
export function buildAsyncApiDocument(): { [key: string]: Json } {
  const uplinkSchemas = optionsOf(UplinkEnvelopeSchema);
  const downlinkSchemas = optionsOf(DownlinkEnvelopeSchema);
  const messages: { [key: string]: Json } = {};
  const message = (type: string, schema: z.ZodType, example: Json, direction: string): Json => ({
    name: type,
    title: type,
    summary: `${direction}: ${type}`,
    description: DESCRIPTIONS[type] ?? type,
    contentType: 'application/json',
    headers: headersFor(type),
    payload: jsonSchemaOf(schema),
    examples: [{ name: camel(type), summary: `A complete ${type} envelope`, headers: { messageId: (example as { id: string }).id, type, version: CONTRACT_VERSION, systemId: (example as { systemId: string }).systemId, correlationId: (example as { correlationId: string }).correlationId, contentType: 'application/json', codec: 'json' }, payload: example }],
  });
  for (const type of UPLINK_TYPES) messages[camel(type)] = message(type, uplinkSchemas.get(type)!, EXAMPLE_UPLINK[type] as unknown as Json, 'uplink');
  for (const type of DOWNLINK_TYPES) messages[camel(type)] = message(type, downlinkSchemas.get(type)!, EXAMPLE_DOWNLINK[type] as unknown as Json, 'downlink');
  messages['deadLettered'] = {
    name: 'dead-lettered',
    title: 'dead-lettered message',
    summary: 'A message a consumer gave up on, body unchanged',
    contentType: 'application/json',
    headers: deadLetterHeaders,
    payload: { description: 'The original body, unchanged (it may be the very thing that is wrong with the message).' },
  };
  const ref = (path: string): Json => ({ $ref: path });
  const channelMessages = (types: readonly string[]): Json => Object.fromEntries(types.map((t) => [camel(t), ref(`#/components/messages/${camel(t)}`)]));
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'RTS regional telemedicine hub: directory sync',
      version: `${CONTRACT_VERSION}.0.0`,
      description: [
        'The message contract between the regional hub and the small-scale telemedicine systems that join it (the RTS paper).',
        'Transport: AMQP 1.0 to ActiveMQ Classic. Every message is durable (persistent); the body is an AMQP value section holding a string, the JSON text of the envelope { id, type, version, systemId, correlationId, time, payload }.',
        'Send at-least-once: a message counts as sent when the broker settles it as accepted. Receivers dedupe on the envelope id (application-property messageId), never on the AMQP message-id.',
        'Acknowledge (accept) a downlink message only after processing it; hand it back with modified (delivery-failed=true) for a retry. A guide for teams in other languages: docs/messaging.md.',
        `Generated from src/adapters/messaging/messages.ts by src/sdk/asyncapi.ts: do not edit by hand.`,
      ].join('\n'),
      license: { name: 'Apache-2.0' },
    },
    defaultContentType: 'application/json',
    servers: {
      local: { host: '127.0.0.1:5673', protocol: 'amqp1', description: 'A local ActiveMQ Classic (npm run broker:up). SASL is optional on this connector; production brokers require SASL PLAIN.' },
    },
    channels: {
      uplink: { address: DEFAULT_UPLINK_QUEUE, title: 'Uplink queue', description: 'One queue shared by all systems; the hub consumes it. Name configurable (default shown).', messages: channelMessages(UPLINK_TYPES) },
      downlink: {
        address: `${DEFAULT_DOWNLINK_QUEUE_PREFIX}{systemId}`,
        title: 'Downlink queue of one system',
        description: 'One queue per connected system; only that system consumes it. A message stays until the system accepted it, so a system that is down catches up when it comes back.',
        parameters: { systemId: { description: 'The connected system id (2-32 characters of a-z 0-9 -).', examples: ['chengdu', 'mianyang'] } },
        messages: channelMessages(DOWNLINK_TYPES),
      },
      deadLetter: { address: DEFAULT_DEAD_LETTER_QUEUE, title: 'Dead letter queue', description: 'Messages that can never succeed, or failed too often, with the reason. Operators list, inspect and replay them.', messages: { deadLettered: ref('#/components/messages/deadLettered') } },
    },
    operations: {
      sendUplink: { action: 'send', title: 'Send an uplink message', channel: ref('#/channels/uplink'), messages: UPLINK_TYPES.map((t) => ref(`#/channels/uplink/messages/${camel(t)}`)) },
      receiveDownlink: { action: 'receive', title: "Receive this system's downlink messages", channel: ref('#/channels/downlink'), messages: DOWNLINK_TYPES.map((t) => ref(`#/channels/downlink/messages/${camel(t)}`)) },
      receiveDeadLetters: { action: 'receive', title: 'Inspect dead-lettered messages (operators)', channel: ref('#/channels/deadLetter'), messages: [ref('#/channels/deadLetter/messages/deadLettered')] },
    },
    components: {
      schemas: { ExpertProfile: jsonSchemaOf(ExpertProfileSchema) },
      messages,
    },
  };
}

/** A small YAML writer for JSON data: block style, strings quoted as JSON (valid YAML), stable key order. */
export function toYaml(value: Json, indent = 0): string {
  const pad = ' '.repeat(indent);
  const scalar = (v: Json): string => (typeof v === 'string' ? JSON.stringify(v) : v === null ? 'null' : String(v));
  const key = (k: string): string => (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(k) ? k : JSON.stringify(k));
  const isEmpty = (v: Json) => (Array.isArray(v) ? v.length === 0 : typeof v === 'object' && v !== null && Object.keys(v).length === 0);
  if (Array.isArray(value)) {
    return value
      .map((item) => {
        if (typeof item === 'object' && item !== null && !isEmpty(item)) {
          const inner = toYaml(item, indent + 2);
          return `${pad}- ${inner.slice(indent + 2)}`;
        }
        return `${pad}- ${isEmpty(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item)}\n`;
      })
      .join('');
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value)
      .map(([k, v]) => {
        if (typeof v === 'object' && v !== null && !isEmpty(v)) return `${pad}${key(k)}:\n${toYaml(v, Array.isArray(v) ? indent : indent + 2)}`;
        if (typeof v === 'string' && v.includes('\n')) return `${pad}${key(k)}: |-\n${v.split('\n').map((line) => `${pad}  ${line}`).join('\n')}\n`;
        return `${pad}${key(k)}: ${isEmpty(v) ? (Array.isArray(v) ? '[]' : '{}') : scalar(v)}\n`;
      })
      .join('');
  }
  return `${pad}${scalar(value)}\n`;
}

/** The text of docs/asyncapi.yaml. */
export function renderAsyncApiYaml(): string {
  return `# Generated by src/sdk/asyncapi.ts from the zod schemas: do not edit by hand.\n${toYaml(buildAsyncApiDocument())}`;
}

/* istanbul ignore next */
if (require.main === module) {
  const { readFileSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
  const { resolve } = require('node:path') as typeof import('node:path');
  const target = resolve(__dirname, '..', '..', 'docs', 'asyncapi.yaml');
  const text = renderAsyncApiYaml();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      // missing counts as out of date
    }
    if (current !== text) {
      console.error(`${target} is out of date: run node -r ./test/support/ts-register.js src/sdk/asyncapi.ts`);
      process.exit(1);
    }
  } else {
    writeFileSync(target, text);
    console.log(`wrote ${target}`);
  }
}
