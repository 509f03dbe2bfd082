"""Just enough of GitHub Actions to run a composite action's shell steps here, without GitHub.

``evaluate`` implements the expression language the action uses (contexts ``inputs``, ``steps``,
``github``, ``runner``; literals; ``!``, ``==``, ``!=``, ``&&``, ``||``, parentheses; the status
functions) and raises on anything else, so the action cannot rely on something this evaluator
would get wrong. ``run_composite`` runs the steps in order as the runner does: ``if`` (default
``success()``), ``env`` and ``${{ }}`` interpolation, ``bash --noprofile --norc -eo pipefail``,
a fresh ``GITHUB_OUTPUT`` file per step read back as ``steps.<id>.outputs``; ``uses:`` steps are
recorded with their evaluated ``with:`` instead of being run (no network).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!().,\[\]])"
                   r"|(?P<id>[A-Za-z_][A-Za-z0-9_-]*))")
FUNCTIONS = {"success", "failure", "always", "cancelled"}


class ExpressionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExpressionError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (False, 0, "", None)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value.strip() or 0)
    except ValueError:
        return math.nan


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()  # GitHub compares strings case-insensitively
    if type(a) is type(b):
        return a == b
    return _number(a) == _number(b)


class _Parser:
    def __init__(self, text: str, contexts: dict[str, Any], status: dict[str, bool]) -> None:
        self.tokens, self.pos, self.contexts, self.status, self.text = _tokens(text), 0, contexts, status, text

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"unexpected end of {self.text!r}")
        self.pos += 1
        return token

    def expect(self, op: str) -> None:
        if self.next() != ("op", op):
            raise ExpressionError(f"expected {op} in {self.text!r}")

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek() == ("op", "||"):
            self.next()
            right = self.and_()
            value = value if _truthy(value) else right
        return value

    def and_(self) -> Any:
        value = self.unary()
        while self.peek() == ("op", "&&"):
            self.next()
            right = self.unary()
            value = right if _truthy(value) else value
        return value

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.next()
            return not _truthy(self.unary())
        left = self.primary()
        if self.peek() in (("op", "=="), ("op", "!=")):
            op = self.next()[1]
            right = self.primary()
            return _equal(left, right) if op == "==" else not _equal(left, right)
        return left

    def primary(self) -> Any:
        kind, text = self.next()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if (kind, text) == ("op", "("):
            value = self.or_()
            self.expect(")")
            return value
        if kind != "id":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.peek() == ("op", "("):
            if text not in FUNCTIONS:
                raise ExpressionError(f"function {text}() is not supported here")
            self.next()
            self.expect(")")
            return {"success": not self.status["failed"], "failure": self.status["failed"], "always": True,
                    "cancelled": False}[text]
        if text not in self.contexts:
            raise ExpressionError(f"unknown context {text!r} in {self.text!r}")
        value = self.contexts[text]
        while self.peek() in (("op", "."), ("op", "[")):
            if self.next() == ("op", "."):
                kind, name = self.next()
                if kind != "id":
                    raise ExpressionError(f"bad property in {self.text!r}")
            else:
                kind, name = self.next()
                if kind != "str":
                    raise ExpressionError(f"bad index in {self.text!r}")
                name = name[1:-1]
                self.expect("]")
            value = value.get(name) if isinstance(value, dict) else None
        return value


def evaluate(text: str, contexts: dict[str, Any], status: dict[str, bool] | None = None) -> Any:
    return _Parser(text, contexts, status or {"failed": False}).parse()


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def interpolate(text: str, contexts: dict[str, Any], status: dict[str, bool] | None = None) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _string(evaluate(m.group(1), contexts, status)), text)


def condition(text: Any, contexts: dict[str, Any], status: dict[str, bool]) -> bool:
    """A step's ``if``: an expression, with or without ``${{ }}``; without one, ``success()``. As
    on GitHub, a condition without a status function implies ``success() &&``."""
    if text is None:
        return not status["failed"]
    text = str(text).strip()
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    expression = whole.group(1) if whole else text
    value = _truthy(evaluate(expression, contexts, status))
    if not re.search(r"\b(success|failure|always|cancelled)\s*\(", expression):
        value = value and not status["failed"]
    return value


def read_outputs(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as the runner reads GITHUB_OUTPUT."""
    outputs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            outputs[name] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
        elif line.strip():
            raise ValueError(f"GITHUB_OUTPUT line is neither name=value nor name<<DELIMITER: {line!r}")
        i += 1
    return outputs


