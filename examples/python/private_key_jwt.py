"""A client with no secret at all: private_key_jwt (RFC 7523 section 2.2) with Authlib.

  1. make an EC P-256 key pair; register a client whose only method is `private_key_jwt`
     and whose `jwks` holds the public key (CreateClient returns no secret for it);
  2. get a token with Authlib's OAuth2Session and its stock PrivateKeyJWT client
     authentication: a short-lived assertion signed with the private key, `aud` the token
     endpoint from the RFC 8414 metadata, a fresh `jti`;
  3. see what tokend refuses: the same assertion again (a replay) and a secret for a client
     that does not list the secret methods, both `invalid_client`.

Authlib signs assertions that live an hour unless told otherwise; tokend accepts at most
`assertions.max_lifetime_secs` (300 s), so each fetch builds its PrivateKeyJWT with an `exp`
a minute out (Authlib's own `claims` argument, no patching).

Environment: TOKEND_URL, TOKEND_ADDR, TOKEND_ADMIN_ID, TOKEND_ADMIN_SECRET, as oauth_http.py.
"""

import json
import os
import sys
import time
import uuid

import grpc
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey

import tokend_stubs

pb = tokend_stubs.load()

URL = os.environ.get("TOKEND_URL", "http://127.0.0.1:50051").rstrip("/")
ADDR = os.environ.get("TOKEND_ADDR", "127.0.0.1:50051")
ADMIN_ID = os.environ["TOKEND_ADMIN_ID"]
ADMIN_SECRET = os.environ["TOKEND_ADMIN_SECRET"]


def check(cond, what):
    """Fail the example with a clear message when tokend did not answer as expected."""
    if not cond:
        sys.exit(f"FAIL (python private_key_jwt): {what}")


def key_pair():
    """A P-256 key (joserfc's, as Authlib signs with): the private half stays here, the
    public half goes to tokend as a JWK Set."""
    kid = uuid.uuid4().hex[:12]
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})
    return key, kid, json.dumps({"keys": [key.as_dict(private=False)]})


def register_client(admin_token, jwks):
    """A client of tenant "acme" that authenticates only with assertions signed by its key."""
    with grpc.insecure_channel(ADDR) as channel:
        created = pb.client_pb2_grpc.ClientServiceStub(channel).CreateClient(
            pb.client_pb2.CreateClientRequest(
                client=pb.client_pb2.Client(
                    tenant="acme",
                    name=f"py-pkjwt-{uuid.uuid4().hex[:8]}",
                    scopes=["read:*"],
                    auth_methods=["private_key_jwt"],
                    jwks=jwks,
                )
            ),
            metadata=[("authorization", f"Bearer {admin_token}")],
            timeout=10,
        )
    check(created.client_secret == "", "a secret was made for a client that has no use for one")
    return created.client.client_id


def session(client_id, key, kid, token_endpoint):
    """Authlib's stock private_key_jwt: `exp` a minute out, the rest Authlib's own."""
    auth = PrivateKeyJWT(token_endpoint, alg="ES256", headers={"kid": kid}, claims={"exp": int(time.time()) + 60})
    return OAuth2Session(client_id, key, token_endpoint_auth_method=auth, scope="read:orders")


def main():
    meta = requests.get(f"{URL}/.well-known/oauth-authorization-server", timeout=10).json()
    check("private_key_jwt" in meta.get("token_endpoint_auth_methods_supported", []), f"no private_key_jwt: {meta}")
    check("ES256" in meta.get("token_endpoint_auth_signing_alg_values_supported", []), "ES256 not listed")
    endpoint = meta["token_endpoint"]

    admin = OAuth2Session(ADMIN_ID, ADMIN_SECRET, token_endpoint_auth_method="client_secret_basic")
    admin_token = admin.fetch_token(endpoint, grant_type="client_credentials")["access_token"]
    key, kid, jwks = key_pair()
    client_id = register_client(admin_token, jwks)

    token = session(client_id, key, kid, endpoint).fetch_token(endpoint, grant_type="client_credentials")
    check(token.get("token_type") == "Bearer", f"token_type {token.get('token_type')!r}")
    check(token.get("scope") == "read:orders", f"scope {token.get('scope')!r}")

    # The same assertion twice: the second is a replay.
    assertion = private_key_jwt_sign(
        key, client_id, endpoint, alg="ES256", header={"kid": kid}, claims={"exp": int(time.time()) + 60}
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    first = requests.post(endpoint, data=form, timeout=10)
    check(first.status_code == 200, f"first use of an assertion: HTTP {first.status_code}: {first.text}")
    again = requests.post(endpoint, data=form, timeout=10)
    check(
        # RFC 6749 section 5.2: 401 only for credentials sent in the Authorization header.
        again.status_code == 400 and again.json().get("error") == "invalid_client",
        f"a replayed assertion: HTTP {again.status_code}: {again.text}",
    )

    # A secret for this client is no way in: it lists private_key_jwt only.
    try:
        OAuth2Session(client_id, "tkd_cs_" + "x" * 43, token_endpoint_auth_method="client_secret_basic").fetch_token(
            endpoint, grant_type="client_credentials")
        check(False, "a secret was accepted for a private_key_jwt client")
    except OAuthError as err:
        check(err.error == "invalid_client", f"secret for a private_key_jwt client: {err.error!r}")

    print("python private_key_jwt: OK: metadata lists private_key_jwt, CreateClient without a secret, "
          "token with Authlib's PrivateKeyJWT, replay refused, secret refused")


if __name__ == "__main__":
    main()
