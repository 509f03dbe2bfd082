"""The ``xchat-verify`` command. Exit codes: 0 pass, 1 fail, 2 usage error, 3 could not complete."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import contextvars
import gc
import json
import math
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from .clock import Clock
from .engine import Verification, default_workers, gc_paused, usable_cpus, verify_pages
from .errors import FetchError, InputError, UsageError, XChatVerifyError
from .inputs import DEFAULT_MAX_FILE_MB, is_evidence_dir, load_keyring, load_pages, parse_conversation_keys
from .keys import entry_from_row
from .ledger_cli import (
    LEDGER_COMMAND_HELP,
    LedgerRun,
    add_key_commands,
    add_ledger_options,
    cmd_new_receipt_key,
    ledger_target,
    receipt_option,
    receipt_path,
)
from .ledger_cli import add_commands as add_ledger_commands
from .model import EXIT_FAIL, EXIT_INCOMPLETE, EXIT_PASS, EXIT_USAGE, Report, exit_code, fails, unauthenticated_keys
from .outputs import check_output_path, detach_stdout, names_file, write_file, write_output, write_stdout
from .paging import MB
from .parallel import plan_shares, verify_files
from .settings import DEFAULT_BASE_URL, IDENTITY_KEY_ENV, AuditOptions, RetryPolicy

if TYPE_CHECKING:  # the network modules are imported by the commands that use them
    from .audit import Auditor, AuditProgress
    from .fetch import ClientEvents, XChatClient
    from .vectors import CaseResult, RunInfo, Suite
from ._version import __version__
from .report import FORMATS
from .report.common import keyring_described_as
from .report.stream import iter_report, report_parts
from .sanitize import REDACTED, SECRET_PREFIX, printable, redact_secret


# ------------------------------------------------------------------------------------- output
def emit(report: Report, fmt: str, output: str | None, all_events: bool = False, processes: int = 1) -> None:
    """The report to ``output`` (atomically) or stdout, written in chunks (``report.stream``; with
    ``processes`` > 1, half of a long JSON or NDJSON report encoded by a second process, which a
    report file takes by ``sendfile``)."""
    if output and names_file(output):
        write_file(output, report_parts(report, fmt, all_events=all_events, processes=processes))  # in chunks
        print(f"verdict: {report.verdict} (report written to {printable(without_token(output))})", file=sys.stderr)
        return
    tty = sys.stdout is not None and sys.stdout.isatty()  # None: started with it closed (review 96)
    # NO_COLOR drops colour, not layout; set but empty it asks for nothing (no-color.org; round 80)
    color = fmt == "text" and tty and not os.environ.get("NO_COLOR")
    width = shutil.get_terminal_size().columns if tty else None
    write_stdout(iter_report(report, fmt, color=color, width=width, all_events=all_events, processes=processes))


def finish(report: Report, args: argparse.Namespace, processes: int = 1) -> int:
    """Write the report, name every input that could not be read (one line each), pick the exit code."""
    emit(report, args.format, args.output, getattr(args, "all_events", False), processes)
    for finding in report.findings:
        if finding.code == "unused_conversation_key":
            print(f"xchat-verify: warning: {finding.message}", file=sys.stderr)
    for inp in report.inputs:
        for err in inp.errors:
            warn(f"{inp.source}: {err}")
    return exit_code(report)


_MAX_NUMBER = 1e9  # seconds (31 years) or MB (a petabyte): past it, bytes and waits overflow


def finite_float(text: str) -> float:
    """A number option's value: ``nan``, ``inf`` and anything past a billion are usage errors (a NaN
    limit compares false with everything, so it would never apply; a huge one overflows where it
    becomes bytes or a wait)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or abs(value) > _MAX_NUMBER:
        raise argparse.ArgumentTypeError(f"must be a finite number of at most {_MAX_NUMBER:g}, not {text!r}")
    return value


def bounded_int(text: str) -> int:
    """A count option's value: past a billion it is a usage error, as for ``finite_float`` (review:
    ``--max-file-mb 99999999999999`` was taken, a limit that limits nothing)."""
    try:
        value = int(text)
    except ValueError:
        # (round 100: "1e3" and "1e10" read "not a whole number", which they are)
        raise argparse.ArgumentTypeError(f"not a whole number written in decimal digits (such as 512): {text!r}") \
            from None
    if abs(value) > _MAX_NUMBER:
        raise argparse.ArgumentTypeError(f"must be a whole number of at most {_MAX_NUMBER:g}, not {text!r}")
    return value


# the access tokens one of the command's arguments holds (``main`` finds them once): almost always none
_TOKENS_IN_ARGUMENTS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("tokens_in_arguments",
                                                                                       default=())


def without_token(message: str) -> str:
    """``message`` scrubbed of the access token when one of the command's arguments holds it (r119:
    ``--keys $TOKEN``, ``--ledger /x/$TOKEN.db`` or ``--max-results $TOKEN`` were quoted in full by
    their errors). Only then: a short token would otherwise be cut out of every word of a message."""
    for token in _TOKENS_IN_ARGUMENTS.get():
        if token in message:
            message = redact_secret(message, token, REDACTED) + (" (an argument holds the access token: it goes in "
                                                                  "X_BEARER_TOKEN or --token-file only)")
    return message


def output_without_token(text: str) -> str:
    """A command's output (JSON on standard output, or its -o file) scrubbed of the access token an
    argument holds, without ``without_token``'s note. Why: ``ledger show``, ``export`` and ``check``
    echo the --ledger path they were given, which printed the token of ``--ledger /x/$TOKEN.db`` (r130),
    and ``vectors`` results the --impl command (r137)."""
    for token in _TOKENS_IN_ARGUMENTS.get():
        text = redact_secret(text, token, REDACTED)
    return text


def _scrubber(tokens: Sequence[str]) -> Callable[[str], str] | None:
    """``output_without_token`` for a text of several lines, read in any thread (a context variable is
    not), the token also where a line break splits it; None without a token."""
    if not tokens:
        return None
    folded = list(map(_folded, tokens))

    def scrub(text: str) -> str:
        for token, pattern in zip(tokens, folded):
            text = pattern.sub(REDACTED, redact_secret(text, token, REDACTED))
        return text

    return scrub


def _folded(token: str) -> re.Pattern[str]:
    """The token with a line break allowed between any two characters."""
    return re.compile("(?:\r?\n)?".join(map(re.escape, token)))


def _tokens_in(arguments: Sequence[str]) -> tuple[str, ...]:
    """The access tokens (``_tokens_given``) that one of ``arguments`` holds."""
    return tuple(token for token in _tokens_given(arguments) if any(token in argument for argument in arguments))


def report_without_token(report: Report, inputs: Sequence[str]) -> tuple[Report, list[str]]:
    """The report and the inputs a ledger records, scrubbed of the access token an argument holds.
    Why: ``verify $TOKEN`` (the token pasted where a page file goes, as ``audit $TOKEN`` where an id
    goes) had its error line scrubbed, but the report on standard output named the input, in every
    format, and the ledger recorded it (r121)."""
    tokens = _TOKENS_IN_ARGUMENTS.get()
    if not tokens:
        return report, list(inputs)
    from .audit import scrub_report, secret_scrubber
    scrub = secret_scrubber(set(tokens))
    return scrub_report(report, [scrub]), [scrub(source) for source in inputs]


def _tokens_given(arguments: Sequence[str]) -> list[str]:
    """The access tokens this run could know without side effects: X_BEARER_TOKEN's and a regular
    --token-file's (a pipe, ``<(pass show x)``, is not read here: that would consume it)."""
    tokens = [os.environ.get("X_BEARER_TOKEN", "").strip()]
    for at, argument in enumerate(arguments):
        path = arguments[at + 1] if argument == "--token-file" and at + 1 < len(arguments) else (
            argument.removeprefix("--token-file=") if argument.startswith("--token-file=") else None)
        if path and os.path.isfile(path):
            try:
                with open(path, "rb") as handle:
                    tokens.append(handle.read(_MAX_TOKEN_FILE).decode("utf-8", "replace").strip())
            except OSError:
                continue
    return [token for token in tokens if len(token) >= SECRET_PREFIX]


def warn(message: str) -> None:
    """One line on stderr; the text may quote a server or a file, so it is escaped first."""
    print(f"xchat-verify: {printable(without_token(message))}", file=sys.stderr)


