#!/usr/bin/env bash
# What a configuration installs, read from `meson introspect --installed` of build directories configured here
# (configured only, nothing compiled): with the default options no example and no unit, only the framework and
# its code generator; with -Dexamples=true the examples and their units in systemd.pc's systemd_system_unit_dir
# moved under the prefix (a stand-in systemd.pc with prefix=/usr), or in -Dsystemdsystemunitdir.
#   install_options.sh SOURCE_DIR
set -u
source=$1
check_name=install_options
. "$(dirname "$0")/../lib/check.sh"
work=$(mktemp -d)
at_exit 'rm -rf "$work"'
mkdir "$work/pc"
cat >"$work/pc/systemd.pc" <<'PC'
prefix=/usr
systemd_system_unit_dir=${prefix}/lib/systemd/system
systemdsystemunitdir=${systemd_system_unit_dir}

Name: systemd
Description: systemd (a stand-in with the variables of systemd 262's)
Version: 262
PC

installed() { # installed NAME MESON_SETUP_ARGS...: the installed paths, one a line
    local dir=$work/$1 out
    shift
    out=$(PKG_CONFIG_PATH=$work/pc meson setup "$dir" "$source" "$@" 2>&1) || { echo "$out"; return 1; }
    meson introspect "$dir" --installed | python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin).values())))'
}

out=$(installed default --prefix=/usr)
exits "meson setup with the default options" "$?" 0 "$out"
contains "default: libsvckit is installed" "$out" "/libsvckit.so"
contains "default: svckit.pc is installed" "$out" "/pkgconfig/svckit.pc"
contains "default: svckit-varlink-codegen is installed" "$out" "/usr/bin/svckit-varlink-codegen"
contains "default: its templates are installed" "$out" "/usr/share/svckit/varlink-codegen/templates"
lacks "default: no example binary is installed" "$out" "svckit-example"
lacks "default: no unit is installed" "$out" "/systemd/"

out=$(installed opt --prefix=/opt/svckit-test -Dexamples=true -Dtests=disabled)
exits "meson setup --prefix=/opt/svckit-test -Dexamples=true -Dtests=disabled" "$?" 0 "$out"
contains "-Dexamples=true: the examples are installed in the prefix's bindir" "$out" \
    "/opt/svckit-test/bin/svckit-example-calc"
contains "...their units in systemd.pc's unit directory under the prefix" "$out" \
    "/opt/svckit-test/lib/systemd/system/svckit-example-calc.service"
lacks "...and nowhere outside the prefix" "$out" "
/usr/"

out=$(installed override --prefix=/usr -Dexamples=true -Dsystemdsystemunitdir=/etc/svckit-test/units)
exits "meson setup -Dsystemdsystemunitdir=/etc/svckit-test/units" "$?" 0 "$out"
contains "-Dsystemdsystemunitdir: the units go there" "$out" "/etc/svckit-test/units/svckit-example-calc.service"
lacks "...and not to systemd.pc's" "$out" "/lib/systemd/system/"
summary
