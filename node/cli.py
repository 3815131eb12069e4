"""The ``grassroots`` command."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from node.config import Config, is_initialised, load_config, write_config
from node.db import Database
from node.storage import accounts

DEFAULT_DATA = Path("data")


async def _with_db(config: Config, work):
    db = Database(config.db_path)
    await db.open()
    try:
        return await work(db)
    finally:
        await db.close()


def login_url(config: Config, token: str) -> str:
    return f"{config.public_url}/login/link/{token}"


def initialise(data_dir: Path, public_url: str) -> str:
    """Create a data directory with its database and first admin; the login link."""
    write_config(data_dir, public_url)
    config = load_config(data_dir)

    async def first_admin(db: Database) -> str:
        admin_id = await accounts.create_account(
            db, email=None, display_name="Admin", password_hash=None, is_admin=True
        )
        return await accounts.create_login_link(db, admin_id)

    return login_url(config, asyncio.run(_with_db(config, first_admin)))


def cmd_init(args: argparse.Namespace) -> int:
    if is_initialised(args.data):
        print(f"{args.data} is already a Grassroots data directory.", file=sys.stderr)
        return 1
    url = args.url or f"http://{args.host}:{args.port}"
    link = initialise(args.data, url)
    print(f"Initialised {args.data}.\nLog in as the admin (once, within 24 hours): {link}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from node.app import create_app

    if not is_initialised(args.data):
        link = initialise(args.data, args.url or f"http://{args.host}:{args.port}")
        print(f"Initialised {args.data}.")
        print(f"Log in as the admin (once, within 24 hours): {link}", flush=True)
    config = load_config(args.data, args.url)
    if args.demo:
        from node.demo import seed_demo

        if asyncio.run(_with_db(config, seed_demo)):
            print("Added demo groups and meetings.", flush=True)
    print(f"Serving {config.public_url} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        access_log=args.verbose,
        proxy_headers=False,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grassroots", description="A Grassroots community node.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_data(cmd: argparse.ArgumentParser) -> argparse.ArgumentParser:
        cmd.add_argument("--data", type=Path, default=DEFAULT_DATA,
                         help="data directory (default: ./data)")
        return cmd

    for name, help_text in (("serve", "run the node"), ("init", "create a data directory")):
        cmd = with_data(sub.add_parser(name, help=help_text))
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, default=8000)
        cmd.add_argument("--url", help="public URL (default: http://HOST:PORT)")
        if name == "serve":
            cmd.add_argument("--demo", action="store_true", help="add example groups and meetings")
            cmd.add_argument("--verbose", action="store_true", help="log every request")
    return p


COMMANDS = {"serve": cmd_serve, "init": cmd_init}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
