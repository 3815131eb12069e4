"""The deployment examples in deploy/ and the Dockerfile, checked as far as this machine can.

systemd-analyze verifies the unit and rates its exposure where it is installed;
the compose file is parsed; the Caddyfile and the Dockerfile are read for what
a node needs (nothing here runs Docker or Caddy). The health check the image
and the compose file share is run against a real node.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from node.cli import parser
from node.config import BY_NAME
from tests.helpers import free_port, serving, started

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "grassroots.service"
PORT = parser().parse_args(["serve"]).port  # the node's default port, which they all use
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def dockerfile() -> dict[str, list[str]]:
    """Each instruction's arguments, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.setdefault(word.upper(), []).append(rest.strip())
    return found


def compose_node() -> dict:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    (node,) = document["services"].values()
    return {**node, "_volumes": document.get("volumes", {})}


def health_command(argv: list[str], port: int) -> list[str]:
    """A health check's command, run here against ``port`` instead of the image's."""
    assert argv[0] == "python" and argv[1] == "-c"
    return [sys.executable, "-c", argv[2].replace(f":{PORT}/", f":{port}/")]


# systemd -------------------------------------------------------------------------

def test_the_unit_is_hardened_and_keeps_its_data_in_the_state_directory():
    settings = unit_settings()
    for key, wanted in {"DynamicUser": "yes", "StateDirectory": "grassroots",
                        "ProtectSystem": "strict", "ProtectHome": "yes",
                        "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                        "MemoryDenyWriteExecute": "yes"}.items():
        assert settings.get(key) == [wanted], key
    assert set(settings["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6",
                                                                   "AF_UNIX"}
    assert settings["CapabilityBoundingSet"] == [""]
    command = shlex.split(settings["ExecStart"][0])
    assert command[1:2] == ["serve"]
    assert command[command.index("--data") + 1] == "/var/lib/grassroots"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == str(PORT)


def _unit_with_this_install(tmp_path: Path) -> Path:
    """The unit as installed here: its ExecStart names this checkout's grassroots."""
    installed = Path(sys.executable).with_name("grassroots")
    assert installed.exists()
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(
        "/opt/grassroots/bin/grassroots", str(installed)), encoding="utf-8")
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_unit_and_rates_it_ok(tmp_path):
    unit = _unit_with_this_install(tmp_path)
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    rated = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                           capture_output=True, text=True, timeout=60, check=False)
    if rated.returncode != 0 and "offline" in rated.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", rated.stdout)
    assert found, rated.stdout[-500:] + rated.stderr
    assert float(found.group(1)) <= 2.0  # systemd calls up to 3.9 "OK"


def test_the_node_runs_with_writable_executable_memory_refused(tmp_path):
    """MemoryDenyWriteExecute=yes in the unit: the node, its PDF, keys and password
    hashing work without memory that is both writable and executable (Linux 6.3's
    PR_SET_MDWE, set on the process before anything is imported)."""
    refuse = f"ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0)"
    probe = subprocess.run([sys.executable, "-c", f"import ctypes, sys; sys.exit({refuse})"],
                           check=False)
    if probe.returncode != 0:
        pytest.skip("this kernel cannot refuse writable-executable memory to a process")
    port = free_port()
    launcher = (
        "import ctypes, sys\n"
        f"assert {refuse} == 0\n"
        "import argon2\n"
        "argon2.PasswordHasher().hash('correct horse battery')\n"
        "from node.cli import main\n"
        f"sys.argv = ['grassroots', 'serve', '--data', {str(tmp_path / 'n')!r},"
        f" '--port', '{port}', '--demo']\n"
        "sys.exit(main())\n")
    url = f"http://127.0.0.1:{port}"
    with started([sys.executable, "-c", launcher], url, subprocess.PIPE, timeout=60):
        for path in ("/", "/groups/rainbow-circle", "/groups/rainbow-circle/flyer.pdf",
                     "/actor", "/events.ics", "/readyz"):
            assert httpx.get(url + path, timeout=30).status_code == 200, path


# Docker ------------------------------------------------------------------------

