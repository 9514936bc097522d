/**
 * The embedded oidc-provider issuer (examples/issuer.ts), started once for a test file, and a
 * token from its token endpoint for each of its two apps (both asking for read and write).
 * Exported as live bindings: import them and call `useIssuerFixture()` once at the top of a file.
 */
import { afterAll, beforeAll } from 'vitest';
import { startIssuer } from '../../examples/issuer.ts';
import type { Issuer } from '../../examples/issuer.ts';

export let issuer: Issuer;
export let readerToken: string;
export let writerToken: string;

export function useIssuerFixture(): void {
  beforeAll(async () => {
    issuer = await startIssuer();
    readerToken = await issuer.token(issuer.apps.reader, { scope: 'read:products write:products' });
    writerToken = await issuer.token(issuer.apps.writer, { scope: 'read:products write:products' });
  });
  afterAll(() => issuer.close());
}
