// Builds corpus.json ON NODE: key sets (public JWKs / PEM) and hostile tokens. Run: node gen.mjs
import crypto from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { SignJWT, importJWK, calculateJwkThumbprint } from 'jose';

const ISS = 'https://tenant.logto.app/oidc';
const AUD = 'https://shopping.api';
const now = Math.floor(Date.now() / 1000);
const b64u = (x) => Buffer.from(x).toString('base64url');
const B = (hex) => Buffer.from(hex, 'hex');
const big = (buf) => BigInt('0x' + (Buffer.from(buf).toString('hex') || '0'));
const toBuf = (n, len) => {
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  let b = Buffer.from(h, 'hex');
  if (len !== undefined && b.length < len) b = Buffer.concat([Buffer.alloc(len - b.length), b]);
  return b;
};
let jtiN = 0;
const payload = (extra = {}) => ({
  iss: ISS,
  aud: AUD,
  sub: 'user-1',
  client_id: 'app-1',
  jti: `jti-${++jtiN}`,
  iat: now,
  exp: now + 7200,
  scope: 'read:products',
  ...extra,
});

// ---- keys
const gen = (type, opts) => crypto.generateKeyPairSync(type, opts);
const K = {
  es256: gen('ec', { namedCurve: 'P-256' }),
  es384: gen('ec', { namedCurve: 'P-384' }),
  es512: gen('ec', { namedCurve: 'P-521' }),
  rs2048: gen('rsa', { modulusLength: 2048 }),
  rs4096: gen('rsa', { modulusLength: 4096 }),
  ed: gen('ed25519'),
  ed448: gen('ed448'),
  rs1024: gen('rsa', { modulusLength: 1024 }),
  e3: gen('rsa', { modulusLength: 2048, publicExponent: 3 }),
  e3big: gen('rsa', { modulusLength: 4096, publicExponent: 3 }),
  e5: gen('rsa', { modulusLength: 2048, publicExponent: 5 }),
  e17: gen('rsa', { modulusLength: 2048, publicExponent: 17 }),
  eBig: gen('rsa', { modulusLength: 2048, publicExponent: 0x7fffffff }),
  es256b: gen('ec', { namedCurve: 'P-256' }),
  secp256k1: gen('ec', { namedCurve: 'secp256k1' }),
};
const jwkOf = (name, extra = {}) => ({ ...K[name].publicKey.export({ format: 'jwk' }), ...extra });
const N = {
  'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  'P-384':
    0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  'P-521':
    0x01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};
const L25519 = 2n ** 252n + 27742317777372353535851937790883648493n;

const sets = {};
const weakeLater = [];
const tokens = [];
const add = (set, name, token, extra = {}) => tokens.push({ set, name, token, ...extra });

// ---- raw signing
const ALG = {
  ES256: ['sha256', 'ec', 32],
  ES384: ['sha384', 'ec', 48],
  ES512: ['sha512', 'ec', 66],
  RS256: ['sha256', 'rsa'],
  RS384: ['sha384', 'rsa'],
  PS256: ['sha256', 'pss', 32],
  EdDSA: [null, 'ed'],
  Ed25519: [null, 'ed'],
};
function sig(alg, input, priv, o = {}) {
  const [hash, kind, n] = ALG[alg] ?? [];
  const h = o.hash ?? hash;
  if (kind === 'ec')
    return crypto.sign(h, input, { key: priv, dsaEncoding: o.der ? 'der' : 'ieee-p1363' });
  if (kind === 'rsa') return crypto.sign(h, input, priv);
  if (kind === 'pss')
    return crypto.sign(h, input, {
      key: priv,
      padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: o.salt ?? n,
    });
  if (kind === 'ed') return crypto.sign(null, input, priv);
  throw new Error(alg);
}
const enc = (x) =>
  typeof x === 'string' ? b64u(x) : Buffer.isBuffer(x) ? b64u(x) : b64u(JSON.stringify(x));
/** header/payload: object, raw JSON string or Buffer. signer: (inputBuffer) => Buffer. */
function jws(header, body, signer) {
  const input = `${enc(header)}.${enc(body)}`;
  const s = signer(Buffer.from(input, 'latin1'));
  return `${input}.${typeof s === 'string' ? s : b64u(s)}`;
}
const hdr = (alg, kid, extra = {}) => ({
  alg,
  typ: 'at+jwt',
  ...(kid === undefined ? {} : { kid }),
  ...extra,
});
const signed = (alg, keyName, kid, body = payload(), hextra = {}, o = {}) =>
  jws(hdr(alg, kid, hextra), body, (i) => sig(alg, i, K[keyName].privateKey, o));
const reSig = (token, buf) => token.slice(0, token.lastIndexOf('.') + 1) + b64u(buf);
const sigOf = (token) => Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');

// ============ set main: every algorithm Logto can issue
sets.main = {
  jwks: {
    keys: [
      jwkOf('es256', { kid: 'k-es256' }),
      jwkOf('es384', { kid: 'k-es384' }),
      jwkOf('es512', { kid: 'k-es512' }),
      jwkOf('rs2048', { kid: 'k-rs2048' }),
      jwkOf('rs4096', { kid: 'k-rs4096' }),
      jwkOf('ed', { kid: 'k-ed' }),
    ],
  },
};
const MAIN = [
  ['ES256', 'es256', 'k-es256'],
  ['ES384', 'es384', 'k-es384'],
  ['ES512', 'es512', 'k-es512'],
  ['RS256', 'rs2048', 'k-rs2048'],
  ['RS256', 'rs4096', 'k-rs4096'],
  ['PS256', 'rs2048', 'k-rs2048'],
  ['PS256', 'rs4096', 'k-rs4096'],
  ['EdDSA', 'ed', 'k-ed'],
];

// valid tokens made with jose (as an issuer would)
for (const [alg, key, kid] of MAIN) {
  const priv = await importJWK(K[key].privateKey.export({ format: 'jwk' }), alg);
  const t = await new SignJWT(payload()).setProtectedHeader({ alg, kid, typ: 'at+jwt' }).sign(priv);
  add('main', `${alg}-${key}.valid-jose`, t, { repeat: 3 });
}

