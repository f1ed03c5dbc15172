// tokend over gRPC from Node.js: @grpc/grpc-js, with proto/ loaded at run time by
// @grpc/proto-loader (no generated code).
//
//   1. the admin gets a token (TokenService/IssueToken) and registers a client (ClientService);
//   2. the client gets a token; a resource server introspects it (IntrospectionService);
//   3. failures are decoded to their OAuth 2.0 error code, from the `oauth2-error` trailer and
//      from the google.rpc.ErrorInfo in the `grpc-status-details-bin` trailer;
//   4. the client is disabled and its token introspects inactive.
//
// Every step checks what tokend answered; any surprise exits non-zero with a message.
//
// Environment: TOKEND_ADDR (host:port, default 127.0.0.1:50051), TOKEND_ADMIN_ID and
// TOKEND_ADMIN_SECRET (a client with scopes tokend.admin and tokend.introspect).
'use strict';

const path = require('node:path');
const { randomBytes } = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const ADDR = process.env.TOKEND_ADDR || '127.0.0.1:50051';
const ADMIN_ID = mustEnv('TOKEND_ADMIN_ID');
const ADMIN_SECRET = mustEnv('TOKEND_ADMIN_SECRET');
const PROTO_DIR = process.env.TOKEND_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const ISSUER = 'urn:tokend';
const AUDIENCE = 'https://orders.internal';

function mustEnv(name) {
  if (!process.env[name]) fail(`set ${name}`);
  return process.env[name];
}

function fail(what) {
  console.error(`FAIL (node grpc): ${what}`);
  process.exit(1);
}

