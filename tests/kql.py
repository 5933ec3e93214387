"""A small Kusto (KQL) reader for tests: tokenizes a query, checks its structure, and lists
what it reads: tables, the event or metric names it filters on, and the `customDimensions` /
`customMeasurements` properties it uses.

No KQL parser runs on Linux/Python (Kusto.Language is .NET), so this one covers what our
queries use: `let` statements, `;`, pipes, brackets, string literals (quoted, verbatim
`@"..."`, multi-line ```...```), comments, numbers with timespan suffixes (`1d`), operators.
It refuses what it cannot read (an unterminated string, an unknown character, an unbalanced
bracket, an empty pipe stage, a pipe operator it does not know) instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: tabular operators a pipe stage may start with (hyphenated ones as written)
OPERATORS = {
    "as",
    "count",
    "distinct",
    "extend",
    "join",
    "limit",
    "make-series",
    "mv-expand",
    "order",
    "parse",
    "project",
    "project-away",
    "project-rename",
    "project-reorder",
    "render",
    "sample",
    "sort",
    "summarize",
    "take",
    "top",
    "union",
    "where",
}
#: Application Insights tables (classic schema)
TABLES = {
    "customEvents",
    "customMetrics",
    "exceptions",
    "traces",
    "requests",
    "dependencies",
    "pageViews",
    "availabilityResults",
}
PROPERTY_BAGS = ("customDimensions", "customMeasurements")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<fence>```.*?```)
  | (?P<string>@?"(?:[^"\\\n]|\\.)*"|@?'(?:[^'\\\n]|\\.)*')
  | (?P<number>\d+(?:\.\d+)?(?:[a-z]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|=~|!~|<=|>=|=|<|>|\||\(|\)|\[|\]|\{|\}|,|\.|;|\+|-|\*|/|%|:)
    """,
    re.VERBOSE | re.DOTALL,
)
_PAIRS = {")": "(", "]": "[", "}": "{"}


class KqlError(ValueError):
    """The text is not a query this reader understands."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int

    @property
    def value(self) -> str:
        """A string literal's text (without quotes), else the token's text."""
        if self.kind == "string":
            body = self.text[1:] if self.text.startswith("@") else self.text
            inner = body[1:-1]
            return inner if self.text.startswith("@") else re.sub(r"\\(.)", r"\1", inner)
        if self.kind == "fence":
            return self.text[3:-3]
        return self.text


@dataclass
class Query:
    tables: set[str] = field(default_factory=set)
    #: values compared with `name` (`name == "X"`, `name in ("X", "Y")`)
    names: set[str] = field(default_factory=set)
    #: bag -> property names (`customDimensions.x`, `customDimensions["x"]`)
    properties: dict[str, set[str]] = field(default_factory=dict)


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            snippet = text[position : position + 20]
            raise KqlError(f"cannot read the query at offset {position}: {snippet!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group(0), position))
        position = match.end()
    return tokens


def _check_brackets(tokens: list[Token]) -> None:
    stack: list[Token] = []
    for token in tokens:
        if token.kind != "op":
            continue
        if token.text in "([{":
            stack.append(token)
        elif token.text in _PAIRS:
            if not stack or stack[-1].text != _PAIRS[token.text]:
                raise KqlError(f"unbalanced {token.text!r} at offset {token.offset}")
            stack.pop()
    if stack:
        raise KqlError(f"unclosed {stack[-1].text!r} at offset {stack[-1].offset}")


def _pipe_operator(tokens: list[Token], index: int) -> str:
    """The operator after the pipe at `index` (`mv-expand` is three tokens)."""
    words = []
    position = index + 1
    while position < len(tokens):
        token = tokens[position]
        if token.kind == "name":
            words.append(token.text)
            if position + 1 < len(tokens) and tokens[position + 1].text == "-":
                words.append("-")
                position += 2
                continue
        break
    return "".join(words)


def _check_pipes(tokens: list[Token]) -> None:
    for index, token in enumerate(tokens):
        if token.text != "|" or token.kind != "op":
            continue
        if index == 0 or tokens[index - 1].text in ("|", ";", "(", "=", ","):
            raise KqlError(f"a pipe with nothing before it at offset {token.offset}")
        operator = _pipe_operator(tokens, index)
        if operator not in OPERATORS:
            raise KqlError(f"unknown pipe operator {operator!r} at offset {token.offset}")


def _statements(tokens: list[Token]) -> list[list[Token]]:
    statements, current, depth = [], [], 0
    for token in tokens:
        if token.kind == "op" and token.text in "([{":
            depth += 1
        elif token.kind == "op" and token.text in ")]}":
            depth -= 1
        if token.kind == "op" and token.text == ";" and depth == 0:
            statements.append(current)
            current = []
        else:
            current.append(token)
    statements.append(current)
    return [s for s in statements if s]


def parse(text: str) -> Query:
    """Read one query; KqlError when it does not have the shape of a KQL query."""
    tokens = tokenize(text)
    if not tokens:
        raise KqlError("empty query")
    _check_brackets(tokens)
    _check_pipes(tokens)
    statements = _statements(tokens)
    for statement in statements[:-1]:
        if statement[0].text != "let":
            raise KqlError(f"only `let` statements may end with ';' (offset {statement[0].offset})")
        if len(statement) < 4 or statement[1].kind != "name" or statement[2].text != "=":
            raise KqlError(f"a `let` needs a name and '=' (offset {statement[0].offset})")
    if statements[-1][0].text == "let":
        raise KqlError("the query ends with a `let` and has no result")
    query = Query()
    for index, token in enumerate(tokens):
        before = tokens[index - 1] if index else None
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "name" and token.text in TABLES:
            query.tables.add(token.text)
        if token.kind == "name" and token.text in PROPERTY_BAGS and after is not None:
            bag = query.properties.setdefault(token.text, set())
            if after.text == "." and index + 2 < len(tokens):
                bag.add(tokens[index + 2].text)
            elif after.text == "[" and index + 2 < len(tokens):
                bag.add(tokens[index + 2].value)
        if token.kind == "name" and token.text == "name" and (before is None or before.text != "."):
            query.names.update(_compared_values(tokens, index))
    return query


def _compared_values(tokens: list[Token], index: int) -> list[str]:
    """`name == "X"` / `name =~ "X"` -> [X]; `name in ("X", "Y")` -> [X, Y]."""
    if index + 2 >= len(tokens):
        return []
    operator, operand = tokens[index + 1], tokens[index + 2]
    if operator.text in ("==", "=~") and operand.kind == "string":
        return [operand.value]
    if operator.text == "in" and operand.text == "(":
        values = []
        for token in tokens[index + 3 :]:
            if token.text == ")":
                break
            if token.kind == "string":
                values.append(token.value)
        return values
    return []
