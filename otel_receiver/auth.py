"""Authentication of OTLP requests: API keys (stored as SHA-256) and JWT bearer tokens.

The tenant and actor of a request come from here and only from here; processors that
tag audit records read them from ``RequestContext``, never from span attributes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ApiKeyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_sha256: str | None = Field(default=None, description="hex SHA-256 of the key")
    key: str | None = Field(
        default=None, description="the key itself, e.g. ${env:KEY}; only its hash is kept"
    )
    tenant: str = Field(min_length=1)
    actor: str | None = None
    roles: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_of(self) -> ApiKeyConfig:
        if (self.key_sha256 is None) == (self.key is None):
            raise ValueError("give exactly one of key_sha256, key")
        if self.key_sha256 is not None:
            h = self.key_sha256.lower()
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ValueError("key_sha256 must be 64 hex characters")
        elif not self.key:
            raise ValueError("key is empty")
        return self

    def digest(self) -> bytes:
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        assert self.key is not None
        return hashlib.sha256(self.key.encode()).digest()


class JwtConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hs256_secret: str | None = None
    jwks_file: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    tenant_claim: str = "tenant"
    leeway_seconds: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtConfig:
        sources = [s for s in (self.hs256_secret, self.jwks_file, self.jwks_url) if s]
        if len(sources) != 1:
            raise ValueError("give exactly one of hs256_secret, jwks_file, jwks_url")
        return self


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_keys: list[ApiKeyConfig] = []
    jwt: JwtConfig | None = None

    @model_validator(mode="after")
    def _something(self) -> AuthConfig:
        if not self.api_keys and self.jwt is None:
            raise ValueError("auth needs api_keys or jwt")
        return self


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    actor: str | None
    roles: tuple[str, ...]


class AuthError(Exception):
    """Missing or invalid credentials. The message never contains the credential."""


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self._keys: dict[bytes, Principal] = {
            k.digest(): Principal(k.tenant, k.actor, k.roles) for k in config.api_keys
        }
        self._jwt = _JwtVerifier(config.jwt) if config.jwt else None

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """``headers`` with lowercase names (HTTP headers or gRPC metadata)."""
        token = headers.get("x-api-key")
        bearer = None
        authz = headers.get("authorization")
        if authz:
            scheme, _, value = authz.strip().partition(" ")
            if scheme.lower() == "bearer" and value:
                bearer = value.strip()
        if token is None and bearer is None:
            raise AuthError("missing credentials: send 'Authorization: Bearer <key>' or 'x-api-key'")
        for candidate in (token, bearer):
            if candidate is None:
                continue
            principal = self._keys.get(hashlib.sha256(candidate.encode()).digest())
            if principal is not None:
                return principal
        if bearer is not None and self._jwt is not None and bearer.count(".") == 2:
            return self._jwt.verify(bearer)
        raise AuthError("invalid credentials")


class _JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        try:
            import jwt  # PyJWT: the maintained JOSE implementation; we do not hand-roll signature checks
        except ImportError:
            raise RuntimeError("jwt auth needs PyJWT: pip install 'pyjwt[crypto]'") from None
        self._jwt = jwt
        self._config = config
        self._keys: list[Any] = []
        self._jwks_client: Any = None
        self._algorithms: list[str]
        if config.hs256_secret:
            self._keys = [config.hs256_secret]
            self._algorithms = ["HS256"]
        else:
            self._algorithms = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
            if config.jwks_file:
                jwks = json.loads(Path(config.jwks_file).read_text())
                self._keys = [jwt.PyJWK(k).key for k in jwks["keys"]]
            else:
                self._jwks_client = jwt.PyJWKClient(str(config.jwks_url), cache_keys=True)

    def verify(self, token: str) -> Principal:
        jwt = self._jwt
        c = self._config
        last: Exception | None = None
        keys = self._keys
        if self._jwks_client is not None:
            try:
                keys = [self._jwks_client.get_signing_key_from_jwt(token).key]
            except jwt.PyJWTError as e:
                raise AuthError(f"invalid token: {type(e).__name__}") from None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=self._algorithms,
                    audience=c.audience,
                    issuer=c.issuer,
                    leeway=c.leeway_seconds,
                    options={"require": ["exp"], "verify_aud": c.audience is not None},
                )
            except jwt.InvalidSignatureError as e:
                last = e
                continue
            except jwt.PyJWTError as e:
                raise AuthError(f"invalid token: {type(e).__name__}") from None
            tenant = claims.get(c.tenant_claim)
            if not isinstance(tenant, str) or not tenant:
                raise AuthError(f"token has no {c.tenant_claim!r} claim")
            actor = claims.get("preferred_username") or claims.get("sub")
            roles = (
                claims.get("realm_access", {}).get("roles", [])
                if isinstance(claims.get("realm_access"), dict)
                else []
            )
            return Principal(tenant, actor if isinstance(actor, str) else None, tuple(map(str, roles)))
        raise AuthError(f"invalid token: {type(last).__name__ if last else 'no key'}")
