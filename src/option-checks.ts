/**
 * Checking options: the one configuration error, one validator per kind of value, and the walk
 * over one level of options (unknown keys refused with a did-you-mean suggestion).
 */
import { warnOnce } from './diagnostics.ts';
import { isSafeQuotedValue } from './errors.ts';
import { safeText } from './safe-text.ts';

/**
 * The one configuration error: a `TypeError` whose message names the full option path,
 * `resource-guard: \`keys.cooldown\` must be ...`. Thrown where options are given: createVerifier,
 * logto, a route's requirements.
 */
export function configError(path: string, problem: string, options?: ErrorOptions): never {
  throw new TypeError(`resource-guard: \`${path}\` ${problem}`, options);
}

/** Checks one option's value (never `undefined`) and returns it normalised, or throws. */
export type Check<T> = (value: unknown, path: string) => T;

/** How one option is checked, and what it is when absent (or `undefined`). */
export interface Rule<T> {
  readonly check: Check<T>;
  readonly fallback: T;
  readonly required: boolean;
}

export type Rules = Readonly<Record<string, Rule<unknown>>>;

/** `true` when the rules of a level cover exactly the keys of its options interface. */
export type Covers<R, O> = [keyof R] extends [keyof O]
  ? [keyof O] extends [keyof R]
    ? true
    : false
  : false;

/** The resolved values of one level: every option present, defaults filled in. */
export type Resolved<R extends Rules> = { readonly [K in keyof R]: R[K]['fallback'] };

/** One object of options: its rules, where it sits, and hints for keys that belong elsewhere. */
export interface Level<R extends Rules> {
  readonly rules: R;
  /** The path of this object itself (`options`, `keys`, `requirements`). */
  readonly path: string;
  /** Prefix of its options' paths: `''` at the top, `keys.` below. */
  readonly prefix: string;
  /** What its keys are, for messages: `a createVerifier() option`. */
  readonly noun: string;
  /** Known mistakes: a key of another level, and where it goes instead. */
  readonly hints: Readonly<Record<string, string>>;
}

export const optional = <T>(check: Check<T>): Rule<T | undefined> => ({
  check,
  fallback: undefined,
  required: false,
});
export const withDefault = <T>(check: Check<T>, fallback: T): Rule<T> => ({
  check,
  fallback,
  required: false,
});
export const required = <T>(check: Check<T>): Rule<T> => ({
  check,
  fallback: undefined as T,
  required: true,
});

/** What a value is, for a message; never its content (it could throw, or be huge). */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === '') return 'the empty string';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const type = typeof value;
  return type === 'undefined' ? type : type === 'object' ? 'an object' : `a ${type}`;
}

/**
 * A plain object's own members as data, each read once: getters answered once, non-enumerable
 * members made enumerable (so that a spread or `Object.entries` sees what the checks saw).
 * `undefined` for anything that is not a plain object (the caller refuses it).
 */
export function ownData(
  input: unknown,
  known: readonly string[] = [],
  path = 'options',
): Record<string, unknown> | undefined {
  try {
    return readOwn(input, known);
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith('resource-guard: ')) throw error;
    return configError(path, 'could not be read', { cause: error });
  }
}