def add_report_options(parser: argparse.ArgumentParser, in_process: bool = True) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the report to PATH instead of stdout")
    parser.add_argument("--all-events", action="store_true",
                        help="text format: list every event, also in conversations of more than 50 events")
    add_trust_options(parser, in_process)


def add_trust_options(parser: argparse.ArgumentParser, in_process: bool = True) -> None:
    """The verification's options; ``in_process``: also the thread count and the participant's key
    (an archive runs on worker processes and has neither)."""
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
    if in_process:
        parser.add_argument("--workers", type=bounded_int, default=None, metavar="N",
                            help="cores to use (default: the CPUs this process may use, at most 8; never more "
                                 "than those): worker processes for page files of 32 MB or more (verify), else "
                                 "verification threads")
        add_identity_option(parser)


def add_evidence_key_options(parser: argparse.ArgumentParser, receipt: bool = True) -> None:
    """How far the key responses saved in an evidence directory are trusted when --keys is not given
    (review 65: a directory built by an attacker, with their keys, read as an authenticated PASS)."""
    others = "--keys, or --receipt-public-key" if receipt else "--keys"
    parser.add_argument("--trust-evidence-keys", action="store_true",
                        help="evidence directories without --keys: take their saved key responses on trust (your "
                             f"own evidence); without this (or {others}) the verdict fails")
    if receipt:
        parser.add_argument("--receipt-public-key", metavar="KEY",
                            help="an evidence directory without --keys: its saved key responses are authenticated "
                                 "when DIR/receipt.json verifies with this receipt public key (base64 or a file)")


def evidence_key_options(args: argparse.Namespace, evidence: bool) -> dict[str, Any]:
    """``verify_saved_audit``'s key-trust arguments; usage errors where they cannot apply."""
    receipt = getattr(args, "receipt_public_key", None)
    if receipt is not None and not receipt.strip():
        raise UsageError("--receipt-public-key is empty: name the receipt public key (a file, or its base64)")
    sources = args.pages if hasattr(args, "pages") else args.sources
    if evidence:
        for option, path in (("--keys", args.keys), ("--receipt-public-key", receipt)):
            _refuse_keys_from_inside(option, path, sources)
    given = ("--receipt-public-key" if receipt else None) or ("--trust-evidence-keys" if args.trust_evidence_keys else None)
    if given and not evidence and any(is_evidence_dir(s) for s in sources):
        raise UsageError(f"{given} takes one evidence directory, alone (not with page files or another directory)"
                         + ("" if receipt else "; archive verify takes several"))
    if given and not evidence and not all(s == "-" or os.path.exists(s) for s in sources):
        return {}  # a missing input is the run's input error (exit 3), not a misused option (review 67)
    if given and not evidence:
        raise UsageError(f"{given} is for an evidence directory (audit --save DIR): page files have no saved keys")
    if given and args.keys:
        raise UsageError(f"{given} trusts an evidence directory's saved keys, which --keys replaces: give one")
    if receipt and args.trust_evidence_keys:
        raise UsageError("--receipt-public-key authenticates the saved keys; --trust-evidence-keys takes them on "
                         "trust: give one")
    if not receipt:
        return {"trust_evidence_keys": args.trust_evidence_keys}
    from .receipts import load_verify_key
    return {"receipt_key": load_verify_key(receipt)}


def _refuse_keys_from_inside(option: str, path: str | None, sources: Sequence[str]) -> None:
    """Keys from inside an evidence directory given as a source authenticate nothing: whoever wrote
    it chose them (reviews 66, 69: its keyring.json, or a receipt key shipped with it). Only a file
    that exists: a base64 key given as the value is no path, wherever the command runs."""
    if not path or not os.path.exists(path):
        return
    folder = next((s for s in sources if os.path.isdir(s) and _inside(path, s)), None)
    if folder is not None:
        raise UsageError(f"{option} {printable(path)} is inside the evidence directory {printable(folder)}: keys "
                         "saved there authenticate nothing (whoever wrote it chose them); give keys you obtained "
                         "yourself")


def _inside(path: str, directory: str) -> bool:
    try:
        return Path(directory).resolve() in Path(path).resolve().parents
    except (OSError, RuntimeError, ValueError):
        return False


def _written_inside(path: str, directory: str) -> bool:
    """Whether writing the file ``path`` would change ``directory``: the file it leads to is inside
    (a write in place follows links), or its directory, resolved, is (an atomic write replaces the
    last component itself, a link included). Why: ``vectors -o SUITE/link``, the link leading out
    of the suite or round a loop, passed ``_inside`` and the results replaced the link with a file
    of the suite (round 113)."""
    if _inside(path, directory):
        return True
    target = Path(path)
    try:
        return Path(directory).resolve() in (Path(os.path.realpath(target.parent)) / target.name).parents
    except (OSError, RuntimeError, ValueError):
        return False


def add_identity_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--identity-key", metavar="FILE",
                        help="audit as a participant: FILE holds your private key blob (base64, as the SDK "
                             "exports it); default: the file named by XCHAT_VERIFY_IDENTITY_KEY_FILE. Decrypts "
                             "conversation keys and contents to check what messages claim (docs/participant.md)")


def _refuse_an_empty_identity_variable(args: argparse.Namespace) -> None:
    """As for XCHAT_VERIFY_LEDGER (new-user review); in `transcript` too (review 61: it said only
    that a key was needed)."""
    if IDENTITY_KEY_ENV in os.environ and not os.environ[IDENTITY_KEY_ENV].strip() \
            and not getattr(args, "identity_key", None):
        raise UsageError(f"{IDENTITY_KEY_ENV} is set but empty: name the identity key file, or unset it")


def identity_reviewers(args: argparse.Namespace) -> tuple | None:
    """The participant's reviewers when --identity-key (or its variable) names a key file, else None."""
    _refuse_an_empty_identity_variable(args)
    if not (getattr(args, "identity_key", None) or os.environ.get(IDENTITY_KEY_ENV)):
        return None
    from .participant import load_identity_key, participant_reviewers  # only a participant loads PyNaCl
    loaded = load_identity_key(getattr(args, "identity_key", None))  # IdentityKeyError: exit 3
    if loaded is None:
        return None
    for message in loaded.warnings:
        warn(f"warning: {message}")
    return participant_reviewers(loaded.key)


