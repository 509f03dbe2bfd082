"""What a ``verify`` run loads (round 124): start-up is serial, before any worker starts, and every
module imported costs each run. Pinned here so that a module-level import does not creep back: the
package's own modules exactly, and the heavy ones a one-process JSON report never needs (the process
pool, the thread pool with ``logging``, pickling, the HTML, Markdown and text renderers, XML, the
DER key parser with the SSH formats), each imported only by the run that uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from verifier.testing.forge import build_conversation

REPO = Path(__file__).resolve().parent.parent

# the package's modules a one-process `verify --format json -o FILE` loads (the compiled twin aside)
VERIFY_MODULES = {
    "verifier", "verifier._version", "verifier.chain", "verifier.childproc", "verifier.cli", "verifier.clock",
    "verifier.columns", "verifier.engine", "verifier.envelope", "verifier.errors", "verifier.facts",
    "verifier.fastchain", "verifier.fastwire", "verifier.ids", "verifier.inputs", "verifier.keys",
    "verifier.layouts", "verifier.lazy", "verifier.ledger_cli", "verifier.model", "verifier.outputs", "verifier.pages",
    "verifier.paging", "verifier.parallel", "verifier.payload", "verifier.report", "verifier.report.common",
    "verifier.report.machine", "verifier.report.stream", "verifier.sanitize", "verifier.semantics",
    "verifier.settings", "verifier.signature", "verifier.signers", "verifier.views", "verifier.wire"}

# loaded only by the runs that use them (each cost a run 2-20 ms of start-up when imported by all)
NOT_LOADED = ["multiprocessing", "concurrent.futures", "logging", "pickle", "ctypes", "socket", "subprocess",
              "tempfile", "xml.etree.ElementTree", "html", "cryptography.hazmat.primitives.serialization",
              "verifier.report.html", "verifier.report.text", "verifier.report.markdown"]

_RUN = """
import json, sys
from verifier.cli import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""