function readOwn(input: unknown, known: readonly string[]): Record<string, unknown> | undefined {
  if (!isPlainObject(input)) return undefined;
  // An enumerable inherited member is refused as resolveLevel refuses it (a rest or spread of the
  // copy would drop it silently); so is a `known` name the object's own keys leave out.
  refuseInherited(input, '');
  const names = Object.getOwnPropertyNames(input);
  for (const name of known) {
    if (names.includes(name)) continue;
    if (Object.hasOwn(input, name)) unlisted(printable(name));
    if (name in input) inherited(printable(name));
  }
  // No prototype: its members were checked above, and a name read off the copy must never reach
  // the input's parent (a Proxy's get) after all.
  const copy = Object.create(null) as Record<string, unknown>;
  for (const name of names) {
    Object.defineProperty(copy, name, {
      value: input[name],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

/** What every realm's `Object.prototype` has (another realm's passes isPlainObject). */
const OBJECT_PROTOTYPE_NAMES: ReadonlySet<string> = new Set(
  Object.getOwnPropertyNames(Object.prototype),
);

/**
 * An inherited member (from a null-prototype base, which passes as a plain object, as
 * query-string parsers and `Object.create(defaults)` make): read by nobody, so a rule meant would
 * be silently absent. Refused at every level, enumerable or not (a claim name in `claimEquals` is
 * any name, so the base's own names are read, not only the known ones).
 */
function refuseInherited(input: object, prefix: string): void {
  for (const name in input) {
    if (!Object.hasOwn(input, name)) inherited(prefix + printable(name));
  }
  const proto = Object.getPrototypeOf(input) as object | null;
  if (proto === null || proto === Object.prototype) return;
  // isPlainObject allows one level: a base whose prototype is null (or another realm's
  // Object.prototype, whose own names are the standard ones).
  // The standard names are exempt only on a realm's Object.prototype, not on any parent.
  const constructor: unknown = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value;
  const objectPrototype =
    typeof constructor === 'function' &&
    Object.getOwnPropertyDescriptor(constructor, 'prototype')?.value === proto;
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (!(objectPrototype && OBJECT_PROTOTYPE_NAMES.has(name)) && !Object.hasOwn(input, name)) {
      inherited(prefix + printable(name));
    }
  }
}

/** A member read from the prototype: refused (see refuseInherited), enumerable or not. */
function inherited(path: string): never {
  return configError(path, 'is inherited: pass it as an own property');
}

/**
 * A name the object says it owns (`Object.hasOwn`) that its own keys do not list: only a Proxy
 * whose two views disagree does that, and a reader of one view would drop what the other enforces.
 */
function unlisted(path: string): never {
  return configError(path, "is not among the object's own keys (a Proxy?): pass a plain object");
}

/** A plain object: `{...}` or `Object.create(null)`, from any realm. Not an array, Map, URL... */
export function isPlainObject(value: unknown): value is Readonly<Record<string, unknown>> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype || Object.getPrototypeOf(proto) === null;
}

/**
 * Checks one level of options: unknown keys first (with a suggestion), then each value, then
 * fills in defaults. Reads own string keys (enumerable or not); symbols are ignored. A known key
 * whose value is `undefined` counts as absent; an unknown key is an error whatever its value.
 * Whatever goes wrong while reading the input (a getter or a Proxy that throws) is a `TypeError`
 * naming the level too.
 */
export function resolveLevel<R extends Rules>(
  input: unknown,
  level: Level<R>,
  path = level.path,
): Resolved<R> {
  try {
    return readLevel(input, level, path);
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith('resource-guard: ')) throw error;
    return configError(path, 'could not be read', { cause: error });
  }
}

function readLevel<R extends Rules>(input: unknown, level: Level<R>, path: string): Resolved<R> {
  if (!isPlainObject(input)) configError(path, `must be a plain object (got ${describe(input)})`);
  const { rules, prefix } = level;
  // Own keys, enumerable or not (a misspelling hidden by defineProperty is still a misspelling);
  // an inherited key would be read by nobody, so it is refused too.
  const names = Object.getOwnPropertyNames(input);
  for (const key of names) {
    if (!Object.hasOwn(rules, key)) unknownOption(key, level);
  }
  refuseInherited(input, prefix);
  const resolved: Record<string, unknown> = {};
  for (const key in rules) {
    const rule = rules[key] as Rule<unknown>;
    const own = Object.hasOwn(input, key);
    if (own && !names.includes(key)) unlisted(prefix + key);
    // A non-enumerable inherited member, which refuseInherited's for...in does not see.
    if (!own && key in input) inherited(prefix + key);
    const value = own ? input[key] : undefined;
    if (value !== undefined) resolved[key] = rule.check(value, prefix + key);
    else if (rule.required) configError(prefix + key, 'is required');
    else resolved[key] = rule.fallback;
  }
  return resolved as Resolved<R>;
}

function unknownOption(key: string, level: Level<Rules>): never {
  const known = Object.keys(level.rules);
  const name = printable(key);
  const { hints } = level;
  const hinted = Object.hasOwn(hints, key) ? key : closest(key, Object.keys(hints), 0);
  const hint = hinted === undefined ? undefined : hints[hinted];
  const suggestion = closest(key, known);
  let message = `is not ${level.noun}`;
  if (hint !== undefined) message += `: ${hint}`;
  if (suggestion !== undefined) {
    message += `${hint === undefined ? ';' : '; or'} did you mean \`${level.prefix}${suggestion}\`?`;
  } else if (hint === undefined) {
    message += ` (known: ${known.join(', ')})`;
  }
  return configError(level.prefix + name, message);
}

/** A key as it appears in a message: short, one line. */
function printable(key: string): string {
  return /^[\w$-]{1,64}$/.test(key) ? key : quote(key);
}

/**
 * The known key a typo most likely meant: the same letters ignoring case, `_` and `-`
 * (`jwksURI`, `max_age`), or within a small edit distance (`algorithm`, `requiredClaim`).
 */
export function closest(
  key: string,
  known: readonly string[],
  maxDistance = key.length <= 4 ? 1 : key.length <= 8 ? 2 : 3,
): string | undefined {
  const normal = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const wanted = normal(key);
  let best: string | undefined;
  let bestDistance = maxDistance + 1;
  for (const candidate of known) {
    const distance = editDistance(wanted, normal(candidate));
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, transpositions. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, (before[j - 2] as number) + 1);
      }
      current.push(d);
    }
    [before, previous] = [previous, current];
  }
  return previous[b.length] as number;
}

