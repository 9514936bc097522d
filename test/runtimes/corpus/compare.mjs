// Compares run.mjs's answers on several runtimes with Node's (the first file): a token accepted
// on one runtime and refused on another, a different verified identity, a verifier option
// accepted on one and refused on another, or anything but an answer (an exception) fails; a
// different refusal reason or status is printed as a note. Usage: node compare.mjs node.jsonl x.jsonl...
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const read = (file) =>
  new Map(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line))
      .map((entry) => [entry.name, entry]),
  );
/** 'accepted' / 'refused' / 'error', per verification (a repeated token answers "a / b / c"). */
const verdicts = (outcome) =>
  (outcome.startsWith('config-error ') ? [outcome] : outcome.split(' / '))
    .map((one) =>
      one === 'ok'
        ? 'accepted'
        : /^(4\d\d|503) /.test(one) || one.startsWith('config-error ') || one === 'no-verifier'
          ? 'refused'
          : 'error',
    )
    .join(' / ');

const [reference, ...others] = process.argv.slice(2);
const base = read(reference);
let failures = 0;
let notes = 0;
for (const file of others) {
  const runtime = basename(file, '.jsonl');
  const answers = read(file);
  for (const [name, expected] of base) {
    const actual = answers.get(name);
    const problem =
      actual === undefined
        ? 'no answer'
        : verdicts(actual.outcome) !== verdicts(expected.outcome) || actual.who !== expected.who
          ? 'a different decision'
          : verdicts(actual.outcome).includes('error')
            ? 'an exception'
            : undefined;
    if (problem !== undefined) {
      failures++;
      console.log(
        `FAIL ${runtime} ${name}: ${problem}: node ${expected.outcome}, ${runtime} ${actual?.outcome}`,
      );
    } else if (actual.outcome !== expected.outcome) {
      notes++;
      console.log(
        `note ${runtime} ${name}: node ${expected.outcome}, ${runtime} ${actual.outcome}`,
      );
    }
  }
  for (const name of answers.keys()) {
    if (!base.has(name)) {
      failures++;
      console.log(`FAIL ${runtime} ${name}: not answered on node`);
    }
  }
}
console.log(
  `corpus: ${base.size} answers on node, compared on ${others.length} runtime(s): ${failures} different decisions, ${notes} different refusal reasons`,
);
process.exit(failures === 0 && base.size > 0 ? 0 : 1);
