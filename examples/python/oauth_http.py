"""tokend over plain HTTP with stock OAuth 2.0 / JWT libraries: Authlib and PyJWT.

  1. discover the endpoints (RFC 8414 metadata at /.well-known/oauth-authorization-server);
  2. get tokens with Authlib's OAuth2Session, client_credentials grant, client_secret_basic;
     a refused request raises Authlib's OAuthError carrying the OAuth 2.0 error code;
  3. verify the JWT access token locally, as a resource server would, with PyJWT's PyJWKClient
     on the discovered jwks_uri (EdDSA, `typ: at+jwt`, issuer, audience, tenant);
  4. revoke it at the revocation endpoint (RFC 7009) and see it inactive through gRPC
     Introspect (local JWT verification cannot see a revocation: only tokend knows).

The client used is registered through gRPC ClientService with an admin token that itself
comes from the HTTP token endpoint: both front ends issue the same tokens.

Environment: TOKEND_URL (default http://127.0.0.1:50051), TOKEND_ADDR (gRPC host:port,
default 127.0.0.1:50051), TOKEND_ADMIN_ID, TOKEND_ADMIN_SECRET (scopes tokend.admin and
tokend.introspect).
"""

import os
import sys
import uuid

import grpc
import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from google.protobuf import duration_pb2

import tokend_stubs

pb = tokend_stubs.load()

URL = os.environ.get("TOKEND_URL", "http://127.0.0.1:50051").rstrip("/")
ADDR = os.environ.get("TOKEND_ADDR", "127.0.0.1:50051")
ADMIN_ID = os.environ["TOKEND_ADMIN_ID"]
ADMIN_SECRET = os.environ["TOKEND_ADMIN_SECRET"]
ISSUER = "urn:tokend"
AUDIENCE = "https://orders.internal"


def check(cond, what):
    """Fail the example with a clear message when tokend did not answer as expected."""
    if not cond:
        sys.exit(f"FAIL (python http): {what}")


def discover():
    """RFC 8414 metadata: where the token, revocation and JWKS endpoints are."""
    resp = requests.get(f"{URL}/.well-known/oauth-authorization-server", timeout=10)
    check(resp.status_code == 200, f"metadata: HTTP {resp.status_code}")
    meta = resp.json()
    check(meta.get("issuer") == ISSUER, f"metadata issuer {meta.get('issuer')!r}")
    for key in ("token_endpoint", "revocation_endpoint", "jwks_uri"):
        check(str(meta.get(key, "")).startswith("http"), f"metadata has no {key}: {meta}")
    check("client_credentials" in meta.get("grant_types_supported", []), "client_credentials not supported")
    check(
        "client_secret_basic" in meta.get("token_endpoint_auth_methods_supported", []),
        "client_secret_basic not supported",
    )
    return meta


def register_client(admin_token):
    """Register a client in tenant "acme" through gRPC ClientService; return (id, secret)."""
    with grpc.insecure_channel(ADDR) as channel:
        created = pb.client_pb2_grpc.ClientServiceStub(channel).CreateClient(
            pb.client_pb2.CreateClientRequest(
                client=pb.client_pb2.Client(
                    tenant="acme",
                    name=f"py-http-{uuid.uuid4().hex[:8]}",
                    scopes=["read:*"],
                    audiences=[AUDIENCE],
                    access_token_ttl=duration_pb2.Duration(seconds=600),
                )
            ),
            metadata=[("authorization", f"Bearer {admin_token}")],
            timeout=10,
        )
    return created.client.client_id, created.client_secret


def grpc_introspect(admin_token, token):
    with grpc.insecure_channel(ADDR) as channel:
        return pb.introspection_pb2_grpc.IntrospectionServiceStub(channel).Introspect(
            pb.introspection_pb2.IntrospectRequest(token=token),
            metadata=[("authorization", f"Bearer {admin_token}")],
            timeout=10,
        )


def http_introspect(meta, caller_id, caller_secret, token):
    """RFC 7662 introspection over HTTP, for tokend versions that advertise it (else None).

    The caller authenticates with its own credentials (it needs scope tokend.introspect).
    """
    endpoint = meta.get("introspection_endpoint")
    if not endpoint:
        return None
    resp = requests.post(endpoint, data={"token": token}, auth=(caller_id, caller_secret), timeout=10)
    check(resp.status_code == 200, f"introspection endpoint: HTTP {resp.status_code}: {resp.text}")
    return resp.json()