def _loaded(tmp_path: Path, *options: str, pure: bool = False) -> tuple[int, set[str]]:
    """The exit code and the modules loaded by a fresh interpreter's ``xchat-verify verify`` of a
    signed history (an SPKI keyring, as ``keys fetch`` writes), with ``options``."""
    conversation = build_conversation(30, realistic_crypto=False)
    history, ring = tmp_path / "pages.jsonl", tmp_path / "ring.json"
    history.write_text("\n".join(json.dumps(body) for body in conversation.pages(10)))
    ring.write_text(json.dumps(conversation.keyring()))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "XCHAT_VERIFY_PURE_PYTHON": "1" if pure else "0"}
    out = subprocess.run([sys.executable, "-c", _RUN, "verify", str(history), "--keys", str(ring), *options],
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    code, modules = json.loads(out.splitlines()[-1])
    return code, set(modules)


@pytest.mark.parametrize("pure", [False, True])
def test_a_one_process_json_verify_loads_only_what_it_uses(tmp_path, pure):
    code, modules = _loaded(tmp_path, "--format", "json", "-o", str(tmp_path / "report.json"), "--workers", "1",
                            pure=pure)
    assert code == 0 and (tmp_path / "report.json").stat().st_size > 0
    assert {m for m in modules if m.split(".")[0] == "verifier"} - {"verifier._cfastwire"} == VERIFY_MODULES
    assert [m for m in NOT_LOADED if m in modules] == []


def test_the_formats_and_pools_left_out_still_load_when_used(tmp_path):
    """The other side: a text report loads its renderer; two workers on a small input run in one
    process (threads), which loads the thread pool but not the process pool."""
    code, modules = _loaded(tmp_path, "--format", "text", "--workers", "2")
    assert code == 0 and "verifier.report.text" in modules and "verifier.report.html" not in modules
    code, modules = _loaded(tmp_path, "--format", "html", "-o", str(tmp_path / "report.html"), "--workers", "1")
    assert code == 0 and "verifier.report.html" in modules and "verifier.report.text" not in modules


ARGVS = [["verify", "a.json", "b.jsonl", "--keys", "k.json", "--workers", "2", "--format", "json", "-o", "r.json"],
         ["--debug", "verify", "-"], ["audit", "A:B", "--save", "dir"], ["keys", "fetch", "1", "2"],
         ["keys", "new-receipt-key", "-o", "key"], ["transcript", "p.json", "-o", "t.jsonl"], ["ledger", "show"],
         ["ledger", "compare", "a", "b"], ["receipt", "verify", "r.json", "--public-key", "k"],
         ["archive", "verify", "s", "--workers", "2"], ["vectors", "export", "out.tar.gz"]]
USAGE_ERRORS = [["verify"], ["verify", "--wrkers", "2", "x"], ["audit"], ["nope"], [], ["keys"], ["ledger", "nope"],
                ["--debug"], ["vectors", "--profile", "all"], ["--", "verify", "x"]]


def test_a_run_builds_the_parser_of_the_command_it_names_only():
    """Round 124: every run built the options of all twenty parsers (35M instructions, 9-13 ms)
    before reading its own. Now the named command's parser is built whole and the others are listed
    by name and help: the same help, the same parse, the same usage errors."""
    from verifier.cli import _BUILDERS, _COMMAND_HELP, build_parser, named_command

    def subparser(parser, name):
        return parser._subparsers._group_actions[0].choices[name]
    full = build_parser()
    for name in _COMMAND_HELP:
        partial = build_parser(name)
        assert partial.format_help() == full.format_help()
        assert subparser(partial, name).format_help() == subparser(full, name).format_help()
        built_with = next(names for names, _ in _BUILDERS if name in names)  # (ledger and receipt: one group)
        others = [other for other in _COMMAND_HELP if other not in built_with]
        assert {other: len(subparser(partial, other)._actions) for other in others} == dict.fromkeys(others, 1)
    for argv in ARGVS:
        assert vars(build_parser(named_command(argv)).parse_args(argv)) == vars(full.parse_args(argv))
    assert [named_command(argv) for argv in (["--debug", "audit", "x"], ["-h"], ["--version"], [])] == \
        ["audit", None, None, None]


@pytest.mark.parametrize("argv", USAGE_ERRORS)
def test_a_usage_error_reads_as_the_whole_parser_says_it(argv, capsys):
    from verifier.cli import build_parser, named_command
    said = []
    for parser in (build_parser(), build_parser(named_command(argv))):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(argv)
        said.append((exited.value.code, capsys.readouterr()))
    assert said[0] == said[1] and said[0][0] == 2


@pytest.mark.parametrize("module", ["common", "html", "html_assets", "machine", "markdown", "text"])
def test_the_report_modules_imported_before_round_124_are_still_its_attributes(module):
    """r127: round 124 made the renderers lazy; ``verifier.report.machine`` and the others the package
    imported then were attributes of ``import verifier.report`` (and in its ``dir``), and still are."""
    code = f"import verifier.report as r; print(r.{module}.__name__, {module!r} in dir(r))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.stdout.split() == [f"verifier.report.{module}", "True"], out.stderr[-300:]


_EXIT = """
import gc, os, sys
from verifier.cli import main

class Cycle:  # garbage in a reference cycle: only a collection frees it (and runs this)
    def __del__(self):
        os.write(2, b"collected at exit\\n")

how = sys.argv.pop(1)  # "command": main() reads sys.argv as the console script does; "caller": main(args)
code = main() if how == "command" else main(sys.argv[1:])
cycle = Cycle()
cycle.me = cycle
del cycle
sys.exit(code)
"""


def test_a_cli_process_ends_without_collecting_its_objects_again(tmp_path):
    """Round 133: the interpreter's shutdown traced every object left to find cycles it would only
    free, 0.05-0.1 s of a 100,000-event run's serial tail; the CLI freezes them at exit instead. The
    run's own output and exit code are unchanged."""
    conversation = build_conversation(30, realistic_crypto=False)
    history, ring, report = tmp_path / "pages.jsonl", tmp_path / "ring.json", tmp_path / "report.json"
    history.write_text("\n".join(json.dumps(body) for body in conversation.pages(10)))
    ring.write_text(json.dumps(conversation.keyring()))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    for how in ("command", "caller"):
        done = subprocess.run([sys.executable, "-c", _EXIT, how, "verify", str(history), "--keys", str(ring), "--format",
                               "json", "-o", str(report)], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0
        assert "verdict: pass" in done.stderr
        # a program calling main(args) keeps its own objects' finalizers at exit
        assert ("collected at exit" in done.stderr) == (how == "caller")
        assert json.loads(report.read_text())["verdict"] == "pass"


_MEASURED = """
import os, runpy, sys

class Cycle:  # garbage in a reference cycle: only a collection frees it (and runs this)
    def __del__(self):
        os.write(2, b"collected at exit\\n")

sys.argv = sys.argv[1:]  # tests/measure.py and its arguments
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    cycle = Cycle()
    cycle.me = cycle
    del cycle
"""


def test_a_measured_run_ends_as_the_command_does(tmp_path):
    """Round 136: ``tests/measure.py``, what ``bench/bench_scale.py`` times, called ``main(args)`` as a
    program does, so the runs measured still collected every object at exit, which the command
    skips (a 3,000-event run: 29M instructions more)."""
    conversation = build_conversation(30, realistic_crypto=False)
    history, ring, report = tmp_path / "pages.jsonl", tmp_path / "ring.json", tmp_path / "report.json"
    history.write_text("\n".join(json.dumps(body) for body in conversation.pages(10)))
    ring.write_text(json.dumps(conversation.keyring()))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "MEASURE_OUT": str(tmp_path / "measured.json")}
    done = subprocess.run([sys.executable, "-c", _MEASURED, str(REPO / "tests" / "measure.py"), "verify", str(history),
                           "--keys", str(ring), "--format", "json", "-o", str(report)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0 and "verdict: pass" in done.stderr, done.stderr[-300:]
    assert "collected at exit" not in done.stderr
    assert json.loads((tmp_path / "measured.json").read_text())["peak_rss_mb"] > 0
    assert json.loads(report.read_text())["verdict"] == "pass"
