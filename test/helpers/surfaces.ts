/** What tests read of the text resource-guard shows to operators and clients. */
import { inspect } from 'node:util';
import type { AuthError } from 'resource-guard';

/** Whether a string is well-formed UTF-16 (String.prototype.isWellFormed is ES2024). */
export function isWellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (code >= 0xdc00 && code <= 0xdfff) {
      return false;
    }
  }
  return true;
}

/** Every string in a value: keys and leaves. */
export function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'object' && value !== null) {
    for (const [name, item] of Object.entries(value)) {
      out.push(name);
      strings(item, out);
    }
  }
  return out;
}

/** What a client or an error page sees of an AuthError, and what a console prints. */
export function faces(error: AuthError): string {
  return [
    error.message,
    error.description,
    JSON.stringify(error.body),
    JSON.stringify(error.headers),
    error.stack ?? '',
    String(error),
    inspect(error, { depth: 10, showHidden: true }),
    inspect({ wrapped: error }, { depth: 10 }),
    JSON.stringify(error.getResponse().headers.get('www-authenticate')),
  ].join('\n');
}
