// oidc-provider's FAPI 2.0 profile, for the `fapi-*` clients of tests/interop/fapi.rs only.
// It forces PKCE, a redirect_uri and assertions whose `aud` is the issuer; PAR, DPoP and
// private_key_jwt are in the registration below, which the profile does not check: we do.

// A client of the profile: signs its assertions with the EC test key, must bind its tokens
// with DPoP and push its authorization requests; the refresh_token grant gets it refresh
// tokens (server.mjs's issueRefreshToken).
const fapiClient = (id, { confidential, publicJwk }) => {
  const { client_secret: _unused, ...client } = confidential(id, 'private_key_jwt', [
    'authorization_code',
    'refresh_token',
  ]);
  return {
    ...client,
    jwks: { keys: [publicJwk('ec')] },
    dpop_bound_access_tokens: true,
    require_pushed_authorization_requests: true,
  };
};

// One client per test, so the server's per-client counters belong to one test.
const FAPI_CLIENTS = [
  'fapi-dpop',
  'fapi-no-par',
  'fapi-no-dpop',
  'fapi-secret',
  'fapi-audience',
  'fapi-pkce',
  'fapi-iss',
];
const fapi = new Set(FAPI_CLIENTS);

// The happy path's access tokens live two seconds, to cross an expiry.
export const fapiShortLived = ['fapi-dpop'];

// FAPI 2.0 allows these client authentication methods only.
const FAPI_AUTH_METHODS = new Set(['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth']);

export const fapiClients = (helpers) => {
  const clients = FAPI_CLIENTS.map((id) => fapiClient(id, helpers));
  for (const client of clients) {
    if (!FAPI_AUTH_METHODS.has(client.token_endpoint_auth_method)) {
      throw new Error(`${client.client_id}: FAPI 2.0 forbids ${client.token_endpoint_auth_method}`);
    }
  }
  return clients;
};

// The profile for these clients and no others: every other test meets the provider as before.
export const fapiFeature = {
  enabled: true,
  profile: (_ctx, client) => (fapi.has(client?.clientId) ? '2.0' : undefined),
};
