"""Authenticator: API keys by hash, JWT (HS256 and a JWKS file with RS256)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from otel_receiver.auth import ApiKeyConfig, AuthConfig, Authenticator, AuthError, JwtConfig

SECRET = "hs256-test-secret-of-at-least-32-bytes!"
WRONG_SECRET = "another-secret-that-is-long-enough-too"


def test_api_key_by_hash_or_value_and_header_forms() -> None:
    auth = Authenticator(
        AuthConfig(
            api_keys=[
                ApiKeyConfig(
                    key_sha256=hashlib.sha256(b"k1").hexdigest(),
                    tenant="acme",
                    actor="bot",
                    roles=("ingest",),
                ),
                ApiKeyConfig(key="k2", tenant="globex"),
            ]
        )
    )
    p = auth.authenticate({"authorization": "Bearer k1"})
    assert (p.tenant, p.actor, p.roles) == ("acme", "bot", ("ingest",))
    assert auth.authenticate({"x-api-key": "k2"}).tenant == "globex"
    assert auth.authenticate({"authorization": "bearer  k2 "}).tenant == "globex"
    with pytest.raises(AuthError, match="missing credentials"):
        auth.authenticate({})
    with pytest.raises(AuthError) as err:
        auth.authenticate({"x-api-key": "k3-secret"})
    assert "k3-secret" not in str(err.value)


def test_api_key_config_needs_exactly_one_form() -> None:
    with pytest.raises(ValueError):
        ApiKeyConfig(tenant="t")
    with pytest.raises(ValueError):
        ApiKeyConfig(key="a", key_sha256="0" * 64, tenant="t")
    with pytest.raises(ValueError):
        ApiKeyConfig(key_sha256="xyz", tenant="t")


def test_jwt_hs256_claims_map_to_principal() -> None:
    cfg = AuthConfig(jwt=JwtConfig(hs256_secret=SECRET, issuer="https://sso", audience="otel-receiver"))
    auth = Authenticator(cfg)
    now = int(time.time())
    claims = {
        "iss": "https://sso",
        "aud": "otel-receiver",
        "exp": now + 60,
        "sub": "u-1",
        "preferred_username": "alice",
        "tenant": "acme",
        "realm_access": {"roles": ["ingest", "admin"]},
    }
    p = auth.authenticate({"authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")})
    assert (p.tenant, p.actor, p.roles) == ("acme", "alice", ("ingest", "admin"))

    for bad in (
        {**claims, "exp": now - 3600},  # expired
        {**claims, "aud": "someone-else"},
        {**claims, "iss": "https://evil"},
    ):
        with pytest.raises(AuthError, match="invalid token"):
            auth.authenticate({"authorization": "Bearer " + jwt.encode(bad, SECRET, algorithm="HS256")})
    with pytest.raises(AuthError):
        auth.authenticate({"authorization": "Bearer " + jwt.encode(claims, WRONG_SECRET, algorithm="HS256")})
    no_tenant = {k: v for k, v in claims.items() if k != "tenant"}
    with pytest.raises(AuthError, match="tenant"):
        auth.authenticate({"authorization": "Bearer " + jwt.encode(no_tenant, SECRET, algorithm="HS256")})
    # alg=none must never be accepted
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(AuthError):
        auth.authenticate({"authorization": "Bearer " + unsigned})


def test_jwt_rs256_from_jwks_file(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "k1"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    auth = Authenticator(AuthConfig(jwt=JwtConfig(jwks_file=str(jwks), tenant_claim="org")))
    token = jwt.encode({"exp": int(time.time()) + 60, "sub": "svc", "org": "initech"}, key, algorithm="RS256")
    p = auth.authenticate({"authorization": f"Bearer {token}"})
    assert (p.tenant, p.actor) == ("initech", "svc")
