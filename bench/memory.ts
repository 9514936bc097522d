/**
 * Memory under floods: N distinct valid tokens, then N distinct invalid ones (half with random
 * kids, half with bad signatures under a real kid), through one verifier with default options.
 * Prints RSS growth; every cache (keys, verified tokens, pending verifications) must stay bounded.
 *
 *   npm run bench:memory [-- --valid 1000000 --invalid 200000]
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { createVerifier } from 'resource-guard';
import { AUDIENCE, ISSUER, jwksServer } from './fixtures.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) {
  args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '');
}
const VALID = Number(args.get('valid') ?? 1_000_000);
const INVALID = Number(args.get('invalid') ?? 200_000);
const IN_FLIGHT = 32;

const gc = (globalThis as { gc?: () => void }).gc;
const rssMiB = () => {
  gc?.();
  return process.memoryUsage().rss / 2 ** 20;
};

export interface MemoryResult {
  /** Measured V8 heap per verified-token cache entry (cache on minus cache off), by token length. */
  entries: { tokenChars: number; entries: number; bytesPerEntry: number; estimate: number }[];
  valid: number;
  invalid: number;
  baselineMiB: number;
  afterValidMiB: number;
  afterInvalidMiB: number;
  peakMiB: number;
}

export async function runMemory(log = console.log): Promise<MemoryResult> {
  // Ed25519: the cheapest signature to make a million of, and verified off the event loop.
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'mem', alg: 'EdDSA', use: 'sig' };
  const { url, server } = await jwksServer([jwk]);
  const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: url });
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = encode({ alg: 'EdDSA', typ: 'at+jwt', kid: 'mem' });
  const randomKidHeader = (i: number) =>
    encode({ alg: 'EdDSA', typ: 'at+jwt', kid: `random-${i}` });
  const now = Math.floor(Date.now() / 1000);
  const token = (i: number, head = header, pad = '') => {
    const payload = encode({
      ...(pad ? { pad } : {}),
      jti: `m-${i}`,
      sub: 'mem-app',
      client_id: 'mem-app',
      iat: now,
      exp: now + 3600,
      scope: 'read:products',
      iss: ISSUER,
      aud: AUDIENCE,
    });
    const input = `${head}.${payload}`;
    return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
  };

  // After the floods, so that their RSS figures are not disturbed by it.
  const entries: MemoryResult['entries'] = [];
  async function measureEntries() {
    // Bytes per cache entry: the heap growth of verifying N fresh tokens with a cache that keeps all
    // of them, minus the same without a cache (the tokens are held by nothing but the cache).
    const heap = () => {
      gc?.();
      gc?.();
      return process.memoryUsage().heapUsed;
    };
    const ENTRIES = 20_000;
    for (const pad of ['', 'x'.repeat(450)]) {
      const growth = async (cache: false | { maxEntries: number; maxBytes: number }) => {
        const v = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: url, cache });
        await flood(200, (i) => token(-10_000 - i, header, pad), true, v); // keys loaded, JIT
        const before = heap();
        await flood(ENTRIES, (i) => token(-100_000 - i, header, pad), true, v);
        const after = heap();
        return { v, bytes: after - before };
      };
      const on = await growth({ maxEntries: ENTRIES + 1000, maxBytes: 2 ** 40 });
      const off = await growth(false);
      const tokenChars = token(0, header, pad).length;
      entries.push({
        tokenChars,
        entries: ENTRIES,
        bytesPerEntry: (on.bytes - off.bytes) / ENTRIES,
        estimate: tokenChars * 2 + 640,
      });
      log(
        `cache entry, ${tokenChars}-character token: ${((on.bytes - off.bytes) / ENTRIES).toFixed(0)} bytes measured ` +
          `(heap +${(on.bytes / ENTRIES).toFixed(0)} B/token cache on, +${(off.bytes / ENTRIES).toFixed(0)} off); entryBytes estimates ${tokenChars * 2 + 640}`,
      );
      void on.v; // kept alive until measured
    }
  }

  let peak = 0;
  async function flood(
    count: number,
    make: (i: number) => string,
    expectValid: boolean,
    target = verifier,
  ) {
    let wrong = 0;
    for (let start = 0; start < count; start += IN_FLIGHT) {
      const batch = [];
      for (let i = start; i < Math.min(count, start + IN_FLIGHT); i++) {
        batch.push(
          target.verify(make(i)).then(
            () => expectValid || wrong++,
            () => expectValid && wrong++,
          ),
        );
      }
      await Promise.all(batch);
      if (target === verifier && start % 100_000 < IN_FLIGHT) {
        const rss = process.memoryUsage().rss / 2 ** 20;
        peak = Math.max(peak, rss);
        log(`  ${start.toLocaleString('en')} tokens, RSS ${rss.toFixed(1)} MiB`);
      }
    }
    if (wrong > 0) throw new Error(`${wrong} wrong decisions in the flood`);
  }

  await flood(2000, (i) => token(-i - 1), true); // warm-up: JIT, key set, cache structures

  const baselineMiB = rssMiB();
  log(
    `baseline RSS ${baselineMiB.toFixed(1)} MiB; ${VALID.toLocaleString('en')} distinct valid tokens:`,
  );
  await flood(VALID, (i) => token(i), true);
  const afterValidMiB = rssMiB();
  log(`${INVALID.toLocaleString('en')} distinct invalid tokens (random kids, bad signatures):`);
  await flood(
    INVALID,
    (i) => {
      if (i % 2 === 0) return token(i, randomKidHeader(i));
      const valid = token(i);
      return `${valid.slice(0, valid.lastIndexOf('.') + 1)}${'A'.repeat(86)}`;
    },
    false,
  );
  const afterInvalidMiB = rssMiB();
  await measureEntries();
  server.close();
  const result = {
    entries,
    valid: VALID,
    invalid: INVALID,
    baselineMiB,
    afterValidMiB,
    afterInvalidMiB,
    peakMiB: peak,
  };
  log(
    `RSS growth: +${(afterValidMiB - baselineMiB).toFixed(1)} MiB after the valid flood, ` +
      `+${(afterInvalidMiB - baselineMiB).toFixed(1)} MiB after the invalid one (peak ${peak.toFixed(1)} MiB)`,
  );
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runMemory();
  if (args.has('json')) process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}