function check(cond, what) {
  if (!cond) fail(what);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Load the service definitions. keepCase keeps the proto's snake_case field names;
// longs: Number turns int64 (exp, iat, expires_in) into plain numbers; defaults: true fills in
// unset fields (so `active` is false rather than missing).
const definition = protoLoader.loadSync(
  ['tokend/v1/token.proto', 'tokend/v1/introspection.proto', 'tokend/v1/client.proto'],
  { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true },
);
const tokendV1 = grpc.loadPackageDefinition(definition).tokend.v1;

// google.rpc.Status and google.rpc.ErrorInfo (from googleapis' google/rpc/*.proto), to decode
// the grpc-status-details-bin trailer.
const rpcTypes = new protobuf.Root();
protobuf.parse(`
  syntax = "proto3";
  package google.protobuf;
  message Any { string type_url = 1; bytes value = 2; }
`, rpcTypes, { keepCase: true });
protobuf.parse(`
  syntax = "proto3";
  package google.rpc;
  message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
  message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
`, rpcTypes, { keepCase: true });
const Status = rpcTypes.lookupType('google.rpc.Status');
const ErrorInfo = rpcTypes.lookupType('google.rpc.ErrorInfo');

// The OAuth 2.0 error code of a failed call, read from both places tokend puts it.
function oauthError(err) {
  const trailer = err.metadata.get('oauth2-error')[0];
  const [detailsBin] = err.metadata.get('grpc-status-details-bin');
  check(detailsBin, `${grpc.status[err.code]} without grpc-status-details-bin`);
  const status = Status.decode(detailsBin);
  check(status.code === err.code, `Status.code ${status.code} != call status ${err.code}`);
  const infos = status.details
    .filter((any) => any.type_url === 'type.googleapis.com/google.rpc.ErrorInfo')
    .map((any) => ErrorInfo.decode(any.value));
  check(infos.length === 1, `expected one ErrorInfo in the details, got ${infos.length}`);
  check(infos[0].domain === 'tokend', `ErrorInfo.domain ${infos[0].domain}`);
  check(trailer === infos[0].reason, `oauth2-error trailer ${trailer} != ErrorInfo.reason ${infos[0].reason}`);
  return infos[0].reason;
}

// Promise wrapper for a unary call, with optional bearer token.
function call(client, method, request, bearer) {
  const metadata = new grpc.Metadata();
  if (bearer) metadata.set('authorization', `Bearer ${bearer}`);
  const deadline = new Date(Date.now() + 10_000);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// A call that must fail: returns the error.
async function callError(client, method, request, bearer) {
  try {
    await call(client, method, request, bearer);
  } catch (err) {
    return err;
  }
  return fail(`${method} succeeded where it must fail`);
}

async function main() {
  const creds = grpc.credentials.createInsecure();
  const tokens = new tokendV1.TokenService(ADDR, creds);
  const clients = new tokendV1.ClientService(ADDR, creds);
  const introspection = new tokendV1.IntrospectionService(ADDR, creds);

  // 1. The admin's token, then a new client in tenant "acme" (its secret is shown only here).
  const admin = await call(tokens, 'IssueToken', { client_id: ADMIN_ID, client_secret: ADMIN_SECRET });
  check(admin.token_type === 'Bearer' && admin.access_token.split('.').length === 3, 'admin token is not a Bearer JWT');
  const name = `node-orders-reader-${randomBytes(4).toString('hex')}`;
  const created = await call(clients, 'CreateClient', {
    client: {
      tenant: 'acme', name, scopes: ['read:*'], audiences: [AUDIENCE],
      access_token_ttl: { seconds: 600, nanos: 0 },
    },
  }, admin.access_token);
  const clientId = created.client.client_id;
  const secret = created.client_secret;
  check(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(clientId), `client_id ${clientId} is not a UUIDv7`);
  check(secret.startsWith('tkd_cs_'), 'client secret without the tkd_cs_ prefix');

  const got = await call(clients, 'GetClient', { client_id: clientId }, admin.access_token);
  check(got.client.name === name && same(got.client.scopes, ['read:*']), `GetClient: ${JSON.stringify(got.client)}`);
  check(got.client.active === true, 'a new client is not active');
  const listed = await call(clients, 'ListClients', { tenant: 'acme', page_size: 1000 }, admin.access_token);
  check(listed.clients.some((c) => c.client_id === clientId), 'ListClients(tenant=acme) does not list the new client');

  // 2. The client's token, introspected by a resource server (the admin holds tokend.introspect).
  const issued = await call(tokens, 'IssueToken', { client_id: clientId, client_secret: secret, scopes: ['read:orders'] });
  check(same(issued.scopes, ['read:orders']), `granted scopes ${issued.scopes}`);
  check(issued.expires_in > 0 && issued.expires_in <= 600, `expires_in ${issued.expires_in}`);
  const info = await call(introspection, 'Introspect', { token: issued.access_token }, admin.access_token);
  const now = Date.now() / 1000;
  check(info.active === true, 'a fresh token introspects inactive');
  check(info.client_id === clientId && info.sub === clientId, `client_id/sub ${info.client_id}/${info.sub}`);
  check(same(info.scopes, ['read:orders']), `introspected scopes ${info.scopes}`);
  check(same(info.aud, [AUDIENCE]), `aud ${info.aud}`);
  check(info.iss === ISSUER && info.tenant === 'acme' && info.token_type === 'Bearer', `iss/tenant/token_type ${JSON.stringify(info)}`);
  check(info.exp > now && info.exp <= now + 605, `exp ${info.exp}`);

  // 3. Errors. A scope the client may not have: INVALID_ARGUMENT / invalid_scope.
  let err = await callError(tokens, 'IssueToken', { client_id: clientId, client_secret: secret, scopes: ['write:orders'] });
  check(err.code === grpc.status.INVALID_ARGUMENT, `wrong scope: ${grpc.status[err.code]}`);
  check(oauthError(err) === 'invalid_scope', 'wrong scope: not invalid_scope');
  // A wrong secret (only one: failed authentications count towards a lockout).
  err = await callError(tokens, 'IssueToken', { client_id: clientId, client_secret: 'tkd_cs_wrong' });
  check(err.code === grpc.status.UNAUTHENTICATED, `wrong secret: ${grpc.status[err.code]}`);
  const invalidClient = oauthError(err);
  check(invalidClient === 'invalid_client', `wrong secret: ${invalidClient}`);
  // Introspect without the caller's bearer token.
  err = await callError(introspection, 'Introspect', { token: issued.access_token });
  check(err.code === grpc.status.UNAUTHENTICATED, `Introspect without bearer: ${grpc.status[err.code]}`);

  // 4. Disabling the client revokes its tokens at once; ClientService/UpdateClient with a mask.
  const updated = await call(clients, 'UpdateClient', {
    client: { client_id: clientId, active: false }, update_mask: { paths: ['active'] },
  }, admin.access_token);
  check(updated.client.active === false, 'UpdateClient did not disable the client');
  const after = await call(introspection, 'Introspect', { token: issued.access_token }, admin.access_token);
  check(after.active === false && after.client_id === '' && after.scopes.length === 0,
    `token of a disabled client: ${JSON.stringify(after)}`);
  err = await callError(tokens, 'IssueToken', { client_id: clientId, client_secret: secret });
  check(err.code === grpc.status.PERMISSION_DENIED && oauthError(err) === 'unauthorized_client',
    `disabled client's IssueToken: ${grpc.status[err.code]}`);

  await call(clients, 'DeleteClient', { client_id: clientId }, admin.access_token);
  [tokens, clients, introspection].forEach((c) => c.close());
  console.log('node grpc: OK: IssueToken (admin, client), CreateClient/GetClient/ListClients/UpdateClient/DeleteClient, '
    + `Introspect active/inactive, errors invalid_scope, ${invalidClient}, unauthorized_client decoded from ErrorInfo + oauth2-error`);
}

main().catch((err) => fail(err.stack || String(err)));
