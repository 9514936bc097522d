import { KeySourceError } from './errors.ts';

export interface FetchJsonOptions {
  /** Seconds for the whole exchange, body included. */
  readonly timeout: number;
  /** Largest body accepted, in bytes. */
  readonly maxBytes: number;
  readonly fetch: typeof globalThis.fetch;
}

/**
 * GETs a JSON document. The timeout covers the response and the whole body (a slow drip is cut
 * off) and really aborts the request; the body is read with a byte limit; redirects are refused.
 */
export async function fetchJson(url: URL, options: FetchJsonOptions): Promise<unknown> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new KeySourceError(
        'timeout',
        `no complete answer within ${options.timeout} s`,
        url.href,
      );
      controller.abort(error);
      reject(error);
    }, options.timeout * 1000);
  });
  try {
    return await Promise.race([exchange(url, options, controller.signal), timedOut]);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

async function exchange(url: URL, options: FetchJsonOptions, signal: AbortSignal) {
  let response: Response;
  try {
    response = await options.fetch(url, {
      signal,
      redirect: 'manual',
      headers: { accept: 'application/json' },
    });
  } catch (cause) {
    throw new KeySourceError('network', 'request failed', url.href, { cause });
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw new KeySourceError('http_status', `HTTP ${response.status}`, url.href, {
      status: response.status,
    });
  }
  const text = await readLimited(response, options.maxBytes, url);
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new KeySourceError('invalid_json', 'body is not JSON', url.href, { cause });
  }
}

async function readLimited(response: Response, maxBytes: number, url: URL): Promise<string> {
  const tooLarge = () =>
    new KeySourceError('too_large', `body larger than ${maxBytes} bytes`, url.href);
  const declared = Number(response.headers.get('content-length'));
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (cause) {
    if (cause instanceof KeySourceError) throw cause;
    throw new KeySourceError('network', 'reading the body failed', url.href, { cause });
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(body);
}

/** 127.0.0.0/8, ::1 or localhost. */
export function isLoopback(url: URL): boolean {
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