def add_fetch_options(parser: argparse.ArgumentParser, save_help: str) -> None:
    """What every command that fetches conversations takes: evidence, paging, limits, the client."""
    parser.add_argument("--save", metavar="DIR", help=save_help)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted or limited --save DIR")
    parser.add_argument("--force", action="store_true", help="with --resume: continue evidence fetched from "
                        "another --base-url; without: replace (delete) the evidence already in --save DIR")
    parser.add_argument("--max-results", type=bounded_int, default=100, metavar="N", help="page size 1-100 (default 100)")
    parser.add_argument("--concurrency", type=bounded_int, default=4, metavar="N",
                        help="conversations fetched at once (default 4)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    add_limit_options(parser)
    add_client_options(parser)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.pages.count("-") > 1:
        raise UsageError("- (standard input) can be read only once")
    max_bytes = args.max_file_mb * 1024 * 1024
    conversation_keys = parse_conversation_keys(args.conversation_key)
    options = dict(conversation_keys=conversation_keys, allow_embedded_keys=args.allow_embedded_keys,
                   allow_empty=args.allow_empty, allow_partial=args.allow_partial,
                   strict=args.strict, workers=args.workers, reviewers=identity_reviewers(args))
    ledger = LedgerRun(args)  # --ledger, --metrics: opened before anything is read
    processes = 1  # that verified the pages: as many encode the report
    try:
        seen: list = []
        evidence = len(args.pages) == 1 and is_evidence_dir(args.pages[0])
        trust = evidence_key_options(args, evidence)
        if evidence:
            from .audit import verify_saved_audit
            keyring = load_keyring(args.keys, max_bytes) if args.keys else None
            report = verify_saved_audit(args.pages[0], keyring, fallback_keys=ledger.fallback, observe=seen.append,
                                        **trust, **options)  # EvidenceError: exit 3
        else:
            keyring = load_keyring(args.keys, max_bytes) if args.keys else None
            pages = load_pages(args.pages, max_bytes)
            workers = args.workers or default_workers()
            shares = plan_shares(args.pages, workers, max_bytes=max_bytes) \
                if ledger.store is None and options["reviewers"] is None else None
            if shares is not None:  # large files: decoded and checked on several processes
                report = verify_files(shares, keyring, max_bytes, workers, options, warn=warn)
                processes = workers
            elif ledger.store is None:
                report = verify_pages(pages, keyring, lazy=True, **options)  # events built as they are written
            else:  # the incremental form keeps what the ledger records (event_facts)
                seen.append(Verification(**options))
                for page in pages:
                    seen[0].add_page(page)
                if keyring is not None:
                    keyring.add_fallback(ledger.fallback)
                report = seen[0].finish(keyring)
        report, inputs = report_without_token(report, args.pages)
        if ledger.store is not None and unauthenticated_keys(report):
            warn("not recorded in the ledger: nothing authenticates the signer keys (pass --keys, or for an "
                 "evidence directory --receipt-public-key or --trust-evidence-keys)")
            seen.clear()  # --metrics still describes the run
        ledger.record(report, seen[0] if seen else None, command="verify", inputs=inputs,
                      key_source="keyring" if args.keys else "evidence")
        seen.clear()  # the engine's working state is not needed to render the report
    finally:
        ledger.close()
    with gc_paused():  # the report's objects are acyclic and short-lived
        return finish(report, args, processes)


def check_output_paths(args: argparse.Namespace) -> None:
    """Every output file named on the command line, before any work (``outputs.check_output_path``);
    a receipt key file is the one output whose directory is made (``keys new-receipt-key``), and
    ``--receipt`` is written only with ``--receipt-key``."""
    if getattr(args, "handler", None) is cmd_new_receipt_key:
        return
    save = getattr(args, "save", None)
    _refuse_one_path_for_two_outputs(args)
    if save:  # r121: a ledger at DIR/manifest.json was created, then deleted by --force (exit 0, nothing
        # recorded) or named "evidence already there"; --metrics DIR/manifest.json was refused after the audit
        for option, value in (("--ledger", _ledger_the_run_records(args)), ("--metrics", getattr(args, "metrics", None))):
            if isinstance(value, str):
                _refuse_writing_over_the_evidence(option, value, save)
    for name, option in (("output", "-o"), ("junit", "--junit"), ("markdown", "--markdown"), ("receipt", "--receipt")):
        value = getattr(args, name, None)
        if name == "receipt" and hasattr(args, "receipt_key"):  # (receipt verify's RECEIPT is an input)
            if value is not None and not args.receipt_key:  # it would never be written: say so, not exit 0
                raise UsageError("--receipt needs --receipt-key FILE (the key that signs the receipt)")
            value, option = receipt_path(args), receipt_option(args)  # the default too: ./receipt.json, or
            # DIR/receipt.json with --save (r121: `-o receipt.json` replaced the receipt just written, exit 0)
        elif name == "receipt":
            continue
        if not isinstance(value, str):
            continue
        if value == "-" and name in ("junit", "markdown", "receipt"):  # round 105: --receipt - made a file "-"
            raise UsageError(f"{option} -: standard output takes the results themselves (-o); name a file")
        _refuse_overwriting_an_input(args, option, value)
        if save and value != "-":
            _refuse_writing_over_the_evidence(option, value, save)
        if save and Path(value).parent.resolve() == Path(save).resolve():
            continue  # in the --save DIR an audit makes before it writes anything (review)
        check_output_path(option, value)


def _refuse_writing_over_the_evidence(option: str, value: str, save: str) -> None:
    """An output inside the ``--save`` DIR goes beside the evidence, never onto it (round 105: ``--receipt
    DIR/manifest.json`` replaced the manifest it had just signed, exit 0; ``-o DIR/keyring.json``, a page,
    or ``--receipt DIR/keys``, a directory, which was found only after the whole audit)."""
    from .evidence import EVIDENCE_ENTRIES
    try:
        inside = Path(value).resolve().relative_to(Path(save).resolve())
    except ValueError:
        return  # not inside DIR
    except (OSError, RuntimeError):
        return  # (a path that cannot be resolved: check_output_path says why)
    if len(inside.parts) != 1 or inside.parts[0] in EVIDENCE_ENTRIES:
        raise UsageError(f"{option} {printable(value)} is inside the evidence the audit saves in --save "
                         f"{printable(save)}: writing there would replace or damage it; name a file beside them "
                         f"(such as {printable(str(Path(save) / _beside_evidence(option)))}) or elsewhere")


def _beside_evidence(option: str) -> str:
    """A name an output may take beside the evidence: receipt.json is the receipt's own default, so
    another output offered it would then collide with the receipt (r121)."""
    return {"--receipt": "receipt.json", "--ledger": "ledger.db", "--metrics": "metrics.prom"}.get(option, "report.txt")


# The files a command reads that no output of it may replace (review 62: `ledger export -o` onto its
# own ledger, `--receipt` onto the ledger or the receipt key, `checkpoint -o` onto its signing key).
_INPUT_FILES = (("ledger", "--ledger"), ("receipt_key", "--receipt-key"), ("key", "--key"), ("keys", "--keys"),
                ("receipt_public_key", "--receipt-public-key"),
                ("identity_key", "--identity-key"), ("token_file", "--token-file"), ("report", "--report"),
                ("xfail", "--xfail"), ("pages", "PAGE"), ("sources", "SOURCE"))


def _refuse_overwriting_an_input(args: argparse.Namespace, option: str, value: str) -> None:
    if value == "-":
        return
    if not os.path.exists(value):  # r117: `--ledger new.db -o new.db` created the ledger, then the report
        ledger = _ledger_the_run_records(args)  # replaced it, exit 0
        if ledger and not os.path.exists(ledger) and _same_path(ledger, value):
            raise UsageError(f"{option} {printable(value)} is the --ledger file this command creates: writing there "
                             "would replace it")
        return
    for name, input_option in _INPUT_FILES:
        given = getattr(args, name, None)
        if name == "ledger" and hasattr(args, "ledger"):  # the one opened: --ledger or XCHAT_VERIFY_LEDGER
            given = ledger_target(given)  # (review 64: the variable's ledger was not protected)
        for path in given if isinstance(given, list) else [given]:
            if isinstance(path, str) and path not in ("", "-") and _same_file(path, value):
                raise UsageError(f"{option} {printable(value)} is the {input_option} file this command reads: "
                                 "writing there would replace it")
            if isinstance(path, str) and os.path.isdir(path) and _inside(value, path):  # review 69: the receipt
                raise UsageError(f"{option} {printable(value)} is a file of the {input_option} directory this "
                                 "command reads: writing there would change it")


def _ledger_the_run_records(args: argparse.Namespace) -> str | None:
    """The ledger file a recording command (verify, audit, archive verify) writes, or None. Why only
    those: ``ledger export`` reads its ledger, so a missing one is not "the file this command creates"
    (r119)."""
    if getattr(args, "handler", None) not in (cmd_verify, cmd_audit, cmd_archive_verify):
        return None
    target = ledger_target(getattr(args, "ledger", None))
    if target is None:
        return None
    from .ledger import is_url
    return None if is_url(target) else target


def _same_path(a: str, b: str) -> bool:
    """Whether two paths, which need not exist yet, name the same file."""
    if os.path.exists(a) and os.path.exists(b):
        return _same_file(a, b)
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _refuse_one_path_for_two_outputs(args: argparse.Namespace) -> None:
    """r117: ``-o m.prom --metrics m.prom`` wrote both to one file, exit 0: the report replaced the
    metrics (or the other way round). Two outputs never share a file."""
    named: list[tuple[str, str]] = []
    for name, option in (("output", "-o"), ("junit", "--junit"), ("markdown", "--markdown"),
                         ("metrics", "--metrics"), ("receipt", "--receipt")):
        value = getattr(args, name, None)
        if name == "receipt" and hasattr(args, "receipt_key"):  # where it goes by default too (r121)
            value, option = receipt_path(args), receipt_option(args)
        if isinstance(value, str) and value not in ("", "-"):
            named.append((option, value))
    for i, (option, value) in enumerate(named):
        for other, other_value in named[i + 1:]:
            if _same_path(value, other_value):
                raise UsageError(f"{option} and {other} name the same file {printable(value)}: one would replace "
                                 "the other; name two files")
    metrics, ledger = getattr(args, "metrics", None), _ledger_the_run_records(args)
    if isinstance(metrics, str) and ledger and _same_path(metrics, ledger):  # r119: the run was recorded, then
        raise UsageError(f"--metrics {printable(metrics)} is the --ledger file: writing there would replace "  # refused
                         "it; name two files")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def read_token(token_file: str | None) -> str:
    """The bearer token from --token-file or X_BEARER_TOKEN; never echoed anywhere."""
    if token_file:
        try:  # a pipe too (`--token-file <(pass show x)`): read as it comes, bounded
            with open(token_file, "rb") as handle:
                raw = handle.read(_MAX_TOKEN_FILE + 1)
        except OSError as exc:
            raise UsageError(f"cannot read --token-file: {exc.strerror or exc}") from None
        if len(raw) > _MAX_TOKEN_FILE:
            raise UsageError(f"--token-file {printable(token_file)} is larger than {_MAX_TOKEN_FILE // 1024} KiB: "
                             "not an access token file")
        try:  # round 80: a binary file was an internal error (UnicodeDecodeError), an empty one "no access
            token = raw.decode("utf-8").strip()  # token: ... pass --token-file" although it was passed
        except UnicodeDecodeError:
            raise UsageError(f"--token-file {printable(token_file)} is not UTF-8 text (an access token file "
                             "holds the token alone)") from None
        if not token:
            raise UsageError(f"--token-file {printable(token_file)} is empty: it must hold the access token")
    else:
        token = os.environ.get("X_BEARER_TOKEN", "").strip()
    if not token:
        raise UsageError("no access token: set X_BEARER_TOKEN or pass --token-file")
    return token


_MAX_TOKEN_FILE = 64 * 1024  # an OAuth access token is a few hundred bytes


def make_client(args: argparse.Namespace, events: ClientEvents | None = None) -> XChatClient:
    """The API client from the options; a bad base URL, proxy or TLS setting is a usage error."""
    for name in ("max_retries", "max_wait", "backoff_base"):
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
    try:
        return XChatClient(token, args.base_url, policy=policy, events=events, insecure_http=args.insecure_http)
    except UsageError as exc:  # r117: a --base-url holding the token (`?access_token=...`) was quoted in full
        message = redact_secret(str(exc), token.strip(), REDACTED) if len(token.strip()) >= 8 else str(exc)
        if message == str(exc):
            raise
        raise UsageError(message) from None


def cmd_archive_verify(args: argparse.Namespace) -> int:
    """Page files, evidence directories and trees of them, verified on a Dask cluster."""
    from .archive import verify_archive
    from .archive.cluster import idle_scheduler, open_client
    max_bytes = args.max_file_mb * 1024 * 1024
    keyring = load_keyring(args.keys, max_bytes) if args.keys else None
    if args.trust_evidence_keys and args.keys:
        raise UsageError("--trust-evidence-keys trusts evidence directories' saved keys, which --keys replaces: "
                         "give one")
    _refuse_keys_from_inside("--keys", args.keys, args.sources)  # review 69: as verify DIR refuses it
    display = _Display(_stderr_is_terminal() and not args.quiet)
    options = dict(conversation_keys=parse_conversation_keys(args.conversation_key),
                   allow_embedded_keys=args.allow_embedded_keys, allow_empty=args.allow_empty,
                   allow_partial=args.allow_partial, strict=args.strict, max_file_mb=args.max_file_mb,
                   trust_evidence_keys=args.trust_evidence_keys)
    if args.scheduler:
        _warn_relative_sources(args.sources)
    ledger = LedgerRun(args)  # --ledger, --metrics: opened before anything is read
    try:
        with display:
            display.show("starting the cluster" if not args.scheduler else f"connecting to {args.scheduler}")
            with open_client(args.scheduler, args.workers) as client:
                if args.scheduler and idle_scheduler(client):  # round 92: it waited forever, saying nothing
                    warn(f"warning: the scheduler at {args.scheduler} has no workers: the run waits until "
                         "workers join it (Ctrl-C stops it)")
                report = verify_archive(args.sources, keyring, client, on_progress=display.progress,
                                        ledger=ledger.store, secrets=_TOKENS_IN_ARGUMENTS.get(), **options)
        report, inputs = report_without_token(report, args.sources)
        ledger.record(report, None, command="archive verify", inputs=inputs,  # --metrics
                      key_source="keyring" if args.keys else "evidence")
        if ledger.store is not None and unauthenticated_keys(report):
            warn("groups whose signer keys nothing authenticates were not recorded in the ledger (pass --keys, "
                 "or for evidence directories --trust-evidence-keys)")
    finally:
        ledger.close()
    return finish(report, args)


def _warn_relative_sources(sources: list[str]) -> None:
    """A remote cluster's workers read each path in their own working directory: a relative path
    is read there (a file they cannot find is an input error, so nothing passes, but the run fails)."""
    from .archive.sources import is_url
    relative = [s for s in sources if not is_url(s) and not os.path.isabs(s)]
    if relative:
        print(f"xchat-verify: warning: with --scheduler, workers read paths in their own working directory; "
              f"give absolute paths or URLs ({printable(relative[0])}{' ...' if len(relative) > 1 else ''} "
              f"is relative)", file=sys.stderr)


def _stderr_is_terminal() -> bool:
    """Whether a status display may draw on standard error. Why: started with it closed (``2>&-``),
    ``sys.stderr`` is None, and ``audit``/``archive verify`` ended in an internal error (r125)."""
    return sys.stderr is not None and sys.stderr.isatty()


class _Display:
    """A rich status line on a terminal (pages, events, conversations, keys, waits); silent otherwise."""

    def __init__(self, enabled: bool, console=None, clock: Clock | None = None) -> None:
        self.status = None
        self.clock = clock or Clock()
        self._stopped = threading.Event()  # ends a countdown when the display closes
        if enabled:
            from rich.console import Console
            self.status = (console or Console(stderr=True)).status("starting")

    def __enter__(self) -> "_Display":
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        if self.status is not None:
            self.status.stop()
            self.status = None

    def update(self, p: AuditProgress) -> None:
        if self.status is not None:
            from rich.markup import escape  # a status may quote the server: no markup, no controls
            keys = f" · keys {p.keys_done}/{p.users}" if p.users else ""  # not before the users are known
            self.status.update(f"conversations {p.conversations_done}/{p.conversations} · pages {p.pages} · "
                               f"events {p.events}{keys}" + (f" · {escape(printable(p.status))}" if p.status else ""))

    def show(self, text: str) -> None:
        if self.status is not None:
            from rich.markup import escape
            self.status.update(escape(printable(text)))

    def progress(self, p) -> None:
        """An archive's progress: tasks done of those known, events checked, and the rate."""
        self.show(f"tasks {p.tasks_done}/{p.tasks} · events {p.events:,} · {p.rate:,.0f} events/s")

    def wait(self, seconds: float, why: str) -> None:
        """The client waits (``ClientEvents.on_wait``): show it, counting down."""
        self.countdown(seconds, why)

    def countdown(self, seconds: float, why: str) -> threading.Thread | None:
        """Count the wait down, once a second, until the window resets (or the display closes)."""
        if self.status is None:
            return None
        until = self.clock.monotonic() + seconds
        ticker = threading.Thread(target=self._count_down, args=(self.status, until, why), daemon=True,
                                  name="xchat-verify-countdown")
        ticker.start()
        return ticker

    def _count_down(self, status, until: float, why: str) -> None:
        while (left := until - self.clock.monotonic()) > 0 and self.status is status:
            status.update(f"waiting {left:.0f}s for the {why} window to reset")
            if self.clock.wait(min(1.0, left), self._stopped):
                return


def audit_options(args: argparse.Namespace, reviewers: tuple | None = None) -> AuditOptions:
    """AuditOptions from the command line, every limit checked (a bad value is a usage error);
    ``reviewers`` default to those of --identity-key."""
    if args.resume and not args.save:
        raise UsageError("--resume needs --save DIR")
    if args.force and not args.save:  # it only says what to do with the evidence in --save DIR
        raise UsageError("--force needs --save DIR")
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
                        conversation_keys=parse_conversation_keys(args.conversation_key), workers=args.workers,
                        reviewers=reviewers if reviewers is not None else identity_reviewers(args))