for (const [alg, key, kid] of MAIN) {
  const p = `${alg}-${key}`;
  const good = signed(alg, key, kid);
  add('main', `${p}.valid`, good, { repeat: 3 });
  const s = sigOf(good);
  const flip = (i, bit = 1) => {
    const c = Buffer.from(s);
    c[i] ^= bit;
    return c;
  };
  add('main', `${p}.flip-first`, reSig(good, flip(0, 0x80)));
  add('main', `${p}.flip-last`, reSig(good, flip(s.length - 1, 1)));
  add('main', `${p}.flip-mid`, reSig(good, flip(s.length >> 1, 0x10)), { repeat: 3 });
  add('main', `${p}.zero-sig`, reSig(good, Buffer.alloc(s.length)));
  add('main', `${p}.ff-sig`, reSig(good, Buffer.alloc(s.length, 0xff)));
  add('main', `${p}.len+1-append0`, reSig(good, Buffer.concat([s, B('00')])));
  add('main', `${p}.len+1-prepend0`, reSig(good, Buffer.concat([B('00'), s])));
  add('main', `${p}.len-1-droplast`, reSig(good, s.subarray(0, s.length - 1)));
  add('main', `${p}.len-1-dropfirst`, reSig(good, s.subarray(1)));
  add('main', `${p}.empty-sig`, good.slice(0, good.lastIndexOf('.') + 1));
  add('main', `${p}.double-sig`, reSig(good, Buffer.concat([s, s])));
  add('main', `${p}.trailing-garbage-AA`, good + 'AA');
  add('main', `${p}.trailing-garbage-A`, good + 'A');
  add('main', `${p}.trailing-garbage-AAAA`, good + 'AAAA');
  add('main', `${p}.trailing-eq-pad`, good + '==');
  add('main', `${p}.trailing-dot`, good + '.');
  add('main', `${p}.trailing-space`, good + ' ');
  add('main', `${p}.trailing-newline`, good + '\n');
  add('main', `${p}.leading-space`, ' ' + good);
  // non-canonical base64url in the last char: set the unused low bits
  {
    const text = good.slice(good.lastIndexOf('.') + 1);
    const rest = text.length % 4;
    if (rest !== 0) {
      const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const v = A.indexOf(text.at(-1));
      for (const bits of rest === 2 ? [1, 0x0f] : [1, 3]) {
        add('main', `${p}.noncanonical-last-char+${bits}`, good.slice(0, -1) + A[v | bits]);
      }
    } else add('main', `${p}.noncanonical-n/a-len%4=0`, good.slice(0, -1) + good.at(-1));
    // standard base64 alphabet for the signature
    const std = s.toString('base64').replace(/=+$/, '');
    if (std !== text)
      add('main', `${p}.sig-std-base64`, good.slice(0, good.lastIndexOf('.') + 1) + std);
    add('main', `${p}.sig-padded`, good + '='.repeat((4 - (text.length % 4)) % 4 || 4));
  }
  // signature of another token with the same key (payload swapped)
  const other = signed(alg, key, kid, payload({ sub: 'admin' }));
  add('main', `${p}.sig-from-other-token`, reSig(other, s));
  // payload changed, original signature kept (cache must not answer it: valid token seen before)
  {
    const [h, , sg] = good.split('.');
    add(
      'main',
      `${p}.payload-swapped-after-valid`,
      `${h}.${enc(payload({ sub: 'admin', scope: 'read:products admin' }))}.${sg}`,
    );
    add(
      'main',
      `${p}.header-resigned-alg-case`,
      `${enc(hdr(alg.toLowerCase(), kid))}.${good.split('.')[1]}.${sg}`,
    );
  }
  const [, kind, n] = ALG[alg];
  if (kind === 'ec') {
    const crv = { 32: 'P-256', 48: 'P-384', 66: 'P-521' }[n];
    const order = N[crv];
    const r = big(s.subarray(0, n));
    const sv = big(s.subarray(n));
    const raw = (rr, ss, len = n) => Buffer.concat([toBuf(rr, len), toBuf(ss, len)]);
    const fits = (x) => x < 2n ** BigInt(8 * n);
    add('main', `${p}.ec-r-flip`, reSig(good, raw(r ^ 1n, sv)));
    add('main', `${p}.ec-s-flip`, reSig(good, raw(r, sv ^ 1n)));
    add('main', `${p}.ec-s=0`, reSig(good, raw(r, 0n)));
    add('main', `${p}.ec-r=0`, reSig(good, raw(0n, sv)));
    add('main', `${p}.ec-r=s=0`, reSig(good, raw(0n, 0n)));
    add('main', `${p}.ec-s=n`, reSig(good, raw(r, order)));
    add('main', `${p}.ec-r=n`, reSig(good, raw(order, sv)));
    add('main', `${p}.ec-r=s=n`, reSig(good, raw(order, order)));
    add('main', `${p}.ec-s=n-1`, reSig(good, raw(r, order - 1n)));
    add('main', `${p}.ec-s=1`, reSig(good, raw(r, 1n)));
    if (fits(sv + order)) add('main', `${p}.ec-s+n`, reSig(good, raw(r, sv + order)));
    else add('main', `${p}.ec-s+n-overlong`, reSig(good, raw(r, sv + order, n + 1)));
    if (fits(r + order)) add('main', `${p}.ec-r+n`, reSig(good, raw(r + order, sv)));
    else
      add(
        'main',
        `${p}.ec-r+n-overlong`,
        reSig(good, Buffer.concat([toBuf(r + order, n + 1), toBuf(sv, n)])),
      );
    add('main', `${p}.ec-s>=n-max`, reSig(good, raw(r, 2n ** BigInt(8 * n) - 1n)));
    // high-S / low-S twin: s' = n - s is a valid ECDSA signature too (no malleability check in JWS)
    add('main', `${p}.ec-high-low-S-twin`, reSig(good, raw(r, order - sv)));
    add('main', `${p}.ec-swap-r-s`, reSig(good, raw(sv, r)));
    add(
      'main',
      `${p}.ec-der-encoded`,
      reSig(
        good,
        crypto.sign(ALG[alg][0], Buffer.from(good.slice(0, good.lastIndexOf('.')), 'latin1'), {
          key: K[key].privateKey,
          dsaEncoding: 'der',
        }),
      ),
    );
    // the same DER of a fresh signature, padded/cut to raw length
    const der = crypto.sign(
      ALG[alg][0],
      Buffer.from(good.slice(0, good.lastIndexOf('.')), 'latin1'),
      { key: K[key].privateKey, dsaEncoding: 'der' },
    );
    add(
      'main',
      `${p}.ec-der-fit-to-len`,
      reSig(good, Buffer.concat([der, Buffer.alloc(2 * n)]).subarray(0, 2 * n)),
    );
    // r, s written with leading zeros beyond the fixed length (len+2, r|s each +1)
    add('main', `${p}.ec-r-s-each-+1-byte`, reSig(good, raw(r, sv, n + 1)));
    add(
      'main',
      `${p}.ec-r-s-each-1-byte-short-if-possible`,
      reSig(good, Buffer.concat([toBuf(r), toBuf(sv)])),
    );
  }
  if (kind === 'rsa' || kind === 'pss') {
    const jwk = K[key].publicKey.export({ format: 'jwk' });
    const mod = big(Buffer.from(jwk.n, 'base64url'));
    const k = Buffer.from(jwk.n, 'base64url').length;
    const sv = big(s);
    add('main', `${p}.rsa-s=0`, reSig(good, toBuf(0n, k)));
    add('main', `${p}.rsa-s=1`, reSig(good, toBuf(1n, k)));
    add('main', `${p}.rsa-s=n`, reSig(good, toBuf(mod, k)));
    add('main', `${p}.rsa-s=n-1`, reSig(good, toBuf(mod - 1n, k)));
    add('main', `${p}.rsa-s+n`, reSig(good, toBuf(sv + mod, k)));
    add('main', `${p}.rsa-s+n-k+1`, reSig(good, toBuf(sv + mod, k + 1)));
    add('main', `${p}.rsa-s-k+1-leading0`, reSig(good, toBuf(sv, k + 1)));
    add('main', `${p}.rsa-s-minimal-bytes`, reSig(good, toBuf(sv)));
    add('main', `${p}.rsa-n-s`, reSig(good, toBuf(mod - sv, k)));
    add('main', `${p}.rsa-s-short-1`, reSig(good, toBuf(sv, k).subarray(1)));
    // other padding / hash under the same header
    const input = Buffer.from(good.slice(0, good.lastIndexOf('.')), 'latin1');
    if (kind === 'rsa') {
      add('main', `${p}.rs-signed-with-pss`, reSig(good, sig('PS256', input, K[key].privateKey)));
      add(
        'main',
        `${p}.rs-signed-sha384`,
        reSig(good, crypto.sign('sha384', input, K[key].privateKey)),
      );
      add(
        'main',
        `${p}.rs-signed-sha1`,
        reSig(good, crypto.sign('sha1', input, K[key].privateKey)),
      );
      // PKCS#1 v1.5 without DigestInfo (raw hash)
      const em = Buffer.concat([
        B('0001'),
        Buffer.alloc(k - 3 - 32, 0xff),
        B('00'),
        crypto.createHash('sha256').update(input).digest(),
      ]);
      add(
        'main',
        `${p}.rs-no-digestinfo`,
        reSig(
          good,
          crypto.privateEncrypt(
            { key: K[key].privateKey, padding: crypto.constants.RSA_NO_PADDING },
            em,
          ),
        ),
      );
      // DigestInfo with NULL params omitted (some verifiers accept)
      const di = Buffer.concat([
        B('302f300b0609608648016503040201'),
        B('0420'),
        crypto.createHash('sha256').update(input).digest(),
      ]);
      const em2 = Buffer.concat([B('0001'), Buffer.alloc(k - 3 - di.length, 0xff), B('00'), di]);
      add(
        'main',
        `${p}.rs-digestinfo-no-null`,
        reSig(
          good,
          crypto.privateEncrypt(
            { key: K[key].privateKey, padding: crypto.constants.RSA_NO_PADDING },
            em2,
          ),
        ),
      );
      // garbage after the digest (BERserk style, within k)
      const di3 = Buffer.concat([
        B('3031300d060960864801650304020105000420'),
        crypto.createHash('sha256').update(input).digest(),
      ]);
      const em3 = Buffer.concat([B('0001'), Buffer.alloc(8, 0xff), B('00'), di3]);
      const em3full = Buffer.concat([em3, Buffer.alloc(k - em3.length, 0x41)]);
      add(
        'main',
        `${p}.rs-trailing-garbage-in-em`,
        reSig(
          good,
          crypto.privateEncrypt(
            { key: K[key].privateKey, padding: crypto.constants.RSA_NO_PADDING },
            em3full,
          ),
        ),
      );
    } else {
      add(
        'main',
        `${p}.ps-signed-with-pkcs1`,
        reSig(good, crypto.sign('sha256', input, K[key].privateKey)),
      );
      for (const salt of [0, 20, 31, 33, 64, crypto.constants.RSA_PSS_SALTLEN_MAX_SIGN]) {
        add(
          'main',
          `${p}.ps-salt-${salt === -2 ? 'max' : salt}`,
          reSig(good, sig('PS256', input, K[key].privateKey, { salt })),
        );
      }
      add(
        'main',
        `${p}.ps-hash-sha384-salt32`,
        reSig(
          good,
          crypto.sign('sha384', input, {
            key: K[key].privateKey,
            padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
            saltLength: 32,
          }),
        ),
      );
    }
  }
  if (kind === 'ed') {
    const R = s.subarray(0, 32);
    const S = big(Buffer.from(s.subarray(32)).reverse());
    const le = (x) => toBuf(x, 32).reverse();
    add('main', `${p}.ed-s+L`, reSig(good, Buffer.concat([R, le(S + L25519)])));
    add('main', `${p}.ed-s=0`, reSig(good, Buffer.concat([R, le(0n)])));
    add(
      'main',
      `${p}.ed-identity-R-s0`,
      reSig(good, Buffer.concat([B('01' + '00'.repeat(31)), le(0n)])),
    );
    add('main', `${p}.ed-s-highbit`, reSig(good, Buffer.concat([R, le(S | (1n << 255n))])));
    add(
      'main',
      `${p}.ed-R-sign-flip`,
      reSig(
        good,
        Buffer.concat([
          Buffer.concat([R.subarray(0, 31), Buffer.from([R[31] ^ 0x80])]),
          s.subarray(32),
        ]),
      ),
    );
    add('main', `${p}.alg-Ed25519`, signed('Ed25519', key, kid));
    add('main', `${p}.alg-Ed448-name`, signed('Ed25519', key, kid, payload(), { alg: 'Ed448' }));
  }
}

