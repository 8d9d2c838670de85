#!/usr/bin/env bash
# What `meson install` of this build puts where (docs/install.md): staged with --destdir, the public headers,
# libsvckit.so*, svckit.pc naming the code generator, the code generator itself running from the staging tree
# (its modules and templates found beside it, not in the source tree) and generating code that compiles against
# the staged headers; with -Dexamples=true the examples' units in the unit directory with ExecStart= in bindir,
# and without it no example and no unit. A service's --bindir and --flat (the build-time units of a consumer).
#   install_layout.sh BUILD_DIR SOURCE_DIR EXAMPLES(true|false) UNIT_DIR EXAMPLE_BINARY BUS_SERVICE_BINARY
#       BUS_SERVICE_BUILT_UNIT CXX...
set -u
build=$1 source=$2 examples=$3 unitdir=$4 example=$5 bus_service=$6 built=$(dirname "$7")
shift 7
cxx=("$@")
check_name=install_layout
. "$(dirname "$0")/../lib/check.sh"
work=$(mktemp -d)
at_exit 'rm -rf "$work"'
stage=$work/stage

option() { # option NAME: this build's value of a meson option
    meson introspect "$build" --buildoptions |
        python3 -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]][0])' "$1"
}
prefix=$(option prefix) bindir=$(option bindir) libdir=$(option libdir) includedir=$(option includedir)
abs() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
bindir=$(abs "$bindir") libdir=$(abs "$libdir") includedir=$(abs "$includedir")

out=$(meson install -C "$build" --destdir "$stage" --no-rebuild --quiet 2>&1)
rc=$?
[ "$rc" = 0 ] || bail "meson install --destdir succeeds" "$out"
pass "meson install --destdir succeeds"

# --- the library and its headers
headers=$(cd "$source/framework/include/svckit" && ls)
missing=$(for h in $headers; do [ -f "$stage$includedir/svckit/$h" ] || echo "$h"; done)
equals "every public header is installed in $includedir/svckit" "$missing" ""
check "libsvckit.so links to its soname, a file" sh -c "[ -L '$stage$libdir/libsvckit.so' ] &&
    [ -f \"\$(readlink -f '$stage$libdir/libsvckit.so')\" ] && ls '$stage$libdir'/libsvckit.so.*.*"
check "libsvckit.a is installed (static linking: docs/service.md, Start-up time)" test -f "$stage$libdir/libsvckit.a"
check "...and holds the service's objects (svckit::run's command line)" sh -c \
    "nm -C '$stage$libdir/libsvckit.a' 2>/dev/null | grep -q ' T svckit::detail::runMain'"

# --- svckit.pc and the code generator it names
pc=$stage$libdir/pkgconfig/svckit.pc
contains "svckit.pc names the code generator" "$(cat "$pc" 2>&1)" 'varlink_codegen=${bindir}/svckit-varlink-codegen'
codegen=$(PKG_CONFIG_PATH=$stage$libdir/pkgconfig pkg-config --define-prefix --variable=varlink_codegen svckit 2>&1)
equals "pkg-config --variable=varlink_codegen names the staged svckit-varlink-codegen" "$codegen" \
    "$stage$bindir/svckit-varlink-codegen"
check "svckit-varlink-codegen is executable" test -x "$codegen"
mkdir -p "$work/gen"
cp "$source/examples/calc/io.svckit.example.Calc.varlink" "$work/"
check "the staged svckit-varlink-codegen generates .hpp and .cpp from a .varlink" "$codegen" \
    --output-dir "$work/gen" --depfile "$work/gen/calc.d" "$work/io.svckit.example.Calc.varlink"
check "...both files" test -s "$work/gen/io.svckit.example.Calc.varlink.hpp" -a \
    -s "$work/gen/io.svckit.example.Calc.varlink.cpp"
deps=$(cat "$work/gen/calc.d" 2>&1)
contains "...from its modules and templates in the staging tree" "$deps" \
    "$stage$(abs "$(option datadir)")/svckit/varlink-codegen/templates/header.hpp.tmpl"
lacks "...not from the source tree" "$deps" "$source/"
# shellcheck disable=SC2046 # pkg-config prints a list of words
check "...and its code compiles against the staged headers (pkg-config --cflags svckit)" \
    "${cxx[@]}" -std=c++23 -fsyntax-only -I"$work/gen" \
    $(PKG_CONFIG_PATH=$stage$libdir/pkgconfig pkg-config --define-prefix --cflags svckit) \
    "$work/gen/io.svckit.example.Calc.varlink.cpp"

# --- the examples and their units
installed=$(cd "$stage" && find . ! -type d | sed 's|^\.||' | sort)
if [ "$examples" = true ]; then
    reference=$(cd "$source/units" && ls -- *.socket *.service | sort)
    units=$(cd "$stage$unitdir" 2>/dev/null && ls | sort)
    equals "-Dexamples=true: the examples' units are installed in $unitdir" "$units" "$reference"
    for unit in $(grep -l '^ExecStart=' "$stage$unitdir"/*.service 2>/dev/null); do
        exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
        equals "$(basename "$unit"): ExecStart= is in bindir" "$(dirname "$exec_start")" "$bindir"
        check "...and names an installed binary" test -x "$stage$exec_start"
    done
    if [ "$bindir" = /usr/bin ]; then
        check "...and, with bindir /usr/bin, are the reference copies in units/" diff -r -x meson.build \
            "$source/units" "$stage$unitdir"
    fi
else
    lacks "-Dexamples=false: no example is installed" "$installed" "svckit-example"
    lacks "-Dexamples=false: no unit is installed" "$installed" "/systemd/"
fi

# --- a service's --bindir and --flat, as a consumer's build-time units use them
printed=$("$example" --print-units --bindir=/opt/x/bin 2>&1)
contains "--print-units --bindir=/opt/x/bin: ExecStart= names /opt/x/bin/NAME" "$printed" \
    "ExecStart=/opt/x/bin/$(basename "$example")"
printed=$("$example" --print-units 2>&1)
contains "without --bindir: ExecStart= names /usr/bin/NAME" "$printed" "ExecStart=/usr/bin/$(basename "$example")"
"$example" --bindir=/opt/x/bin >/dev/null 2>&1
exits "--bindir without --print-units is refused" "$?" 2
"$example" --print-units --bindir=opt/x >/dev/null 2>&1
exits "--bindir with a relative path is refused" "$?" 2
check "--print-units=DIR --flat writes a bus service's files" "$bus_service" --print-units="$work/flat" --flat
equals "...every file straight in DIR (unit, D-Bus activation file, bus policy)" \
    "$(cd "$work/flat" 2>/dev/null && find . -type f | sort)" \
    "./org.svckit.test.BusProbe1.conf
./org.svckit.test.BusProbe1.service
./svckit-e2e-dbus-bus.service"
# The build's custom target (tests/e2e/dbus_bus_service/meson.build) made the same files as the layout installed.
"$bus_service" --print-units="$work/tree" >/dev/null 2>&1
for f in svckit-e2e-dbus-bus.service dbus-1/system-services/org.svckit.test.BusProbe1.service \
    dbus-1/system.d/org.svckit.test.BusProbe1.conf; do
    check "the build's flat $(basename "$f") is --print-units=DIR's $f" cmp "$built/$(basename "$f")" "$work/tree/$f"
done
summary