def cmd_audit(args: argparse.Namespace) -> int:
    options = audit_options(args)
    ledger = LedgerRun(args)  # --ledger, --metrics, --receipt-key: checked before any request
    try:
        options.fallback_keys = ledger.fallback
        report, auditor = run_audit(args, options, args.ids)
        ledger.record(report, auditor.verification, command="audit", inputs=list(args.ids), key_source="directory",
                      key_users=auditor.key_users)
        auditor.verification = None  # the engine's working state is not needed to render the report
    finally:
        ledger.close()
    _warn_of_stale_receipt(args)
    with keyring_described_as("the fetched key directory"):  # audit has no --keys: its keys were fetched
        return finish(report, args)


def _warn_of_stale_receipt(args: argparse.Namespace) -> None:
    """A resumed evidence directory no longer matches the receipt an earlier run left in it (review
    61: ``receipt verify --evidence DIR`` then failed, and nothing had said so)."""
    if not (args.resume and args.save):
        return
    old = Path(args.save) / "receipt.json"
    signed_again = getattr(args, "receipt_key", None) and Path(args.receipt or old).resolve() == old.resolve()
    if old.is_file() and not signed_again:
        warn(f"warning: {old} signs this evidence as it was before the resume and no longer matches it; sign "
             "it again with --receipt-key KEY")


