#!/usr/bin/env python3
"""bench/varlink/probe.py — raw-socket probes of a varlink server's edge behaviour (what svckit's engine must match).

    probe.py SOCKET_PATH     (run it against build/reference_server in the dev root)

Each probe opens a fresh connection, writes raw bytes, then reads until EOF or a quiet period, and prints the
replies and whether the server closed the connection.
"""
import json, socket, sys, time

path = sys.argv[1]
E = 'org.example.bench.'

def probe(name, data, quiet=1.0, shut_wr=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    t0 = time.monotonic()
    try:
        s.sendall(data)
    except OSError as e:
        print(f'## {name}: send failed: {e}')
    if shut_wr:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(quiet)
    buf, closed = b'', False
    while True:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            break
        except OSError as e:
            closed = f'error {e}'
            break
        if not b:
            closed = 'EOF'
            break
        buf += b
    dt = time.monotonic() - t0
    s.close()
    msgs = [m.decode(errors='replace') for m in buf.split(b'\0') if m]
    shown = msgs if len(msgs) <= 6 else msgs[:3] + [f'... {len(msgs) - 5} more ...'] + msgs[-2:]
    print(f'## {name}: {len(msgs)} repl{"y" if len(msgs) == 1 else "ies"}, connection '
          f'{"closed (" + closed + ")" if closed else "left open"} after {dt:.2f}s')
    for m in shown:
        print('   ', m[:300])

def call(method, params=None, **flags):
    d = {'method': method}
    if params is not None:
        d['parameters'] = params
    d.update(flags)
    return json.dumps(d, separators=(',', ':')).encode() + b'\0'

probe('malformed JSON', b'{"method":\0')
probe('malformed JSON, then a valid call', b'{"method":\0' + call(E + 'Echo', {'text': 'x'}))
probe('not an object', b'[1,2]\0')
probe('empty message (lone NUL)', b'\0')
probe('no method key', b'{"parameters":{}}\0')
probe('method not a string', b'{"method":1}\0')
probe('method name without interface', call('Echo', {'text': 'x'}))
probe('unknown method, known interface', call(E + 'Nope', {}))
probe('unknown interface', call('org.other.Nope', {}))
probe('unknown top-level key', b'{"method":"' + (E + 'Echo').encode() + b'","parameters":{"text":"a"},"foo":1}\0')
probe('parameters absent', call(E + 'Echo'))
probe('parameters null', b'{"method":"' + (E + 'Echo').encode() + b'","parameters":null}\0')
probe('parameters not an object', b'{"method":"' + (E + 'Echo').encode() + b'","parameters":[1]}\0')
probe('duplicate key in parameters', b'{"method":"' + (E + 'Echo').encode() + b'","parameters":{"text":"a","text":"b"}}\0')
probe('unknown parameter', call(E + 'Echo', {'text': 'a', 'x': 1}))
probe('wrong parameter type', call(E + 'Echo', {'text': 1}))
probe('invalid UTF-8 in string', b'{"method":"' + (E + 'Echo').encode() + b'","parameters":{"text":"\xff"}}\0')
probe('escaped NUL in string', b'{"method":"' + (E + 'Echo').encode() + b'","parameters":{"text":"a\\u0000b"}}\0')
probe('Add 2^63 (beyond int64)', b'{"method":"' + (E + 'Add').encode() + b'","parameters":{"a":9223372036854775808,"b":0}}\0')
probe('Add float 1.0 for int', b'{"method":"' + (E + 'Add').encode() + b'","parameters":{"a":1.0,"b":0}}\0')
probe('Add overflow', call(E + 'Add', {'a': -2**63, 'b': -1}))
probe('oneway Echo', call(E + 'Echo', {'text': 'x'}, oneway=True))
probe('more on Echo (non-streaming method)', call(E + 'Echo', {'text': 'x'}, more=True))
probe('more and oneway together', call(E + 'Echo', {'text': 'x'}, more=True, oneway=True))
probe('Count without more', call(E + 'Count', {'n': 2}))
probe('Count n=0 with more', call(E + 'Count', {'n': 0}, more=True))
probe('pipelined: Count(3) more, Echo, Add', call(E + 'Count', {'n': 3}, more=True) + call(E + 'Echo', {'text': 'x'}) + call(E + 'Add', {'a': 1, 'b': 2}))
probe('GetInfo', call('org.varlink.service.GetInfo'))
probe('GetInterfaceDescription unknown', call('org.varlink.service.GetInterfaceDescription', {'interface': 'org.nope'}))
probe('partial message, then half-close', b'{"method":"' + (E + 'Echo').encode(), shut_wr=True)
probe('call then half-close', call(E + 'Echo', {'text': 'x'}), shut_wr=True)
big = 16 * 1024 * 1024
pad = lambda n: b'{"method":"' + (E + 'Echo').encode() + b'","parameters":{"text":"' + b'a' * n + b'"}}\0'
base = len(pad(0)) - 1  # bytes besides the text, without the NUL
probe('message of 16 MiB - 1 bytes + NUL', pad(big - 1 - base), quiet=3)
probe('message of 16 MiB + NUL', pad(big - base), quiet=3)
probe('message of 16 MiB + 1 bytes + NUL', pad(big + 1 - base), quiet=3)
probe('16 MiB - 1 bytes without NUL', b'{"method":"' + b'a' * (big - 1 - 11), quiet=1.5)
probe('16 MiB bytes without NUL', b'{"method":"' + b'a' * (big - 11), quiet=1.5)
probe('17 MiB without NUL', b'{"method":"' + b'a' * (17 * 1024 * 1024), quiet=3)
probe('Count n=65536', call(E + 'Count', {'n': 65536}, more=True), quiet=3)
probe('Count n=65537', call(E + 'Count', {'n': 65537}, more=True), quiet=3)
