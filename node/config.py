"""A node's data directory: config file, secret key and database.

Every configuration key is declared once, in ``KEYS``: config.toml is read and
checked with it, each key can be set instead by an environment variable
(``GRASSROOTS_<KEY>``, ``GRASSROOTS_MAIL_<KEY>`` for the ``[mail]`` table; the
environment wins), and ``grassroots config show`` and the README's table
(``grassroots config docs``) are made from it.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from node.mail import MailSettings, parse_address

CONFIG_FILE = "config.toml"
SECRET_FILE = "secret.key"
DATABASE_FILE = "grassroots.db"
ENV_PREFIX = "GRASSROOTS_"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))
# Per peer host. A neighbourhood's peers send a few activities a minute; at this rate one
# peer's flood of meetings to apply takes about 5% of a core.
INBOX_RATE_PER_SECOND = 20
INBOX_BURST = 100


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    public_url: str
    secret_key: str = field(repr=False)
    # A federated listing its origin has not confirmed for this long is marked stale,
    # and for the longer period retired (removed).
    listing_stale_days: int = 7
    listing_retire_days: int = 30
    inbox_rate_per_second: int = INBOX_RATE_PER_SECOND
    inbox_burst: int = INBOX_BURST
    mail: MailSettings | None = None  # None: from noreply@ this node's host, as .eml files
    trusted_proxies: tuple[Network, ...] = LOOPBACK
    backup_dir: Path = Path("backups")  # relative to data_dir unless absolute
    backup_every_hours: int = 0  # 0: no scheduled backups
    backup_keep: int = 7
    min_free_disk_mb: int = 100  # /readyz fails with less free in the data directory
    metrics_token: str | None = field(default=None, repr=False)  # /metrics beyond loopback
    log_format: str = "text"  # or "json": one object a line
    database_url: str | None = field(default=None, repr=False)  # None: the SQLite file

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def database(self) -> Path | str:
        """Where the node's data is: the PostgreSQL URL, or else the SQLite file."""
        return self.database_url or self.db_path

    @property
    def backup_path(self) -> Path:
        return self.data_dir / self.backup_dir

    @property
    def mail_settings(self) -> MailSettings:
        return self.mail or MailSettings(default_from_address(self.public_url))

    def login_url(self, token: str) -> str:
        return f"{self.public_url}/login/link/{token}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


# The keys ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Kind:
    """How a key's value is written, read from the environment and checked."""

    words: str  # as the docs name it
    check: Callable[[object], object]  # a config.toml value -> the value used; ValueError: why not
    from_text: Callable[[str], object] = str  # an environment variable -> a config.toml value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _whole(low: int, high: int, what: str = "a whole number") -> Kind:
    complaint = f"must be {what}, {low} to {high}"

    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(complaint)
        return value

    return Kind("whole number", check,
                lambda text: int(text) if re.fullmatch(r"\s*-?\d+\s*", text) else text)


def _choice(*options: str) -> Kind:
    def check(value: object) -> str:
        if value not in options:
            raise ValueError("must be one of: " + ", ".join(options))
        return value  # type: ignore[return-value]

    return Kind(" or ".join(f'"{o}"' for o in options), check)


def _public_url(value: object) -> str:
    complaint = "must be the node's address, such as https://support.example.org"
    try:
        # An international domain name as its ASCII (punycode) form, as ids carry it.
        url = httpx.URL(value.strip() if isinstance(value, str) else "")
    except httpx.InvalidURL:
        raise ValueError(complaint) from None
    if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment \
            or url.path not in ("", "/"):
        raise ValueError(complaint + " (http or https, no path)")
    return str(url).rstrip("/")


def _networks(value: object) -> tuple[Network, ...]:
    items = value if isinstance(value, list | tuple) else None
    if items is None:
        raise ValueError('must be a list of addresses or networks, such as'
                         ' ["127.0.0.1", "10.0.0.0/8"]')
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"must be a list of addresses or networks: {str(item)[:60]!r}"
                             " is neither") from None
    return tuple(networks)


def _email(value: object) -> str:
    try:
        parse_address(_text(value))
    except ValueError:
        raise ValueError('must be one email address, such as'
                         ' "Grassroots <noreply@example.org>"') from None
    return value  # type: ignore[return-value]


