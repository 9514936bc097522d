import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { extractSnippets, typeCheckSnippets } from './readme/snippets.ts';
import type { Snippet, SnippetError } from './readme/snippets.ts';

// Every ```ts block of the README compiles under the project's strict tsconfig, against the
// sources (tsconfig `paths` map `resource-guard` and its subpaths to them), as a module of its own.

const readme = fileURLToPath(new URL('../README.md', import.meta.url));
const tsconfig = fileURLToPath(new URL('../tsconfig.json', import.meta.url));

/**
 * The only free variables a snippet may use without declaring them: what the surrounding text has
 * already given the reader ("the issuer", "your Express app", the one verifier per API). Everything
 * else a snippet must import or define itself.
 */
const PREAMBLE = `
declare const issuer: string;
declare const app: import('express').Express;
declare const verifier: import('resource-guard').Verifier;
`;

const CHECKED = new Set(['ts', 'typescript']);
/** Fences that are not TypeScript on purpose. A new language must be added here, or checked. */
const SKIPPED = new Set(['', 'sh', 'json', 'http', 'text']);

// A snippet that must not compile: proves the check reports errors rather than passing vacuously.
const CANARY: Snippet = {
  lang: 'ts',
  line: 0,
  code: "import { createVerifier } from 'resource-guard';\ncreateVerifier({ issuer });",
};

const snippets = extractSnippets(readFileSync(readme, 'utf8'));
const typescript = snippets.filter((snippet) => CHECKED.has(snippet.lang));
let errors: SnippetError[][] = [];

beforeAll(() => {
  errors = typeCheckSnippets([...typescript, CANARY], { tsconfig, preamble: PREAMBLE });
});

describe('README snippets', () => {
  it('are all TypeScript or a known other language', () => {
    const unknown = snippets.filter((s) => !CHECKED.has(s.lang) && !SKIPPED.has(s.lang));
    expect(unknown.map((s) => `README.md:${s.line - 1} \`\`\`${s.lang}`)).toEqual([]);
    expect(typescript.length).toBeGreaterThanOrEqual(8);
  });

  it('catch a snippet that does not compile', () => {
    expect(errors.at(-1)?.map((e) => e.message)).toEqual([
      expect.stringMatching(/^TS2345: .*audience/s),
    ]);
  });

  it.each(typescript.map((snippet, index) => [snippet.line - 1, index] as const))(
    'README.md:%i compiles',
    (_line, index) => {
      expect(errors[index]?.map((e) => `README.md:${e.line}: ${e.message}`)).toEqual([]);
    },
  );
});
