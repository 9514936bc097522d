// Verifies corpus.json with the installed resource-guard; one JSON line per token. Same file on
// node, bun and deno (deno run -A run.mjs).
import { readFileSync } from 'node:fs';
import { AuthError, createVerifier } from 'resource-guard';

const corpus = JSON.parse(readFileSync(new URL('./corpus.json', import.meta.url), 'utf8'));
const print = (name, outcome, extra) =>
  console.log(
    JSON.stringify(extra === undefined ? { name, outcome } : { name, outcome, ...extra }),
  );

const verifiers = {};
for (const [set, cfg] of Object.entries(corpus.sets)) {
  try {
    verifiers[set] = createVerifier({ issuer: corpus.issuer, audience: corpus.audience, ...cfg });
    print(`config:${set}`, 'ok');
  } catch (error) {
    print(`config:${set}`, `config-error ${error?.name}: ${String(error?.message).slice(0, 160)}`);
  }
}

async function decide(set, token) {
  const v = verifiers[set];
  if (v === undefined) return { outcome: 'no-verifier' };
  try {
    const auth = await v.verify(token);
    return {
      outcome: 'ok',
      who: `${auth.subject}|${auth.clientId}|${[...(auth.scopes ?? [])].join(' ')}`,
    };
  } catch (error) {
    if (error instanceof AuthError) return { outcome: `${error.status} ${error.reason}` };
    return { outcome: `exception ${error?.name}: ${String(error?.message).slice(0, 120)}` };
  }
}

const args = globalThis.Deno?.args ?? process.argv.slice(2);
if (args.includes('--bursts-first'))
  corpus.tokens.sort((a, b) => (b.items ? 1 : 0) - (a.items ? 1 : 0));
const started = Date.now();
for (const entry of corpus.tokens) {
  if (entry.items) {
    const t0 = Date.now();
    const answers = await Promise.all(entry.items.map((item) => decide(entry.set, item.token)));
    answers.forEach((a, i) => print(entry.items[i].name, a.outcome, a.who && { who: a.who }));
    console.error(`burst ${entry.burst}: ${entry.items.length} in ${Date.now() - t0} ms`);
    continue;
  }
  const results = [];
  for (let i = 0; i < (entry.repeat ?? 1); i++) results.push(await decide(entry.set, entry.token));
  const outcome = results.map((r) => r.outcome).join(' / ');
  print(`${entry.set}:${entry.name}`, outcome, results[0].who && { who: results[0].who });
}
console.error(`done in ${Date.now() - started} ms`);
