"""tokend over gRPC from Python, with stubs generated from proto/ (see tokend_stubs.py).

It walks through what a service and its admin do:
  1. the admin gets a token (TokenService/IssueToken) and registers a client (ClientService);
  2. the client gets a token; a resource server introspects it (IntrospectionService);
  3. failures are decoded to their OAuth 2.0 error code (google.rpc.ErrorInfo.reason);
  4. the client is deleted and its token introspects inactive.

Every step checks what tokend answered and exits non-zero with a message on any surprise.

Environment: TOKEND_ADDR (host:port, default 127.0.0.1:50051), TOKEND_ADMIN_ID and
TOKEND_ADMIN_SECRET (a client with scopes tokend.admin and tokend.introspect, e.g. from
`tokend client create --tenant system --name admin --scopes tokend.admin,tokend.introspect`).
"""

import os
import sys
import time
import uuid

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import tokend_stubs

pb = tokend_stubs.load()

ADDR = os.environ.get("TOKEND_ADDR", "127.0.0.1:50051")
ADMIN_ID = os.environ["TOKEND_ADMIN_ID"]
ADMIN_SECRET = os.environ["TOKEND_ADMIN_SECRET"]
ISSUER = "urn:tokend"
AUDIENCE = "https://orders.internal"


def check(cond, what):
    """Fail the example with a clear message when tokend did not answer as expected."""
    if not cond:
        sys.exit(f"FAIL (python grpc): {what}")


def bearer(token):
    """Call metadata for tokend's admin and introspection APIs."""
    return [("authorization", f"Bearer {token}")]


def oauth_error(err: grpc.RpcError):
    """The OAuth 2.0 error code of a failed call, read from both places tokend puts it.

    The status details (trailer grpc-status-details-bin) hold a google.rpc.Status whose
    details include a google.rpc.ErrorInfo with domain "tokend" and reason = the code;
    the trailer `oauth2-error` repeats the code for clients that do not decode details.
    """
    status = rpc_status.from_call(err)  # None when the server sent no details
    check(status is not None, f"{err.code()} without google.rpc.Status details")
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            check(info.domain == "tokend", f"ErrorInfo.domain is {info.domain!r}")
            reasons.append(info.reason)
    check(len(reasons) == 1, f"expected one ErrorInfo in the details, got {reasons}")
    trailer = dict(err.trailing_metadata() or ()).get("oauth2-error")
    check(trailer == reasons[0], f"oauth2-error trailer {trailer!r} != ErrorInfo.reason {reasons[0]!r}")
    return reasons[0]


