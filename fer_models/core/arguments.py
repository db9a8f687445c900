"""The argument parser every command uses: a bad argument is one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (what is wrong and with which flag), exit 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def bounded_int(lo: int, hi: int):
    """An argparse type: a whole number in lo..hi, else one line saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not in {lo}..{hi}")
        return value
    parse.__name__ = "whole number"
    return parse
