"""Prompt templates: ``prompts/<name>.jinja2`` files, each with a version in its header comment.

The first line of every template is a Jinja comment ``{#- version: N | task: ... -#}``; the
version is recorded on every output as ``<name>@<N>``, so a changed prompt never mixes silently
with cached or earlier results. Titles and other shop text are untrusted: templates render them
through the ``plain`` filter (one line, control characters removed, length capped) or the
``quoted`` filter (the same, then JSON-quoted), so a title can neither start a new prompt section
nor pass for an instruction.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
MAX_TEXT_CHARS = 80
_VERSION = re.compile(r"^\{#-?\s*version:\s*(\d+)")


def plain(text: object, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Untrusted shop text as one clean, lower-case line (no newlines, control chars or braces).

    Lower case also halves the token count of the catalog's upper-case titles.
    """
    s = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in str(text))
    s = re.sub(r"[{}<>|`]", " ", s)  # template, chat-markup and fence characters
    s = " ".join(s.split()).lower()
    return s[:max_chars].rstrip()


def quoted(text: object, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Untrusted shop text as a JSON string literal (sanitized with :func:`plain` first)."""
    return json.dumps(plain(text, max_chars), ensure_ascii=False)


@dataclass(frozen=True)
class PromptTemplate:
    """One template file and its version."""

    name: str
    version: int
    template: jinja2.Template

    @property
    def tag(self) -> str:
        """``<name>@<version>``, recorded on every output made with this template."""
        return f"{self.name}@{self.version}"

    def render(self, **values) -> str:
        """Render with ``values`` (a missing variable raises instead of rendering empty)."""
        return self.template.render(**values)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are not HTML; untrusted text goes through plain/quoted
        keep_trailing_newline=False,
    )
    env.filters["plain"] = plain
    env.filters["quoted"] = quoted
    return env


@cache
def load(name: str) -> PromptTemplate:
    """The template ``prompts/<name>.jinja2`` with the version from its header.

    Raises:
        ValueError: the file has no ``version: N`` header.
    """
    path = PROMPTS_DIR / f"{name}.jinja2"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = _VERSION.match(first)
    if not match:
        raise ValueError(f"prompt {path} has no '{{#- version: N ...' header")
    return PromptTemplate(name, int(match.group(1)), _environment().get_template(f"{name}.jinja2"))


def registry() -> dict[str, str]:
    """Every shipped template as ``{name: "<name>@<version>"}``."""
    return {p.stem: load(p.stem).tag for p in sorted(PROMPTS_DIR.glob("*.jinja2"))}
