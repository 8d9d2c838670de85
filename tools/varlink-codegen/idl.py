"""The varlink interface definition language: a parser for .varlink files and the model it produces.

Grammar (https://varlink.org/Interface-Definition, as systemd's sd-varlink-idl reads it):

    interface org.example.name          # one per file, first
    type Name (field: T, ...)           # a struct type
    type Name (a, b, c)                 # an enum type
    method Name (field: T, ...) -> (field: T, ...)
    error Name (field: T, ...)

    T = [?] [ [] | [string] ] E      (one optional mark, at most one array or map level, as systemd reads it)
    E = bool | int | float | string | object | Name | (inline struct) | (inline enum)

Lines starting with `#` are comments; those right before a declaration, a field or an enum value are its
documentation. Errors are reported as `FILE:LINE: message` (IdlError).
"""

import re

INTERFACE_NAME = re.compile(r"^[A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+$")
SYMBOL_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
FIELD_NAME = re.compile(r"^[A-Za-z](_?[A-Za-z0-9])*$")
BUILTIN_TYPES = ("bool", "int", "float", "string", "object")
# Inline types nested deeper than this are refused: the parser and the generator recurse once per level (and
# a C++ compiler has limits of its own); no real interface comes near it.
MAX_NESTING = 64


class IdlError(Exception):
    def __init__(self, path, line, message):
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


# --- the model -------------------------------------------------------------------------------------------


class TypeRef:
    """A field's type. kind: bool, int, float, string, object, named, struct, enum, optional, array, map."""

    def __init__(self, kind, line, inner=None, name=None, decl=None):
        self.kind = kind
        self.line = line
        self.inner = inner  # optional, array, map: the element type
        self.name = name  # named: the referenced type's name
        self.decl = decl  # struct, enum: the inline StructDecl / EnumDecl

    def inline_decl(self):
        """The inline struct or enum inside this type (through ?, [] and [string]), if any."""
        t = self
        while t.kind in ("optional", "array", "map"):
            t = t.inner
        return t.decl if t.kind in ("struct", "enum") else None


class Field:
    def __init__(self, name, type_, doc, line):
        self.name = name
        self.type = type_
        self.doc = doc
        self.line = line


class StructDecl:
    def __init__(self, fields, line):
        self.fields = fields
        self.line = line


class EnumValue:
    def __init__(self, name, doc, line):
        self.name = name
        self.doc = doc
        self.line = line


class EnumDecl:
    def __init__(self, values, line):
        self.values = values
        self.line = line


class Symbol:
    """A top-level declaration. kind: type, method, error. For a type, body is a StructDecl or an EnumDecl; a
    method has input and output (StructDecl); an error has body (StructDecl)."""

    def __init__(self, kind, name, doc, line, body=None, input_=None, output=None):
        self.kind = kind
        self.name = name
        self.doc = doc
        self.line = line
        self.body = body
        self.input = input_
        self.output = output


class Interface:
    def __init__(self, name, doc, symbols, text, path):
        self.name = name
        self.doc = doc
        self.symbols = symbols
        self.text = text
        self.path = path

    def of_kind(self, kind):
        return [s for s in self.symbols if s.kind == kind]


# --- the tokenizer ---------------------------------------------------------------------------------------

_PUNCTUATION = ("->", "(", ")", ",", ":", "?", "[", "]")
_WORD = re.compile(r"[A-Za-z0-9_.]+(?:-+[A-Za-z0-9_.]+)*")


class Token:
    def __init__(self, kind, text, line):
        self.kind = kind  # word, punct, comment, end
        self.text = text
        self.line = line

    def describe(self):
        if self.kind == "end":
            return "the end of the file"
        return f"'{self.text}'"


def tokenize(text, path):
    tokens = []
    line = 1
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            comment = text[i + 1 : end].rstrip()
            if comment.startswith(" "):
                comment = comment[1:]
            tokens.append(Token("comment", comment, line))
            i = end
        else:
            for p in _PUNCTUATION:
                if text.startswith(p, i):
                    tokens.append(Token("punct", p, line))
                    i += len(p)
                    break
            else:
                m = _WORD.match(text, i)
                if not m:
                    raise IdlError(path, line, f"unexpected character {c!r}")
                tokens.append(Token("word", m.group(0), line))
                i = m.end()
    # The end is reported on the last line with something on it.
    tokens.append(Token("end", "", tokens[-1].line if tokens else 1))
    return tokens


