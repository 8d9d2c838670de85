#!/usr/bin/env python3
"""tests/lib/count_results.py — the counting behind dev/test's totals, in one place so it can be run (and tested)
on its own, without the whole suite.

It counts test *cases*: GoogleTest cases, and the checks of scenario scripts (their closing line
`NAME: N passed, N failed`). Every case is passed, failed or skipped; nothing that did not run counts as passed,
and nothing drops out silently.

  count_results.py meson BUILD_DIR --stage LABEL [--record FILE] [--all-registered] [--since EPOCH]
                         [--meson-status N]
      Counts one `meson test` run from BUILD_DIR/meson-logs/testlog.json (one JSON object per test) and the
      GoogleTest XML reports (BUILD_DIR/NAME.xml, for the tests meson-info/intro-tests.json calls gtest).
  count_results.py script NAME EXIT_STATUS OUTPUT_FILE --stage LABEL [--record FILE]
      Counts one script run outside meson (the end-to-end tests) from its exit status and output.
  count_results.py fail LABEL WHY [--record FILE]
      Records one failure that is not a test's (a build that failed, a dev root that could not be made).
  count_results.py summary FILE
      Lists every skip (and every failure) recorded in FILE by the commands above and prints the closing line
      `svckit: N passed, N failed, N skipped`; exits 1 when anything failed or nothing was recorded.

Each counting command prints its stage line `--- LABEL: N passed, N failed, N skipped` with the failures and
skips by name, appends a JSON line to FILE (--record), and exits 1 when the stage has a failure.

The rules:
- a GoogleTest case counts by its <testcase> in the XML: a <failure> is failed; result="skipped" (GTEST_SKIP) or
  status="notrun" (DISABLED_) is skipped, with its message; otherwise passed. NonTestSuiteFailure (a failure
  outside any test, e.g. in a global SetUp) is a failure.
- a GoogleTest binary that wrote no report (crashed, timed out, exited early), an unreadable report, or one that
  was written before the test started (stale), or one that meson calls failed: its cases are listed with
  BINARY --gtest_list_tests, and every listed case without a result in the report is failed, by name. When meson
  calls the test failed but every case passed (LeakSanitizer at exit, a crash in a destructor), that is one
  failure more.
- any other test: its closing line `NAME: N passed, N failed` when it printed one, else one case. Exit 77 (meson
  SKIP) is one skip, named, with the last lines of its output as the reason. A bad meson result (FAIL, TIMEOUT,
  ERROR, ...) with no failed check in the closing line adds one failure.
- meson test's own exit status (--meson-status) when not zero is one failure if nothing else failed.
- --since: a result in testlog.json, or a GoogleTest report, from before EPOCH is stale: not counted (a failure).
- --all-registered: every test registered in BUILD_DIR (meson-info/intro-tests.json) with no result in
  testlog.json is a failure (it did not run). dev/test passes it when it runs all of them.
- a skip of a test listed in tests/proof-tests.txt (one a doc cites as proof) is a failure when CI=true, and a
  skip with a loud note otherwise.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROOF_FILE = os.environ.get('SVCKIT_PROOF_TESTS', os.path.join(SRC, 'tests', 'proof-tests.txt'))
SUMMARY_RE = re.compile(r'^([A-Za-z_0-9.-]+): ([0-9]+) passed, ([0-9]+) failed(?:, ([0-9]+) skipped)?\s*$')
GOOD = {'OK', 'EXPECTEDFAIL'}
SKIP = {'SKIP', 'IGNORED'}  # IGNORED: a TAP test whose every case skipped


def in_ci():
    return os.environ.get('CI', '').lower() == 'true'


def load_proof_tests(path=PROOF_FILE):
    """{name: doc} from tests/proof-tests.txt: `NAME  # the doc that cites it`."""
    proof = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                name, _, comment = line.partition('#')
                name = name.strip()
                if name:
                    proof[name] = comment.strip() or 'a doc'
    except FileNotFoundError:
        pass
    return proof


class Stage:
    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failures = []  # {'name', 'why'}
        self.skips = []     # {'name', 'reason', 'proof'}
        self.proof = load_proof_tests()

    def pass_(self, n=1):
        self.passed += n

    def fail(self, name, why):
        self.failures.append({'name': name, 'why': why})

    def skip(self, name, reason, keys):
        """A skip of NAME; KEYS are the names it may be listed under in proof-tests.txt."""
        doc = next((self.proof[k] for k in keys if k in self.proof), None)
        if doc and in_ci():
            self.fail(name, f'skipped, but {doc} cites it as proof (a failure under CI=true): {reason}')
            return
        self.skips.append({'name': name, 'reason': reason, 'proof': doc})

    def report(self, record):
        print(f'--- {self.label}: {self.passed} passed, {len(self.failures)} failed, {len(self.skips)} skipped')
        for x in self.failures:
            print(f'    FAILED   {x["name"]}: {x["why"]}')
        for x in self.skips:
            note = f'  !!! {x["proof"]} cites it as proof: a failure under CI=true' if x['proof'] else ''
            print(f'    skipped  {x["name"]}: {x["reason"]}{note}')
        if record:
            with open(record, 'a', encoding='utf-8') as f:
                f.write(json.dumps({'stage': self.label, 'passed': self.passed, 'failures': self.failures,
                                    'skips': self.skips}) + '\n')
        return 1 if self.failures else 0


def one_line(text, limit=300):
    text = ' / '.join(s.strip() for s in text.splitlines() if s.strip())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def skip_reason(output):
    """Why a script skipped: its SKIP line if it printed one, else its last lines."""
    lines = [s for s in (output or '').splitlines() if s.strip()]
    marked = [s for s in lines if re.match(r'^\s*(SKIP|skip)\b', s)]
    return one_line('\n'.join(marked[-1:] or lines[-3:])) or '(no output)'


def summary_line(output):
    """(passed, failed, skipped) of the last `NAME: N passed, N failed[, N skipped]` line, or None."""
    found = None
    for line in (output or '').splitlines():
        m = SUMMARY_RE.match(line.strip())
        if m:
            found = (int(m.group(2)), int(m.group(3)), int(m.group(4) or 0))
    return found


def count_script(stage, name, result, returncode, output):
    """One test that is not GoogleTest. RESULT is meson's word (OK, FAIL, SKIP, TIMEOUT, ...)."""
    keys = [name, name.removesuffix('.sh')]
    line = summary_line(output)
    if line:
        p, f, s = line
        stage.pass_(p)
        # check.sh prints "not ok - DESC" for each failed check: name them when the numbers agree.
        named = [m.group(1) for m in re.finditer(r'^not ok - (.*)$', output or '', re.M)]
        for i in range(f):
            stage.fail(name, named[i] if len(named) == f else f'one of {f} failed checks (its output says which)')
    # tests/lib/check.sh's `skip` exits 77 after "SKIP: REASON" and "NAME: N passed, N failed, 1 skipped": that
    # is one skip, not two. A script that exits 77 without saying so in its line is one skip too.
    skips = max(line[2] if line else 0, 1 if result in SKIP else 0)
    for _ in range(skips):
        stage.skip(name, skip_reason(output), keys)
    if result in SKIP:
        pass
    elif result not in GOOD and not (line and line[1] > 0):
        stage.fail(name, f'{result}, exit status {returncode}' +
                   (' after a closing line with no failed check' if line else ', no closing line'))
    elif result in GOOD and not line:
        stage.pass_()