@dataclass
class StepRun:
    id: str | None
    ran: bool
    exit_code: int | None = None  # run steps
    stdout: str = ""
    stderr: str = ""
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionRun:
    steps: list[StepRun]
    outputs: dict[str, str]
    failed: bool

    def step(self, step_id: str) -> StepRun:
        return next(s for s in self.steps if s.id == step_id)

    def uses(self, prefix: str) -> StepRun:
        return next(s for s in self.steps if s.uses and s.uses.startswith(prefix))


def run_composite(action: dict, inputs: dict[str, str], *, action_path: Path, workspace: Path, runner_temp: Path,
                  env: dict[str, str] | None = None, timeout: float = 120) -> ActionRun:
    declared = action.get("inputs", {})
    unknown = set(inputs) - set(declared)
    if unknown:
        raise ValueError(f"inputs not declared by the action: {sorted(unknown)}")
    values = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    values.update(inputs)
    missing = [n for n, spec in declared.items() if spec.get("required") and not values.get(n)]
    if missing:
        raise ValueError(f"required inputs missing: {missing}")
    steps_ctx: dict[str, Any] = {}
    contexts = {"inputs": values, "steps": steps_ctx,
                "github": {"action_path": str(action_path), "workspace": str(workspace)},
                "runner": {"temp": str(runner_temp), "os": "Linux"}}
    status = {"failed": False}
    summary = runner_temp / "step-summary.md"
    base_env = {**os.environ, **(env or {}), "GITHUB_ACTIONS": "true", "CI": "true",
                "GITHUB_WORKSPACE": str(workspace), "GITHUB_ACTION_PATH": str(action_path),
                "RUNNER_TEMP": str(runner_temp), "RUNNER_OS": "Linux", "GITHUB_STEP_SUMMARY": str(summary)}
    runs: list[StepRun] = []
    for number, step in enumerate(action["runs"]["steps"]):
        step_id = step.get("id")
        if not condition(step.get("if"), contexts, status):
            runs.append(StepRun(step_id, False, uses=step.get("uses")))
            if step_id:
                steps_ctx[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        if "uses" in step:
            with_ = {k: interpolate(str(v), contexts, status) for k, v in step.get("with", {}).items()}
            runs.append(StepRun(step_id, True, uses=step["uses"], with_=with_))
            continue
        if step.get("shell") != "bash":
            raise ValueError(f"step {number} is not a bash step")
        output_file = runner_temp / f"github-output-{number}"
        output_file.write_text("")
        step_env = {**base_env, "GITHUB_OUTPUT": str(output_file)}
        step_env.update({k: interpolate(str(v), contexts, status) for k, v in step.get("env", {}).items()})
        script = runner_temp / f"step-{number}.sh"
        script.write_text(interpolate(step["run"], contexts, status))
        cwd = Path(interpolate(step["working-directory"], contexts, status)) if "working-directory" in step else workspace
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd,
                              env=step_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        outputs = read_outputs(output_file)
        runs.append(StepRun(step_id, True, proc.returncode, proc.stdout, proc.stderr, outputs=outputs))
        outcome = "success" if proc.returncode == 0 else "failure"
        if step_id:
            steps_ctx[step_id] = {"outputs": outputs, "outcome": outcome, "conclusion": outcome}
        status["failed"] = status["failed"] or proc.returncode != 0
    outputs = {name: interpolate(str(spec["value"]), contexts, status)
               for name, spec in action.get("outputs", {}).items()}
    return ActionRun(runs, outputs, status["failed"])
