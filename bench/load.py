"""Load generator for the NUT protocol benchmarks (one process, real TCP, event driven).

Run by ``bench/run.py`` as a separate process, pinned to a core of its own (``--cpu``), so
that it never competes with the server under test.  It speaks to one server and prints one
JSON object with what it measured on its last line of stdout.  Before it come ``READY`` (all
clients connected), ``START`` and ``STOP`` (the measurement window), each on a line of its
own, so that the caller can read the server's CPU time over the same window.

The closed-loop scenarios use a hand-written ``select.epoll`` loop, the idle scenario
``asyncio`` (its request rate is low; its problem is the number of connections).

Scenarios (all clients use plain default sockets: Nagle on, delayed ACK on, as ``upsc`` and
``upsmon`` do):

``list-var-100``
    100 connections, each in a closed loop: send ``LIST VAR bench``, read until
    ``END LIST VAR bench``, send again.  Measured: completed lists per second over the window.
``get-var-100``
    The same with ``GET VAR bench ups.status`` (one reply line).  Measured: requests per
    second and the latency of each request (p50, p99), send to last byte of the reply.
``idle-10k``
    10,000 connections, opened ``--concurrency`` at a time; each logs in as upsmon does
    (``USERNAME``, ``PASSWORD``, ``LOGIN bench``, waiting for each ``OK``) and then sends
    ``GET VAR bench ups.status`` every 5 s, the clients' phases spread evenly over the 5 s.
    Measured: errors, late replies and timeouts the clients saw, reply latency.  The
    clients come from ``--sources`` loopback addresses in turn (127.0.0.1, 127.0.0.2, ...;
    default 8, 1,250 clients each), as 10,000 upsmons would come from many hosts: our master
    refuses more than a quarter of MAXCONN (here 5,000) from one address.

Every reply is checked: a list or GET reply whose length differs from the first one the
server gave, or any ``ERR``, counts as an error.  At the end connections are reset
(``SO_LINGER`` 0) rather than closed, so that 10,000 client ports do not sit in TIME_WAIT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from array import array
from typing import Any, Callable

UPS = "bench"
_LINGER0 = struct.pack("ii", 1, 0)


def percentiles(samples: "array[float]",
                points: tuple[float, ...] = (50.0, 99.0)) -> dict[str, float]:
    """Nearest-rank percentiles of latency samples (seconds), returned in milliseconds."""
    if not samples:
        return {f"p{p:g}": float("nan") for p in points}
    ordered = sorted(samples)
    out = {}
    for p in points:
        rank = min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered))) - 1))
        out[f"p{p:g}"] = ordered[rank] * 1000.0
    return out


def reset(transport: asyncio.Transport) -> None:
    """Close with RST (no TIME_WAIT left behind on the client side)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
        except OSError:
            pass
    transport.abort()


# -- closed loop: list-var-100 and get-var-100 -----------------------------------------------
#
# A hand-written epoll loop rather than asyncio: an asyncio protocol costs ~30 us of Python per
# request, which capped the generator at ~33,000 requests/s against NUT's upsd (one core at
# 100%); this loop costs a third of that, so the server is what is measured.

def closed_loop(host: str, port: int, request: bytes, terminator: bytes, clients: int,
                duration: float, warmup: float) -> dict[str, Any]:
    """Run ``clients`` closed-loop connections; measure over ``duration`` after ``warmup``."""
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    for _ in range(clients):
        sock = socket.create_connection((host, port), timeout=10)
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        ep.register(sock.fileno(), select.EPOLLIN)
    bufs = dict.fromkeys(socks, b"")
    sent = dict.fromkeys(socks, 0.0)
    latency = array("d")
    record = latency.append
    now = time.perf_counter
    expected_len, done, errors, lost, first_error = 0, 0, 0, 0, ""
    print("READY", flush=True)
    for fd, sock in socks.items():
        sent[fd] = now()
        sock.send(request)
    t = now()
    start, stop = t + warmup, t + warmup + duration
    usage0 = None
    measuring = False
    while t < stop:
        for fd, _ev in ep.poll(0.05):
            sock = socks[fd]
            try:
                data = sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                lost += 1
                continue
            buf = bufs[fd]
            if buf:
                data = buf + data
            if not data.endswith(terminator):
                if data.startswith(b"ERR ") and data.endswith(b"\n"):
                    errors += 1
                    first_error = first_error or data.decode(errors="replace").strip()
                    bufs[fd] = b""
                    sent[fd] = now()
                    sock.send(request)
                else:
                    bufs[fd] = data
                continue
            bufs[fd] = b""
            if len(data) != expected_len:
                if expected_len == 0 and not data.startswith(b"ERR"):
                    expected_len = len(data)
                else:
                    errors += 1
                    first_error = first_error or data[:200].decode(errors="replace")
            t = now()
            if measuring:
                done += 1
                record(t - sent[fd])
            sent[fd] = t
            sock.send(request)
        t = now()
        if not measuring and t >= start:
            measuring = True
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            start = t
            print("START", flush=True)
    print("STOP", flush=True)
    elapsed = t - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    for sock in socks.values():
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
        sock.close()
    ep.close()
    cpu = 0.0
    if usage0 is not None:
        cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {"clients": clients, "seconds": elapsed, "completed": done,
            "rate": done / elapsed if elapsed > 0 else 0.0, "errors": errors, "lost": lost,
            "first_error": first_error, "reply_bytes": expected_len,
            "latency_ms": percentiles(latency),
            "generator_cpu_pct": 100.0 * cpu / elapsed if elapsed > 0 else 0.0}


