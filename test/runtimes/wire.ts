/**
 * The wire differential: the NODE-STYLE paths (Express, Koa, Fastify, node:http with
 * `verifier.guard(req)`), which read `req.headers` / `req.rawHeaders`, served by Node, by Bun's
 * and by Deno's node:http compatibility layers, from the packed package. The same hostile corpus of
 * RAW requests (bytes written to a net socket, so nothing normalises them) goes to every app on
 * every runtime; Node's answer (status + RFC 6750 `error` code) is the oracle, per framework.
 *
 * Fails (exit 1) when, on any runtime: a request is ACCEPTED (2xx) that Node's app refuses (a
 * trust bug), or that the corpus marks `must: 'refuse'` (forged, two credentials, ...) whoever
 * refused it on Node; an answer is a 5xx; a request gets no answer in time (a hang); an answer
 * contains a token or proof of the request (an echo); Node misses a case's required answer (the
 * harness would prove nothing); or an app-level refusal differs from Node's and is not judged in
 * {@link JUDGED}. Listed, not failing: a refusal before the guard (an answer without the app's
 * `x-wire-app` marker: the runtime's HTTP layer or the framework; or Node's own HTTP layer
 * refused first), and a request Node's HTTP layer refuses that another runtime's admits when its
 * one credential is sound and resource-guard accepts it as Node's app would. A looser answer
 * listed in {@link KNOWN_BUGS} still fails: the entry names the bug in src/.
 *
 * run.sh installs the packed package and the frameworks into a folder and runs:
 *
 *   node --import tsx test/runtimes/wire.ts --app <folder> --bun <bun> --deno <deno> [--node <node>]
 *
 * The apps (test/runtimes/wire/*.mjs, copied into the folder) verify against a JWKS served here,
 * on 127.0.0.1; every server listens on 127.0.0.1, port 0. Each app gets the corpus in the same
 * order, one request per connection; the twelve apps are asked side by side.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { copyFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ISSUER = 'https://issuer.wire.example/oidc';
const AUDIENCE = 'https://shopping.api';
/** The Host every request names (the apps do not care; the DPoP route trusts it). */
const HOST = 'api.wire.example';
const DPOP_ORIGIN = `https://${HOST}`;
/** No answer within this long is a hang, in ms. */
const REQUEST_TIMEOUT = 4000;
/** An app stops being asked after this many hangs in a row (it is wedged). */
const MAX_HUNG_IN_A_ROW = 3;
const START_TIMEOUT = 30_000;
/** The whole run, past which everything still running is killed and the run fails. */
const RUN_DEADLINE = 75_000;

const FRAMEWORKS = ['http', 'express', 'koa', 'fastify'] as const;
const RUNTIMES = ['node', 'bun', 'deno'] as const;
type Framework = (typeof FRAMEWORKS)[number];
type Runtime = (typeof RUNTIMES)[number];

/**
 * Bugs in src/ or adapters/ this differential found, as `<runtime> <framework> <case id>`, each
 * with a `// BUG:` comment. A listed looser-than-Node answer still FAILS the run (it is a trust
 * bug): the entry only names it in the report. Fix the code, then delete the entry.
 */
// Fixed in session 32: Deno's node:http keeps the first 1000 header fields of a request and drops
// the rest without a word (Node 20 does the same past about 1023; Node >= 22 and Bun answer 431),
// so a second Authorization field, DPoP proof or Host sent after 1000 padding fields was never seen
// by src/request.ts readRawAuthorization() or src/dpop-request.ts readOneHeader(): the first one
// was used. src/request.ts mayBeCut() now refuses a raw list that may have been cut (the `many.*`
// cases, which therefore must be refused on every runtime).
const KNOWN_BUGS: ReadonlyMap<string, string> = new Map<string, string>([]);

/**
 * App-level refusals that differ from Node's and are judged harmless, as `<runtime> <framework>
 * <case id>` → why. (A runtime's own refusal needs no entry.) A listed difference that no longer
 * shows is reported as stale.
 */
const JUDGED: ReadonlyMap<string, string> = new Map<string, string>([]);

const { values: args } = parseArgs({
  options: {
    app: { type: 'string' },
    node: { type: 'string' },
    bun: { type: 'string' },
    deno: { type: 'string' },
    only: { type: 'string' },
  },
});
if (args.app === undefined) throw new Error('--app: the folder with the packed package installed');
const appDir = args.app;

// ── keys and tokens ────────────────────────────────────────────────────────────────────────────

const b64 = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64url');
const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');

interface EcKey {
  readonly privateKey: KeyObject;
  readonly jwk: { kty: string; crv: string; x: string; y: string };
}
function ecKey(): EcKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  return { privateKey, jwk: { kty: kty!, crv: crv!, x: x!, y: y! } };
}
const issuerKey = ecKey();
const attackerKey = ecKey();
const proofKey = ecKey();
const KID = 'wire-1';
const jkt = sha256(
  JSON.stringify({
    crv: proofKey.jwk.crv,
    kty: proofKey.jwk.kty,
    x: proofKey.jwk.x,
    y: proofKey.jwk.y,
  }),
);

