"""The HTML report (--format html): self-contained, escaped, and working in a real browser.

Unit tests read the page as text and with html.parser: escaping of hostile input (the security
boundary), no URL that could be fetched, the CSP and its script hash, timeline aggregation. Browser
tests load reports in the system Chromium (headless, driven by Selenium) from file:// and check the
DOM, the console and the network log. One browser serves the whole module.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from helpers import ALICE, REPO, ev, page

import verifier
from verifier.cli import load_keyring, load_pages, main
from verifier.model import REPORT_SCHEMA, Check, ConversationReport, EventReport, Finding, InputReport, Proof, Report
from verifier.report import FORMATS, render
from verifier.report.html import CSP, TIMELINE_CELLS, markers, render_html, seq_key, timeline_cells, when
from verifier.sanitize import printable
from verifier.testing import browser as chromium
from verifier.testing.forge import Identity, build_conversation

pytestmark = pytest.mark.slow  # a real Chromium: CI and `pytest --slow`

EXAMPLES = REPO / "examples"
# Terminal and bidi tricks (as in test_hostile_text), plus markup that would break out of an element,
# an attribute (both quotes) or the JSON data block.
EVIL = ("\x1b[2J\x1b]0;pwned\x07\r\n\u202eevil\u200b\x9b31m <script>alert(1)</script> </script><!-- "
        "\"'><img src=x onerror=alert(2)> & &amp; \u2028")
HOSTILE_NAME = 'p<b>"\'&\u202e.json'
DANGEROUS = ["\x1b", "\x07", "\r", "\u202e", "\u200b", "\x9b", "\u2028"]
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "div", "h1", "h2", "h3", "p", "ul",
                "li", "nav", "a", "main", "section", "span", "button", "table", "thead", "tbody", "tr", "th", "td",
                "strong", "br", "label", "select", "option", "input", "noscript", "details", "summary", "footer",
                "script"}


# ------------------------------------------------------------------------------------- fixtures
def tampered_pages() -> list[str]:
    return sorted(glob.glob(str(EXAMPLES / "tampered" / "*.json")))


@pytest.fixture(scope="module")
def tampered_html(tmp_path_factory) -> tuple:
    """The tampered example's report, written by the CLI exactly as a user would."""
    out = tmp_path_factory.mktemp("tampered") / "report.html"
    code = main(["verify", *tampered_pages(), "--keys", str(EXAMPLES / "keyring.json"),
                 "--format", "html", "-o", str(out)])
    assert code == 1
    report = verifier.verify_pages(load_pages(tampered_pages(), 1 << 24),
                                   load_keyring(str(EXAMPLES / "keyring.json"), 1 << 24))
    return out, report


@pytest.fixture(scope="module")
def large_report() -> Report:
    """3,000 generated events with one missing in the middle (a gap), keys from the keyring."""
    conv = build_conversation(3001, realistic_crypto=False, seed="html")
    del conv.events[1500]
    ring = verifier.Keyring.from_json(json.dumps(conv.keyring()))
    return verifier.verify_pages(conv.pages(), ring)


@pytest.fixture(scope="module")
def hostile_cli_html(tmp_path_factory) -> str:
    """Through the CLI and the engine: hostile API errors, envelope fields and file name."""
    tmp = tmp_path_factory.mktemp("hostile")
    body = page(ev(seq=2, prev=1), errors=[{"title": EVIL, "detail": EVIL, "type": "https://example.test/x"}])
    item = body["data"][0]
    item["sender_id"] = EVIL  # an envelope mismatch whose message quotes the hostile text
    item["sequence_id"] = EVIL
    body["data"].append({"encoded_event": base64.b64encode(b"\x0b\x00\x01\x00\x00\x00\x03abc\x00").decode(),
                         "conversation_id": EVIL})
    name = tmp / HOSTILE_NAME
    name.write_text(json.dumps(body))
    ring = tmp / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    out = tmp / "report.html"
    assert main(["verify", str(name), "--keys", str(ring), "--format", "html", "-o", str(out)]) == 1
    return out.read_text(encoding="utf-8")


