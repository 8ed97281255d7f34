"""The typed, frozen settings tree (contract §2): TOML file + RECEIPTD_<SECTION>__<KEY> env.

`load_settings` reports every problem at once, each naming its key. Secrets are SecretStr,
so they never show in `repr` or logs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from entitlements.duration import Duration, parse_duration
from entitlements.outbox_signature import parse_key

SCOPES = ("customers:read", "purchases:write", "admin")
ENVIRONMENTS = ("Production", "Sandbox", "Xcode", "LocalTesting")
UNSIGNED_ENVIRONMENTS = ("Xcode", "LocalTesting")
_ENTITLEMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class ConfigError(Exception):
    """The configuration is invalid; the message names every offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    """[server]: listen address, worker processes, the embedded stores' data_dir and the
    shutdown grace period."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)  # processes serving the port (SO_REUSEPORT)
    data_dir: Path = Path(".receiptd")
    shutdown_timeout: float = Field(default=10.0, gt=0)


class DatabaseSettings(_Section):
    """[database]: the PostgreSQL URL (empty: the embedded one), the migration role's URL,
    whether to migrate at start, and the asyncpg pool."""

    url: SecretStr = SecretStr("")
    # The role that may create tables, for `receiptd migrate` (and for migrations at start);
    # empty: `url`. The runtime itself needs only DML on its tables.
    migration_url: SecretStr = SecretStr("")
    # false: serve and the other commands never migrate; they check the schema and refuse to
    # start, in one line, when it is behind or ahead of the code.
    migrate_on_start: bool = True
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    command_timeout: float = Field(default=10.0, gt=0)


class RedisSettings(_Section):
    """[redis]: the Redis URL (empty: the embedded one; `off`: no cache), the cache's TTL and
    the per-process cache."""

    url: SecretStr = SecretStr("")
    cache_ttl_seconds: int = Field(default=300, ge=1)
    # true: /readyz is 503 while Redis does not answer (else 200 with the reason in its body).
    required: bool = False
    # Per-process cache of rendered answers, kept coherent over Redis pub/sub (docs/
    # operations.md). false: every read asks Redis (no window at all for a lost message).
    local_cache: bool = True


class AppleApp(_Section):
    """[[apple.apps]]: one app of the team (several apps share one deployment)."""

    bundle_id: str = Field(min_length=1)
    app_apple_id: int | None = None


RefundPreference = Literal["decline", "grant_full", "grant_prorated", "none"]


class RefundRequestSettings(_Section):
    """[apple.refund_requests]: answering Apple's CONSUMPTION_REQUEST (a customer asked Apple
    for a refund) with consumption information before Apple's deadline."""

    answer: bool = False
    preference: RefundPreference = "decline"
    sample_content_provided: bool = True
    # Hold each answer this long so an operator can change its preference (at most until
    # shortly before Apple's deadline).
    delay_minutes: int = Field(default=0, ge=0, le=11 * 60)


