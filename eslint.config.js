import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // test/fixtures/lint/ breaks the rules on purpose: test/unit/lint-rules.test.ts lints it alone.
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/support/celery/**/*.py', 'test/fixtures/lint/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    // Type-aware: a promise nobody awaits or catches becomes an unhandled rejection, which stops
    // the process; a promise passed where a callback's result is ignored (an event handler, an
    // express handler) does the same. The type checker finds both, so nobody has to remember.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  { files: ['bench/**', 'scripts/**', 'test/**'], rules: { 'no-console': 'off' } },
);