@contextlib.contextmanager
def _token_scrubbed(client: XChatClient, arguments: Sequence[str]) -> Iterator[None]:
    """A usage error quoting an argument is scrubbed of the access token (r117: the token pasted where
    an id goes, ``audit $TOKEN``, was printed in full by "not a conversation id: '...'"). Only when an
    argument holds the token: a short one would otherwise be cut out of every word of the message."""
    try:
        yield
    except UsageError as exc:
        if all(client.scrub(argument) == argument for argument in arguments):
            raise
        scrubbed = client.scrub(str(exc))
        raise UsageError(scrubbed + " (that argument is the access token: it goes in X_BEARER_TOKEN or "
                         "--token-file only)") from None


def run_audit(args: argparse.Namespace, options: AuditOptions, ids: list[str]) -> tuple[Report, Auditor]:
    """Fetch and verify ``ids`` with a progress display; the report and the auditor (its engine state)."""
    from .audit import Auditor
    from .fetch import ClientEvents
    display = _Display(_stderr_is_terminal() and not args.quiet)
    with display, make_client(args, ClientEvents(on_wait=display.wait)) as client, _token_scrubbed(client, ids):
        try:  # bad ids and --resume refusals are UsageErrors, unusable evidence EvidenceErrors
            auditor = Auditor(client, options, on_change=display.update)
            report = auditor.run(ids)
        except OSError as exc:
            raise InputError(f"cannot write evidence: {exc.strerror or exc}") from None
    for conversation, why in sorted(auditor.metadata_unavailable.items()):  # (said once the display is gone)
        warn(f"warning: the metadata of conversation {conversation} was unavailable ({why}): its participants "
             "are known from its events alone")
    return report, auditor


def cmd_transcript(args: argparse.Namespace) -> int:
    """The decrypted conversation with its proof, written only to the output the user names."""
    from .participant import load_identity_key, participant_reviewers
    from .participant.transcript import build_transcript, render_transcript, verdict_problems
    if not args.output:
        raise UsageError("transcript needs --output PATH (- for standard output): the plaintext is written "
                         "only where you name it")
    _refuse_an_empty_identity_variable(args)
    loaded = load_identity_key(args.identity_key)
    if loaded is None:
        raise UsageError("transcript needs --identity-key FILE (or XCHAT_VERIFY_IDENTITY_KEY_FILE)")
    for message in loaded.warnings:
        warn(f"warning: {message}")
    reviewers = participant_reviewers(loaded.key)
    offline = [s == "-" or os.path.exists(s) for s in args.sources]
    if all(offline):
        if args.save or args.resume or args.force:
            raise UsageError("--save, --resume and --force are for fetched conversations: give conversation ids, "
                             "not files")
        if args.sources.count("-") > 1:
            raise UsageError("- (standard input) can be read only once")
        max_bytes = args.max_file_mb * 1024 * 1024
        keyring = load_keyring(args.keys, max_bytes) if args.keys else None
        options = dict(conversation_keys=parse_conversation_keys(args.conversation_key),
                       allow_embedded_keys=args.allow_embedded_keys, allow_empty=args.allow_empty,
                       allow_partial=args.allow_partial, strict=args.strict, workers=args.workers,
                       reviewers=reviewers)
        evidence = len(args.sources) == 1 and is_evidence_dir(args.sources[0])
        trust = evidence_key_options(args, evidence)
        if evidence:
            from .audit import verify_saved_audit
            report = verify_saved_audit(args.sources[0], keyring, **trust, **options)
        else:
            report = verify_pages(load_pages(args.sources, max_bytes), keyring, **options)
    else:
        if any(offline):
            raise UsageError("give either files (pages, an evidence directory) or conversation ids, not both")
        if args.keys:
            raise UsageError("--keys is for files; a fetched conversation uses the keys it fetches")
        if args.trust_evidence_keys or args.receipt_public_key:
            raise UsageError("--trust-evidence-keys and --receipt-public-key are for an evidence directory; a "
                             "fetched conversation uses the keys it fetches")
        # run_audit names an argument that is neither (a UsageError, before any request, scrubbed of the token)
        report, _auditor = run_audit(args, audit_options(args, reviewers), args.sources)
    # fetched, as audit's: its keys came from the key directory, not a keyring it refuses (r111)
    with keyring_described_as("the fetched key directory" if not all(offline) else "the keyring"):
        text = render_transcript(build_transcript(report, reviewers[1]), args.format)
    if args.output == "-":
        write_stdout([text])
    else:
        write_file(args.output, text, private=True)  # plaintext: the owner's only
        print(f"verdict: {report.verdict} (transcript written to {printable(without_token(args.output))})",
              file=sys.stderr)
    for problem in verdict_problems(report):  # why it failed, not only that it did (review 67)
        if fails(problem["severity"], report.strict) or problem["code"] == "input_error":
            warn(problem["message"] if problem["code"] == "input_error" else f"{problem['code']}: {problem['message']}")
    return exit_code(report)


def cmd_keys_fetch(args: argparse.Namespace) -> int:
    from .apibodies import key_body_problems, key_rows
    entries, failed = [], False
    with make_client(args) as client, _token_scrubbed(client, args.user_ids):
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
        # written as the reports write JSON: a key row's strings are the server's, and stdout may be a
        # CI log, where ``##[`` runs a workflow command (review 85: "1##[add-mask]FAIL" as a key version)
        from .report.machine import _json_safe
        text = _json_safe(client.scrub(json.dumps({"keys": entries}, indent=2))) + "\n"
    if failed:  # a keyring must be complete or absent: a file's old one stays; standard output gets nothing
        # (round 80: `keys fetch ... > ring.json` wrote a partial keyring, its exit 3 easy to miss)
        warn(f"{printable(args.output) if names_file(args.output) else 'keyring'} not written: keys could not "
             "all be fetched")
        return EXIT_INCOMPLETE
    write_output(args.output, text)
    return EXIT_PASS


def _check_suite_root(root: Path, given: bool) -> None:
    """The suite directory exists; without one named, say that the default is ./vectors here (review 38:
    run outside the repository, "vectors is not a directory" did not say where it looked)."""
    if not root.is_dir():
        try:
            here = printable(os.getcwd())
        except OSError:  # review 44: run from a directory that was removed
            here = "the current directory, which no longer exists"
        where = "" if given else f" (no suite directory was named; the default is ./vectors in {here})"
        raise InputError(f"{printable(str(root))} is not a directory{where}")