// ---- RSA signature representative >= n that still fits in k octets (s + n, s + 2n): RFC 8017 says refuse
for (const [alg, key, kid] of MAIN.filter(([a]) => a[0] === 'R' || a[0] === 'P')) {
  const jwk = K[key].publicKey.export({ format: 'jwk' });
  const mod = big(Buffer.from(jwk.n, 'base64url'));
  const k = Buffer.from(jwk.n, 'base64url').length;
  const limit = 2n ** BigInt(8 * k);
  let found = 0;
  for (let i = 0; i < 200 && found < 2; i++) {
    const t = signed(alg, key, kid, payload({ sub: `sn${i}` }));
    const sv = big(sigOf(t));
    if (sv + mod < limit) {
      add('main', `${alg}-${key}.rsa-s+n-fits-k.${found}`, reSig(t, toBuf(sv + mod, k)));
      if (sv + 2n * mod < limit)
        add('main', `${alg}-${key}.rsa-s+2n-fits-k.${found}`, reSig(t, toBuf(sv + 2n * mod, k)));
      found++;
    }
  }
  if (found === 0) add('main', `${alg}-${key}.rsa-s+n-never-fits`, signed(alg, key, kid));
}
for (const [alg, key, kid] of [
  ['RS256', 'e3', 'e3'],
  ['PS256', 'e3', 'e3'],
  ['RS256', 'e17', 'e17'],
  ['PS256', 'e3big', 'e3-4096'],
]) {
  const jwk = K[key].publicKey.export({ format: 'jwk' });
  const mod = big(Buffer.from(jwk.n, 'base64url'));
  const k = Buffer.from(jwk.n, 'base64url').length;
  for (let i = 0, found = 0; i < 200 && found < 1; i++) {
    const t = signed(alg, key, kid, payload({ sub: `sn${i}` }));
    const sv = big(sigOf(t));
    if (sv + mod < 2n ** BigInt(8 * k)) {
      weakeLater.push([`${alg}-${kid}.rsa-s+n-fits-k`, reSig(t, toBuf(sv + mod, k))]);
      found++;
    }
  }
}
// ---- alg confusion (set main)
{
  const pemRsa = K.rs2048.publicKey.export({ format: 'pem', type: 'spki' });
  const derRsa = K.rs2048.publicKey.export({ format: 'der', type: 'spki' });
  const pemEc = K.es256.publicKey.export({ format: 'pem', type: 'spki' });
  const jwkRsaJson = JSON.stringify(K.rs2048.publicKey.export({ format: 'jwk' }));
  const hs = (secret, kid, alg = 'HS256', h = 'sha256') =>
    jws(hdr(alg, kid), payload(), (i) => crypto.createHmac(h, secret).update(i).digest());
  add('main', 'confusion.HS256-pem-rsa', hs(pemRsa, 'k-rs2048'));
  add(
    'main',
    'confusion.HS256-pem-rsa-pkcs1',
    hs(K.rs2048.publicKey.export({ format: 'pem', type: 'pkcs1' }), 'k-rs2048'),
  );
  add('main', 'confusion.HS256-der-rsa', hs(derRsa, 'k-rs2048'));
  add('main', 'confusion.HS256-jwk-json-rsa', hs(jwkRsaJson, 'k-rs2048'));
  add(
    'main',
    'confusion.HS256-n-bytes',
    hs(Buffer.from(JSON.parse(jwkRsaJson).n, 'base64url'), 'k-rs2048'),
  );
  add('main', 'confusion.HS256-pem-ec', hs(pemEc, 'k-es256'));
  add('main', 'confusion.HS256-pem-rsa-nokid', hs(pemRsa, undefined));
  add('main', 'confusion.HS384-pem-rsa', hs(pemRsa, 'k-rs2048', 'HS384', 'sha384'));
  add('main', 'confusion.HS512-pem-ec', hs(pemEc, 'k-es256', 'HS512', 'sha512'));
  for (const a of ['none', 'None', 'NONE', 'nOnE']) {
    add(
      'main',
      `confusion.alg-${a}-empty-sig`,
      jws(hdr(a, 'k-es256'), payload(), () => ''),
    );
    add(
      'main',
      `confusion.alg-${a}-with-sig`,
      jws(hdr(a, 'k-es256'), payload(), (i) => sig('ES256', i, K.es256.privateKey)),
    );
  }
  add(
    'main',
    'confusion.alg-none-nokid',
    jws(hdr('none'), payload(), () => ''),
  );
  add(
    'main',
    'confusion.alg-missing',
    jws({ typ: 'at+jwt', kid: 'k-es256' }, payload(), (i) => sig('ES256', i, K.es256.privateKey)),
  );
  add(
    'main',
    'confusion.alg-null',
    jws({ alg: null, typ: 'at+jwt', kid: 'k-es256' }, payload(), (i) =>
      sig('ES256', i, K.es256.privateKey),
    ),
  );
  add(
    'main',
    'confusion.alg-array',
    jws({ alg: ['ES256'], typ: 'at+jwt', kid: 'k-es256' }, payload(), (i) =>
      sig('ES256', i, K.es256.privateKey),
    ),
  );
  add(
    'main',
    'confusion.alg-trailing-space',
    jws(hdr('ES256 ', 'k-es256'), payload(), (i) => sig('ES256', i, K.es256.privateKey)),
  );
  add(
    'main',
    'confusion.alg-es256-lower',
    jws(hdr('es256', 'k-es256'), payload(), (i) => sig('ES256', i, K.es256.privateKey)),
  );
  add(
    'main',
    'confusion.alg-ES256K-secp256k1',
    jws(hdr('ES256K', 'k-es256'), payload(), (i) => sig('ES256', i, K.secp256k1.privateKey)),
  );
  // header alg / key type mismatches (kid points at the real key)
  const x = (alg, kid, signAlg, keyName, o) =>
    jws(hdr(alg, kid), payload(), (i) => sig(signAlg, i, K[keyName].privateKey, o));
  add('main', 'confusion.RS256-hdr-on-EC-kid-ecdsa-sig', x('RS256', 'k-es256', 'ES256', 'es256'));
  add('main', 'confusion.RS256-hdr-on-EC-kid-rsa-sig', x('RS256', 'k-es256', 'RS256', 'rs2048'));
  add(
    'main',
    'confusion.ES256-hdr-on-P384-key-sha256',
    x('ES256', 'k-es384', 'ES384', 'es384', { hash: 'sha256' }),
  );
  add('main', 'confusion.ES256-hdr-on-P384-kid-p384-sig', x('ES256', 'k-es384', 'ES384', 'es384'));
  add(
    'main',
    'confusion.ES384-hdr-on-P256-key-sha384',
    x('ES384', 'k-es256', 'ES256', 'es256', { hash: 'sha384' }),
  );
  add(
    'main',
    'confusion.ES512-hdr-on-P384-key',
    x('ES512', 'k-es384', 'ES384', 'es384', { hash: 'sha512' }),
  );
  add(
    'main',
    'confusion.ES384-hdr-on-P521-key',
    x('ES384', 'k-es512', 'ES512', 'es512', { hash: 'sha384' }),
  );
  add('main', 'confusion.ES256-hdr-on-RSA-kid', x('ES256', 'k-rs2048', 'RS256', 'rs2048'));
  add('main', 'confusion.EdDSA-hdr-on-EC-kid', x('EdDSA', 'k-es256', 'ES256', 'es256'));
  add('main', 'confusion.ES256-hdr-on-Ed-kid', x('ES256', 'k-ed', 'EdDSA', 'ed'));
  add('main', 'confusion.PS256-hdr-rs256-sig', x('PS256', 'k-rs2048', 'RS256', 'rs2048'));
  add('main', 'confusion.RS256-hdr-ps256-sig', x('RS256', 'k-rs2048', 'PS256', 'rs2048'));
  add('main', 'confusion.RS384-hdr-rs384-sig', x('RS384', 'k-rs2048', 'RS384', 'rs2048'));
  add('main', 'confusion.RS512-hdr-rs256-sig', x('RS512', 'k-rs2048', 'RS256', 'rs2048'));
  add('main', 'confusion.PS384-hdr-ps256-sig', x('PS384', 'k-rs2048', 'PS256', 'rs2048'));
  add(
    'main',
    'confusion.ES256-unknown-key-secp256k1',
    jws(hdr('ES256', 'k-es256'), payload(), (i) => sig('ES256', i, K.secp256k1.privateKey)),
  );
  add('main', 'confusion.ES256-signed-by-other-P256', x('ES256', 'k-es256', 'ES256', 'es256b'));
  add(
    'main',
    'confusion.EdDSA-signed-by-Ed448',
    jws(hdr('EdDSA', 'k-ed'), payload(), (i) => crypto.sign(null, i, K.ed448.privateKey)),
  );
}

