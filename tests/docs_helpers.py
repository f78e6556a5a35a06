"""What the docs tests read from the code and from the Markdown pages (no database needed).

- `environment_variables()`: every environment variable the package reads, found by `ast`.
- `alert_sites()`: every alert the package can send, with its title as a pattern.
- `headings()` / `anchors()`: a page's headings and the anchors GitHub gives them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from idminter_pipeline.core.alerts import runbook_anchor

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "idminter_pipeline"
DOCS = ROOT / "docs"
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# Reads of the environment: `.get(NAME)` on a mapping called environ or env (every `from_env`
# reads one of those), `environ[NAME]`, `NAME in os.environ`, and calls to any function whose
# name says env (`os.getenv`, Dagster's `EnvVar`, the package's `env_int(env, NAME)`,
# `_env_or_default(NAME, ...)`), with NAME a literal or a module-level constant.
_MAPPINGS = {"environ", "env", "environment"}
_SECRET_HELPERS = {"_secret"}  # defs/works/resources.py: EnvVar(name) for a secret's variable


@cache
def _parsed_modules() -> tuple[tuple[Path, ast.Module], ...]:
    return tuple(
        (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    )


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    yield from _parsed_modules()


@cache
def _walked_modules() -> tuple[tuple[Path, tuple[ast.AST, ...]], ...]:
    """Every node of each module, walked once (the checks below run at collection, in each
    parallel worker)."""
    return tuple((path, tuple(ast.walk(tree))) for path, tree in _parsed_modules())


def _string_constants(trees: list[ast.Module]) -> dict[str, list[str]]:
    """Module-level `NAME = "VALUE"` (and `NAME = {...: "VALUE"}`) across the package, by name."""
    constants: dict[str, list[str]] = {}
    for tree in trees:
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                targets = [node.target]
            value = getattr(node, "value", None)
            for target in targets:
                if not isinstance(target, ast.Name):
                    continue
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    constants.setdefault(target.id, []).append(value.value)
                elif isinstance(value, ast.Dict) and target.id.endswith("_ENV"):
                    constants.setdefault(target.id, []).extend(
                        v.value
                        for v in value.values
                        if isinstance(v, ast.Constant) and isinstance(v.value, str)
                    )
    return constants


def _names(node: ast.AST | None, constants: dict[str, list[str]]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return constants.get(node.id, [])
    return []


def _receiver(node: ast.AST) -> str | None:
    """`os.environ` -> environ, `env` -> env, `self.environ` -> environ."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _names_read(node: ast.AST, constants: dict[str, list[str]]) -> list[str]:
    """The variable names one node reads from the environment, if it is such a read."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("get", "pop", "setdefault") and isinstance(func, ast.Attribute):
            if _receiver(func.value) in _MAPPINGS and node.args:
                return _names(node.args[0], constants)
        elif name and ("env" in name.lower() or name in _SECRET_HELPERS):
            return [n for arg in node.args for n in _names(arg, constants)]
    elif isinstance(node, ast.Subscript) and _receiver(node.value) in _MAPPINGS:
        return _names(node.slice, constants)
    elif isinstance(node, ast.Compare) and any(
        isinstance(op, ast.In | ast.NotIn) for op in node.ops
    ):
        if any(_receiver(c) in _MAPPINGS for c in node.comparators):
            return _names(node.left, constants)
    elif isinstance(node, ast.For) and isinstance(node.iter, ast.Call):
        # `for field, variable in POOL_ENV.items(): env.get(variable)`
        inner = node.iter.func
        if (
            isinstance(inner, ast.Attribute)
            and isinstance(inner.value, ast.Name)
            and inner.value.id.endswith("_ENV")
        ):
            return constants.get(inner.value.id, [])
    return []


@cache
def environment_variables() -> dict[str, set[str]]:
    """Variable name -> the modules (relative paths) that read it."""
    constants = _string_constants([tree for _, tree in _modules()])
    found: dict[str, set[str]] = {}
    for path, nodes in _walked_modules():
        where = str(path.relative_to(ROOT))
        for node in nodes:
            for candidate in _names_read(node, constants):
                if ENV_NAME.fullmatch(candidate):
                    found.setdefault(candidate, set()).add(where)
    return found


# --- alerts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertSite:
    """One alert the code can send: where, its title as a regex, and its runbook heading."""

    where: str
    title_pattern: str
    heading: str | None  # None: the title has variable parts and no `runbook=` names its entry


def _title_patterns(node: ast.AST) -> list[str] | None:
    """A title expression as regexes (one per branch of a conditional), or None if unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [re.escape(node.value)]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(re.escape(str(value.value)))
            else:
                parts.append(".+")
        return ["".join(parts)]
    if isinstance(node, ast.IfExp):
        body, orelse = _title_patterns(node.body), _title_patterns(node.orelse)
        if body is None or orelse is None:
            return None
        return body + orelse
    return None


def _runbook_headings(node: ast.AST | None) -> list[str] | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _runbook_headings(node.body), _runbook_headings(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def _alert_builders() -> set[str]:
    """`Alert`, and every function that passes its own `title` parameter on to an alert."""
    # Each function taking `title`, with what it calls passing `title=title` on.
    forwards: dict[str, set[str | None]] = {}
    for _, nodes in _walked_modules():
        for function in nodes:
            if not isinstance(function, ast.FunctionDef):
                continue
            if "title" not in {a.arg for a in function.args.args + function.args.kwonlyargs}:
                continue
            forwards.setdefault(function.name, set()).update(
                _callee(call)
                for call in ast.walk(function)
                if isinstance(call, ast.Call)
                and isinstance(title := _keyword(call, "title"), ast.Name)
                and title.id == "title"
            )
    builders = {"Alert"}
    changed = True
    while changed:
        changed = False
        for name, callees in forwards.items():
            if name not in builders and callees & builders:
                builders.add(name)
                changed = True
    return builders


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


@cache
def alert_sites() -> tuple[AlertSite, ...]:
    """Every call that builds an alert with a title of its own (not one passed through)."""
    builders = _alert_builders()
    sites = []
    for path, nodes in _walked_modules():
        for call in nodes:
            if not isinstance(call, ast.Call) or _callee(call) not in builders:
                continue
            title = _keyword(call, "title")
            if title is None and call.args:
                title = call.args[0]
            if title is None or (isinstance(title, ast.Name) and title.id == "title"):
                continue  # a builder forwarding its caller's title: the caller is the site
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            patterns = _title_patterns(title)
            if patterns is None:
                sites.append(AlertSite(where, "<title the test cannot read>", None))
                continue
            headings = _runbook_headings(_keyword(call, "runbook"))
            if headings is None:
                constant = isinstance(title, ast.Constant)
                headings = [title.value] if constant else [None] * len(patterns)  # type: ignore[union-attr]
            if len(headings) != len(patterns):
                headings = [None] * len(patterns)
            sites.extend(AlertSite(where, p, h) for p, h in zip(patterns, headings, strict=True))
    return tuple(sites)


# --- Markdown ------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every heading outside code blocks."""
    found = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((len(match[1]), match[2]))
    return found


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings (`-1`, `-2` for repeats) and HTML ids."""
    seen: dict[str, int] = {}
    result = set()
    for _, text in headings(path):
        plain = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m[1] or "", text)
        slug = runbook_anchor(plain)
        count = seen.get(slug, 0)
        result.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    text = path.read_text(encoding="utf-8")
    result.update(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    return result


def markdown_pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "sql" / "README.md", *sorted(DOCS.rglob("*.md"))]