class AppleSettings(_Section):
    """[apple]: the App Store (absent: disabled): the app (`bundle_id`, `app_apple_id`) or
    the apps (`[[apple.apps]]`), accepted environments, trusted roots and the App Store
    Server API credentials (one team key serves every app)."""

    # One app (the shorthand); several: `apps` instead. Exactly one of the two forms.
    bundle_id: str | None = Field(default=None, min_length=1)
    # Apple non-renewing subscriptions carry no expiry: access lasts this ISO 8601 duration
    # from the purchase. A product without one reads as lifetime (and is logged once).
    non_renewing_durations: dict[str, str] = Field(default_factory=dict)
    app_apple_id: int | None = None
    # Xcode / LocalTesting data is unsigned (Apple's library checks no signature): accepted
    # only when true, for development, and never together with Production. (Declared before
    # `environments`, whose validator reads it.)
    allow_xcode: bool = False
    environments: tuple[str, ...] = ("Production", "Sandbox")
    root_certificates: tuple[Path, ...] = ()
    online_checks: bool = False
    issuer_id: str = ""
    key_id: str = ""
    private_key_file: Path | None = None
    api_base_url: str = ""
    apps: tuple[AppleApp, ...] = ()
    refund_requests: RefundRequestSettings = RefundRequestSettings()

    @field_validator("environments")
    @classmethod
    def _known_environments(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        unknown = [v for v in value if v not in ENVIRONMENTS]
        if unknown or not value:
            raise ValueError(f"must be a non-empty list of {', '.join(ENVIRONMENTS)}")
        unsigned = [e for e in value if e in UNSIGNED_ENVIRONMENTS]
        if unsigned and not info.data.get("allow_xcode"):
            raise ValueError(
                f"{', '.join(unsigned)} data is unsigned (no signature is checked): listed "
                "only with apple.allow_xcode = true, in development"
            )
        if unsigned and "Production" in value:
            raise ValueError(
                f"{', '.join(unsigned)} (apple.allow_xcode) is never accepted together "
                "with Production"
            )
        return value

    @field_validator("non_renewing_durations")
    @classmethod
    def _iso_durations(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for product, text in value.items():
            if not product:
                problems.append("a product id is empty")
                continue
            try:
                parse_duration(text)
            except ValueError as exc:
                problems.append(f"{product}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def non_renewing_terms(self) -> dict[str, Duration]:
        """Product id → how long a non-renewing purchase of it gives access."""
        return {
            product: parse_duration(text) for product, text in self.non_renewing_durations.items()
        }

    @property
    def configured_apps(self) -> tuple[AppleApp, ...]:
        """Every app of the deployment: `[[apple.apps]]`, or the one app of the shorthand."""
        if self.apps:
            return self.apps
        assert self.bundle_id is not None  # the validator below guarantees one form
        return (AppleApp(bundle_id=self.bundle_id, app_apple_id=self.app_apple_id),)

    @model_validator(mode="after")
    def _production_needs_app_id(self) -> AppleSettings:
        if self.apps and (self.bundle_id is not None or self.app_apple_id is not None):
            raise ValueError(
                "apple.bundle_id / apple.app_apple_id (one app) and [[apple.apps]] (several) "
                "are exclusive: list every app under [[apple.apps]]"
            )
        if not self.apps and self.bundle_id is None:
            raise ValueError("apple.bundle_id is required (or [[apple.apps]] for several apps)")
        bundles = [a.bundle_id for a in self.configured_apps]
        repeated = sorted({b for b in bundles if bundles.count(b) > 1})
        if repeated:
            raise ValueError(f"[[apple.apps]] names {', '.join(repeated)} more than once")
        missing = [a.bundle_id for a in self.configured_apps if a.app_apple_id is None]
        if "Production" in self.environments and missing:
            where = "" if not self.apps else f" (apps {', '.join(missing)})"
            raise ValueError(f"app_apple_id is required when Production is accepted{where}")
        if self.allow_xcode and "Production" in self.environments:
            raise ValueError(
                "allow_xcode = true (unsigned Xcode data) is refused together with Production"
            )
        if not self.root_certificates:
            raise ValueError("root_certificates must name at least one certificate file")
        if self.refund_requests.answer and not self.api_configured:
            raise ValueError(
                "refund_requests.answer = true sends consumption information over the App "
                "Store Server API: issuer_id, key_id and private_key_file are required"
            )
        return self

    @property
    def api_configured(self) -> bool:
        """Whether the App Store Server API credentials (issuer, key id, key file) are set."""
        return bool(self.issuer_id and self.key_id and self.private_key_file)


class GoogleSettings(_Section):
    """[google]: Google Play (absent: disabled): package names, Play Developer API access,
    the Pub/Sub push identity and consumable products."""

    package_names: tuple[str, ...] = Field(min_length=1)
    service_account_file: Path | None = None
    play_api_url: str = ""
    # The push identity: without it no push could be authenticated.
    pubsub_audience: str = Field(min_length=1)
    pubsub_service_account: str = Field(min_length=1)
    pubsub_certs_url: str = ""
    consumable_products: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _credentials_or_local_fake(self) -> GoogleSettings:
        # Unauthenticated Play API calls are only answered by a local fake (tests, demo).
        if self.service_account_file is None and not is_loopback(self.play_api_url):
            raise ValueError(
                "service_account_file is required unless play_api_url points at 127.0.0.1"
            )
        return self


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine (127.0.0.1, localhost, ::1)."""
    return bool(url) and urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}


class EntitlementSettings(_Section):
    """[entitlements.<name>]: the product ids (of either store) that give entitlement
    `<name>`."""

    products: tuple[str, ...] = ()


class ApiKey(_Section):
    """One [[auth.api_keys]] table: a key's unique name, the key or its SHA-256 (exactly one)
    and its scopes."""

    name: str = Field(min_length=1)
    key: SecretStr | None = None
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    scopes: tuple[Literal["customers:read", "purchases:write", "admin"], ...] = ()

    @model_validator(mode="after")
    def _one_secret(self) -> ApiKey:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key or key_sha256")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("key must be at least 16 characters")
        return self


class UserTokenSettings(_Section):
    """App user tokens (contract §2): RS256/ES256 against a JWKS, or HS256 with a shared
    secret; either one enables them, and then `issuer` and `audience` are required."""

    # Declared before issuer/audience: their validators read these (pydantic's `info.data`).
    jwks_url: str = ""
    secret: SecretStr = SecretStr("")
    issuer: str = Field(default="", validate_default=True)
    # A safe default (contract §2: "every key has a safe default"): tokens must still carry
    # this `aud`; what is refused is an empty audience, which would accept tokens without one.
    audience: str = Field(default="receiptd", validate_default=True)

    @field_validator("jwks_url")
    @classmethod
    def _https_jwks(cls, value: str) -> str:
        # Keys fetched over plain HTTP could be swapped on the way: tokens forged at will.
        if value and not (value.startswith("https://") or is_loopback(value)):
            raise ValueError("must be an https:// URL (http:// only on 127.0.0.1)")
        return value

    @field_validator("secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        text = value.get_secret_value()
        if text and info.data.get("jwks_url"):
            raise ValueError("give either jwks_url or secret, not both")
        if text and len(text) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("issuer", "audience")
    @classmethod
    def _required_when_enabled(cls, value: str, info: ValidationInfo) -> str:
        secret = info.data.get("secret")
        enabled = info.data.get("jwks_url") or (secret is not None and secret.get_secret_value())
        if enabled and not value.strip():
            raise ValueError("required when user tokens are enabled (jwks_url or secret)")
        return value

    @property
    def enabled(self) -> bool:
        """Whether user tokens are accepted: a `jwks_url` or a `secret` is set."""
        return bool(self.jwks_url or self.secret.get_secret_value())


class RateLimitSettings(_Section):
    """Failed credentials per client address (contract §3: 429 with Retry-After); see
    api/rate_limit.py for the rule."""

    max_failures: int = Field(default=30, ge=1, le=10_000)  # within one window: then 429
    window_seconds: int = Field(default=300, ge=1, le=86_400)
    # Peers whose X-Forwarded-For names the client (the load balancer's addresses, CIDR);
    # empty: the socket peer is the client.
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        for n, text in enumerate(value):
            try:
                network = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                problems.append(f"entry {n}: not an address or CIDR network: {text!r}")
                continue
            if network.prefixlen == 0:
                problems.append(f"entry {n}: {text} would trust every client's X-Forwarded-For")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """`trusted_proxies` parsed as networks."""
        return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in self.trusted_proxies)


class AuthSettings(_Section):
    """[auth]: the API keys (unique names), [auth.user_tokens] and [auth.rate_limit]."""

    api_keys: tuple[ApiKey, ...] = ()
    user_tokens: UserTokenSettings = UserTokenSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()

    @field_validator("api_keys")
    @classmethod
    def _unique_names(cls, value: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
        names = [k.name for k in value]
        if len(names) != len(set(names)):
            raise ValueError("api key names must be unique")
        return value


class CustomerSettings(_Section):
    """[customers]: the transfer policy for a purchase submitted by another user (`transfer`,
    or `keep`: refused with 409)."""

    transfer_policy: Literal["transfer", "keep"] = "transfer"


class RetentionSettings(_Section):
    """[retention]: how many days raw store payloads are kept before they are pruned."""

    raw_payload_days: int = Field(default=90, ge=1)


class OutboundWebhook(_Section):
    """One [[webhooks.outbound]] table: an endpoint's http(s) URL and its signing secrets
    (`key_id:secret`; the first signs)."""

    url: SecretStr  # may carry credentials (user info, a token in the query)
    # "key_id:secret"; the first signs, receivers may accept any (rotation)
    secrets: tuple[SecretStr, ...] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^https?://[^/?#\s]+", value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("secrets")
    @classmethod
    def _key_id_and_secret(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        key_ids = []
        for n, entry in enumerate(value):
            try:  # the message names the entry, never the secret
                key = parse_key(entry.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"entry {n}: {exc}") from None
            if len(key.secret) < 16:
                raise ValueError(f"entry {n}: the secret must be at least 16 characters")
            key_ids.append(key.key_id)
        if len(key_ids) != len(set(key_ids)):
            raise ValueError("key ids must be unique")
        return value


class WebhookSettings(_Section):
    """[webhooks]: outbound delivery retries and timeout, and the [[webhooks.outbound]]
    endpoints (each url once)."""

    retry_initial_seconds: float = Field(default=5, gt=0)
    retry_max_seconds: float = Field(default=3600, gt=0)
    timeout_seconds: float = Field(default=10, gt=0)  # per delivery attempt
    outbound: tuple[OutboundWebhook, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSettings:
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("retry_max_seconds must not be below retry_initial_seconds")
        urls = [o.url.get_secret_value() for o in self.outbound]
        if len(urls) != len(set(urls)):
            raise ValueError("outbound: each url may be configured once")
        return self


class OfferSettings(_Section):
    """[offers.<name>]: an Apple promotional offer this service signs for the app, and who
    may have it: `lapsed` (had the entitlement of its products, none now, for at least
    `lapsed_days`), `active` (has it now) or `any`."""

    offer_id: str = Field(min_length=1, max_length=150)
    products: tuple[str, ...] = Field(min_length=1)
    eligible: Literal["lapsed", "active", "any"] = "lapsed"
    lapsed_days: int = Field(default=0, ge=0, le=3650)


class Settings(BaseSettings):
    """The whole configuration. Build with `load_settings`; tests may construct it directly."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="RECEIPTD_",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    apple: AppleSettings | None = None
    google: GoogleSettings | None = None
    entitlements: dict[str, EntitlementSettings] = Field(default_factory=dict)
    auth: AuthSettings = AuthSettings()
    customers: CustomerSettings = CustomerSettings()
    retention: RetentionSettings = RetentionSettings()
    webhooks: WebhookSettings = WebhookSettings()
    offers: dict[str, OfferSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _offer_products_give_entitlements(self) -> Settings:
        given = {p for e in self.entitlements.values() for p in e.products}
        for name, offer in self.offers.items():
            if not re.match(_ENTITLEMENT_NAME, name):
                raise ValueError(f"offers: invalid offer name {name!r}")
            stray = sorted(set(offer.products) - given)
            if stray:
                raise ValueError(
                    f"offers.{name}.products: {', '.join(stray)} give no configured "
                    "entitlement (eligibility is decided by the entitlement)"
                )
        return self

    @field_validator("entitlements")
    @classmethod
    def _entitlement_names(
        cls, value: dict[str, EntitlementSettings]
    ) -> dict[str, EntitlementSettings]:
        bad = [name for name in value if not re.match(_ENTITLEMENT_NAME, name)]
        if bad:
            raise ValueError(f"invalid entitlement name(s): {', '.join(bad)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' sources: only the values passed to the constructor."""
        # Only explicit values: `load_settings` merges file and environment itself, so
        # that a test constructing Settings(...) is never influenced by the process env.
        return (init_settings,)


def load_settings(
    path: str | Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Load the TOML file (path, else $RECEIPTD_CONFIG, else none) and the environment.

    Raises ConfigError naming every invalid or unknown key.
    """
    env = dict(os.environ if environ is None else environ)
    path = path or env.get("RECEIPTD_CONFIG") or None
    base = Path.cwd()
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        base = file.resolve().parent
        try:
            data = _read_toml(file)
        except ValueError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    _merge_env(data, env)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return _resolve_paths(settings, base)


def _read_toml(file: Path) -> dict[str, Any]:
    with file.open("rb") as fh:
        return tomllib.load(fh)


def _merge_env(data: dict[str, Any], env: dict[str, str]) -> None:
    for name, raw in env.items():
        upper = name.upper()
        if upper == "DATABASE_URL":
            data.setdefault("database", {})["url"] = raw
            continue
        if upper == "REDIS_URL":
            data.setdefault("redis", {})["url"] = raw
            continue
        if not upper.startswith("RECEIPTD_") or upper == "RECEIPTD_CONFIG":
            continue
        parts = [p.lower() for p in upper.removeprefix("RECEIPTD_").split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"environment variable {name}: expected RECEIPTD_<SECTION>__<KEY>")
        value: Any = raw
        if raw[:1] in "[{" or raw in ("true", "false"):
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {part} is not a section")
            node = child
        node[parts[-1]] = value


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def fix(p: Path | None) -> Path | None:
        if p is None or str(p) == "":
            return None
        return p if p.is_absolute() else (base / p).resolve()

    server = settings.server.model_copy(update={"data_dir": fix(settings.server.data_dir)})
    update: dict[str, Any] = {"server": server}
    if settings.apple is not None:
        update["apple"] = settings.apple.model_copy(
            update={
                "root_certificates": tuple(fix(p) for p in settings.apple.root_certificates),
                "private_key_file": fix(settings.apple.private_key_file),
            }
        )
    if settings.google is not None:
        certs_url = settings.google.pubsub_certs_url
        if certs_url.startswith("file:") and not certs_url.startswith("file:///"):
            # A relative file URL, like every relative path, is relative to the config file.
            certs_url = (base / certs_url.removeprefix("file:")).resolve().as_uri()
        update["google"] = settings.google.model_copy(
            update={
                "service_account_file": fix(settings.google.service_account_file),
                "pubsub_certs_url": certs_url,
            }
        )
    resolved = settings.model_copy(update=update)
    _check_files(resolved)
    return resolved


def _check_files(settings: Settings) -> None:
    """Files the stores need must exist at start-up, reported by key."""
    missing: list[str] = []
    if settings.apple is not None:
        for i, path in enumerate(settings.apple.root_certificates):
            if not path.is_file():
                missing.append(f"apple.root_certificates.{i}: file not found: {path}")
        key = settings.apple.private_key_file
        if key is not None and not key.is_file():
            missing.append(f"apple.private_key_file: file not found: {key}")
    if settings.google is not None:
        sa = settings.google.service_account_file
        if sa is not None and not sa.is_file():
            missing.append(f"google.service_account_file: file not found: {sa}")
    if missing:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(missing))
