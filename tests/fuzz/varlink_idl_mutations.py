#!/usr/bin/env python3
"""tests/fuzz/varlink_idl_mutations.py — a mutation test of the varlink IDL parser of varlink-codegen.

    varlink_idl_mutations.py [--seconds S | --iterations N] [--seed N] [--crash-dir DIR] [FILE...]

Takes the .varlink files of the repository (tests/codegen, its bad/ files, examples/), or the FILEs given, and
runs varlink-codegen (its main(), in this process) on random mutations of them: characters and lines deleted,
duplicated, swapped, replaced with IDL tokens, deep nesting, bytes that are not UTF-8. Every mutation must
either generate (exit 0, both files written) or be refused with exit 1 and one message that starts with
`FILE:LINE: ` (LINE a line of the file, or one past its end); a traceback, another exit status or a message
without the place is a failure. A failing input is written to --crash-dir (default: a temporary directory),
and its path printed: reproduce with `varlink_codegen.py --output-dir /tmp FILE`.

The closing line is `varlink_idl_mutations: N passed, N failed` (one check: the whole run), after the number
of mutations run. See docs/testing.md ("Fuzzing").
"""

import argparse
import contextlib
import glob
import io
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "varlink-codegen"))

import varlink_codegen  # noqa: E402

TOKENS = [
    "interface", "type", "method", "error", "->", "(", ")", "()", ",", ":", "?", "[]", "[string]", "[", "]",
    "bool", "int", "float", "string", "object", "any", "\n", " ", "#", "# doc\n", "# [Requires 'more' flag]\n",
    "A", "a", "Foo", "foo", "x_y", "org.example.x", "Settings", "EchoIn", "EchoReply", "class", "errno",
    "\t", "\r", "-", ".", "_", "0", "9", "??", "[][]", "[string][string]", "(a: int)", "(red, green)",
    "\\", '"', "'", "\x00", "\u00e9", "\U0001F600",
]


def mutate(text, rng):
    """One to four random edits of text."""
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        n = len(text)
        at = rng.randint(0, n)
        if kind == 0 and n:  # delete a span
            end = min(n, at + rng.randint(1, 8))
            text = text[:at] + text[end:]
        elif kind == 1:  # insert a token
            text = text[:at] + rng.choice(TOKENS) + text[at:]
        elif kind == 2 and n:  # replace a character with a token
            text = text[:at] + rng.choice(TOKENS) + text[at + 1:]
        elif kind == 3:  # duplicate, delete or swap lines
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            op = rng.randrange(3)
            if op == 0:
                lines.insert(j, lines[i])
            elif op == 1 and len(lines) > 1:
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == 4:  # deep nesting of a type
            depth = rng.choice([2, 10, 100, 1000, 5000])
            piece = rng.choice(["(a: ", "[]", "?", "[string]", "(", "[]?"])
            text = text[:at] + piece * depth + text[at:]
        elif kind == 5 and n:  # truncate
            text = text[:at]
        elif kind == 6:  # a long name
            text = text[:at] + rng.choice("Aa") * rng.choice([64, 300, 5000]) + text[at:]
        elif kind == 7 and n:  # swap two words
            words = re.findall(r"\S+", text)
            if len(words) > 1:
                a, b = rng.sample(words, 2)
                text = text.replace(a, "\x01", 1).replace(b, a, 1).replace("\x01", b, 1)
        elif kind == 8:  # a random printable character or any byte later
            text = text[:at] + chr(rng.randrange(1, 256)) + text[at:]
    return text


def check(data, path, outdir):
    """None when varlink-codegen generates or refuses data properly; else why not."""
    with open(path, "wb") as f:
        f.write(data)
    for name in os.listdir(outdir):
        os.unlink(os.path.join(outdir, name))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = varlink_codegen.main(["--output-dir", outdir, path])
    except RecursionError:
        return "a traceback (RecursionError):\n" + traceback.format_exc(limit=3)
    except BaseException:  # noqa: BLE001 - anything that escapes main() is a traceback for the user
        return "a traceback:\n" + traceback.format_exc(limit=8)
    message = err.getvalue()
    if status == 0:
        written = sorted(os.listdir(outdir))
        base = os.path.basename(path)
        if written != [base + ".cpp", base + ".hpp"]:
            return f"exit 0 but wrote {written}"
        return None
    if status != 1:
        return f"exit {status}: {message}"
    lines = message.splitlines()
    if len(lines) != 1:
        return f"refused with {len(lines)} lines of message: {message!r}"
    m = re.match(re.escape(path) + r":(\d+): \S", lines[0])
    if not m:
        return f"refused without FILE:LINE: {message!r}"
    line = int(m.group(1))
    last = data.count(b"\n") + 1
    if not 1 <= line <= last + 1:
        return f"refused naming line {line} of a file of {last} lines: {message!r}"
    if os.listdir(outdir):
        return f"refused but wrote {os.listdir(outdir)}"
    return None


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--crash-dir", default=None)
    args = parser.parse_args(argv)
    if args.seconds is None and args.iterations is None:
        args.iterations = 1000
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    # Mutations nest types thousands deep: the recursion limit is Python's default, as for the generator.
    files = args.files or sorted(
        glob.glob(os.path.join(ROOT, "tests", "codegen", "*.varlink"))
        + glob.glob(os.path.join(ROOT, "tests", "codegen", "bad", "*.varlink"))
        + glob.glob(os.path.join(ROOT, "examples", "*", "*.varlink")))
    seeds = []
    for name in files:
        with open(name, "rb") as f:
            seeds.append(f.read().decode("utf-8"))
    print(f"varlink_idl_mutations: seed {seed}, {len(seeds)} seed files")

    work = tempfile.mkdtemp(prefix="varlink-idl-mutations-")
    outdir = os.path.join(work, "out")
    os.mkdir(outdir)
    path = os.path.join(work, "m.varlink")
    crash_dir = args.crash_dir or work
    os.makedirs(crash_dir, exist_ok=True)
    failures = 0
    runs = generated = 0
    start = time.monotonic()
    try:
        while True:
            if args.iterations is not None and runs >= args.iterations:
                break
            if args.seconds is not None and time.monotonic() - start >= args.seconds:
                break
            text = mutate(rng.choice(seeds), rng)
            # Mostly UTF-8; sometimes bytes that are not.
            data = text.encode("utf-8", "surrogatepass")
            if rng.randrange(50) == 0:
                data = data[: rng.randint(0, len(data))] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xED])]) + \
                    data[rng.randint(0, len(data)):]
            runs += 1
            why = check(data, path, outdir)
            if why is None:
                generated += os.path.exists(os.path.join(outdir, "m.varlink.hpp"))
                continue
            failures += 1
            saved = os.path.join(crash_dir, f"crash-{failures}.varlink")
            with open(saved, "wb") as f:
                f.write(data)
            print(f"not ok - mutation {runs}: {why.strip()}\n  input saved as {saved}")
            if failures >= 10:
                break
    finally:
        if not args.crash_dir and not failures:
            shutil.rmtree(work, ignore_errors=True)
    print(f"varlink_idl_mutations: {runs} mutations in {time.monotonic() - start:.0f} s, {generated} generated, "
          f"{runs - generated - failures} refused with FILE:LINE, {failures} failed")
    print(f"varlink_idl_mutations: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
