import type * as NodeCrypto from 'node:crypto';

/**
 * node:crypto where the runtime has it, without a static import, so the core still loads where it
 * is absent (jose and WebCrypto are used there). Having it says nothing of whether it verifies
 * correctly: signature.ts probes that.
 */
export const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as typeof NodeCrypto | undefined;