// --- One validator per kind of value. Each returns the value normalised (lists copied). ---

export const seconds =
  (min: number, max: number, likely = max): Check<number> =>
  (value, path) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      const asMs = typeof value === 'number' && value / 1000 >= min && value / 1000 <= max;
      configError(
        path,
        `must be a number of seconds from ${min} to ${max} (got ${show(value)})` +
          (asMs
            ? `; durations are in seconds, not milliseconds: did you mean ${value / 1000}?`
            : ''),
      );
    }
    // Implausible in seconds, plausible in milliseconds: say so (an absurd value is left alone).
    if (value > likely && value >= 1000 && value / 1000 <= likely) {
      warnOnce(
        'RESOURCE_GUARD_DURATION',
        `resource-guard: ${path} is ${value} seconds (${humanDuration(value)}). Durations are in ` +
          `seconds, not milliseconds: did you mean ${value / 1000}?`,
        `duration ${path}`,
      );
    }
    return value;
  };

function humanDuration(seconds: number): string {
  if (seconds >= 86_400 * 365) return `${(seconds / (86_400 * 365)).toFixed(1)} years`;
  if (seconds >= 86_400) return `${(seconds / 86_400).toFixed(1)} days`;
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(1)} hours`;
  return `${(seconds / 60).toFixed(1)} minutes`;
}

/** A whole number of `unit`s (characters, entries, bytes). */
export const count =
  (unit: string, min: number, max: number): Check<number> =>
  (value, path) => {
    if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
      configError(
        path,
        `must be a whole number of ${unit} from ${min} to ${max} (got ${show(value)})`,
      );
    }
    return value as number;
  };

/** A number is shown (it cannot be long or secret); anything else is described. */
const show = (value: unknown) => (typeof value === 'number' ? String(value) : describe(value));

export const boolean: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean')
    configError(path, `must be true or false (got ${describe(value)})`);
  return value;
};

export const func =
  <F>(): Check<F> =>
  (value, path) => {
    if (typeof value !== 'function')
      configError(path, `must be a function (got ${describe(value)})`);
    return value as F;
  };

export const string: Check<string> = (value, path) => {
  if (typeof value !== 'string') configError(path, `must be a string (got ${describe(value)})`);
  return value;
};

export const nonEmptyString: Check<string> = (value, path) => {
  if (typeof value !== 'string' || value === '') {
    configError(path, `must be a non-empty string (got ${describe(value)})`);
  }
  return value;
};

/** Printable ASCII without `"` or `\`: safe inside a quoted `WWW-Authenticate` parameter. */
export const quotable: Check<string> = (value, path) => {
  if (typeof value !== 'string' || !isSafeQuotedValue(value)) {
    configError(path, 'must be a string of printable ASCII without `"` or `\\`');
  }
  return value;
};

