import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // The same mapping as tsconfig.json's `paths`: examples and tests import the package by its
    // public name, exactly as a user would, and run against the TypeScript sources.
    alias: [
      { find: /^resource-guard$/, replacement: here('./src/index.ts') },
      { find: /^resource-guard\/kit$/, replacement: here('./src/kit.ts') },
      { find: /^resource-guard\/testing$/, replacement: here('./src/testing.ts') },
      { find: /^resource-guard\/otel$/, replacement: here('./src/otel.ts') },
      {
        find: /^resource-guard\/(express|koa|fastify|nestjs|hapi|hono|redis)$/,
        replacement: here('./adapters/$1/index.ts'),
      },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Vitest's default on 2 cores is one worker, which leaves a core idle while a file imports:
    // two halve the suite's time there (4.6 to 2.2 min on Node 20), in CI on every Node version.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
