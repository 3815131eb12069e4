"""A node's data directory: config file, secret key and database."""
from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx

from node.mail import MailSettings, parse_address

CONFIG_FILE = "config.toml"
SECRET_FILE = "secret.key"
DATABASE_FILE = "grassroots.db"


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    public_url: str
    secret_key: str
    # A federated listing its origin has not confirmed for this long is marked stale,
    # and for the longer period retired (removed).
    listing_stale_days: int = 7
    listing_retire_days: int = 30
    mail: MailSettings | None = None  # None: from noreply@ this node's host, as .eml files

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def mail_settings(self) -> MailSettings:
        return self.mail or MailSettings(default_from_address(self.public_url))

    def login_url(self, token: str) -> str:
        return f"{self.public_url}/login/link/{token}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


def is_initialised(data_dir: Path) -> bool:
    return (data_dir / CONFIG_FILE).exists()


def write_config(data_dir: Path, public_url: str) -> None:
    """Create the data directory's config and secret key (owner-only)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    url = public_url.rstrip("/").replace("\\", "\\\\").replace('"', '\\"')
    (data_dir / CONFIG_FILE).write_text(
        "# Grassroots node configuration\n"
        "# The address people and peer nodes use to reach this node.\n"
        f'public_url = "{url}"\n',
        encoding="utf-8",
    )
    secret = data_dir / SECRET_FILE
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))


def load_config(data_dir: Path, public_url: str | None = None) -> Config:
    with open(data_dir / CONFIG_FILE, "rb") as f:
        values = tomllib.load(f)
    secret_key = (data_dir / SECRET_FILE).read_text(encoding="utf-8").strip()
    # An international domain name as its ASCII (punycode) form, as ids carry it.
    url = str(httpx.URL(public_url or values["public_url"])).rstrip("/")
    return Config(
        data_dir=data_dir,
        public_url=url,
        secret_key=secret_key,
        listing_stale_days=_days(values, "listing_stale_days", 7),
        listing_retire_days=_days(values, "listing_retire_days", 30),
        mail=_mail(values.get("mail", {}), url),
    )


def _days(values: dict, key: str, default: int) -> int:
    value = values.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
        raise ValueError(f"{key} in {CONFIG_FILE} must be a whole number of days, 1 to 3650")
    return value


def default_from_address(public_url: str) -> str:
    host = httpx.URL(public_url).raw_host.decode("ascii")  # punycode, as mail wants it
    return f"Grassroots <noreply@{f'[{host}]' if ':' in host else host}>"  # IPv6: [::1]


MAIL_KEYS = {"from_address", "smtp_host", "smtp_port", "smtp_security", "smtp_username",
             "smtp_password"}
SMTP_SECURITY = ("starttls", "tls", "none")


def _mail(table: object, public_url: str) -> MailSettings:
    """The [mail] table, checked; no smtp_host means mail is written to files."""
    if not isinstance(table, dict):
        raise ValueError(f"mail in {CONFIG_FILE} must be a table: [mail]")
    unknown = sorted(set(table) - MAIL_KEYS)
    if unknown:
        raise ValueError(f"[mail] in {CONFIG_FILE} has unknown keys: {', '.join(unknown)}"
                         f" (known: {', '.join(sorted(MAIL_KEYS))})")
    for key, value in table.items():
        if key != "smtp_port" and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{key} in [mail] of {CONFIG_FILE} must be a non-empty string")
    from_address = table.get("from_address", default_from_address(public_url))
    try:
        parse_address(from_address)
    except ValueError:
        raise ValueError(f"from_address in [mail] of {CONFIG_FILE} must be one email address,"
                         ' such as "Grassroots <noreply@example.org>"') from None
    security = table.get("smtp_security", "starttls")
    if security not in SMTP_SECURITY:
        raise ValueError(f"smtp_security in [mail] of {CONFIG_FILE} must be one of: "
                         + ", ".join(SMTP_SECURITY))
    port = table.get("smtp_port", 465 if security == "tls" else 587)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"smtp_port in [mail] of {CONFIG_FILE} must be a port number,"
                         " 1 to 65535")
    if ("smtp_username" in table) != ("smtp_password" in table):
        raise ValueError(f"smtp_username and smtp_password in [mail] of {CONFIG_FILE}"
                         " go together")
    if "smtp_host" not in table and set(table) - {"from_address"}:
        raise ValueError(f"[mail] in {CONFIG_FILE} sets SMTP options but no smtp_host")
    return MailSettings(from_address, table.get("smtp_host"), port, security,
                        table.get("smtp_username"), table.get("smtp_password"))
