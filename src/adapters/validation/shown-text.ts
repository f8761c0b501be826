import type { z } from 'zod';
import { INVISIBLE_TEXT_MESSAGE, showsNothing } from '../../domain/shared/text-limits';

/**
 * The refusal's message for a text that shows nothing (showsNothing): its field's path goes with it (400
 * invalid_request over HTTP, bad_schema over AMQP, a TypeError from the SDK before it sends; the domain's own codes
 * past the edge).
 */
export { INVISIBLE_TEXT_MESSAGE };

/** What the API documents say of such a text (no JSON Schema pattern says it alike in every engine: see text-limits.ts). */
export const shownDescription = (who: string, doc: string): string =>
  `Shown to ${who}: refused when nothing visible is left of it, only white space, format (U+200B, U+FEFF, U+00AD, bidi controls; not the signs U+0600-U+0605 and other prepended concatenation marks, which show), control or other default-ignorable characters; an empty text only where minLength allows it (${doc}).`;
/** Where the HTTP API documents say it is explained. */
export const HTTP_DOC = 'README, HTTP API';

/**
 * A text that people read where it is shown (an expert's profile, a system's name and area, a consultation's
 * clinician, question, summary, report and reasons): one that holds anything shows something. A
 * zero-width space passed trim() and min(1) and showed as an empty name, question or diagnosis. Only where a text
 * comes in (HTTP bodies, uplink messages, the SDK's check before it sends): the readers of what was stored before
 * (downlink, HTTP responses) stay tolerant. A text that trimmed is empty is left to the schema's own rule (min(1)
 * where one is required; an empty title, summary or reason says there is none). `who` and `doc` (where it is explained:
 * docs/messaging.md for the AsyncAPI document, the README for the OpenAPI one) are for the documents.
 */
export const shown = <S extends z.ZodType<string>>(schema: S, who = 'clinicians', doc = 'docs/messaging.md, Text'): S => {
  const { description, ...meta } = (schema.meta() ?? {}) as Record<string, unknown>;
  const said = shownDescription(who, doc);
  return schema
    .refine((v) => !showsNothing(v), INVISIBLE_TEXT_MESSAGE)
    .meta({ ...meta, description: typeof description === 'string' ? `${description}. ${said}` : said }) as unknown as S;
};
