// A real authorization server (oidc-provider) and a protected API, both on loopback, for
// tower-oauth2's interop tests. Started by run.sh; prints one `ready ...` line with both URLs.
//
// What it adds to a stock oidc-provider, and why:
// - a pre-middleware that rejects a client authentication method the client is not registered
//   for (oidc-provider accepts client_secret_basic and client_secret_post from any confidential
//   client), so a passing test proves the crate sent the configured method;
// - auto-approved interactions, so the authorization-code flow runs without a person;
// - per-client counters of refreshes, invalid_grant answers and revoked grants, served at
//   `GET <api>/stats/<client_id>`, so a test can prove no refresh token was ever sent twice;
// - `POST <api>/expire` with `token=<access token>`, which deletes that one access token, as a
//   server does when it invalidates a token early. (The revocation endpoint would not do:
//   revoking an access token there also revokes every refresh token of its grant.)
// - clients that authenticate with client_secret_jwt and private_key_jwt (the public keys of
//   testkit/keys registered as their JWKS); the method check above tells the two by the
//   assertion's `alg`;
// - the JWT bearer grant (RFC 7523 section 2.1), registered with `registerGrantType`: it
//   trusts assertions that BEARER_ISSUER signed with the EC test key, for the token endpoint,
//   each `jti` once;
// - two resource servers: the API answers `/b/...` only for tokens whose audience is
//   RESOURCE_B, everything else only for RESOURCE;
// - DPoP (`dpop.mjs`): clients that must bind their tokens, one whose token requests need the
//   provider's nonce, and an API that checks the proofs of bound tokens and demands a nonce
//   of its own per client (`POST <api>/dpop/rotate-nonce?client=ID` changes it);
// - at `<api>/.well-known/oauth-authorization-server/evil`, a copy of the provider's metadata:
//   an issuer URL (`<api>/evil`) whose metadata names another issuer;
// - mutual TLS (HTTPS listeners, `mtls_endpoint_aliases`, certificate-bound tokens checked by
//   the API) and pushed authorization requests: see mtls.mjs;
// - the device flow (device.mjs) and token exchange (exchange.mjs);
// - the FAPI 2.0 profile, for the `fapi-*` clients only (fapi.mjs).

import { readFileSync } from 'node:fs';
import http from 'node:http';

import { importJWK, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

import {
  checkDpop, dpopAnswerHeaders, dpopClients, dpopFeature, dpopShortLived, dpopSigningAlgValues,
  rotateApiNonce,
} from './dpop.mjs';
import * as mtls from './mtls.mjs';
import { deviceClients, deviceFlow } from './device.mjs';
import { exchangeClients, registerTokenExchange } from './exchange.mjs';
import { fapiClients, fapiFeature, fapiShortLived } from './fapi.mjs';

const RESOURCE = 'urn:interop:api';
const RESOURCE_B = 'urn:interop:api-b';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const BEARER_ISSUER = 'interop-workload-issuer';

const keysDir = new URL('../testkit/keys/', import.meta.url);
const publicJwk = (name) => JSON.parse(readFileSync(new URL(`${name}.pub.jwk`, keysDir), 'utf8'));
const API_SCOPES = ['api:read', 'api:write'];
const USER = 'user-1';
const REDIRECT = 'http://127.0.0.1/callback';

// Clients whose access tokens live two seconds, to cross many expiries in a short test.
// `native-fleet` is the one fleet/run.sh's processes share through Redis; the fault tests of
// tests/fleet/faults.rs have one each, so that each test reads counters of its own.
const FLEET_FAULTS = [
  'fleet-fault-none', 'fleet-fault-commit', 'fleet-fault-delayed-commit',
  'fleet-fault-rollback', 'fleet-fault-lease-no-ttl', 'fleet-fault-foreign-lease',
  'fleet-fault-latency',
];
const SHORT_LIVED = new Set([
  'native-rotation', 'native-persist', 'native-fleet', ...FLEET_FAULTS, ...dpopShortLived,
  ...fapiShortLived,
]);

const confidential = (id, method, grantTypes) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  token_endpoint_auth_method: method,
  grant_types: grantTypes,
  response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
  redirect_uris: grantTypes.includes('authorization_code') ? [REDIRECT] : [],
  scope: `openid ${API_SCOPES.join(' ')}`,
});

const native = (id) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [REDIRECT],
  scope: `openid ${API_SCOPES.join(' ')}`,
});

