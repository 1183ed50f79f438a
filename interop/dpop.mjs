// DPoP (RFC 9449) in the interop server: the provider's own DPoP support (nonces demanded of
// the clients that ask for them), and the check the protected API makes of DPoP-bound tokens,
// which oidc-provider leaves to resource servers.
//
// The API demands a nonce of its own (not the provider's), one per client, for every DPoP
// request, changes a client's on `POST <api>/dpop/rotate-nonce?client=ID`, and sends the current one with every answer to a DPoP
// request, as RFC 9449 section 9 allows.

import { createHash, randomBytes } from 'node:crypto';

import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';

// Clients whose token requests must carry the provider's nonce.
const NONCE_AT_TOKEN_ENDPOINT = new Set(['cc-dpop-nonce']);

export const dpopClients = (confidential, native) => [
  // DPoP is mandatory for these: a token request without a proof is refused.
  { ...confidential('cc-dpop', 'client_secret_basic', ['client_credentials']), dpop_bound_access_tokens: true },
  { ...confidential('cc-dpop-nonce', 'client_secret_basic', ['client_credentials']), dpop_bound_access_tokens: true },
  { ...confidential('cc-dpop-short', 'client_secret_basic', ['client_credentials']), dpop_bound_access_tokens: true },
  { ...native('native-dpop'), dpop_bound_access_tokens: true },
];

// Short-lived (2 s) among them, to cross an expiry in a test.
export const dpopShortLived = ['cc-dpop-short', 'native-dpop'];

export const dpopFeature = {
  enabled: true,
  nonceSecret: randomBytes(32),
  requireNonce: (ctx) => NONCE_AT_TOKEN_ENDPOINT.has(ctx.oidc?.client?.clientId),
  allowReplay: false,
};

export const dpopSigningAlgValues = ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'];

// The API's nonce, one per client, so that a test rotating its own disturbs no other test
// running at the same time.
const apiNonces = new Map();
const apiNonce = (client) => {
  if (!apiNonces.has(client)) {
    apiNonces.set(client, randomBytes(16).toString('base64url'));
  }
  return apiNonces.get(client);
};
const seenJtis = new Set();

export const rotateApiNonce = (client) => {
  apiNonces.set(client, randomBytes(16).toString('base64url'));
};

// The API's verdict on a request whose token `token` (the provider's record of `value`) was
// presented with `scheme`: `undefined` to serve it, or the refusal `{ status, headers, body }`.
export async function checkDpop(req, url, scheme, value, token) {
  const bound = token.jkt;
  if (!bound) {
    // A bearer token must come as one.
    return scheme === 'bearer' ? undefined : refusal('Bearer error="invalid_token"');
  }
  if (scheme !== 'dpop') {
    return refusal('DPoP error="invalid_token", error_description="the token is DPoP-bound"');
  }
  const proof = req.headers.dpop;
  if (typeof proof !== 'string') {
    return refusal('DPoP error="invalid_dpop_proof", error_description="no proof"');
  }
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: dpopSigningAlgValues,
    }));
  } catch (error) {
    return refusal(`DPoP error="invalid_dpop_proof", error_description="${error.code}"`);
  }
  const htu = `${url.origin}${url.pathname}`;
  const ath = createHash('sha256').update(value).digest('base64url');
  const problem = [
    [payload.htm === req.method, 'htm'],
    [payload.htu === htu, 'htu'],
    [payload.ath === ath, 'ath'],
    [Math.abs(Date.now() / 1000 - payload.iat) < 60, 'iat'],
    [(await calculateJwkThumbprint(protectedHeader.jwk)) === bound, 'key'],
  ].find(([ok]) => !ok);
  if (problem) {
    return refusal(`DPoP error="invalid_dpop_proof", error_description="${problem[1]} mismatch"`);
  }
  if (payload.nonce !== apiNonce(token.clientId)) {
    const headers = nonceHeaders('DPoP error="use_dpop_nonce"', token.clientId);
    return { ...refusal('DPoP error="use_dpop_nonce"'), headers };
  }
  if (typeof payload.jti !== 'string' || seenJtis.has(payload.jti)) {
    return refusal('DPoP error="invalid_dpop_proof", error_description="jti replayed"');
  }
  seenJtis.add(payload.jti);
  return undefined;
}

// Headers for an answer that serves a DPoP request: the nonce of the next one.
export const dpopAnswerHeaders = (scheme, client) => (scheme === 'dpop' ? { 'dpop-nonce': apiNonce(client) } : {});

const nonceHeaders = (challenge, client) => ({ 'www-authenticate': challenge, 'dpop-nonce': apiNonce(client) });

const refusal = (challenge) => ({
  status: 401,
  headers: { 'www-authenticate': challenge },
  body: { error: 'invalid_token' },
});
