// The device authorization grant (RFC 8628) for the interop server: oidc-provider's own
// device flow, with its own pages (user code input, confirmation, success). The sign-in after
// the confirmation goes through the interactions that server.mjs approves by itself, so a test
// drives the pages with plain HTTP requests.

export const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

// A public client as device apps are (no secret), and a confidential one, to prove the
// client authentication reaches the device authorization endpoint.
export const deviceClients = (scope) => [
  {
    client_id: 'device-native',
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_CODE, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope,
  },
  {
    client_id: 'device-basic',
    client_secret: 'device-basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [DEVICE_CODE, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope,
  },
];

// `features.deviceFlow`: the stock pages; oidc-provider sends no `interval`, so clients poll
// every 5 seconds.
export const deviceFlow = { enabled: true };
