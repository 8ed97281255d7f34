"""Configuration (contract §2): TOML + environment, validation naming the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings

MINIMAL_APPLE = """
[apple]
bundle_id = "com.example.app"
environments = ["Sandbox"]
root_certificates = ["certs/root.der"]
"""


WEBHOOK = "[[webhooks.outbound]]\nurl = '{url}'\nsecrets = {secrets}\n"
URL = "https://billing.internal/receiptd"
GOOD = "['k2:0123456789abcdef']"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "receiptd.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    s = load_settings(None, {})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)
    assert s.apple is None
    assert s.google is None
    assert s.customers.transfer_policy == "transfer"
    assert s.retention.raw_payload_days == 90
    assert s.server.data_dir == Path.cwd() / ".receiptd"


def test_relative_paths_are_relative_to_the_config_folder(tmp_path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs/root.der").write_bytes(b"x")
    text = MINIMAL_APPLE + '[server]\ndata_dir = "data"\n'
    text += "[google]\npackage_names = ['p']\npubsub_certs_url = 'file:keys/certs.json'\n"
    text += "pubsub_audience = 'a'\npubsub_service_account = 'e'\nplay_api_url = 'http://127.0.0.1:1/'\n"
    s = load_settings(write(tmp_path, text), {})
    assert s.apple is not None
    assert s.apple.root_certificates == (tmp_path / "certs/root.der",)
    assert s.server.data_dir == tmp_path / "data"
    assert s.google is not None
    assert s.google.pubsub_certs_url == (tmp_path / "keys/certs.json").as_uri()


def test_missing_store_files_are_reported_by_key(tmp_path) -> None:
    text = MINIMAL_APPLE + "[google]\npackage_names = ['p']\nservice_account_file = 'sa.json'\n"
    text += "pubsub_audience = 'a'\npubsub_service_account = 'e'\n"
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), {})
    assert "apple.root_certificates.0: file not found" in str(err.value)
    assert "google.service_account_file: file not found" in str(err.value)


def test_environment_overrides_and_url_shortcuts(tmp_path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    s = load_settings(
        path,
        {
            "RECEIPTD_SERVER__PORT": "9100",
            "RECEIPTD_CUSTOMERS__TRANSFER_POLICY": "keep",
            "RECEIPTD_GOOGLE__PACKAGE_NAMES": '["com.example.app"]',
            "RECEIPTD_GOOGLE__PUBSUB_AUDIENCE": "https://receiptd.example/webhooks/google",
            "RECEIPTD_GOOGLE__PUBSUB_SERVICE_ACCOUNT": "push@example.iam.gserviceaccount.com",
            "RECEIPTD_GOOGLE__PLAY_API_URL": "http://127.0.0.1:9/",
            "DATABASE_URL": "postgresql://db/x",
            "REDIS_URL": "off",
        },
    )
    assert s.server.port == 9100
    assert s.customers.transfer_policy == "keep"
    assert s.google is not None
    assert s.google.package_names == ("com.example.app",)
    assert s.database.url.get_secret_value() == "postgresql://db/x"
    assert s.redis.url.get_secret_value() == "off"


def test_config_path_from_environment(tmp_path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    assert load_settings(None, {"RECEIPTD_CONFIG": str(path)}).server.port == 9001


SECRET_32 = "0123456789abcdef0123456789abcdef"
ISSUER_AUDIENCE = "issuer = 'https://id.example/'\naudience = 'receiptd'\n"
# [auth.user_tokens] (contract §2): once enabled, issuer and audience are required; the HS256
# secret has at least 32 characters; a JWKS or a secret, not both; the JWKS over https.
USER_TOKEN_PROBLEMS = [
    (
        f"[auth.user_tokens]\nsecret = '{SECRET_32}'\naudience = 'receiptd'\n",
        "auth.user_tokens.issuer: Value error, required when user tokens are enabled",
    ),
    (
        f"[auth.user_tokens]\nsecret = '{SECRET_32}'\nissuer = 'https://id.example/'\n"
        "audience = ''\n",
        "auth.user_tokens.audience: Value error, required when user tokens are enabled",
    ),
    (
        "[auth.user_tokens]\njwks_url = 'https://id.example/jwks'\nissuer = ' '\n",
        "auth.user_tokens.issuer",
    ),
    (
        f"[auth.user_tokens]\nsecret = '{SECRET_32[:31]}'\n{ISSUER_AUDIENCE}",
        "auth.user_tokens.secret: Value error, must be at least 32 characters",
    ),
    (
        f"[auth.user_tokens]\nsecret = '{SECRET_32}'\njwks_url = 'https://id.example/j'\n"
        + ISSUER_AUDIENCE,
        "auth.user_tokens.secret: Value error, give either jwks_url or secret, not both",
    ),
    (
        f"[auth.user_tokens]\njwks_url = 'http://id.example/jwks'\n{ISSUER_AUDIENCE}",
        "auth.user_tokens.jwks_url: Value error, must be an https:// URL",
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[server]\nprot = 1\n", {}, "server.prot: unknown key"),
        ("[sever]\nport = 1\n", {}, "sever: unknown key"),
        ("[server]\nport = 'x'\n", {}, "server.port"),
        ("[server]\nport = 70000\n", {}, "server.port"),
        ("", {"RECEIPTD_SERVER__PORT": "abc"}, "server.port"),
        ("", {"RECEIPTD_SERVER__BOGUS": "1"}, "server.bogus: unknown key"),
        ("[customers]\ntransfer_policy = 'steal'\n", {}, "customers.transfer_policy"),
        ("[apple]\nenvironments = ['Sandbox']\nroot_certificates=['r']\n", {}, "apple.bundle_id"),
        (MINIMAL_APPLE.replace('["Sandbox"]', '["Production"]'), {}, "app_apple_id"),
        (MINIMAL_APPLE.replace('["Sandbox"]', '["Prod"]'), {}, "apple.environments"),
        ("[google]\npackage_names = []\n", {}, "google.package_names"),
        ("[[auth.api_keys]]\nname='a'\nkey='short'\nscopes=['admin']\n", {}, "auth.api_keys.0"),
        ("[[auth.api_keys]]\nname='a'\nkey='x'*1\nscopes=['admin']\n", {}, "not valid TOML"),
        (
            "[[auth.api_keys]]\nname='a'\nkey='0123456789abcdefg'\nscopes=['root']\n",
            {},
            "auth.api_keys.0.scopes",
        ),
        ("[entitlements.'bad name']\nproducts=[]\n", {}, "entitlements"),
        ("[retention]\nraw_payload_days = 0\n", {}, "retention.raw_payload_days"),
        (WEBHOOK.format(url="ftp://h/x", secrets=GOOD), {}, "webhooks.outbound.0.url"),
        (WEBHOOK.format(url=URL, secrets="[]"), {}, "webhooks.outbound.0.secrets"),
        (
            WEBHOOK.format(url=URL, secrets="['no-key-id-0123456789']"),
            {},
            "webhooks.outbound.0.secrets: Value error, entry 0: a secret must be written "
            "key_id:secret",
        ),
        (
            WEBHOOK.format(url=URL, secrets="['k1:short']"),
            {},
            "entry 0: the secret must be at least 16 characters",
        ),
        (
            WEBHOOK.format(url=URL, secrets="['k1:0123456789abcdef', 'k1:fedcba9876543210']"),
            {},
            "webhooks.outbound.0.secrets: Value error, key ids must be unique",
        ),
        (
            WEBHOOK.format(url=URL, secrets=GOOD) + WEBHOOK.format(url=URL, secrets=GOOD),
            {},
            "webhooks: Value error, outbound: each url may be configured once",
        ),
        (
            "[webhooks]\nretry_initial_seconds = 60\nretry_max_seconds = 30\n",
            {},
            "retry_max_seconds must not be below retry_initial_seconds",
        ),
        ("[webhooks]\ntimeout_seconds = 0\n", {}, "webhooks.timeout_seconds"),
        (
            MINIMAL_APPLE + "non_renewing_durations = {'com.example.season' = '3 months'}\n",
            {},
            "apple.non_renewing_durations: Value error, com.example.season: '3 months'",
        ),
        *[(text, {}, named) for text, named in USER_TOKEN_PROBLEMS],
        (
            "",
            {"RECEIPTD_AUTH__USER_TOKENS__SECRET": "s" * 32},
            "auth.user_tokens.issuer: Value error, required when user tokens are enabled",
        ),
        ("[auth.rate_limit]\nmax_failures = 0\n", {}, "auth.rate_limit.max_failures"),
        ("[auth.rate_limit]\nwindow_seconds = 0\n", {}, "auth.rate_limit.window_seconds"),
        ("[auth.rate_limit]\nmax_fails = 3\n", {}, "auth.rate_limit.max_fails: unknown key"),
        (
            "[auth.rate_limit]\ntrusted_proxies = ['10.0.0.0/8', '10.0.0.0/33']\n",
            {},
            "auth.rate_limit.trusted_proxies: Value error, entry 1: not an address or CIDR",
        ),
        (
            "[auth.rate_limit]\ntrusted_proxies = ['0.0.0.0/0']\n",
            {},
            "would trust every client's X-Forwarded-For",
        ),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path, text, env, named) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env)
    assert named in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "[server]\nport='x'\nhots='y'\n"), {})
    assert "server.port" in str(err.value)
    assert "server.hots: unknown key" in str(err.value)


def test_missing_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", {})


def test_secrets_never_appear_in_repr(tmp_path) -> None:
    text = (
        "[database]\nurl = 'postgresql://u:hunter2pass@db/x'\n"
        "[[auth.api_keys]]\nname='a'\nkey='super-secret-key-123'\nscopes=['admin']\n"
        "[auth.user_tokens]\nsecret = 'jwt-shared-secret-xyz-0123456789abcdef'\n"
        + ISSUER_AUDIENCE
        + WEBHOOK.format(
            url="https://hook:basic-pw-123@b.internal/r?token=url-token-123",
            secrets="['k2:webhook-secret-0123', 'k1:older-secret-01234']",
        )
    )
    s = load_settings(write(tmp_path, text), {})
    shown = repr(s) + str(s)
    for secret in (
        "hunter2pass",
        "super-secret-key-123",
        "jwt-shared-secret-xyz-0123456789abcdef",
        "basic-pw-123",
        "url-token-123",
        "webhook-secret-0123",
        "older-secret-01234",
    ):
        assert secret not in shown
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, WEBHOOK.format(url=URL, secrets="['k1:shorty']")), {})
    assert "shorty" not in str(err.value)


def test_outbound_webhooks_from_file_and_environment(tmp_path) -> None:
    text = WEBHOOK.format(url=URL, secrets="['k2:0123456789abcdef', 'k1:fedcba9876543210']")
    s = load_settings(write(tmp_path, text), {"RECEIPTD_WEBHOOKS__RETRY_MAX_SECONDS": "600"})
    assert (s.webhooks.retry_initial_seconds, s.webhooks.retry_max_seconds) == (5, 600)
    assert s.webhooks.timeout_seconds == 10
    [endpoint] = s.webhooks.outbound
    assert endpoint.url.get_secret_value() == URL
    assert [x.get_secret_value() for x in endpoint.secrets] == [
        "k2:0123456789abcdef",
        "k1:fedcba9876543210",
    ]
    env = {
        "RECEIPTD_WEBHOOKS__OUTBOUND": '[{"url": "http://127.0.0.1:9/h", "secrets": '
        + '["k:0123456789abcdef"]}]'
    }
    assert len(load_settings(None, env).webhooks.outbound) == 1


def test_demo_configuration_loads_after_demo_init(tmp_path) -> None:
    from server.cli import main

    repo = Path(__file__).parents[2]
    (tmp_path / "demo").mkdir()
    shutil.copy(repo / "demo" / "receiptd.toml", tmp_path / "demo" / "receiptd.toml")
    assert main(["demo", "init", "--dir", str(tmp_path / ".receiptd" / "demo")]) == 0
    s = load_settings(tmp_path / "demo" / "receiptd.toml", {})
    assert "premium" in s.entitlements
    assert s.server.data_dir == tmp_path / ".receiptd"
    assert s.apple is not None
    assert s.apple.root_certificates[0].is_file()
    assert s.google is not None
    assert s.google.pubsub_certs_url.startswith("file:///")


def test_non_renewing_durations(tmp_path) -> None:
    text = MINIMAL_APPLE + "non_renewing_durations = {'com.example.season' = 'P3M'}\n"
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "root.der").write_bytes(b"root")
    apple = load_settings(write(tmp_path, text), {}).apple
    assert apple is not None
    assert {k: str(v) for k, v in apple.non_renewing_terms.items()} == {"com.example.season": "P3M"}


def test_user_tokens_off_by_default_and_valid_settings_load(tmp_path) -> None:
    s = load_settings(None, {})
    assert s.auth.user_tokens.enabled is False
    assert (s.auth.user_tokens.issuer, s.auth.user_tokens.audience) == ("", "receiptd")
    default_audience = f"[auth.user_tokens]\nsecret = '{SECRET_32}'\nissuer = 'https://i/'\n"
    assert load_settings(write(tmp_path, default_audience), {}).auth.user_tokens.audience == (
        "receiptd"
    )
    for source in ("secret = '" + SECRET_32 + "'", "jwks_url = 'https://id.example/jwks'"):
        text = f"[auth.user_tokens]\n{source}\n{ISSUER_AUDIENCE}"
        tokens = load_settings(write(tmp_path, text), {}).auth.user_tokens
        assert tokens.enabled is True
        assert (tokens.issuer, tokens.audience) == ("https://id.example/", "receiptd")
    local = "[auth.user_tokens]\njwks_url = 'http://127.0.0.1:8000/jwks'\n" + ISSUER_AUDIENCE
    assert load_settings(write(tmp_path, local), {}).auth.user_tokens.enabled


def test_rate_limit_defaults_and_trusted_proxies(tmp_path) -> None:
    limits = load_settings(None, {}).auth.rate_limit
    assert (limits.max_failures, limits.window_seconds, limits.trusted_proxies) == (30, 300, ())
    text = "[auth.rate_limit]\ntrusted_proxies = ['10.0.0.0/8', '192.0.2.1', 'fd00::/8']\n"
    env = {"RECEIPTD_AUTH__RATE_LIMIT__MAX_FAILURES": "50"}
    limits = load_settings(write(tmp_path, text), env).auth.rate_limit
    assert limits.max_failures == 50
    assert [str(n) for n in limits.proxy_networks] == ["10.0.0.0/8", "192.0.2.1/32", "fd00::/8"]


def test_the_demo_push_audience_is_the_one_simulate_signs_for() -> None:
    """`receiptd simulate google` signs for DEMO_AUDIENCE, a name rather than a URL, so the
    demo works on whatever port it serves (issue 25)."""
    import tomllib

    from simulators.simulate_google import DEMO_AUDIENCE

    demo = tomllib.loads((Path(__file__).parents[2] / "demo" / "receiptd.toml").read_text())
    assert demo["google"]["pubsub_audience"] == DEMO_AUDIENCE
    assert "://" not in DEMO_AUDIENCE
