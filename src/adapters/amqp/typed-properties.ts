// AMQP types of numeric application-properties.
//
// rhea encodes a JS number by its value: any positive integer becomes an AMQP uint, which Java JMS (qpid-jms)
// cannot read as an int (getIntProperty throws MessageFormatException) nor set on a copy (setObjectProperty
// refuses UnsignedInteger). So our own integers go out as AMQP int (long beyond 32 bits): `amqpProperty`.
//
// rhea also decodes application-properties to plain JS values, losing the sender's types, so a copy we forward
// (a dead letter, a replay) would change them: a Java sender's int `version` came out of the dead letter queue as
// uint. rhea keeps no raw bytes of a delivery, so its message decoder is wrapped once (additively) to keep the
// typed values beside the plain ones; `typedApplicationProperties` gives a copy the original types back.
import { message as rheaMessage, types, type Message, type Typed } from 'rhea';

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
const APPLICATION_PROPERTIES = [0x74, 'amqp:application-properties:map'];
const TYPED = Symbol.for('telemed-rts.amqp.typed-application-properties');

/** A value as we send it in application-properties: integers as AMQP int (or long beyond 32 bits). */
export const amqpProperty = (value: unknown): unknown => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) return value;
  return value >= INT_MIN && value <= INT_MAX ? types.wrap_int(value) : types.wrap_long(value);
};

/** Every numeric property of `properties` as amqpProperty makes it; the others unchanged. */
export const withAmqpInts = (properties: Readonly<Record<string, unknown>>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, amqpProperty(value)]));

/**
 * The message's application-properties with each number the decoder saw still in its received AMQP type (an int
 * goes out as int again, a long as long); a number changed since, or one of a message not decoded from the wire,
 * is as amqpProperty makes it.
 */
export const typedApplicationProperties = (message: Message): Record<string, unknown> => {
  const typed = (message as unknown as Record<symbol, Map<string, Typed> | undefined>)[TYPED];
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message.application_properties ?? {})) {
    const original = typed?.get(key);
    // Numbers only: the other values keep their type through rhea's own encoding, and readers of a copy's
    // properties (the dead letter tagging) expect plain strings.
    out[key] = typeof value === 'number' && original !== undefined && types.unwrap(original) === value ? original : amqpProperty(value);
  }
  return out;
};

/** The received AMQP type name of one application-property (e.g. 'Int', 'UInt', 'Long'), if known. */
export const receivedPropertyType = (message: Message, key: string): string | undefined =>
  (message as unknown as Record<symbol, Map<string, Typed> | undefined>)[TYPED]?.get(key)?.type.name;

type Decoder = ((buffer: Buffer) => Message) & { keepsTypedProperties?: true };
// rhea's typings declare decode's result as a different Message type, and leave types.Reader out.
type Codec = { decode: Decoder };
type SectionReader = { remaining(): number; read(): Typed };
const { Reader } = types as unknown as { Reader: new (buffer: Buffer) => SectionReader };

const installDecoder = (): void => {
  const codec = rheaMessage as unknown as Codec;
  const original = codec.decode;
  if (original.keepsTypedProperties) return;
  const decode: Decoder = (buffer: Buffer): Message => {
    const decoded = original(buffer);
    try {
      const typed = readTypedProperties(buffer);
      if (typed) Object.defineProperty(decoded, TYPED, { value: typed, enumerable: false });
    } catch {
      // the plain decode stands; a copy then uses amqpProperty's types
    }
    return decoded;
  };
  decode.keepsTypedProperties = true;
  codec.decode = decode;
};

const readTypedProperties = (buffer: Buffer): Map<string, Typed> | undefined => {
  const reader = new Reader(buffer);
  while (reader.remaining() > 0) {
    const section = reader.read() as Typed & { descriptor?: { value?: unknown } };
    if (!APPLICATION_PROPERTIES.includes(section.descriptor?.value as number | string)) continue;
    const items = section.value as Typed[]; // the map itself, its descriptor set on it
    const map = new Map<string, Typed>();
    for (let i = 0; i + 1 < items.length; i += 2) map.set(String(types.unwrap(items[i]!)), items[i + 1]!);
    return map;
  }
  return undefined;
};

installDecoder();
