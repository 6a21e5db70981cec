"""A small xapi (XenServer / XCP-ng toolstack) simulator: a real XML-RPC server over HTTPS.

Faithful to the wire shape the research notes (xen-api's wire-protocol.md): ``POST /``, an
XML-RPC ``methodCall`` named ``class.message`` (``Async.class.message`` for a task), the
session ref first; every answer a ``methodResponse`` holding one struct, ``{"Status":
"Success", "Value": v}`` or ``{"Status": "Failure", "ErrorDescription": [code, ...]}``,
never a ``<fault>``; 64-bit ints as decimal strings; refs ``OpaqueRef:...``.

One :class:`Pool` holds the state; each member listens on its own address (127.0.0.x,
all on one port, as real members do on 443), and a member that is not the master answers
``session.login_with_password`` with ``HOST_IS_SLAVE [master address]``.  Implemented:
sessions (``SESSION_AUTHENTICATION_FAILED``, ``SESSION_INVALID``), ``pool.get_all/
get_master``, ``host.get_all_records/get_record/disable/enable/shutdown`` (needs a disabled
host: ``HOST_NOT_DISABLED``; a host that is down: ``HOST_OFFLINE``), ``host.evacuate``
(plans over the other enabled live hosts by memory and refuses up front with
``HOST_NOT_ENOUGH_FREE_MEMORY [vm]`` / ``NO_HOSTS_AVAILABLE [vm]``, then migrates one VM
after another), ``VM.get_all_records/get_record/pool_migrate/clean_shutdown/
hard_shutdown`` (a clean shutdown needs the PV drivers, ``VM_LACKS_FEATURE_SHUTDOWN``
otherwise, and is cancellable; a guest that ``hangs`` never ends it; a hard shutdown ends
a clean one in flight, as xapi cancels it; templates and snapshots are never running),
tasks (``task.get_record/cancel/destroy``) and ``event.from`` with tokens.
Every call is recorded in :attr:`Pool.calls` (method and parameters, the session left out).
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Callable
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

__all__ = ["Pool", "XapiError", "make_ca"]


class XapiError(Exception):
    """A xapi failure: ``ErrorDescription`` is ``[code, *params]``."""

    def __init__(self, *description: str) -> None:
        super().__init__(*description)
        self.description = list(description)


def make_ca(directory: Path, addresses: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for ``addresses`` signed by it: (ca.pem,
    server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("upsagent test CA", ca_key, "upsagent test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(addresses[0], key, "upsagent test CA", ca_key, False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class SimHost:
    name_label: str
    address: str
    memory: int
    enabled: bool = True
    live: bool = True


@dataclass
class SimVM:
    name_label: str
    resident_on: str
    memory: int
    power_state: str = "Running"
    pv_drivers: bool = True
    is_control_domain: bool = False
    is_a_template: bool = False
    is_a_snapshot: bool = False
    #: the guest ignores a clean shutdown: the task runs until cancelled (or the VM is
    #: hard shut down, which xapi does by cancelling the clean shutdown's task)
    hangs: bool = False


@dataclass
class SimTask:
    name_label: str
    status: str = "pending"
    progress: float = 0.0
    result: str = ""
    error_info: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True


class Pool:
    """A simulated pool: ``hosts`` {name: (address, memory)}, the master's name, ``vms``
    {name: (host, memory)}; ``migration_time`` seconds per VM moved."""

    def __init__(self, hosts: dict[str, tuple[str, int]], master: str,
                 vms: dict[str, tuple[str, int]], *, user: str = "root",
                 password: str = "secret", migration_time: float = 0.2) -> None:
        self.user, self.password, self.migration_time = user, password, migration_time
        self._ids = itertools.count(1)
        self.hosts = {self._ref(): SimHost(n, a, m) for n, (a, m) in hosts.items()}
        self.master = self.host_ref(master)
        self.vms: dict[str, SimVM] = {}
        for name, (host, memory) in vms.items():
            self.vms[self._ref()] = SimVM(name, self.host_ref(host), memory)
        for ref, host in list(self.hosts.items()):  # each host's control domain
            self.vms[self._ref()] = SimVM(f"Control domain on host: {host.name_label}",
                                          ref, 0, is_control_domain=True)
        self.pool_ref = self._ref()
        self.sessions: set[str] = set()
        self.tasks: dict[str, SimTask] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        #: answer event.from with MESSAGE_METHOD_UNKNOWN (the client must poll instead)
        self.without_events = False
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._servers: list[_Server] = []

    def _ref(self) -> str:
        return f"OpaqueRef:{next(self._ids):08d}-sim"

    def host_ref(self, name: str) -> str:
        return next(r for r, h in self.hosts.items() if h.name_label == name)

    def vm_named(self, name: str) -> SimVM:
        return next(v for v in self.vms.values() if v.name_label == name)

    def power_on(self, name: str) -> None:
        """Power is back: host ``name`` boots, enabled (as a rebooted host comes back)."""
        host = self.hosts[self.host_ref(name)]
        host.live, host.enabled = True, True

    def where(self, vm: str) -> str:
        """The name of the host ``vm`` runs on."""
        return self.hosts[self.vm_named(vm).resident_on].name_label

    # -- serving -----------------------------------------------------------------------

    def serve(self, port: int, cert: Path, key: Path) -> None:
        """Listen on every member's address at ``port`` over HTTPS."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        for ref, host in self.hosts.items():
            server = _Server((host.address, port), SimpleXMLRPCRequestHandler,
                             logRequests=False, allow_none=True)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
            server.register_instance(_Member(self, ref))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # -- events --------------------------------------------------------------------------

    def _event(self, cls: str, ref: str, op: str = "mod") -> None:
        with self._lock:
            self._events.append({"id": str(len(self._events) + 1), "class": cls,
                                 "operation": op, "ref": ref,
                                 "timestamp": f"{time.time():.6f}",
                                 "snapshot": self._record(cls, ref)})
            self._lock.notify_all()

    def _record(self, cls: str, ref: str) -> dict[str, Any]:
        if cls == "task":
            t = self.tasks.get(ref)
            if t is None:
                return {}
            return {"name_label": t.name_label, "status": t.status, "progress": t.progress,
                    "result": t.result, "error_info": list(t.error_info)}
        if cls == "host":
            h = self.hosts[ref]
            return {"name_label": h.name_label, "hostname": h.name_label,
                    "address": h.address, "enabled": h.enabled,
                    "uuid": ref[10:], "memory_total": str(h.memory),
                    "resident_VMs": [r for r, v in self.vms.items() if v.resident_on == ref
                                     and v.power_state == "Running"],
                    "metrics": f"OpaqueRef:metrics-{ref[10:]}"}
        v = self.vms[ref]
        running = v.power_state == "Running" and not (v.is_a_template or v.is_a_snapshot)
        ops = (["hard_shutdown", "pool_migrate"] + (["clean_shutdown"] if v.pv_drivers else [])
               if running else ["start"] if v.power_state == "Halted" else [])
        return {"name_label": v.name_label, "power_state": v.power_state,
                "resident_on": v.resident_on if v.power_state == "Running" else
                "OpaqueRef:NULL", "is_a_template": v.is_a_template,
                "is_a_snapshot": v.is_a_snapshot, "is_control_domain": v.is_control_domain,
                "memory_static_max": str(v.memory), "allowed_operations": ops}

    def event_from(self, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
        start = int(token) if token else 0
        deadline = time.monotonic() + timeout
        with self._lock:
            if not token:  # the current state of the classes asked for
                current = [{"id": "0", "class": c, "operation": "add", "ref": r,
                            "timestamp": "0", "snapshot": self._record(c, r)}
                           for c, table in (("host", self.hosts), ("vm", self.vms),
                                            ("task", self.tasks)) if c in classes
                           for r in table]
                return {"events": current, "valid_ref_counts": {},
                        "token": str(len(self._events))}
            while True:
                found = [e for e in self._events[start:] if e["class"] in classes]
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return {"events": found, "valid_ref_counts": {},
                            "token": str(len(self._events))}
                self._lock.wait(left)

    # -- operations ----------------------------------------------------------------------

    def _free(self, host: str) -> int:
        used = sum(v.memory for v in self.vms.values()
                   if v.resident_on == host and v.power_state == "Running")
        return self.hosts[host].memory - used

    def _running_on(self, host: str) -> list[str]:
        return [r for r, v in self.vms.items() if v.resident_on == host and
                v.power_state == "Running" and not v.is_control_domain]

    def _plan(self, host: str) -> dict[str, str]:
        free = {r: self._free(r) for r, h in self.hosts.items()
                if r != host and h.enabled and h.live}
        plan = {}
        for vm in sorted(self._running_on(host), key=lambda r: -self.vms[r].memory):
            if not free:
                raise XapiError("NO_HOSTS_AVAILABLE", vm)
            target = max(free, key=lambda r: free[r])
            if free[target] < self.vms[vm].memory:
                raise XapiError("HOST_NOT_ENOUGH_FREE_MEMORY", vm)
            free[target] -= self.vms[vm].memory
            plan[vm] = target
        return plan

    def _move(self, vm: str, target: str, task: SimTask) -> None:
        end = time.monotonic() + self.migration_time
        while time.monotonic() < end:
            if task.cancel.is_set():
                raise XapiError("TASK_CANCELLED", "")
            time.sleep(0.02)
        h = self.hosts[target]
        if not (h.enabled and h.live):
            raise XapiError("HOST_OFFLINE", target) if not h.live else \
                XapiError("HOST_DISABLED", target)
        if self._free(target) < self.vms[vm].memory:
            raise XapiError("HOST_NOT_ENOUGH_FREE_MEMORY", str(self.vms[vm].memory),
                            str(self._free(target)))
        self.vms[vm].resident_on = target
        self._event("vm", vm)

    def evacuate(self, task: SimTask, host: str) -> str:
        plan = self._plan(host)
        for i, (vm, target) in enumerate(plan.items()):
            self._move(vm, target, task)
            task.progress = (i + 1) / len(plan)
        return ""

    def pool_migrate(self, task: SimTask, vm: str, target: str, options: Any) -> str:
        self._move(vm, target, task)
        return ""

    def shutdown_vm(self, task: SimTask, vm: str, clean: bool) -> str:
        v = self.vms[vm]
        if v.power_state != "Running":
            raise XapiError("VM_BAD_POWER_STATE", vm, "running", v.power_state.lower())
        if clean and not v.pv_drivers:
            raise XapiError("VM_LACKS_FEATURE_SHUTDOWN", vm)
        if clean:
            end = time.monotonic() + self.migration_time / 2
            while v.hangs or time.monotonic() < end:
                if task.cancel.is_set() or v.power_state != "Running":
                    raise XapiError("TASK_CANCELLED", "")
                time.sleep(0.02)
        v.power_state = "Halted"
        self._event("vm", vm)
        return ""

    def run_task(self, name: str, work: Callable[[SimTask], str]) -> str:
        ref = self._ref()
        task = self.tasks[ref] = SimTask(name)
        self._event("task", ref, "add")

        def run() -> None:
            try:
                task.result = work(task)
                task.status, task.progress = "success", 1.0
            except XapiError as exc:
                if exc.description[0] == "TASK_CANCELLED":
                    task.status = "cancelled"
                else:
                    task.status, task.error_info = "failure", exc.description
            self._event("task", ref)
        threading.Thread(target=run, daemon=True).start()
        return ref


_ASYNC = {"host.evacuate", "VM.pool_migrate", "VM.clean_shutdown", "VM.hard_shutdown"}


class _Member:
    """The XML-RPC face of one member: the envelope, sessions, the master check."""

    def __init__(self, pool: Pool, ref: str) -> None:
        self.pool, self.ref = pool, ref

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        try:
            value = self._call(method, params)
        except XapiError as exc:
            return {"Status": "Failure", "ErrorDescription": exc.description}
        return {"Status": "Success", "Value": "" if value is None else value}

    def _call(self, method: str, params: tuple[Any, ...]) -> Any:
        pool = self.pool
        if not pool.hosts[self.ref].live:
            raise XapiError("HOST_OFFLINE", self.ref)  # (a real one would not answer)
        if self.ref != pool.master:
            raise XapiError("HOST_IS_SLAVE", pool.hosts[pool.master].address)
        if method == "session.login_with_password":
            user, password = params[0], params[1]
            if (user, password) != (pool.user, pool.password):
                raise XapiError("SESSION_AUTHENTICATION_FAILED", user,
                                "Authentication failure")
            session = pool._ref()
            pool.sessions.add(session)
            return session
        session, args = params[0], params[1:]
        if session not in pool.sessions:
            raise XapiError("SESSION_INVALID", session)
        pool.calls.append((method, args))
        if method == "session.logout":
            pool.sessions.discard(session)
            return None
        asynchronous = method.startswith("Async.")
        name = method[len("Async."):] if asynchronous else method
        if name in _ASYNC:
            work = self._work(name, args)
            if asynchronous:
                return pool.run_task(name, work)
            task = SimTask(name)
            return work(task)
        return self._sync(name, args)

    def _work(self, name: str, args: tuple[Any, ...]) -> Callable[[SimTask], str]:
        pool = self.pool
        if name == "host.evacuate":
            return lambda t: pool.evacuate(t, args[0])
        if name == "VM.pool_migrate":
            return lambda t: pool.pool_migrate(t, args[0], args[1], args[2])
        return lambda t: pool.shutdown_vm(t, args[0], name == "VM.clean_shutdown")

    def _sync(self, name: str, args: tuple[Any, ...]) -> Any:
        pool = self.pool
        if name == "pool.get_all":
            return [pool.pool_ref]
        if name == "pool.get_master":
            return pool.master
        if name == "host_metrics.get_all_records":    # liveness lives here, as in xapi
            return {f"OpaqueRef:metrics-{r[10:]}": {"uuid": f"metrics-{r[10:]}",
                                                   "live": h.live}
                    for r, h in pool.hosts.items()}
        if name in ("host.get_all_records", "VM.get_all_records"):
            cls, table = ("host", pool.hosts) if name.startswith("host") else ("vm", pool.vms)
            return {r: pool._record(cls, r) for r in table}
        if name in ("host.get_record", "VM.get_record", "task.get_record"):
            cls = name.split(".")[0].lower()
            table: dict[str, Any] = {"host": pool.hosts, "vm": pool.vms,
                                     "task": pool.tasks}[cls]
            if args[0] not in table:
                raise XapiError("HANDLE_INVALID", cls, args[0])
            return pool._record(cls, args[0])
        if name == "event.from":
            if pool.without_events:          # an older or partial xapi, for the tests
                raise XapiError("MESSAGE_METHOD_UNKNOWN", name)
            return pool.event_from(args[0], args[1], float(args[2]))
        if name in ("host.disable", "host.enable", "host.shutdown"):
            host = pool.hosts[args[0]]
            if not host.live:
                raise XapiError("HOST_OFFLINE", args[0])
            if name == "host.shutdown":
                if host.enabled:
                    raise XapiError("HOST_NOT_DISABLED")
                for vm in pool._running_on(args[0]):  # xapi's own safety net: halt them
                    pool.vms[vm].power_state = "Halted"
                host.live = False
            else:
                host.enabled = name == "host.enable"
            pool._event("host", args[0])
            return None
        if name == "task.cancel":
            pool.tasks[args[0]].cancel.set()
            return None
        if name == "task.destroy":
            pool.tasks.pop(args[0], None)
            return None
        raise XapiError("MESSAGE_METHOD_UNKNOWN", name)