# --- the parser ------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text, path):
        self.path = path
        self.tokens = tokenize(text, path)
        self.pos = 0
        self.comments = []
        self.depth = 0  # of the parameter and field lists being parsed

    def error(self, line, message):
        raise IdlError(self.path, line, message)

    def peek(self, offset=0):
        """The next token that is not a comment (comments are collected as documentation)."""
        i = self.pos
        seen = 0
        while True:
            while self.tokens[i].kind == "comment":
                i += 1
            if seen == offset or self.tokens[i].kind == "end":  # nothing comes after the end
                return self.tokens[i]
            seen += 1
            i += 1

    def next(self):
        while self.tokens[self.pos].kind == "comment":
            self.comments.append(self.tokens[self.pos].text)
            self.pos += 1
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def take_doc(self):
        """The comments since the last declaration, before the next token."""
        while self.tokens[self.pos].kind == "comment":
            self.comments.append(self.tokens[self.pos].text)
            self.pos += 1
        doc, self.comments = self.comments, []
        return doc

    def expect(self, text, what=None):
        token = self.next()
        if token.kind == "end" or token.text != text:
            self.error(token.line, f"expected {what or repr(text)}, found {token.describe()}")
        return token

    def word(self, what):
        token = self.next()
        if token.kind != "word":
            self.error(token.line, f"expected {what}, found {token.describe()}")
        return token

    def parse(self):
        doc = self.take_doc()
        keyword = self.next()
        if keyword.text != "interface":
            self.error(keyword.line, f"expected 'interface', found {keyword.describe()}")
        name = self.word("an interface name")
        if not INTERFACE_NAME.match(name.text):
            self.error(name.line, f"invalid interface name '{name.text}' (want a reverse-domain name like org.example.name)")
        symbols = []
        while True:
            doc_ = self.take_doc()
            token = self.next()
            if token.kind == "end":
                break
            if token.text not in ("type", "method", "error"):
                self.error(token.line, f"expected 'type', 'method' or 'error', found {token.describe()}")
            symbols.append(self.symbol(token, doc_))
        return name.text, doc, symbols

    def symbol_name(self, keyword):
        name = self.word(f"the name of the {keyword.text}")
        if not SYMBOL_NAME.match(name.text):
            self.error(name.line, f"invalid {keyword.text} name '{name.text}' (want [A-Z][A-Za-z0-9]*)")
        return name

    def symbol(self, keyword, doc):
        name = self.symbol_name(keyword)
        if keyword.text == "type":
            body = self.struct_or_enum()
            return Symbol("type", name.text, doc, name.line, body=body)
        if keyword.text == "error":
            body = self.struct_or_enum(allow_empty=True)
            if isinstance(body, EnumDecl):
                self.error(body.line, f"error {name.text} needs a parameter list (name: type, ...), not an enum")
            return Symbol("error", name.text, doc, name.line, body=body)
        input_ = self.struct_or_enum(allow_empty=True)
        if isinstance(input_, EnumDecl):
            self.error(input_.line, f"method {name.text} needs a parameter list (name: type, ...), not an enum")
        arrow = self.next()
        if arrow.text != "->":
            self.error(arrow.line, f"expected '->' after the input of method {name.text}, found {arrow.describe()}")
        output = self.struct_or_enum(allow_empty=True)
        if isinstance(output, EnumDecl):
            self.error(output.line, f"method {name.text} needs an output list (name: type, ...), not an enum")
        return Symbol("method", name.text, doc, name.line, input_=input_, output=output)

    def struct_or_enum(self, allow_empty=False):
        """`(` fields `)` or `(` enum values `)`; the kind is told by the first entry (a `:` after its name)."""
        open_ = self.expect("(", "'('")
        if self.depth == MAX_NESTING:
            self.error(open_.line, f"types nested deeper than {MAX_NESTING} levels; declare a named type")
        self.depth += 1
        try:
            return self._list(open_, allow_empty)
        finally:
            self.depth -= 1

    def _list(self, open_, allow_empty):
        if self.peek().text == ")":
            self.no_trailing_comment()
            if not allow_empty:
                self.error(open_.line, "an empty list '()' is only allowed for the parameters of methods and "
                                       "errors (systemd's varlink IDL)")
            self.next()
            return StructDecl([], open_.line)
        is_struct = self.peek(1).text == ":"
        entries = []
        names = set()
        while True:
            doc = self.take_doc()
            name = self.word("a field name" if is_struct else "an enum value")
            if not FIELD_NAME.match(name.text):
                self.error(name.line, f"invalid {'field name' if is_struct else 'enum value'} '{name.text}'")
            if name.text in names:
                self.error(name.line, f"'{name.text}' appears twice")
            names.add(name.text)
            if is_struct:
                self.expect(":", f"':' after field '{name.text}'")
                entries.append(Field(name.text, self.type(), doc, name.line))
            else:
                if self.peek().text == ":":
                    self.error(self.peek().line, f"'{name.text}' has a type, but this list is an enum (values without types)")
                entries.append(EnumValue(name.text, doc, name.line))
            if self.peek().text == ")":
                self.no_trailing_comment()
            token = self.next()
            if token.text == ")":
                break
            if token.text != ",":
                self.error(token.line, f"expected ',' or ')', found {token.describe()}")
            if self.peek().text == ")":
                self.error(self.peek().line, "a ',' before ')' (no trailing commas in varlink)")
        return StructDecl(entries, open_.line) if is_struct else EnumDecl(entries, open_.line)

    def no_trailing_comment(self):
        """Before a ')': systemd's parser refuses a comment there (varlinkctl would not read the interface)."""
        if self.tokens[self.pos].kind == "comment":
            self.error(self.tokens[self.pos].line, "a comment before ')' documents nothing (systemd's varlink IDL "
                                                   "does not allow one there)")

    def type(self):
        """[?] [[] | [string]] element — systemd's grammar: one optional mark, at most one array or map level,
        and an element that is itself neither optional nor a container."""
        token = self.peek()
        if token.text == "?":
            self.next()
            if self.peek().text == "?":
                self.error(self.peek().line, "'??': a type can be optional only once")
            return TypeRef("optional", token.line, inner=self.container())
        return self.container()

    def container(self):
        token = self.peek()
        if token.text != "[":
            return self.element()
        self.next()
        close = self.next()
        if close.text == "]":
            kind = "array"
        elif close.text == "string":
            self.expect("]", "']' after '[string'")
            kind = "map"
        else:
            self.error(close.line, f"expected '[]' or '[string]', found '[' {close.describe()}")
        after = self.peek()
        if after.text == "?":
            self.error(after.line, f"the elements of {'an array' if kind == 'array' else 'a map'} cannot be "
                                   "optional (systemd's varlink IDL has no '[]?T' nor '[string]?T')")
        if after.text == "[":
            self.error(after.line, f"{'an array' if kind == 'array' else 'a map'} cannot hold arrays or maps "
                                   "directly (systemd's varlink IDL has no '[][]T'); use a struct type")
        return TypeRef(kind, token.line, inner=self.element())

    def element(self):
        token = self.peek()
        if token.text == "(":
            decl = self.struct_or_enum()
            return TypeRef("struct" if isinstance(decl, StructDecl) else "enum", token.line, decl=decl)
        word = self.next()
        if word.kind != "word":
            self.error(word.line, f"expected a type, found {word.describe()}")
        if word.text in BUILTIN_TYPES:
            return TypeRef(word.text, word.line)
        if word.text == "any":
            self.error(word.line, "the type 'any' is not supported by svckit's bindings yet")
        if not SYMBOL_NAME.match(word.text):
            self.error(word.line, f"unknown type '{word.text}'")
        return TypeRef("named", word.line, name=word.text)


