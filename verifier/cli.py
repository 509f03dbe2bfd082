"""The ``xchat-verify`` command. Exit codes: 0 pass, 1 fail, 2 usage error, 3 could not complete."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .engine import Verification, verify_pages
from .errors import FetchError, InputError, UsageError, XChatVerifyError
from .inputs import (DEFAULT_MAX_FILE_MB, is_evidence_dir, load_keyring, load_pages, parse_conversation_keys)
from .keys import entry_from_row
from .ledger_cli import LedgerRun, add_commands as add_ledger_commands, add_ledger_options
from .model import EXIT_FAIL, EXIT_INCOMPLETE, EXIT_PASS, EXIT_USAGE, Report, exit_code
from .outputs import atomic_write_text
from .paging import MB
from .settings import DEFAULT_BASE_URL, AuditOptions, RetryPolicy

if TYPE_CHECKING:  # the network modules are imported by the commands that use them
    from .audit import AuditProgress
    from .fetch import ClientEvents, XChatClient
from .report import FORMATS, render
from .sanitize import printable
from ._version import __version__

# ------------------------------------------------------------------------------------- output
def emit(report: Report, fmt: str, output: str | None, all_events: bool = False) -> None:
    if output:
        text = render(report, fmt, all_events=all_events)
        try:
            atomic_write_text(output, text)
        except OSError as exc:
            raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
        print(f"verdict: {report.verdict} (report written to {printable(output)})", file=sys.stderr)
        return
    tty = sys.stdout.isatty()
    color = fmt == "text" and tty and "NO_COLOR" not in os.environ  # NO_COLOR drops colour, not layout
    width = shutil.get_terminal_size().columns if tty else None
    sys.stdout.write(render(report, fmt, color=color, width=width, all_events=all_events))
    sys.stdout.flush()


def finish(report: Report, args: argparse.Namespace) -> int:
    """Write the report, name every input that could not be read (one line each), pick the exit code."""
    emit(report, args.format, args.output, getattr(args, "all_events", False))
    for finding in report.findings:
        if finding.code == "unused_conversation_key":
            print(f"xchat-verify: warning: {finding.message}", file=sys.stderr)
    for inp in report.inputs:
        for err in inp.errors:
            warn(f"{inp.source}: {err}")
    return exit_code(report)


def warn(message: str) -> None:
    """One line on stderr; the text may quote a server or a file, so it is escaped first."""
    print(f"xchat-verify: {printable(message)}", file=sys.stderr)


def add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the report to PATH instead of stdout")
    parser.add_argument("--all-events", action="store_true",
                        help="text format: list every event, also in conversations of more than 50 events")
    parser.add_argument("--strict", action="store_true", help="warnings (untrusted, duplicate, "
                        "non_monotonic, ...) also fail the verdict")
    parser.add_argument("--conversation-key", action="append", default=[], metavar="VERSION=BASE64",
                        help="plaintext conversation key, to verify v6+ key-change signatures")
    parser.add_argument("--allow-embedded-keys", action="store_true",
                        help="accept signer keys carried in the events themselves (not authenticated): "
                             "without --keys the verdict may then pass; with --keys, signers the keyring "
                             "lacks are verified with their own key (reported as embedded_key_used)")
    parser.add_argument("--allow-empty", action="store_true",
                        help="an empty history, or one where no signature could be proven, may pass")
    parser.add_argument("--allow-partial", action="store_true",
                        help="a history that was not fetched to its end may pass (reported as incomplete)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="verification threads (default: number of CPUs, at most 8)")
    parser.add_argument("--max-file-mb", type=int, default=DEFAULT_MAX_FILE_MB, metavar="MB",
                        help=f"refuse input files larger than this (default {DEFAULT_MAX_FILE_MB})")


def cmd_verify(args: argparse.Namespace) -> int:
    if args.pages.count("-") > 1:
        raise UsageError("- (standard input) can be read only once")
    max_bytes = args.max_file_mb * 1024 * 1024
    conversation_keys = parse_conversation_keys(args.conversation_key)
    options = dict(conversation_keys=conversation_keys, allow_embedded_keys=args.allow_embedded_keys,
                   allow_empty=args.allow_empty, allow_partial=args.allow_partial,
                   strict=args.strict, workers=args.workers)
    ledger = LedgerRun(args)  # --ledger, --metrics: opened before anything is read
    try:
        seen: list = []
        if len(args.pages) == 1 and is_evidence_dir(args.pages[0]):
            from .audit import verify_saved_audit
            keyring = load_keyring(args.keys, max_bytes) if args.keys else None
            report = verify_saved_audit(args.pages[0], keyring, fallback_keys=ledger.fallback, observe=seen.append,
                                        **options)  # EvidenceError: exit 3
        else:
            keyring = load_keyring(args.keys, max_bytes) if args.keys else None
            pages = load_pages(args.pages, max_bytes)
            if ledger.store is None:
                report = verify_pages(pages, keyring, **options)
            else:  # the incremental form keeps what the ledger records (event_facts)
                seen.append(Verification(**options))
                for page in pages:
                    seen[0].add_page(page)
                if keyring is not None:
                    keyring.add_fallback(ledger.fallback)
                report = seen[0].finish(keyring)
        ledger.record(report, seen[0] if seen else None, command="verify", inputs=list(args.pages),
                      key_source="keyring" if args.keys else "directory")
        seen.clear()  # the engine's working state is not needed to render the report
    finally:
        ledger.close()
    return finish(report, args)


def read_token(token_file: str | None) -> str:
    """The bearer token from --token-file or X_BEARER_TOKEN; never echoed anywhere."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read --token-file: {exc.strerror or exc}") from None
    else:
        token = os.environ.get("X_BEARER_TOKEN", "").strip()
    if not token:
        raise UsageError("no access token: set X_BEARER_TOKEN or pass --token-file")
    return token