type Json = Record<string, unknown>;
function jws(header: Json, payload: Json, key: KeyObject | undefined): string {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
  if (key === undefined) return `${input}.`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64(signature)}`;
}

const now = Math.floor(Date.now() / 1000);
interface TokenSpec {
  readonly claims?: Json;
  readonly header?: Json;
  /** `attacker`: signed with a key the issuer never published (same kid); `none`: unsigned. */
  readonly signer?: 'issuer' | 'attacker' | 'none';
}
function token(spec: TokenSpec = {}): string {
  const key =
    spec.signer === 'none'
      ? undefined
      : spec.signer === 'attacker'
        ? attackerKey.privateKey
        : issuerKey.privateKey;
  return jws(
    { alg: spec.signer === 'none' ? 'none' : 'ES256', typ: 'at+jwt', kid: KID, ...spec.header },
    {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'wire-client',
      client_id: 'wire-client',
      scope: 'read:products',
      iat: now - 60,
      exp: now + 3600,
      jti: randomUUID(),
      ...spec.claims,
    },
    key,
  );
}
const bound = () => token({ claims: { cnf: { jkt } } });
function proof(accessToken: string, payload: Json = {}): string {
  return jws(
    { typ: 'dpop+jwt', alg: 'ES256', jwk: proofKey.jwk },
    {
      jti: randomUUID(),
      htm: 'GET',
      htu: `${DPOP_ORIGIN}/dpop`,
      iat: now - 5,
      ath: sha256(accessToken),
      ...payload,
    },
    proofKey.privateKey,
  );
}

// ── the corpus ─────────────────────────────────────────────────────────────────────────────────

/** What Node itself must answer: a sanity check of the harness (Node's answer is the oracle). */
type Must = 'accept' | 'refuse' | undefined;
interface Case {
  readonly id: string;
  readonly bytes: Buffer;
  readonly method: string;
  /** Never to appear in an answer: the tokens and proofs the request carries. */
  readonly secrets: readonly string[];
  readonly must: Must;
}

/** The secrets of a request: every JWS (or long random token) in it, by its last 40 characters. */
function secretsOf(text: string): string[] {
  const found = text.match(/[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{40,}/g) ?? [];
  const random = text.match(/[A-Za-z0-9_-]{200,}/g) ?? [];
  return [...found, ...random].map((secret) => secret.slice(-40));
}

function buildCorpus(): Case[] {
  const cases: Case[] = [];
  const add = (id: string, must: Must, request: string | Buffer, method = 'GET') => {
    const bytes = typeof request === 'string' ? Buffer.from(request, 'latin1') : request;
    cases.push({ id, bytes, method, secrets: secretsOf(bytes.toString('latin1')), must });
  };
  /** An HTTP/1.1 request: `lines` are the raw header lines (no CRLF), Host first unless given. */
  const req = (lines: readonly string[], target = '/products', method = 'GET', version = '1.1') =>
    `${method} ${target} HTTP/${version}\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n`;
  const get = (lines: readonly string[], target = '/products') =>
    req([`Host: ${HOST}`, ...lines, 'Connection: close'], target);
  const auth = (value: string) => `Authorization: ${value}`;

  // Baseline.
  add('valid', 'accept', get([auth(`Bearer ${token()}`)]));
  add('no-authorization', 'refuse', get([]));
  add('forged.other-key', 'refuse', get([auth(`Bearer ${token({ signer: 'attacker' })}`)]));
  add('forged.alg-none', 'refuse', get([auth(`Bearer ${token({ signer: 'none' })}`)]));
  add('wrong-audience', 'refuse', get([auth(`Bearer ${token({ claims: { aud: 'x' } })}`)]));
  add('expired', 'refuse', get([auth(`Bearer ${token({ claims: { exp: now - 3600 } })}`)]));
  add('scope-missing', 'refuse', get([auth(`Bearer ${token({ claims: { scope: 'write:x' } })}`)]));
  add('dpop-bound-as-bearer', 'refuse', get([auth(`Bearer ${bound()}`)]));

  // The field name in odd case, and odd bytes around it.
  for (const name of ['authorization', 'AUTHORIZATION', 'aUtHoRiZaTiOn']) {
    add(`name.${name}`, 'accept', get([`${name}: Bearer ${token()}`]));
  }
  add('name.no-space-after-colon', 'accept', get([`Authorization:Bearer ${token()}`]));
  add('name.space-before-colon', undefined, get([`Authorization : Bearer ${token()}`]));
  add('name.tab-before-colon', undefined, get([`Authorization\t: Bearer ${token()}`]));
  add('name.leading-space', undefined, get([` Authorization: Bearer ${token()}`]));
  add('name.dotless-i', 'refuse', get([`Author\u0131zation: Bearer ${token()}`]));
  add('name.nul', undefined, get([`Authorization\0: Bearer ${token()}`]));
  add('name.x-prefixed', 'refuse', get([`X-Authorization: Bearer ${token()}`]));

  // Scheme variants.
  for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
    add(`scheme.${scheme}`, 'accept', get([auth(`${scheme} ${token()}`)]));
  }
  add('scheme.two-spaces', undefined, get([auth(`Bearer  ${token()}`)]));
  add('scheme.tab', 'refuse', get([auth(`Bearer\t${token()}`)]));
  add('scheme.nbsp', 'refuse', get([auth(`Bearer\u00a0${token()}`)]));
  add('scheme.longer', 'refuse', get([auth(`Bearerx ${token()}`)]));
  add('scheme.only', 'refuse', get([auth('Bearer')]));
  add('scheme.only-space', 'refuse', get([auth('Bearer ')]));
  add('scheme.basic', 'refuse', get([auth('Basic dXNlcjpwYXNz')]));
  add('scheme.dpop-on-bearer-route', 'refuse', get([auth(`DPoP ${token()}`)]));
  add('scheme.quoted', 'refuse', get([auth(`Bearer "${token()}"`)]));
  add('scheme.token-then-text', 'refuse', get([auth(`Bearer ${token()} x`)]));
  add('scheme.comma-two', 'refuse', get([auth(`Bearer ${token()}, Bearer ${token()}`)]));
  add('scheme.comma-basic-first', 'refuse', get([auth(`Basic dXNlcjpwYXNz, Bearer ${token()}`)]));
  add('scheme.comma-leading', 'refuse', get([auth(`, Bearer ${token()}`)]));
  add('scheme.comma-trailing', 'refuse', get([auth(`Bearer ${token()},`)]));

  // Whitespace around the value (RFC 9110 OWS is SP / HTAB), and bytes that are not.
  add('ows.tabs', 'accept', get([`Authorization:\tBearer ${token()}\t`]));
  add('ows.spaces', 'accept', get([`Authorization:    Bearer ${token()}    `]));
  add('ows.mixed', 'accept', get([`Authorization: \t Bearer ${token()} \t `]));
  add('ows.nbsp-after-token', 'refuse', get([auth(`Bearer ${token()}\u00a0`)]));
  add('ows.vt-after-token', 'refuse', get([auth(`Bearer ${token()}\u000b`)]));
  add('ows.ff-before-scheme', 'refuse', get([`Authorization:\u000cBearer ${token()}`]));
  add('ows.cr-inside', 'refuse', get([auth(`Bearer ${token()}\rx`)]));
  add('ows.nul-after-token', 'refuse', get([auth(`Bearer ${token()}\0`)]));
  add('ows.utf8-after-token', 'refuse', get([auth(`Bearer ${token()}\u00c3\u00a9`)]));

  // obs-fold (RFC 9112 §5.2: a server must refuse it or replace it with SP).
  add('fold.inside-value', undefined, get([auth('Bearer'), ` ${token()}`]));
  add('fold.whole-value', undefined, get(['Authorization:', ` Bearer ${token()}`]));
  add('fold.tab-continuation', undefined, get([auth('Bearer'), `\t${token()}`]));
  add('fold.after-valid', 'refuse', get([auth(`Bearer ${token()}`), ' x']));
  // A folded line that reads as a second Authorization field: one field, or two, or refused.
  add(
    'fold.hidden-second-field',
    'refuse',
    get([auth(`Bearer ${token()}`), ` Authorization: Bearer ${token({ signer: 'attacker' })}`]),
  );
  add(
    'fold.hides-forged-in-other-field',
    'refuse',
    get(['X-Note: a', ` Authorization: Bearer ${token({ signer: 'attacker' })}`]),
  );

  // Duplicate fields.
  const same = token();
  add('dup.same-value', 'refuse', get([auth(`Bearer ${same}`), auth(`Bearer ${same}`)]));
  add('dup.two-valid', 'refuse', get([auth(`Bearer ${token()}`), auth(`Bearer ${token()}`)]));
  add(
    'dup.valid-then-forged',
    'refuse',
    get([auth(`Bearer ${token()}`), auth(`Bearer ${token({ signer: 'attacker' })}`)]),
  );
  add(
    'dup.forged-then-valid',
    'refuse',
    get([auth(`Bearer ${token({ signer: 'attacker' })}`), auth(`Bearer ${token()}`)]),
  );
  add('dup.empty-then-valid', 'refuse', get(['Authorization:', auth(`Bearer ${token()}`)]));
  add('dup.valid-then-empty', 'refuse', get([auth(`Bearer ${token()}`), 'Authorization:']));
  add('dup.blank-then-valid', 'refuse', get(['Authorization: \t ', auth(`Bearer ${token()}`)]));
  add('dup.both-empty', 'refuse', get(['Authorization:', 'Authorization:']));
  add(
    'dup.basic-then-valid',
    'refuse',
    get([auth('Basic dXNlcjpwYXNz'), auth(`Bearer ${token()}`)]),
  );
  add(
    'dup.valid-then-basic',
    'refuse',
    get([auth(`Bearer ${token()}`), auth('Basic dXNlcjpwYXNz')]),
  );
  add(
    'dup.name-case',
    'refuse',
    get([`authorization: Bearer ${token()}`, `AUTHORIZATION: Bearer ${token()}`]),
  );
  add(
    'dup.far-apart',
    'refuse',
    get([
      auth(`Bearer ${token()}`),
      ...Array.from({ length: 50 }, (_, i) => `X-Pad-${i}: ${i}`),
      auth(`Bearer ${token({ signer: 'attacker' })}`),
    ]),
  );

  // Size: a long token, a header past every server's limit, very many fields.
  add('size.token-9000', 'refuse', get([auth(`Bearer ${b64(randomBytes(6750))}`)]));
  add('size.header-70k', 'refuse', get([auth(`Bearer ${b64(randomBytes(52_500))}`)]));
  add(
    'size.padding-12k-then-valid',
    'accept',
    get([`X-Pad: ${'p'.repeat(12_000)}`, auth(`Bearer ${token()}`)]),
  );
  // Node keeps the first 2000 raw header entries (maxHeadersCount): fields past them are unseen.
  const pad = (count: number) => Array.from({ length: count }, (_, i) => `x${i}: 1`);
  add('many.1100-then-valid', undefined, get([...pad(1100), auth(`Bearer ${token()}`)]));
  add(
    'many.valid-1100-forged',
    'refuse',
    get([auth(`Bearer ${token()}`), ...pad(1100), auth(`Bearer ${token({ signer: 'attacker' })}`)]),
  );
  add(
    'many.forged-1100-valid',
    'refuse',
    get([auth(`Bearer ${token({ signer: 'attacker' })}`), ...pad(1100), auth(`Bearer ${token()}`)]),
  );

  add(
    'many.900-then-dup',
    'refuse',
    get([...pad(900), auth(`Bearer ${token()}`), auth(`Bearer ${token({ signer: 'attacker' })}`)]),
  );
  {
    // The same hiding for DPoP's one-proof rule, and for the Host that `trustHost` reads.
    const t = bound();
    add(
      'many.dpop-second-proof-hidden',
      'refuse',
      get([auth(`DPoP ${t}`), `DPoP: ${proof(t)}`, ...pad(1100), `DPoP: ${proof(t)}`], '/dpop'),
    );
    const u = bound();
    add(
      'many.second-host-hidden',
      'refuse',
      req(
        [
          'Host: evil.example',
          auth(`DPoP ${u}`),
          `DPoP: ${proof(u, { htu: 'https://evil.example/dpop' })}`,
          ...pad(1100),
          'Host: other.example',
          'Connection: close',
        ],
        '/dpop',
      ),
    );
  }

  // Methods and request targets.
  const valid = () => [`Host: ${HOST}`, auth(`Bearer ${token()}`), 'Connection: close'];
  add('method.HEAD', undefined, req(valid(), '/products', 'HEAD'), 'HEAD');
  add('method.OPTIONS', undefined, req(valid(), '/products', 'OPTIONS'));
  add('method.POST', undefined, req([...valid(), 'Content-Length: 0'], '/products', 'POST'));
  add('method.lowercase-get', undefined, req(valid(), '/products', 'get'));
  add('method.PROPFIND', undefined, req(valid(), '/products', 'PROPFIND'));
  add('method.unknown', undefined, req(valid(), '/products', 'FROB'));
  add(
    'method.forged-HEAD',
    'refuse',
    req(
      [`Host: ${HOST}`, auth(`Bearer ${token({ signer: 'attacker' })}`), 'Connection: close'],
      '/products',
      'HEAD',
    ),
    'HEAD',
  );
  add('target.absolute', undefined, req(valid(), `http://${HOST}/products`));
  add('target.absolute-other-host', undefined, req(valid(), 'http://evil.example/products'));
  add('target.query', 'accept', req(valid(), '/products?x=1'));
  add('target.dot-segment', undefined, req(valid(), '/x/../products'));
  add('target.double-slash', undefined, req(valid(), '//products'));
  add('target.encoded', undefined, req(valid(), '/%70roducts'));
  add('target.uppercase', undefined, req(valid(), '/PRODUCTS'));
  add('target.asterisk', undefined, req(valid(), '*', 'OPTIONS'));
  add('target.query-token', 'refuse', get([], `/products?access_token=${token()}`));
  add('host.missing', undefined, req([auth(`Bearer ${token()}`), 'Connection: close']));
  add(
    'host.duplicate',
    undefined,
    req([`Host: ${HOST}`, 'Host: evil.example', ...valid().slice(1)]),
  );
  add('host.empty', undefined, req(['Host:', ...valid().slice(1)]));
  add('http10.no-host', undefined, req([auth(`Bearer ${token()}`)], '/products', 'GET', '1.0'));
  add('http09-ish', 'refuse', `GET /products\r\n\r\n`);
  add(
    'bare-lf',
    undefined,
    `GET /products HTTP/1.1\nHost: ${HOST}\nAuthorization: Bearer ${token()}\nConnection: close\n\n`,
  );
  add(
    'smuggle.cl-and-te',
    undefined,
    req([...valid(), 'Content-Length: 4', 'Transfer-Encoding: chunked'], '/products', 'POST') +
      '0\r\n\r\n',
  );
  add(
    'smuggle.te-obfuscated',
    undefined,
    req([...valid(), 'Transfer-Encoding: xchunked'], '/products', 'POST'),
  );
  add('cookie-token', 'refuse', get([`Cookie: access_token=${token()}`]));

  // DPoP on /dpop (required; trustHost: the htu's host may be the request's Host).
  const dpopGet = (lines: readonly string[], target = '/dpop', host = HOST, method = 'GET') =>
    req([...(host === '' ? [] : [`Host: ${host}`]), ...lines, 'Connection: close'], target, method);
  const presented = (t: string, p: string) => [auth(`DPoP ${t}`), `DPoP: ${p}`];
  const fresh = () => {
    const t = bound();
    return { t, p: proof(t) };
  };
  {
    const { t, p } = fresh();
    add('dpop.valid', 'accept', dpopGet(presented(t, p)));
  }
  {
    const t = bound();
    add(
      'dpop.htu-from-host',
      'accept',
      dpopGet(presented(t, proof(t, { htu: `http://${HOST}/dpop` }))),
    );
  }
  {
    const { t, p } = fresh();
    add('dpop.name-lowercase', 'accept', dpopGet([auth(`DPoP ${t}`), `dpop: ${p}`]));
  }
  {
    const { t, p } = fresh();
    add('dpop.proof-twice-same', 'refuse', dpopGet([...presented(t, p), `DPoP: ${p}`]));
  }
  {
    const { t, p } = fresh();
    add('dpop.proof-twice-different', 'refuse', dpopGet([...presented(t, p), `DPoP: ${proof(t)}`]));
  }
  {
    const { t, p } = fresh();
    add('dpop.proof-name-case-twice', 'refuse', dpopGet([...presented(t, p), `dpop: ${proof(t)}`]));
  }
  {
    const { t, p } = fresh();
    add(
      'dpop.proof-empty-then-valid',
      'refuse',
      dpopGet([auth(`DPoP ${t}`), 'DPoP:', `DPoP: ${p}`]),
    );
  }
  {
    const { t, p } = fresh();
    add('dpop.proof-valid-then-empty', 'refuse', dpopGet([...presented(t, p), 'DPoP:']));
  }
  {
    const { t, p } = fresh();
    add(
      'dpop.proof-folded',
      'refuse',
      dpopGet([auth(`DPoP ${t}`), `DPoP: ${p.slice(0, 30)}`, ` ${p.slice(30)}`]),
    );
  }
  {
    const { t, p } = fresh();
    add('dpop.authorization-twice', 'refuse', dpopGet([auth(`DPoP ${t}`), ...presented(t, p)]));
  }
  {
    const { t, p } = fresh();
    add('dpop.scheme-uppercase', 'accept', dpopGet([auth(`DPOP ${t}`), `DPoP: ${p}`]));
  }
  {
    const t = bound();
    add('dpop.no-proof', 'refuse', dpopGet([auth(`DPoP ${t}`)]));
  }
  {
    const { t } = fresh();
    add('dpop.bound-as-bearer', 'refuse', dpopGet([auth(`Bearer ${t}`), `DPoP: ${proof(t)}`]));
  }
  {
    const t = bound();
    add('dpop.proof-for-head', 'refuse', dpopGet(presented(t, proof(t, { htm: 'HEAD' }))));
  }
  {
    const t = bound();
    add(
      'dpop.head-with-get-proof',
      'refuse',
      dpopGet(presented(t, proof(t)), '/dpop', HOST, 'HEAD'),
      'HEAD',
    );
  }
  {
    const t = bound();
    add(
      'dpop.htm-lowercase-request',
      undefined,
      dpopGet(presented(t, proof(t, { htm: 'get' })), '/dpop', HOST, 'get'),
    );
  }
  // trustHost reads the Host / the absolute-form target: each runtime must see the same one.
  const evil = 'evil.example';
  {
    const t = bound();
    add(
      'host.proof-for-host-header',
      'accept',
      dpopGet(presented(t, proof(t, { htu: `https://${evil}/dpop` })), '/dpop', evil),
    );
  }
  {
    const t = bound();
    add(
      'host.duplicate-second-named',
      'refuse',
      dpopGet([`Host: ${evil}`, ...presented(t, proof(t, { htu: `https://${evil}/dpop` }))]),
    );
  }
  {
    const t = bound();
    add(
      'host.duplicate-first-named',
      'refuse',
      dpopGet(
        ['Host: other.example', ...presented(t, proof(t, { htu: `https://${evil}/dpop` }))],
        '/dpop',
        evil,
      ),
    );
  }
  {
    const t = bound();
    add(
      'host.name-case-duplicate',
      'refuse',
      dpopGet([`HOST: ${evil}`, ...presented(t, proof(t, { htu: `https://${evil}/dpop` }))]),
    );
  }
  {
    const t = bound();
    add(
      'host.folded',
      'refuse',
      dpopGet(
        presented(t, proof(t, { htu: `https://${evil}/dpop` })),
        '/dpop',
        `${HOST}\r\n ${evil}`,
      ),
    );
  }
  {
    const t = bound();
    add(
      'host.with-port',
      'accept',
      dpopGet(
        presented(t, proof(t, { htu: `https://${evil}:8443/dpop` })),
        '/dpop',
        `${evil}:8443`,
      ),
    );
  }
  {
    const t = bound();
    add(
      'host.uppercase',
      'accept',
      dpopGet(presented(t, proof(t, { htu: `https://${evil}/dpop` })), '/dpop', evil.toUpperCase()),
    );
  }
  {
    const t = bound();
    add(
      'host.absolute-target',
      undefined,
      dpopGet(presented(t, proof(t, { htu: `https://${evil}/dpop` })), `http://${evil}/dpop`),
    );
  }
  {
    const t = bound();
    add(
      'host.absolute-target-proof-for-host',
      undefined,
      dpopGet(presented(t, proof(t, { htu: `https://${HOST}/dpop` })), `http://${evil}/dpop`),
    );
  }
  {
    const t = bound();
    add(
      'host.http10-no-host',
      undefined,
      req(presented(t, proof(t, { htu: `https://${evil}/dpop` })), '/dpop', 'GET', '1.0'),
    );
  }
  {
    const t = bound();
    add(
      'host.http10-absolute',
      undefined,
      req(
        presented(t, proof(t, { htu: `https://${evil}/dpop` })),
        `http://${evil}/dpop`,
        'GET',
        '1.0',
      ),
    );
  }
  {
    const t = bound();
    add('host.path-dot-segment', 'refuse', dpopGet(presented(t, proof(t)), '/x/../dpop'));
  }
  {
    const t = bound();
    add('host.path-encoded', undefined, dpopGet(presented(t, proof(t)), '/%64pop'));
  }
  return cases;
}