TEXT = Kind("text", _text)
EMAIL = Kind("email address", _email)
URL = Kind("URL", _public_url)
NETWORKS = Kind("list of addresses or networks (CIDR); in the environment, comma-separated",
                _networks, lambda text: [p for p in text.split(",") if p.strip()])
DAYS = _whole(1, 3650, "a whole number of days")


def _token(value: object) -> str:
    if not isinstance(value, str) or len(value.strip()) < 16 or value != value.strip():
        raise ValueError("must be at least 16 characters, without spaces around them")
    return value


TOKEN = Kind("text, at least 16 characters", _token)


def _database_url(value: object) -> str | None:
    if isinstance(value, str) and not value.strip():
        return None  # the SQLite file in the data directory
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise ValueError('must be empty (SQLite) or a PostgreSQL URL, such as'
                         ' "postgresql://grassroots@localhost/grassroots"')
    return value


DATABASE_URL = Kind("PostgreSQL URL, or empty", _database_url)
SMTP_SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key."""

    name: str  # as in config.toml; "mail.smtp_host" is smtp_host in the [mail] table
    kind: Kind
    default: object  # None: not set unless given (``default_text`` says what happens then)
    description: str
    secret: bool = False  # never printed
    default_text: str = ""  # the default in words, where it depends on something else

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.replace(".", "_").upper()

    @property
    def table(self) -> str | None:
        return self.name.partition(".")[0] if "." in self.name else None

    @property
    def field(self) -> str:
        return self.name.rpartition(".")[2]

    def where(self, source: str) -> str:
        """Where a value came from, to say what is wrong with it."""
        if source == "environment":
            return self.env
        if source == "config.toml":
            return (f"{self.field} in [{self.table}] of {CONFIG_FILE}" if self.table
                    else f"{self.name} in {CONFIG_FILE}")
        return source


KEYS: tuple[Key, ...] = (
    Key("public_url", URL, None,
        "The address people and peer nodes use to reach this node (https://… behind a TLS"
        " proxy). Peers know the node by it: change it only before federating.",
        default_text="`http://HOST:PORT` of the first `serve` or `init`, kept in step with"
                     " `--host` and `--port` until set"),
    Key("listing_stale_days", DAYS, 7,
        "A peer's listing its origin has not confirmed for this many days is marked stale."),
    Key("listing_retire_days", DAYS, 30,
        "A peer's listing its origin has not confirmed for this many days is removed."),
    Key("inbox_rate_per_second", _whole(1, 10_000), INBOX_RATE_PER_SECOND,
        "How many activities a second each peer host may send to the inbox, sustained. Past"
        " it the peer is answered 429 with `Retry-After` and delivers later."),
    Key("inbox_burst", _whole(1, 100_000), INBOX_BURST,
        "How many activities a peer host may send at once before `inbox_rate_per_second`"
        " holds it back."),
    Key("trusted_proxies", NETWORKS, ["127.0.0.0/8", "::1"],
        "Reverse proxies whose `X-Forwarded-For` (else `Forwarded`) and `X-Forwarded-Proto`"
        " headers are believed: the client address (for rate limits) and scheme are taken"
        " from them only for requests from these addresses. `[]` believes no one."),
    Key("backup_every_hours", _whole(0, 8760), 0,
        "While serving, take a backup this often into `backup_dir` (0: never)."),
    Key("backup_dir", TEXT, "backups",
        "Where scheduled backups (and `grassroots backup` without a file) go; relative to the"
        " data directory unless absolute. Better on another disk."),
    Key("backup_keep", _whole(1, 10000), 7,
        "How many backups to keep in `backup_dir`; the oldest beyond are deleted."),
    Key("min_free_disk_mb", _whole(0, 1_000_000_000), 100,
        "`/readyz` answers 503 while the data directory's disk has less than this many MB"
        " free."),
    Key("metrics_token", TOKEN, None,
        "`/metrics` is served to loopback clients, and to any client that sends"
        " `Authorization: Bearer` and this token.", secret=True,
        default_text="none: loopback only"),
    Key("log_format", _choice("text", "json"), "text",
        "`text`, or `json` for one JSON object a line (for a log collector)."),
    Key("database_url", DATABASE_URL, None,
        "Empty: the node's SQLite database, `grassroots.db` in the data directory."
        " `postgresql://USER:PASSWORD@HOST/DATABASE`: a PostgreSQL 15+ database instead"
        " (see Running a hub on PostgreSQL).", secret=True,
        default_text="empty: SQLite"),
    Key("mail.from_address", EMAIL, None, "The sender of the node's mail.",
        default_text="`Grassroots <noreply@HOST>`"),
    Key("mail.smtp_host", TEXT, None,
        "The SMTP server to send through; without it, mail is written to `DATA/mail/*.eml`."),
    Key("mail.smtp_port", _whole(1, 65535, "a port number"), None, "The SMTP server's port.",
        default_text="587, or 465 with `tls`"),
    Key("mail.smtp_security", _choice(*SMTP_SECURITY), "starttls",
        "`starttls`, `tls` (implicit TLS) or `none`; never falls back to plain text."),
    Key("mail.smtp_username", TEXT, None, "The SMTP login, with `smtp_password`."),
    Key("mail.smtp_password", TEXT, None, "The SMTP password, with `smtp_username`.",
        secret=True),
)
BY_NAME = {key.name: key for key in KEYS}
TABLES = {key.table for key in KEYS if key.table}


# Reading the configuration ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Setting:
    key: Key
    value: object  # as checked; None when not set and without a default
    source: str  # "default", "config.toml", "environment" or "--url"

    def shown(self) -> str:
        """The value as ``config show`` prints it: secrets never."""
        if self.value is None:
            return "-"
        if self.key.secret:
            return "(set, not shown)"
        if isinstance(self.value, tuple | list):
            return ", ".join(map(str, self.value)) or "(none)"
        return str(self.value)


class ConfigError(ValueError):
    """A configuration that cannot be used; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def _file_values(data_dir: Path, problems: list[str]) -> dict[str, object]:
    """config.toml as flat key names ("mail.smtp_host"), unknown keys reported."""
    try:
        with open(data_dir / CONFIG_FILE, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        problems.append(f"{data_dir / CONFIG_FILE} is missing")
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        problems.append(f"{CONFIG_FILE} is not valid TOML: {e}")
        return {}
    values: dict[str, object] = {}
    unknown = []
    for name, value in document.items():
        if name in TABLES:
            if not isinstance(value, dict):
                problems.append(f"{name} in {CONFIG_FILE} must be a table: [{name}]")
                continue
            known = sorted(k.field for k in KEYS if k.table == name)
            odd = sorted(set(value) - set(known))
            if odd:
                problems.append(f"[{name}] in {CONFIG_FILE} has unknown keys: {', '.join(odd)}"
                                f" (known: {', '.join(known)})")
            values.update({f"{name}.{k}": v for k, v in value.items() if k in known})
        elif name in BY_NAME:
            values[name] = value
        else:
            unknown.append(name)
    if unknown:
        problems.append(f"{CONFIG_FILE} has unknown keys: {', '.join(sorted(unknown))}"
                        " (all keys: grassroots config docs)")
    return values


def read_settings(data_dir: Path, public_url: str | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[dict[str, Setting], list[str]]:
    """Every key's value and where it came from (``--url`` > environment > config.toml >
    default), and what is wrong with them."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    found = _file_values(data_dir, problems)
    settings: dict[str, Setting] = {}
    for key in KEYS:
        if key.name == "public_url" and public_url is not None:
            source, raw = "--url", public_url
        elif key.env in environ:
            source, raw = "environment", key.kind.from_text(environ[key.env])
        elif key.name in found:
            source, raw = "config.toml", found[key.name]
        else:
            settings[key.name] = Setting(key, key.kind.check(key.default)
                                         if key.default is not None else None, "default")
            continue
        try:
            settings[key.name] = Setting(key, key.kind.check(raw), source)
        except ValueError as e:
            problems.append(f"{key.where(source)} {e}")
            settings[key.name] = Setting(key, None, source)
    _check_together(settings, problems)
    return settings, problems


def _check_together(settings: dict[str, Setting], problems: list[str]) -> None:
    """What holds between keys; the defaults that depend on other keys, filled in."""
    url = settings["public_url"]
    if url.value is None and url.source == "default":
        problems.append(f"public_url is not set: set it in {CONFIG_FILE}, with"
                        f" {url.key.env} or with --url")
    if settings["listing_retire_days"].value is not None and \
            settings["listing_stale_days"].value is not None and \
            settings["listing_retire_days"].value < settings["listing_stale_days"].value:
        problems.append("listing_retire_days must not be shorter than listing_stale_days")
    if settings["database_url"].value and settings["backup_every_hours"].value:
        problems.append("backup_every_hours backs up the SQLite database, and database_url"
                        " puts the node's data in PostgreSQL: back that up with PostgreSQL's"
                        " own tools (pg_dump) and leave backup_every_hours at 0")

    def default(name: str, value: object) -> None:
        if settings[name].source == "default":
            settings[name] = Setting(BY_NAME[name], value, "default")

    if url.value is not None:
        default("mail.from_address", default_from_address(str(url.value)))
    default("mail.smtp_port", 465 if settings["mail.smtp_security"].value == "tls" else 587)
    if (settings["mail.smtp_username"].source == "default") != \
            (settings["mail.smtp_password"].source == "default"):
        problems.append("[mail] smtp_username and smtp_password go together: set both or"
                        " neither")
    smtp_options = ("mail.smtp_port", "mail.smtp_security", "mail.smtp_username",
                    "mail.smtp_password")
    if settings["mail.smtp_host"].source == "default" and any(
            settings[name].source != "default" for name in smtp_options):
        problems.append("[mail] sets SMTP options but no smtp_host")


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """GRASSROOTS_… variables that are no configuration key (a typo, most likely)."""
    environ = os.environ if environ is None else environ
    known = {key.env for key in KEYS}
    return sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)


def _read_secret(data_dir: Path, problems: list[str]) -> str:
    try:
        secret = (data_dir / SECRET_FILE).read_text(encoding="utf-8").strip()
    except OSError as e:
        problems.append(f"{data_dir / SECRET_FILE} cannot be read ({e.strerror})")
        return ""
    if not secret:
        problems.append(f"{data_dir / SECRET_FILE} is empty")
    return secret


def check_config(data_dir: Path, public_url: str | None = None,
                 environ: Mapping[str, str] | None = None) -> list[str]:
    """Everything wrong with the configuration, the secret key included."""
    _, problems = read_settings(data_dir, public_url, environ)
    _read_secret(data_dir, problems)
    return problems


def load_config(data_dir: Path, public_url: str | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """The configuration in effect; ConfigError (a ValueError) says what is wrong."""
    settings, problems = read_settings(data_dir, public_url, environ)
    secret_key = _read_secret(data_dir, problems)
    if problems:
        raise ConfigError(problems)
    value = {name: setting.value for name, setting in settings.items()}
    return Config(
        data_dir=data_dir,
        public_url=value["public_url"],
        secret_key=secret_key,
        listing_stale_days=value["listing_stale_days"],
        listing_retire_days=value["listing_retire_days"],
        inbox_rate_per_second=value["inbox_rate_per_second"],
        inbox_burst=value["inbox_burst"],
        mail=MailSettings(value["mail.from_address"], value["mail.smtp_host"],
                          value["mail.smtp_port"], value["mail.smtp_security"],
                          value["mail.smtp_username"], value["mail.smtp_password"]),
        trusted_proxies=value["trusted_proxies"],
        backup_dir=Path(value["backup_dir"]),
        backup_every_hours=value["backup_every_hours"],
        backup_keep=value["backup_keep"],
        min_free_disk_mb=value["min_free_disk_mb"],
        metrics_token=value["metrics_token"],
        log_format=value["log_format"],
        database_url=value["database_url"],
    )


def default_from_address(public_url: str) -> str:
    host = httpx.URL(public_url).raw_host.decode("ascii")  # punycode, as mail wants it
    return f"Grassroots <noreply@{f'[{host}]' if ':' in host else host}>"  # IPv6: [::1]


# The documentation -----------------------------------------------------------------

DOCS_BEGIN = "<!-- configuration keys: generated by `grassroots config docs` -->"
DOCS_END = "<!-- end of configuration keys -->"


def _toml(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def config_docs() -> str:
    """The Markdown table of every key, as the README carries it."""
    lines = [DOCS_BEGIN, "",
             "| Key | Environment variable | Type | Default | What it does |",
             "|---|---|---|---|---|"]
    for key in KEYS:
        name = f"`[{key.table}]` `{key.field}`" if key.table else f"`{key.name}`"
        default = key.default_text or ("none" if key.default is None
                                       else f"`{_toml(key.default)}`")
        description = key.description + (" Secret: never printed." if key.secret else "")
        lines.append(
            f"| {name} | `{key.env}` | {key.kind.words} | {default} | {description} |")
    return "\n".join([*lines, "", DOCS_END]) + "\n"


# The data directory --------------------------------------------------------------

def is_initialised(data_dir: Path) -> bool:
    return (data_dir / CONFIG_FILE).exists()


def serve_url(host: str, port: int) -> str:
    """The address ``serve --host H --port P`` answers on."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# While config.toml's public_url equals the address on this line, it was derived from
# serve's --host and --port, and follows them.
DERIVED = re.compile(r"^# derived from --host and --port: (\S+)$", re.MULTILINE)
PUBLIC_URL_LINE = re.compile(r"^public_url\s*=.*$", re.MULTILINE)


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(data_dir: Path, public_url: str, derived: bool = False) -> None:
    """Create the data directory's config and secret key (owner-only).

    ``derived``: the URL was made from serve's --host and --port, and follows them.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    url = public_url.rstrip("/")
    about_url = (
        "# The address people and peer nodes use to reach this node, made from --host and\n"
        "# --port: while it equals the address on the next line, serve keeps it in step.\n"
        f"# derived from --host and --port: {url}\n" if derived else
        "# The address people and peer nodes use to reach this node.\n")
    (data_dir / CONFIG_FILE).write_text(
        "# Grassroots node configuration. Every key, and the GRASSROOTS_... environment\n"
        "# variable that sets it instead: grassroots config docs. In effect: config show.\n"
        + about_url + f"public_url = {_toml_string(url)}\n",
        encoding="utf-8",
    )
    secret = data_dir / SECRET_FILE
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def follow_serve_address(data_dir: Path, host: str, port: int) -> str | None:
    """Keep config.toml's public_url in step with serve's --host and --port.

    A derived URL is rewritten (the message to print is returned); a URL set by
    hand that names this very host with another port raises ConfigError, rather than
    serve under an address nothing answers on. Anything else is left as it is.
    """
    path = data_dir / CONFIG_FILE
    text = path.read_text(encoding="utf-8")
    try:
        stored = tomllib.loads(text).get("public_url")
    except tomllib.TOMLDecodeError:
        return None  # load_config explains it
    if not isinstance(stored, str):
        return None
    wanted = serve_url(host, port)
    marker = DERIVED.search(text)
    if marker and marker.group(1) == stored.rstrip("/"):
        if stored.rstrip("/") == wanted:
            return None
        text = DERIVED.sub(f"# derived from --host and --port: {wanted}", text, count=1)
        text = PUBLIC_URL_LINE.sub(lambda _: f"public_url = {_toml_string(wanted)}", text,
                                   count=1)
        scratch = path.with_name(f".{CONFIG_FILE}.new")
        scratch.write_text(text, encoding="utf-8")
        os.chmod(scratch, path.stat().st_mode & 0o777)
        os.replace(scratch, path)
        return (f"public_url in {path} is now {wanted} (was {stored}): it follows --host"
                " and --port until you set it.")
    try:
        url = httpx.URL(stored)
    except httpx.InvalidURL:
        return None
    same_host = url.host == host.strip("[]") or (_is_loopback(url.host) and _is_loopback(host))
    # Without a port of its own, the URL is a proxy's in front (or port 80's): left alone.
    if same_host and url.port is not None and url.port != port:
        raise ConfigError([(
            f"public_url in {path} is {stored}, but this node is to listen on port {port}:"
            " links and peers would go to the old address. Say where the node is reached:"
            f" --url {wanted} (for this run), public_url in {path},"
            f" or {BY_NAME['public_url'].env}.")])
    return None
