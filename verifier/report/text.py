"""The terminal report: the verdict first and last, problems grouped by kind, then (for small
histories or with ``--all-events``) every event in a table that fits the terminal.

All input text is escaped (``sanitize.printable``) and handed to rich as ``Text``, never as markup,
so nothing in an event or a page can restyle the report or print a fake verdict.
"""

from __future__ import annotations

import io
import textwrap

from ..model import ChainStatus, ConversationReport, EventReport, Report, Severity, SigStatus, Verdict
from ..sanitize import printable
from .common import ProblemGroup, problem_groups, proof_line

TABLE_UP_TO = 50  # events in a conversation shown one by one without --all-events
BOXED_UP_TO = 1000  # above this, --all-events prints plain aligned columns (fast) instead of a boxed table
# Boxed tables of a whole report: about 1 ms a row and 1 ms a table; past this many rows and tables
# in all, the rest are plain columns (round 78: 40,000 one-event conversations, 2.6 MB, took 80 s)
BOXED_IN_ALL = 2000
_EXAMPLES = 3
_STYLE: dict[str, str] = {SigStatus.VALID: "green", SigStatus.NOT_SIGNED: "dim", SigStatus.NEEDS_CONVERSATION_KEY: "yellow",
          ChainStatus.LINKED: "green", ChainStatus.START: "cyan", ChainStatus.OUT_OF_BAND: "cyan",
          ChainStatus.DUPLICATE: "yellow", ChainStatus.NON_MONOTONIC: "yellow"}
_SEVERITY_STYLE: dict[str, str] = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def render_text(report: Report, *, color: bool = False, width: int | None = None, all_events: bool = False) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width or 120,
                      highlight=False, emoji=False)
    whole = width is None  # a file or a pipe, not a terminal: no line is cut or wrapped (new-user review)
    _verdict(console, report)
    console.print()
    _conversations(console, report, whole)
    groups = problem_groups(report, _EXAMPLES)
    if groups:
        console.print()
        _problems(console, groups, whole)
    boxed = 0  # rows and tables boxed so far
    for conv in report.conversations:
        if conv.events and (all_events or len(conv.events) <= TABLE_UP_TO):
            console.print()
            if len(conv.events) > BOXED_UP_TO or boxed + len(conv.events) + 1 > BOXED_IN_ALL:  # plain columns
                console.file.write(_plain_table(conv, None if whole else console.width))
            else:
                _event_table(console, conv, console.width)
                boxed += len(conv.events) + 1
    hidden = [c for c in report.conversations if not all_events and len(c.events) > TABLE_UP_TO]
    if hidden:
        console.print()
        console.print(f"(events of {len(hidden)} conversation(s) with more than {TABLE_UP_TO} events are not "
                      "listed one by one: use --all-events, or --format json)", style="dim")
    console.print()
    _verdict(console, report)
    return buffer.getvalue()


def _verdict(console, report: Report) -> None:
    from rich.text import Text
    line = Text()
    line.append(f"verdict: {report.verdict.upper()}", style="bold green" if report.verdict == Verdict.PASS else "bold red")
    line.append(f" — {len(report.conversations)} conversation(s), {report.proof.events} event(s); "
                f"{proof_line(report)}" + ("; strict" if report.strict else ""))
    console.print(line, soft_wrap=True)  # one line, whatever the width: scripts read the last line


def _conversations(console, report: Report, whole: bool = False) -> None:
    from rich.text import Text
    for conv in report.conversations:
        line = Text("  ")
        line.append(shown_id(conv.conversation_id))
        line.append(f"  {conv.verdict.upper()}", style="green" if conv.verdict == Verdict.PASS else "bold red")
        counts = " · ".join(f"{k} {v}" for k, v in conv.counts.items() if v)
        line.append(f"  {len(conv.events)} events" + (f": {counts}" if counts else ""))
        if not conv.complete:
            line.append("  (incomplete)", style="bold red")
        console.print(line, soft_wrap=whole)


def _problems(console, groups: list[ProblemGroup], whole: bool = False) -> None:
    from rich.text import Text
    total = sum(g.count for g in groups)
    console.print(Text(f"Problems ({len(groups)} kind(s), {total} finding(s))", style="bold"))
    for g in groups:
        head = Text("  ")
        head.append(f"{g.severity:<7}", style=_SEVERITY_STYLE[g.severity] if g.fails or g.severity != Severity.ERROR else "")
        head.append(f" {g.code} ×{g.count}", style="bold")
        if g.hint:
            head.append(f" — {g.hint}", style="dim")
        console.print(head, soft_wrap=whole)
        for example in g.examples:
            line = printable(f"      {example.where}: {example.message}")
            if whole:
                console.print(Text(line), soft_wrap=True)
            else:  # a terminal: wrapped at its width under a hanging indent (round 80: cut with "…", an
                # 80-column terminal lost what was wrong, "ECDSA…"); no continuation starts a line unindented
                wrapped = textwrap.wrap(line, max(console.width, 20), initial_indent="", subsequent_indent=" " * 8,
                                        break_on_hyphens=False, drop_whitespace=True)
                wrapped[0] = "      " + wrapped[0].lstrip()
                console.print(Text("\n".join(wrapped)), overflow="ellipsis", no_wrap=True, crop=True)
        if g.count > len(g.examples):
            console.print(f"      … and {g.count - len(g.examples)} more", style="dim")


