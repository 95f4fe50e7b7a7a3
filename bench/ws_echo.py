"""WebSocket echo load: N connections, each sending a 12-byte text message
and waiting for its echo before sending the next (one message in flight
per connection, as wrk keeps one request in flight), for a fixed time;
prints one JSON line with messages/s, p99 round trip and errors.

    python bench/ws_echo.py --port 8080 --path /ws --connections 16 --duration 5

Raw sockets on asyncio (uvloop when the Python has it), not a WebSocket
library: a library's own per-message cost would be the client's bottleneck
and squeeze every server's figure together. Like wrk -t2, the connections
are spread over --processes client processes. Bounded: every read has a
timeout, every process a deadline; it stops by itself.
"""

import argparse
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import time

PAYLOAD = b"Hello world!"
MASK = b"\x12\x34\x56\x78"
IO_TIMEOUT = 10.0


def masked_frame(opcode, payload):
    """A client frame (clients must mask), payload under 126 bytes."""
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + MASK + body


TEXT_FRAME = masked_frame(0x1, PAYLOAD)


async def read_frame(reader):
    head = await reader.readexactly(2)
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    if head[1] & 0x80:  # a server must not mask; read the key anyway
        await reader.readexactly(4)
    return opcode, await reader.readexactly(n)


async def handshake(host, port, path):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port), IO_TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n"
                  % (path, host, port, key)).encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise ConnectionError("no upgrade: %r" % head[:80])
    return reader, writer


async def one_connection(host, port, path, start, end, stats):
    try:
        reader, writer = await handshake(host, port, path)
    except (OSError, asyncio.TimeoutError, ConnectionError,
            asyncio.IncompleteReadError) as e:
        stats["errors"] += 1
        stats["why"].append("handshake: %s" % e)
        return
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    lat = stats["lat"]
    try:
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            writer.write(TEXT_FRAME)
            while True:
                opcode, data = await asyncio.wait_for(read_frame(reader),
                                                      IO_TIMEOUT)
                if opcode == 0x9:  # ping: answer, keep waiting for the echo
                    writer.write(masked_frame(0xA, data))
                    continue
                break
            if opcode != 0x1 or data != PAYLOAD:
                stats["errors"] += 1
                stats["why"].append("bad echo: opcode %d %r" % (opcode,
                                                                data[:40]))
                break
            stats["messages"] += 1
            lat.append(time.monotonic() - t0)
        # a clean close: 1000, then wait (briefly) for the server's close
        writer.write(masked_frame(0x8, struct.pack("!H", 1000)))
        try:
            while True:
                opcode, _ = await asyncio.wait_for(read_frame(reader), 2.0)
                if opcode == 0x8:
                    break
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
            pass
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        stats["errors"] += 1
        stats["why"].append("echo: %r" % e)
    finally:
        writer.close()


async def worker_main(args):
    stats = {"messages": 0, "errors": 0, "lat": [], "why": []}
    # every connection is made first; the clock starts at `start`
    start = time.monotonic() + 1.0
    end = start + args.duration
    await asyncio.gather(*[
        one_connection(args.host, args.port, args.path, start, end, stats)
        for _ in range(args.connections)])
    stats["seconds"] = args.duration
    return stats


def worker(args):
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    stats = asyncio.run(asyncio.wait_for(worker_main(args),
                                         args.duration + 60))
    lat = sorted(stats.pop("lat"))
    stats["p99_ms"] = (lat[int(len(lat) * 0.99)] * 1000.0) if lat else None
    stats["why"] = stats["why"][:5]
    print(json.dumps(stats))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    per = [args.connections // args.processes] * args.processes
    for i in range(args.connections % args.processes):
        per[i] += 1
    procs = [subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker",
         "--host", args.host, "--port", str(args.port), "--path", args.path,
         "--connections", str(n), "--duration", str(args.duration)],
        stdout=subprocess.PIPE, text=True) for n in per if n]
    total = {"messages": 0, "errors": 0, "p99_ms": None, "why": []}
    p99s = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=args.duration + 90)
            res = json.loads(out.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            p.kill()
            p.wait()
            total["errors"] += 1
            total["why"].append("client process: %r" % e)
            continue
        total["messages"] += res["messages"]
        total["errors"] += res["errors"]
        total["why"] += res["why"]
        if res["p99_ms"] is not None:
            p99s.append(res["p99_ms"])
    total["rps"] = total["messages"] / args.duration
    total["p99_ms"] = max(p99s) if p99s else None
    print(json.dumps(total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
