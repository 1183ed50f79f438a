// Mutual TLS (RFC 8705) and pushed authorization requests (RFC 9126) for the interop server;
// server.mjs wires these in.
//
// - Two HTTPS listeners on loopback, one for the provider and one for the API, with the
//   server certificate of testkit/keys (made by make-tls.sh). Both ask every client for a
//   certificate (`requestCert`) and refuse none at the handshake (`rejectUnauthorized: false`):
//   oidc-provider judges certificates at the token endpoint, the API judges token binding.
// - oidc-provider's `features.mTLS`: tls_client_auth (a certificate the test CA issued, whose
//   subject DN is the registered one), self_signed_tls_client_auth (a certificate registered
//   in the client's JWKS as `x5c`), certificate-bound access tokens. It reads the peer
//   certificate of the HTTPS listener.
// - `mtls_endpoint_aliases` in the metadata: oidc-provider 9 does not publish them, so a
//   middleware adds, for each endpoint the document names that a client authenticates at,
//   the same path on the HTTPS listener.
// - `features.pushedAuthorizationRequests`, with one client that requires it.
// - Clients for the tests in tests/interop/mtls*.rs and tests/interop/par.rs.
// - The serial of the certificate each API request's connection presented, for the test of a
//   certificate rotated mid-run.

import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

const keysDir = new URL('../testkit/keys/', import.meta.url);
const read = (name) => readFileSync(new URL(name, keysDir));

// The subject of mtls-client.pem, as tls_client_auth_subject_dn registers it (RFC 4514).
const CLIENT_DN = 'CN=interop-mtls-client';

// The endpoints a client with a certificate is sent to on the HTTPS listener.
const ALIASED = [
  'token_endpoint',
  'revocation_endpoint',
  'introspection_endpoint',
  'device_authorization_endpoint',
  'pushed_authorization_request_endpoint',
];

// The certificate a connection presented, or undefined (plain http has none to read).
const peerCertificate = (socket) => socket?.getPeerX509Certificate?.() ?? undefined;

// What RFC 8705 section 3.1 binds tokens to: the certificate's SHA-256 thumbprint, base64url.
const thumbprint = (certificate) => createHash('sha256').update(certificate.raw).digest('base64url');

// RFC 4514 order: the most specific name first (Node lists them the other way round).
const distinguishedName = (certificate) => certificate.subject.split('\n').reverse().join(',');

// The self-signed certificate's public key as the JWK it is registered with.
const selfSigned = new X509Certificate(read('mtls-self-signed.pem'));
const selfSignedJwk = {
  ...selfSigned.publicKey.export({ format: 'jwk' }),
  x5c: [selfSigned.raw.toString('base64')],
};

const pushedOnly = 'par-required';

// The clients of the mTLS and PAR tests, made with server.mjs's helpers.
export const clients = ({ confidential, native }) => {
  const withCertificate = (id, method, grantTypes, extra) => {
    const { client_secret: _unused, ...client } = confidential(id, method, grantTypes);
    return { ...client, tls_client_certificate_bound_access_tokens: true, ...extra };
  };
  const caIssued = (id, grantTypes) => withCertificate(id, 'tls_client_auth', grantTypes, {
    tls_client_auth_subject_dn: CLIENT_DN,
  });
  const { client_secret: _unused, ...parKey } = confidential('par-key', 'private_key_jwt', ['authorization_code']);
  const ecJwk = JSON.parse(read('ec.pub.jwk').toString('utf8'));
  return [
    caIssued('mtls-ca', ['client_credentials']),
    caIssued('mtls-ca-refused', ['client_credentials']),
    caIssued('mtls-cli', ['client_credentials']),
    caIssued('mtls-web', ['authorization_code', 'refresh_token']),
    // The rotation test's: its tokens are not bound, so a token from before the new
    // certificate still opens the API over a connection made with the new one.
    { ...caIssued('mtls-rotate', ['client_credentials']), tls_client_certificate_bound_access_tokens: false },
    withCertificate('mtls-self-signed', 'self_signed_tls_client_auth', ['client_credentials'], {
      jwks: { keys: [selfSignedJwk] },
    }),
    { ...native(pushedOnly), require_pushed_authorization_requests: true },
    confidential('par-basic', 'client_secret_basic', ['authorization_code', 'refresh_token']),
    { ...parKey, jwks: { keys: [ecJwk] } },
  ];
};

// Client authentication methods the provider accepts: its defaults and the two of mTLS, which
// a client may only register when they are listed here.
export const clientAuthMethods = [
  'client_secret_basic',
  'client_secret_jwt',
  'client_secret_post',
  'private_key_jwt',
  'none',
  'tls_client_auth',
  'self_signed_tls_client_auth',
];

// The provider's features for both.
export const features = {
  mTLS: {
    enabled: true,
    certificateBoundAccessTokens: true,
    tlsClientAuth: true,
    selfSignedTlsClientAuth: true,
    getCertificate: (ctx) => peerCertificate(ctx.socket),
    // Verified against tls-ca.pem by the listener (`ca`), which records the verdict.
    certificateAuthorized: (ctx) => ctx.socket.authorized === true,
    certificateSubjectMatches: (ctx, property, expected) => {
      const certificate = peerCertificate(ctx.socket);
      return property === 'tls_client_auth_subject_dn'
        && certificate !== undefined
        && distinguishedName(certificate) === expected;
    },
  },
  pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
};

// Which method a request used, for server.mjs's check of the registered method: a request
// with only `client_id` that came with a certificate used the certificate (the two mTLS
// methods differ only in how the server checks it, which oidc-provider does next).
export const methodUsed = (ctx, used, expected) => {
  const certificateMethod = expected === 'tls_client_auth' || expected === 'self_signed_tls_client_auth';
  return used === 'none' && certificateMethod && peerCertificate(ctx.socket) ? expected : used;
};

// Whether the API must refuse `token` on this request: it is bound to a certificate
// (`x5t#S256`, what introspection reports as `cnf`) that the connection did not present.
export const bindingRefused = (req, token) => {
  const bound = token['x5t#S256'];
  if (!bound) {
    return false;
  }
  const certificate = peerCertificate(req.socket);
  return !certificate || thumbprint(certificate) !== bound;
};

// The serial number (hex) of the certificate the request's connection presented, if any.
export const certificateSerial = (req) => peerCertificate(req.socket)?.serialNumber;

// A provider middleware that adds `mtls_endpoint_aliases` to the metadata documents.
export const aliases = (tlsOrigin) => async (ctx, next) => {
  await next();
  const document = ctx.body;
  if (ctx.method !== 'GET' || !ctx.path.startsWith('/.well-known/') || !document?.issuer) {
    return;
  }
  const named = ALIASED.filter((name) => typeof document[name] === 'string');
  document.mtls_endpoint_aliases = Object.fromEntries(
    named.map((name) => [name, `${tlsOrigin}${new URL(document[name]).pathname}`]),
  );
};

// The two HTTPS listeners, on ports the system picks.
export const listen = async () => {
  const options = {
    key: read('tls-server-key.pem'),
    cert: read('tls-server.pem'),
    ca: read('tls-ca.pem'),
    requestCert: true,
    rejectUnauthorized: false,
  };
  const start = (server) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`https://127.0.0.1:${server.address().port}`));
  });
  const authServer = https.createServer(options);
  const apiServer = https.createServer(options);
  return {
    authServer,
    apiServer,
    authOrigin: await start(authServer),
    apiOrigin: await start(apiServer),
  };
};
