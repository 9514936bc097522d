import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The Authorization header that carries `token` (RFC 6750 §2.1). */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Listens on loopback, port 0; answers the origin and a close that ends every connection (a
 * keep-alive client would otherwise hold the close open).
 */
export async function listenLoopback(
  server: Server,
): Promise<{ origin: string; port: number; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