# -- idle-10k ----------------------------------------------------------------------------------

class IdleRun:
    """Shared counters of the idle-10k run."""

    def __init__(self) -> None:
        self.running = True
        self.measuring = False
        self.replies = 0
        self.errors = 0
        self.late = 0
        self.lost = 0
        self.first_error = ""
        self.expected = b""
        self.latency = array("d")

    def error(self, text: str) -> None:
        """Count an error; keep the first one's text for the report."""
        self.errors += 1
        self.first_error = self.first_error or text


class IdleClient(asyncio.Protocol):
    """A logged-in client (like upsmon) polling ``ups.status`` now and then."""

    LOGIN = (b"USERNAME %s\n", b"PASSWORD %s\n", b"LOGIN " + UPS.encode() + b"\n")
    GET = f"GET VAR {UPS} ups.status\n".encode()

    def __init__(self, run: IdleRun, user: bytes, password: bytes) -> None:
        self.run = run
        self.steps = [self.LOGIN[0] % user, self.LOGIN[1] % password, self.LOGIN[2]]
        self.buf = b""
        self.sent = 0.0
        self.waiting = False
        self.transport: asyncio.Transport | None = None
        self.logged_in: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.steps[0])

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            self.line(line + b"\n")
        self.buf = buf

    def line(self, line: bytes) -> None:
        """One reply line: a login step's OK, or the answer to a GET."""
        run = self.run
        if not self.logged_in.done():
            if line != b"OK\n":
                run.error(f"login step {4 - len(self.steps)}: {line!r}")
                self.logged_in.set_result(False)
                return
            self.steps.pop(0)
            if self.steps:
                assert self.transport is not None
                self.transport.write(self.steps[0])
            else:
                self.logged_in.set_result(True)
            return
        if not self.waiting:
            run.error(f"unsolicited line {line!r}")
            return
        self.waiting = False
        if not run.expected:
            run.expected = line
        if line != run.expected:
            run.error(f"reply {line!r} != {run.expected!r}")
        elif run.measuring:
            run.replies += 1
            run.latency.append(time.perf_counter() - self.sent)

    def poll(self) -> None:
        """Send one GET (called every 5 s); a previous one still unanswered is 'late'."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.waiting:
            self.run.late += 1
            return
        self.waiting = True
        self.sent = time.perf_counter()
        self.transport.write(self.GET)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.logged_in.done():
            self.logged_in.set_result(False)
        if self.run.running:
            self.run.lost += 1


async def idle(host: str, port: int, clients: int, duration: float, period: float,
               concurrency: int, user: str, password: str,
               sources: int = 1) -> dict[str, Any]:
    """Open and log in ``clients`` connections (from ``sources`` loopback addresses in
    turn), then poll each every ``period`` seconds."""
    loop = asyncio.get_running_loop()
    run = IdleRun()
    protos: list[IdleClient] = []
    gate = asyncio.Semaphore(concurrency)
    failed_connect = 0
    ub, pb = user.encode(), password.encode()

    async def open_one(index: int) -> None:
        nonlocal failed_connect
        source = (f"127.0.0.{1 + index % sources}", 0)
        async with gate:
            try:
                _, proto = await asyncio.wait_for(loop.create_connection(
                    lambda: IdleClient(run, ub, pb), host, port, local_addr=source), 15)
            except (OSError, asyncio.TimeoutError) as exc:
                failed_connect += 1
                run.first_error = run.first_error or f"connect: {exc!r}"
                return
            protos.append(proto)
            try:
                await asyncio.wait_for(asyncio.shield(proto.logged_in), 15)
            except asyncio.TimeoutError:
                run.error("login timed out")

    ramp0 = time.perf_counter()
    await asyncio.gather(*(open_one(i) for i in range(clients)))
    ramp = time.perf_counter() - ramp0
    logged_in = sum(1 for p in protos if p.logged_in.done() and p.logged_in.result())
    print("READY", flush=True)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = loop.time()
    run.measuring = True
    print("START", flush=True)
    ticks = 0
    for i, proto in enumerate(protos):  # phases spread evenly over one period
        first = start + period * i / max(1, len(protos))
        for k in range(int(duration / period) + 1):
            when = first + k * period
            if when < start + duration:
                loop.call_at(when, proto.poll)
                ticks += 1
    await asyncio.sleep(duration)
    run.measuring = False
    print("STOP", flush=True)
    await asyncio.sleep(min(2.0, period))  # let the last replies arrive
    timeouts = sum(1 for p in protos if p.waiting)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    run.running = False
    for proto in protos:
        if proto.transport is not None:
            reset(proto.transport)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {"clients": clients, "connected": len(protos), "logged_in": logged_in,
            "connect_failed": failed_connect, "ramp_seconds": ramp, "seconds": duration,
            "requests_sent": ticks, "replies": run.replies, "errors": run.errors,
            "late": run.late, "timeouts": timeouts, "lost": run.lost,
            "first_error": run.first_error, "latency_ms": percentiles(run.latency),
            "generator_cpu_pct": 100.0 * cpu / (duration + min(2.0, period))}


# -- event-1000 --------------------------------------------------------------------------------
#
# A hand-written epoll loop, and every reply timed by the kernel (SO_TIMESTAMPNS: when the
# segment reached the client socket, CLOCK_REALTIME), so that the generator's own work on
# 1,000 replies arriving in one burst does not show up as server latency.

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS is the same
_ANC = socket.CMSG_SPACE(16)
EVENT_VALUES = ("OB DISCHRG", "OL")


def _recv_ts(sock: socket.socket) -> tuple[bytes, int]:
    """recv with the kernel's receive time (ns, CLOCK_REALTIME); (b'', now) at EOF."""
    data, anc, _flags, _addr = sock.recvmsg(65536, _ANC)
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
            sec, nsec = struct.unpack("qq", raw[:16])
            return data, sec * 1_000_000_000 + nsec
    return data, time.time_ns()


