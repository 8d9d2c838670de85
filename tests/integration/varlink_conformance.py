#!/usr/bin/env python3
"""varlink_conformance.py — svckit's varlink engine against sd-varlink, the reference, input by input.

    varlink_conformance.py REFERENCE_SERVER SVCKIT_SERVER [--show] [CASE...]

Starts both servers of the org.example.bench interface (bench/varlink/org.example.bench.varlink) on sockets in a
temporary directory: REFERENCE_SERVER is bench/varlink/reference_server.c on sd-varlink, SVCKIT_SERVER is
examples/bench (svckit-example-bench) on svckit's engine. Each case writes the same bytes to both over raw
AF_UNIX sockets and compares what each server did: the replies (parsed as JSON and compared as values), and
whether the server closed the connection. One check per case, then a last line
`varlink_conformance: N passed, N failed`.

Most cases end their input with a sentinel call (an Echo): replies come in call order, so its answer proves that
everything before it was answered and that the connection is still open, without waiting for a quiet period.
No case ever takes silence for an answer: a case whose input must get no reply either waits until the server has
read that input (the client's SIOCOUTQ drains only when the peer has consumed the bytes), then sends more and a
sentinel (`then=`), so that any reply or close the server made of the input alone comes before the sentinel's
answer; or it waits for the server to close the connection (`sentinel=False`), with a generous deadline. A case
whose check fails on either server (a timeout, a crash of the check) fails, even when both fail alike.

Before comparing, two things that are configuration rather than behaviour are normalized: GetInfo's vendor,
product, version and url (each server names itself), and interface descriptions, compared without whitespace
(sd-varlink reformats the text it was given; svckit serves it as written) but with their comments.

A few inputs are expected to differ: DIFFERENCES below names each, says why, and gives svckit's exact outcome,
which the case then asserts (the reference's is only shown). docs/varlink-conformance.md explains each one.
--show prints both outcomes of every case; CASE names (or substrings) select cases.
"""
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import struct
import tempfile
import termios
import time

BENCH = 'org.example.bench.'
SERVICE = 'org.varlink.service.'
MIB = 1024 * 1024
VARLINK_BUFFER_MAX = 16 * MIB  # sd-varlink's input buffer limit, and svckit's maxMessageSize

SENTINEL_TEXT = 'sentinel'
TIMEOUT = 60.0  # every wait is for a condition; this is only how long before it counts as never


def call(method, params=None, **keys):
    """One call as bytes: a compact JSON object and its NUL. `params=None` leaves "parameters" out."""
    message = {'method': method}
    if params is not None:
        message['parameters'] = params
    message.update(keys)
    return json.dumps(message, separators=(',', ':')).encode() + b'\0'


def raw_call(method, params_json):
    """A call whose parameters are given as raw JSON text (for inputs json.dumps cannot write)."""
    return b'{"method":"' + method.encode() + b'","parameters":' + params_json + b'}\0'


SENTINEL = call(BENCH + 'Echo', {'text': SENTINEL_TEXT})
SENTINEL_REPLY = {'parameters': {'text': SENTINEL_TEXT}}


class Outcome:
    """What a server did with one input: its replies (JSON values, or ['not JSON', text]), and how it ended."""

    def __init__(self, replies, end, extra=None, error=None):
        self.replies = replies
        self.end = end  # 'open' (the sentinel was answered), 'closed'
        self.extra = extra or {}
        self.error = error  # the check itself failed (a timeout, an exception): never a passing outcome

    def key(self):
        return (json.dumps(self.replies, sort_keys=True), self.end, json.dumps(self.extra, sort_keys=True))

    def __eq__(self, other):
        return self.key() == other.key()

    def __repr__(self):
        if self.error is not None:
            return f'check failed: {self.error}'
        shown = [json.dumps(r, sort_keys=True) for r in self.replies]
        if len(shown) > 8:
            shown = shown[:4] + [f'... {len(shown) - 6} more ...'] + shown[-2:]
        shown = [s if len(s) <= 300 else s[:300] + f'... ({len(s)} chars)' for s in shown]
        text = f'{len(self.replies)} repl{"y" if len(self.replies) == 1 else "ies"}, connection {self.end}'
        if self.extra:
            text += f', {json.dumps(self.extra, sort_keys=True)}'
        return text + ''.join('\n        ' + s for s in shown)


def canonical_idl(text):
    """An interface description without its layout: comments (stripped) each an item of their own, everything
    between them concatenated without whitespace."""
    items = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('#'):
            items.append(line)
        elif line:
            if items and not items[-1].startswith('#'):
                items[-1] += ''.join(line.split())
            else:
                items.append(''.join(line.split()))
    return items