/** An absolute http(s) URL, given as a string or a `URL`. */
export const httpUrl: Check<URL> = (value, path) => {
  const href = value instanceof URL ? value.href : value;
  const url = typeof href === 'string' && URL.canParse(href) ? new URL(href) : undefined;
  if (url?.protocol !== 'https:' && url?.protocol !== 'http:') {
    configError(path, `must be an absolute http(s) URL (got ${describe(value)})`);
  }
  if (url.username !== '' || url.password !== '') {
    // fetch() refuses such a URL; and it would be shown wherever the URL is (health, events).
    configError(path, 'must not carry credentials (user:password@): pass a `fetch` that adds them');
  }
  return url;
};

/**
 * Whether a parsed URL has a query or a fragment, an empty one too: `URL.search` and `URL.hash`
 * are `''` for a bare `?` or `#`, which the serialised URL keeps (and no other part of it can hold).
 */
export const hasQueryOrFragment = (url: URL): boolean => /[?#]/.test(url.href);

/** A test of one list item. */
export type Item<T> = (value: unknown) => value is T;

export const isNonEmptyString: Item<string> = (value): value is string =>
  typeof value === 'string' && value !== '';

export const isHttpUrlString: Item<string> = (value): value is string => {
  if (typeof value !== 'string' || !URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'https:' || protocol === 'http:';
};

/**
 * Whitespace at either end, or a control (C0, DEL, C1) or format character (zero-width, bidi,
 * soft hyphen) anywhere: what a
 * value read from a `.env` file with CRLF line endings, or pasted with a space, carries. The URL
 * parser strips them (so fetching works), while `iss` and `aud` are compared as written: every
 * token would then be refused, silently.
 */
const UNTRIMMED = /^\s|\s$|\p{Cc}|\p{Cf}/u;

/**
 * An issuer identifier (RFC 8414 §2, OpenID Connect Discovery §3): an absolute http(s) URL with
 * no query or fragment, no credentials, nothing the URL parser would strip.
 */
export const isIssuerUrl: Item<string> = (value): value is string => {
  if (!isUrlWithoutExtras(value)) return false;
  // Written as the parser writes it (the root's `/` aside): no dot segments, no default port, no
  // upper-case scheme or host, nothing percent-encoded on the way. `iss` is compared as written.
  const { href } = new URL(value);
  return href === value || href === `${value}/`;
};

/**
 * An absolute http(s) URL with no query, fragment or credentials, no whitespace, backslash,
 * control or format character: the URL parser encodes, rewrites or strips these.
 */
export const isUrlWithoutExtras: Item<string> = (value): value is string => {
  if (!isHttpUrlString(value) || UNTRIMMED.test(value) || /[?#\s\\]/.test(value)) return false;
  const { username, password } = new URL(value);
  return username === '' && password === '';
};

/** A non-empty string with no whitespace at either end and no control character. */
export const isTrimmedString: Item<string> = (value): value is string =>
  isNonEmptyString(value) && !UNTRIMMED.test(value);

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export const isScopeToken: Item<string> = (value): value is string =>
  typeof value === 'string' && SCOPE_TOKEN.test(value);

/**
 * An absolute http(s) URL to publish as written (RFC 9728 metadata): no credentials (a public
 * document), no whitespace at either end, no control or format character (a client compares it
 * as written). A query is allowed.
 */
export const publishedUrlString: Check<string> = (value, path) => {
  const url = httpUrlString(value, path);
  const { username, password } = new URL(url);
  if (UNTRIMMED.test(url) || username !== '' || password !== '') {
    configError(
      path,
      `must be an absolute http(s) URL without credentials, surrounding whitespace or control characters (got ${quote(url)})`,
    );
  }
  return url;
};

/** An absolute http(s) URL as a string, kept as written. */
export const httpUrlString: Check<string> = (value, path) => {
  if (!isHttpUrlString(value)) {
    configError(path, `must be an absolute http(s) URL string (got ${describe(value)})`);
  }
  return value;
};

/** A list item, for a message: a short string is shown, anything else described. */
const showItem = (value: unknown) => (typeof value === 'string' ? quote(value) : describe(value));

/**
 * A string value in an error message: its first 64 characters, quoted, with every character that
 * could forge a log line or reorder a terminal's text escaped (a requirement can come from a
 * request: `read:${req.params.kind}`).
 */
export const quote = (value: string) =>
  USERINFO.test(value.replace(/[\t\n\r]/g, ''))
    ? 'a value that may hold a password (not shown)'
    : safeText(JSON.stringify(value.slice(0, 64)), Number.POSITIVE_INFINITY);

/**
 * A URL-like value with a `user:password@` before its host (`https://`, `https:`, `https:\\`,
 * surrounding whitespace, and a tab or line break anywhere, which the URL parser removes before
 * it reads the rest: every spelling it reads as credentials), and a password with an unencoded
 * `/`, `?`, `#` or `\\` (which the parser cannot read: the URL is refused, and its message must
 * not show it either): never shown in a message, which lands in logs (as `httpUrl` already does
 * for `jwksUri`). A path or query with an `@` is hidden too: a message can do without it. So is
 * any value with a `:` before an `@`, a scheme or not (`//user:pw@host`, the typo `https//`, a
 * value whose quotes were kept): a password needs the `:`, wherever the value starts.
 */
const USERINFO = /:[^@]*@/u;

/**
 * An array whose items all pass `item`, copied and frozen. A string is refused with a hint:
 * iterating it would check single characters.
 */
export const list =
  <T>(item: Item<T>, what: string, minLength = 0): Check<readonly T[]> =>
  (value, path) => {
    if (!Array.isArray(value)) {
      const hint = typeof value === 'string' ? '; use an array even for one item' : '';
      configError(path, `must be an array of ${what} (got ${describe(value)}${hint})`);
    }
    if (value.length < minLength) configError(path, `must be a non-empty array of ${what}`);
    const items: T[] = [];
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      if (!item(element)) {
        configError(path, `must be an array of ${what} (item ${i} is ${showItem(element)})`);
      }
      items.push(element);
    }
    return Object.freeze(items);
  };

/** One string or a non-empty array of them: `issuer` and `audience`, as documented. */
export const oneOrMore = (
  item: Item<string>,
  one: string,
  many: string,
): Check<readonly string[]> => {
  const checkList = list(item, many, 1);
  return (value, path) => {
    if (typeof value === 'string') {
      if (!item(value)) configError(path, `must be ${one} (got ${showItem(value)})`);
      return Object.freeze([value]);
    }
    if (!Array.isArray(value) || value.length === 0) {
      configError(path, `must be ${one} or a non-empty array of them (got ${describe(value)})`);
    }
    return checkList(value, path);
  };
};

/** A nested level of options. */
export const nested = <R extends Rules>(level: Level<R>): Rule<Resolved<R>> =>
  withDefault(
    (value, path) => resolveLevel(value, level, path),
    Object.freeze(resolveLevel({}, level)),
  );

/**
 * A plain object whose every value passes `check` (`claimEquals`, `claimIncludes`, `checks`): a
 * frozen copy with the checked values; at least one entry. Keys are claim or rule names.
 */
export const record =
  <T>(check: Check<T>, claimNames = false): Check<Readonly<Record<string, T>>> =>
  (value, path) => {
    if (!isPlainObject(value)) configError(path, `must be a plain object (got ${describe(value)})`);
    refuseInherited(value, `${path}.`);
    const names = Object.getOwnPropertyNames(value);
    if (names.length === 0) configError(path, 'must name at least one entry');
    const copy: Record<string, T> = Object.create(null) as Record<string, T>;
    for (const name of names) {
      if (name === '') configError(path, 'has an empty name');
      // A claim name with a CR or a space around it is in no token: every request refused.
      if (claimNames && !isTrimmedString(name)) {
        configError(
          path,
          `has a name with surrounding whitespace or a control character: ${quote(name)}`,
        );
      }
      copy[name] = check(value[name], `${path}.${printable(name)}`);
    }
    return Object.freeze(copy);
  };