def hostile_report() -> Report:
    """EVIL in every string field a report can carry (ids, types, key versions, times, details, codes,
    messages, conversation id, input source and errors, API errors, key source)."""
    def event(index: int, sig: str, chain: str) -> EventReport:
        return EventReport(index, EVIL, EVIL, EVIL, EVIL, EVIL, Check(sig, EVIL), Check(chain, EVIL), False,
                           [Finding(sig, "error", EVIL), Finding(chain, "error", EVIL),
                            Finding("envelope_mismatch", "error", EVIL), Finding(EVIL, "warning", EVIL)],
                           key_version=EVIL, created_at_msec=EVIL)
    conv = ConversationReport(EVIL, "fail", {"invalid": 1, EVIL: 1}, [event(0, "invalid", "gap"), event(1, EVIL, EVIL)],
                              [Finding("incomplete", "error", EVIL)], complete=False)
    return Report(REPORT_SCHEMA, "fail", [conv], strict=True, key_source=EVIL,
                  inputs=[InputReport(EVIL, 0, 2, [EVIL], [{"title": EVIL, "detail": EVIL, "type": EVIL}]),
                          InputReport(EVIL, 2, 0)],
                  findings=[Finding("no_trusted_keys", "error", EVIL)], proof=Proof(events=2, signed=2))


@pytest.fixture(scope="module", params=["cli", "every-field"])
def hostile_html(request, hostile_cli_html) -> str:
    return hostile_cli_html if request.param == "cli" else render_html(hostile_report())


