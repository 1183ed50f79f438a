// Token exchange (RFC 8693) for the interop server, registered with `registerGrantType`:
//
// - the subject token (and the actor token, when sent) must be an access token this provider
//   issued and still honours (`subject_token_type` / `actor_token_type` access_token; any
//   other type is `invalid_request`);
// - the new token is for the resource named by `resource` or `audience` (RESOURCE unless
//   either is given; another value is `invalid_target`), with the scopes asked for, which must
//   be among the subject token's (`invalid_scope` otherwise);
// - the answer names `issued_token_type` access_token, whatever `requested_token_type` asked
//   for (this server issues nothing else), except for the client `exchanger-legacy`, whose
//   answers leave `issued_token_type` out, as servers written before RFC 8693 was final do.

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

const exchanger = (id, scope) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: [TOKEN_EXCHANGE, 'client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope,
});

export const exchangeClients = (scope) => [
  exchanger('exchanger', scope),
  exchanger('exchanger-legacy', scope),
];

// `count(clientId, what)` feeds the per-client counters; `resourceInfo(resource, client)` is
// server.mjs's description of a resource server.
export function registerTokenExchange(provider, errors, { resources, resourceInfo, count }) {
  const find = async (value) => (await provider.AccessToken.find(value))
    ?? (await provider.ClientCredentials.find(value));

  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { client, params } = ctx.oidc;
    if (!params.subject_token || !params.subject_token_type) {
      throw new errors.InvalidRequest('subject_token and subject_token_type are required');
    }
    if (Boolean(params.actor_token) !== Boolean(params.actor_token_type)) {
      throw new errors.InvalidRequest('actor_token and actor_token_type go together');
    }
    for (const type of [params.subject_token_type, params.actor_token_type]) {
      if (type !== undefined && type !== ACCESS_TOKEN) {
        throw new errors.InvalidRequest(`unsupported token type ${type}`);
      }
    }
    const subject = await find(params.subject_token);
    if (!subject) {
      throw new errors.InvalidGrant('subject_token is not an active access token');
    }
    const actor = params.actor_token && (await find(params.actor_token));
    if (params.actor_token && !actor) {
      throw new errors.InvalidGrant('actor_token is not an active access token');
    }
    const resource = params.resource ?? params.audience ?? resources[0];
    if (!resources.includes(resource)) {
      throw new errors.InvalidTarget();
    }
    const held = String(subject.scope ?? '').split(' ').filter(Boolean);
    const asked = params.scope ? params.scope.split(' ') : held;
    if (asked.some((scope) => !held.includes(scope))) {
      throw new errors.InvalidScope('scope exceeds the subject token', asked.join(' '));
    }

    const token = new provider.ClientCredentials({ client, scope: asked.join(' ') });
    token.resourceServer = new provider.ResourceServer(resource, resourceInfo(resource, client));
    const value = await token.save();
    count(client.clientId, `success:${TOKEN_EXCHANGE}`);
    ctx.body = {
      access_token: value,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope: token.scope,
      ...(client.clientId === 'exchanger-legacy' ? {} : { issued_token_type: ACCESS_TOKEN }),
    };
  }, [
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
    'requested_token_type', 'audience', 'resource', 'scope',
  ]);
}
