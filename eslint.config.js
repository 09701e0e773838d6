// Lint rules: typescript-eslint's recommended set. Import boundaries (CONVENTIONS.md) are enforced by
// test/unit/boundaries.test.ts.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(js.configs.recommended, ...tseslint.configs.recommended, {
  ignores: ['node_modules/**', 'deploy/**'],
  rules: {
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
  },
});
