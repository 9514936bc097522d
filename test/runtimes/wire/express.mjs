// Express with resource-guard/express, as the README shows it.
import { createServer } from 'node:http';
import express from 'express';
import { requireAuth } from 'resource-guard/express';
import { dpopVerifier, listen, MARKER, SCOPES, verifier } from './common.mjs';

const app = express();
app.use((_req, res, next) => {
  res.setHeader(MARKER, 'express');
  next();
});
app.get('/products', requireAuth(verifier, { scopes: SCOPES }), (req, res) => {
  res.json({ client: req.auth?.clientId });
});
app.get('/dpop', requireAuth(dpopVerifier, { scopes: SCOPES }), (req, res) => {
  res.json({ client: req.auth?.clientId });
});
listen(createServer(app));
