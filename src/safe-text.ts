/**
 * Text that came from a request (a token's `kid`, `iss`, `typ`, a proof's `htm`, a path
 * parameter) on its way to an operator: `onRejected` details, configuration errors. Safe to print
 * in any log format: bounded in length, well-formed UTF-16, and every character that can forge a
 * line, drive a terminal, reorder what a viewer shows or hide text in it written as `\uXXXX`
 * escapes (UTF-16 units, so the text stays valid inside JSON): controls (C0, DEL, C1), format
 * characters (the bidirectional controls of Trojan Source, zero-width characters, the BOM, the
 * invisible tag characters of "ASCII smuggling"), U+2028/2029, lone surrogates and every other
 * default-ignorable character. The one exception: a single presentation selector (U+FE0E text,
 * U+FE0F emoji) right after a pictographic character, as in ❤️; every other variation selector is
 * escaped, since sixteen invisible selectors can carry four hidden bits a character. Everything
 * else is kept as sent, so a value stays recognisable.
 */

/** One character (code point) to escape, presentation selectors included (see `kept`). */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/u;

/** A character an emoji or text presentation selector may follow (❤, ☺, 😀). */
const PICTOGRAPHIC = /^\p{Extended_Pictographic}$/u;

/**
 * `value` escaped (see above) and cut to at most `max` UTF-16 units, then `…`. A cut never splits
 * an escape or a surrogate pair. Never reads more of `value` than `max + 1` units' worth.
 */
export function safeText(value: string, max: number): string {
  const long = value.length > max;
  const head = long ? value.slice(0, max + 1) : value;
  if (!UNSAFE.test(head)) return long ? `${cut(value, max)}…` : value;
  let out = '';
  // Whether the previous character, kept as sent, may take a presentation selector.
  let selectable = false;
  // By code point: a pair comes whole, a lone surrogate alone.
  for (const char of head) {
    const kept: boolean =
      !UNSAFE.test(char) || (selectable && (char === '\ufe0e' || char === '\ufe0f'));
    const piece = kept ? char : escape(char);
    if (out.length + piece.length > max) return `${out}…`;
    out += piece;
    selectable = kept && PICTOGRAPHIC.test(char);
  }
  // Not reached when `value` is long: its max + 1 units cannot all fit.
  return long ? `${out}…` : out;
}

/** The first `max` units, one fewer when that would end in the first half of a pair. */
function cut(value: string, max: number): string {
  const last = value.charCodeAt(max - 1);
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** `\uXXXX` per UTF-16 unit (two for a character outside the BMP). */
function escape(char: string): string {
  let out = '';
  for (let i = 0; i < char.length; i++) {
    out += `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`;
  }
  return out;
}