// ── the apps ───────────────────────────────────────────────────────────────────────────────────

/** The JWKS the apps fetch: this process, on loopback. */
async function startJwks(): Promise<{ url: string; close(): void }> {
  const body = JSON.stringify({ keys: [{ ...issuerKey.jwk, kid: KID, alg: 'ES256', use: 'sig' }] });
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

interface App {
  readonly runtime: Runtime;
  readonly framework: Framework;
  readonly port: number;
  readonly child: ChildProcess;
  /** What the app wrote on stderr (its 5xx log). */
  readonly stderr: string[];
}

function command(runtime: Runtime, file: string): [string, string[]] {
  switch (runtime) {
    case 'node':
      return [args.node ?? process.execPath, [file]];
    case 'bun':
      return [args.bun ?? 'bun', [file]];
    case 'deno':
      return [args.deno ?? 'deno', ['run', '--allow-net', '--allow-read', '--allow-env', file]];
  }
}

async function startApp(runtime: Runtime, framework: Framework, config: string): Promise<App> {
  const [exe, argv] = command(runtime, `${framework}.mjs`);
  const child = spawn(exe, argv, {
    cwd: appDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      WIRE_CONFIG: config,
      NODE_OPTIONS: '',
      NO_COLOR: '1',
      DENO_NO_UPDATE_CHECK: '1',
    },
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  let timer: NodeJS.Timeout | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const match = /^listening (\d+)$/.exec(line);
        if (match !== null) resolve(Number(match[1]));
      });
      child.once('exit', (code) =>
        reject(new Error(`exited (${code}) before listening: ${stderr.slice(-5).join(' | ')}`)),
      );
      timer = setTimeout(
        () => reject(new Error(`did not listen within ${START_TIMEOUT} ms`)),
        START_TIMEOUT,
      );
    });
    return { runtime, framework, port, child, stderr };
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${runtime} ${framework}.mjs: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