// A client that proves itself with a JWT signed by one of the test keys.
const keyClient = (id, key) => {
  const { client_secret: _unused, ...client } = confidential(id, 'private_key_jwt', ['client_credentials']);
  return { ...client, jwks: { keys: [publicJwk(key)] } };
};

const clients = [
  confidential('cc-basic', 'client_secret_basic', ['client_credentials']),
  confidential('cc-post', 'client_secret_post', ['client_credentials']),
  confidential('cc-resource', 'client_secret_basic', ['client_credentials']),
  confidential('cc-discovery', 'client_secret_basic', ['client_credentials']),
  confidential('cc-mixup', 'client_secret_basic', ['client_credentials']),
  // HS256 wants a key of at least 32 bytes.
  { ...confidential('cc-secret-jwt', 'client_secret_jwt', ['client_credentials']), client_secret: 'cc-secret-jwt-secret-of-32-bytes-or-more' },
  keyClient('cc-key-rsa', 'rsa'),
  keyClient('cc-key-ec', 'ec'),
  keyClient('cc-key-ed', 'ed25519'),
  {
    client_id: 'bearer-client',
    token_endpoint_auth_method: 'none',
    grant_types: [JWT_BEARER],
    response_types: [],
    redirect_uris: [],
    scope: API_SCOPES.join(' '),
  },
  confidential('web-basic', 'client_secret_basic', ['authorization_code', 'refresh_token']),
  confidential('web-signout', 'client_secret_basic', ['authorization_code', 'refresh_token']),
  native('native-pkce'),
  native('native-loopback'),
  native('native-revoke'),
  native('native-rotation'),
  native('native-persist'),
  native('native-refresh'),
  native('native-discovery'),
  native('native-fleet'),
  ...FLEET_FAULTS.map(native),
  ...dpopClients(confidential, native),
  ...mtls.clients({ confidential, native }),
  ...deviceClients(`openid ${API_SCOPES.join(' ')}`),
  ...exchangeClients(API_SCOPES.join(' ')),
  ...fapiClients({ confidential, publicJwk }),
];
const registered = new Map(clients.map((client) => [client.client_id, client]));

const stats = new Map();
const count = (clientId, what) => {
  const entry = stats.get(clientId) ?? {};
  entry[what] = (entry[what] ?? 0) + 1;
  stats.set(clientId, entry);
};

// Both servers listen before the provider exists: its issuer URL needs the port.
const listen = (server) => new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', () => resolve(server.address().port));
});
const authServer = http.createServer();
const apiServer = http.createServer();
const authPort = await listen(authServer);
const apiPort = await listen(apiServer);
const issuer = `http://127.0.0.1:${authPort}`;
const tls = await mtls.listen();

const resourceInfo = (resource, client) => ({
  scope: API_SCOPES.join(' '),
  audience: resource,
  // Opaque, because only opaque tokens are revoked with their grant.
  accessTokenFormat: 'opaque',
  accessTokenTTL: SHORT_LIVED.has(client.clientId) ? 2 : 300,
});

const provider = new Provider(issuer, {
  clients,
  cookies: { keys: ['interop-only-cookie-key'] },
  pkce: { required: () => true },
  clientAuthMethods: mtls.clientAuthMethods,
  scopes: ['openid', 'offline_access', ...API_SCOPES],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    deviceFlow,
    introspection: { enabled: true },
    revocation: { enabled: true },
    dPoP: dpopFeature,
    fapi: fapiFeature,
    ...mtls.features,
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource, client) => {
        if (resource !== RESOURCE && resource !== RESOURCE_B) {
          throw new errors.InvalidTarget();
        }
        return resourceInfo(resource, client);
      },
    },
  },
  enabledJWA: { dPoPSigningAlgValues: dpopSigningAlgValues },
  // Every client with the refresh_token grant gets one, without offline_access and consent.
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: () => false,
  // Each refresh returns a new refresh token; sending an old one again revokes the grant.
  rotateRefreshToken: true,
  // Access-token lifetimes come from getResourceServerInfo; a number here would override it.
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    AuthorizationCode: 60,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    IdToken: 3600,
    Grant: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
});

