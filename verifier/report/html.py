"""The HTML report: one self-contained page per audit, for a person in a browser.

The page opens from a file and can load nothing: CSS and script are inline, and a strict
Content-Security-Policy (``default-src 'none'``, the script allowed only by its hash) forbids every
request, so a report can never call home or pull in a third party.

Escaping is the security boundary. Every string that can come from the input (ids, messages, API
error texts, file names, conversation ids, event types) is made printable (``sanitize.printable``:
control, ANSI and bidi characters shown as ``\\x1b``, ``\\u202e``) and then

* HTML-escaped (``html.escape``, quotes included) wherever it lands in markup or an attribute, or
* JSON-encoded with ``<``, ``>`` and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026`` inside the
  one ``<script type="application/json">`` block the table script reads. A script element's text is
  not entity-decoded, so HTML-escaping there would only show ``&lt;`` to the reader; the JSON escapes
  are what keep ``</script>`` from ever appearing in it. The script puts values into the page with
  ``textContent`` only.

Large histories stay usable: the per-event table is paginated by the script (status filter, text
search), and a timeline of more than ``TIMELINE_CELLS`` events aggregates consecutive events into
cells, each coloured by its worst marker, so every problematic event is still marked.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import __version__
from ..model import ERROR_SIG, HINTS, STATUS_SEVERITY, ConversationReport, EventReport, Report
from ..pages import api_error_text
from ..sanitize import printable
from .common import (
    _SEVERITY_RANK,
    ProblemGroup,
    event_label,
    key_source_words,
    problem_groups,
    proof_line,
    scoped_findings,
    unvouched_evidence_keys,
)
from .html_assets import CSS, EVENT_FIELDS, JS

TIMELINE_CELLS = 240  # at most this many cells per conversation's timeline; more events aggregate
MARKED_LISTED = 12  # marked events named below a timeline (the table lists them all)
INPUTS_LISTED = 200  # input rows shown without problems
_EXAMPLES = 3

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; img-src data:; "
       "base-uri 'none'; form-action 'none'")

# Timeline markers (CSS class m-NAME -> legend label), worst first: a cell takes its worst marker.
_MARKERS: dict[str, str] = {
    "signature": "signature failed (invalid, unknown_key, …)",
    "replay": "replay",
    "conflict": "conflict",
    "fork": "fork",
    "cycle": "cycle",
    "gap": "gap",
    "other-error": "other error (envelope_mismatch, …)",
    "duplicate": "duplicate",
    "non_monotonic": "non_monotonic",
    "other-warning": "other warning (untrusted, …)",
    "start": "start",
    "out_of_band": "out_of_band (meta key change)",
    "duplicate-info": "duplicate, expected (key change repeated in meta)",
}
_MARKER_RANK = {name: rank for rank, name in enumerate(_MARKERS)}
_NOT_PROBLEMS = {"start", "out_of_band", "duplicate-info"}  # marked on the timeline, but expected
_CHAIN_MARKED = {"start", "gap", "fork", "conflict", "duplicate", "cycle", "non_monotonic", "out_of_band"}
_NEUTRAL_STATUS = {"not_signed", "start", "out_of_band"}
_DIGITS = re.compile("[0-9]{1,15}")


def esc(value: object) -> str:
    """Untrusted text for HTML markup or a quoted attribute: printable, then entity-escaped."""
    return html.escape(printable(value), quote=True)


def script_json(value: object) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` at all
    (so no ``</script>`` or ``<!--``), and ASCII only."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _opt(value: str | None) -> str | None:
    return None if value is None else printable(value)


def when(msec: str | None, suffix: str = " UTC") -> str | None:
    """An (unsigned, server-given) creation time in UTC; anything that is not a plain millisecond
    count is shown as given (escaped by the caller)."""
    if msec is None:
        return None
    if _DIGITS.fullmatch(msec):
        try:
            return datetime.fromtimestamp(int(msec) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + suffix
        except (ValueError, OverflowError, OSError):
            pass
    return msec


def seq_key(event: EventReport) -> tuple:
    """Chain order (oldest first): decimal sequence ids compare as numbers (``0123`` is ``123``),
    without ``int()`` so a huge hostile id costs nothing; others go last, in input order; duplicates
    follow the copy the chain kept."""
    s = event.sequence_id
    copy = event.chain.status == "duplicate"  # after the copy the chain kept
    if s and s.isascii() and s.isdigit():
        digits = s.lstrip("0") or "0"
        return (0, len(digits), digits, copy, event.index)
    return (1, 0, "", copy, event.index)


# ------------------------------------------------------------------------------------- per event
def _severity_of(event: EventReport, code: str) -> str:
    """The severity the engine gave a status on this event (its finding), else the default."""
    for finding in event.findings:
        if finding.code == code:
            return finding.severity
    default = STATUS_SEVERITY.get(code)
    return default.value if default is not None else "info"


def status_class(event: EventReport, status: str) -> str:
    """CSS severity of a signature or chain status: ok, neutral, info, warning or error."""
    if status in ("valid", "linked"):
        return "ok"
    if status in _NEUTRAL_STATUS:
        return "neutral"
    return _severity_of(event, status)


def markers(event: EventReport) -> dict[str, list[str]]:
    """Timeline markers of one event: marker class -> the codes behind it (empty: nothing to mark)."""
    found: dict[str, list[str]] = {}
    chain = event.chain.status
    if chain in _CHAIN_MARKED:
        name = chain
        if chain == "duplicate" and _severity_of(event, chain) == "info":
            name = "duplicate-info"
        found.setdefault(name, []).append(chain)
    if event.signature.status in ERROR_SIG:
        found.setdefault("signature", []).append(event.signature.status)
    for finding in event.findings:
        if finding.code in (event.signature.status, chain) or finding.severity == "info":
            continue
        name = "replay" if finding.code == "replay" else f"other-{finding.severity}"
        found.setdefault(name, []).append(finding.code)
    return found


def worst(event: EventReport) -> str:
    """The worst finding severity on the event ('' when it has none)."""
    return min((f.severity for f in event.findings), key=_SEVERITY_RANK.__getitem__, default="")


def event_row(conv_index: int, event: EventReport) -> list:
    """One row of the embedded table data, in ``EVENT_FIELDS`` order, every input string printable."""
    shown = [f for f in event.findings if f.code not in (event.signature.status, event.chain.status)]
    return [conv_index, event.index, _opt(event.sequence_id), _opt(event.previous_sequence_id),
            _opt(event.message_id), _opt(event.sender_id), _opt(event.key_version),
            _opt(when(event.created_at_msec, suffix="")), _opt(event.event_type),
            printable(event.signature.status), printable(event.signature.detail),
            status_class(event, event.signature.status),
            printable(event.chain.status), printable(event.chain.detail),
            status_class(event, event.chain.status),
            [[printable(f.code), f.severity, printable(f.message)] for f in shown], worst(event)]


def event_codes(report: Report) -> Counter:
    """How many events carry each status or finding code (what the table's filter offers)."""
    counts: Counter = Counter()
    for conv in report.conversations:
        for event in conv.events:
            codes = {event.signature.status, event.chain.status, *(f.code for f in event.findings)}
            counts.update(codes)
    return counts


# ------------------------------------------------------------------------------------- timeline
@dataclass
class Cell:
    """One timeline cell: a run of consecutive events (in chain order) and what is marked in it."""

    first: EventReport
    last: EventReport
    size: int = 0
    codes: Counter = field(default_factory=Counter)
    marker: str = ""  # the worst marker class, '' when nothing is marked

    def add(self, event: EventReport, marks: dict[str, list[str]]) -> None:
        self.last = event
        self.size += 1
        for name, codes in marks.items():
            self.codes.update(codes)
            if not self.marker or _MARKER_RANK[name] < _MARKER_RANK[self.marker]:
                self.marker = name


def timeline_cells(events: Sequence[EventReport], marks: Sequence[dict[str, list[str]]] | None = None,
                   limit: int = TIMELINE_CELLS) -> list[Cell]:
    """``events`` (already in chain order) as at most ``limit`` cells of consecutive events;
    ``marks`` are their ``markers`` when the caller has them already."""
    if marks is None:
        marks = [markers(e) for e in events]
    per_cell = max(1, -(-len(events) // limit))
    cells: list[Cell] = []
    for start in range(0, len(events), per_cell):
        cell = Cell(events[start], events[start])
        for i in range(start, min(start + per_cell, len(events))):
            cell.add(events[i], marks[i])
        cells.append(cell)
    return cells


def _cell_html(conv: ConversationReport, cell: Cell) -> str:
    if cell.size == 1:
        e = cell.first
        title = (f"{event_label(conv, e)} · {when(e.created_at_msec) or 'no time'} · "
                 f"signature {e.signature.status} · chain {e.chain.status}")
    else:
        title = (f"{cell.size} events, seq {cell.first.sequence_id or '-'} … {cell.last.sequence_id or '-'}")
    if cell.codes:
        title += " · " + ", ".join(f"{code} ×{n}" if n > 1 or cell.size > 1 else code
                                   for code, n in sorted(cell.codes.items()))
    classes = "cell" + (f" marked m-{cell.marker}" if cell.marker else "")
    codes = " ".join(sorted(cell.codes))
    return (f'<span class="{classes}" data-markers="{esc(codes)}" data-first="{cell.first.index}" '
            f'data-size="{cell.size}" title="{esc(title)}"></span>')


def _legend() -> str:
    items = ['<li><span class="swatch cell"></span>linked, nothing to mark</li>']
    items += [f'<li><span class="swatch m-{name}"></span>{html.escape(label)}</li>'
              for name, label in _MARKERS.items()]
    return '<ul class="legend" aria-label="timeline legend">' + "".join(items) + "</ul>"


def _timeline(conv: ConversationReport) -> str:
    ordered = sorted(conv.events, key=seq_key)
    if not ordered:
        return '<p class="muted">No events.</p>'
    marks = [markers(e) for e in ordered]
    cells = timeline_cells(ordered, marks)
    per_cell = cells[0].size
    sparse = " sparse" if len(cells) <= 120 else ""
    strip = "".join(_cell_html(conv, c) for c in cells)
    first, last = ordered[0], ordered[-1]
    scale = "one cell per event" if per_cell == 1 else f"one cell per {per_cell} consecutive events"
    axis = (f'<div class="axis"><span>oldest: seq <span class="id">{esc(first.sequence_id or "-")}</span> · '
            f'{esc(when(first.created_at_msec) or "no time")}</span><span class="muted">{scale}</span>'
            f'<span>newest: seq <span class="id">{esc(last.sequence_id or "-")}</span> · '
            f'{esc(when(last.created_at_msec) or "no time")}</span></div>')
    return (f'<div class="timeline{sparse}" role="img" aria-label="chain timeline of '
            f'{esc(conv.conversation_id)}" data-conversation="{esc(conv.conversation_id)}">{strip}</div>'
            + axis + _marked_list(conv, ordered, marks))


def _marked_list(conv: ConversationReport, ordered: Sequence[EventReport],
                 marks: Sequence[dict[str, list[str]]]) -> str:
    """The problematic events of the timeline by name (the first few; the table has them all)."""
    items: list[str] = []
    total = 0
    for event, marked in zip(ordered, marks):
        found = {n: c for n, c in marked.items() if n not in _NOT_PROBLEMS}
        if not found:
            continue
        total += 1
        if len(items) < MARKED_LISTED:
            name = min(found, key=_MARKER_RANK.__getitem__)
            codes = ", ".join(sorted({c for v in found.values() for c in v}))
            items.append(f'<li data-index="{event.index}"><span class="swatch m-{name}"></span>'
                         f'<span class="code">{esc(codes)}</span><span class="id">{esc(event_label(conv, event))}'
                         f'</span></li>')
    if not total:
        return '<p class="small good">Nothing marked: every event links to the one before it.</p>'
    more = (f'<li class="muted">… and {total - len(items)} more marked event(s): filter the event table</li>'
            if total > len(items) else "")
    return f'<ul class="marked-list" aria-label="marked events">{"".join(items)}{more}</ul>'


def _counts(conv: ConversationReport) -> str:
    """The conversation's non-zero counts as chips, each coloured by the worst severity it had here."""
    seen: dict[str, str] = {}
    for event in conv.events:
        for f in event.findings:
            if f.code not in seen or _SEVERITY_RANK[f.severity] < _SEVERITY_RANK[seen[f.code]]:
                seen[f.code] = f.severity
    chips = []
    for code, n in conv.counts.items():
        if not n:
            continue
        cls = "ok" if code in ("valid", "linked") else "neutral" if code in _NEUTRAL_STATUS else seen.get(code, "info")
        chips.append(f'<span class="pill sev-{cls}">{esc(code)} {n:,}</span>')
    return '<div class="counts">' + "".join(chips) + "</div>"


def _conversations(report: Report) -> str:
    parts = ['<section class="card" id="timeline"><h2>Conversations and chain timelines</h2>',
             '<p class="small muted">Each conversation\'s chain in sequence order, oldest on the left. '
             "Sequence ids and times are unsigned metadata given by the server.</p>", _legend()]
    if not report.conversations:
        parts.append('<p class="muted">No conversation in the input.</p>')
    for conv in report.conversations:
        verdict = conv.verdict.upper()
        parts.append(f'<div class="conv" data-conversation="{esc(conv.conversation_id)}"><div class="head">'
                     f'<h3 class="id">{esc(conv.conversation_id)}</h3>'
                     f'<span class="sev sev-{"ok" if conv.verdict == "pass" else "error"}">{verdict}</span>'
                     f'<span class="muted small">{len(conv.events):,} event(s)</span>'
                     + ("" if conv.complete else '<span class="sev sev-error">incomplete</span>') + "</div>")
        parts.append(_counts(conv))
        for finding in conv.findings:
            parts.append(f'<p class="small"><span class="sev sev-{finding.severity}">{finding.severity}</span> '
                         f'<span class="code">{esc(finding.code)}</span> {esc(finding.message)}</p>')
        parts.append(_timeline(conv) + "</div>")
    return "".join(parts) + "</section>"


# ------------------------------------------------------------------------------------- sections
def _caveats(report: Report) -> list[str]:
    """What a verdict does not prove (unauthenticated keys, an incomplete history, an empty one
    accepted): the banner's alerts, and what the Problems section says instead of an all-clear when
    it lists nothing."""
    p = report.proof
    caveats = []
    if not p.keys_authenticated:
        caveats.append("signer keys NOT authenticated (saved in the evidence directory)"
                       if unvouched_evidence_keys(report) else
                       f"{p.embedded_keys:,} signature(s) checked with a key NOT authenticated" if _mixed_keys(report)
                       else "signer keys NOT authenticated")
    if not p.complete:
        caveats.append("history incomplete")
    if report.verdict == "pass" and any(f.code in ("no_events", "nothing_proven") and f.severity == "info"
                                        for _, f in scoped_findings(report)):  # r111: it read as an all-clear
        caveats.append("a history with no event, or nothing proven, accepted (--allow-empty)")
    return caveats


def _banner(report: Report) -> str:
    p = report.proof
    verdict = report.verdict
    input_errors = sum(len(i.errors) for i in report.inputs)
    chips = [f"{len(report.conversations):,} conversation(s)", f"{p.events:,} event(s)",
             f"{p.proven:,} of {p.signed:,} signatures proven"]
    if p.needs_conversation_key:
        chips.append(f"{p.needs_conversation_key:,} need a conversation key")
    alerts = _caveats(report)
    if input_errors:
        alerts.append(f"{input_errors} input error(s)")
    if report.strict:
        chips.append("strict: warnings fail")
    items = "".join(f"<li>{html.escape(c)}</li>" for c in chips)
    items += "".join(f'<li class="alert">{html.escape(a)}</li>' for a in alerts)
    return (f'<header class="banner {"pass" if verdict == "pass" else "fail"}" id="verdict" role="banner">'
            f'<div class="wrap"><div class="tool">xchat-verify report</div>'
            f'<h1 id="xv-verdict" data-verdict="{esc(verdict)}">Verdict: {esc(verdict.upper())}</h1>'
            f'<p class="proof" id="xv-proof">{esc(proof_line(report))}.</p>'
            f'<ul class="chips">{items}</ul></div></header>')


def _nav() -> str:
    links = [("problems", "Problems"), ("timeline", "Timelines"), ("events", "Events"), ("keys", "Signer keys"),
             ("findings", "Whole-history findings"), ("inputs", "Inputs")]
    return ('<nav class="toc"><div class="wrap">'
            + "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in links) + "</div></nav>")


def _problems(report: Report, groups: list[ProblemGroup], filterable: set[str]) -> str:
    if not groups:
        caveats = _caveats(report)
        if caveats:  # an all-clear under the banner's "NOT authenticated" read as one (review: r109)
            return ('<section class="card" id="problems"><h2>Problems</h2>'
                    '<p class="callout error" id="xv-not-all-clear">No error or warning finding, but this is NOT '
                    f"an all-clear: {esc('; '.join(caveats))} (see the verdict above).</p></section>")
        return ('<section class="card" id="problems"><h2>Problems</h2>'
                '<p class="callout ok">No errors or warnings.</p></section>')
    total = sum(g.count for g in groups)
    parts = [f'<section class="card" id="problems"><h2>Problems <span class="muted small">{len(groups)} kind(s), '
             f'{total:,} finding(s)</span></h2>']
    for g in groups:
        button = (f'<button type="button" data-code="{esc(g.code)}">show events</button>'
                  if g.code in filterable else "")
        level = "error" if g.fails else g.severity  # under --strict a warning fails too
        examples = "".join(f'<li><span class="id">{esc(e.where)}</span>: {esc(e.message)}</li>' for e in g.examples)
        if g.count > len(g.examples):
            examples += f'<li class="more">… and {g.count - len(g.examples):,} more</li>'
        parts.append(f'<div class="problem {level}" data-code="{esc(g.code)}"><div class="head">'
                     f'<span class="sev sev-{g.severity}">{g.severity}</span>'
                     f'<span class="code">{esc(g.code)}</span><span class="count">×{g.count:,}</span>'
                     + ("" if g.fails else '<span class="muted small">(does not fail the verdict)</span>')
                     + f'{button}</div>'
                     + (f'<p class="hint">{esc(g.hint)}</p>' if g.hint else "")
                     + f"<ul>{examples}</ul></div>")
    return "".join(parts) + "</section>"


@dataclass
class KeyUse:
    """How one signer key (user, version) was used across the report."""

    sender: str
    version: str
    events: int = 0
    verified: int = 0
    failed: int = 0
    embedded: int = 0
    conversations: set[str] = field(default_factory=set)
    first_seq: EventReport | None = None
    last_seq: EventReport | None = None
    first_ms: int | None = None
    last_ms: int | None = None
    _first_key: tuple = ()
    _last_key: tuple = ()

    def add(self, conv: ConversationReport, event: EventReport) -> None:
        self.events += 1
        self.verified += event.signature.status == "valid"
        self.failed += event.signature.status in ERROR_SIG
        self.embedded += any(f.code == "embedded_key_used" for f in event.findings)
        self.conversations.add(conv.conversation_id)
        key = seq_key(event)
        if self.first_seq is None or key < self._first_key:
            self.first_seq, self._first_key = event, key
        if self.last_seq is None or key > self._last_key:
            self.last_seq, self._last_key = event, key
        if event.created_at_msec and _DIGITS.fullmatch(event.created_at_msec):
            ms = int(event.created_at_msec)
            self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
            self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)


def key_uses(report: Report) -> list[KeyUse]:
    """Every signer key named by an event, per (sender, key version), in order of first use."""
    uses: dict[tuple[str, str], KeyUse] = {}
    for conv in report.conversations:
        for event in conv.events:
            if event.key_version is None and event.signature.status == "not_signed":
                continue
            key = (event.sender_id or "-", event.key_version or "(none)")
            use = uses.get(key)
            if use is None:
                use = uses[key] = KeyUse(*key)
            use.add(conv, event)
    return sorted(uses.values(), key=lambda u: (u.sender, u.first_ms if u.first_ms is not None else 0, u.version))


def _mixed_keys(report: Report) -> bool:
    """Trusted keys were given, yet some events were checked with their own (--allow-embedded-keys)."""
    return report.proof.embedded_keys > 0 and report.key_source != "embedded"


def _keys(report: Report) -> str:
    uses = key_uses(report)
    parts = ['<section class="card" id="keys"><h2>Signer keys per user and version</h2>']
    source = esc(key_source_words(report.key_source))
    if report.proof.keys_authenticated:
        parts.append(f'<p class="callout ok">Signer keys were authenticated: they came from {source}.</p>')
    elif unvouched_evidence_keys(report):
        parts.append('<p class="callout error" id="xv-keys-unauthenticated"><strong>Signer keys NOT '
                     "authenticated:</strong> they are the key responses saved in the evidence directory, which "
                     "whoever wrote or holds it controls (verify it with --keys you fetched yourself, or with "
                     "--receipt-public-key). A valid signature here proves nothing about who signed.</p>")
    elif _mixed_keys(report):
        parts.append(f'<p class="callout error" id="xv-keys-unauthenticated"><strong>{report.proof.embedded_keys:,} '
                     "signature(s) checked with a key NOT authenticated:</strong> the key was taken from the event "
                     f"itself (--allow-embedded-keys), which the server controls; the others came from {source}. "
                     "Those events' valid signatures prove nothing about who signed.</p>")
    else:
        parts.append('<p class="callout error" id="xv-keys-unauthenticated"><strong>Signer keys NOT '
                     "authenticated:</strong> they were taken from the events themselves, which the server "
                     "controls. A valid signature here proves nothing about who signed.</p>")
    if not uses:
        return "".join(parts) + '<p class="muted">No signed event names a key.</p></section>'
    spans = [(u.first_ms, u.last_ms) for u in uses if u.first_ms is not None and u.last_ms is not None]
    low = min((s[0] for s in spans), default=0)
    high = max((s[1] for s in spans), default=0)
    parts.append('<div class="scroll"><table id="xv-keys"><thead><tr><th>user</th><th>key version</th>'
                 '<th class="num">events</th><th class="num">verified</th><th class="num">failed</th>'
                 '<th class="num">other</th><th>first seen</th><th>last seen</th><th>in use</th></tr></thead><tbody>')
    for u in uses:
        other = u.events - u.verified - u.failed
        embedded = f'<span class="detail small bad"> {u.embedded:,} with an embedded key</span>' if u.embedded else ""
        parts.append(
            f'<tr><td class="id">{esc(u.sender)}</td><td class="id">{esc(u.version)}{embedded}</td>'
            f'<td class="num">{u.events:,}</td><td class="num good">{u.verified:,}</td>'
            f'<td class="num{" bad" if u.failed else ""}">{u.failed:,}</td><td class="num">{other:,}</td>'
            f"<td>{_seen(u.first_seq, u.first_ms)}</td><td>{_seen(u.last_seq, u.last_ms)}</td>"
            f"<td>{_keybar(u, low, high)}</td></tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts) + "</section>"


def _seen(event: EventReport | None, ms: int | None) -> str:
    time = when(str(ms)) if ms is not None else "no time"
    seq = event.sequence_id if event is not None and event.sequence_id else "-"
    return f'<span class="small">{esc(time)}</span><br><span class="id muted">seq {esc(seq)}</span>'


def _keybar(use: KeyUse, low: int, high: int) -> str:
    """Where in the report's time span the key was used (a bar; red when a signature failed)."""
    if use.first_ms is None or use.last_ms is None or high <= low:
        left, width = 0.0, 100.0
    else:
        left = (use.first_ms - low) * 100 / (high - low)
        width = max(0.0, (use.last_ms - use.first_ms) * 100 / (high - low))
    cls = ' class="failed"' if use.failed else ""
    return (f'<div class="keybar" title="{esc(f"{use.events} event(s) in {len(use.conversations)} conversation(s)")}">'
            f'<span{cls} style="left:{left:.2f}%;width:{width:.2f}%"></span></div>')


def _scoped(report: Report) -> str:
    rows = [(scope, f) for scope, f in scoped_findings(report)]
    parts = ['<section class="card" id="findings"><h2>Findings about whole histories and the run</h2>']
    if not rows:
        return "".join(parts) + '<p class="muted">None.</p></section>'
    parts.append('<div class="scroll"><table><thead><tr><th>scope</th><th>severity</th><th>code</th><th>message</th>'
                 "<th>what it means</th></tr></thead><tbody>")
    for scope, f in rows:
        parts.append(f'<tr><td class="id">{esc(scope)}</td><td><span class="sev sev-{f.severity}">{f.severity}</span>'
                     f'</td><td class="code">{esc(f.code)}</td><td>{esc(f.message)}</td>'
                     f'<td class="small muted">{esc(HINTS.get(f.code, ""))}</td></tr>')
    return "".join(parts) + "</tbody></table></div></section>"


def _inputs(report: Report) -> str:
    parts = [f'<section class="card" id="inputs"><h2>Inputs <span class="muted small">{len(report.inputs):,} '
             "page(s)</span></h2>"]
    if not report.inputs:
        return "".join(parts) + '<p class="muted">No input pages.</p></section>'
    troubled = [i for i in report.inputs if i.errors or i.api_errors]
    quiet = [i for i in report.inputs if not (i.errors or i.api_errors)]
    head = ('<div class="scroll"><table{id}><thead><tr><th>source</th><th class="num">first index</th>'
            '<th class="num">events</th><th>problems</th></tr></thead><tbody>')
    if troubled:
        parts.append('<p class="callout error">Some inputs could not be read in full, or the API reported '
                     "errors with them.</p>" + head.format(id=' id="xv-input-errors"'))
        for inp in troubled:
            problems = [f'<span class="finding error">input error: {esc(e)}</span>' for e in inp.errors]
            problems += [f'<span class="finding warning">API error: {esc(api_error_text(a))}</span>'
                         for a in inp.api_errors]
            parts.append(_input_row(inp.source, inp.first_index, inp.event_count, "<br>".join(problems)))
        parts.append("</tbody></table></div>")
    if quiet:
        shown = quiet[:INPUTS_LISTED]
        parts.append(f"<details{' open' if len(quiet) <= 20 else ''}><summary>{len(quiet):,} input(s) read "
                     "without problems</summary>" + head.format(id=""))
        parts += [_input_row(i.source, i.first_index, i.event_count, "") for i in shown]
        parts.append("</tbody></table></div>")
        if len(quiet) > len(shown):
            parts.append(f'<p class="small muted">… and {len(quiet) - len(shown):,} more.</p>')
        parts.append("</details>")
    return "".join(parts) + "</section>"


def _input_row(source: str, first: int, count: int, problems: str) -> str:
    return (f'<tr><td class="id">{esc(source)}</td><td class="num">{first:,}</td><td class="num">{count:,}</td>'
            f"<td>{problems}</td></tr>")


def other_findings(report: Report) -> bool:
    """Does any event have a finding beyond its two statuses (else the table drops that column)?"""
    return any(f.code not in (e.signature.status, e.chain.status)
               for c in report.conversations for e in c.events for f in e.findings)


def _events(report: Report, codes: Counter) -> str:
    total = sum(len(c.events) for c in report.conversations)
    options = ['<option value="">all statuses</option>', '<option value="@problems">errors and warnings</option>']
    options += [f'<option value="{esc(code)}">{esc(code)} ({n:,})</option>' for code, n in sorted(codes.items())]
    conv_select = ""
    if len(report.conversations) > 1:
        conv_select = ('<label>conversation <select id="xv-conv"><option value="">all</option>'
                       + "".join(f'<option value="{i}">{esc(c.conversation_id)}</option>'
                                 for i, c in enumerate(report.conversations)) + "</select></label>")
    conv_head = "<th>conversation</th>" if len(report.conversations) > 1 else ""
    return (f'<section class="card" id="events"><h2>Events <span class="muted small">{total:,} in input order'
            "</span></h2>"
            '<noscript><p class="callout error">The event table needs JavaScript. Use --format json, or '
            "--format text --all-events.</p></noscript>"
            '<div class="controls" id="xv-controls" hidden>'
            f'<label>status <select id="xv-status">{"".join(options)}</select></label>{conv_select}'
            '<label>search <input type="search" id="xv-search" placeholder="id, sender, type, message…" '
            'autocomplete="off"></label>'
            '<label>per page <select id="xv-size"><option value="25">25</option>'
            '<option value="50" selected>50</option><option value="100">100</option><option value="500">500</option>'
            "</select></label></div>"
            '<div class="scroll"><table id="xv-events"><thead><tr><th class="num">#</th>'
            f"{conv_head}<th>sequence / previous</th><th>type / message id</th><th>sender / key</th>"
            "<th>created (UTC)</th><th>signature</th><th>chain</th>"
            + ("<th>other findings</th>" if other_findings(report) else "") + "</tr></thead>"
            "<tbody></tbody></table></div>"
            '<div class="pager"><span class="status" id="xv-page-info" aria-live="polite"></span>'
            '<button type="button" id="xv-first">« first</button><button type="button" id="xv-prev">‹ prev</button>'
            '<button type="button" id="xv-next">next ›</button><button type="button" id="xv-last">last »</button>'
            "</div></section>")


def _footer(report: Report) -> str:
    return (f'<footer><div class="wrap"><span>xchat-verify {esc(__version__)}</span>'
            f'<span>schema {esc(report.schema)}</span><span>strict: {"yes" if report.strict else "no"}</span>'
            f"<span>signer keys from: {esc(report.key_source)}</span>"
            "<span>all input text escaped; this page makes no network request</span></div></footer>")


def _data(report: Report) -> str:
    rows = [event_row(i, event) for i, conv in enumerate(report.conversations) for event in conv.events]
    payload = {"fields": list(EVENT_FIELDS), "conversations": [printable(c.conversation_id) for c in report.conversations],
               "events": rows, "otherFindings": other_findings(report)}
    return f'<script type="application/json" id="xv-data">{script_json(payload)}</script>'


def script_hash(script: str = JS) -> str:
    """The CSP source for the inline script: base64 SHA-256 of its exact text."""
    return base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (see the module docstring for its guarantees)."""
    codes = event_codes(report)
    groups = problem_groups(report, _EXAMPLES)
    title = f"xchat-verify: {report.verdict.upper()}"
    body = [_banner(report), _nav(), '<main class="wrap">', _problems(report, groups, set(codes)),
            _conversations(report), _events(report, codes), _keys(report), _scoped(report), _inputs(report),
            "</main>", _footer(report), _data(report), f"<script>{JS}</script>"]
    head = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP.format(hash=script_hash())}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>")
    return head + "".join(body) + "</body></html>\n"