def _check(interface):
    """What the grammar cannot say: unique symbol names, references to declared types."""
    seen = {}
    for symbol in interface.symbols:
        if symbol.name in seen:
            raise IdlError(interface.path, symbol.line,
                           f"'{symbol.name}' is already declared (line {seen[symbol.name].line})")
        seen[symbol.name] = symbol

    def check_type(t):
        if t.kind == "named":
            target = seen.get(t.name)
            if target is None:
                raise IdlError(interface.path, t.line, f"unknown type '{t.name}'")
            if target.kind != "type":
                raise IdlError(interface.path, t.line, f"'{t.name}' is {'a method' if target.kind == 'method' else 'an error'}, not a type")
        elif t.kind in ("optional", "array", "map"):
            check_type(t.inner)
        elif t.kind == "struct":
            check_struct(t.decl)

    def check_struct(decl):
        for field in decl.fields:
            check_type(field.type)

    for symbol in interface.symbols:
        for decl in (symbol.body, symbol.input, symbol.output):
            if isinstance(decl, StructDecl):
                check_struct(decl)


def parse(text, path):
    """Parses the text of a .varlink file; raises IdlError."""
    name, doc, symbols = _Parser(text, path).parse()
    interface = Interface(name, doc, symbols, text, path)
    _check(interface)
    return interface
