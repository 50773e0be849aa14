"""The `odoo` command: `odoo [server] [options]`, `odoo neutralize`, `odoo help`."""

from __future__ import annotations

import sys

COMMANDS = {
    "server": "Start the odoo server (default command)",
    "neutralize": "Neutralize a production database for testing: no emails sent, etc.",
    "help": "Display the list of available commands",
}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command = "server"
    if args and not args[0].startswith("-"):
        command, args = args[0], args[1:]
    if command == "server":
        from . import server

        server.main(args)
    elif command == "neutralize":
        from . import neutralize

        neutralize.main(args)
    elif command == "help":
        print("Available commands:\n")
        for name, doc in COMMANDS.items():
            print(f"    {name:<14}{doc}")
        print("\nUse 'odoo <command> --help' for individual command help.")
    else:
        sys.exit(f"Unknown command {command!r}")