// ── asking ─────────────────────────────────────────────────────────────────────────────────────

interface Answer {
  /** HTTP status; 0: no answer (`kind` says why). */
  readonly status: number;
  /** `error` of WWW-Authenticate, else of a JSON body; `-` when none. */
  readonly code: string;
  /** Written by the app (its marker), not by the runtime's HTTP layer. */
  readonly byApp: boolean;
  readonly kind: 'answer' | 'closed' | 'hang';
  /** The raw answer, for the echo check. */
  readonly raw: string;
}

function parseAnswer(raw: Buffer, method: string): Answer | 'incomplete' {
  let text = raw.toString('latin1');
  // Skip interim answers (100 Continue).
  while (/^HTTP\/1\.[01] 1\d\d /.test(text)) {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return 'incomplete';
    text = text.slice(end + 4);
  }
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return 'incomplete';
  const [statusLine = '', ...lines] = text.slice(0, headEnd).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  if (Number.isNaN(status))
    return { status: 0, code: '-', byApp: false, kind: 'answer', raw: text };
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  const body = text.slice(headEnd + 4);
  const noBody = method === 'HEAD' || status === 204 || status === 304;
  const length = headers.get('content-length');
  if (!noBody) {
    if (length !== undefined && Buffer.byteLength(body, 'latin1') < Number(length)) {
      return 'incomplete';
    }
    if (
      /chunked/i.test(headers.get('transfer-encoding') ?? '') &&
      !/(^|\r\n)0\r\n\r\n$/.test(body)
    ) {
      return 'incomplete';
    }
  }
  // The RFC 6750 code: the challenge's, else a JSON body's when it is one (a framework's own
  // `"error": "Not Found"` is not compared).
  let code = /error="([^"]*)"/.exec(headers.get('www-authenticate') ?? '')?.[1];
  if (code === undefined && !noBody) {
    try {
      const unchunked = body.replace(/^[0-9a-f]+\r\n|\r\n[0-9a-f]+\r\n/gi, '');
      const json = JSON.parse(unchunked) as { error?: unknown };
      if (typeof json.error === 'string' && /^[a-z_]+$/.test(json.error)) code = json.error;
    } catch {
      // not JSON
    }
  }
  return { status, code: code ?? '-', byApp: headers.has('x-wire-app'), kind: 'answer', raw: text };
}