def main():
    meta = discover()

    # The admin's token, from the HTTP token endpoint. It is a Bearer token for gRPC too.
    admin_session = OAuth2Session(
        ADMIN_ID, ADMIN_SECRET, token_endpoint_auth_method="client_secret_basic",
        scope="tokend.admin tokend.introspect",
    )
    admin_token = admin_session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")["access_token"]
    client_id, client_secret = register_client(admin_token)

    # The service's session: client_credentials, one scope, one audience (RFC 8707 `resource`).
    session = OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic", scope="read:orders",
    )
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials", resource=AUDIENCE)
    check(token.get("token_type") == "Bearer", f"token_type {token.get('token_type')!r}")
    check(token.get("scope") == "read:orders", f"scope {token.get('scope')!r}")
    check(0 < int(token.get("expires_in", 0)) <= 600, f"expires_in {token.get('expires_in')!r}")
    check("refresh_token" not in token, "a refresh token for a client with refresh off")
    access_token = token["access_token"]

    # A refused request: Authlib raises OAuthError with the RFC 6749 section 5.2 code.
    try:
        session.fetch_token(meta["token_endpoint"], grant_type="client_credentials", scope="write:orders")
        check(False, "a token for a scope outside the client's was issued")
    except OAuthError as err:
        check(err.error == "invalid_scope", f"wrong scope: {err.error!r} ({err.description})")
    session.token = token  # the failed fetch left the good token in place; make that explicit

    # Verify the JWT locally, as a resource server would: key from the JWKS by `kid`.
    header = jwt.get_unverified_header(access_token)
    check(header.get("typ") == "at+jwt", f"typ {header.get('typ')!r} (RFC 9068 wants at+jwt)")
    check(header.get("alg") == "EdDSA", f"alg {header.get('alg')!r}")
    jwks = jwt.PyJWKClient(meta["jwks_uri"])
    signing_key = jwks.get_signing_key_from_jwt(access_token)
    claims = jwt.decode(
        access_token,
        signing_key.key,
        algorithms=["EdDSA"],  # never take the algorithm from the token itself
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=5,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    check(claims["sub"] == client_id and claims.get("client_id") == client_id, f"sub/client_id {claims}")
    check(claims.get("scope") == "read:orders", f"scope claim {claims.get('scope')!r}")
    # Audiences are not owned by tenants: a resource server also checks the tenant claim.
    check(claims.get("tenant") == "acme", f"tenant claim {claims.get('tenant')!r}")

    # A token for another audience must not pass this resource server's check.
    try:
        jwt.decode(access_token, signing_key.key, algorithms=["EdDSA"], audience="https://other.internal")
        check(False, "PyJWT accepted the token for another audience")
    except jwt.InvalidAudienceError:
        pass

    # Active before the revocation, for tokend.
    check(grpc_introspect(admin_token, access_token).active, "gRPC Introspect: fresh token inactive")
    http_before = http_introspect(meta, ADMIN_ID, ADMIN_SECRET, access_token)
    if http_before is not None:
        check(
            http_before.get("active") is True
            and http_before.get("client_id") == client_id
            and http_before.get("scope") == "read:orders",
            f"HTTP introspection of a fresh token: {http_before}",
        )

    # Revoke (RFC 7009) with the client's own credentials.
    resp = session.revoke_token(meta["revocation_endpoint"], token=access_token, token_type_hint="access_token")
    check(resp.status_code == 200, f"revocation: HTTP {resp.status_code}: {resp.text}")

    # Inactive for everyone who asks tokend (still valid for local JWKS checks until it expires).
    check(not grpc_introspect(admin_token, access_token).active, "gRPC Introspect: revoked token still active")
    http_after = http_introspect(meta, ADMIN_ID, ADMIN_SECRET, access_token)
    if http_after is not None:
        check(http_after == {"active": False}, f"HTTP introspection of a revoked token: {http_after}")

    print(
        "python http: OK: metadata discovered, Authlib client_credentials token, invalid_scope as "
        "OAuthError, PyJWKClient verified EdDSA at+jwt (iss, aud, tenant), revoked -> Introspect inactive"
        + ("" if http_after is None else ", HTTP introspection agrees")
    )


if __name__ == "__main__":
    main()