def _status_of(line: bytes) -> str | None:
    """The ups.status value of a ``VAR``/``NOTIFY`` line about it, else None."""
    if b" ups.status " not in line:
        return None
    parts = line.split(b'"')
    return parts[1].decode() if len(parts) >= 3 else None


class _Admin:
    """A blocking side connection (the admin's SET, the fast probe), replies kernel-timed."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.buf = b""

    def line(self) -> tuple[bytes, int]:
        while b"\n" not in self.buf:
            data, ts = _recv_ts(self.sock)
            if not data:
                raise ConnectionError("server closed the side connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line, ts

    def ask(self, request: str) -> tuple[bytes, int]:
        self.sock.sendall(request.encode() + b"\n")
        return self.line()

    def status(self) -> str | None:
        return _status_of(self.ask(f"GET VAR {UPS} ups.status")[0])


class _EventClient:
    """One slave: login script, then pushed lines or its own polls."""

    __slots__ = ("idx", "sock", "buf", "script", "ready", "waiting", "status", "ts")

    def __init__(self, idx: int, sock: socket.socket, script: list[tuple[bytes, bytes]]):
        self.idx, self.sock, self.buf, self.script = idx, sock, b"", list(script)
        self.ready, self.waiting, self.status, self.ts = False, False, "", 0


def event_run(host: str, port: int, clients: int, mode: str, events: int, period: float,
              bound: float, user: str, password: str, admin_user: str, admin_password: str,
              ok_applies: bool) -> dict[str, Any]:
    """``clients`` slaves (push: WATCH; poll: GET every ``period`` s); ``events`` changes."""
    import random
    rng = random.Random(1000)
    admin = _Admin(host, port)
    for req in (f"USERNAME {admin_user}", f"PASSWORD {admin_password}"):
        if admin.ask(req)[0] != b"OK":
            raise SystemExit(f"admin login refused at {req.split()[0]}")
    probe = _Admin(host, port)
    # start from OL (a previous run may have left the UPS on battery)
    if probe.status() != "OL":
        admin.ask(f'SET VAR {UPS} ups.status "OL"')
        deadline = time.monotonic() + 5
        while probe.status() != "OL":
            if time.monotonic() > deadline:
                raise SystemExit("could not put ups.status back to OL")
            time.sleep(0.01)
    get = f"GET VAR {UPS} ups.status\n".encode()
    script = [(f"USERNAME {user}\n".encode(), b"OK"), (f"PASSWORD {password}\n".encode(), b"OK"),
              (f"LOGIN {UPS}\n".encode(), b"OK")]
    if mode == "push":
        script.append((f"WATCH {UPS}\n".encode(), f"OK WATCHING {UPS}".encode()))
    script.append((get, f"VAR {UPS} ups.status ".encode()))  # the first read, as a slave does
    ep = select.epoll()
    by_fd: dict[int, _EventClient] = {}
    ramp0 = time.perf_counter()
    errors, late, lost, first_error = 0, 0, 0, ""
    for i in range(clients):
        sock = socket.create_connection((host, port), timeout=15)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        cl = _EventClient(i, sock, script)
        by_fd[sock.fileno()] = cl
        ep.register(sock.fileno(), select.EPOLLIN)
        sock.send(cl.script[0][0])
    state: dict[str, Any] = {"event": None, "got": {}, "value": None, "replies": 0,
                             "notifies": 0}

    def on_status(cl: _EventClient, value: str | None, ts: int) -> None:
        if value is None:
            return
        cl.status = value
        if value == state["value"] and cl.idx not in state["got"]:
            state["got"][cl.idx] = ts

    def handle(cl: _EventClient, line: bytes, ts: int) -> None:
        nonlocal errors, first_error
        if not cl.ready:
            request, expect = cl.script.pop(0)
            if not line.startswith(expect):
                errors += 1
                first_error = first_error or f"{request!r} -> {line!r}"
                return
            if cl.script:
                cl.sock.send(cl.script[0][0])
            else:
                cl.ready = True
                cl.status = _status_of(line) or ""
            return
        if line.startswith(b"NOTIFY "):
            state["notifies"] += 1
            on_status(cl, _status_of(line), ts)
        elif line.startswith(b"VAR ") and cl.waiting:
            cl.waiting = False
            state["replies"] += 1
            on_status(cl, _status_of(line), ts)
        else:
            errors += 1
            first_error = first_error or f"unexpected {line!r}"

    polling = {"next": 0.0, "seq": 0, "on": False}

    def pump(until: float, done: Callable[[], bool] = lambda: False) -> None:
        """Serve the sockets (and the poll schedule) until ``until`` or ``done()``."""
        nonlocal lost, late
        while True:
            now = time.monotonic()
            if polling["on"]:
                while polling["next"] <= now:
                    cl = by_fd_list[polling["seq"] % clients]
                    polling["seq"] += 1
                    polling["next"] = poll_base + polling["seq"] * period / clients
                    if cl.waiting:
                        late += 1
                    elif cl.ready:
                        cl.waiting = True
                        try:
                            cl.sock.send(get)
                        except OSError:
                            pass
            if now >= until or done():
                return
            timeout = until - now
            if polling["on"]:
                timeout = min(timeout, max(0.0, polling["next"] - now))
            for fd, _ev in ep.poll(min(timeout, 0.05)):
                cl = by_fd[fd]
                try:
                    data, ts = _recv_ts(cl.sock)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data, ts = b"", 0
                if not data:
                    ep.unregister(fd)
                    lost += 1
                    continue
                buf = cl.buf + data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    handle(cl, line, ts)
                cl.buf = buf

    by_fd_list = sorted(by_fd.values(), key=lambda c: c.idx)
    pump(time.monotonic() + 30, lambda: all(c.ready for c in by_fd_list) or errors > 0)
    ramp = time.perf_counter() - ramp0
    logged_in = sum(1 for c in by_fd_list if c.ready)
    print("READY", flush=True)
    poll_base = time.monotonic()
    if mode == "poll":  # phases spread evenly over one period, as 1,000 upsmons would be
        polling["next"], polling["on"] = poll_base, True
        pump(poll_base + period + 0.5)  # one whole round before the first event
    else:
        pump(time.monotonic() + 1.0)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    window0 = time.monotonic()
    print("START", flush=True)
    results = []
    for k in range(events):
        value = EVENT_VALUES[k % 2]
        state["value"], state["got"] = value, {}
        for cl in by_fd_list:  # a client already showing it (it cannot yet) would count at 0
            if cl.status == value:
                cl.status = ""
        t_set = time.time_ns()
        admin.sock.sendall(f'SET VAR {UPS} ups.status "{value}"\n'.encode())
        # the probe: GET after GET (closed loop) until the new value is readable
        probe_gets, t_visible = 0, None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line, ts = probe.ask(f"GET VAR {UPS} ups.status")
            probe_gets += 1
            pump(0.0)  # keep the slaves' polls on time (their replies are kernel-timed)
            if _status_of(line) == value:
                t_visible = ts
                break
        line, t_ok = admin.line()
        if line != b"OK":
            raise SystemExit(f"SET refused: {line!r}")
        if t_visible is None:
            raise SystemExit(f"the new status {value!r} was never readable")
        t0 = min(t_ok, t_visible) if ok_applies else t_visible
        pump(time.monotonic() + bound, lambda: len(state["got"]) >= logged_in)
        got = state["got"]
        lat_ms = sorted((ts - t0) / 1e6 for ts in got.values())
        from_set = sorted((ts - t_set) / 1e6 for ts in got.values())
        results.append({
            "value": value, "t0": "SET OK or probe" if ok_applies else "probe",
            "ok_after_set_ms": (t_ok - t_set) / 1e6,
            "visible_after_set_ms": (t_visible - t_set) / 1e6,
            "t0_after_set_ms": (t0 - t_set) / 1e6, "probe_gets": probe_gets,
            "got": len(got), "missed": logged_in - len(got),
            "latency_ms": {**percentiles(array("d", [x / 1000 for x in lat_ms]),
                                         (50.0, 99.0, 100.0)),
                           "min": lat_ms[0] if lat_ms else float("nan")},
            "from_set_ms": percentiles(array("d", [x / 1000 for x in from_set]),
                                       (50.0, 99.0, 100.0)),
            "samples_ms": [round(x, 3) for x in lat_ms]})
        pump(time.monotonic() + rng.uniform(1.0, 2.0))  # the next event at another phase
    print("STOP", flush=True)
    window = time.monotonic() - window0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    for cl in by_fd_list:
        cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
        cl.sock.close()
    ep.close()
    admin.sock.close()
    probe.sock.close()
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    allms = array("d", sorted(x / 1000 for r in results for x in r["samples_ms"]))
    return {"clients": clients, "mode": mode, "logged_in": logged_in, "ramp_seconds": ramp,
            "period": period, "bound": bound, "events": results,
            "latency_ms": percentiles(allms, (50.0, 99.0, 100.0)),
            "missed": sum(r["missed"] for r in results),
            "replies": state["replies"] + state["notifies"], "gets": state["replies"],
            "notifies": state["notifies"], "errors": errors, "late": late, "lost": lost,
            "first_error": first_error, "seconds": window,
            "generator_cpu_pct": 100.0 * cpu / window if window > 0 else 0.0}


# -- command line ------------------------------------------------------------------------------

def raise_nofile() -> int:
    """Raise our descriptor limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def main(argv: list[str] | None = None) -> int:
    """Run one scenario against one server and print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario",
                        choices=("list-var-100", "get-var-100", "idle-10k", "event-1000"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=0, help="default: the scenario's")
    parser.add_argument("--period", type=float, default=5.0, help="idle-10k poll period")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="idle-10k: connections being opened at once")
    parser.add_argument("--sources", type=int, default=8,
                        help="idle-10k: loopback addresses the clients come from, in turn")
    parser.add_argument("--user", default="monuser")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--mode", choices=("push", "poll"), default="poll",
                        help="event-1000: WATCH and wait for NOTIFY, or GET every --period")
    parser.add_argument("--events", type=int, default=3, help="event-1000: status changes")
    parser.add_argument("--bound", type=float, default=15.0,
                        help="event-1000: a client without the new status after this is a miss")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument("--admin-password", default="adminpass")
    parser.add_argument("--ok-applies", action="store_true",
                        help="event-1000: the server applies a SET before its OK (ours)")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    raise_nofile()
    result: dict[str, Any]
    if args.scenario == "event-1000":
        result = event_run(args.host, args.port, args.clients or 1000, args.mode, args.events,
                           args.period, args.bound, args.user, args.password, args.admin_user,
                           args.admin_password, args.ok_applies)
    elif args.scenario == "idle-10k":
        result = asyncio.run(idle(args.host, args.port, args.clients or 10_000, args.duration,
                                  args.period, args.concurrency, args.user, args.password,
                                  args.sources))
    else:
        request, term = ((f"LIST VAR {UPS}\n".encode(), f"END LIST VAR {UPS}\n".encode())
                         if args.scenario == "list-var-100"
                         else (f"GET VAR {UPS} ups.status\n".encode(), b"\n"))
        result = closed_loop(args.host, args.port, request, term, args.clients or 100,
                             args.duration, args.warmup)
    result["scenario"] = args.scenario
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