/** One request on its own connection; the answer, or why there is none. */
function ask(port: number, c: Case): Promise<Answer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect(port, '127.0.0.1');
    const finish = (answer: Answer) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(answer);
    };
    const none = (kind: 'closed' | 'hang'): Answer => ({
      status: 0,
      code: '-',
      byApp: false,
      kind,
      raw: Buffer.concat(chunks).toString('latin1'),
    });
    const settle = (ended: boolean) => {
      const parsed = parseAnswer(Buffer.concat(chunks), c.method);
      if (parsed !== 'incomplete') finish(parsed);
      else if (ended) finish(none('closed'));
    };
    socket.setTimeout(REQUEST_TIMEOUT, () => {
      const parsed = parseAnswer(Buffer.concat(chunks), c.method);
      finish(parsed === 'incomplete' ? none('hang') : parsed);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      settle(false);
    });
    socket.on('end', () => settle(true));
    socket.on('close', () => settle(true));
    // A reset after the answer (a runtime closing on a request it refused) keeps the answer.
    socket.on('error', () => settle(true));
    socket.write(c.bytes);
  });
}

async function askAll(app: App, cases: readonly Case[], deadline: number): Promise<Answer[]> {
  const answers: Answer[] = [];
  let hungInARow = 0;
  for (const c of cases) {
    if (hungInARow >= MAX_HUNG_IN_A_ROW || Date.now() > deadline) {
      answers.push(NO_ANSWER);
      continue;
    }
    const answer = await ask(app.port, c);
    hungInARow = answer.kind === 'hang' ? hungInARow + 1 : 0;
    answers.push(answer);
  }
  return answers;
}

