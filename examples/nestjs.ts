/**
 * The shopping API on NestJS, guarded by resource-guard: on Express by default, on Fastify with
 * PLATFORM=fastify.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:nestjs
 */
import {
  BadRequestException,
  Catch,
  Controller,
  Get,
  HttpCode,
  HttpException,
  Inject,
  Module,
  Param,
  PayloadTooLargeException,
  Post,
  Req,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import type { ArgumentsHost, DynamicModule, ExceptionFilter } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { APP_FILTER, HttpAdapterHost, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import { Auth, RequireAuth, ResourceGuardModule } from 'resource-guard/nestjs';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

const BODY_LIMIT = 16 * 1024;

/** The answers the API chose; any other exception is answered without its message. */
class ApiAnswer extends HttpException {}

/** The verifier, for the health controller. */
const VERIFIER = Symbol('verifier');

@Controller('health')
class HealthController {
  constructor(@Inject(VERIFIER) private readonly verifier: Verifier) {}

  @Get()
  health() {
    return { status: 'ok' };
  }

  /** Readiness: 200 while the issuer's keys can verify tokens, 503 when not. */
  @Get('keys')
  keys() {
    const { status, body } = keysHealth(this.verifier);
    if (status !== 200) throw new ApiAnswer(body, status);
    return body;
  }
}

// Constructor parameters name their token (@Inject): tsx and vitest do not emit decorator metadata.
@Controller('products')
@RequireAuth({ scopes: ['read:products'] })
class ProductsController {
  constructor(@Inject(ProductStore) private readonly store: ProductStore) {}

  @Get()
  list(@Auth() auth: AuthInfo) {
    return { products: this.store.list(), client: auth.clientId };
  }

  // Optional authentication: anonymous callers get the featured list, a valid token a personalized
  // one; a bad token is still refused (never downgraded to anonymous).
  @Get('featured')
  @RequireAuth({ optional: true })
  featured(@Auth() auth: AuthInfo | undefined) {
    return { products: this.store.featured(), personalized: auth !== undefined };
  }

  @Get(':id')
  one(@Param('id') id: string) {
    const product = this.store.get(id);
    if (product === undefined) throw new ApiAnswer({ error: 'not_found' }, 404);
    return product;
  }

  // A handler's @RequireAuth replaces the controller's. The body is read here, after the guard
  // (`bodyParser: false`): Nest's body parser would read an anonymous caller's body first.
  @Post()
  @HttpCode(201)
  @RequireAuth({ scopes: ['write:products'] })
  async create(@Req() req: IncomingMessage | { raw: IncomingMessage }) {
    const input = parseNewProduct(await readJson('raw' in req ? req.raw : req));
    if (typeof input === 'string') {
      throw new ApiAnswer({ error: 'invalid_product', error_description: input }, 400);
    }
    return this.store.add(input);
  }
}

/** A JSON body of at most 16 KB from node's request; `undefined` for another content type. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\s*(?:;|$)/i.test(req.headers['content-type'] ?? '')) return undefined;
  if (!/^(?:identity)?$/i.test(req.headers['content-encoding'] ?? '')) {
    throw new UnsupportedMediaTypeException();
  }
  if (Number(req.headers['content-length']) > BODY_LIMIT) throw new PayloadTooLargeException();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw new PayloadTooLargeException();
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new BadRequestException();
  }
}

/**
 * Our own error answers: Nest's defaults quote the path ("Cannot GET /path") and its parsers'
 * messages. resource-guard's rejections (an HttpException whose `cause` is the AuthError, with
 * `WWW-Authenticate` already set) and our own answers keep their body; client faults keep their
 * 4xx; anything else is a bare 500. Never a message or stack trace.
 */
@Catch()
class ApiErrors implements ExceptionFilter {
  constructor(@Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const status = statusOf(error);
    let body: unknown;
    if (
      error instanceof ApiAnswer ||
      (error instanceof HttpException && error.cause instanceof AuthError)
    ) {
      body = error.getResponse();
    } else if (status === 404) body = { error: 'not_found' };
    else if (status < 500)
      body = { error: 'invalid_request', error_description: 'Malformed request' };
    else body = { error: 'server_error' };
    this.adapterHost.httpAdapter.reply(host.switchToHttp().getResponse(), body, status);
  }
}

/** An HttpException's status, or the 4xx of a router or parser error (Express: `status`). */
function statusOf(error: unknown): number {
  if (error instanceof HttpException) return error.getStatus();
  const { status, statusCode } = (error ?? {}) as { status?: unknown; statusCode?: unknown };
  const code = Number(status ?? statusCode);
  return code >= 400 && code < 500 ? code : 500;
}

@Module({
  controllers: [HealthController, ProductsController],
  providers: [{ provide: APP_FILTER, useClass: ApiErrors }],
})
export class ShoppingModule {
  static forRoot(verifier: Verifier, store = new ProductStore()): DynamicModule {
    return {
      module: ShoppingModule,
      imports: [ResourceGuardModule.forRoot({ verifier })],
      providers: [
        { provide: ProductStore, useValue: store },
        { provide: VERIFIER, useValue: verifier },
      ],
    };
  }
}

export type Platform = 'express' | 'fastify';

/** The API on Express or Fastify, not yet listening. */
export async function createApp(
  verifier: Verifier,
  { platform = 'express', store }: { platform?: Platform; store?: ProductStore } = {},
): Promise<INestApplication> {
  const module = ShoppingModule.forRoot(verifier, store);
  const options = { bodyParser: false, logger: ['error' as const, 'warn' as const] };
  if (platform === 'fastify') {
    // Fastify's router errors (a malformed %-escape) quote the path: answer them ourselves.
    const adapter = new FastifyAdapter({
      frameworkErrors: (_error: unknown, _request: unknown, reply: FastifyReply) =>
        reply.code(400).send({ error: 'invalid_request', error_description: 'Malformed request' }),
    });
    // Fastify parses a body before Nest's guards run: leave it unread for `readJson`.
    const fastify = adapter.getInstance();
    fastify.removeAllContentTypeParsers();
    fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
    return NestFactory.create<NestFastifyApplication>(module, adapter, options);
  }
  const app = await NestFactory.create<NestExpressApplication>(
    module,
    new ExpressAdapter(),
    options,
  );
  app.disable('x-powered-by');
  // A URL Express's router cannot parse (`GET //a@b`) skips every route and Nest's 404 handler
  // and gets Express's HTML 404. That final handler is `handle`'s third argument: default it.
  type Handle = (req: IncomingMessage, res: ServerResponse, done?: () => void) => void;
  const express = app.getHttpAdapter().getInstance() as unknown as { handle: Handle };
  const { handle } = express;
  const notFound = (res: ServerResponse) => () =>
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
  express.handle = (req, res, done = notFound(res)) => handle.call(express, req, res, done);
  return app;
}

export async function serve(config: ApiConfig): Promise<INestApplication> {
  const platform = process.env.PLATFORM === 'fastify' ? 'fastify' : 'express';
  const app = await createApp(await startVerifier(config), { platform });
  await app.listen(config.port, config.host);
  console.log(`Shopping API (NestJS on ${platform}) on ${await app.getUrl()}`);
  return app;
}

runIfMain(import.meta.url, serve);
