import { z } from 'zod';

/**
 * A text of at most `max` characters (code points) as it was sent, white space around it included: the limit of a
 * text the hub then trims (`atMostAsSent(200).trim().min(1)`). The API documents publish a text's limit as `maxLength`,
 * which a client counts on the text it sends; the hub counted after the trim, so a padded text it took (a 200-character
 * name and a final line break) was one a generated client refused. Counted as sent, the two agree, and what is stored
 * (the trimmed text) is bounded all the same.
 */
export const atMostAsSent = (max: number) => z.string().max(max, `must have at most ${max} characters, white space around it counted`);