// ── the report ─────────────────────────────────────────────────────────────────────────────────

const NO_ANSWER: Answer = { status: 0, code: '-', byApp: false, kind: 'hang', raw: '' };
const isOk = (a: Answer) => a.status >= 200 && a.status < 300;
function show(a: Answer): string {
  if (a.kind !== 'answer') return a.kind;
  return `${a.status} ${a.code}${a.byApp ? '' : ' (runtime)'}`;
}

async function main(): Promise<number> {
  const started = performance.now();
  const here = fileURLToPath(new URL('./wire/', import.meta.url));
  for (const file of readdirSync(here)) copyFileSync(join(here, file), join(appDir, file));
  const jwks = await startJwks();
  const config = JSON.stringify({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: jwks.url,
    dpopOrigin: DPOP_ORIGIN,
  });
  const frameworks = args.only === undefined ? FRAMEWORKS : (args.only.split(',') as Framework[]);
  const cases = buildCorpus();
  const apps: App[] = [];
  const failures: string[] = [];
  const fine: string[] = [];
  const killAll = () => {
    for (const app of apps) if (app.child.exitCode === null) app.child.kill('SIGKILL');
  };
  const deadline = Date.now() + RUN_DEADLINE;
  try {
    const starting = RUNTIMES.flatMap((runtime) =>
      frameworks.map((framework) => startApp(runtime, framework, config)),
    );
    const settled = await Promise.allSettled(starting);
    for (const result of settled) {
      if (result.status === 'fulfilled') apps.push(result.value);
      else failures.push(`start: ${(result.reason as Error).message}`);
    }
    const startedAll = performance.now();
    const answers = new Map<string, Answer[]>();
    await Promise.all(
      apps.map(async (app) =>
        answers.set(`${app.runtime} ${app.framework}`, await askAll(app, cases, deadline)),
      ),
    );
    const asked = performance.now();

    const table: string[][] = [];
    for (const framework of frameworks) {
      const oracle = answers.get(`node ${framework}`);
      for (const runtime of RUNTIMES) {
        const got = answers.get(`${runtime} ${framework}`);
        const row = {
          agree: 0,
          runtime: 0,
          permissive: 0,
          judged: 0,
          differ: 0,
          looser: 0,
          bad: 0,
        };
        if (got === undefined) {
          table.push([runtime, framework, 'did not start']);
          continue;
        }
        cases.forEach((c, i) => {
          const a = got[i] as Answer;
          const key = `${runtime} ${framework} ${c.id}`;
          const bug = KNOWN_BUGS.get(key);
          const known = bug === undefined ? '' : ` [known bug: ${bug}]`;
          // Never: a 5xx, a hang, an echo; on any runtime.
          const leaked = c.secrets.filter((secret) => a.raw.includes(secret));
          if (a.status >= 500 || a.kind === 'hang' || leaked.length > 0) {
            row.bad++;
            const what = leaked.length > 0 ? `echoes the token (${show(a)})` : show(a);
            failures.push(`${key}: ${what}`);
            return;
          }
          // A hostile request (forged, two credentials, ...) accepted anywhere, Node included.
          if (c.must === 'refuse' && isOk(a)) {
            row.looser++;
            failures.push(`${key}: ACCEPTED a request that must be refused: ${show(a)}${known}`);
            return;
          }
          if (runtime === 'node') {
            if (c.must === 'accept' && !isOk(a)) {
              row.differ++;
              failures.push(`${key}: Node ${show(a)}: must accept`);
            } else row.agree++;
            return;
          }
          const n = oracle?.[i] ?? NO_ANSWER;
          if (a.status === n.status && a.code === n.code && a.byApp === n.byApp) {
            row.agree++;
            return;
          }
          const versus = `Node ${show(n)}, ${runtime} ${show(a)}`;
          if (isOk(a) && !isOk(n)) {
            if (n.byApp) {
              row.looser++;
              failures.push(`${key}: LOOSER than Node (trust bug): ${versus}${known}`);
            } else {
              // Node's HTTP layer refused the request; this runtime's let it through, and
              // resource-guard accepted its one sound credential (a hostile case fails above).
              row.permissive++;
              fine.push(
                `${key}: ${versus}: the runtime's HTTP layer admits it, the credential is sound`,
              );
            }
            return;
          }
          if (!isOk(a) && (!a.byApp || !n.byApp)) {
            row.runtime++;
            const who = a.byApp
              ? "Node's HTTP layer refused it first"
              : 'refused before the guard (runtime HTTP layer or framework)';
            fine.push(`${key}: ${versus}: ${who}`);
            return;
          }
          const judged = JUDGED.get(key);
          if (judged !== undefined) {
            row.judged++;
            fine.push(`${key}: ${versus}: ${judged}`);
            return;
          }
          row.differ++;
          failures.push(`${key}: differs: ${versus}${known}`);
        });
        table.push(
          [
            runtime,
            framework,
            row.agree,
            row.runtime,
            row.permissive,
            row.judged,
            row.differ,
            row.looser,
            row.bad,
          ].map(String),
        );
      }
    }
    for (const key of JUDGED.keys()) {
      if (!fine.some((line) => line.startsWith(`${key}:`))) {
        console.log(`  stale JUDGED entry (no longer differs): ${key}`);
      }
    }
    for (const app of apps) {
      // The apps' own 5xx log (common.mjs, http.mjs); a framework's client-error noise is not shown.
      const own = app.stderr.filter((line) => /^\[(wire|http)\]/.test(line));
      for (const line of own.slice(0, 5))
        console.log(`  [${app.runtime} ${app.framework}] ${line}`);
    }

    // Node's answers, one line per distinct answer (the rule the others follow).
    const byAnswer = new Map<string, string[]>();
    const nodeHttp = answers.get(`node ${frameworks[0]}`);
    cases.forEach((c, i) => {
      const per = frameworks.map((f) => show(answers.get(`node ${f}`)?.[i] ?? NO_ANSWER));
      const label =
        new Set(per).size === 1 ? per[0]! : frameworks.map((f, j) => `${f} ${per[j]}`).join(', ');
      byAnswer.set(label, [...(byAnswer.get(label) ?? []), c.id]);
    });
    if (nodeHttp !== undefined) {
      console.log(`Node's answers (${frameworks.join(', ')}):`);
      for (const [label, ids] of byAnswer) console.log(`  ${label}: ${ids.join(' ')}`);
    }
    if (fine.length > 0) {
      console.log(`differences judged fine (${fine.length}):`);
      for (const line of fine) console.log(`  ${line}`);
    }
    console.log(
      `wire: ${cases.length} raw requests x ${apps.length} apps in ${((asked - started) / 1000).toFixed(1)} s (start ${((startedAll - started) / 1000).toFixed(1)} s)`,
    );
    const head = [
      'runtime',
      'framework',
      'agree',
      'refused-early',
      'layer-admits',
      'judged',
      'differ',
      'LOOSER',
      '5xx/hang/echo',
    ];
    const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? '').length)));
    for (const row of [head, ...table]) {
      console.log(`  ${row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`);
    }
    if (failures.length > 0) {
      const known = failures.filter((line) => line.includes('[known bug: ')).length;
      console.log(`FAILED (${failures.length}):`);
      for (const line of failures) console.log(`  ${line}`);
      console.log(
        `wire: FAILED: ${known} on known bugs (KNOWN_BUGS: fix src/, then delete the entries), ${failures.length - known} others`,
      );
      return 1;
    }
    const stale = [...KNOWN_BUGS.keys()];
    if (stale.length > 0) console.log(`  stale KNOWN_BUGS entries (fixed?): ${stale.join(', ')}`);
    console.log('wire: passed');
    return 0;
  } finally {
    killAll();
    jwks.close();
  }
}

const watchdog = setTimeout(() => {
  console.log(`wire: FAILED: the run did not finish within ${RUN_DEADLINE + 10_000} ms`);
  process.exit(1);
}, RUN_DEADLINE + 10_000);
watchdog.unref();
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
