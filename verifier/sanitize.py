"""Make text from untrusted input safe to show: on a terminal, in a log line, in any report.

Everything an event, a page or a server says (ids, error titles and details, file names) may hold
control characters: an ANSI escape can clear the screen or print a fake verdict, a carriage return
can overwrite a line, a bidi override can reorder what the reader sees. ``printable`` escapes them
visibly (``\\x1b``, ``\\u202e``) and leaves every other character, including non-ASCII text, as is.
"""

from __future__ import annotations

import re

# Every Unicode format character (category Cf: bidi controls, zero-width and invisible characters,
# the soft hyphen, tag characters; Unicode 15.1, which adds nothing to 15.0's list) and the line and
# paragraph separators: they change how text is ordered, joined or hidden on screen, and a text of
# them alone can hide a "verdict: PASS" (review: 139 of them passed). Hand-listed, not derived from
# ``unicodedata`` at import (a scan of every code point costs ~0.1 s of start-up), and checked
# against it by tests/test_hostile_text.py.
INVISIBLE = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
             "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb")
INVISIBLE_ASTRAL = ("\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
                    "\U000e0001\U000e0020-\U000e007f")
# Default-ignorable characters outside Cf: a browser or a terminal draws nothing for them, so an id
# holding one looks like the id without it (review 82: "2080400064\u034f508854274" and
# "2080400064508854274" were the same width in Chromium). They belong after letters of other scripts
# (an emoji's variation selector, a CJK ideograph's, Mongolian's), never after ASCII nor at the start:
# there they are escaped; a keycap ("1\ufe0f\u20e3") stays.
IGNORABLE = "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0"
IGNORABLE_ASTRAL = "\U000e0100-\U000e01ef"
_IGNORED = re.compile(f"(?<![^\\x00-\\x7f])[{IGNORABLE}](?!\\u20e3)")
_IGNORED_ASTRAL = re.compile(f"(?<![^\\x00-\\x7f])[{IGNORABLE_ASTRAL}]")
# Unassigned code points that are default-ignorable (Unicode's DerivedCoreProperties reserves them):
# no text holds them, and a browser draws nothing for them (review 85: "2080400064\u2065508854274",
# and the same with U+FFF0 or U+E0002, were the same width as "2080400064508854274" in Chromium).
# Escaped wherever they stand.
UNASSIGNED_IGNORABLE = "\u2065\ufff0-\ufff8"
UNASSIGNED_IGNORABLE_ASTRAL = "\U000e0000\U000e0002-\U000e001f\U000e0080-\U000e00ff\U000e01f0-\U000e0fff"
# Noncharacters: never text, and XML (JUnit) refuses U+FFFE and U+FFFF (review: one made the file unreadable).
NONCHARACTERS = "\ufdd0-\ufdef\ufffe\uffff"
NONCHARACTERS_ASTRAL = "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
# Two classes, not one: a class holding any code point past U+FFFF makes ``re`` search a list of
# ranges instead of a bitmap, 16-20 times slower on every text (review: reports rendered at half
# speed); the second runs only on text that has such code points.
ASTRAL = re.compile(f"[{INVISIBLE_ASTRAL}{UNASSIGNED_IGNORABLE_ASTRAL}{NONCHARACTERS_ASTRAL}]")

# C0 controls (tab and newline included: a one-line message must stay one line), DEL, C1 controls,
# the invisible characters above, noncharacters and lone surrogates (JSON may spell them,
# ``"\ud800"``; no file or terminal can encode them).
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{INVISIBLE}{UNASSIGNED_IGNORABLE}{NONCHARACTERS}\ud800-\udfff]")


def has_astral(text: str) -> bool:
    return not text.isascii() and max(text) > "\uffff"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# CI logs act on text too: the GitHub Actions runner reads every line a step prints (stdout and
# stderr) as a workflow command when it holds ``##[name]`` anywhere, or starts (after whitespace)
# with ``::name::`` (actions/runner ActionCommand.TryParse, TryParseV2): add-mask, stop-commands,
# error/warning/notice annotations, group. Review 82: a server's error title ``##[stop-commands]x``
# on stderr swallowed the action's own ``::error`` annotation, ``##[add-mask]FAIL`` hid the word
# FAIL, ``##[warning title=xchat-verify]verdict PASS`` forged an annotation. Escaped as ``\x23``
# and ``\x3a`` like any other character the reader's tools would act on.
WORKFLOW_V1 = "##["
_WORKFLOW_V2 = re.compile(r"\s*::")


def no_workflow_command(value: str) -> str:
    """``value`` with GitHub Actions workflow commands (``##[``, a leading ``::``) escaped."""
    if WORKFLOW_V1 in value:
        value = value.replace(WORKFLOW_V1, "\\x23#[")
    start = _WORKFLOW_V2.match(value)
    if start is not None:
        at = start.end() - 2
        value = value[:at] + "\\x3a" + value[at + 1:]
    return value


