import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // test/fixtures/lint/ breaks the rules on purpose: test/unit/lint-rules.test.ts lints it alone.
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tmp/**', 'test/support/celery/**/*.py', 'test/fixtures/lint/**'] },
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
  {
    // The console's browser script: tsc checks every name in it against the DOM library
    // (tsconfig.browser.json, checkJs), so eslint's no-undef, which knows no browser globals
    // without a list, would only repeat that check.
    files: ['src/console/static/**/*.js'],
    rules: { 'no-undef': 'off' },
  },
);
