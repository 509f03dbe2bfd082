"""The ``xchat-verify`` command. Exit codes: 0 pass, 1 fail, 2 usage error, 3 could not complete."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .engine import PageInput, verify_pages
from .keys import Keyring
from .model import Report
from .pages import DecodedPage, decode_page
from .report import FORMATS, render

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
DEFAULT_MAX_FILE_MB = 512


class InputError(Exception):
    """A one-line reason the run could not complete (exit 3)."""


class UsageError(Exception):
    """A bad option value (exit 2)."""


# ------------------------------------------------------------------------------------- inputs
def read_limited(path: str, max_bytes: int) -> bytes:
    """Read a file or stdin (``-``), refusing anything larger than ``max_bytes``."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{path} is larger than the limit of {max_bytes // (1024 * 1024)} MB "
                         "(raise it with --max-file-mb)")
    return data


def split_bodies(data: bytes, source: str) -> list[DecodedPage]:
    """One JSON body, or JSON Lines with one body per line."""
    page = decode_page(data, source)
    if not page.errors or not page.errors[0].startswith("not a JSON object: "):
        return [page]
    lines = [line for line in data.splitlines() if line.strip()]
    if len(lines) <= 1:
        return [page]
    return [decode_page(line, f"{source}:{number}") for number, line in enumerate(lines, 1)
            if line.strip()]


def load_pages(paths: Sequence[str], max_bytes: int) -> list[DecodedPage]:
    pages: list[DecodedPage] = []
    for path in paths:
        try:
            pages += split_bodies(read_limited(path, max_bytes), "stdin" if path == "-" else path)
        except InputError as exc:
            pages.append(DecodedPage(path, errors=[str(exc)]))
    return pages


def load_keyring(path: str, max_bytes: int) -> Keyring:
    data = read_limited(path, max_bytes)
    try:
        return Keyring.from_json(data)
    except ValueError as exc:
        raise InputError(f"keyring {path}: {exc}") from None


def parse_conversation_keys(values: Sequence[str]) -> dict[str, bytes]:
    keys = {}
    for value in values:
        version, sep, b64 = value.partition("=")
        if not sep or not version:
            raise UsageError(f"--conversation-key expects VERSION=BASE64, got {value!r}")
        try:
            key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"--conversation-key {version}: not base64") from None
        if len(key) != 32:
            raise UsageError(f"--conversation-key {version}: key is {len(key)} bytes, expected 32")
        keys[version] = key
    return keys


# ------------------------------------------------------------------------------------- output
def emit(report: Report, fmt: str, output: str | None) -> None:
    if output:
        text = render(report, fmt)
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
        if fmt != "text":
            print(f"verdict: {report.verdict} (report written to {output})", file=sys.stderr)
        return
    color = fmt == "text" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = os.get_terminal_size().columns if color else None
    sys.stdout.write(render(report, fmt, color=color, width=width))
    sys.stdout.flush()


def exit_code(report: Report) -> int:
    if not report.complete:
        return EXIT_INCOMPLETE
    return EXIT_PASS if report.verdict == "pass" else EXIT_FAIL


# ------------------------------------------------------------------------------------- commands
def add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the report to PATH instead of stdout")
    parser.add_argument("--strict", action="store_true", help="warnings (untrusted, duplicate, "
                        "non_monotonic, ...) also fail the verdict")
    parser.add_argument("--conversation-key", action="append", default=[], metavar="VERSION=BASE64",
                        help="plaintext conversation key, to verify v6+ key-change signatures")
    parser.add_argument("--allow-embedded-keys", action="store_true",
                        help="with --keys: verify signers the keyring lacks with the event's own key "
                             "(reported as embedded_key_used)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="verification threads (default: number of CPUs, at most 8)")
    parser.add_argument("--max-file-mb", type=int, default=DEFAULT_MAX_FILE_MB, metavar="MB",
                        help=f"refuse input files larger than this (default {DEFAULT_MAX_FILE_MB})")


def cmd_verify(args: argparse.Namespace) -> int:
    max_bytes = args.max_file_mb * 1024 * 1024
    conversation_keys = parse_conversation_keys(args.conversation_key)
    keyring = load_keyring(args.keys, max_bytes) if args.keys else None
    pages = load_pages(args.pages, max_bytes)
    report = verify_pages(pages, keyring, conversation_keys=conversation_keys,
                          allow_embedded_keys=args.allow_embedded_keys, strict=args.strict,
                          workers=args.workers)
    emit(report, args.format, args.output)
    for inp in report.inputs:
        for err in inp.errors:
            print(f"xchat-verify: {inp.source}: {err}", file=sys.stderr)
    return exit_code(report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xchat-verify",
        description="Verify the signatures and sequence chain of X Chat conversation events.",
        epilog="Exit codes: 0 pass, 1 fail, 2 usage error, 3 could not complete.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    verify = sub.add_parser("verify", help="verify saved X API events pages offline",
                            description="Verify saved GET /2/chat/conversations/{id}/events response bodies.")
    verify.add_argument("pages", nargs="+", metavar="PAGE",
                        help="a file with one JSON response body or JSON Lines of bodies; - for stdin")
    verify.add_argument("--keys", metavar="KEYRING", help="trusted signing keys (keyring JSON)")
    add_report_options(verify)
    verify.set_defaults(handler=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if getattr(args, "max_file_mb", 1) < 1:
        parser.error("--max-file-mb must be at least 1")
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"xchat-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InputError as exc:
        print(f"xchat-verify: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("xchat-verify: interrupted", file=sys.stderr)
        return EXIT_INCOMPLETE
    except MemoryError:
        print("xchat-verify: out of memory", file=sys.stderr)
        return EXIT_INCOMPLETE
    except Exception as exc:  # last line of defence: one line, never a traceback
        print(f"xchat-verify: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE


def run() -> None:
    sys.exit(main())