def testcase_name(case):
    return f'{case.get("classname", "")}.{case.get("name", "")}'


def read_gtest_xml(path, since):
    """[(Suite.Case, outcome, message)] from a GoogleTest XML report, or (None, why) when it cannot be trusted."""
    if not os.path.exists(path):
        return None, 'wrote no report'
    if since is not None and os.path.getmtime(path) < since - 1:
        return None, 'its report is older than the run (stale)'
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return None, f'its report is unreadable ({e})'
    cases = []
    for case in root.iter('testcase'):
        name = testcase_name(case)
        failure = case.find('failure')
        skipped = case.find('skipped')
        if failure is not None or case.find('error') is not None:
            msg = failure.get('message', '') if failure is not None else case.find('error').get('message', '')
            cases.append((name if name != '.' else 'NonTestSuiteFailure', 'failed', msg))
        elif case.get('status') == 'notrun' or case.get('result') == 'suppressed':
            cases.append((name, 'skipped', 'disabled (DISABLED_ prefix)'))
        elif case.get('result') == 'skipped' or skipped is not None:
            msg = skipped.get('message', '') if skipped is not None else ''
            cases.append((name, 'skipped', msg))
        else:
            cases.append((name, 'passed', ''))
    return cases, None


def gtest_list(binary, cwd, env):
    """The cases BINARY --gtest_list_tests names (the filter in the environment applies), or None."""
    try:
        r = subprocess.run([binary, '--gtest_list_tests'], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    cases, suite = [], None
    for line in r.stdout.splitlines():
        text = line.split('#', 1)[0].rstrip()  # "Case/0  # GetParam() = 1"
        if not text.strip():
            continue
        if not line.startswith(' '):
            suite = text.strip().rstrip('.')
        elif suite is not None:
            cases.append(f'{suite}.{text.strip()}')
    # A non-zero exit with a listing (a leak report at exit under ASan) still names the cases.
    return cases if r.returncode == 0 or cases else None


def clean_message(msg):
    """A GoogleTest message without its FILE:LINE line and the bare word "Skipped"."""
    lines = [s for s in msg.splitlines() if s.strip() and not re.match(r'^\S+:\d+$', s.strip())]
    lines = [s for s in lines if s.strip() != 'Skipped'] or lines
    return one_line('\n'.join(lines)) or '(no message)'


def plain_case(case):
    """Suite.Case of a parameterized or typed case: Prefix/Suite.Case/N, Suite/N.Case."""
    suite, _, name = case.partition('.')
    suite = re.sub(r'/\d+$', '', suite).split('/')[-1]
    return f"{suite}.{re.sub(r'/[0-9]+$', '', name)}"


def running_case(stdout):
    """The case GoogleTest's output shows as started and never finished: the one it died in."""
    open_case = None
    for line in (stdout or '').splitlines():
        m = re.match(r'^\[ RUN      \] (\S+)', line)
        if m:
            open_case = m.group(1)
        elif re.match(r'^\[ +(OK|FAILED|SKIPPED) +\] ', line):
            open_case = None
    return open_case


def count_gtest(stage, name, entry, xml_path, build_dir, since):
    result, rc = entry.get('result'), entry.get('returncode')
    cases, why = read_gtest_xml(xml_path, since)
    by_name = {}
    for case, outcome, msg in cases or []:
        by_name[case] = (outcome, msg)
    listed = None
    if cases is None and result in SKIP:
        pass
    elif cases is None or result not in GOOD:
        env = dict(os.environ)
        env.update(entry.get('env') or {})
        listed = gtest_list(entry['command'][0], build_dir, env)
        if not listed and cases is None:
            stage.fail(name, f'{result}, exit status {rc}: {why}, and {entry["command"][0]} '
                             '--gtest_list_tests did not list any case')
            return
    if cases is None and result in SKIP:
        stage.skip(name, skip_reason(entry.get('stdout')), [name])
        return
    died_in = running_case(entry.get('stdout'))
    for case, (outcome, msg) in by_name.items():
        if outcome == 'passed':
            stage.pass_()
        elif outcome == 'failed':
            stage.fail(f'{name} {case}', clean_message(msg))
        else:
            # Listed as Suite.Case also when parameterized (Prefix/Suite.Case/N), or by the test's name.
            stage.skip(f'{name} {case}', clean_message(msg), [case, plain_case(case), name])
    failed_here = any(o == 'failed' for o, _ in by_name.values())
    for case in listed or []:
        if case in by_name:
            continue
        failed_here = True
        how = f'{result}, exit status {rc}' + (f', {why}' if why else '')
        if case == died_in:
            stage.fail(f'{name} {case}', f'no result: the binary died while running it ({how})')
        else:
            stage.fail(f'{name} {case}', f'no result in the report ({how})')
    if result not in GOOD and result not in SKIP and not failed_here:
        stage.fail(name, f'{result}, exit status {rc}, though no case failed (a crash or leak report at exit?)')


def gtest_xml_path(name, registered, build_dir):
    """Where meson had a GoogleTest test write its report (--gtest_output=xml:NAME.xml in the test's working
    directory, the build directory by default), or None when the test is not a GoogleTest one. testlog.json's
    command lacks that argument, so the protocol comes from meson-info/intro-tests.json."""
    t = registered.get(name)
    if not t or t.get('protocol') != 'gtest':
        return None
    return os.path.join(t.get('workdir') or build_dir, name + '.xml')


def test_name(json_name):
    """meson's "SUITE - PROJECT:NAME" (or "PROJECT:NAME") as NAME."""
    return json_name.split(' - ', 1)[-1].split(':', 1)[-1]


def cmd_meson(args):
    stage = Stage(args.stage)
    log = os.path.join(args.build_dir, 'meson-logs', 'testlog.json')
    try:
        with open(os.path.join(args.build_dir, 'meson-info', 'intro-tests.json'), encoding='utf-8') as f:
            registered = {t['name']: t for t in json.load(f)}
    except (OSError, ValueError) as e:
        registered = {}
        stage.fail('meson test', f'cannot read the registered tests (meson-info/intro-tests.json): {e}')
    seen = set()
    entries = []
    try:
        with open(log, encoding='utf-8', errors='replace') as f:
            for line in f:
                if line.strip():
                    entries.append(json.loads(line))
    except FileNotFoundError:
        stage.fail('meson test', f'wrote no {log}: no test result at all')
    for entry in entries:
        name = test_name(entry['name'])
        if args.since is not None and (entry.get('starttime') or 0) < args.since - 1:
            stage.fail(name, 'a result older than this run in testlog.json (stale), not counted')
            continue
        seen.add(name)
        # The test's binary, for --gtest_list_tests: testlog.json's command, else the registered one.
        entry['command'] = entry.get('command') or registered.get(name, {}).get('cmd') or ['?']
        xml = gtest_xml_path(name, registered, args.build_dir)
        if xml:
            count_gtest(stage, name, entry, xml, args.build_dir, args.since)
        else:
            count_script(stage, name, entry.get('result'), entry.get('returncode'),
                         (entry.get('stdout') or '') + (entry.get('stderr') or ''))
    if args.all_registered:
        for name in registered:
            if name not in seen:
                stage.fail(name, 'registered but has no result in testlog.json: it did not run')
    if args.meson_status and not stage.failures:
        stage.fail('meson test', f'exited {args.meson_status} though no test failed')
    return stage.report(args.record)


def cmd_script(args):
    stage = Stage(args.stage)
    with open(args.output, encoding='utf-8', errors='replace') as f:
        output = f.read()
    rc = int(args.exit_status)
    result = 'OK' if rc == 0 else 'SKIP' if rc == 77 else 'FAIL'
    count_script(stage, args.name, result, rc, output)
    return stage.report(args.record)


def cmd_fail(args):
    stage = Stage(args.label)
    stage.fail(args.label, args.why)
    return stage.report(args.record)


def cmd_summary(args):
    passed, failures, skips = 0, [], []
    try:
        with open(args.record, encoding='utf-8') as f:
            stages = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        stages = []
    for s in stages:
        passed += s['passed']
        failures += [dict(x, stage=s['stage']) for x in s['failures']]
        skips += [dict(x, stage=s['stage']) for x in s['skips']]
    if skips:
        print(f'skipped ({len(skips)}):')
        for x in skips:
            print(f'  [{x["stage"]}] {x["name"]}: {x["reason"]}')
        for x in skips:
            if x.get('proof'):
                print(f'!!! PROOF SKIPPED: [{x["stage"]}] {x["name"]} is cited as proof by {x["proof"]}; '
                      'under CI=true this is a failure')
    if failures:
        print(f'failed ({len(failures)}):')
        for x in failures:
            print(f'  [{x["stage"]}] {x["name"]}: {x["why"]}')
    if not stages:
        failures.append({'name': 'dev/test', 'why': 'no stage recorded a result'})
        print('nothing was counted')
    print(f'svckit: {passed} passed, {len(failures)} failed, {len(skips)} skipped')
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    m = sub.add_parser('meson')
    m.add_argument('build_dir')
    m.add_argument('--stage', required=True)
    m.add_argument('--record')
    m.add_argument('--all-registered', action='store_true')
    m.add_argument('--meson-status', type=int, default=0, help="meson test's exit status")
    m.add_argument('--since', type=float, help='results that started before this time (epoch s) are stale')
    s = sub.add_parser('script')
    s.add_argument('name')
    s.add_argument('exit_status')
    s.add_argument('output')
    s.add_argument('--stage', required=True)
    s.add_argument('--record')
    f = sub.add_parser('fail')
    f.add_argument('label')
    f.add_argument('why')
    f.add_argument('--record')
    y = sub.add_parser('summary')
    y.add_argument('record')
    args = ap.parse_args()
    return {'meson': cmd_meson, 'script': cmd_script, 'fail': cmd_fail, 'summary': cmd_summary}[args.cmd](args)


if __name__ == '__main__':
    sys.exit(main())
