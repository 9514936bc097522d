/** A NestJS app of one module, listening on 127.0.0.1 port 0, on Express or Fastify. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Module } from '@nestjs/common';
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

export async function startNest(
  metadata: ModuleMetadata,
  platform: 'express' | 'fastify' = 'express',
  setup?: (app: INestApplication) => void,
  logger: LoggerService | false = false,
) {
  @Module(metadata)
  class AppModule {}
  const app: INestApplication = await NestFactory.create(
    AppModule,
    platform === 'express' ? new ExpressAdapter() : new FastifyAdapter(),
    { logger },
  );
  setup?.(app);
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as Server;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await app.close();
    },
  };
}