def cmd_vectors(args: argparse.Namespace) -> int:
    from . import vectors as v
    target = list(args.target)
    if target and target[0] == "export":
        return _vectors_export(args, target[1:])
    if len(target) > 1:
        raise UsageError("vectors takes one suite directory (or: vectors export OUT.tar.gz [DIR])")
    root = Path(target[0] if target else "vectors")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.timeout is not None and args.impl is None:
        raise UsageError("--timeout applies to --impl only")
    timeout = v.DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    if not timeout > 0:
        raise UsageError("--timeout must be greater than 0")
    runner = v.impl_runner(v.parse_impl(args.impl), timeout, _scrubber(_TOKENS_IN_ARGUMENTS.get())) \
        if args.impl is not None else None
    _check_suite_root(root, given=bool(target))
    for option, path in (("-o", args.output), ("--junit", args.junit), ("--markdown", args.markdown)):
        if path and path != "-" and _written_inside(path, str(root)):  # round 110: the results replaced a suite file
            raise UsageError(f"vectors {option} {printable(path)} is inside the suite {printable(str(root))}: "
                             "writing there would change the suite")
    try:
        xfail = v.read_xfail(args.xfail) if args.xfail else set()
    except OSError as exc:
        raise InputError(f"cannot read --xfail file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"--xfail file {args.xfail} is not UTF-8 text (one case id per line)") from None
    before = v.fingerprint(root)
    suite = v.load_suite(root)
    if not v.discover(root):
        raise InputError(f"no vector cases (expected.json) under {root}")
    found = [v.case_id(root, folder) for folder in v.discover(root)]
    _warn_about_suite(root, suite, found)
    missing = v.missing_cases(suite, found)
    with v.ending_with_signals():  # (in process too: the cases' staged copies are removed)
        results = v.run_suite(root, xfail, profile=args.profile, runner=runner, jobs=args.jobs, missing=missing)
    suite.changed_during_run = v.fingerprint(root) != before
    if suite.changed_during_run:
        warn(f"error: the files of {root} changed during the run (an implementation wrote to the suite?): "
             "the results are not trustworthy")
    unknown = xfail - {r.case_id for r in results}
    if unknown:
        raise UsageError(f"--xfail names unknown cases: {', '.join(sorted(unknown))}")
    info = v.RunInfo(suite, args.profile, args.impl if args.impl is not None else "xchat-verify (in-process)")
    _scrub_results(results, info)
    for path, fmt in ((args.output, args.format), (args.junit, "junit"), (args.markdown, "markdown")):
        if path and names_file(path):
            write_file(path, output_without_token(v.render_results(results, fmt, info)))
    if names_file(args.output):
        print(v.closing_line(results), file=sys.stderr)
    else:  # (the results name the implementation's command as given, which may hold the token: r137)
        write_stdout([output_without_token(v.render_results(results, args.format, info))])
    return EXIT_PASS if v.summary_ok(results) and not suite.changed_during_run else EXIT_FAIL


def _scrub_results(results: list[CaseResult], info: RunInfo) -> None:
    """The implementation's command and the cases' problems (which quote its stderr and report)
    scrubbed of the access token before they are rendered. Why: scrubbed only once rendered, the token
    escaped by a format (Markdown's ``\\_``, XML's ``&amp;``) or cut short by a problem (``...``)
    was printed all the same (r142)."""
    if not _TOKENS_IN_ARGUMENTS.get():
        return
    info.implementation = output_without_token(info.implementation)
    for result in results:
        result.problems = [output_without_token(problem) for problem in result.problems]


def _warn_about_suite(root: Path, suite: Suite, found: list[str]) -> None:
    """A suite that is not what a release holds, or whose index does not list every case, is run
    all the same (people write their own suites), with a warning that says so."""
    from .vectors import mislabelled, unlisted_cases
    if suite.modified:
        warn(f"warning: the files of {root} differ from the digest in its index.json "
             f"(suite {suite.version} was changed)")
    elif suite.release is None:
        warn(f"warning: the files of {root} match no released suite ({suite.actual_digest}): "
             "the results say nothing about conformance to a released version")
    elif mislabelled(suite):
        warn(f"warning: {root}'s index.json says suite {printable(suite.version or '')}, but its files are "
             f"release {suite.release}: the results are those of {suite.release}")
    unlisted = unlisted_cases(suite, found)
    if unlisted:
        warn(f"warning: {len(unlisted)} case(s) of {root} not listed in its index.json (run all the same): "
             + ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else ""))


def _vectors_export(args: argparse.Namespace, rest: list[str]) -> int:
    from .vectors import export_suite
    if not rest or len(rest) > 2:
        raise UsageError("usage: xchat-verify vectors export OUT.tar.gz [DIR]")
    used = [name for name in ("impl", "xfail", "output", "junit", "markdown", "timeout") if getattr(args, name)]
    if used or args.profile != "full" or args.jobs != 1 or args.format != "text":
        raise UsageError("vectors export takes no run options")
    out, root = Path(rest[0]), Path(rest[1] if len(rest) > 1 else "vectors")
    if rest[0] == "-":  # round 80: it wrote a file named "-"
        raise UsageError("vectors export -: name the tarball's file (it is not written to standard output)")
    check_output_path("vectors export", rest[0])  # its directory must exist: never created (round 80)
    _check_suite_root(root, given=len(rest) > 1)
    if _written_inside(rest[0], str(root)):  # round 80: `export vectors/index.json` replaced the suite's index
        raise UsageError(f"vectors export {printable(rest[0])} is inside the suite {printable(str(root))}: "
                         "writing there would change the suite")
    try:
        top, count = export_suite(root, out)
    except OSError as exc:
        raise InputError(f"cannot export to {out}: {exc.strerror or exc}") from None
    print(f"{printable(top)}: {count} files written to {printable(out)}", file=sys.stderr)
    return EXIT_PASS