// ---- kid tricks (set main)
{
  const es = (kid, extra = {}) =>
    jws(hdr('ES256', kid, extra), payload(), (i) => sig('ES256', i, K.es256.privateKey));
  add('main', 'kid.missing-es256', es(undefined));
  add(
    'main',
    'kid.missing-rs256',
    jws(hdr('RS256'), payload(), (i) => sig('RS256', i, K.rs2048.privateKey)),
  );
  add(
    'main',
    'kid.missing-eddsa',
    jws(hdr('EdDSA'), payload(), (i) => sig('EdDSA', i, K.ed.privateKey)),
  );
  add('main', 'kid.unknown', es('nope'));
  add('main', 'kid.empty', es(''));
  add('main', 'kid.number', es(1));
  add('main', 'kid.null', es(null));
  add('main', 'kid.array', es(['k-es256']));
  add('main', 'kid.object', es({ toString: 'k-es256' }));
  add('main', 'kid.case', es('K-ES256'));
  add('main', 'kid.trailing-space', es('k-es256 '));
  add('main', 'kid.nul-suffix', es('k-es256\u0000'));
  add(
    'main',
    'kid.unicode-escape-equal',
    jws('{"alg":"ES256","typ":"at+jwt","kid":"k-es\\u0032\\u00356"}', payload(), (i) =>
      sig('ES256', i, K.es256.privateKey),
    ),
  );
  add('main', 'kid.homoglyph', es('k-еs256'));
  add('main', 'kid.path-traversal', es('../../k-es256'));
  add('main', 'kid.__proto__', es('__proto__'));
  add('main', 'kid.constructor', es('constructor'));
  add('main', 'kid.toString', es('toString'));
  add('main', 'kid.hasOwnProperty', es('hasOwnProperty'));
  add('main', 'kid.of-rsa-key', es('k-rs2048'));
  add('main', 'kid.of-p384-key', es('k-es384'));
  add('main', 'kid.long-4000', es('k'.repeat(4000)));
  add('main', 'kid.sql', es("' OR 1=1 --"));
  add('main', 'kid.jku-header', es('k-es256', { jku: 'https://evil.example/jwks' }));
  add('main', 'kid.x5u-header', es('k-es256', { x5u: 'https://evil.example/x5' }));
  add('main', 'kid.x5c-header', es('k-es256', { x5c: ['AAAA'] }));
  add(
    'main',
    'kid.jwk-header-own-key',
    es('k-es256', { jwk: K.es256.publicKey.export({ format: 'jwk' }) }),
  );
  add(
    'main',
    'kid.jwk-header-attacker',
    jws(
      hdr('ES256', undefined, { jwk: K.es256b.publicKey.export({ format: 'jwk' }) }),
      payload(),
      (i) => sig('ES256', i, K.es256b.privateKey),
    ),
  );
  add('main', 'kid.x5t-header', es('k-es256', { x5t: 'AAAA' }));
}

