/**
 * Text that came from a request (a token's `kid`, `iss`, `typ`, a proof's `htm`, a path
 * parameter) on its way to an operator: `onRejected` details, configuration errors. Safe to print
 * in any log format: bounded in length, well-formed UTF-16, and with every character that can
 * forge a line, drive a terminal or reorder what a viewer shows written as a `\uXXXX` escape:
 * C0 and C1 controls and DEL, U+2028/2029, the bidirectional controls (Trojan Source), the
 * zero-width characters and the BOM, and lone surrogates. Everything else is kept as sent, so a
 * value stays recognisable.
 */

/**
 * The characters escaped, each one UTF-16 unit. Surrogates are in the class: {@link safeText}
 * walks by code point, so only a lone one is seen on its own (a pair is kept).
 */
const UNSAFE =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]/;

/**
 * `value` escaped (see above) and cut to at most `max` UTF-16 units, then `…`. A cut never splits
 * an escape or a surrogate pair.
 */
export function safeText(value: string, max: number): string {
  if (!UNSAFE.test(value)) return value.length > max ? `${cut(value, max)}…` : value;
  let out = '';
  // By code point: a pair comes whole, a lone surrogate alone.
  for (const char of value) {
    const piece = char.length === 1 && UNSAFE.test(char) ? escape(char) : char;
    if (out.length + piece.length > max) return `${out}…`;
    out += piece;
  }
  return out;
}

/** The first `max` units, one fewer when that would end in the first half of a pair. */
function cut(value: string, max: number): string {
  const last = value.charCodeAt(max - 1);
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

const escape = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
