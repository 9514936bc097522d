import { base64url, compactVerify, errors as joseErrors, importJWK } from 'jose';
import { warnOnce } from './diagnostics.ts';
import { Rejection } from './errors.ts';
import type { CryptoKey, JWK, KeyObject as JoseKeyObject } from 'jose';
import type * as NodeCrypto from 'node:crypto';
import { nodeCrypto } from './node-crypto.ts';

/** A key as jose's key selection returns it. */
export type VerifyKey = CryptoKey | JoseKeyObject | Uint8Array;

type Params = readonly [hash: string | null, options: Record<string, unknown>];

// node:crypto parameters per JWS algorithm (RFC 7518 §3). PS*: salt length = hash length, as
// WebCrypto (and so jose) requires. ES*: the raw r||s signature encoding of JWS.
const RSA_PKCS1_PSS_PADDING = 6;
const PARAMS: Readonly<Record<string, Params>> = {
  RS256: ['sha256', {}],
  RS384: ['sha384', {}],
  RS512: ['sha512', {}],
  PS256: ['sha256', { padding: RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  PS384: ['sha384', { padding: RSA_PKCS1_PSS_PADDING, saltLength: 48 }],
  PS512: ['sha512', { padding: RSA_PKCS1_PSS_PADDING, saltLength: 64 }],
  ES256: ['sha256', { dsaEncoding: 'ieee-p1363' }],
  ES384: ['sha384', { dsaEncoding: 'ieee-p1363' }],
  ES512: ['sha512', { dsaEncoding: 'ieee-p1363' }],
  EdDSA: [null, {}],
  Ed25519: [null, {}],
};

/**
 * The route per key, decided by bench/route.ts and bench/peers.ts (see bench/RESULTS.md): with
 * one request in flight the pool's round trip costs about as much as RSA, P-256 or Ed25519 take
 * to verify (20-60 µs), and with many in flight the pool gains where another core is free; so
 * those are adaptive. P-384 and P-521 (0.4-1.1 ms) always go to the pool: inline they would hold
 * the event loop that long, for a 5-10% gain on a lone request.
 */
function routeOf(keyObject: NodeCrypto.KeyObject): Route {
  const curve = keyObject.asymmetricKeyDetails?.namedCurve;
  return curve === 'secp384r1' || curve === 'secp521r1' ? 'pool' : 'adaptive';
}

/**
 * Whether node:crypto's `verify`, called exactly as {@link verifySignature} calls it, gives the
 * right answer on this runtime: decided once per algorithm family against a known-good signature,
 * never guessed from the presence of `process`. (Cloudflare Workers with `nodejs_compat` has
 * node:crypto, but its `verify` refuses a KeyObject in the options form: there every key goes
 * through jose and WebCrypto instead.)
 */
const capable = new Map<string, boolean>();

function nodeRouteWorks(alg: string): boolean {
  const family = PROBE_FOR[alg];
  if (family === undefined) return false;
  let works = capable.get(family);
  if (works === undefined) {
    works = probe(family);
    capable.set(family, works);
  }
  return works;
}

function probe(family: keyof typeof VECTORS): boolean {
  const params = PARAMS[family];
  if (nodeCrypto === undefined || params === undefined) return false;
  try {
    const [keyName, jws] = VECTORS[family];
    const key = nodeCrypto.createPublicKey({
      key: KEYS[keyName] as NodeCrypto.JsonWebKey,
      format: 'jwk',
    });
    const [hash, options] = params;
    const keyInput = { key, ...options } as NodeCrypto.VerifyKeyObjectInput;
    const dot = jws.lastIndexOf('.');
    const input = new TextEncoder().encode(jws.slice(0, dot));
    const signature = Buffer.from(jws.slice(dot + 1), 'base64url');
    const good = nodeCrypto.verify(hash, input, keyInput, signature);
    // And a wrong signature must be refused: a route that says yes to everything is no route.
    signature[signature.length - 1] = (signature[signature.length - 1] as number) ^ 1;
    return good === true && nodeCrypto.verify(hash, input, keyInput, signature) === false;
  } catch {
    return false;
  }
}

/**
 * Whether jose (WebCrypto) verifies a known-good signature of this family here. jose answers
 * "does not verify" when WebCrypto itself fails, so a `false` from jose is only believed once
 * this has been seen to work; it is asked only after a `false`. The answer is kept, never the
 * promise (a promise must not cross requests on runtimes such as Cloudflare Workers).
 */
const joseWorks = new Map<string, boolean>();

async function joseRouteWorks(alg: string): Promise<boolean> {
  const family = PROBE_FOR[alg];
  if (family === undefined) return true; // not ours to judge: jose refused the algorithm itself
  const known = joseWorks.get(family);
  if (known !== undefined) return known;
  const [keyName, jws] = VECTORS[family];
  let works: boolean;
  try {
    const key = await importJWK({ ...KEYS[keyName], alg: family } as JWK, family);
    works = await compactVerify(jws, key, { algorithms: [family] }).then(
      () => true,
      () => false,
    );
  } catch {
    works = false;
  }
  joseWorks.set(family, works);
  return works;
}

/** The known-good signature each algorithm is probed with (its family's). */
const PROBE_FOR: Readonly<Record<string, keyof typeof VECTORS>> = {
  RS256: 'RS256',
  RS384: 'RS256',
  RS512: 'RS256',
  PS256: 'PS256',
  PS384: 'PS256',
  PS512: 'PS256',
  ES256: 'ES256',
  ES384: 'ES384',
  ES512: 'ES512',
  EdDSA: 'EdDSA',
  Ed25519: 'EdDSA',
};

// Public keys and compact JWS of the payload 'resource-guard probe', made once with node:crypto
// (the private keys were thrown away). What is under test is the runtime, not these keys.
const KEYS: Readonly<Record<string, NodeCrypto.JsonWebKey>> = {
  rsa: {
    kty: 'RSA',
    n: 'i_8vP8cwqI_bfSJlA8BKjjL5ybyD2hq6SFD-OwyIvOfAs2KNKMX6oT3FGsocKxOMzh6OyofD5iI6_rp2_7GZKQ6X4__vlmxRE64hUnBEwLkB-I867t3IrCTYDntnbLGpnRHjIpF-qCEPDPwOl09kWoFctm5peZ5rXvPoqs-d6vUiVYt4y-MJ5CO5TlrMl2OEOlmJ2TOI3jNWzKKO-ADcqRauzRC5qonIvcrEUxcxkW2PiZTN-oaRAJS6zHh0uCO_tm9Sym05nIbocsSfz__9DkgY8wxTc-o-zWgugAqqtNi10lIln8dAZGEYcgbMn-dg3D7pNR1q_fQBFIwPIW6YLw',
    e: 'AQAB',
  },
  p256: {
    kty: 'EC',
    x: '5tZycchkqh2RnYL92TH3Uokv5S-gr9QwweQSGz6yaRI',
    y: 'LI9vrsprY-0Aa9ilkQ42raTjhjvLEpgAloaskIvxvNY',
    crv: 'P-256',
  },
  p384: {
    kty: 'EC',
    x: 'yHpyE_DzVT2TK_EZPysOLRkJZqBzCpyIiEsbLjA6pWY7maBv2dQPkQ0Oe9IiCrD0',
    y: 'dTGx1EXh9tONz6mRSCdH_Gi-K5rfKZybP8tkkXfl1s_6cGikjEw69zlgcvj4BEQp',
    crv: 'P-384',
  },
  p521: {
    kty: 'EC',
    x: 'AAyKls5XPsDJSG41X86yBBA0vtfVCfmLfZXZ7yLbncCfxoSBgA3C2dZLSNc2Mq7SHNBnRxSwUeLTOjnAXKBjwLEh',
    y: 'AKOxxkHyJAwwV-fd1--fOchsukiUOpV3BoWl7wewGnJdYcRJbkMNPOVP_Q1HsTbhLcAKHuIqevUIbSobTjDAS8G6',
    crv: 'P-521',
  },
  ed: { crv: 'Ed25519', x: 'B_ba_YObBsND7xcC7iSx65QISWWqDL9E9_0gWQJwGHk', kty: 'OKP' },
};
const VECTORS = {
  RS256: [
    'rsa',
    'eyJhbGciOiJSUzI1NiJ9.cmVzb3VyY2UtZ3VhcmQgcHJvYmU.YBvv1roc7iZzuDL-DmXDpFRPG2FFEwIWc3CbSRfQ3bJTuAo4nQz-WC3miHPDiuYIhXcMyg19qcAV4LiLoMv-8hpT2PiY7smx9URJIp3Pfr4-lvVrqalikNtUSBh4dJPzOUIkgL76U89IiIIvSyD-GuTKzoD5Ulfim5fx-ULR3k6ZJBlwNcf9727kH43SLFR7P6rVUgbZ3goJBRea2KTkVr7vwOm0tNvsItq_sU3T3bDKclUZaQ7hRtFIaXi-XSN5V610y-YwsD9NSMwwai5s1ZRz_Fjxpv69M8q7cg1gSgqZwXtEMelO7e_Xx5IALXpwKJgxcLtXrsX7X4zGiZFBWQ',
  ],
  PS256: [
    'rsa',
    'eyJhbGciOiJQUzI1NiJ9.cmVzb3VyY2UtZ3VhcmQgcHJvYmU.DIyimPCcPWCMOpk1JAvg-GLT-d8Uscyy_GTT8SDVRQ9wYOn1fV0WpEECUuashTBwIWH6oNjyRK6WfxwCQlhItJrcDEeKNBYC8KWEQlY2xBT5ZTfSIBTpyhe0pckdAJjsoW-XwEiyo5GJZAIldyYHi7X3pnjAwUwovWTGANaIgyyfj5mpy5rZIfxr9eoesWQIqiSATfYAGUCTomfCpAh25YB_5t5Rlh4eadv55-hzc8uCEWTnWpNxjVeA8yjQBTTBOSiQW8sbYt2tlVbyb-FdwD3aKSYzl1c1P0Wjx2de9zjrC_l4cxz6RRD-vZf5V-PxknGxhZqQGJnZEwILj9xbwQ',
  ],
  ES256: [
    'p256',
    'eyJhbGciOiJFUzI1NiJ9.cmVzb3VyY2UtZ3VhcmQgcHJvYmU.QD93OohFdZqtTKNUOlVdqWhbMPyI2bRgiSH4ufNxH20Om48gThTM4vznZfgb6ZPZ7Lf57YfZQtpFE3WQTHweSA',
  ],
  ES384: [
    'p384',
    'eyJhbGciOiJFUzM4NCJ9.cmVzb3VyY2UtZ3VhcmQgcHJvYmU.9JCRfKDlw15EZtxge7pI101eMDm45lQ8qL4k3DwmMPBcIzjgnIa8MSWuy3sxUdTy600JGGhh0afsRTK-68t0KQK6JRMoXeDHZsbidgFDhCNWXrtBJBaqo6HNHfgWY_Hr',
  ],
  ES512: [
    'p521',
    'eyJhbGciOiJFUzUxMiJ9.cmVzb3VyY2UtZ3VhcmQgcHJvYmU.AUtICtoAFWwIzByoodHOcaPnW_x-ucWj6Xwvnc0ftciEB4-MShHOyYusakwIyiql7p_o4caZtiJD0bzh541ocgRfAA3b8Gs0Ur8oGH_QCabQmW2icQhG1yHAPeQTtoCv2cST-AnxAd5PrXskVpDcBMNWmRhGbIepFPRqJKvthYZ6TUS1',
  ],
  EdDSA: [
    'ed',
    'eyJhbGciOiJFZERTQSJ9.cmVzb3VyY2UtZ3VhcmQgcHJvYmU.VN_Gofg5kfw7-WxC6m2dviLcsgig1-A-YfTl3Se_1J3MOD5_9EMt6cBZyVMo3IhVCzRztfoEK2a2fdX441NyDQ',
  ],
} as const;

/**
 * Where a key's verifications run: `inline` (synchronous `crypto.verify` on the event loop: no
 * thread-pool hop, one core), `pool` (its callback form, on libuv's thread pool: the other cores,
 * the loop free, a round trip of about 20-50 µs), or `adaptive`: inline while nothing is on the
 * pool and this turn of the event loop has spent less than {@link INLINE_BUDGET_MS} verifying
 * inline (a lone request, or a caller awaiting one token after another: no hop), on the pool once
 * requests queue up (a busy loop: both cores, and the loop is never held longer than the budget).
 * While a slow key's verification is on the pool, an adaptive one runs inline within the same
 * budget: the pool's queue is first in, first out, and 20-60 µs of work must not wait behind
 * milliseconds (or, under a flood of forged P-384 tokens, seconds) of slow keys' verifications.
 */
type Route = 'inline' | 'pool' | 'adaptive';

/**
 * @internal For bench/ only: `force` puts every verification on one route (`undefined`: the
 * policy); `routeFor` tells the policy's route for a key.
 */
export const signatureRoute: {
  force: Route | undefined;
  readonly routeFor: (key: VerifyKey) => Route | undefined;
  /** How long a pool verification may take before the pool has ever called back (tests). */
  poolProofMs: number;
} = { force: undefined, routeFor: (key) => prepare(key)?.route, poolProofMs: 5000 };

/**
 * Whether the thread pool has ever called back (`crypto.verify`'s callback form). Until it has,
 * every pool verification has a watchdog: a runtime whose callback never comes (a partial
 * node:crypto) must not hang requests. When one fires (judged a turn later: timers run before
 * the poll that hears the pool, so a loop blocked past the deadline must not count against it),
 * the pool is not used until it calls back: every key verifies inline (which the start-up probe
 * proved), the ones it was waiting for too (not jose: on Node, WebCrypto runs on that same pool).
 * A callback after its watchdog (a pool that was only busy: libuv's threads also run fs, zlib,
 * dns and the app's own crypto) proves the pool, which is used again.
 */
let poolProven = false;
let poolBroken = false;

/**
 * The most time an adaptive key verifies inline in one turn of the event loop, in ms: about eight
 * RS256 or three ES256 verifications. Decided over HTTP with distinct tokens (bench/peers.ts): at
 * 1 ms RSA stayed inline under load and one core did the work (behind fast-jwt and jose on RS256
 * and PS256); at 0.2 ms the rest of a busy turn goes to the pool and resource-guard is ahead of
 * all three. A server's lone request still verifies inline (each request is a turn of its own);
 * only a caller awaiting many tokens one after another within one turn hops to the pool sooner.
 */
const INLINE_BUDGET_MS = 0.2;
/** The most time watchdogs' answers verify inline in one turn, in ms (see answerLate). */
const WATCHDOG_TURN_MS = 10;
/** Verifications on the thread pool now. */
let pooled = 0;
/** Of those, the slow keys' (route `pool`: P-384, P-521). */
let pooledSlow = 0;
/**
 * The most slow keys' verifications handed to the thread pool at once: twice libuv's thread count
 * (`UV_THREADPOOL_SIZE`, 4 by default; not read on Deno, where reading the environment asks for a
 * permission), so that a thread that finishes one always finds the next (at exactly the thread
 * count, each waited for the event loop to hand it more: 6% less throughput). The others wait
 * here, first in, first out: the pool's own queue is first in, first out too and shared with
 * `dns.lookup` (a JWKS fetch's first step), the file system, zlib and every adaptive
 * verification sent there, so a flood of forged P-384 tokens must not queue seconds of work
 * ahead of them: behind this bound, they wait about one verification.
 */
const SLOW_ON_POOL = (() => {
  if ('Deno' in globalThis) return 8;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
    ?.env;
  const size = Number(env?.UV_THREADPOOL_SIZE);
  return 2 * (Number.isInteger(size) && size >= 1 ? Math.min(size, 1024) : 4);
})();
/** Slow keys' verifications waiting for a pool slot (see {@link SLOW_ON_POOL}). */
const slowWaiting: (() => void)[] = [];
/** Of those, the ones handed a slot and about to start (a microtask away). */
let slowStarting = 0;
/** How long an abandoned verification (its watchdog fired) holds its slot, in poolProofMs. */
const ABANDONED_HOLD = 20;
/** A turn is due to verify the next waiters inline (the pool declared broken). */
let drainDue = false;

/**
 * Starts waiting slow keys' verifications while the pool has room for them, or, when the pool is
 * broken, SLOW_ON_POOL of them a turn (each then verifies inline: a backlog must not hold the
 * event loop for all of it at once). Called whenever room may have appeared: a verification
 * settled, the pool declared broken, or a callback proving it again. Each starts in a microtask
 * (no recursion through a callback form that throws), its slot reserved meanwhile.
 */
function startWaiting(): void {
  while (slowWaiting.length > 0 && !poolBroken && pooledSlow + slowStarting < SLOW_ON_POOL) {
    const next = slowWaiting.shift() as () => void;
    slowStarting++;
    queueMicrotask(() => {
      slowStarting--;
      next();
    });
  }
  if (poolBroken && slowWaiting.length > 0 && !drainDue) {
    drainDue = true;
    nextTurn(() => {
      drainDue = false;
      if (poolBroken) for (const next of slowWaiting.splice(0, SLOW_ON_POOL)) next();
      startWaiting(); // the rest a turn later, or on the pool's room if it called back meanwhile
    });
  }
}
/** Time spent verifying inline (adaptive keys) in this turn of the event loop, in ms. */
let inlineMs = 0;
let turnEnding = false;
const nextTurn: (run: () => void) => unknown =
  (globalThis as { setImmediate?: (run: () => void) => unknown }).setImmediate ??
  ((run) => setTimeout(run, 0));
const endTurn = () => {
  inlineMs = 0;
  turnEnding = false;
};

function runsInline(route: Route): boolean {
  if (poolBroken) return true;
  const chosen = signatureRoute.force ?? route;
  if (chosen !== 'adaptive') return chosen === 'inline';
  return inlineMs < INLINE_BUDGET_MS && (pooled === 0 || pooledSlow > 0);
}

/** Counts an inline verification's time against this turn's budget (reset at the next turn). */
function spentInline(ms: number): void {
  inlineMs += ms;
  if (!turnEnding) {
    turnEnding = true;
    nextTurn(endTurn);
  }
}

interface PreparedKey {
  readonly key: NodeCrypto.KeyObject;
  readonly route: Route;
}
const prepared = new WeakMap<object, PreparedKey | null>();

function prepare(key: VerifyKey): PreparedKey | null {
  if (nodeCrypto === undefined || key instanceof Uint8Array) return null;
  let entry = prepared.get(key);
  if (entry === undefined) {
    try {
      const keyObject =
        key instanceof nodeCrypto.KeyObject
          ? key
          : nodeCrypto.KeyObject.from(key as unknown as NodeCrypto.webcrypto.CryptoKey);
      const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
      const rsa =
        keyObject.asymmetricKeyType === 'rsa' || keyObject.asymmetricKeyType === 'rsa-pss';
      // RSA under 2048 bits is left to jose, which refuses it (RFC 7518 §3.3).
      entry =
        keyObject.type === 'public' && !(rsa && bits < 2048)
          ? { key: keyObject, route: routeOf(keyObject) }
          : null;
    } catch {
      entry = null;
    }
    prepared.set(key, entry);
  }
  return entry;
}

/**
 * Verifies the signature of a compact JWS whose header was already checked (algorithm allowed,
 * key chosen for it by jose's key selection). On Node it verifies with node:crypto KeyObjects built
 * once per key, on the route {@link routeOf} gives the key: inline when alone in its turn of the
 * event loop (no thread-pool hop), on the libuv thread pool when verifications queue up or the key
 * is slow (P-384, P-521), so the event loop never runs a long one. Elsewhere it is jose's
 * `compactVerify`. A differential test holds the two to identical decisions. Synchronous (a
 * boolean) on the inline path, so that a lone verification costs no promise hop.
 */
export function verifySignature(
  token: string,
  key: VerifyKey,
  alg: string,
  modulus?: Uint8Array,
): boolean | Promise<boolean> {
  if (modulus !== undefined && !fitsModulus(token, modulus)) return false;
  const params = PARAMS[alg];
  const ready = params === undefined || !nodeRouteWorks(alg) ? null : prepare(key);
  if (ready === null || params === undefined || nodeCrypto === undefined) {
    return viaJose(token, key, alg);
  }
  const dot = token.lastIndexOf('.');
  const input = Buffer.from(token.slice(0, dot), 'latin1');
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  const [hash, options] = params;
  const keyInput = { key: ready.key, ...options } as NodeCrypto.VerifyKeyObjectInput;
  const { verify } = nodeCrypto;
  // node:crypto throws for some malformed signatures (and a runtime could throw for its own
  // reasons): jose then decides that one, so an exception never stands for "bad signature".
  if (runsInline(ready.route)) {
    const start = performance.now();
    try {
      return verify(hash, input, keyInput, signature);
    } catch {
      return viaJose(token, key, alg);
    } finally {
      spentInline(performance.now() - start);
    }
  }
  const slow = ready.route === 'pool';
  return new Promise((resolve, reject) => {
    let settled = false;
    let counted = false;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    /** Once per verification, whichever comes first: the callback, a throw or the watchdog. */
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      if (watchdog !== undefined) clearTimeout(watchdog);
      return true;
    };
    /** Off the pool: its callback came, or it threw (a watchdog's leaves it on, and counted). */
    const uncount = () => {
      if (!counted) return;
      counted = false;
      pooled--;
      if (slow) {
        pooledSlow--;
        startWaiting();
      }
    };
    const fallback = () => viaJose(token, key, alg).then(resolve, reject);
    /** Inline, as the start-up probe proved (jose's WebCrypto would use the same thread pool). */
    const inline = () => {
      try {
        resolve(verify(hash, input, keyInput, signature));
      } catch {
        void fallback();
      }
    };
    /**
     * A watchdog's answer, inline: many may fire in one turn (a burst sent to the pool at once),
     * so past WATCHDOG_TURN_MS of inline work in this turn the rest wait for the next turns.
     */
    const answerLate = () => {
      if (inlineMs >= WATCHDOG_TURN_MS) {
        nextTurn(answerLate);
        return;
      }
      const began = performance.now();
      inline();
      spentInline(performance.now() - began);
    };
    const start = () => {
      if (poolBroken) {
        // Declared broken while this one waited for a slot: inline, as every verification is.
        inline();
        return;
      }
      pooled++;
      if (slow) pooledSlow++;
      counted = true;
      if (!poolProven) {
        watchdog = setTimeout(() => {
          // Judged a turn later: an answer that is ready is heard in this turn's poll.
          nextTurn(() => {
            // The pool has answered another verification since: it works, and this one is queued.
            if (poolProven || !settle()) return;
            poolBroken = true;
            startWaiting(); // the waiting ones verify inline now, as every verification does
            warnOnce(
              'RESOURCE_GUARD_CRYPTO_POOL',
              `crypto.verify did not call back within ${signatureRoute.poolProofMs} ms: signatures are verified on the event loop until it does`,
            );
            // Counted until its callback (the bound holds after a false alarm), but not for ever:
            // a callback that never comes must not hold a slot once others have proven the pool.
            const release = setTimeout(uncount, ABANDONED_HOLD * signatureRoute.poolProofMs);
            (release as { unref?: () => void }).unref?.();
            answerLate();
          });
        }, signatureRoute.poolProofMs);
        (watchdog as { unref?: () => void }).unref?.();
      }
      try {
        verify(hash, input, keyInput, signature, (error, ok) => {
          // Any callback, even one after its watchdog, proves the pool: busy, not broken.
          poolProven = true;
          poolBroken = false;
          uncount();
          if (!settle()) {
            startWaiting(); // late: its watchdog settled it, and left the waiting ones waiting
            return;
          }
          // Only the synchronous form was probed: an answer that is not a boolean is not believed.
          if (error === null && typeof ok === 'boolean') resolve(ok);
          else void fallback();
        });
      } catch {
        uncount();
        if (settle()) void fallback();
      }
    };
    const wait = slow && (pooledSlow + slowStarting >= SLOW_ON_POOL || slowWaiting.length > 0);
    if (wait) slowWaiting.push(start);
    else start();
  });
}

/**
 * RSA (RFC 8017 §8.1.2 and §8.2.2, steps 1 and 2.a): a signature is exactly `k` octets, the
 * modulus's length, and as an integer below the modulus. Checked here, before any runtime's
 * crypto: Deno's (node:crypto and WebCrypto alike) accepted an RSASSA-PSS signature `s + n`, a
 * second spelling of a valid token that Node and Bun refuse.
 */
function fitsModulus(token: string, modulus: Uint8Array): boolean {
  const text = token.slice(token.lastIndexOf('.') + 1);
  // k octets are ceil(4k / 3) unpadded base64url characters (the segment's syntax is checked).
  if (text.length !== Math.ceil((modulus.length * 4) / 3)) return false;
  try {
    // The top 3 octets decide but about once in a few hundred signatures: no whole decode.
    const below = compareOctets(base64url.decode(text.slice(0, 4)), modulus);
    if (below !== 0) return below < 0;
    return compareOctets(base64url.decode(text), modulus) < 0;
  } catch {
    return false;
  }
}

/** `a` against the same number of leading octets of `b`, big-endian: -1, 0 or 1. */
function compareOctets(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * jose's `compactVerify` (WebCrypto). A signature that does not verify, or a JWS jose finds
 * malformed, is `false`; anything else (the runtime cannot verify with this key at all) is the
 * server's fault, never the token's: `crypto_unavailable` (503), with the reason for the operator.
 */
function viaJose(token: string, key: VerifyKey, alg: string): Promise<boolean> {
  const unavailable = (cause?: unknown) =>
    new Rejection(
      'crypto_unavailable',
      { alg, problem: 'this runtime could not verify the signature with this key' },
      cause,
      30,
    );
  return compactVerify(token, key, { algorithms: [alg] }).then(
    () => true,
    async (cause: unknown) => {
      const refused =
        cause instanceof joseErrors.JWSSignatureVerificationFailed ||
        cause instanceof joseErrors.JWSInvalid;
      if (!refused) throw unavailable(cause);
      // jose also says "does not verify" when WebCrypto itself failed: believe it only once a
      // known-good signature of the family has verified here.
      if (!(await joseRouteWorks(alg))) throw unavailable(cause);
      return false;
    },
  );
}