def add_client_options(parser: argparse.ArgumentParser) -> None:
    policy = RetryPolicy()
    parser.add_argument("--token-file", metavar="PATH", help="read the OAuth 2.0 user access token from PATH "
                        "(default: the X_BEARER_TOKEN environment variable)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"API base URL (default {DEFAULT_BASE_URL}); "
                        "https only (http:// only to a loopback host), no credentials")
    parser.add_argument("--insecure-http", action="store_true",
                        help="allow a plain http:// base URL to a non-loopback host (the token travels in clear)")
    parser.add_argument("--max-wait", type=finite_float, default=policy.max_wait, metavar="SECONDS",
                        help=f"longest rate-limit wait to accept (default {policy.max_wait:g})")
    parser.add_argument("--max-retries", type=bounded_int, default=policy.max_retries, metavar="N",
                        help=f"retries for 429/5xx/timeouts/connection errors (default {policy.max_retries})")
    parser.add_argument("--backoff-base", type=finite_float, default=policy.backoff_base, metavar="SECONDS",
                        help=f"first retry delay; doubles each retry, with jitter (default {policy.backoff_base:g})")
    parser.add_argument("--timeout", type=finite_float, default=policy.timeout, metavar="SECONDS",
                        help=f"timeout of each connect and read (default {policy.timeout:g})")
    parser.add_argument("--request-deadline", type=finite_float, default=policy.request_deadline, metavar="SECONDS",
                        help=f"a whole request, however slowly the server sends (default {policy.request_deadline:g})")
    parser.add_argument("--max-response-mb", type=finite_float, default=policy.max_body_bytes / MB, metavar="MB",
                        help=f"refuse a response larger than this once decoded (default {policy.max_body_bytes // MB})")
    parser.add_argument("--max-json-values", type=bounded_int, default=policy.max_json_values, metavar="N",
                        help=f"refuse a response with more JSON values (default {policy.max_json_values})")


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Budgets per conversation and run: each one reached ends the history as incomplete."""
    opts = AuditOptions()
    assert opts.max_conversation_bytes is not None  # the default has a value
    parser.add_argument("--max-pages", type=bounded_int, default=opts.max_pages, metavar="N",
                        help=f"at most N pages per conversation (default {opts.max_pages})")
    parser.add_argument("--max-conversation-mb", type=finite_float, default=opts.max_conversation_bytes / MB, metavar="MB",
                        help=f"at most this much fetched per conversation (default {opts.max_conversation_bytes // MB})")
    parser.add_argument("--max-conversation-seconds", type=finite_float, default=opts.max_conversation_seconds,
                        metavar="SECONDS", help="at most this long fetching one conversation "
                                                f"(default {opts.max_conversation_seconds:g})")
    parser.add_argument("--max-empty-pages", type=bounded_int, default=opts.max_empty_pages, metavar="N",
                        help="at most N pages in a row that bring no new event: empty, or only events already "
                             f"fetched (default {opts.max_empty_pages})")
    parser.add_argument("--max-token-length", type=bounded_int, default=opts.max_token_length, metavar="N",
                        help=f"refuse a longer next_token (default {opts.max_token_length})")
    parser.add_argument("--max-page-items", type=bounded_int, default=opts.max_page_items, metavar="N",
                        help=f"refuse a page with more items: data, meta key events, errors (default {opts.max_page_items})")
    parser.add_argument("--max-users", type=bounded_int, default=opts.max_users, metavar="N",
                        help=f"fetch the keys of at most N users; the rest are reported (default {opts.max_users})")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error (docs/cli.md): argparse's own ``error``
    printed the whole usage block first (new-user review). Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(without_token(message))} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse's, but an unknown option names the subcommand whose help lists the right ones
        (round 80: ``verify --wrkers 2`` said "see xchat-verify --help")."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = _command_name(parsed, self.prog)
            unknown = without_token("unrecognized arguments: " + " ".join(extras))
            self.exit(EXIT_USAGE, f"{prog}: error: {printable(unknown)} "
                                  f"(see {prog} --help)\n")
        return parsed


class _VectorsFormatter(argparse.HelpFormatter):
    """Shows the suite argument as what ``cmd_vectors`` takes: one DIR, or ``export OUT.tar.gz
    [DIR]``. Its ``nargs="*"`` (needed for ``export``) printed ``[DIR ...]``, as if several suites
    could be run at once."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if action.dest == "target":
            return "[DIR | export OUT.tar.gz [DIR]]"
        return super()._format_args(action, default_metavar)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser. ``command``: the command a run names (``named_command``): only its
    parser is built whole, every other command is listed by its name and help alone, so usage,
    ``--help`` and errors read the same while a run no longer builds the options of twenty parsers
    (9-13 ms of every run; 3 ms now for verify's). None, or a name that is no command (its error
    lists them): every command."""
    parser = _Parser(
        prog="xchat-verify",
        description="Verify the signatures and sequence chain of X Chat conversation events.",
        epilog="Exit codes: 0 pass, 1 fail, 2 usage error, 3 could not complete.")
    parser.add_argument("--version", action="version", version=f"xchat-verify {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback behind an internal error (also XCHAT_VERIFY_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    whole = command not in _COMMAND_HELP
    for names, add in _BUILDERS:
        if whole or command in names:
            add(sub)
        else:
            for name in names:
                sub.add_parser(name, help=_COMMAND_HELP[name])
    return parser


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the options before a
    command take no value: --debug, --version, -h), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def _add_verify(sub: Any) -> None:
    verify = sub.add_parser("verify", help=_COMMAND_HELP["verify"],
                            description="Verify saved GET /2/chat/conversations/{id}/events response bodies.")
    verify.add_argument("pages", nargs="+", metavar="PAGE",
                        help="a file with one JSON response body or JSON Lines of bodies; - for stdin; "
                             "or a directory written by audit --save")
    verify.add_argument("--keys", metavar="KEYRING", help="trusted signing keys (keyring JSON)")
    verify.add_argument("--max-file-mb", type=bounded_int, default=DEFAULT_MAX_FILE_MB, metavar="MB",
                        help=f"refuse input files larger than this (default {DEFAULT_MAX_FILE_MB})")
    add_report_options(verify)
    add_evidence_key_options(verify)
    add_ledger_options(verify, receipts=False)
    verify.set_defaults(handler=cmd_verify)


def _add_audit(sub: Any) -> None:
    audit = sub.add_parser("audit", help=_COMMAND_HELP["audit"],
                           description="Fetch every events page and the participants' keys, verify and report. "
                                       "The token comes from X_BEARER_TOKEN or --token-file.")
    audit.add_argument("ids", nargs="+", metavar="ID", help="conversation id: A:B, A-B, a user id, or g<digits>")
    add_fetch_options(audit, "keep raw pages, key responses and a manifest in DIR")
    add_report_options(audit)
    add_ledger_options(audit, receipts=True)
    audit.set_defaults(handler=cmd_audit)


def _add_keys(sub: Any) -> None:
    keys = sub.add_parser("keys", help=_COMMAND_HELP["keys"])
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys_sub.required = True
    fetch = keys_sub.add_parser("fetch", help="save users' public keys as a --keys keyring")
    fetch.add_argument("user_ids", nargs="+", metavar="USER_ID")
    fetch.add_argument("--output", "-o", metavar="PATH", help="write the keyring here (default stdout)")
    add_client_options(fetch)
    fetch.set_defaults(handler=cmd_keys_fetch)
    add_key_commands(keys_sub)


def _add_transcript(sub: Any) -> None:
    transcript = sub.add_parser(
        "transcript", help=_COMMAND_HELP["transcript"],
        description="Verify as a participant (--identity-key) and write the decrypted conversation in chain "
                    "order, each message with its signature, chain and key-version proof and its findings, "
                    "edits and reactions attached to their targets, deletions shown. The plaintext goes only "
                    "to --output. Sources are saved pages or an evidence directory (offline), or conversation "
                    "ids (fetched like audit).")
    transcript.add_argument("sources", nargs="+", metavar="ID|PAGE",
                            help="conversation ids to fetch, or page files / - / one audit --save directory")
    transcript.add_argument("--format", choices=("jsonl", "markdown", "html"), default="jsonl",
                            help="transcript format (default jsonl)")
    transcript.add_argument("--output", "-o", metavar="PATH",
                            help="write the transcript to PATH (required; - for standard output)")
    transcript.add_argument("--keys", metavar="KEYRING", help="trusted signing keys, for files (keyring JSON)")
    add_trust_options(transcript)
    add_evidence_key_options(transcript)
    transcript.add_argument("--max-file-mb", type=bounded_int, default=DEFAULT_MAX_FILE_MB, metavar="MB",
                            help=f"refuse input files larger than this (default {DEFAULT_MAX_FILE_MB})")
    add_fetch_options(transcript, "with ids: keep raw pages (ciphertext), key responses and a manifest in DIR")
    transcript.set_defaults(handler=cmd_transcript)


def _add_archive(sub: Any) -> None:
    archive = sub.add_parser("archive", help=_COMMAND_HELP["archive"])
    archive_sub = archive.add_subparsers(dest="archive_command", metavar="ACTION")
    archive_sub.required = True
    averify = archive_sub.add_parser(
        "verify", help="verify page files, evidence directories and trees of them on Dask",
        description="Verify an archive of saved histories on a Dask cluster (a local one by default): the same "
                    "report and exit code as verify of the same inputs. Needs the dask extra.",
        epilog="Sources, groups and the report of several groups: docs/cli.md; sizing: docs/scale.md.")
    averify.add_argument("sources", nargs="+", metavar="SOURCE",
                         help="a page file (JSON, JSON Lines, gzip), a directory written by audit --save, or a "
                              "directory tree of them; local paths or fsspec URLs (s3://... with s3fs)")
    where = averify.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS "
                       "(tcp://host:8786); its workers need xchat-verify installed")
    where.add_argument("--workers", type=bounded_int, default=None, metavar="N",
                       help="start a local cluster of N worker processes (default and most: one per core)")
    averify.add_argument("--keys", metavar="KEYRING", help="trusted signing keys (keyring JSON); replaces the "
                         "saved keys of evidence directories, as verify DIR --keys does")
    averify.add_argument("--max-file-mb", type=bounded_int, default=DEFAULT_MAX_FILE_MB, metavar="MB",
                         help=f"refuse input files larger than this (default {DEFAULT_MAX_FILE_MB})")
    averify.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    add_ledger_options(averify, receipts=False)
    add_report_options(averify, in_process=False)
    add_evidence_key_options(averify, receipt=False)
    averify.set_defaults(handler=cmd_archive_verify)


def _add_vectors(sub: Any) -> None:
    vectors = sub.add_parser("vectors", help=_COMMAND_HELP["vectors"],
                             description="Run every case under DIR and compare with its expected.json, against "
                                         "xchat-verify itself or any implementation of the protocol (--impl); or "
                                         "write the suite as a tarball: vectors export OUT.tar.gz [DIR].",
                             epilog="Protocol, profiles and schemas: docs/vectors.md.",
                             formatter_class=_VectorsFormatter)
    vectors.add_argument("target", nargs="*", metavar="DIR", help="suite root (default: ./vectors, in the current directory); or "
                         "`export OUT.tar.gz [DIR]` to write the suite, its schemas and SHA256SUMS as a tarball")
    vectors.add_argument("--impl", metavar="COMMAND", help="the implementation under test: a command taking the "
                         "arguments of `xchat-verify verify` and printing a JSON report (split into words like a "
                         "shell, not run by one), e.g. \"xchat-verify verify --format json\"")
    vectors.add_argument("--profile", choices=("signatures", "chain", "full"), default="full",
                         help="what is compared: signature statuses; also chain statuses; everything (default)")
    vectors.add_argument("--timeout", type=finite_float, default=None, metavar="SECONDS",
                         help="with --impl: time allowed per case (default 30)")
    vectors.add_argument("--jobs", "-j", type=bounded_int, default=1, metavar="N", help="cases run at once (default 1)")
    vectors.add_argument("--format", choices=("text", "json", "junit", "markdown"), default="text",
                         help="results format (default text)")
    vectors.add_argument("--output", "-o", metavar="PATH", help="write the results to PATH")
    vectors.add_argument("--junit", metavar="PATH", help="also write JUnit XML results to PATH")
    vectors.add_argument("--markdown", metavar="PATH", help="also write a Markdown summary (the per-group table "
                         "and the failures) to PATH")
    vectors.add_argument("--xfail", metavar="FILE", help="case ids expected to fail, one per line (strict)")
    vectors.set_defaults(handler=cmd_vectors)


# what each command's line says in ``--help`` (also when it is only listed)
_COMMAND_HELP = {
    "verify": "verify saved X API events pages offline",
    "audit": "fetch conversations from the X API, verify, keep evidence",
    "keys": "public key tools",
    "transcript": "the decrypted conversation with each message's proof (needs your identity key)",
    **LEDGER_COMMAND_HELP,
    "archive": "verify archives of saved histories on a Dask cluster",
    "vectors": "run the conformance vector suite, or export it",
}
# the commands in --help's order, each group by the function that builds it whole
_BUILDERS: list[tuple[tuple[str, ...], Callable[[Any], None]]] = [
    (("verify",), _add_verify), (("audit",), _add_audit), (("keys",), _add_keys),
    (("transcript",), _add_transcript), (tuple(LEDGER_COMMAND_HELP), add_ledger_commands),
    (("archive",), _add_archive), (("vectors",), _add_vectors)]


def _command_name(args: argparse.Namespace, prog: str = "xchat-verify") -> str:
    """The command whose --help lists the options given: ``xchat-verify archive verify``, not its
    group ``xchat-verify archive`` (round 100: nested commands' usage errors pointed at the group)."""
    command = getattr(args, "command", None)
    if not command:
        return prog
    action = getattr(args, f"{command}_command", None)
    return f"{prog} {command} {action}" if isinstance(action, str) else f"{prog} {command}"


def _option_error(parser: argparse.ArgumentParser, args: argparse.Namespace, message: str) -> NoReturn:
    """A usage error found after parsing, pointing at the subcommand's help, as argparse's own errors
    do (round 80: "--workers 0" said "see xchat-verify --help")."""
    command = _command_name(args)
    parser.exit(EXIT_USAGE, f"{command}: error: {printable(without_token(message))} (see {command} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the command itself (console script, ``python -m verifier``), not a caller's program
        _skip_exit_collection()
    arguments = list(sys.argv[1:] if argv is None else argv)
    tokens = _tokens_in(arguments)  # once: every error line and the report read them
    _TOKENS_IN_ARGUMENTS.set(tokens)
    if not tokens:  # (the usual run: nothing to scrub)
        return _main(arguments)
    stderr = sys.stderr
    sys.stderr = _TokenScrubbed(stderr, tokens)
    try:
        return _main(arguments)
    finally:
        sys.stderr = stderr


_EXIT_HANDLER: list[bool] = []


def _skip_exit_collection() -> None:
    """At this process's exit, after the exit handlers registered later (the worker pool's among
    them), every object left is frozen (``gc.freeze``), so the interpreter's shutdown does not trace
    them all again to find cycles it would only free: after a 100,000-event run that was 0.05-0.1 s
    of serial time, 1-2 % of a two-worker run (round 133). Nothing here needs a finalizer at exit:
    outputs are closed and renamed, ledgers closed, temporary files removed, explicitly. Only for
    the command run as a process: a program calling ``main(args)`` keeps its own objects' finalizers."""
    if not _EXIT_HANDLER:
        atexit.register(gc.freeze)
        _EXIT_HANDLER.append(True)


class _TokenScrubbed:
    """Standard error with the access token an argument holds cut out of every line written to it.
    Why all of it: r121 found lines that quote a path ("receipt written to ...", ``vectors export``'s,
    the ``--metrics`` warning, ``--scheduler``'s) in several modules; each one scrubbed would leave
    the next one written unscrubbed."""

    def __init__(self, stream: Any, tokens: Sequence[str]) -> None:
        self._stream, self._tokens = stream, tokens
        # the token with a line break allowed between any two characters: rich's status display (audit,
        # archive verify on a terminal) passes the lines written meanwhile through its console, which folds
        # one wider than the terminal, token and all (r125: the token printed whole, in two pieces)
        self._folded = list(map(_folded, tokens))

    def _target(self) -> Any:
        """Where a line goes: standard error, or, when it was closed before the run (``2>&-``: Python's
        ``sys.stderr`` is None), where ``print(file=None)`` writes, standard output (None: nowhere), as
        in a run without the token. r125: it called None's write, an AttributeError that ended the
        run with a traceback and exit 1 (a FAIL) instead of its one line and exit 3."""
        return self._stream if self._stream is not None else sys.stdout

    def write(self, text: str) -> int:
        for token in self._tokens:
            text = redact_secret(text, token, REDACTED)
        if "\n" in text:
            for folded in self._folded:
                text = folded.sub(REDACTED, text)
        target = self._target()
        return target.write(text) if target is not None else len(text)

    def flush(self) -> None:
        target = self._target()
        if target is not None:
            target.flush()

    def isatty(self) -> bool:  # closed standard error is no terminal, whatever standard output is
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding...: the stream's own
        return getattr(self._target(), name)


def _main(argv: list[str]) -> int:
    parser = build_parser(named_command(argv))
    args = parser.parse_args(argv)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        _option_error(parser, args, "--workers must be at least 1")
    cpus = usable_cpus()
    if getattr(args, "workers", None) is not None and args.workers > cpus:
        # more could not run at once, and each worker process costs memory (--workers 100000
        # forked until the machine ran out of it); --scheduler's remote cluster is not --workers
        warn(f"warning: --workers {args.workers}: this process may run on {cpus} CPU(s); using {cpus}")
        args.workers = cpus
    if getattr(args, "max_file_mb", 1) < 1:
        _option_error(parser, args, "--max-file-mb must be at least 1")
    debug = args.debug or os.environ.get("XCHAT_VERIFY_DEBUG") == "1"
    try:
        check_output_paths(args)
        return args.handler(args)
    except UsageError as exc:  # pointing at the command's --help, as argparse's own errors do (round 100)
        warn(f"error: {exc} (see {_command_name(args)} --help)")
        return EXIT_USAGE
    except XChatVerifyError as exc:  # inputs, evidence, fetches: one line, exit 3
        warn(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("xchat-verify: interrupted", file=sys.stderr)
        return EXIT_INCOMPLETE
    except BrokenPipeError:  # whoever read standard output stopped (``| head``): one line, not a crash
        detach_stdout()
        print("xchat-verify: standard output was closed before the report was complete", file=sys.stderr)
        return EXIT_INCOMPLETE
    except MemoryError:
        print("xchat-verify: out of memory", file=sys.stderr)
        return EXIT_INCOMPLETE
    except Exception as exc:  # last line of defence: one line, never a traceback, nothing raw
        warn(f"internal error: {type(exc).__name__}: {exc}" + ("" if debug else " (--debug shows where)"))
        if debug:  # for bug reports: the traceback, escaped like every other line
            print(without_token(debug_traceback(exc)), file=sys.stderr)
        return EXIT_INCOMPLETE


def debug_traceback(exc: BaseException) -> str:
    """``--debug``'s traceback: one line per line of its frames, each escaped, and each exception's
    message (which may quote an input or a server) escaped as one line. Why: the whole text was
    escaped and every ``\\x0a`` turned back into a line break, so a newline in a message, or the
    four characters ``\\x0a`` themselves, started a line the input wrote."""
    import traceback
    formatted = traceback.TracebackException.from_exception(exc)
    messages: set[str] = set()
    pending = [formatted]
    while pending:  # every exception in the chain (causes, contexts, members of groups)
        current = pending.pop()
        message = getattr(current, "_str", None)  # CPython's message: escaped before it is laid out
        if isinstance(message, str):  # (a group's members get a margin on each of its lines)
            setattr(current, "_str", printable(message))  # noqa: B010
        messages.update(current.format_exception_only())
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += getattr(current, "exceptions", None) or []
    lines: list[str] = []
    for chunk in formatted.format():
        text = chunk.removesuffix("\n")
        parts = [text] if chunk in messages else text.split("\n")
        lines += [printable(part) for part in parts]
    return "\n".join(lines)


def run() -> None:
    sys.exit(main())
