import { z } from 'zod';

/**
 * Numbers in RTS_* settings: written in plain decimal digits, nothing else. `z.coerce.number()` took `1e4`,
 * `0x10`, `" 2000"` and `2000 ` (JavaScript's Number()), so a setting an operator mistyped, or one a template filled
 * with an exponent, started the hub with a value nobody wrote down.
 */
export const wholeNumberSetting = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, { message: 'must be a whole number written in digits (no sign, spaces, exponent or unit)' })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** The same with a decimal point allowed (`0.5`, `12`). */
export const decimalSetting = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+(\.[0-9]+)?$/, { message: 'must be a number written in digits, with a decimal point if any (no sign, spaces, exponent or unit)' })
    .transform(Number)
    .pipe(z.number().min(min).max(max));