def test_the_dockerfile_runs_unprivileged_with_its_data_on_a_volume_and_checks_readiness():
    found = dockerfile()
    (user,) = found["USER"]
    assert user not in ("root", "0") and not user.startswith("0:")
    assert "--uid 1000 --home /data" in found["RUN"][-1] and user in found["RUN"][-1]
    (volume,) = found["VOLUME"]
    entrypoint = shlex.split(found["ENTRYPOINT"][0].strip("[]").replace(",", " "))
    data = entrypoint[entrypoint.index("--data") + 1]
    assert data.startswith(volume.strip('[]"') + "/")
    assert entrypoint[entrypoint.index("--port") + 1] == str(PORT)
    assert found["EXPOSE"] == [str(PORT)]
    (check,) = found["HEALTHCHECK"]
    assert f"http://127.0.0.1:{PORT}/readyz" in check
    # Its own tools: the image has Python, not curl or wget.
    assert "curl" not in check and "wget" not in check


def test_the_compose_file_keeps_data_on_a_named_volume_as_a_non_root_user():
    node = compose_node()
    assert node["build"] == ".." and node["image"]
    assert node["user"] not in ("root", "0")
    assert node["user"] == dockerfile()["USER"][0]
    (mount,) = node["volumes"]
    name, _, target = mount.partition(":")
    assert target == dockerfile()["VOLUME"][0].strip('[]"') and name in node["_volumes"]
    assert node["read_only"] is True and node["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in node["security_opt"]
    assert node["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]  # only the proxy on the machine
    assert node["command"][0] == "--url" and node["command"][1].startswith("https://")
    test = node["healthcheck"]["test"]
    assert test[0] == "CMD" and f"http://127.0.0.1:{PORT}/readyz" in test[-1]


def test_the_image_health_check_passes_on_a_ready_node_and_fails_on_none(tmp_path):
    compose_check = compose_node()["healthcheck"]["test"][1:]
    docker_check = shlex.split(dockerfile()["HEALTHCHECK"][0].split("CMD", 1)[1]
                               .strip().strip("[]").replace('", "', '" "'))
    assert compose_check == docker_check  # one check, in both places
    with serving(tmp_path / "n") as (url, _):
        port = int(url.rsplit(":", 1)[1])
        assert subprocess.run(health_command(compose_check, port), timeout=30,
                              check=False).returncode == 0
    refused = subprocess.run(health_command(compose_check, free_port()), capture_output=True,
                             timeout=30, check=False)
    assert refused.returncode != 0


# Caddy -------------------------------------------------------------------------

def test_the_caddyfile_serves_the_node_over_tls_and_keeps_metrics_inside():
    text = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    site = next(line for line in lines if line.endswith("{") and "." in line)
    assert not site.startswith("http://") and not re.search(r":\d+ \{$", site)  # automatic HTTPS
    assert f"reverse_proxy 127.0.0.1:{PORT} {{" in lines
    assert "respond /metrics 404" in lines
    assert sum(line.endswith("{") for line in lines) == lines.count("}")  # blocks closed


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed here")
def test_caddy_adapts_the_caddyfile():
    adapted = subprocess.run(["caddy", "adapt", "--config", str(DEPLOY / "Caddyfile")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert adapted.returncode == 0, adapted.stderr


def test_the_hub_compose_file_runs_web_processes_and_a_worker_on_one_postgresql():
    document = yaml.safe_load((DEPLOY / "hub-compose.yaml").read_text(encoding="utf-8"))
    services = document["services"]
    assert set(services) == {"postgres", "web", "worker", "proxy"}
    web, worker, postgres = services["web"], services["worker"], services["postgres"]
    entrypoint = json.loads(dockerfile()["ENTRYPOINT"][0])
    assert "--workers" in web["command"] and "--url" in web["command"]
    data = entrypoint[entrypoint.index("--data") + 1]
    assert worker["entrypoint"] == ["grassroots", "worker", "--data", data]
    url_key = BY_NAME["database_url"].env
    for node in (web, worker):  # one database, one data directory (config, secret key)
        assert node["user"] == dockerfile()["USER"][0] and node["read_only"] is True
        assert node["volumes"] == ["grassroots-data:/data"] and "ports" not in node
        assert node["environment"] == web["environment"]
    password = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"  # compose fills it in
    assert postgres["environment"]["POSTGRES_PASSWORD"] == password
    url = urlsplit(web["environment"][url_key].replace(password, "secret"))
    assert url.scheme == "postgresql" and url.hostname == "postgres"
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert int(postgres["image"].split(":")[1]) >= 15 and "ports" not in postgres
    proxy = services["proxy"]["command"]
    assert proxy[proxy.index("--to") + 1] == f"web:{PORT}"
    assert f"http://127.0.0.1:{PORT}/readyz" in web["healthcheck"]["test"][-1]