provider.on('grant.success', (ctx) => {
  count(ctx.oidc.client?.clientId ?? 'unknown', `success:${ctx.oidc.params.grant_type}`);
});
provider.on('grant.error', (ctx, error) => {
  const clientId = ctx.oidc?.client?.clientId ?? 'unknown';
  count(clientId, error.error);
  // The answer's description is generic on purpose; the real reason is only here.
  console.error(`grant.error client=${clientId} ${error.error}: ${error.error_detail ?? error.message}`);
});
provider.on('pushed_authorization_request.error', (ctx, error) => {
  const clientId = ctx.oidc?.client?.clientId ?? 'unknown';
  console.error(`par.error client=${clientId} ${error.error}: ${error.error_detail ?? error.error_description}`);
});
provider.on('grant.revoked', (ctx) => {
  count(ctx.oidc?.client?.clientId ?? 'unknown', 'grant_revoked');
});

// Rejects a client authentication method other than the registered one.
const AUTHENTICATED = new Set(['/token', '/token/revocation', '/token/introspection', '/request']);
provider.use(async (ctx, next) => {
  if (ctx.method !== 'POST' || !AUTHENTICATED.has(ctx.path)) {
    return next();
  }
  const chunks = [];
  for await (const chunk of ctx.req) {
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  const form = new URLSearchParams(raw);
  const authorization = ctx.get('authorization');
  let used;
  let clientId;
  if (authorization.toLowerCase().startsWith('basic ')) {
    used = 'client_secret_basic';
    const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
    clientId = decodeURIComponent(decoded.split(':')[0].replace(/\+/g, '%20'));
  } else if (form.has('client_secret')) {
    used = 'client_secret_post';
    clientId = form.get('client_id');
  } else if (form.has('client_assertion')) {
    // Both JWT methods send the same fields; the signature's algorithm tells them apart.
    let alg;
    try {
      ({ alg } = JSON.parse(Buffer.from(form.get('client_assertion').split('.')[0], 'base64url')));
    } catch {
      alg = undefined;
    }
    used = String(alg).startsWith('HS') ? 'client_secret_jwt' : 'private_key_jwt';
    clientId = form.get('client_id');
  } else {
    used = 'none';
    clientId = form.get('client_id');
  }
  const expected = registered.get(clientId)?.token_endpoint_auth_method;
  used = mtls.methodUsed(ctx, used, expected);
  if (expected && expected !== used) {
    count(clientId, 'wrong_auth_method');
    ctx.status = 401;
    ctx.body = {
      error: 'invalid_client',
      error_description: `client is registered for ${expected}, not ${used}`,
    };
    return undefined;
  }
  // oidc-provider reads an already consumed body from here.
  ctx.req.body = raw;
  return next();
});

// Approves every interaction at once: log in USER and grant the requested scopes.
provider.use(async (ctx, next) => {
  const match = ctx.method === 'GET' && /^\/interaction\/[^/]+$/.exec(ctx.path);
  if (!match) {
    return next();
  }
  const { params } = await provider.interactionDetails(ctx.req, ctx.res);
  const requested = String(params.scope ?? '').split(' ').filter(Boolean);
  const grant = new provider.Grant({ accountId: USER, clientId: params.client_id });
  // The API scopes are also provider scopes, so they are granted both ways.
  grant.addOIDCScope(requested.join(' '));
  grant.addResourceScope(RESOURCE, requested.filter((scope) => API_SCOPES.includes(scope)).join(' '));
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
    login: { accountId: USER },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

// The JWT bearer grant: the assertion must verify against BEARER_ISSUER's key, name the token
// endpoint as its audience, be young, and bring a jti never seen before.
const bearerKey = await importJWK(publicJwk('ec'), 'ES256');
const bearerJtis = new Set();
// Whom each token of the grant acts for (ClientCredentials tokens keep no subject).
const bearerSubjects = new Map();
provider.registerGrantType(JWT_BEARER, async (ctx) => {
  const { client, params } = ctx.oidc;
  let payload;
  try {
    ({ payload } = await jwtVerify(params.assertion, bearerKey, {
      issuer: BEARER_ISSUER,
      audience: ctx.oidc.urlFor('token'),
      algorithms: ['ES256'],
      maxTokenAge: '5m',
      requiredClaims: ['exp', 'iat', 'jti', 'sub'],
    }));
  } catch (error) {
    throw new errors.InvalidGrant(`assertion: ${error.message}`);
  }
  if (bearerJtis.has(payload.jti)) {
    throw new errors.InvalidGrant('assertion: its jti was used before');
  }
  bearerJtis.add(payload.jti);
  const resource = params.resource ?? RESOURCE;
  if (resource !== RESOURCE && resource !== RESOURCE_B) {
    throw new errors.InvalidTarget();
  }
  const token = new provider.ClientCredentials({
    client,
    scope: params.scope || API_SCOPES[0],
  });
  token.resourceServer = new provider.ResourceServer(resource, resourceInfo(resource, client));
  const value = await token.save();
  bearerSubjects.set(value, payload.sub);
  count(client.clientId, `success:${JWT_BEARER}`);
  ctx.body = {
    access_token: value,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}, ['assertion', 'scope', 'resource']);

provider.use(mtls.aliases(tls.authOrigin));
registerTokenExchange(provider, errors, { resources: [RESOURCE, RESOURCE_B], resourceInfo, count });

authServer.on('request', provider.callback());
tls.authServer.on('request', provider.callback());

// The protected API: 200 with what the token grants, 401 for an unknown, expired or revoked
// token, 403 when the token lacks the path's scope (`/write` needs api:write, anything else
// api:read). Also the test hooks `/stats/<client_id>` and `/expire`.
const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
const serveApi = async (req, res) => {
  try {
    const url = new URL(req.url, `http://127.0.0.1:${apiPort}`);
    if (url.pathname === '/.well-known/oauth-authorization-server/evil') {
      // The real server's metadata, served for another issuer URL: a mix-up in the making.
      const real = await fetch(`${issuer}/.well-known/openid-configuration`);
      json(res, 200, await real.json());
      return;
    }
    const statsMatch = /^\/stats\/([^/]+)$/.exec(url.pathname);
    if (statsMatch) {
      json(res, 200, stats.get(decodeURIComponent(statsMatch[1])) ?? {});
      return;
    }
    if (req.method === 'POST' && url.pathname === '/expire') {
      const chunks = [];
      for await (const chunk of req) {
        chunks.push(chunk);
      }
      const value = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('token');
      const token = value
        && ((await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value)));
      if (!token) {
        json(res, 404, { error: 'unknown token' });
        return;
      }
      await token.destroy();
      json(res, 200, {});
      return;
    }
    if (req.method === 'POST' && url.pathname === '/dpop/rotate-nonce') {
      const client = url.searchParams.get('client');
      if (!client) {
        json(res, 400, { error: 'which client? (?client=)' });
        return;
      }
      rotateApiNonce(client);
      json(res, 200, {});
      return;
    }
    const [scheme, value] = (req.headers.authorization ?? '').split(' ', 2);
    const token = value
      && ((await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value)));
    if (!token) {
      json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return;
    }
    if (mtls.bindingRefused(req, token)) {
      json(res, 401, { error: 'invalid_token' }, {
        'www-authenticate': 'Bearer error="invalid_token", error_description="certificate binding"',
      });
      return;
    }
    const refused = await checkDpop(req, url, scheme.toLowerCase(), value, token);
    if (refused) {
      json(res, refused.status, refused.body, refused.headers);
      return;
    }
    const audience = url.pathname.startsWith('/b/') ? RESOURCE_B : RESOURCE;
    if (![].concat(token.aud ?? []).includes(audience)) {
      json(res, 401, { error: 'invalid_token' }, {
        'www-authenticate': 'Bearer error="invalid_token", error_description="wrong audience"',
      });
      return;
    }
    const scopes = String(token.scope ?? '').split(' ');
    const needed = url.pathname.endsWith('/write') ? 'api:write' : 'api:read';
    if (!scopes.includes(needed)) {
      json(res, 403, { error: 'insufficient_scope' }, {
        'www-authenticate': `Bearer error="insufficient_scope", scope="${needed}"`,
      });
      return;
    }
    // `?close=1` ends the connection after the answer, so the client's next request makes a
    // new one: the mTLS rotation test sees which certificate each new connection presents.
    const closing = url.searchParams.get('close') === '1' ? { connection: 'close' } : {};
    json(res, 200, {
      client_id: token.clientId,
      token_type: token.jkt ? 'DPoP' : 'Bearer',
      sub: token.accountId ?? bearerSubjects.get(value) ?? null,
      scope: token.scope,
      aud: token.aud,
      certificate_serial: mtls.certificateSerial(req) ?? null,
    }, { ...dpopAnswerHeaders(scheme.toLowerCase(), token.clientId), ...closing });
  } catch (error) {
    console.error(`api error: ${error.stack}`);
    json(res, 500, { error: 'server_error' });
  }
};
apiServer.on('request', serveApi);
tls.apiServer.on('request', serveApi);

const stop = () => {
  authServer.close();
  apiServer.close();
  tls.authServer.close();
  tls.apiServer.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

console.log(`ready issuer=${issuer} api=http://127.0.0.1:${apiPort} api_tls=${tls.apiOrigin}`);
