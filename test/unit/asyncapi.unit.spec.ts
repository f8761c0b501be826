// The published AsyncAPI document (docs/asyncapi.yaml): valid AsyncAPI 3.0, every message type of the contract in
// it with an example that the contract accepts, and in sync with the zod schemas it is generated from.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DOWNLINK_TYPES, UPLINK_TYPES, parseDownlink, parseUplink } from '../../src/adapters/messaging/messages';
import { CONSULTATION_DOWNLINK_TYPES, CONSULTATION_UPLINK_TYPES, parseConsultationDownlink, parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';
import { EXAMPLE_CONSULTATION_DOWNLINK, EXAMPLE_CONSULTATION_UPLINK, EXAMPLE_DOWNLINK, EXAMPLE_UPLINK, buildAsyncApiDocument, renderAsyncApiYaml, toYaml } from '../../src/sdk/asyncapi';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Parser } = require('@asyncapi/parser') as { Parser: new () => { parse(doc: string): Promise<{ document?: AsyncApiDocument; diagnostics: Diagnostic[] }> } };
interface Diagnostic {
  severity: number;
  message: string;
  path: (string | number)[];
}
interface AsyncApiDocument {
  version(): string;
  allMessages(): { all(): Array<{ name(): string | undefined; id(): string }> };
  channels(): { all(): Array<{ address(): string | null | undefined }> };
  operations(): { all(): Array<{ action(): string; id(): string }> };
}

const docPath = resolve(__dirname, '..', '..', 'docs', 'asyncapi.yaml');
const committed = readFileSync(docPath, 'utf8');

describe('AsyncAPI document', () => {
  it('is in sync with the zod schemas (regenerate: node -r ./test/support/ts-register.js src/sdk/asyncapi.ts)', () => {
    expect(committed).toBe(renderAsyncApiYaml());
  });

  it('parses as AsyncAPI 3.0 with no error diagnostics', async () => {
    const { document, diagnostics } = await new Parser().parse(committed);
    const errors = diagnostics.filter((d) => d.severity === 0);
    expect(errors.map((d) => `${d.path.join('.')}: ${d.message}`)).toEqual([]);
    expect(document).toBeDefined();
    expect(document!.version()).toBe('3.0.0');
    const names = document!.allMessages().all().map((m) => m.name());
    for (const type of [...UPLINK_TYPES, ...DOWNLINK_TYPES]) expect(names).toContain(type);
    expect(document!.channels().all().map((c) => c.address()).sort()).toEqual(['rts.dlq', 'rts.downlink.{systemId}', 'rts.uplink']);
    expect(document!.operations().all().map((o) => `${o.id()}:${o.action()}`).sort()).toEqual(['receiveDeadLetters:receive', 'receiveDownlink:receive', 'sendUplink:send']);
  });

  it('carries one example per message type, each accepted by the contract', () => {
    for (const type of UPLINK_TYPES) {
      const r = parseUplink(JSON.stringify(EXAMPLE_UPLINK[type]));
      expect(r.ok ? r.message.type : r.detail).toBe(type);
    }
    for (const type of DOWNLINK_TYPES) {
      const r = parseDownlink(JSON.stringify(EXAMPLE_DOWNLINK[type]));
      expect(r.ok ? r.message.type : r.detail).toBe(type);
    }
    const messages = buildAsyncApiDocument()['components'] as { messages: Record<string, { name: string; examples?: Array<{ payload: unknown }> }> };
    for (const m of Object.values(messages.messages)) if (m.name !== 'dead-lettered') expect(m.examples?.[0]?.payload).toMatchObject({ type: m.name });
  });

  it('documents the downlink guide examples that the contract accepts (docs/messaging.md)', () => {
    const guide = readFileSync(resolve(__dirname, '..', '..', 'docs', 'messaging.md'), 'utf8');
    const blocks = [...guide.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!) as { type?: string });
    const envelopes = blocks.filter((b) => typeof b.type === 'string');
    for (const type of UPLINK_TYPES) {
      const found = envelopes.find((e) => e.type === type);
      expect(found && parseUplink(JSON.stringify(found)).ok).toBe(true);
    }
    for (const type of DOWNLINK_TYPES) {
      const found = envelopes.find((e) => e.type === type);
      expect(found && parseDownlink(JSON.stringify(found)).ok).toBe(true);
    }
  });

  it('has the consultation messages, both directions, each example accepted by the consultation contract', async () => {
    const { document } = await new Parser().parse(committed);
    const names = document!.allMessages().all().map((m) => m.name());
    for (const type of [...CONSULTATION_UPLINK_TYPES, ...CONSULTATION_DOWNLINK_TYPES]) expect(names).toContain(type);
    expect(names.filter((n) => n === 'consultation.report')).toHaveLength(2); // one each way
    for (const type of CONSULTATION_UPLINK_TYPES) {
      const r = parseConsultationUplink(JSON.stringify(EXAMPLE_CONSULTATION_UPLINK[type]));
      expect(r.ok ? r.message.type : r.detail).toBe(type);
    }
    for (const type of CONSULTATION_DOWNLINK_TYPES) {
      const r = parseConsultationDownlink(JSON.stringify(EXAMPLE_CONSULTATION_DOWNLINK[type]));
      expect(r.ok ? r.message.type : r.detail).toBe(type);
    }
  });

  it("says that message security (application/jose) is the default, and JSON bodies only with RTS_MESSAGE_SECURITY=off", () => {
    const doc = buildAsyncApiDocument() as { defaultContentType: string; info: { description: string }; components: { messages: Record<string, { name: string; contentType: string; description?: string }> } };
    expect(doc.defaultContentType).toBe('application/jose');
    expect(doc.info.description).toContain("With message security, the hub's default (RTS_MESSAGE_SECURITY=jose), that string is a compact JWE (application/jose)");
    expect(doc.info.description).toContain('only with RTS_MESSAGE_SECURITY=off is it the envelope\'s JSON text itself (application/json)');
    expect(doc.info.description).toContain('a body must stay under 1 MiB');
    for (const m of Object.values(doc.components.messages)) expect(`${m.name}: ${m.contentType}`).toBe(`${m.name}: application/jose`);
    expect(doc.components.messages['expertsBatch']!.description).toContain('384 KiB of their JSON');
    expect(doc.components.messages['directorySnapshot']!.description).toContain('the experts of the other joined systems (never its own)');
    expect(doc.components.messages['systemJoinRequested']!.description).toContain('system_name_mismatch');
  });

  it('writes YAML that keeps strings, numbers, empty values and nesting', () => {
    expect(toYaml({ a: 'x: y', b: 1, c: [], d: {}, e: [{ f: true }, 'g'], h: 'one\ntwo', $ref: '#/x' })).toBe(
      'a: "x: y"\nb: 1\nc: []\nd: {}\ne:\n- f: true\n- "g"\nh: |-\n  one\n  two\n$ref: "#/x"\n',
    );
  });
});
