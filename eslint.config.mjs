// @ts-check
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const ROOT = dirname(fileURLToPath(import.meta.url));

/** A path relative to the repository root, with forward slashes. */
const repoPath = (absolute) => relative(ROOT, absolute).split(sep).join('/');
/** The name of the lib a repository path lies in, else undefined. */
const libOf = (path) => /^libs\/([^/]+)(\/|$)/.exec(path)?.[1];
/** Specs and test helpers, which alone may import a lib's `testing/` folder. */
const isSpec = (path) => /\.(spec|e2e-spec|spec-helper)\.ts$/.test(path) || /(^|\/)testing\//.test(path);

/**
 * One lib, one door (STYLE.md): code outside a lib reaches it only through `@nest-rollout/<name>`,
 * i.e. its src/index.ts, never a deep path, so that what users can import is exactly what the
 * package exports. A lib's own `testing/` helpers are for its own specs only.
 */
const noLibInternals = {
  meta: {
    type: 'problem',
    messages: {
      deep: "'{{source}}' reaches into @nest-rollout/{{lib}}: import from '@nest-rollout/{{lib}}' (its src/index.ts) instead.",
      otherLib: "'{{source}}' reaches into libs/{{lib}}: import from '@nest-rollout/{{lib}}' instead.",
      outOfLib: "'{{source}}' leaves libs/{{home}}: a lib imports only its own files and declared packages.",
      testing: "'{{source}}' is a test helper of libs/{{lib}}: only that lib's own specs may import it.",
    },
    schema: [],
  },
  create(context) {
    const file = repoPath(context.filename);
    const home = libOf(file);
    const check = (node) => {
      if (!node || node.type !== 'Literal' || typeof node.value !== 'string') return;
      const source = node.value;
      const deep = /^@nest-rollout\/([^/]+)\/./.exec(source);
      if (deep) return context.report({ node, messageId: 'deep', data: { source, lib: deep[1] } });
      let target;
      if (source.startsWith('.')) target = repoPath(resolve(dirname(context.filename), source));
      else if (/(^|\/)libs\/[^/]+\/(src|testing)(\/|$)/.test(source))
        target = source.slice(source.search(/(^|\/)libs\//)).replace(/^\//, '');
      else return;
      const lib = libOf(target);
      if (home && lib !== home) return context.report({ node, messageId: lib ? 'otherLib' : 'outOfLib', data: { source, lib, home } });
      if (!home && lib) return context.report({ node, messageId: 'otherLib', data: { source, lib } });
      if (lib && /(^|\/)testing(\/|$)/.test(target) && !isSpec(file))
        return context.report({ node, messageId: 'testing', data: { source, lib } });
    };
    return {
      ImportDeclaration: (node) => check(node.source),
      ExportNamedDeclaration: (node) => check(node.source),
      ExportAllDeclaration: (node) => check(node.source),
      ImportExpression: (node) => check(node.source),
      TSImportType: (node) => check(node.argument?.type === 'TSLiteralType' ? node.argument.literal : node.argument),
      TSExternalModuleReference: (node) => check(node.expression),
      CallExpression: (node) => {
        if (node.callee.type === 'Identifier' && node.callee.name === 'require') check(node.arguments[0]);
      },
    };
  },
};

export default tseslint.config(
  { ignores: ['**/dist/**', 'node_modules/**', '**/*.js', '**/*.mjs', '.tmp/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: false } },
    plugins: { 'nest-rollout': { rules: { 'no-lib-internals': noLibInternals } } },
    rules: {
      'nest-rollout/no-lib-internals': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Named exports only (STYLE.md).
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['**/*.spec.ts', '**/*.e2e-spec.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