def main():
    channel = grpc.insecure_channel(ADDR)
    tokens = pb.token_pb2_grpc.TokenServiceStub(channel)
    clients = pb.client_pb2_grpc.ClientServiceStub(channel)
    introspection = pb.introspection_pb2_grpc.IntrospectionServiceStub(channel)

    # 1. The admin exchanges its credentials for an access token (client credentials grant).
    admin = tokens.IssueToken(
        pb.token_pb2.IssueTokenRequest(client_id=ADMIN_ID, client_secret=ADMIN_SECRET), timeout=10
    )
    check(admin.token_type == "Bearer", f"token_type {admin.token_type!r}")
    check(admin.access_token.count(".") == 2, "the admin's access token is not a JWT")
    check(set(admin.scopes) == {"tokend.admin", "tokend.introspect"}, f"admin scopes {list(admin.scopes)}")
    admin_md = bearer(admin.access_token)

    # ... and registers a service in tenant "acme". The secret is shown only in this answer.
    name = f"py-orders-reader-{uuid.uuid4().hex[:8]}"
    created = clients.CreateClient(
        pb.client_pb2.CreateClientRequest(
            client=pb.client_pb2.Client(
                tenant="acme",
                name=name,
                scopes=["read:*"],
                audiences=[AUDIENCE],
                roles=["reader"],
                access_token_ttl=duration_pb2.Duration(seconds=600),
            )
        ),
        metadata=admin_md,
        timeout=10,
    )
    client_id, secret = created.client.client_id, created.client_secret
    check(uuid.UUID(client_id).version == 7, f"client_id {client_id!r} is not a UUIDv7")
    check(secret.startswith("tkd_cs_"), "client secret without the tkd_cs_ prefix")
    check(created.client.active, "a new client is not active")

    # GetClient and ListClients show it, never with its secret.
    got = clients.GetClient(pb.client_pb2.GetClientRequest(client_id=client_id), metadata=admin_md, timeout=10)
    check(got.client.name == name and list(got.client.scopes) == ["read:*"], f"GetClient: {got.client}")
    check(got.client.access_token_ttl.seconds == 600, "access_token_ttl was not stored")
    listed, page = [], ""
    while True:
        resp = clients.ListClients(
            pb.client_pb2.ListClientsRequest(tenant="acme", page_token=page), metadata=admin_md, timeout=10
        )
        listed += [c.client_id for c in resp.clients]
        page = resp.next_page_token
        if not page:
            break
    check(client_id in listed, "ListClients(tenant=acme) does not list the new client")

    # 2. The service gets a token for one scope its wildcard allows.
    issued = tokens.IssueToken(
        pb.token_pb2.IssueTokenRequest(client_id=client_id, client_secret=secret, scopes=["read:orders"]),
        timeout=10,
    )
    check(list(issued.scopes) == ["read:orders"], f"granted scopes {list(issued.scopes)}")
    check(0 < issued.expires_in <= 600, f"expires_in {issued.expires_in}")
    check(issued.refresh_token == "", "a refresh token for a client with refresh off")

    # A resource server (here the admin, which holds tokend.introspect) asks whether it is good.
    info = introspection.Introspect(
        pb.introspection_pb2.IntrospectRequest(token=issued.access_token), metadata=admin_md, timeout=10
    )
    now = time.time()
    check(info.active, "a fresh token introspects inactive")
    check(info.client_id == client_id and info.sub == client_id, f"client_id/sub {info.client_id}/{info.sub}")
    check(list(info.scopes) == ["read:orders"], f"introspected scopes {list(info.scopes)}")
    check(list(info.aud) == [AUDIENCE], f"aud {list(info.aud)}")
    check(info.iss == ISSUER, f"iss {info.iss!r}")
    check(info.tenant == "acme", f"tenant {info.tenant!r}")
    check(list(info.roles) == ["reader"], f"roles {list(info.roles)}")
    check(info.token_type == "Bearer", f"token_type {info.token_type!r}")
    check(info.iat <= now + 5 and now < info.exp <= now + 600 + 5, f"iat {info.iat} exp {info.exp}")
    check(info.jti != "", "no jti")

    # Anything that is not a good token is simply inactive, with no other member (RFC 7662).
    junk = introspection.Introspect(
        pb.introspection_pb2.IntrospectRequest(token="not-a-token"), metadata=admin_md, timeout=10
    )
    check(junk == pb.introspection_pb2.IntrospectResponse(), f"junk token introspects as {junk}")

    # 3. Failures carry an OAuth 2.0 error code. A scope the client may not have:
    try:
        tokens.IssueToken(
            pb.token_pb2.IssueTokenRequest(client_id=client_id, client_secret=secret, scopes=["write:orders"]),
            timeout=10,
        )
        check(False, "IssueToken for a scope outside the client's succeeded")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"wrong scope: {err.code()}")
        check(oauth_error(err) == "invalid_scope", "wrong scope: not invalid_scope")

    # A wrong secret (just one: failed authentications count towards a lockout).
    try:
        tokens.IssueToken(
            pb.token_pb2.IssueTokenRequest(client_id=client_id, client_secret="tkd_cs_wrong"), timeout=10
        )
        check(False, "IssueToken with a wrong secret succeeded")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.UNAUTHENTICATED, f"wrong secret: {err.code()}")
        invalid_client = oauth_error(err)
        check(invalid_client == "invalid_client", f"wrong secret: {invalid_client!r}")

    # The admin API without a bearer token.
    try:
        clients.GetClient(pb.client_pb2.GetClientRequest(client_id=client_id), timeout=10)
        check(False, "GetClient without a bearer token succeeded")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.UNAUTHENTICATED, f"no bearer: {err.code()}")

    # 4. Deleting the client makes its tokens inactive at once.
    clients.DeleteClient(pb.client_pb2.DeleteClientRequest(client_id=client_id), metadata=admin_md, timeout=10)
    after = introspection.Introspect(
        pb.introspection_pb2.IntrospectRequest(token=issued.access_token), metadata=admin_md, timeout=10
    )
    check(not after.active, "the token of a deleted client is still active")
    try:
        clients.GetClient(pb.client_pb2.GetClientRequest(client_id=client_id), metadata=admin_md, timeout=10)
        check(False, "GetClient found a deleted client")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.NOT_FOUND, f"deleted client: {err.code()}")

    print(
        "python grpc: OK: IssueToken (admin, client), CreateClient/GetClient/ListClients/DeleteClient, "
        f"Introspect active/inactive, errors invalid_scope and {invalid_client} decoded from ErrorInfo"
    )


if __name__ == "__main__":
    main()
