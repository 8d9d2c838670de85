"""A small line-based template engine (a subset of Jinja's syntax), so that the generated C++ lives in template
files rather than in Python strings.

    {{ expr }}                       a Python expression on the current names, inserted as text
    {% for a, b in expr %} ... {% endfor %}     inside, `loop.first`, `loop.last`, `loop.index` (from 0)
    {% if expr %} ... {% elif expr %} ... {% else %} ... {% endif %}
    {% include "file.tmpl" with name=expr, ... %}   the file rendered with these extra names; every line of
                                                    its output gets the indentation of the include line
    {# comment #}

Block tags must stand alone on their line (the whole line is dropped); `{{ }}` goes anywhere in text lines.
"""

import os
import re

_TAG = re.compile(r"^(\s*)\{%\s*(.*?)\s*%\}\s*$")
_COMMENT = re.compile(r"^\s*\{#.*#\}\s*$")
_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}")


class TemplateError(Exception):
    pass


class _Loop:
    def __init__(self, index, count):
        self.index = index
        self.first = index == 0
        self.last = index == count - 1


class _Node:
    pass


class _Text(_Node):
    def __init__(self, text, where):
        self.text = text
        self.where = where


class _For(_Node):
    def __init__(self, targets, expr, where):
        self.targets = targets
        self.expr = expr
        self.body = []
        self.where = where


class _If(_Node):
    def __init__(self, where):
        self.branches = []  # (expr, body); expr None for else
        self.where = where


class _Include(_Node):
    def __init__(self, name, bindings, indent, where):
        self.name = name
        self.bindings = bindings
        self.indent = indent
        self.where = where


def _split_bindings(text):
    """'a=x.y, b=f(1, 2)' -> [('a', 'x.y'), ('b', 'f(1, 2)')], splitting on top-level commas."""
    parts, depth, current = [], 0, ""
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += c
    if current.strip():
        parts.append(current)
    result = []
    for part in parts:
        name, _, expr = part.partition("=")
        result.append((name.strip(), expr.strip()))
    return result


def _parse(text, name):
    root = []
    stack = [("root", root, None)]  # (kind, current body, node)
    for number, line in enumerate(text.split("\n"), 1):
        where = f"{name}:{number}"
        if _COMMENT.match(line):
            continue
        m = _TAG.match(line)
        if not m:
            stack[-1][1].append(_Text(line, where))
            continue
        indent, tag = m.group(1), m.group(2)
        word, _, rest = tag.partition(" ")
        if word == "for":
            targets, sep, expr = rest.partition(" in ")
            if not sep:
                raise TemplateError(f"{where}: 'for' needs 'in'")
            node = _For([t.strip() for t in targets.split(",")], expr.strip(), where)
            stack[-1][1].append(node)
            stack.append(("for", node.body, node))
        elif word == "if":
            node = _If(where)
            node.branches.append((rest, []))
            stack[-1][1].append(node)
            stack.append(("if", node.branches[-1][1], node))
        elif word in ("elif", "else"):
            kind, _, node = stack.pop()
            if kind != "if":
                raise TemplateError(f"{where}: '{word}' outside 'if'")
            node.branches.append((rest if word == "elif" else None, []))
            stack.append(("if", node.branches[-1][1], node))
        elif word in ("endfor", "endif"):
            kind, _, _ = stack.pop()
            if kind != word[3:]:
                raise TemplateError(f"{where}: '{word}' closes a '{kind}'")
        elif word == "include":
            m2 = re.match(r'"([^"]+)"(?:\s+with\s+(.*))?$', rest)
            if not m2:
                raise TemplateError(f'{where}: want include "file" [with name=expr, ...]')
            stack[-1][1].append(_Include(m2.group(1), _split_bindings(m2.group(2) or ""), indent, where))
        else:
            raise TemplateError(f"{where}: unknown tag '{word}'")
    if len(stack) != 1:
        raise TemplateError(f"{name}: '{stack[-1][0]}' at {stack[-1][2].where} is not closed")
    return root


class Templates:
    """Loads templates from a directory; render(name, **names) returns the text."""

    def __init__(self, directory, functions=None):
        self.directory = directory
        self.functions = dict(functions or {})
        self.cache = {}
        self.loaded = []

    def _load(self, name):
        if name not in self.cache:
            path = os.path.join(self.directory, name)
            with open(path, encoding="utf-8") as f:
                self.cache[name] = _parse(f.read(), name)
            self.loaded.append(path)
        return self.cache[name]

    def render(self, name, **names):
        out = []
        self._render(self._load(name), dict(self.functions, **names), out)
        return "\n".join(out)

    def _eval(self, expr, names, where):
        try:
            return eval(expr, {"__builtins__": {"len": len, "str": str, "enumerate": enumerate}}, names)
        except Exception as e:
            raise TemplateError(f"{where}: {expr}: {e}") from e

    def _render(self, nodes, names, out):
        for node in nodes:
            if isinstance(node, _Text):
                out.append(_EXPR.sub(lambda m: str(self._eval(m.group(1), names, node.where)), node.text))
            elif isinstance(node, _For):
                items = list(self._eval(node.expr, names, node.where))
                for index, item in enumerate(items):
                    inner = dict(names)
                    if len(node.targets) == 1:
                        inner[node.targets[0]] = item
                    else:
                        inner.update(zip(node.targets, item))
                    inner["loop"] = _Loop(index, len(items))
                    self._render(node.body, inner, out)
            elif isinstance(node, _If):
                for expr, body in node.branches:
                    if expr is None or self._eval(expr, names, node.where):
                        self._render(body, names, out)
                        break
            elif isinstance(node, _Include):
                inner = dict(names)
                for key, expr in node.bindings:
                    inner[key] = self._eval(expr, names, node.where)
                lines = []
                self._render(self._load(node.name), inner, lines)
                # A template file ends with a newline: its last, empty line is not a line of output.
                if lines and lines[-1] == "":
                    lines.pop()
                out.extend(node.indent + line if line else line for line in lines)
