#!/usr/bin/env python3
"""varlink-codegen — C++ bindings for svckit from .varlink interface files.

    varlink_codegen.py [--output-dir DIR] [--depfile FILE] X.varlink...

For each X.varlink, writes DIR/X.varlink.hpp and DIR/X.varlink.cpp: the interface's types as C++ structs and
enums with decoders and encoders, an abstract Server to implement and a Client (see docs/varlink-codegen.md).
The C++ text comes from the Jinja2 templates beside this script (templates/*.tmpl). A bad input is reported
as `FILE:LINE: message` with exit status 1. Python 3 and Jinja2 (python3-jinja2).
"""

import sys

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree

import argparse  # noqa: E402
import os  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import idl  # noqa: E402

try:
    import jinja2  # noqa: E402
except ImportError:
    sys.exit("varlink-codegen: needs Jinja2 (the python3-jinja2 package)")

# C++ keywords and alternative tokens, and the standard macros a name must not hit: a name among them gets a
# `_` suffix (varlink names never end in `_`, so the result cannot clash with another name).
CXX_RESERVED = set(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t
    class compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield
    decltype default delete do double dynamic_cast else enum explicit export extern false float for friend
    goto if inline int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private
    protected public register reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid typename union
    unsigned using virtual void volatile wchar_t while xor xor_eq
    assert errno NULL EOF stdin stdout stderr offsetof setjmp unix linux i386""".split()
)

# The C++ spelling of varlink's types.
CXX_TYPES = {
    "bool": "bool",
    "int": "::std::int64_t",
    "float": "double",
    "string": "::std::string",
    "object": "::svckit::varlink::JsonValue",
}

# Member names of generated structs that fields must not take.
STRUCT_MEMBERS = {"decode", "writeMembers"}
ERROR_MEMBERS = {"errorName", "from"}

# The classes generated beside the interface's types; a method named like one gets a `_` suffix in C++.
GENERATED_CLASSES = ("Server", "Client", "AsyncClient", "Settings")

# The names generated per method (METHOD + suffix): its input and output structs, and the aliases handlers are
# written with. A type or error named like one is an error in the .varlink file.
METHOD_SUFFIXES = {
    "In": "the input struct",
    "Out": "the output struct",
    "Reply": "the reply type",
    "Context": "the context type",
}

# systemd's marker for a method that answers only calls with `more`: a line of its own in the method's doc
# comment. sd-varlink's IDL formatter writes it right before `method` for SD_VARLINK_REQUIRES_MORE (its parser
# keeps it as a comment); `[Supports 'more' flag]` needs nothing: any method may be called with `more`.
REQUIRES_MORE_MARKER = "[Requires 'more' flag]"


def escape(name, reserved=()):
    return name + "_" if name in CXX_RESERVED or name in reserved else name


def pascal(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def comment_lines(doc):
    return ["// " + line if line else "//" for line in doc]


def c_string_lines(text):
    """The text as C++ string literals, one per line (concatenated by the compiler)."""
    lines = []
    for line in text.splitlines(keepends=True):
        escaped = ""
        for ch in line:
            if ch == "\\":
                escaped += "\\\\"
            elif ch == '"':
                escaped += '\\"'
            elif ch == "\n":
                escaped += "\\n"
            elif ch == "\t":
                escaped += "\\t"
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                escaped += "\\%03o" % ord(ch)
            else:
                escaped += ch
        lines.append('"' + escaped + '"')
    return lines


def indent_lines(text, width):
    """Jinja's `indent` filter (every line but the first gets `width` spaces, blank lines stay blank), splitting
    at '\n' only: `indent` splits with str.splitlines, which also breaks a doc comment at \r, \f, U+2028, ..."""
    return "\n".join(" " * width + line if line and i else line for i, line in enumerate(text.split("\n")))


def templates_environment():
    """The templates: whole-line tags leave no trace (trim_blocks, lstrip_blocks), a file's last newline is
    kept, and an undefined name is an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["indent_lines"] = indent_lines
    return env


class View:
    """What the templates read: plain attributes."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)


class Generator:
    def __init__(self, interface):
        self.interface = interface
        self.path = interface.path
        # Labels may contain '-' and, after the first, start with a digit: neither is C++.
        labels = [label.replace("-", "_") for label in interface.name.split(".")]
        self.namespace = "::".join(escape("_" + label if label[0].isdigit() else label) for label in labels)

    def error(self, line, message):
        raise idl.IdlError(self.path, line, message)

    def cpp_type(self, t, nested_name):
        if t.kind in CXX_TYPES:
            return CXX_TYPES[t.kind]
        if t.kind == "named":
            return f"::{self.namespace}::{t.name}"
        if t.kind in ("struct", "enum"):
            return nested_name
        inner = self.cpp_type(t.inner, nested_name)
        if t.kind == "optional":
            return f"::std::optional<{inner}>"
        if t.kind == "array":
            return f"::std::vector<{inner}>"
        return f"::std::map<::std::string, {inner}, ::std::less<>>"

    def enum_view(self, decl, name, qualified, doc, nested):
        values = [View(wire=v.name, cpp=escape(v.name), doc=comment_lines(v.doc)) for v in decl.values]
        return View(is_enum=True, name=name, qualified=qualified, doc=comment_lines(doc), values=values,
                    nested=nested)

    def struct_view(self, decl, name, qualified, doc, error_name=None):
        reserved = STRUCT_MEMBERS | {name} | (ERROR_MEMBERS if error_name else set())
        cpp_names = [escape(f.name, reserved) for f in decl.fields]
        taken = set(cpp_names) | reserved
        fields, nested = [], []
        for index, (field, cpp) in enumerate(zip(decl.fields, cpp_names)):
            inline = field.type.inline_decl()
            nested_name = None
            if inline is not None:
                nested_name = pascal(field.name)
                if nested_name in taken:
                    nested_name += "Type"
                if nested_name in taken:
                    self.error(field.line, f"no free C++ name for the inline type of field '{field.name}' "
                                           f"({pascal(field.name)} and {nested_name} are taken)")
                taken.add(nested_name)
                inner_qualified = f"{qualified}::{nested_name}"
                if isinstance(inline, idl.EnumDecl):
                    nested.append(self.enum_view(inline, nested_name, inner_qualified, [], True))
                else:
                    nested.append(self.struct_view(inline, nested_name, inner_qualified, []))
            fields.append(View(wire=field.name, cpp=cpp, index=index, doc=comment_lines(field.doc),
                               cpp_type=self.cpp_type(field.type, nested_name),
                               optional=field.type.kind == "optional"))
        return View(is_enum=False, name=name, qualified=qualified, doc=comment_lines(doc), fields=fields,
                    nested=nested, is_error=error_name is not None, error_name=error_name)

    def ordered_types(self):
        """Top-level types in IDL order, moved after what they hold by value (a struct must be complete where
        a member holds it; only std::vector accepts an incomplete element type)."""
        types = self.interface.of_kind("type")
        by_name = {t.name: t for t in types}

        def by_value(t, out):
            if t.kind == "named":
                out.append(t.name)
            elif t.kind in ("optional", "map"):
                by_value(t.inner, out)
            elif t.kind == "struct":
                for field in t.decl.fields:
                    by_value(field.type, out)

        ordered, state = [], {}

        def visit(symbol, chain):
            if state.get(symbol.name) == "done":
                return
            if state.get(symbol.name) == "visiting":
                cycle = " -> ".join(chain + [symbol.name])
                self.error(symbol.line, f"type {symbol.name} holds itself by value ({cycle}); only an array "
                                        "([]T) can hold a type inside itself")
            state[symbol.name] = "visiting"
            if isinstance(symbol.body, idl.StructDecl):
                deps = []
                for field in symbol.body.fields:
                    by_value(field.type, deps)
                for dep in deps:
                    visit(by_name[dep], chain + [symbol.name])
            state[symbol.name] = "done"
            ordered.append(symbol)

        for symbol in types:
            visit(symbol, [])
        return ordered

    def check_names(self):
        declared = {s.name: s for s in self.interface.symbols if s.kind != "method"}
        generated = dict.fromkeys(GENERATED_CLASSES)
        for method in self.interface.of_kind("method"):
            for suffix in METHOD_SUFFIXES:
                generated[method.name + suffix] = method
        for name, method in generated.items():
            if name in declared:
                what = f"{METHOD_SUFFIXES[name[len(method.name):]]} of method {method.name}" if method else f"the generated class {name}"
                self.error(declared[name].line, f"'{name}' clashes with {what}; rename it")

    def view(self, source_name):
        self.check_names()
        types = []
        for symbol in self.ordered_types():
            if isinstance(symbol.body, idl.EnumDecl):
                types.append(self.enum_view(symbol.body, symbol.name, symbol.name, symbol.doc, False))
            else:
                types.append(self.struct_view(symbol.body, symbol.name, symbol.name, symbol.doc))
        methods = []
        for m in self.interface.of_kind("method"):
            cpp = escape(m.name, GENERATED_CLASSES)
            in_name, out_name = m.name + "In", m.name + "Out"
            methods.append(View(
                name=m.name, cpp=cpp, wire=f"{self.interface.name}.{m.name}", doc=comment_lines(m.doc),
                requires_more=any(line.strip() == REQUIRES_MORE_MARKER for line in m.doc),
                input=self.struct_view(m.input, in_name, in_name, [f"The input of {m.name}."]),
                output=self.struct_view(m.output, out_name, out_name, [f"The output of {m.name}."])))
        errors = [self.struct_view(e.body, e.name, e.name, e.doc, error_name=f"{self.interface.name}.{e.name}")
                  for e in self.interface.of_kind("error")]
        struct_names = [t.name for t in types if not t.is_enum]
        return View(name=self.interface.name, namespace=self.namespace, source=source_name,
                    doc=comment_lines(self.interface.doc), description=c_string_lines(self.interface.text),
                    types=types, struct_names=struct_names, methods=methods, errors=errors)


def generate(path, output_dir, templates):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    interface = idl.parse(text, path)
    source_name = os.path.basename(path)
    view = Generator(interface).view(source_name)
    outputs = []
    for template, suffix in (("header.hpp.tmpl", ".hpp"), ("source.cpp.tmpl", ".cpp")):
        out = os.path.join(output_dir, source_name + suffix)
        rendered = templates.get_template(template).render(iface=view)
        if not rendered.endswith("\n"):
            rendered += "\n"
        with open(out, "w", encoding="utf-8") as f:
            f.write(rendered)
        outputs.append(out)
    return outputs


def main(argv):
    parser = argparse.ArgumentParser(description="C++ bindings for svckit from .varlink files")
    parser.add_argument("inputs", nargs="+", metavar="X.varlink")
    parser.add_argument("--output-dir", default=".", help="where X.varlink.hpp and X.varlink.cpp go")
    parser.add_argument("--depfile", help="write a make-style depfile (for meson)")
    args = parser.parse_args(argv)

    templates = templates_environment()
    outputs = []
    for path in args.inputs:
        try:
            outputs += generate(path, args.output_dir, templates)
        except idl.IdlError as e:
            print(f"{e.path}:{e.line}: {e.message}", file=sys.stderr)
            return 1
        except UnicodeDecodeError as e:
            print(f"{path}:1: not UTF-8 text ({e.reason})", file=sys.stderr)
            return 1
        except OSError as e:
            print(f"varlink-codegen: {e}", file=sys.stderr)
            return 1
    if args.depfile:
        deps = [os.path.join(HERE, name) for name in ("varlink_codegen.py", "idl.py")]
        deps += [os.path.join(HERE, "templates", name) for name in templates.list_templates()]
        with open(args.depfile, "w", encoding="utf-8") as f:
            f.write(f"{outputs[0]}: {' '.join(deps)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
