"""The command lines' parser: misuse is said in one line, not under argparse's usage block (which, for server.py,
is some 35 lines of options burying the one that says what was wrong)."""
from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose error() writes "<prog>: error: <message> (--help lists the options)" to stderr
    and exits with status 2 (argparse's own status for misuse). Its subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")
