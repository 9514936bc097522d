import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // The core never reaches into adapters or examples: arrows point examples → adapters → src.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: ['../adapters/*', '../examples/*', 'express', 'koa', 'fastify', './testing.ts'],
        },
      ],
    },
  },
  {
    // Adapters use the core only through its public entry point, like a user would.
    files: ['adapters/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['../../src/*', '../../examples/*', 'resource-guard/testing'] },
      ],
    },
  },
  {
    // Examples are production code a user copies: never the test issuer.
    files: ['examples/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: ['resource-guard/testing'] }] },
  },
);