def normalize(reply):
    """Takes out what is configuration rather than behaviour (see the top of this file)."""
    if not isinstance(reply, dict) or not isinstance(reply.get('parameters'), dict):
        return reply
    parameters = dict(reply['parameters'])
    if set(parameters) == {'vendor', 'product', 'version', 'url', 'interfaces'}:
        for key in ('vendor', 'product', 'version', 'url'):
            if isinstance(parameters[key], str):
                parameters[key] = '<string>'
    if set(parameters) == {'description'} and isinstance(parameters['description'], str):
        parameters['description'] = canonical_idl(parameters['description'])
    return dict(reply, parameters=parameters)


def parse_replies(data):
    replies = []
    for frame in data.split(b'\0'):
        try:
            replies.append(normalize(json.loads(frame.decode('utf-8'))))
        except (UnicodeDecodeError, ValueError):
            replies.append(['not JSON', frame[:200].decode('latin-1')])
    return replies


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def read_until(s, done, timeout=TIMEOUT):
    """Reads until the server closes or done(frames) says so (done=None: until the server closes); a deadline
    passing first is an error, never an outcome. Returns (complete frames as bytes, trailing partial bytes,
    closed)."""
    buf = b''
    deadline = time.monotonic() + timeout
    while True:
        frames = buf.split(b'\0')[:-1]
        if done is not None and done(frames):
            return frames, buf[buf.rfind(b'\0') + 1:], False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f'no end after {timeout} s ({len(frames)} replies so far)')
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            continue
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            chunk = b''
        if not chunk:
            frames = buf.split(b'\0')
            return frames[:-1], frames[-1], True
        buf += chunk


def unread_bytes(s):
    """What the peer has not yet read of what was sent on `s` (SIOCOUTQ: AF_UNIX counts the memory of the
    queued buffers, released only as the peer consumes them, or drops them by closing)."""
    return struct.unpack('i', fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b'\0' * 4))[0]


def wait_read(s, timeout=TIMEOUT):
    """Waits until the server has read everything sent on `s` (or closed its end)."""
    deadline = time.monotonic() + timeout
    while unread_bytes(s):
        if time.monotonic() > deadline:
            raise TimeoutError(f'the server did not read its input in {timeout} s ({unread_bytes(s)} unread)')
        time.sleep(0.001)


def server_connections(path):
    """The server's sockets connected through its listening socket at `path` (accepted or waiting to be): in
    /proc/net/unix they carry the listener's path; the listener itself has the __SO_ACCEPTCON flag."""
    count = 0
    with open('/proc/net/unix') as table:
        next(table)
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000 == 0:
                count += 1
    return count


def wait_no_connections(path, timeout=TIMEOUT):
    """Waits until the server has closed every connection it had on `path`."""
    deadline = time.monotonic() + timeout
    while server_connections(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f'the server still holds {server_connections(path)} connection(s) after {timeout} s')
        time.sleep(0.01)


def exchange(path, writes, *, sentinel=True, then=None, shut_wr=False, separate=False, timeout=TIMEOUT):
    """Connects, sends `writes` (with `separate`, each only once the server has read the one before) and, with
    `sentinel`, a sentinel call after them. With `then`, first waits until the server has read `writes`, then
    sends `then` and the sentinel: whatever the server made of `writes` alone comes before the sentinel's reply.
    With `shut_wr` half-closes. Reads until the sentinel's reply or the server's close (without a sentinel:
    until the server's close); a deadline passing first is an error."""
    s = connect(path)
    try:
        for i, chunk in enumerate(writes):
            if i and separate:
                wait_read(s, timeout)
            s.sendall(chunk)
        if then is not None:
            wait_read(s, timeout)
            s.sendall(then)
        if sentinel:
            s.sendall(SENTINEL)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed while we were writing: what it answered before is still read below

    done = None
    if sentinel:
        def done(frames):
            if not frames:
                return False
            try:
                return json.loads(frames[-1]) == SENTINEL_REPLY
            except ValueError:
                return False
    frames, partial, closed = read_until(s, done, timeout)
    s.close()
    replies = parse_replies(b'\0'.join(frames)) if frames else []
    if sentinel and not closed:
        replies = replies[:-1]  # the sentinel's own reply
    extra = {'partial reply bytes': len(partial)} if partial else {}
    return Outcome(replies, 'closed' if closed else 'open', extra)


# ---- the cases ------------------------------------------------------------------------------------------------
# Each case is (name, function(path) -> Outcome). Most are plain exchanges: bytes in, sentinel, compare.

CASES = []


def case(name, *writes, **options):
    CASES.append((name, lambda path: exchange(path, writes, **options)))