# Wide space separators (Zs but the space and the no-break space). A run of them at the end of a
# line hangs past the edge (CSS Text 3, white-space normal and pre-wrap), so the next word starts
# a new line at the left margin whatever the width: a one-line message became several lines, a
# fake sender line and proof line among them, in a ✅ entry of the transcript (review 82, U+3000 in
# Chromium). Two or more with only white space between are escaped; one alone (Japanese text,
# French punctuation) stays.
_WIDE_SPACES = "\u1680\u2000-\u200a\u202f\u205f\u3000"
_WIDE_SPACE_RUN = re.compile(f"[{_WIDE_SPACES}](?:\\s*[{_WIDE_SPACES}])+")
_WIDE_SPACE = re.compile(f"[{_WIDE_SPACES}]")


def _escape_run(match: re.Match[str]) -> str:
    return _WIDE_SPACE.sub(_escape, match.group())


# An emoji tag sequence (UTS #51): the black flag, tag letters or digits, the cancel tag; how the
# flags of England, Scotland and Wales are spelled. Their tags are kept: escaped, an honest flag read
# "🏴\U000e0067\U000e0062..." in every human format (review 85); the flag itself stays visible. Only
# the three recommended (RGI) flags: any other tag letters are drawn as nothing after a plain black
# flag, so "🏴" + 16 tags of hidden text, or two texts differing only in their tags, looked alike in a
# ✅ line (review 86).
_FLAG_TAGS = re.compile("(\U0001f3f4(?:" + "|".join("".join(chr(0xE0000 + ord(c)) for c in name)
                                                  for name in ("gbeng", "gbsct", "gbwls")) + ")\U000e007f)")


def _astral(value: str) -> str:
    """``value`` with its astral invisible characters escaped, but not a flag's tags."""
    if "\U0001f3f4" not in value:
        return _IGNORED_ASTRAL.sub(_escape, ASTRAL.sub(_escape, value))
    parts = _FLAG_TAGS.split(value)  # odd parts are flags
    return "".join(part if at % 2 else _IGNORED_ASTRAL.sub(_escape, ASTRAL.sub(_escape, part))
                   for at, part in enumerate(parts))


def printable(text: object) -> str:
    """``text`` as one line with every control or invisible formatting character escaped, no run
    of wide spaces that would break it into lines, and no CI workflow command in it."""
    value = _UNSAFE.sub(_escape, text if isinstance(text, str) else str(text))
    if not value.isascii():
        value = _IGNORED.sub(_escape, _WIDE_SPACE_RUN.sub(_escape_run, value))
        if max(value) > "\uffff":
            value = _astral(value)
    return no_workflow_command(value) if "#" in value or ":" in value else value


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` (a path, or a message naming one) with every lone surrogate escaped as ``printable``
    escapes it (``\\udcff``), the rest kept exact. Why: Python hands over the bytes of a file name
    that is not UTF-8 as lone surrogates, which no JSON encoder, UTF-8 file or database takes (review:
    such a name ended json, ndjson, sarif and --ledger runs as an internal error). One name always
    gives one text, in every format and in the ledger, which compares inputs between runs."""
    return text if text.isascii() else _SURROGATE.sub(_escape, text)


def safe_bytes_text(raw: bytes, limit: int = 200) -> str:
    """The first ``limit`` bytes of an untrusted body as printable text (invalid UTF-8 replaced)."""
    return printable(raw[:limit].decode("utf-8", "replace").strip())


MAX_KEPT_DEPTH = 16  # an API problem object is one or two levels deep; 16 keeps any honest one whole
_TOO_DEEP = "…(nested too deeply)"


def shallow(value: object, depth: int = 0) -> object:
    """A JSON value from a server, kept as it is down to ``MAX_KEPT_DEPTH`` levels and cut below.
    Why: msgspec decodes up to its own depth limit, but the value is later walked (``str``, the
    report encoders) from a deeper stack, where a few hundred levels raise RecursionError (fuzzing:
    an ``errors[]`` entry 988 levels deep ended the run as an internal error)."""
    if isinstance(value, dict):
        if depth >= MAX_KEPT_DEPTH:
            return _TOO_DEEP
        return {key: shallow(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        if depth >= MAX_KEPT_DEPTH:
            return _TOO_DEEP
        return [shallow(item, depth + 1) for item in value]
    return value


REDACTED = "[redacted: access token]"  # what stands where the access token was
SECRET_PREFIX = 8  # a cut-off secret's remaining characters, from this many on, are a secret too


def redact_secret(text: str, secret: str, replacement: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced, and a prefix of it (``SECRET_PREFIX``
    characters or more) that ends where text was cut (before a ``…``, or at the very end). Why: a
    message cut before it is scrubbed kept all of the token but its last character (review)."""
    if not secret:
        return text
    if secret in text:
        text = text.replace(secret, replacement)
    if len(secret) <= SECRET_PREFIX or secret[:SECRET_PREFIX] not in text:
        return text
    parts = text.split("…")
    for at, part in enumerate(parts):
        for size in range(min(len(secret) - 1, len(part)), SECRET_PREFIX - 1, -1):
            if part.endswith(secret[:size]):
                parts[at] = part[:-size] + replacement
                break
    return "…".join(parts)