class Page(HTMLParser):
    """Tags, attributes, text and script bodies of a page, as a browser's tokenizer sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_script: dict | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts.append((self._in_script, data))
        else:
            self.text.append(data)


# ------------------------------------------------------------------------------------- unit tests
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_the_tampered_example(tampered_html, fmt):
    assert "html" in FORMATS
    assert render(tampered_html[1], fmt).strip()


def test_page_shows_verdict_problems_timeline_keys_and_footer(tampered_html):
    path, report = tampered_html
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text == render_html(report)
    doc = Page(text)
    h1 = [attrs for tag, attrs in doc.tags if tag == "h1"]
    assert h1 == [{"id": "xv-verdict", "data-verdict": "fail"}] and "Verdict: FAIL" in text
    assert "9 of 13 signatures proven; 3 need a conversation key; 1 not proven; signer keys from the keyring" in text
    problems = [a["data-code"] for t, a in doc.tags if t == "div" and "problem" in a.get("class", "")]
    assert problems == ["gap", "invalid"]
    cells = [a for t, a in doc.tags if t == "span" and a.get("class", "").startswith("cell")]
    assert len(cells) == 13  # one cell per event
    marked = {a["data-markers"]: a["class"] for a in cells if "marked" in a["class"]}
    assert marked["invalid"] == "cell marked m-signature" and marked["gap"] == "cell marked m-gap"
    assert marked["start"] == "cell marked m-start"
    keys = [t for t, a in doc.tags if a.get("id") == "xv-keys"]
    assert keys and "1765382634817" in text and "xv-keys-unauthenticated" not in text
    assert f"xchat-verify {verifier.__version__}" in text and "schema xchat-verify/report/v1" in text
    assert "strict: no" in text


def test_no_url_can_be_fetched_and_the_csp_allows_only_our_script(tampered_html, hostile_html):
    text = tampered_html[0].read_text(encoding="utf-8")
    assert not re.search(r"https?:|//[a-z0-9]", text, re.I)  # no URL at all, not even in the CSP
    for page_text in (text, hostile_html):
        doc = Page(page_text)
        for tag, attrs in doc.tags:
            assert not {"src", "srcset", "action", "formaction", "poster", "data"} & set(attrs), (tag, attrs)
            assert tag not in ("link", "img", "iframe", "object", "embed", "base", "form", "svg", "video", "audio")
            if "href" in attrs:
                assert tag == "a" and attrs["href"].startswith("#"), attrs
        assert "url(" not in page_text and "@import" not in page_text
        csp = [a["content"] for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert len(csp) == 1 and csp[0].startswith("default-src 'none'; ")
        assert "connect-src" not in csp[0] and "unsafe-eval" not in csp[0]
        code = [body for attrs, body in doc.scripts if not attrs]
        data = [body for attrs, body in doc.scripts if attrs == {"type": "application/json", "id": "xv-data"}]
        assert len(code) == 1 and len(data) == 1 and len(doc.scripts) == 2
        digest = base64.b64encode(hashlib.sha256(code[0].encode()).digest()).decode()
        assert csp[0] == CSP.format(hash=digest)


def test_hostile_input_is_escaped_everywhere(hostile_html):
    for char in DANGEROUS:
        assert char not in hostile_html, repr(char)
    lowered = hostile_html.lower()
    assert lowered.count("<script") == 2 and lowered.count("</script") == 2  # only our two elements
    assert "<!--" not in hostile_html and "<img" not in lowered
    doc = Page(hostile_html)
    for tag, attrs in doc.tags:
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    shown = printable(EVIL)
    assert shown in "".join(doc.text)  # as visible text, exactly (the parser undoes the entities)
    data_block = next(body for attrs, body in doc.scripts if attrs.get("id") == "xv-data")
    assert "<" not in data_block and ">" not in data_block and "&" not in data_block
    data = json.loads(data_block)
    assert all(isinstance(r, list) and len(r) == len(data["fields"]) for r in data["events"])
    messages = [f[2] for r in data["events"] for f in r[data["fields"].index("findings")]]
    assert any("<script>alert(1)</script> </script><!--" in m for m in messages)  # decoded back exactly


def test_every_input_field_reaches_the_page_as_exact_text(hostile_cli_html):
    text = render_html(hostile_report())
    doc = Page(text)
    shown = printable(EVIL)
    attributes = [v for _, attrs in doc.tags for v in attrs.values() if v]
    assert shown in attributes  # the conversation id, as an attribute value
    data = json.loads(next(body for attrs, body in doc.scripts if attrs.get("id") == "xv-data"))
    assert data["conversations"] == [shown]
    row = dict(zip(data["fields"], data["events"][1]))
    for name in ("seq", "prev", "msg", "sender", "kver", "time", "type", "sig", "sigd", "chain", "chaind"):
        assert row[name] == shown, name  # exact text for textContent, not double-escaped
    cli = Page(hostile_cli_html)
    assert printable(HOSTILE_NAME) in "".join(cli.text)  # the file name
    assert "https://example.test/x" in "".join(cli.text)  # an API error's URL is text, never a link


def test_timeline_aggregates_large_histories_and_marks_every_problem(large_report):
    conv = large_report.conversations[0]
    ordered = sorted(conv.events, key=seq_key)
    cells = timeline_cells(ordered)
    assert len(cells) <= TIMELINE_CELLS < len(ordered) and sum(c.size for c in cells) == len(ordered)
    problems = [e for e in ordered if set(markers(e)) - {"start", "out_of_band", "duplicate-info"}]
    assert [e.chain.status for e in problems] == ["gap"]
    position = {e.index: i for i, e in enumerate(ordered)}
    per_cell = cells[0].size
    for event in problems:
        assert cells[position[event.index] // per_cell].marker == "gap"
    text = render_html(large_report)
    assert text.count('class="cell') == len(cells)
    assert text.count('class="cell marked m-gap"') == 1
    assert len(json.loads(Page(text).scripts[0][1])["events"]) == len(ordered)


def test_chain_order_and_times_survive_hostile_values():
    def event(seq, index, chain="linked"):
        return EventReport(index, seq, None, None, None, None, Check("valid", ""), Check(chain, ""), True, [])
    events = [event("x", 0), event("0123", 1), event("9" * 10_000, 2), event("122", 3), event(None, 4),
              event("123", 5, "duplicate")]
    assert [e.index for e in sorted(events, key=seq_key)] == [3, 1, 5, 2, 0, 4]
    assert when("1784841011000") == "2026-07-23 21:10:11 UTC"
    assert when("9" * 15) == "9" * 15 and when("-1") == "-1" and when(None) is None


def test_cli_writes_html_to_a_file_and_to_stdout(tmp_path, capsys):
    args = ["verify", *tampered_pages(), "--keys", str(EXAMPLES / "keyring.json"), "--format", "html"]
    assert main(args + ["--output", str(tmp_path / "r.html")]) == 1
    assert "verdict: fail (report written to" in capsys.readouterr().err
    assert main(args) == 1
    out = capsys.readouterr().out
    assert out == (tmp_path / "r.html").read_text(encoding="utf-8") and out.endswith("</html>\n")


def two_conversations() -> Report:
    """Two generated histories, verified without a keyring (--allow-embedded-keys): keys unauthenticated."""
    first = build_conversation(4, realistic_crypto=False, seed="one")
    second = build_conversation(3, realistic_crypto=False, seed="two",
                                members=[Identity.from_seed("1111", "5", "x"), Identity.from_seed("2222", "6", "y")])
    return verifier.verify_pages(first.pages() + second.pages(), allow_embedded_keys=True)


def test_unauthenticated_keys_and_several_conversations_are_said():
    report = two_conversations()
    assert not report.proof.keys_authenticated and len(report.conversations) == 2
    text = render_html(report)
    assert 'id="xv-keys-unauthenticated"' in text and "signer keys NOT authenticated" in text
    assert '<select id="xv-conv"><option value="">all</option><option value="0">' in text
    keys_table = text[text.index('id="xv-keys"'):]
    assert keys_table[:keys_table.index("</table>")].count("<tr>") == 1 + 4  # header, 2 users x 2 histories


# ------------------------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser():
    """One headless system Chromium for the module. Missing is a failure, never a skip: CI
    (.ci/run) installs it, and a skipped browser test would hide a broken report."""
    absent = chromium.missing()
    if absent:
        pytest.fail(f"browser tests need {' and '.join(absent)}; {chromium.INSTALL_HINT}", pytrace=False)
    with chromium.headless_chromium(1280, 1600) as driver:
        yield driver


def open_page(driver, path) -> str:
    """Load ``path`` from file:// with the console and network logs emptied first."""
    driver.get("about:blank")
    chromium.requests_made(driver)
    chromium.console_errors(driver)
    uri = path.resolve().as_uri()
    driver.get(uri)
    return uri


