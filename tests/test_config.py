"""Configuration that does what it says: config.toml, GRASSROOTS_… variables over it,
``grassroots config show|check|docs``, and a public URL that never goes stale."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from node.config import KEYS, config_docs, load_config, write_config
from tests.helpers import free_port, serving

ROOT = Path(__file__).resolve().parent.parent


def grassroots(*args: str | Path, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command, with only ``env`` as GRASSROOTS_… variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    return subprocess.run([sys.executable, "-m", "node.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**environ, **(env or {})})


@pytest.fixture
def node(tmp_path: Path) -> Path:
    data = tmp_path / "node"
    write_config(data, "https://node.example.org")
    return data


def add_to_config(data: Path, text: str) -> None:
    with open(data / "config.toml", "a", encoding="utf-8") as f:
        f.write(text)


def show(data: Path, env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """``config show`` as {key: (value, where from)}."""
    result = grassroots("config", "show", "--data", data, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        if line.startswith("secret key:"):
            continue
        key, value, source = re.split(r"\s{2,}", line)
        rows[key] = (value, source)
    return rows


# The environment over the file ------------------------------------------------------

def test_an_environment_variable_beats_the_file_and_config_show_says_where_each_came_from(
        node):
    add_to_config(node, "listing_stale_days = 10\n[mail]\nsmtp_host = \"smtp.example.org\"\n")
    rows = show(node, env={"GRASSROOTS_LISTING_STALE_DAYS": "3",
                           "GRASSROOTS_MAIL_SMTP_HOST": "relay.example.org",
                           "GRASSROOTS_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"})
    assert rows["listing_stale_days"] == ("3", "GRASSROOTS_LISTING_STALE_DAYS")
    assert rows["mail.smtp_host"] == ("relay.example.org", "GRASSROOTS_MAIL_SMTP_HOST")
    assert rows["trusted_proxies"] == ("10.0.0.0/8, 192.0.2.7/32", "GRASSROOTS_TRUSTED_PROXIES")
    assert rows["public_url"] == ("https://node.example.org", "config.toml")
    assert rows["listing_retire_days"] == ("30", "default")
    assert rows["mail.smtp_port"] == ("587", "default")
    assert set(rows) == {key.name for key in KEYS}

    config = load_config(node, environ={"GRASSROOTS_LISTING_STALE_DAYS": "3"})
    assert config.listing_stale_days == 3
    assert load_config(node, environ={}).listing_stale_days == 10


# A value for every key, as an environment variable writes it, and what it becomes.
ENV_SAMPLES = {
    "public_url": ("https://env.example.org/", "https://env.example.org"),
    "listing_stale_days": ("2", 2),
    "listing_retire_days": ("40", 40),
    "inbox_rate_per_second": ("5", 5),
    "inbox_burst": ("30", 30),
    "trusted_proxies": ("", ()),
    "backup_every_hours": ("6", 6),
    "backup_dir": ("/srv/backups", Path("/srv/backups")),
    "backup_keep": ("3", 3),
    "min_free_disk_mb": ("512", 512),
    "metrics_token": ("a-long-enough-metrics-token", "a-long-enough-metrics-token"),
    "log_format": ("json", "json"),
    "database_url": ("postgres://node@db.example.org/groups",
                     "postgres://node@db.example.org/groups"),
    "mail.from_address": ("Groups <groups@env.example.org>", "Groups <groups@env.example.org>"),
    "mail.smtp_host": ("smtp.env.example.org", "smtp.env.example.org"),
    "mail.smtp_port": ("2525", 2525),
    "mail.smtp_security": ("tls", "tls"),
    "mail.smtp_username": ("node", "node"),
    "mail.smtp_password": ("s3cret", "s3cret"),
}


def test_every_key_can_be_set_from_the_environment(node):
    assert set(ENV_SAMPLES) == {key.name for key in KEYS}, "a key without a sample here"
    # Scheduled backups are of the SQLite file: a PostgreSQL URL is set without them.
    for left_out in ("database_url", "backup_every_hours"):
        keys = [key for key in KEYS if key.name != left_out]
        config = load_config(node, environ={key.env: ENV_SAMPLES[key.name][0] for key in keys})
        for key in keys:
            owner = config.mail_settings if key.table == "mail" else config
            assert getattr(owner, key.field) == ENV_SAMPLES[key.name][1], key.name


def test_secrets_are_never_printed(node):
    add_to_config(node, '[mail]\nsmtp_host = "smtp.example.org"\nsmtp_username = "node"\n'
                        'smtp_password = "file-password-123"\n')
    secret_key = (node / "secret.key").read_text().strip()
    env = {"GRASSROOTS_METRICS_TOKEN": "env-token-abcdefghijkl",
           "GRASSROOTS_DATABASE_URL": "postgresql://node:db-password-456@db.example.org/g"}
    for command in (("config", "show"), ("config", "check")):
        result = grassroots(*command, "--data", node, env=env)
        assert result.returncode == 0, result.stderr
        printed = result.stdout + result.stderr
        for secret in ("file-password-123", "env-token-abcdefghijkl", "db-password-456",
                       secret_key):
            assert secret not in printed
    rows = show(node, env=env)
    assert rows["mail.smtp_password"] == ("(set, not shown)", "config.toml")
    assert rows["metrics_token"] == ("(set, not shown)", "GRASSROOTS_METRICS_TOKEN")
    assert "file-password-123" not in repr(load_config(node))


def test_an_empty_database_url_means_the_sqlite_file_in_the_data_directory(node):
    assert load_config(node, environ={"GRASSROOTS_DATABASE_URL": ""}).database_url is None
    add_to_config(node, 'database_url = "postgresql://node@db.example.org/groups"\n')
    assert load_config(node).database_url == "postgresql://node@db.example.org/groups"


# config check ------------------------------------------------------------------------

def test_config_check_passes_a_good_configuration(node):
    result = grassroots("config", "check", "--data", node)
    assert (result.returncode, result.stderr) == (0, "")
    assert "is valid" in result.stdout


@pytest.mark.parametrize("file_text, env, complaints", [
    ("listing_stale_days = 0\n", {},
     ["listing_stale_days in config.toml must be a whole number of days, 1 to 3650"]),
    ("", {"GRASSROOTS_MAIL_SMTP_HOST": "smtp.example.org",
          "GRASSROOTS_MAIL_SMTP_PORT": "smtp"},
     ["GRASSROOTS_MAIL_SMTP_PORT must be a port number, 1 to 65535"]),
    ("listing_stale_dayz = 5\n", {}, ["config.toml has unknown keys: listing_stale_dayz"]),
    ('trusted_proxies = ["127.0.0.1", "proxy.example.org"]\n', {},
     [("trusted_proxies in config.toml must be a list of addresses or networks:"
       " 'proxy.example.org' is neither")]),
    ("", {"GRASSROOTS_PUBLIC_URL": "support.example.org/groups"},
     ["GRASSROOTS_PUBLIC_URL must be the node's address"]),
    ('database_url = "sqlite:///srv/node.db"\n', {},
     ["database_url in config.toml must be empty (SQLite) or a PostgreSQL URL"]),
    ('log_format = "xml"\nbackup_keep = 0\n[mail]\nsmtp_host = "smtp.example.org"\n',
     {"GRASSROOTS_MAIL_SMTP_USERNAME": "node"},
     ["log_format in config.toml must be one of: text, json",
      "backup_keep in config.toml must be a whole number, 1 to 10000",
      "smtp_username and smtp_password go together"]),
])
def test_config_check_explains_every_problem_and_exits_1(node, file_text, env, complaints):
    add_to_config(node, file_text)
    result = grassroots("config", "check", "--data", node, env=env)
    assert result.returncode == 1
    for complaint in complaints:
        assert complaint in result.stderr
    assert len(result.stderr.strip().splitlines()) == len(complaints)
    served = grassroots("serve", "--data", node, "--port", str(free_port()), env=env)
    assert served.returncode == 1 and complaints[0] in served.stderr  # and it never starts


def test_config_check_notes_a_variable_that_is_no_key(node):
    result = grassroots("config", "check", "--data", node,
                        env={"GRASSROOTS_LISTING_STALE_DAZE": "3"})
    assert result.returncode == 0
    assert "note: GRASSROOTS_LISTING_STALE_DAZE is not a configuration key" in result.stdout


def test_config_check_of_a_directory_that_is_not_a_node(tmp_path):
    result = grassroots("config", "check", "--data", tmp_path / "nothing")
    assert result.returncode == 1 and "not a Grassroots data directory" in result.stderr


# The documentation --------------------------------------------------------------------

def test_the_readme_configuration_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    generated = config_docs()
    begin, end = generated.splitlines()[0], generated.rstrip().splitlines()[-1]
    assert begin in readme and end in readme, (
        "README.md has no configuration table; paste in the output of: grassroots config docs")
    found = readme[readme.index(begin):readme.index(end) + len(end)] + "\n"
    assert found == generated, "README.md's configuration table is out of date; replace it" \
                               " with the output of: grassroots config docs"


def test_config_docs_names_every_key_and_its_variable():
    result = grassroots("config", "docs")
    assert result.returncode == 0
    for key in KEYS:
        assert f"`{key.env}`" in result.stdout
    assert "| `[mail]` `smtp_host` | `GRASSROOTS_MAIL_SMTP_HOST` |" in result.stdout


# The public URL and serve's --host and --port ---------------------------------------------

def test_a_derived_public_url_follows_a_new_port(tmp_path):
    data = tmp_path / "node"
    first = free_port()
    assert grassroots("init", "--data", data, "--port", first).returncode == 0
    assert f'public_url = "http://127.0.0.1:{first}"' in (data / "config.toml").read_text()

    second = free_port()
    with serving(data, port=second) as (url, output):
        actor = httpx.get(url + "/actor", headers={"Accept": "application/activity+json"})
        assert actor.json()["id"] == f"http://127.0.0.1:{second}/actor"
    assert f"public_url in {data}/config.toml is now http://127.0.0.1:{second}" \
           f" (was http://127.0.0.1:{first})" in "".join(output)
    assert load_config(data, environ={}).public_url == f"http://127.0.0.1:{second}"
    # Still derived: it follows again.
    with serving(data, port=first):
        pass
    assert load_config(data, environ={}).public_url == f"http://127.0.0.1:{first}"


# A proxy's address in front: another host, or this one without a port of its own.
@pytest.mark.parametrize("by_hand", ["https://support.example.org", "http://127.0.0.1"])
def test_a_public_url_set_by_hand_is_never_rewritten(tmp_path, by_hand):
    data = tmp_path / "node"
    port = free_port()
    assert grassroots("init", "--data", data, "--port", port).returncode == 0
    text = (data / "config.toml").read_text().replace(
        f'public_url = "http://127.0.0.1:{port}"', f'public_url = "{by_hand}"')
    (data / "config.toml").write_text(text)
    with serving(data, port=free_port()) as (_, output):
        assert f"Serving {by_hand} on" in "".join(output)
    assert load_config(data, environ={}).public_url == by_hand


def test_an_explicit_public_url_at_another_port_refuses_to_start_and_says_how_to_set_it(
        tmp_path):
    data = tmp_path / "node"
    old, new = free_port(), free_port()
    assert grassroots("init", "--data", data, "--url", f"http://127.0.0.1:{old}").returncode == 0
    before = (data / "config.toml").read_text()

    refused = grassroots("serve", "--data", data, "--port", new)
    assert refused.returncode == 1
    assert f"public_url in {data}/config.toml is http://127.0.0.1:{old}, but this node is" \
           f" to listen on port {new}" in refused.stderr
    for way in (f"--url http://127.0.0.1:{new}", "GRASSROOTS_PUBLIC_URL", "config.toml"):
        assert way in refused.stderr
    assert (data / "config.toml").read_text() == before

    with serving(data, "--url", f"http://127.0.0.1:{new}", port=new) as (_, output):
        assert f"Serving http://127.0.0.1:{new}" in "".join(output)
    assert (data / "config.toml").read_text() == before  # --url is for that run only
