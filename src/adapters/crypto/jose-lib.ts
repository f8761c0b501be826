/**
 * The `jose` library, loaded with Node's own require. jose ships as ESM only: Node (>= 20.19) requires it
 * natively, but jest's module system cannot (and it wraps `node:module` too), so every test importing the hub or
 * the SDK would need a jest.mock. Taking `createRequire` from process.getBuiltinModule hands any runtime the
 * module as Node loads it. Types come from `import type ... from 'jose'` (erased at compile time).
 */
type NodeModule = typeof import('node:module');
const builtin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeModule: NodeModule = builtin ? (builtin('node:module') as NodeModule) : (require('node:module') as NodeModule);

export const jose: typeof import('jose') = nodeModule.createRequire(__filename)('jose') as typeof import('jose');