def assert_quiet(driver, uri: str) -> None:
    """No console error and no request but the page itself."""
    assert chromium.console_errors(driver) == []
    assert chromium.requests_made(driver) == [uri]


def table_indices(driver) -> list[str]:
    """The event indices the table shows now (one round trip, whatever the page size)."""
    return driver.execute_script('return Array.from(document.querySelectorAll("#xv-events tbody tr"), '
                                 'r => r.getAttribute("data-index"))')


def choose(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def test_tampered_report_in_a_real_browser(browser, tampered_html, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    path, report = tampered_html
    uri = open_page(browser, path)
    assert browser.title == "xchat-verify: FAIL"
    banner = browser.find_element(By.ID, "verdict")
    assert "fail" in banner.get_attribute("class").split()
    assert browser.find_element(By.ID, "xv-verdict").text == "Verdict: FAIL"
    assert "9 of 13 signatures proven" in browser.find_element(By.ID, "xv-proof").text
    problems = browser.find_elements(By.CSS_SELECTOR, "#problems .problem")
    assert [p.get_attribute("data-code") for p in problems] == ["gap", "invalid"]
    assert "missing from the input" in problems[0].text and "ECDSA mismatch" in problems[1].text
    marked = {c.get_attribute("data-markers"): c for c in browser.find_elements(By.CSS_SELECTOR, ".timeline .cell.marked")}
    assert {"gap", "invalid"} <= set(marked) and marked["gap"].size["height"] > 20
    listed = browser.find_element(By.CSS_SELECTOR, "#timeline .marked-list").text
    assert "gap" in listed and "invalid" in listed

    assert table_indices(browser) == [str(i) for i in range(13)]
    assert browser.find_element(By.ID, "xv-page-info").text.startswith("1–13 of 13 matching")
    choose(browser, "xv-status", "invalid")
    assert table_indices(browser) == ["1"]  # exactly the tampered event
    row = browser.find_element(By.CSS_SELECTOR, "#xv-events tbody tr")
    assert report.conversations[0].events[1].sequence_id in row.text and "ECDSA mismatch" in row.text
    choose(browser, "xv-status", "")
    browser.find_element(By.CSS_SELECTOR, '#problems button[data-code="gap"]').click()
    assert table_indices(browser) == ["7"]
    choose(browser, "xv-status", "")
    search = browser.find_element(By.ID, "xv-search")
    search.send_keys(report.conversations[0].events[3].message_id.upper())  # case does not matter
    WebDriverWait(browser, 5, poll_frequency=0.05).until(lambda d: table_indices(d) == ["3"])
    assert_quiet(browser, uri)
    shot = tmp_path / "tampered-report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_thousands_of_events_are_paginated(browser, large_report, tmp_path):
    from selenium.webdriver.common.by import By
    path = tmp_path / "large.html"
    path.write_text(render_html(large_report), encoding="utf-8")
    uri = open_page(browser, path)
    total = large_report.proof.events
    info = browser.find_element(By.ID, "xv-page-info")
    assert info.text.startswith(f"1–50 of {total} matching")
    assert table_indices(browser) == [str(i) for i in range(50)]
    browser.find_element(By.ID, "xv-next").click()
    assert table_indices(browser)[0] == "50"
    browser.find_element(By.ID, "xv-last").click()
    assert table_indices(browser)[-1] == str(total - 1) and browser.find_element(By.ID, "xv-next").get_attribute("disabled")
    choose(browser, "xv-size", "500")
    assert len(table_indices(browser)) == 500
    choose(browser, "xv-status", "gap")
    gap = [e.index for e in large_report.conversations[0].events if e.chain.status == "gap"]
    assert table_indices(browser) == [str(i) for i in gap] and len(gap) == 1
    cells = browser.execute_script('return Array.from(document.querySelectorAll(".timeline .cell"), '
                                   'c => [c.className, c.getAttribute("data-markers")])')
    assert len(cells) <= TIMELINE_CELLS
    assert [markers for cls, markers in cells if "m-gap" in cls] == ["gap"]
    assert_quiet(browser, uri)
    browser.save_screenshot(str(tmp_path / "large-report.png"))


def test_the_checks_would_catch_a_request_and_an_injected_script(browser, tampered_html, tmp_path):
    """Controls: the network and console checks above are not vacuous, and the CSP blocks a script
    that an escaping mistake would have let into the page."""
    from selenium.webdriver.common.by import By
    pixel = tmp_path / "pixel.png"
    pixel.write_bytes(base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQ"
                                       "GAhKmMIQAAAABJRU5ErkJggg=="))
    plain = tmp_path / "plain.html"
    plain.write_text(f'<!DOCTYPE html><title>t</title><img src="{pixel.as_uri()}">')
    uri = open_page(browser, plain)
    assert browser.execute_script("return document.images[0].naturalWidth") == 1
    assert chromium.requests_made(browser) == [uri, pixel.as_uri()]

    injected = tmp_path / "injected.html"
    text = tampered_html[0].read_text(encoding="utf-8")
    injected.write_text(text.replace("</main>", f'</main><script>document.title = "pwned"</script>'
                                                f'<img id="leak" src="{pixel.as_uri()}">'), encoding="utf-8")
    uri = open_page(browser, injected)
    assert browser.title == "xchat-verify: FAIL"  # the injected script did not run
    assert browser.execute_script("return document.getElementById('leak').naturalWidth") == 0  # blocked
    errors = chromium.console_errors(browser)
    assert any("Content Security Policy" in e["message"] for e in errors), errors
    assert chromium.requests_made(browser) == [uri, pixel.as_uri()]  # even a blocked attempt is seen
    assert browser.find_element(By.ID, "xv-page-info").text.startswith("1–13 of 13")  # ours still runs


def test_empty_and_multi_conversation_reports_work_in_the_browser(browser, tmp_path):
    from selenium.webdriver.common.by import By
    empty = verifier.verify_pages([{"data": []}])
    for name, report, total in (("empty", empty, 0), ("two", two_conversations(), 7)):
        path = tmp_path / f"{name}.html"
        path.write_text(render_html(report), encoding="utf-8")
        uri = open_page(browser, path)
        assert browser.find_element(By.ID, "xv-page-info").text.startswith(f"{'1–' + str(total) if total else '0'} "
                                                                           f"of {total} matching")
        if total:
            choose(browser, "xv-conv", "1")
            assert len(table_indices(browser)) == 3
            assert len(browser.find_elements(By.CSS_SELECTOR, "#xv-events tbody tr:first-child td")) == \
                len(browser.find_elements(By.CSS_SELECTOR, "#xv-events thead th"))
        assert_quiet(browser, uri)
