"""An idle node does not hold libraries only some requests need (benchmark 5, idle RSS)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each is imported where it is first used: a flyer, a calendar, a localised date, a
# password, a key, a message through SMTP, an agreement compared, a backup, a fetch, a
# scrape of /metrics, a PostgreSQL database.
HEAVY = (
    "PIL", "argon2", "asyncpg", "babel", "cryptography", "decimal", "difflib", "fontTools", "fpdf",
    "httpcore", "icalendar", "prometheus_client", "segno", "smtplib", "tarfile", "websockets",
    "wsproto", "zipfile",
)

PROGRAM = """
import sys
from pathlib import Path
from node.cli import initialise
from node.config import load_config
initialise(Path(sys.argv[1]), "http://testserver")
from node.app import create_app
create_app(load_config(Path(sys.argv[1])))
print(" ".join(name for name in sys.argv[2:] if name in sys.modules))
"""


def test_creating_the_app_imports_no_heavy_module(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / "node"), *HEAVY],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    loaded = done.stdout.split()
    assert not loaded, (
        f"importing node.app and creating the app loaded {', '.join(loaded)}: import them "
        "where they are used (inside the function), so an idle node does not hold them")