def _event_table(console, conv: ConversationReport, width: int) -> None:
    """A table that fits ``width``: ids never wrap; type, sender and findings give way first."""
    from rich.table import Table
    from rich.text import Text
    events = conv.events
    widest = {
        "#": max(len(str(e.index)) for e in events),
        "sequence": max(len(printable(e.sequence_id or "-")) for e in events),
        "type": min(28, max(len(_short_kind(e.event_type)) for e in events)),
        "sender": max(len(printable(e.sender_id or "-")) for e in events),
        "signature": max(len(e.signature.status) for e in events),
        "chain": max(len(e.chain.status) for e in events),
    }
    shown = ["#", "sequence", "type", "sender", "signature", "chain"]

    def needed(columns: list[str], findings: int) -> int:  # cell widths + 3 per column of padding and rule
        return sum(widest[c] for c in columns) + findings + 3 * (len(columns) + (1 if findings else 0)) + 1

    for optional in ("type", "sender"):  # give way to the findings column, least useful first
        if needed(shown, 24) > width:
            shown.remove(optional)
    show_type, show_sender = "type" in shown, "sender" in shown
    show_findings = needed(shown, 16) <= width
    table = Table(title=Text(f"events of {shown_id(conv.conversation_id)} — {conv.verdict.upper()}",
                             style="bold"), title_justify="left", expand=False)
    table.add_column("#", no_wrap=True, justify="right")
    table.add_column("sequence", no_wrap=True)
    if show_type:
        table.add_column("type", no_wrap=True, overflow="ellipsis", max_width=28)
    if show_sender:
        table.add_column("sender", no_wrap=True)
    table.add_column("signature", no_wrap=True)
    table.add_column("chain", no_wrap=True)
    if show_findings:
        table.add_column("findings", overflow="fold")
    for e in events:
        row: list[Text | str] = [str(e.index), Text(printable(e.sequence_id or "-"))]
        if show_type:
            row.append(Text(printable(_short_kind(e.event_type))))
        if show_sender:
            row.append(Text(printable(e.sender_id or "-")))
        row += [_status(e.signature.status), _status(e.chain.status)]
        if show_findings:
            row.append(Text(printable(_event_findings(e))))
        table.add_row(*row)
    console.print(table)


def _plain_table(conv: ConversationReport, width: int | None) -> str:
    """Every event as one line of aligned columns (ids never wrap; on a terminal findings are cut at
    ``width``; in a file or a pipe, ``width`` None, nothing is cut: round 80, they were cut at 120)."""
    rows = [(str(e.index), printable(e.sequence_id or "-"), printable(_short_kind(e.event_type)),
             printable(e.sender_id or "-"), str(e.signature.status), str(e.chain.status),
             printable(_event_findings(e))) for e in conv.events]
    head = ("#", "sequence", "type", "sender", "signature", "chain", "findings")
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(6)]
    out = [f"events of {shown_id(conv.conversation_id)} — {conv.verdict.upper()}"]
    for row in [head, *rows]:
        line = "  ".join(cell.rjust(widths[0]) if i == 0 else cell.ljust(widths[i]) for i, cell in enumerate(row[:6]))
        whole = (line + "  " + row[6]).rstrip()
        out.append(whole if width is None else whole[:max(width, len(line))])
    return "\n".join(out) + "\n"


_ID_SHOWN = 80  # characters of a conversation id shown; real ones have at most 40


def shown_id(conversation_id: str) -> str:
    """A conversation id as the text report shows it: escaped, its spaces too, and cut. Why: a page
    file's conversation id is neither signed nor checked, and one padded with spaces wrapped so that
    "verdict: PASS ..." began a line of a failing report (review)."""
    text = printable(conversation_id).replace(" ", "\\x20")
    return text if len(text) <= _ID_SHOWN else text[:_ID_SHOWN] + "…"


def _short_kind(kind: str | None) -> str:
    if not kind:
        return "-"
    return kind.replace("GroupChangeEvent.", "Group.").replace("ConversationMetadataChangeEvent.", "Metadata.")


def _event_findings(e: EventReport) -> str:
    """Findings beyond the two statuses the row already shows (information about them is left out)."""
    return "; ".join(f"{f.code}: {f.message}" for f in e.findings
                     if f.code not in (e.signature.status, e.chain.status) and f.severity != Severity.INFO)


def _status(status: str):
    from rich.text import Text
    return Text(status, style=_STYLE.get(status, "bold red"))