// ---- header / payload JSON oddities (set main, ES256 and ES384)
{
  const rawEs = (h, p, key = 'es256', alg = 'ES256') =>
    jws(h, p, (i) => sig(alg, i, K[key].privateKey));
  const P = (extra = {}) => JSON.stringify(payload(extra));
  const H = '{"alg":"ES256","typ":"at+jwt","kid":"k-es256"';
  add(
    'main',
    'json.dup-alg-none-then-ES256',
    rawEs(`{"alg":"none","typ":"at+jwt","kid":"k-es256","alg":"ES256"}`, P()),
  );
  add('main', 'json.dup-alg-ES256-then-none', rawEs(`${H},"alg":"none"}`, P()));
  add('main', 'json.dup-alg-ES256-then-HS256', rawEs(`${H},"alg":"HS256"}`, P()));
  add('main', 'json.dup-kid', rawEs(`${H},"kid":"k-rs2048"}`, P()));
  add('main', 'json.dup-typ-jwt-last', rawEs(`${H},"typ":"JWT"}`, P()));
  add(
    'main',
    'json.dup-typ-at-last',
    rawEs(`{"typ":"JWT","alg":"ES256","kid":"k-es256","typ":"at+jwt"}`, P()),
  );
  const pl = payload();
  const pj = JSON.stringify(pl);
  add(
    'main',
    'json.dup-exp-expired-last',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"exp":${now - 3600}}`),
  );
  add('main', 'json.dup-exp-expired-first', rawEs(`${H}}`, `{"exp":${now - 3600},` + pj.slice(1)));
  add(
    'main',
    'json.dup-aud-other-last',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"aud":"https://other.api"}`),
  );
  add(
    'main',
    'json.dup-iss-other-last',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"iss":"https://evil.example/oidc"}`),
  );
  add(
    'main',
    'json.dup-scope-admin-last',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"scope":"read:products admin"}`),
  );
  add(
    'main',
    'json.header-__proto__-alg',
    rawEs(`{"__proto__":{"alg":"none"},"alg":"ES256","typ":"at+jwt","kid":"k-es256"}`, P()),
  );
  add(
    'main',
    'json.header-__proto__-only-alg',
    rawEs(`{"__proto__":{"alg":"ES256","kid":"k-es256"},"typ":"at+jwt"}`, P()),
  );
  add(
    'main',
    'json.header-__proto__-crit',
    rawEs(`{"__proto__":{"crit":["exp"]},"alg":"ES256","typ":"at+jwt","kid":"k-es256"}`, P()),
  );
  add(
    'main',
    'json.header-__proto__-jku',
    rawEs(`{"__proto__":{"jku":"https://evil"},"alg":"ES256","typ":"at+jwt","kid":"k-es256"}`, P()),
  );
  add(
    'main',
    'json.header-__proto__-b64',
    rawEs(`{"__proto__":{"b64":false},"alg":"ES256","typ":"at+jwt","kid":"k-es256"}`, P()),
  );
  add(
    'main',
    'json.payload-__proto__-scope',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"__proto__":{"scope":"admin","exp":1}}`),
  );
  add(
    'main',
    'json.payload-__proto__-only-claims',
    rawEs(
      `${H}}`,
      JSON.stringify({ scope: 'read:products', jti: 'x' }).slice(0, -1) +
        `,"__proto__":{"iss":"${ISS}","aud":"${AUD}","sub":"u","client_id":"c","iat":${now},"exp":${now + 3600}}}`,
    ),
  );
  add(
    'main',
    'json.payload-constructor',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"constructor":{"prototype":{"admin":true}}}`),
  );
  add(
    'main',
    'json.payload-toString-hasOwn',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"toString":1,"hasOwnProperty":2,"valueOf":3}`),
  );
  add(
    'main',
    'json.payload-cnf-proto',
    rawEs(`${H}}`, pj.slice(0, -1) + `,"__proto__":{"cnf":{"jkt":"x"}}}`),
  );
  const num = (name, v) =>
    rawEs(`${H}}`, JSON.stringify({ ...pl, jti: `n-${name}` }).replace(/"exp":\d+/, `"exp":${v}`));
  for (const [n, v] of [
    ['1e309', '1e309'],
    ['-1e309', '-1e309'],
    ['1e20', '1e20'],
    ['2^53+1', '9007199254740993'],
    ['big-digits', '9'.repeat(400)],
    ['float', `${now + 3600}.5`],
    ['exp-notation', `${now + 3600}e0`],
    ['neg', '-1'],
    ['zero', '0'],
    ['neg-zero', '-0'],
    ['string', `"${now + 3600}"`],
    ['null', 'null'],
    ['true', 'true'],
    ['array', `[${now + 3600}]`],
    ['object', `{"v":${now + 3600}}`],
  ])
    add('main', `json.exp-${n}`, num(n, v));
  const iat = (n, v) =>
    rawEs(`${H}}`, JSON.stringify({ ...pl, jti: `i-${n}` }).replace(/"iat":\d+/, `"iat":${v}`));
  for (const [n, v] of [
    ['1e309', '1e309'],
    ['string', `"${now}"`],
    ['future', `${now + 86400}`],
    ['neg', '-1'],
    ['null', 'null'],
    ['float', `${now}.9`],
  ])
    add('main', `json.iat-${n}`, iat(n, v));
  for (const [n, v] of [
    ['1e309', '1e309'],
    ['string', `"${now}"`],
    ['future', `${now + 86400}`],
    ['neg-1e309', '-1e309'],
    ['null', 'null'],
  ])
    add('main', `json.nbf-${n}`, rawEs(`${H}}`, pj.slice(0, -1) + `,"nbf":${v}}`));
  add('main', 'json.exp-missing', rawEs(`${H}}`, JSON.stringify({ ...pl, exp: undefined })));
  // crit / b64
  add(
    'main',
    'json.crit-b64-b64false',
    jws(`${H},"crit":["b64"],"b64":false}`, 'unused', () => ''),
  );
  {
    const h = `${H},"crit":["b64"],"b64":false}`;
    const body = JSON.stringify(payload());
    const input = Buffer.concat([Buffer.from(b64u(h) + '.'), Buffer.from(body)]);
    const s = sig('ES256', input, K.es256.privateKey);
    add('main', 'json.b64false-unencoded-detached-sig', `${b64u(h)}..${b64u(s)}`);
    add('main', 'json.b64false-encoded-payload-signed-raw', `${b64u(h)}.${b64u(body)}.${b64u(s)}`);
  }
  add('main', 'json.b64false-no-crit', rawEs(`${H},"b64":false}`, P()));
  add('main', 'json.b64true-no-crit', rawEs(`${H},"b64":true}`, P()));
  add('main', 'json.crit-b64-b64true', rawEs(`${H},"crit":["b64"],"b64":true}`, P()));
  add('main', 'json.crit-empty', rawEs(`${H},"crit":[]}`, P()));
  add('main', 'json.crit-string', rawEs(`${H},"crit":"exp"}`, P()));
  add('main', 'json.crit-nested', rawEs(`${H},"crit":[["b64"]]}`, P()));
  add('main', 'json.crit-object', rawEs(`${H},"crit":{"b64":true}}`, P()));
  add('main', 'json.crit-null', rawEs(`${H},"crit":null}`, P()));
  add('main', 'json.crit-alg', rawEs(`${H},"crit":["alg"]}`, P()));
  add('main', 'json.crit-exp-in-header', rawEs(`${H},"crit":["exp"],"exp":${now + 60}}`, P()));
  add('main', 'json.cty-JWT', rawEs(`${H},"cty":"JWT"}`, P()));
  add('main', 'json.cty-application-jwt-upper', rawEs(`${H},"cty":"APPLICATION/JWT"}`, P()));
  add('main', 'json.cty-json', rawEs(`${H},"cty":"json"}`, P()));
  add('main', 'json.cty-number', rawEs(`${H},"cty":1}`, P()));
  add('main', 'json.zip-DEF', rawEs(`${H},"zip":"DEF"}`, P()));
  add('main', 'json.enc-present', rawEs(`${H},"enc":"A256GCM"}`, P()));
  // typ variants
  for (const [n, t] of [
    ['at+jwt', '"at+jwt"'],
    ['AT+JWT', '"AT+JWT"'],
    ['application/at+jwt', '"application/at+jwt"'],
    ['Application/At+Jwt', '"Application/At+Jwt"'],
    ['JWT', '"JWT"'],
    ['jwt', '"jwt"'],
    ['missing', null],
    ['empty', '""'],
    ['trailing-space', '"at+jwt "'],
    ['nul', '"at+jwt\\u0000"'],
    ['escaped-plus', '"at\\u002bjwt"'],
    ['escaped-all', '"\\u0061\\u0074\\u002b\\u006a\\u0077\\u0074"'],
    ['fullwidth-plus', '"at＋jwt"'],
    ['turkish-I-application', '"applİcation/at+jwt"'],
    ['application/at+jwt;charset', '"application/at+jwt; charset=utf-8"'],
    ['array', '["at+jwt"]'],
    ['number', '1'],
    ['dpop+jwt', '"dpop+jwt"'],
    ['secevent', '"secevent+jwt"'],
  ]) {
    const h =
      t === null ? '{"alg":"ES256","kid":"k-es256"}' : `{"alg":"ES256","kid":"k-es256","typ":${t}}`;
    add('main', `json.typ-${n}`, rawEs(h, P()));
  }
  // long-s / case folding tricks (toLowerCase of 'İ' and 'K' (Kelvin) map to ascii)
  // unicode escapes
  add(
    'main',
    'json.alg-escaped',
    rawEs('{"alg":"ES\\u0032\\u0035\\u0036","typ":"at+jwt","kid":"k-es256"}', P()),
  );
  add(
    'main',
    'json.alg-escaped-none',
    rawEs('{"alg":"\\u006eone","typ":"at+jwt","kid":"k-es256"}', P()),
  );
  add(
    'main',
    'json.iss-escaped-equal',
    rawEs(`${H}}`, pj.replace('"iss":"https://tenant', '"iss":"https:\\/\\/tenant')),
  );
  add(
    'main',
    'json.aud-escaped-equal',
    rawEs(`${H}}`, pj.replace('"aud":"https://shopping', '"aud":"\\u0068ttps://shopping')),
  );
  add(
    'main',
    'json.key-name-escaped-exp',
    rawEs(
      `${H}}`,
      JSON.stringify({ ...pl, exp: undefined }).slice(0, -1) + `,"\\u0065xp":${now + 3600}}`,
    ),
  );
  add(
    'main',
    'json.sub-lone-surrogate',
    rawEs(`${H}}`, pj.replace('"sub":"user-1"', '"sub":"\\ud800"')),
  );
  add(
    'main',
    'json.sub-nul',
    rawEs(`${H}}`, pj.replace('"sub":"user-1"', '"sub":"user\\u0000-1"')),
  );
  add(
    'main',
    'json.iss-trailing-nul',
    rawEs(`${H}}`, pj.replace(`"iss":"${ISS}"`, `"iss":"${ISS}\\u0000"`)),
  );
  add('main', 'json.iss-fullwidth', rawEs(`${H}}`, pj.replace('logto', 'ｌogto')));
  add(
    'main',
    'json.aud-array-ok',
    rawEs(`${H}}`, JSON.stringify({ ...pl, aud: ['https://other.api', AUD] })),
  );
  add('main', 'json.aud-array-nonstring', rawEs(`${H}}`, JSON.stringify({ ...pl, aud: [1, AUD] })));
  add('main', 'json.aud-empty-array', rawEs(`${H}}`, JSON.stringify({ ...pl, aud: [] })));
  add('main', 'json.aud-nested-array', rawEs(`${H}}`, JSON.stringify({ ...pl, aud: [[AUD]] })));
  add('main', 'json.aud-trailing-slash', rawEs(`${H}}`, JSON.stringify({ ...pl, aud: AUD + '/' })));
  add('main', 'json.iss-array', rawEs(`${H}}`, JSON.stringify({ ...pl, iss: [ISS] })));
  add(
    'main',
    'json.scope-array',
    rawEs(`${H}}`, JSON.stringify({ ...pl, scope: ['read:products'] })),
  );
  add('main', 'json.client_id-number', rawEs(`${H}}`, JSON.stringify({ ...pl, client_id: 1 })));
  add('main', 'json.jti-missing', rawEs(`${H}}`, JSON.stringify({ ...pl, jti: undefined })));
  add('main', 'json.sub-missing', rawEs(`${H}}`, JSON.stringify({ ...pl, sub: undefined })));
  // raw bytes
  const bytes = (b) => jws(`${H}}`, b, (i) => sig('ES256', i, K.es256.privateKey));
  add('main', 'bytes.payload-bom', bytes(Buffer.concat([B('efbbbf'), Buffer.from(pj)])));
  add(
    'main',
    'bytes.header-bom',
    jws(Buffer.concat([B('efbbbf'), Buffer.from(`${H}}`)]), pj, (i) =>
      sig('ES256', i, K.es256.privateKey),
    ),
  );
  add(
    'main',
    'bytes.payload-invalid-utf8-ff',
    bytes(Buffer.concat([Buffer.from(pj.slice(0, -1) + ',"x":"'), B('ff'), Buffer.from('"}')])),
  );
  {
    const a = Buffer.from(pj.replace('"sub":"user-1"', '"sub":"user-XX"'));
    const at = a.indexOf('XX');
    const ov = Buffer.from(a);
    ov[at] = 0xc0;
    ov[at + 1] = 0xaf; // overlong '/'
    add('main', 'bytes.payload-overlong-utf8', bytes(ov));
    const lat = Buffer.from(a);
    lat[at] = 0xe9;
    lat[at + 1] = 0x41;
    add('main', 'bytes.payload-latin1-byte', bytes(lat));
    const sur = Buffer.concat([a.subarray(0, at), B('eda080'), a.subarray(at + 2)]); // CESU surrogate
    add('main', 'bytes.payload-utf8-surrogate', bytes(sur));
  }
  add(
    'main',
    'bytes.payload-json-whitespace',
    bytes(Buffer.from(`\n\t ${JSON.stringify(payload(), null, 2)} \r\n`)),
  );
  add('main', 'bytes.payload-trailing-nul', bytes(Buffer.concat([Buffer.from(pj), B('00')])));
  add('main', 'bytes.payload-array', bytes(Buffer.from('[1]')));
  add('main', 'bytes.payload-null', bytes(Buffer.from('null')));
  add('main', 'bytes.payload-string', bytes(Buffer.from('"x"')));
  add('main', 'bytes.payload-two-objects', bytes(Buffer.from(pj + pj)));
  add('main', 'bytes.payload-trailing-comma', bytes(Buffer.from(pj.slice(0, -1) + ',}')));
  add('main', 'bytes.payload-single-quote', bytes(Buffer.from(pj.replace(/"/g, "'"))));
  add(
    'main',
    'bytes.payload-deep-nesting',
    bytes(Buffer.from(pj.slice(0, -1) + ',"x":' + '['.repeat(2000) + ']'.repeat(2000) + '}')),
  );
  add(
    'main',
    'bytes.payload-huge-exponent-number',
    bytes(Buffer.from(pj.slice(0, -1) + ',"x":1e999999}')),
  );
  // structure
  const good = signed('ES256', 'es256', 'k-es256');
  const [h, p, s] = good.split('.');
  add('main', 'struct.two-segments', `${h}.${p}`);
  add('main', 'struct.four-segments', `${h}.${p}.${s}.${s}`);
  add('main', 'struct.five-segments', `${h}.${p}.${s}.${s}.${s}`);
  add('main', 'struct.empty', '');
  add('main', 'struct.opaque', 'abcdef');
  add('main', 'struct.dots-only', '..');
  add('main', 'struct.header-padded', `${h}=.${p}.${s}`);
  add(
    'main',
    'struct.header-std-b64',
    `${Buffer.from(b64u(`${H}}`), 'base64url').toString('base64')}.${p}.${s}`,
  );
  add(
    'main',
    'struct.payload-noncanonical-resigned',
    (() => {
      const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      let pp = b64u(pj + ' ');
      for (let extra = 0; pp.length % 4 === 0; extra++) pp = b64u(pj + ' '.repeat(extra + 2));
      const v = A.indexOf(pp.at(-1));
      pp = pp.slice(0, -1) + A[v | 1];
      const hh = b64u(`${H}}`);
      return `${hh}.${pp}.${b64u(sig('ES256', Buffer.from(`${hh}.${pp}`), K.es256.privateKey))}`;
    })(),
  );
  add(
    'main',
    'struct.header-noncanonical-resigned',
    (() => {
      const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      let hh = b64u(`${H}}`);
      for (let k2 = 1; hh.length % 4 === 0; k2++) hh = b64u(`${H}${' '.repeat(k2)}}`);
      hh = hh.slice(0, -1) + A[A.indexOf(hh.at(-1)) | 1];
      return `${hh}.${p}.${b64u(sig('ES256', Buffer.from(`${hh}.${p}`), K.es256.privateKey))}`;
    })(),
  );
  add('main', 'struct.len-4n+1-payload', `${h}.${p}A.${s}`);
  add('main', 'struct.unicode-in-token', `${h}.${p}.${s}é`);
  add('main', 'struct.Bearer-prefix', `Bearer ${good}`);
  // size limit (maxTokenLength default 8192)
  const pad = (target) => {
    let lo = 0;
    let t;
    for (let i = 0; i < 3; i++) {
      t = signed('ES256', 'es256', 'k-es256', payload({ jti: 'pad', x: 'a'.repeat(lo) }));
      lo += Math.floor(((target - t.length) * 3) / 4);
    }
    for (let d = -8; d <= 8; d++) {
      t = signed('ES256', 'es256', 'k-es256', payload({ jti: 'pad', x: 'a'.repeat(lo + d) }));
      if (t.length === target) return t;
    }
    return undefined;
  };
  for (const len of [8192, 8193]) {
    const t = pad(len);
    if (t) add('main', `struct.length-${len}`, t);
  }
}

// ============ set nokid: keys without kid
sets.nokid = {
  jwks: { keys: ['es256', 'es384', 'rs2048', 'ed'].map((k) => jwkOf(k)) },
};
for (const [alg, key] of [
  ['ES256', 'es256'],
  ['ES384', 'es384'],
  ['RS256', 'rs2048'],
  ['PS256', 'rs2048'],
  ['EdDSA', 'ed'],
]) {
  add('nokid', `${alg}.valid-no-kid`, signed(alg, key, undefined));
  add('nokid', `${alg}.valid-some-kid`, signed(alg, key, 'whatever'));
  const g = signed(alg, key, undefined);
  const s = sigOf(g);
  s[3] ^= 4;
  add('nokid', `${alg}.bad-no-kid`, reSig(g, s));
}
add(
  'nokid',
  'ES256-hdr-P384-key-no-kid',
  jws(hdr('ES256'), payload(), (i) => sig('ES384', i, K.es384.privateKey, { hash: 'sha256' })),
);
add('nokid', 'ES256.other-P256-no-kid', signed('ES256', 'es256b', undefined));

// ============ set pinned: keys carrying alg / use / key_ops
sets.pinned = {
  jwks: {
    keys: [
      jwkOf('rs2048', { kid: 'pin-rs', alg: 'RS256', use: 'sig' }),
      jwkOf('rs4096', { kid: 'pin-ps', alg: 'PS256' }),
      jwkOf('es256', { kid: 'pin-es', alg: 'ES256', key_ops: ['verify'] }),
      jwkOf('es384', { kid: 'pin-es384-as-256', alg: 'ES256' }),
      jwkOf('es512', { kid: 'enc-es512', use: 'enc' }),
      jwkOf('ed', { kid: 'ops-sign', key_ops: ['sign'] }),
      jwkOf('es256b', { kid: 'es256b-alg-RS256', alg: 'RS256' }),
    ],
  },
};
add('pinned', 'RS256-on-RS256-key', signed('RS256', 'rs2048', 'pin-rs'));
add('pinned', 'PS256-on-RS256-pinned-key', signed('PS256', 'rs2048', 'pin-rs'));
add('pinned', 'PS256-on-PS256-key', signed('PS256', 'rs4096', 'pin-ps'));
add('pinned', 'RS256-on-PS256-pinned-key', signed('RS256', 'rs4096', 'pin-ps'));
add('pinned', 'ES256-on-ES256-key', signed('ES256', 'es256', 'pin-es'));
add('pinned', 'ES384-on-P384-key-pinned-ES256', signed('ES384', 'es384', 'pin-es384-as-256'));
add(
  'pinned',
  'ES256-hdr-on-P384-key-pinned-ES256',
  jws(hdr('ES256', 'pin-es384-as-256'), payload(), (i) =>
    sig('ES384', i, K.es384.privateKey, { hash: 'sha256' }),
  ),
);
add('pinned', 'ES512-on-use-enc-key', signed('ES512', 'es512', 'enc-es512'));
add('pinned', 'EdDSA-on-key_ops-sign-only', signed('EdDSA', 'ed', 'ops-sign'));
add('pinned', 'ES256-on-P256-key-pinned-RS256', signed('ES256', 'es256b', 'es256b-alg-RS256'));
add(
  'pinned',
  'RS256-hdr-on-P256-key-pinned-RS256',
  jws(hdr('RS256', 'es256b-alg-RS256'), payload(), (i) => sig('ES256', i, K.es256b.privateKey)),
);

// ============ set dupkid
sets.dupkid = {
  jwks: {
    keys: [
      jwkOf('es256', { kid: 'dup' }),
      jwkOf('es256b', { kid: 'dup' }),
      jwkOf('rs2048', { kid: 'mix' }),
      jwkOf('es384', { kid: 'mix' }),
      jwkOf('ed', { kid: 'mix' }),
      jwkOf('rs4096', { kid: '__proto__' }),
      jwkOf('es512', { kid: 'constructor' }),
    ],
  },
};
add('dupkid', 'dup-P256-first-key', signed('ES256', 'es256', 'dup'));
add('dupkid', 'dup-P256-second-key', signed('ES256', 'es256b', 'dup'));
add('dupkid', 'dup-P256-no-kid-second', signed('ES256', 'es256b', undefined));
add('dupkid', 'mix-RS256', signed('RS256', 'rs2048', 'mix'));
add('dupkid', 'mix-ES384', signed('ES384', 'es384', 'mix'));
add('dupkid', 'mix-EdDSA', signed('EdDSA', 'ed', 'mix'));
add('dupkid', 'mix-PS256', signed('PS256', 'rs2048', 'mix'));
add('dupkid', 'kid-__proto__-RS256', signed('RS256', 'rs4096', '__proto__'));
add('dupkid', 'kid-constructor-ES512', signed('ES512', 'es512', 'constructor'));
add('dupkid', 'kid-toString-ES512', signed('ES512', 'es512', 'toString'));

// ============ set weak-e: RSA keys with small / unusual e
const jwkWith = (name, extra) => ({ ...jwkOf(name), ...extra });
sets.weake = {
  jwks: {
    keys: [
      jwkOf('e3', { kid: 'e3' }),
      jwkOf('e3big', { kid: 'e3-4096' }),
      jwkOf('e5', { kid: 'e5' }),
      jwkOf('e17', { kid: 'e17' }),
      jwkOf('eBig', { kid: 'e2^31-1' }),
      jwkWith('rs2048', { kid: 'e-leading-zeros', e: b64u(B('000000010001')) }),
      jwkWith('rs2048', { kid: 'e1', e: 'AQ' }),
      jwkWith('rs4096', { kid: 'e-even', e: b64u(B('010000')) }),
      jwkWith('rs2048', { kid: 'e-2^255+1', e: b64u(toBuf(2n ** 255n + 1n)) }),
      jwkWith('rs2048', { kid: 'e-2^256+1', e: b64u(toBuf(2n ** 256n + 1n)) }),
      jwkWith('rs2048', { kid: 'e-empty', e: '' }),
      jwkWith('rs2048', { kid: 'e-zero', e: 'AA' }),
      jwkWith('rs2048', { kid: 'e-plus-slash', e: 'AQAB' }),
      jwkWith('rs1024', { kid: 'rsa1024' }),
      {
        ...jwkOf('rs1024'),
        kid: 'rsa1024-padded-n',
        n: b64u(Buffer.concat([Buffer.alloc(128), Buffer.from(jwkOf('rs1024').n, 'base64url')])),
      },
    ],
  },
};
{
  for (const [key, kid] of [
    ['e3', 'e3'],
    ['e3big', 'e3-4096'],
    ['e5', 'e5'],
    ['e17', 'e17'],
    ['eBig', 'e2^31-1'],
  ]) {
    add('weake', `${kid}.RS256-valid`, signed('RS256', key, kid));
    add('weake', `${kid}.PS256-valid`, signed('PS256', key, kid));
    const g = signed('RS256', key, kid);
    const s = sigOf(g);
    s[10] ^= 1;
    add('weake', `${kid}.RS256-flipped`, reSig(g, s));
  }
  add('weake', 'e-leading-zeros.RS256-valid', signed('RS256', 'rs2048', 'e-leading-zeros'));
  add('weake', 'e1.RS256-valid-sig', signed('RS256', 'rs2048', 'e1'));
  add('weake', 'e-even.RS256-valid-sig-of-65537', signed('RS256', 'rs4096', 'e-even'));
  add('weake', 'e-2^255+1.RS256', signed('RS256', 'rs2048', 'e-2^255+1'));
  add('weake', 'e-2^256+1.RS256', signed('RS256', 'rs2048', 'e-2^256+1'));
  add('weake', 'e-empty.RS256', signed('RS256', 'rs2048', 'e-empty'));
  add('weake', 'e-zero.RS256', signed('RS256', 'rs2048', 'e-zero'));
  add('weake', 'rsa1024.RS256-valid', signed('RS256', 'rs1024', 'rsa1024'));
  add('weake', 'rsa1024-padded-n.RS256-valid', signed('RS256', 'rs1024', 'rsa1024-padded-n'));
  // e = 1 forgery: signature = EM itself
  const emFor = (input, k, hash = 'sha256', prefix = '3031300d060960864801650304020105000420') => {
    const di = Buffer.concat([B(prefix), crypto.createHash(hash).update(input).digest()]);
    return Buffer.concat([B('0001'), Buffer.alloc(k - 3 - di.length, 0xff), B('00'), di]);
  };
  {
    const h = b64u(JSON.stringify(hdr('RS256', 'e1')));
    const p = b64u(JSON.stringify(payload({ sub: 'forged' })));
    add('weake', 'e1.forged-em-as-sig', `${h}.${p}.${b64u(emFor(Buffer.from(`${h}.${p}`), 256))}`);
  }
  // Bleichenbacher'06 e=3 forgery (garbage after the DigestInfo), cube root
  const icbrt = (n) => {
    let x = 1n << BigInt(Math.ceil(n.toString(2).length / 3) + 1);
    for (;;) {
      const y = (2n * x + n / (x * x)) / 3n;
      if (y >= x) break;
      x = y;
    }
    while (x * x * x > n) x--;
    while ((x + 1n) ** 3n <= n) x++;
    return x;
  };
  for (const [kid, k, ffs] of [
    ['e3', 256, 1],
    ['e3', 256, 8],
    ['e3-4096', 512, 1],
    ['e3-4096', 512, 8],
    ['e3-4096', 512, 100],
  ]) {
    const h = b64u(JSON.stringify(hdr('RS256', kid)));
    const p = b64u(JSON.stringify(payload({ sub: 'forged' })));
    const input = Buffer.from(`${h}.${p}`);
    const di = Buffer.concat([
      B('3031300d060960864801650304020105000420'),
      crypto.createHash('sha256').update(input).digest(),
    ]);
    const prefix = Buffer.concat([B('0001'), Buffer.alloc(ffs, 0xff), B('00'), di]);
    const target = big(Buffer.concat([prefix, Buffer.alloc(k - prefix.length, 0xff)]));
    const root = icbrt(target);
    add(
      'weake',
      `${kid}.bleichenbacher-garbage-after-ff${ffs}`,
      `${h}.${p}.${b64u(toBuf(root, k))}`,
    );
    // Also a forgery with garbage in the padding (ff's replaced) - middle-garbage: correct suffix
  }
}

for (const [n, t] of weakeLater) add('weake', n, t);
// ============ set weakmix: a good key next to weak ones (set must still work)
sets.weakmix = {
  jwks: {
    keys: [
      jwkWith('rs2048', { kid: 'mix-e1', e: 'AQ' }),
      { kty: 'OKP', crv: 'Ed25519', kid: 'ed-small', x: b64u(B('01' + '00'.repeat(31))) },
      {
        kty: 'OKP',
        crv: 'Ed25519',
        kid: 'ed-small-signbit',
        x: b64u(B('01' + '00'.repeat(30) + '80')),
      },
      {
        kty: 'OKP',
        crv: 'Ed25519',
        kid: 'ed-noncanon-y',
        x: b64u(B('ed' + 'ff'.repeat(30) + '7f')),
      },
      { kty: 'OKP', crv: 'Ed25519', kid: 'ed-y=p+2', x: b64u(B('ef' + 'ff'.repeat(30) + '7f')) },
      jwkOf('es256', { kid: 'good' }),
      { kty: 'oct', kid: 'hs', k: b64u('secret') },
      {
        kty: 'EC',
        crv: 'P-256',
        kid: 'ec-off-curve',
        x: jwkOf('es256').x,
        y: b64u(Buffer.alloc(32, 1)),
      },
      { ...jwkOf('es384'), kid: 'p384-labelled-P-256', crv: 'P-256' },
      { ...jwkOf('secp256k1'), kid: 'k1' },
      { ...jwkOf('ed448'), kid: 'ed448' },
    ],
  },
};
add('weakmix', 'good.ES256-valid', signed('ES256', 'es256', 'good'));
add(
  'weakmix',
  'hs.HS256-forged',
  jws(hdr('HS256', 'hs'), payload(), (i) =>
    crypto.createHmac('sha256', 'secret').update(i).digest(),
  ),
);
for (const kid of ['ed-small', 'ed-small-signbit', 'ed-noncanon-y', 'ed-y=p+2']) {
  add(
    'weakmix',
    `${kid}.identity-R-s0`,
    jws(hdr('EdDSA', kid), payload({ sub: 'forged' }), () =>
      Buffer.concat([B('01' + '00'.repeat(31)), Buffer.alloc(32)]),
    ),
  );
}
add(
  'weakmix',
  'ec-off-curve.ES256',
  jws(hdr('ES256', 'ec-off-curve'), payload(), (i) => sig('ES256', i, K.es256.privateKey)),
);
add(
  'weakmix',
  'p384-labelled-P-256.ES256',
  jws(hdr('ES256', 'p384-labelled-P-256'), payload(), (i) =>
    sig('ES384', i, K.es384.privateKey, { hash: 'sha256' }),
  ),
);
add('weakmix', 'p384-labelled-P-256.ES384', signed('ES384', 'es384', 'p384-labelled-P-256'));
add('weakmix', 'k1.ES256K', signed('ES256', 'secp256k1', 'k1', payload(), { alg: 'ES256K' }));
add('weakmix', 'k1.ES256-hdr', signed('ES256', 'secp256k1', 'k1'));
add(
  'weakmix',
  'ed448.EdDSA-valid',
  jws(hdr('EdDSA', 'ed448'), payload(), (i) => crypto.sign(null, i, K.ed448.privateKey)),
);
{
  const h = b64u(JSON.stringify(hdr('RS256', 'mix-e1')));
  const p = b64u(JSON.stringify(payload({ sub: 'forged' })));
  const input = Buffer.from(`${h}.${p}`);
  const di = Buffer.concat([
    B('3031300d060960864801650304020105000420'),
    crypto.createHash('sha256').update(input).digest(),
  ]);
  add(
    'weakmix',
    'mix-e1.forged-em',
    `${h}.${p}.${b64u(Buffer.concat([B('0001'), Buffer.alloc(256 - 3 - di.length, 0xff), B('00'), di]))}`,
  );
}

// ============ set pem: PEM keys (kid = thumbprint)
sets.pem = {
  jwks: {
    keys: ['es256', 'es384', 'rs2048', 'ed'].map((k) =>
      K[k].publicKey.export({ format: 'pem', type: 'spki' }),
    ),
  },
};
for (const [alg, key] of [
  ['ES256', 'es256'],
  ['ES384', 'es384'],
  ['RS256', 'rs2048'],
  ['PS256', 'rs2048'],
  ['EdDSA', 'ed'],
]) {
  const tp = await calculateJwkThumbprint(K[key].publicKey.export({ format: 'jwk' }));
  add('pem', `${alg}.valid-thumbprint-kid`, signed(alg, key, tp));
  add('pem', `${alg}.valid-no-kid`, signed(alg, key, undefined));
  const g = signed(alg, key, tp);
  const s = sigOf(g);
  s[0] ^= 2;
  add('pem', `${alg}.bad`, reSig(g, s));
}

// ============ odd configs
sets['cfg-hs256-alg'] = { algorithms: ['HS256'], jwks: { keys: [jwkOf('es256', { kid: 'k' })] } };
sets['cfg-none-alg'] = { algorithms: ['none'], jwks: { keys: [jwkOf('es256', { kid: 'k' })] } };
sets['cfg-only-oct'] = { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'k' }] } };
sets['cfg-only-private'] = { jwks: { keys: [K.es256.privateKey.export({ format: 'jwk' })] } };
sets['cfg-es256-only'] = { algorithms: ['ES256'], jwks: sets.main.jwks };
add('cfg-es256-only', 'ES256.valid', signed('ES256', 'es256', 'k-es256'));
add('cfg-es256-only', 'ES384.valid-not-allowed', signed('ES384', 'es384', 'k-es384'));
add('cfg-es256-only', 'RS256.valid-not-allowed', signed('RS256', 'rs2048', 'k-rs2048'));
add(
  'cfg-hs256-alg',
  'HS256.pem',
  jws(hdr('HS256', 'k'), payload(), (i) =>
    crypto
      .createHmac('sha256', K.es256.publicKey.export({ format: 'pem', type: 'spki' }))
      .update(i)
      .digest(),
  ),
);
add(
  'cfg-none-alg',
  'none',
  jws(hdr('none', 'k'), payload(), () => ''),
);
sets['cfg-nostrict'] = { strict: false, jwks: sets.main.jwks };
for (const [n, t] of [
  ['JWT', 'JWT'],
  ['missing', undefined],
  ['number', 1],
]) {
  add(
    'cfg-nostrict',
    `typ-${n}`,
    jws(
      { alg: 'ES256', kid: 'k-es256', ...(t === undefined ? {} : { typ: t }) },
      payload({ jti: undefined, client_id: undefined }),
      (i) => sig('ES256', i, K.es256.privateKey),
    ),
  );
}
add(
  'cfg-nostrict',
  'alg-none',
  jws({ alg: 'none' }, payload(), () => ''),
);

// ============ bursts (verified concurrently): 50 distinct ES384, and a mixed burst
{
  const burst = [];
  for (let i = 0; i < 50; i++)
    burst.push({
      name: `burst-es384.${i}`,
      token: signed('ES384', 'es384', 'k-es384', payload({ sub: `u${i}` })),
    });
  tokens.push({ set: 'main', burst: 'es384-50', items: burst });
  const mixed = [];
  for (let i = 0; i < 60; i++) {
    const kinds = [
      ['ES384', 'es384', 'k-es384'],
      ['ES512', 'es512', 'k-es512'],
      ['ES256', 'es256', 'k-es256'],
      ['RS256', 'rs4096', 'k-rs4096'],
      ['EdDSA', 'ed', 'k-ed'],
      ['PS256', 'rs2048', 'k-rs2048'],
    ];
    const [alg, key, kid] = kinds[i % kinds.length];
    let t = signed(alg, key, kid, payload({ sub: `m${i}` }));
    if (i % 3 === 1) {
      const s = sigOf(t);
      s[5] ^= 8;
      t = reSig(t, s);
    }
    mixed.push({ name: `burst-mixed.${i}-${alg}${i % 3 === 1 ? '-bad' : ''}`, token: t });
  }
  tokens.push({ set: 'main', burst: 'mixed-60', items: mixed });
  // the same token 20 times at once (in-flight dedup)
  const one = signed('ES384', 'es384', 'k-es384', payload({ sub: 'same' }));
  tokens.push({
    set: 'main',
    burst: 'same-es384-x20',
    items: Array.from({ length: 20 }, (_, i) => ({ name: `burst-same.${i}`, token: one })),
  });
  const oneBad = reSig(one, Buffer.alloc(96, 7));
  tokens.push({
    set: 'main',
    burst: 'same-bad-es384-x20',
    items: Array.from({ length: 20 }, (_, i) => ({ name: `burst-same-bad.${i}`, token: oneBad })),
  });
}

{
  // 200 at once: forged P-521 / P-384 (slow keys, pool queue) interleaved with valid ES256/EdDSA/RS256
  const big200 = [];
  for (let i = 0; i < 200; i++) {
    const kinds = [
      ['ES512', 'es512', 'k-es512', true],
      ['ES384', 'es384', 'k-es384', true],
      ['ES256', 'es256', 'k-es256', false],
      ['EdDSA', 'ed', 'k-ed', false],
      ['ES384', 'es384', 'k-es384', false],
      ['RS256', 'rs2048', 'k-rs2048', false],
      ['ES512', 'es512', 'k-es512', false],
    ];
    const [alg, key, kid, forge] = kinds[i % kinds.length];
    let t = signed(alg, key, kid, payload({ sub: `f${i}` }));
    if (forge) t = reSig(t, crypto.randomBytes(sigOf(t).length));
    big200.push({ name: `burst-200.${i}-${alg}${forge ? '-forged' : ''}`, token: t });
  }
  tokens.push({ set: 'main', burst: 'slow-forged-200', items: big200 });
}
const count = tokens.reduce((n, t) => n + (t.items ? t.items.length : 1), 0);
writeFileSync(
  new URL('./corpus.json', import.meta.url),
  JSON.stringify({ made: now, issuer: ISS, audience: AUD, sets, tokens }),
);
console.log(
  `corpus: ${count} tokens (${tokens.filter((t) => !t.items).length} single, ${tokens.filter((t) => t.items).length} bursts), ${Object.keys(sets).length} sets`,
);
