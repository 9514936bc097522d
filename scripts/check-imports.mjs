#!/usr/bin/env node
/**
 * Lint: the imports inside src/ form a DAG, type imports included (the type checker sees those,
 * and a cycle of types is still two ideas tangled together), and src/types.ts is a leaf. Prints
 * each cycle it finds and exits 1. `npm run lint` runs it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../src/', import.meta.url));
const LEAVES = ['types.ts'];
const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+['"](\.\/[^'"]+)['"]/g;

const graph = new Map();
for (const file of readdirSync(src).filter((name) => name.endsWith('.ts'))) {
  const text = readFileSync(join(src, file), 'utf8');
  graph.set(
    file,
    [...text.matchAll(IMPORT)].map((m) => m[1].slice(2)),
  );
}

const problems = [];
for (const leaf of LEAVES) {
  const deps = graph.get(leaf) ?? [];
  if (deps.length > 0)
    problems.push(`src/${leaf} must import no module of src/: ${deps.join(', ')}`);
}
const state = new Map(); // 1: on the current path, 2: done
const walk = (file, path) => {
  if (state.get(file) === 2) return;
  if (state.get(file) === 1) {
    problems.push(`import cycle: ${[...path.slice(path.indexOf(file)), file].join(' → ')}`);
    return;
  }
  state.set(file, 1);
  for (const dep of graph.get(file) ?? []) {
    if (!graph.has(dep)) problems.push(`src/${file} imports ./${dep}, which does not exist`);
    else walk(dep, [...path, file]);
  }
  state.set(file, 2);
};
for (const file of graph.keys()) walk(file, []);

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
console.log(`${relative(process.cwd(), src) || 'src'}: ${graph.size} modules, imports form a DAG`);