def make_client(args: argparse.Namespace, events: ClientEvents | None = None) -> XChatClient:
    """The API client from the options; a bad base URL, proxy or TLS setting is a usage error."""
    for name in ("max_retries",):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 0")
    for name in ("timeout", "request_deadline", "max_response_mb", "max_json_values"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be greater than 0")
    policy = RetryPolicy(max_retries=args.max_retries, backoff_base=args.backoff_base, max_wait=args.max_wait,
                         timeout=args.timeout, request_deadline=args.request_deadline,
                         max_body_bytes=int(args.max_response_mb * MB), max_json_values=args.max_json_values)
    token = read_token(args.token_file)
    from .fetch import XChatClient  # the network stack is loaded only by commands that use it
    return XChatClient(token, args.base_url, policy=policy, events=events, insecure_http=args.insecure_http)


class _Display:
    """A rich status line on a terminal (pages, events, conversations, keys, waits); silent otherwise."""

    def __init__(self, enabled: bool, console=None) -> None:
        self.status = None
        if enabled:
            from rich.console import Console
            self.status = (console or Console(stderr=True)).status("starting")

    def __enter__(self) -> "_Display":
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def update(self, p: AuditProgress) -> None:
        if self.status is not None:
            from rich.markup import escape  # a status may quote the server: no markup, no controls
            self.status.update(f"conversations {p.conversations_done}/{p.conversations} · pages {p.pages} · "
                               f"events {p.events} · keys {p.keys_done}/{p.users}"
                               + (f" · {escape(printable(p.status))}" if p.status else ""))

    def wait(self, seconds: float, why: str) -> None:
        if self.status is not None:
            self.status.update(f"waiting {seconds:.0f}s for the {why} window to reset")


def audit_options(args: argparse.Namespace) -> AuditOptions:
    """AuditOptions from the command line, every limit checked (a bad value is a usage error)."""
    if args.resume and not args.save:
        raise UsageError("--resume needs --save DIR")
    if not 1 <= args.max_results <= 100:
        raise UsageError("--max-results must be between 1 and 100")
    for name in ("max_pages", "max_empty_pages", "max_token_length", "max_page_items", "max_users", "concurrency"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_page_items > 100_000:
        raise UsageError("--max-page-items must be at most 100000")
    for name in ("max_conversation_mb", "max_conversation_seconds"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be greater than 0")
    return AuditOptions(max_results=args.max_results, max_pages=args.max_pages,
                        max_conversation_bytes=int(args.max_conversation_mb * MB),
                        max_conversation_seconds=args.max_conversation_seconds,
                        max_empty_pages=args.max_empty_pages, max_token_length=args.max_token_length,
                        max_page_items=args.max_page_items, max_users=args.max_users,
                        concurrency=args.concurrency, save_dir=args.save, resume=args.resume, force=args.force,
                        strict=args.strict, allow_embedded_keys=args.allow_embedded_keys,
                        allow_empty=args.allow_empty, allow_partial=args.allow_partial,
                        conversation_keys=parse_conversation_keys(args.conversation_key), workers=args.workers)


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import Auditor
    from .fetch import ClientEvents
    options = audit_options(args)
    display = _Display(sys.stderr.isatty() and not args.quiet)
    ledger = LedgerRun(args)  # --ledger, --metrics, --receipt-key: checked before any request
    try:
        options.fallback_keys = ledger.fallback
        with display, make_client(args, ClientEvents(on_wait=display.wait)) as client:
            try:  # bad ids and --resume refusals are UsageErrors, unusable evidence EvidenceErrors
                auditor = Auditor(client, options, on_change=display.update)
                report = auditor.run(args.ids)
            except OSError as exc:
                raise InputError(f"cannot write evidence: {exc.strerror or exc}") from None
        ledger.record(report, auditor.verification, command="audit", inputs=list(args.ids), key_source="directory",
                      key_users=auditor.key_users)
        auditor.verification = None  # the engine's working state is not needed to render the report
    finally:
        ledger.close()
    return finish(report, args)


def cmd_keys_fetch(args: argparse.Namespace) -> int:
    from .apibodies import key_body_problems, key_rows
    entries, failed = [], False
    with make_client(args) as client:
        for user_id in args.user_ids:
            try:
                fetched = client.get_public_keys(user_id)  # UsageError for a bad id
            except FetchError as exc:
                if exc.status == 404:
                    warn(f"user {user_id} has no public keys")
                    continue
                warn(f"keys for {user_id}: {exc}")
                failed = True
                continue
            problems = key_body_problems(fetched.body)
            for problem in problems:
                warn(f"keys for {user_id}: malformed response: {problem}")
            failed = failed or bool(problems)
            rows = key_rows(fetched.body, user_id)
            if not rows and not problems:
                warn(f"user {user_id} has no public keys")
            for row in rows:
                if row.get("user_id") != user_id:  # a response for one user speaks only for that user
                    warn(f"skipping a row for user {client.safe(row.get('user_id'))} in the keys of user {user_id}")
                    failed = True
                    continue
                try:  # the same mapping --keys reads back, so the file always loads
                    entries.append(msgspec.to_builtins(entry_from_row(row, user_id)))
                except ValueError as exc:
                    warn(f"skipping a key row of user {user_id}: {client.safe(exc)}")
        text = client.scrub(json.dumps({"keys": entries}, indent=2) + "\n")
    if failed and args.output:  # a keyring file must be complete or absent: the old one stays
        warn(f"{args.output} not written: keys could not all be fetched")
        return EXIT_INCOMPLETE
    if args.output:
        try:
            atomic_write_text(args.output, text)
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return EXIT_INCOMPLETE if failed else EXIT_PASS


def cmd_vectors(args: argparse.Namespace) -> int:
    from .vectors import read_xfail, render_results, run_suite, summary_ok
    root = Path(args.directory)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory")
    try:
        xfail = read_xfail(args.xfail) if args.xfail else set()
    except OSError as exc:
        raise InputError(f"cannot read --xfail file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"--xfail file {args.xfail} is not UTF-8 text (one case id per line)") from None
    results = run_suite(root, xfail)
    if not results:
        raise InputError(f"no vector cases (expected.json) under {root}")
    unknown = xfail - {r.case_id for r in results}
    if unknown:
        raise UsageError(f"--xfail names unknown cases: {', '.join(sorted(unknown))}")
    text = render_results(results, args.format)
    if args.output:
        try:
            atomic_write_text(args.output, text)
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(text.strip().splitlines()[-1] if args.format == "text" else
              f"{sum(r.ok for r in results)} passed, {sum(not r.ok for r in results)} failed", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_PASS if summary_ok(results) else EXIT_FAIL


def add_client_options(parser: argparse.ArgumentParser) -> None:
    policy = RetryPolicy()
    parser.add_argument("--token-file", metavar="PATH", help="read the OAuth 2.0 user access token from PATH "
                        "(default: the X_BEARER_TOKEN environment variable)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"API base URL (default {DEFAULT_BASE_URL}); "
                        "https only (http:// only to a loopback host), no credentials")
    parser.add_argument("--insecure-http", action="store_true",
                        help="allow a plain http:// base URL to a non-loopback host (the token travels in clear)")
    parser.add_argument("--max-wait", type=float, default=policy.max_wait, metavar="SECONDS",
                        help=f"longest rate-limit wait to accept (default {policy.max_wait:g})")
    parser.add_argument("--max-retries", type=int, default=policy.max_retries, metavar="N",
                        help=f"retries for 429/5xx/timeouts/connection errors (default {policy.max_retries})")
    parser.add_argument("--backoff-base", type=float, default=policy.backoff_base, metavar="SECONDS",
                        help=f"first retry delay; doubles each retry, with jitter (default {policy.backoff_base:g})")
    parser.add_argument("--timeout", type=float, default=policy.timeout, metavar="SECONDS",
                        help=f"timeout of each connect and read (default {policy.timeout:g})")
    parser.add_argument("--request-deadline", type=float, default=policy.request_deadline, metavar="SECONDS",
                        help=f"a whole request, however slowly the server sends (default {policy.request_deadline:g})")
    parser.add_argument("--max-response-mb", type=float, default=policy.max_body_bytes / MB, metavar="MB",
                        help=f"refuse a response larger than this once decoded (default {policy.max_body_bytes // MB})")
    parser.add_argument("--max-json-values", type=int, default=policy.max_json_values, metavar="N",
                        help=f"refuse a response with more JSON values (default {policy.max_json_values})")


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Budgets per conversation and run: each one reached ends the history as incomplete."""
    opts = AuditOptions()
    parser.add_argument("--max-pages", type=int, default=opts.max_pages, metavar="N",
                        help=f"at most N pages per conversation (default {opts.max_pages})")
    parser.add_argument("--max-conversation-mb", type=float, default=opts.max_conversation_bytes / MB, metavar="MB",
                        help=f"at most this much fetched per conversation (default {opts.max_conversation_bytes // MB})")
    parser.add_argument("--max-conversation-seconds", type=float, default=opts.max_conversation_seconds,
                        metavar="SECONDS", help="at most this long fetching one conversation "
                                                f"(default {opts.max_conversation_seconds:g})")
    parser.add_argument("--max-empty-pages", type=int, default=opts.max_empty_pages, metavar="N",
                        help="at most N pages in a row that bring no new event: empty, or only events already "
                             f"fetched (default {opts.max_empty_pages})")
    parser.add_argument("--max-token-length", type=int, default=opts.max_token_length, metavar="N",
                        help=f"refuse a longer next_token (default {opts.max_token_length})")
    parser.add_argument("--max-page-items", type=int, default=opts.max_page_items, metavar="N",
                        help=f"refuse a page with more items: data, meta key events, errors (default {opts.max_page_items})")
    parser.add_argument("--max-users", type=int, default=opts.max_users, metavar="N",
                        help=f"fetch the keys of at most N users; the rest are reported (default {opts.max_users})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xchat-verify",
        description="Verify the signatures and sequence chain of X Chat conversation events.",
        epilog="Exit codes: 0 pass, 1 fail, 2 usage error, 3 could not complete.")
    parser.add_argument("--version", action="version", version=f"xchat-verify {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback behind an internal error (also XCHAT_VERIFY_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    verify = sub.add_parser("verify", help="verify saved X API events pages offline",
                            description="Verify saved GET /2/chat/conversations/{id}/events response bodies.")
    verify.add_argument("pages", nargs="+", metavar="PAGE",
                        help="a file with one JSON response body or JSON Lines of bodies; - for stdin; "
                             "or a directory written by audit --save")
    verify.add_argument("--keys", metavar="KEYRING", help="trusted signing keys (keyring JSON)")
    add_report_options(verify)
    add_ledger_options(verify, receipts=False)
    verify.set_defaults(handler=cmd_verify)

    audit = sub.add_parser("audit", help="fetch conversations from the X API, verify, keep evidence",
                           description="Fetch every events page and the participants' keys, verify and report. "
                                       "The token comes from X_BEARER_TOKEN or --token-file.")
    audit.add_argument("ids", nargs="+", metavar="ID", help="conversation id: A:B, A-B, a user id, or g<digits>")
    audit.add_argument("--save", metavar="DIR", help="keep raw pages, key responses and a manifest in DIR")
    audit.add_argument("--resume", action="store_true", help="continue an interrupted or limited --save DIR")
    audit.add_argument("--force", action="store_true", help="with --resume: continue evidence fetched from "
                       "another --base-url")
    audit.add_argument("--max-results", type=int, default=100, metavar="N", help="page size 1-100 (default 100)")
    audit.add_argument("--concurrency", type=int, default=4, metavar="N", help="conversations fetched at once")
    audit.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    add_limit_options(audit)
    add_client_options(audit)
    add_report_options(audit)
    add_ledger_options(audit, receipts=True)
    audit.set_defaults(handler=cmd_audit)

    keys = sub.add_parser("keys", help="public key tools")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys_sub.required = True
    fetch = keys_sub.add_parser("fetch", help="save users' public keys as a --keys keyring")
    fetch.add_argument("user_ids", nargs="+", metavar="USER_ID")
    fetch.add_argument("--output", "-o", metavar="PATH", help="write the keyring here (default stdout)")
    add_client_options(fetch)
    fetch.set_defaults(handler=cmd_keys_fetch)

    add_ledger_commands(sub, keys_sub)

    vectors = sub.add_parser("vectors", help="run the conformance vector suite",
                             description="Run every case under DIR and compare with its expected.json.")
    vectors.add_argument("directory", nargs="?", default="vectors", metavar="DIR", help="suite root (default vectors)")
    vectors.add_argument("--format", choices=("text", "json", "junit"), default="text")
    vectors.add_argument("--output", "-o", metavar="PATH", help="write the results to PATH")
    vectors.add_argument("--xfail", metavar="FILE", help="case ids expected to fail, one per line (strict)")
    vectors.set_defaults(handler=cmd_vectors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if getattr(args, "max_file_mb", 1) < 1:
        parser.error("--max-file-mb must be at least 1")
    debug = args.debug or os.environ.get("XCHAT_VERIFY_DEBUG") == "1"
    try:
        return args.handler(args)
    except UsageError as exc:
        warn(f"error: {exc}")
        return EXIT_USAGE
    except XChatVerifyError as exc:  # inputs, evidence, fetches: one line, exit 3
        warn(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("xchat-verify: interrupted", file=sys.stderr)
        return EXIT_INCOMPLETE
    except MemoryError:
        print("xchat-verify: out of memory", file=sys.stderr)
        return EXIT_INCOMPLETE
    except Exception as exc:  # last line of defence: one line, never a traceback, nothing raw
        warn(f"internal error: {type(exc).__name__}: {exc}" + ("" if debug else " (--debug shows where)"))
        if debug:  # for bug reports: the traceback, escaped like every other line
            import traceback
            print(printable(traceback.format_exc()).replace("\\x0a", "\n"), file=sys.stderr)
        return EXIT_INCOMPLETE


def run() -> None:
    sys.exit(main())
