"""A node's data directory: config file, secret key and database."""
from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx

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

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

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
    return Config(
        data_dir=data_dir,
        # An international domain name as its ASCII (punycode) form, as ids carry it.
        public_url=str(httpx.URL(public_url or values["public_url"])).rstrip("/"),
        secret_key=secret_key,
        listing_stale_days=_days(values, "listing_stale_days", 7),
        listing_retire_days=_days(values, "listing_retire_days", 30),
    )


def _days(values: dict, key: str, default: int) -> int:
    value = values.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
        raise ValueError(f"{key} in {CONFIG_FILE} must be a whole number of days, 1 to 3650")
    return value
