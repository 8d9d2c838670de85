#!/usr/bin/env python3
"""tests/lib/count_results_test.py — dev/test's counting (tests/lib/count_results.py) on made-up inputs: a fake
build directory with a testlog.json, GoogleTest XML reports and a fake GoogleTest binary that only lists its
cases. Each rule is shown to fail the way it should: a crashed binary's cases are failed, a skip is counted and
named, a cited proof that skipped fails under CI=true, stale results are not counted.
Ends with `count_results: N passed, N failed`."""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COUNT = os.path.join(HERE, 'count_results.py')
PROOF = 'ProcessFacts.NeverReportsAProcessThatReusedTheCallersPid'  # listed in tests/proof-tests.txt
passed = failed = 0


def check(desc, ok, output=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'ok - {desc}')
    else:
        failed += 1
        print(f'not ok - {desc}')
        for line in output.splitlines()[-30:]:
            print(f'    | {line}')


def run(*args, ci=False):
    env = {k: v for k, v in os.environ.items() if k != 'CI'}
    if ci:
        env['CI'] = 'true'
    r = subprocess.run([sys.executable, COUNT, *args], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout + r.stderr


def fake_binary(path, listing):
    """A "GoogleTest binary" that answers --gtest_list_tests with LISTING and fails otherwise."""
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n[ "$1" = --gtest_list_tests ] || exit 1\ncat <<"EOF"\n' + listing + 'EOF\n')
    os.chmod(path, 0o755)


def xml(cases):
    """A GoogleTest 1.17/1.18 style report; CASES: (suite, name, kind, message) with kind ok|fail|skip|disabled."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<testsuites tests="%d" failures="0" name="AllTests">'
           % len(cases), '  <testsuite name="S" tests="1">']
    for suite, name, kind, msg in cases:
        status, result = ('notrun', 'suppressed') if kind == 'disabled' else \
            ('run', 'skipped') if kind == 'skip' else ('run', 'completed')
        head = f'    <testcase name="{name}" file="x.cpp" line="1" status="{status}" result="{result}" ' \
               f'time="0" classname="{suite}"'
        if kind == 'fail':
            out.append(head + f'>\n      <failure message="x.cpp:9&#x0A;{msg}" type=""/>\n    </testcase>')
        elif kind == 'skip':
            out.append(head + f'>\n      <skipped message="x.cpp:7&#x0A;{msg}"/>\n    </testcase>')
        else:
            out.append(head + ' />')
    out += ['  </testsuite>', '</testsuites>']
    return '\n'.join(out) + '\n'


class Build:
    """A throw-away build directory: meson-logs/testlog.json, meson-info/intro-tests.json, reports, binaries."""

    def __init__(self, root):
        self.dir = tempfile.mkdtemp(dir=root)
        os.makedirs(os.path.join(self.dir, 'meson-logs'))
        os.makedirs(os.path.join(self.dir, 'meson-info'))
        self.entries = []
        self.registered = []

    def gtest(self, name, result, rc, listing=None, report=None, stdout='', start=None):
        binary = os.path.join(self.dir, name)
        fake_binary(binary, listing or '')
        if report is not None:
            with open(os.path.join(self.dir, name + '.xml'), 'w') as f:
                f.write(report)
        self.add(name, result, rc, [binary], stdout, start, 'gtest')

    def script(self, name, result, rc, stdout, start=None):
        self.add(name, result, rc, ['/bin/sh', name + '.sh'], stdout, start, 'exitcode')

    def add(self, name, result, rc, command, stdout, start, protocol):
        # As meson writes them: testlog.json's command lacks --gtest_output; the protocol is in intro-tests.json.
        self.registered.append({'name': name, 'protocol': protocol, 'cmd': command, 'workdir': None})
        self.entries.append({'name': f'unit - svckit:{name}', 'stdout': stdout, 'result': result,
                             'is_fail': result not in ('OK', 'SKIP'), 'starttime': start or time.time(),
                             'duration': 0.1, 'returncode': rc, 'env': {}, 'command': command})

    def write(self, registered_extra=()):
        with open(os.path.join(self.dir, 'meson-logs', 'testlog.json'), 'w') as f:
            for e in self.entries:
                f.write(json.dumps(e) + '\n')
        with open(os.path.join(self.dir, 'meson-info', 'intro-tests.json'), 'w') as f:
            json.dump(self.registered + [{'name': n, 'protocol': 'exitcode', 'cmd': ['/bin/false'], 'workdir': None}
                                         for n in registered_extra], f)
        return self.dir


def main():
    root = tempfile.mkdtemp(prefix='count-results-test-')
    record = os.path.join(root, 'record.jsonl')

    # 1. A report with every outcome: passed, failed, skipped (GTEST_SKIP), disabled.
    b = Build(root)
    b.gtest('mixed_test', 'FAIL', 1, report=xml([
        ('Mixed', 'Passes', 'ok', ''), ('Mixed', 'AlsoPasses', 'ok', ''),
        ('Mixed', 'Fails', 'fail', 'Expected equality'),
        ('Mixed', 'Skips', 'skip', 'Skipped&#x0A;no pidfs here'), ('Mixed', 'DISABLED_Off', 'disabled', '')]))
    rc, out = run('meson', b.write(), '--stage', 'mixed', '--record', record)
    check('a report: passed, failed and skipped cases counted apart',
          '--- mixed: 2 passed, 1 failed, 2 skipped' in out and rc == 1, out)
    check('a skipped case is named with its message', 'mixed_test Mixed.Skips: no pidfs here' in out, out)
    check('a disabled case counts as skipped', 'Mixed.DISABLED_Off: disabled' in out, out)

    # 2. A binary that crashed in its second case: no report; every listed case is failed, by name.
    b = Build(root)
    b.gtest('crash_test', 'FAIL', -11, listing='Crash.\n  One\n  Two\n  Three\nP/Par.\n  Case/0  # GetParam() = 1\n',
            stdout='[ RUN      ] Crash.One\n[       OK ] Crash.One (0 ms)\n[ RUN      ] Crash.Two\n')
    rc, out = run('meson', b.write(), '--stage', 'crash')
    check("a crashed binary's cases are all failed", '--- crash: 0 passed, 4 failed, 0 skipped' in out and rc == 1,
          out)
    check('the case it died in is named',
          'crash_test Crash.Two: no result: the binary died while running it (FAIL, exit status -11, wrote no report)' in out, out)
    check('a parameterized case is listed by its full name', 'crash_test P/Par.Case/0: no result' in out, out)

    # 3. A timeout: the same, whatever the output says.
    b = Build(root)
    b.gtest('slow_test', 'TIMEOUT', -15, listing='Slow.\n  A\n  B\n')
    rc, out = run('meson', b.write(), '--stage', 'timeout')
    check("a timed-out binary's cases are failed", '--- timeout: 0 passed, 2 failed, 0 skipped' in out, out)

    b = Build(root)
    b.gtest('silent_test', 'OK', 0, listing='')
    rc, out = run('meson', b.write(), '--stage', 'silent')
    check('a binary that exits 0 with no report and no listed case is a failure',
          '--- silent: 0 passed, 1 failed' in out, out)

    # 4. Every case passed, but meson calls it failed (LeakSanitizer at exit): one failure more.
    b = Build(root)
    b.gtest('leak_test', 'FAIL', 23, listing='Leak.\n  A\n', report=xml([('Leak', 'A', 'ok', '')]))
    rc, out = run('meson', b.write(), '--stage', 'leak')
    check('a failed binary whose cases all passed is one failure',
          '--- leak: 1 passed, 1 failed, 0 skipped' in out and 'leak_test: FAIL, exit status 23' in out, out)

    # 5. Scripts: exit 77 is a named skip with its reason; closing lines count checks; no line counts one.
    b = Build(root)
    b.script('needs_tool', 'SKIP', 77, 'starting\nSKIP: varlinkctl (systemd >= 255) is not installed\n')
    b.script('checks', 'FAIL', 1, 'ok - a\nnot ok - b is wrong\nok - c\nchecks: 2 passed, 1 failed\n')
    b.script('check_sh_skip', 'SKIP', 77, 'ok - a\nSKIP: no /run here\ncheck_sh_skip: 1 passed, 0 failed, 1 skipped\n')
    b.script('plain_ok', 'OK', 0, 'fine\n')
    b.script('plain_fail', 'FAIL', 2, 'broken\n')
    b.script('lying', 'FAIL', 1, 'lying: 5 passed, 0 failed\n')
    rc, out = run('meson', b.write(), '--stage', 'scripts')
    check('scripts: closing lines, plain exit statuses and skips counted',
          '--- scripts: 9 passed, 3 failed, 2 skipped' in out, out)
    check("check.sh's skip (SKIP: line, then a closing line with 1 skipped) is one skip",
          'check_sh_skip: SKIP: no /run here' in out and out.count('skipped  check_sh_skip') == 1, out)
    check('a script that exits 77 is skipped by name with its reason',
          'needs_tool: SKIP: varlinkctl (systemd >= 255) is not installed' in out, out)
    check('a failed check is named', 'FAILED   checks: b is wrong' in out, out)
    check('a failed exit after a clean closing line is a failure', 'lying: FAIL, exit status 1 after' in out, out)

    # 6. A cited proof that skipped: a loud skip outside CI, a failure under CI=true.
    b = Build(root)
    proc, case = PROOF.split('.')
    b.gtest('process_facts_test', 'OK', 0, report=xml([(proc, case, 'skip', 'clone3 set_tid not permitted')]))
    d = b.write()
    rc, out = run('meson', d, '--stage', 'proof')
    check('outside CI a skipped proof is a skip with a loud note',
          '0 failed, 1 skipped' in out and '!!! docs/identity.md' in out and rc == 0, out)
    rc, out = run('meson', d, '--stage', 'proof', ci=True)
    check('under CI=true a skipped proof is a failure',
          '0 passed, 1 failed, 0 skipped' in out and 'cites it as proof' in out and rc == 1, out)
    b = Build(root)
    b.gtest('process_facts_test', 'OK', 0, report=xml([(f'InNs/{proc}', f'{case}/0', 'skip', 'no clone3')]))
    rc, out = run('meson', b.write(), '--stage', 'proof param', ci=True)
    check('under CI=true a parameterized instance of a cited proof that skipped is a failure',
          '0 passed, 1 failed, 0 skipped' in out, out)
    b = Build(root)
    b.script('varlink_conformance', 'SKIP', 77, 'SKIP: no C compiler\n')
    rc, out = run('meson', b.write(), '--stage', 'proof script', ci=True)
    check('under CI=true a cited script that skipped is a failure', '0 passed, 1 failed, 0 skipped' in out, out)

    # 7. Stale results: a line of an earlier run in testlog.json, a report older than the run, no testlog.json.
    b = Build(root)
    b.script('old', 'OK', 0, 'old: 40 passed, 0 failed\n', start=time.time() - 3600)
    rc, out = run('meson', b.write(), '--stage', 'stale', '--since', str(time.time() - 60))
    check("an earlier run's line is not counted", '--- stale: 0 passed, 1 failed' in out, out)
    b = Build(root)
    b.gtest('old_report_test', 'FAIL', -6, listing='Old.\n  A\n', report=xml([('Old', 'A', 'ok', '')]))
    d = b.write()
    past = time.time() - 3600
    os.utime(os.path.join(d, 'old_report_test.xml'), (past, past))
    rc, out = run('meson', d, '--stage', 'stale report', '--since', str(time.time() - 60))
    check('a report older than the run is not counted',
          '0 passed, 1 failed' in out and 'older than the run (stale)' in out, out)
    b = Build(root)
    d = b.write()
    os.remove(os.path.join(d, 'meson-logs', 'testlog.json'))
    rc, out = run('meson', d, '--stage', 'no log')
    check('no testlog.json is a failure', 'wrote no' in out and rc == 1, out)

    # 8. A registered test with no result did not run: a failure (with --all-registered).
    b = Build(root)
    b.script('ran', 'OK', 0, '')
    rc, out = run('meson', b.write(registered_extra=['never_ran']), '--stage', 'missing', '--all-registered')
    check('a registered test without a result is a failure',
          '1 passed, 1 failed' in out and 'never_ran: registered but has no result' in out, out)

    # 9. The summary: every skip listed, the closing line, the exit status.
    rc, out = run('summary', record)
    check('the summary lists the skips and ends with the three counts',
          'skipped (2):' in out and out.rstrip().endswith('svckit: 2 passed, 1 failed, 2 skipped') and rc == 1, out)
    empty = os.path.join(root, 'empty.jsonl')
    open(empty, 'w').close()
    rc, out = run('summary', empty)
    check('nothing counted is a failure', rc == 1 and 'svckit: 0 passed, 1 failed, 0 skipped' in out, out)
    rc, out = run('script', 'e2e_thing', '77', os.path.join(root, 'e2e.out'), '--stage', 'e2e') \
        if open(os.path.join(root, 'e2e.out'), 'w').write('SKIP: cannot boot a container here\n') else (0, '')
    check('an end-to-end script that exits 77 is a named skip',
          '1 skipped' in out and 'e2e_thing: SKIP: cannot boot a container here' in out, out)

    print(f'count_results: {passed} passed, {failed} failed')
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