def scenario(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


# Valid calls of every method.
case('Echo', call(BENCH + 'Echo', {'text': 'hello'}))
case('Echo of an empty string', call(BENCH + 'Echo', {'text': ''}))
case('Echo of escapes and non-ASCII', call(BENCH + 'Echo', {'text': 'h\u00e9llo "x" \\ \t\n \u2603 \U0001F600'}))
case('Echo of a control character', call(BENCH + 'Echo', {'text': '\x01\x1f'}))
case('Add', call(BENCH + 'Add', {'a': 40, 'b': 2}))
case('Add of negatives', call(BENCH + 'Add', {'a': -5, 'b': -7}))
case('Add at the int64 limits', call(BENCH + 'Add', {'a': 2**63 - 1, 'b': -(2**63)}))
case('Add overflowing is the Overflow error', call(BENCH + 'Add', {'a': 2**63 - 1, 'b': 1}))
case('Add underflowing is the Overflow error', call(BENCH + 'Add', {'a': -(2**63), 'b': -1}))
case('Count 3 with more', call(BENCH + 'Count', {'n': 3}, more=True))
case('Count 1 with more', call(BENCH + 'Count', {'n': 1}, more=True))
case('Count 0 with more is InvalidParameter', call(BENCH + 'Count', {'n': 0}, more=True))
case('Count -1 with more is InvalidParameter', call(BENCH + 'Count', {'n': -1}, more=True))
case('Count without more is ExpectedMore', call(BENCH + 'Count', {'n': 2}))
case('Count 1000 with more', call(BENCH + 'Count', {'n': 1000}, more=True))

# org.varlink.service.
case('GetInfo', call(SERVICE + 'GetInfo'))
case('GetInfo with empty parameters', call(SERVICE + 'GetInfo', {}))
case('GetInfo with an unknown parameter', call(SERVICE + 'GetInfo', {'x': 1}))
case('GetInterfaceDescription of the bench interface',
     call(SERVICE + 'GetInterfaceDescription', {'interface': 'org.example.bench'}))
case('GetInterfaceDescription of org.varlink.service',
     call(SERVICE + 'GetInterfaceDescription', {'interface': 'org.varlink.service'}))
case('GetInterfaceDescription of an unknown interface',
     call(SERVICE + 'GetInterfaceDescription', {'interface': 'org.example.nope'}))
case('GetInterfaceDescription of io.systemd', call(SERVICE + 'GetInterfaceDescription', {'interface': 'io.systemd'}))
case('GetInterfaceDescription without its parameter', call(SERVICE + 'GetInterfaceDescription'))
case('GetInterfaceDescription with a wrongly typed parameter',
     call(SERVICE + 'GetInterfaceDescription', {'interface': 1}))
case('GetInterfaceDescription with an unknown parameter',
     call(SERVICE + 'GetInterfaceDescription', {'interface': 'org.example.bench', 'x': 1}))
case('GetInterfaceDescription with only an unknown parameter', call(SERVICE + 'GetInterfaceDescription', {'x': 1}))
case('an unknown org.varlink.service method', call(SERVICE + 'Nope'))

# Flags, alone and together, on a plain method (Echo) and a streaming one (Count).
for method, params in (('Echo', {'text': 'x'}), ('Count', {'n': 2})):
    for flags in ({'oneway': True}, {'more': True}, {'upgrade': True}, {'oneway': True, 'more': True},
                  {'oneway': True, 'upgrade': True}, {'more': True, 'upgrade': True},
                  {'oneway': True, 'more': True, 'upgrade': True}, {'oneway': False}, {'more': False},
                  {'upgrade': False}, {'oneway': False, 'more': False, 'upgrade': False},
                  {'oneway': True, 'more': False}, {'more': True, 'upgrade': False}):
        label = ', '.join(f'{k}={str(v).lower()}' for k, v in flags.items())
        case(f'{method} with {label}', call(BENCH + method, params, **flags))
case('Echo with more=false, oneway=true (a set flag last)', raw_call(BENCH + 'Echo', b'{"text":"x"}')[:-2] +
     b',"more":false,"oneway":true}\0')
case('Count with upgrade=false, more=true (a set flag last)', raw_call(BENCH + 'Count', b'{"n":2}')[:-2] +
     b',"upgrade":false,"more":true}\0')
case('flags before the method', b'{"more":true,"parameters":{"n":2},"method":"org.example.bench.Count"}\0')
case('a flag that is not a boolean', call(BENCH + 'Echo', {'text': 'x'}, more=1))
case('a flag that is null', call(BENCH + 'Echo', {'text': 'x'}, oneway=None))
case('a flag that is a string', call(BENCH + 'Echo', {'text': 'x'}, oneway='true'))
case('oneway on an unknown method', call(BENCH + 'Nope', {}, oneway=True))
case('more on an unknown method', call(BENCH + 'Nope', {}, more=True))
case('upgrade on an unknown method', call(BENCH + 'Nope', {}, upgrade=True))
case('oneway GetInfo', call(SERVICE + 'GetInfo', oneway=True))
case('more on GetInfo', call(SERVICE + 'GetInfo', more=True))
case('upgrade on GetInfo', call(SERVICE + 'GetInfo', upgrade=True))

# Bad and missing parameters.
case('Echo with its parameter missing', call(BENCH + 'Echo', {}))
case('Echo with parameters absent', call(BENCH + 'Echo'))
case('Echo with parameters null', raw_call(BENCH + 'Echo', b'null'))
case('Echo with a wrongly typed parameter (int)', call(BENCH + 'Echo', {'text': 1}))
case('Echo with a wrongly typed parameter (null)', call(BENCH + 'Echo', {'text': None}))
case('Echo with a wrongly typed parameter (object)', call(BENCH + 'Echo', {'text': {}}))
case('Echo with an unknown parameter', call(BENCH + 'Echo', {'text': 'a', 'x': 1}))
case('Echo with a duplicate key', raw_call(BENCH + 'Echo', b'{"text":"a","text":"b"}'))
case('Add with one parameter missing', call(BENCH + 'Add', {'a': 1}))
case('Add with a string for an int', call(BENCH + 'Add', {'a': '1', 'b': 2}))
case('Add with a bool for an int', call(BENCH + 'Add', {'a': True, 'b': 2}))
case('Add with an int beyond int64 (2^63)', raw_call(BENCH + 'Add', b'{"a":9223372036854775808,"b":0}'))
case('Add with an int below int64 (-2^63-1)', raw_call(BENCH + 'Add', b'{"a":-9223372036854775809,"b":0}'))
case('Add with an int far beyond int64 (2^64)', raw_call(BENCH + 'Add', b'{"a":18446744073709551616,"b":0}'))
case('Add with 1.0 for an int', raw_call(BENCH + 'Add', b'{"a":1.0,"b":0}'))
case('Add with 1.5 for an int', raw_call(BENCH + 'Add', b'{"a":1.5,"b":0}'))
case('Add with 1e2 for an int', raw_call(BENCH + 'Add', b'{"a":1e2,"b":0}'))
case('Add with -0 for an int', raw_call(BENCH + 'Add', b'{"a":-0,"b":0}'))
case('Add with -0.0 for an int', raw_call(BENCH + 'Add', b'{"a":-0.0,"b":0}'))
case('Count with a float n', raw_call(BENCH + 'Count', b'{"n":2.0}')[:-2] + b',"more":true}\0')
case('parameters that are an array', raw_call(BENCH + 'Echo', b'[1]'))
case('parameters that are a string', raw_call(BENCH + 'Echo', b'"x"'))
case('parameters that are a number', raw_call(BENCH + 'Echo', b'1'))
case('parameters that are true', raw_call(BENCH + 'Echo', b'true'))

# Unknown methods and interfaces; malformed method names.
case('an unknown method of a known interface', call(BENCH + 'Nope', {}))
case('an unknown interface', call('org.example.other.Echo', {'text': 'x'}))
case('a method name without an interface', call('Echo', {'text': 'x'}))
case('an empty method name', call('', {}))
case('a method name ending in a dot', call('org.example.bench.', {}))
case('a method name starting with a dot', call('.Echo', {}))
case('a lowercase method name', call(BENCH + 'echo', {'text': 'x'}))
case('a method name with a space', call(BENCH + 'Ec ho', {}))
case('the interface name alone', call('org.example.bench', {}))
case('a very long method name', call('org.example.' + 'x' * 1000 + '.Echo', {}))

# Malformed messages.
case('malformed JSON', b'{"method":\0')
case('malformed JSON, then a valid call', b'{"method":\0' + call(BENCH + 'Echo', {'text': 'x'}))
case('a valid call, then malformed JSON', call(BENCH + 'Echo', {'text': 'x'}) + b'{"method":\0')
case('calls, malformed JSON, then more calls', call(BENCH + 'Echo', {'text': 'a'}) + call(BENCH + 'Add', {'a': 1, 'b': 2}) +
     b'[]\0' + call(BENCH + 'Echo', {'text': 'b'}))
case('a streaming call, then malformed JSON', call(BENCH + 'Count', {'n': 3}, more=True) + b'x\0')
case('a oneway call, then malformed JSON', call(BENCH + 'Echo', {'text': 'a'}, oneway=True) + b'x\0')
case('an array', b'[1,2]\0')
case('a string', b'"org.example.bench.Echo"\0')
case('a number', b'1\0')
case('null', b'null\0')
case('an empty object', b'{}\0')
case('a lone NUL', b'\0')
case('whitespace only', b'  \0')
case('whitespace around the object', b' \n\t' + call(BENCH + 'Echo', {'text': 'x'})[:-1] + b' \n\0')
case('trailing garbage after the object', call(BENCH + 'Echo', {'text': 'x'})[:-1] + b' x\0')
case('two objects in one message', call(BENCH + 'Echo', {'text': 'x'})[:-1] + call(BENCH + 'Echo', {'text': 'y'}))
case('no method key', b'{"parameters":{}}\0')
case('method null', b'{"method":null}\0')
case('method not a string', b'{"method":1}\0')
case('method twice', b'{"method":"org.example.bench.Echo","method":"org.example.bench.Add","parameters":{"text":"x"}}\0')
case('parameters twice', b'{"method":"org.example.bench.Echo","parameters":{"text":"x"},"parameters":{"text":"y"}}\0')
case('a flag twice', b'{"method":"org.example.bench.Echo","parameters":{"text":"x"},"oneway":false,"oneway":false}\0')
case('an unknown top-level key', b'{"method":"org.example.bench.Echo","parameters":{"text":"a"},"foo":1}\0')
case('an unknown top-level key that is null', b'{"method":"org.example.bench.Echo","parameters":{"text":"a"},"foo":null}\0')
case('a vendor extension object at the top level',
     b'{"method":"org.example.bench.Echo","parameters":{"text":"a"},"com.example":{"x":1}}\0')
case('a reply-shaped message (error)', b'{"error":"org.example.bench.Overflow","parameters":{}}\0')
case('a reply-shaped message (parameters only)', b'{"parameters":{"text":"x"}}\0')
case('invalid UTF-8 in a string', raw_call(BENCH + 'Echo', b'{"text":"\xff"}'))
case('invalid UTF-8 in a key', raw_call(BENCH + 'Echo', b'{"text":"a","\xff":1}'))
case('an overlong UTF-8 encoding', raw_call(BENCH + 'Echo', b'{"text":"\xc0\xaf"}'))
case('a UTF-8 surrogate', raw_call(BENCH + 'Echo', b'{"text":"\xed\xa0\x80"}'))
case('an escaped lone surrogate', raw_call(BENCH + 'Echo', b'{"text":"\\ud800"}'))
case('an escaped surrogate pair', raw_call(BENCH + 'Echo', b'{"text":"\\ud83d\\ude00"}'))
case('\\u0000 in a string', raw_call(BENCH + 'Echo', b'{"text":"a\\u0000b"}'))
case('\\u0000 in a key', raw_call(BENCH + 'Echo', b'{"text":"a","x\\u0000":1}'))
case('\\u0000 in the method name', b'{"method":"org.example.bench.Echo\\u0000","parameters":{"text":"a"}}\0')
case('a raw control character in a string', raw_call(BENCH + 'Echo', b'{"text":"a\x01b"}'))
case('a UTF-8 BOM before the object', b'\xef\xbb\xbf' + call(BENCH + 'Echo', {'text': 'x'}))
case('a comment in the JSON', raw_call(BENCH + 'Echo', b'{"text":"x" /* c */}'))
case('a trailing comma', raw_call(BENCH + 'Echo', b'{"text":"x",}'))
case('single quotes', raw_call(BENCH + 'Echo', b"{'text':'x'}"))
case('NaN', raw_call(BENCH + 'Add', b'{"a":NaN,"b":0}'))
case('Infinity', raw_call(BENCH + 'Add', b'{"a":Infinity,"b":0}'))
case('a number too large for a double', raw_call(BENCH + 'Add', b'{"a":1e400,"b":0}'))
case('deep nesting (100 levels) in a parameter', raw_call(BENCH + 'Echo', b'{"text":' + b'[' * 100 + b']' * 100 + b'}'))
case('deep nesting (5000 levels) in a parameter',
     raw_call(BENCH + 'Echo', b'{"text":' + b'[' * 5000 + b']' * 5000 + b'}'))
case('deep nesting (5000 levels), unterminated', b'{"method":"org.example.bench.Echo","parameters":' + b'[' * 5000 + b'\0')

# Size limits around the 16 MiB cap. Padding is whitespace inside the object, so the reply stays small.


def padded(total):
    """An Echo call of exactly `total` bytes before its NUL."""
    head = b'{"method":"org.example.bench.Echo","parameters":{"text":"pad"}'
    return head + b' ' * (total - len(head) - 1) + b'}\0'


case('a message of 16 MiB - 1 bytes', padded(VARLINK_BUFFER_MAX - 1))
case('a message of 16 MiB bytes', padded(VARLINK_BUFFER_MAX))
case('a message of 16 MiB + 1 bytes', padded(VARLINK_BUFFER_MAX + 1))
case('a message of 17 MiB', padded(17 * MIB))
case('a message of 20 MiB', padded(20 * MIB))
# 16 MiB - 1 unterminated bytes are still a message that may end: once the server has read them all, their NUL
# follows (then the sentinel), and the server must answer the call they make. 16 MiB unterminated bytes are too
# many: the server must close (waited for, never assumed from silence).
case('16 MiB - 1 bytes without a NUL', padded(VARLINK_BUFFER_MAX - 1)[:-1], then=b'\0')
case('16 MiB bytes without a NUL', b'{"method":"' + b'a' * (VARLINK_BUFFER_MAX - 11), sentinel=False)
case('17 MiB without a NUL', b'{"method":"' + b'a' * (17 * MIB), sentinel=False)
case('Echo of a 1 MiB string', call(BENCH + 'Echo', {'text': 'x' * MIB}))
case('Echo of a 15 MiB string', call(BENCH + 'Echo', {'text': 'x' * (15 * MIB)}))
case('Echo of a string just under 16 MiB whose reply passes 16 MiB',
     call(BENCH + 'Echo', {'text': 'x' * (VARLINK_BUFFER_MAX - 64)}))

# Pipelining, split and merged writes.
PIPELINE = [call(BENCH + 'Echo', {'text': str(i)}) if i % 3 == 0 else
            call(BENCH + 'Add', {'a': i, 'b': 1}) if i % 3 == 1 else
            call(BENCH + 'Count', {'n': 2}, more=True) for i in range(300)]
case('300 mixed calls pipelined in one write', b''.join(PIPELINE))
case('pipelined calls with oneway ones between', b''.join(
    call(BENCH + 'Echo', {'text': str(i)}, oneway=(i % 2 == 0)) for i in range(50)))
case('pipelined calls with errors between', b''.join(
    call(BENCH + 'Nope') if i % 2 else call(BENCH + 'Echo', {'text': str(i)}) for i in range(50)))
case('pipelined: Count 3 with more, Echo, Add',
     call(BENCH + 'Count', {'n': 3}, more=True) + call(BENCH + 'Echo', {'text': 'x'}) +
     call(BENCH + 'Add', {'a': 1, 'b': 2}))
# `separate`: each write is read by the server before the next is sent, so the splits are the server's reads.
case('a message written byte by byte', *[bytes([b]) for b in call(BENCH + 'Echo', {'text': 'split'})], separate=True)
case('a message split across two writes', call(BENCH + 'Echo', {'text': 'split'})[:20],
     call(BENCH + 'Echo', {'text': 'split'})[20:], separate=True)
case('a message split right before its NUL', call(BENCH + 'Echo', {'text': 'split'})[:-1], b'\0', separate=True)
case('two messages, the second split across writes',
     call(BENCH + 'Echo', {'text': 'a'}) + call(BENCH + 'Echo', {'text': 'b'})[:10],
     call(BENCH + 'Echo', {'text': 'b'})[10:], separate=True)
case('a merged write of a call and half of the next', call(BENCH + 'Add', {'a': 1, 'b': 1}) +
     call(BENCH + 'Count', {'n': 2}, more=True)[:15], call(BENCH + 'Count', {'n': 2}, more=True)[15:], separate=True)
case('many calls each split in three writes',
     *[c[i:j] for c in [call(BENCH + 'Echo', {'text': str(n)}) for n in range(20)] for i, j in ((0, 5), (5, 30), (30, None))],
     separate=True)

# Half-close: the server must answer what came before and close (waited for, with a deadline).
case('a call, then half-close', call(BENCH + 'Echo', {'text': 'x'}), sentinel=False, shut_wr=True)
case('pipelined calls, then half-close', b''.join(call(BENCH + 'Echo', {'text': str(i)}) for i in range(10)),
     sentinel=False, shut_wr=True)
case('Count 50 with more, then half-close', call(BENCH + 'Count', {'n': 50}, more=True), sentinel=False, shut_wr=True)
case('a oneway call, then half-close', call(BENCH + 'Echo', {'text': 'x'}, oneway=True), sentinel=False, shut_wr=True)
case('half of a message, then half-close', call(BENCH + 'Echo', {'text': 'x'})[:12], sentinel=False, shut_wr=True)
case('a call and half of the next, then half-close',
     call(BENCH + 'Echo', {'text': 'x'}) + call(BENCH + 'Echo', {'text': 'y'})[:12], sentinel=False, shut_wr=True)
case('half-close with nothing sent', sentinel=False, shut_wr=True)
# Half a message, read by the server on its own: no reply and no close may come of it before the rest arrives.
case('a partial message left open', call(BENCH + 'Echo', {'text': 'x'})[:12],
     then=call(BENCH + 'Echo', {'text': 'x'})[12:])


@scenario('Count streaming, the client closes early; another client is still served')
def count_closed_early(path):
    s = connect(path)
    s.sendall(call(BENCH + 'Count', {'n': 200000}, more=True))
    frames, _, closed = read_until(s, lambda f: len(f) >= 3)
    s.close()
    first = parse_replies(b'\0'.join(frames[:3]))
    wait_no_connections(path)  # the server has seen the close and dropped the stream
    other = exchange(path, [call(BENCH + 'Echo', {'text': 'other'})])
    return Outcome(first, 'closed' if closed else 'open', {'other client': repr(other)})


@scenario('two clients interleaved: each gets its own replies')
def two_clients(path):
    a, b = connect(path), connect(path)
    a.sendall(call(BENCH + 'Echo', {'text': 'a'})[:10])
    b.sendall(call(BENCH + 'Echo', {'text': 'b'}))
    a.sendall(call(BENCH + 'Echo', {'text': 'a'})[10:])
    got = []
    for s in (a, b):
        frames, _, closed = read_until(s, lambda f: len(f) >= 1)
        got.append(parse_replies(frames[0]) if frames else [])
        s.close()
    return Outcome(got[0] + got[1], 'open')


@scenario('a client that closes right after its call; another client is still served')
def close_after_call(path):
    s = connect(path)
    s.sendall(call(BENCH + 'Count', {'n': 1000}, more=True) + call(BENCH + 'Echo', {'text': 'x'}))
    s.close()
    wait_no_connections(path)  # the server has seen the close (with the stream still to send) and let go
    return exchange(path, [call(BENCH + 'Echo', {'text': 'after'})])


# ---- expected differences -------------------------------------------------------------------------------------
# Each entry names a case, says why svckit differs (docs/varlink-conformance.md explains each one), and gives
# svckit's exact outcome: the case passes when svckit does exactly that and the reference does something else.
# `check` replaces the exact outcome where svckit's is best said relative to the reference's. With
# `reference_varies` the reference's outcome is not compared at all (sd-varlink's result there depends on how its
# reads happen to fall). An entry whose case comes to match the reference fails ("svckit now matches the
# reference"): remove it then.


class Difference:
    def __init__(self, why, svckit=None, check=None, reference_varies=False):
        self.why, self.svckit, self.check, self.reference_varies = why, svckit, check, reference_varies

    def holds(self, ref, svk):
        if self.check is not None:
            return self.check(ref, svk)
        return svk == self.svckit


def description(outcome):
    """The declarations of the one description an outcome carries, without comments and whitespace, or None."""
    try:
        (only,) = outcome.replies
        return ''.join(item for item in only['parameters']['description'] if not item.startswith('#'))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


DIFFERENCES = {
    # Built-in interfaces: same declarations, svckit's own comments (sd-varlink has its own documentation text for
    # them; svckit serves org.varlink.service as varlink.org publishes it).
    'GetInterfaceDescription of io.systemd': Difference(
        'the same errors with svckit\'s own comments',
        check=lambda ref, svk: svk.end == 'open' and description(svk) is not None and
        description(svk) == description(ref)),
    'GetInterfaceDescription of org.varlink.service': Difference(
        'varlink.org\'s comments, and the ExpectedUpgrade error of UAPI.20 that sd-varlink 262 does not declare',
        check=lambda ref, svk: svk.end == 'open' and description(ref) is not None and
        description(svk) == description(ref) + 'errorExpectedUpgrade()'),

    # The 16 MiB input limit. sd-varlink refuses unterminated input once 16 MiB are buffered, but checks that only
    # between its reads, into a buffer that grows: what it does with a complete message over 16 MiB depends on
    # how its reads and allocations fall (it accepted messages of 16 MiB up to 20 MiB in some runs, not in
    # others). svckit applies the rule at every byte: a message is at most 16 MiB - 1 bytes and its NUL.
    'a message of 16 MiB bytes': Difference(
        'svckit\'s limit is exact: 16 MiB without a NUL is too long', Outcome([], 'closed'),
        reference_varies=True),
    'a message of 16 MiB + 1 bytes': Difference(
        'svckit\'s limit is exact: 16 MiB without a NUL is too long', Outcome([], 'closed'),
        reference_varies=True),
    'a message of 17 MiB': Difference(
        'svckit\'s limit is exact: 16 MiB without a NUL is too long', Outcome([], 'closed'),
        reference_varies=True),
    'a message of 20 MiB': Difference(
        'svckit\'s limit is exact: 16 MiB without a NUL is too long', Outcome([], 'closed'),
        reference_varies=True),
}


def run_case(name, fn, paths):
    outcomes = {}
    for server, path in paths.items():
        try:
            outcomes[server] = fn(path)
        except Exception as e:  # a crash or timeout of the check itself is a failure, not an outcome
            outcomes[server] = Outcome([], 'unknown', error=f'{type(e).__name__}: {e}')
    ref, svk = outcomes['reference'], outcomes['svckit']
    broken = [server for server, outcome in outcomes.items() if outcome.error is not None]
    if broken:  # even when both failed alike: equal failures prove nothing
        return False, f'the check failed on the {" and the ".join(broken)} server', ref, svk
    difference = DIFFERENCES.get(name)
    if difference is None:
        if ref == svk:
            return True, '', ref, svk
        return False, 'differs from the reference', ref, svk
    if not difference.reference_varies and ref == svk:
        return False, 'svckit now matches the reference: remove this case from DIFFERENCES', ref, svk
    if difference.holds(ref, svk):
        return True, f'expected difference: {difference.why}', ref, svk
    expected = repr(difference.svckit) if difference.check is None else 'the expected one'
    return False, f'svckit\'s outcome is not {expected}', ref, svk


def start(argv, path, log):
    process = subprocess.Popen(argv + [path], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f'{argv[0]} did not create {path} (exit status {process.poll()})')
        time.sleep(0.02)
    return process


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    show = '--show' in sys.argv
    if len(args) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    reference, svckit, selected = args[0], args[1], args[2:]
    unknown = set(DIFFERENCES) - {name for name, _ in CASES}
    if unknown:
        print(f'DIFFERENCES names cases that do not exist: {sorted(unknown)}', file=sys.stderr)
        return 2
    counts = {'passed': 0, 'failed': 0}
    # meson's timeout sends SIGTERM: end through the cleanup below, with the closing line.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit('SIGTERM (a timeout?)'))
    try:
        run(reference, svckit, selected, show, counts)
    except BaseException as e:  # whatever ends the run early is a failure, and the closing line still comes
        print(f'not ok - the run ended early: {type(e).__name__}: {e}')
        counts['failed'] += 1
    print(f'varlink_conformance: {counts["passed"]} passed, {counts["failed"]} failed')
    return 0 if counts['failed'] == 0 else 1


def run(reference, svckit, selected, show, counts):
    ran = 0
    with tempfile.TemporaryDirectory(prefix='varlink-conformance-') as tmp:
        logs = {name: open(os.path.join(tmp, name + '.log'), 'w+') for name in ('reference', 'svckit')}
        paths = {'reference': os.path.join(tmp, 'reference.sock'), 'svckit': os.path.join(tmp, 'svckit.sock')}
        processes = {}
        try:
            for server, argv in (('reference', [reference]), ('svckit', [svckit])):
                processes[server] = start(argv, paths[server], logs[server])
        except (OSError, RuntimeError) as e:
            print(f'not ok - the servers start: {e}')
            counts['failed'] += 1
            selected = [None]  # run no case
        try:
            for name, fn in CASES:
                if selected and not any(s is not None and s in name for s in selected):
                    continue
                ran += 1
                ok, note, ref, svk = run_case(name, fn, paths)
                for server, process in processes.items():
                    if process.poll() is not None:
                        ok, note = False, f'{note}; the {server} server exited with status {process.returncode}'
                if ok:
                    counts['passed'] += 1
                    print(f'ok - {name}' + (f' # {note}' if note else ''))
                else:
                    counts['failed'] += 1
                    print(f'not ok - {name}: {note}')
                if show or not ok:
                    print(f'    reference: {ref!r}\n    svckit:    {svk!r}')
                sys.stdout.flush()
                if any(p.poll() is not None for p in processes.values()):
                    break
        finally:
            for server, process in processes.items():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                logs[server].seek(0)
                text = logs[server].read()
                if text.strip():
                    print(f'# {server} server log:\n' + ''.join('#   ' + line for line in text.splitlines(True)[-20:]))
    if ran == 0 and selected != [None]:
        print(f'not ok - no case matches {selected}')
        counts['failed'] += 1


if __name__ == '__main__':
    sys.exit(main())
