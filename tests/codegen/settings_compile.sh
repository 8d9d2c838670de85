#!/usr/bin/env bash
# A method misspelt in a generated interface's per-method settings is a compile error. Compiles
# tests/codegen/settings/good.cpp, which must compile, and misspelt.cpp (the same with `Cuont` for `Count`),
# which must fail naming `Cuont`; likewise streaming.cpp (a streaming handler on the generated aliases) must
# compile and dropped_send.cpp (the same dropping the result of a further reply) must not. All with the
# compiler and flags the build uses for
# tests/integration/varlink_typed_test.cpp (from the build's compile_commands.json: its include directories
# hold the generated org.example.bench.varlink.hpp, its flags have -Werror).
#   tests/codegen/settings_compile.sh BUILD_DIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: settings_compile.sh BUILD_DIR}
check_name=codegen_settings_compile
. "$here/../lib/check.sh"

# The compile command of varlink_typed_test.cpp, NUL-separated: the directory to run in, then the arguments
# with the output, the dependency file and the source taken out.
mapfile -d '' command < <(python3 - "$build/compile_commands.json" <<'PY'
import json, shlex, sys
for entry in json.load(open(sys.argv[1])):
    if entry["file"].endswith("tests/integration/varlink_typed_test.cpp"):
        args = entry.get("arguments") or shlex.split(entry["command"])
        kept, skip = [], False
        for arg in args:
            if skip:
                skip = False
            elif arg in ("-o", "-MQ", "-MF", "-MT"):
                skip = True
            elif arg in ("-c", "-MD", "-MMD") or arg.endswith("varlink_typed_test.cpp"):
                pass
            else:
                kept.append(arg)
        sys.stdout.write("\0".join([entry["directory"]] + kept) + "\0")
        break
PY
)
if [ ${#command[@]} -lt 2 ]; then
    flunk "the compile command of varlink_typed_test.cpp is in $build/compile_commands.json"
    summary
    exit
fi
directory=${command[0]}
compile=("${command[@]:1}")

# compile SNIPPET: runs the compiler on it (syntax and semantics only, no object file).
compile() { (cd "$directory" && "${compile[@]}" -fsyntax-only "$here/settings/$1"); }

check "settings naming the interface's methods compile (settings/good.cpp)" compile good.cpp
if out=$(compile misspelt.cpp 2>&1); then
    flunk "a misspelt method in the settings (settings/misspelt.cpp) compiled"
else
    contains "a misspelt method in the settings does not compile, and the error names it" "$out" "Cuont"
fi
check "a streaming handler on the generated aliases compiles (settings/streaming.cpp)" compile streaming.cpp
if out=$(compile dropped_send.cpp 2>&1); then
    flunk "a dropped result of a further reply (settings/dropped_send.cpp) compiled"
else
    contains "a dropped result of a further reply does not compile (nodiscard)" "$out" "nodiscard"
fi
summary
