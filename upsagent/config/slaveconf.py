# -*- test-case-name: tests.test_slave_daemon -*-
"""The slave agent's configuration: ``[slave]``, ``[[slave.monitor]]`` and ``[[host]]`` of
upsagent.toml, or NUT's ``upsmon.conf``, mapped onto one :class:`SlaveConfig`.

This is the ONE place where configuration becomes a :class:`~upsagent.policy.plan.Plan`:
the native loader (:mod:`upsagent.config.native`) calls :func:`build_slave` with the parsed
document, ``upsagent slave --nut-config`` and ``import-nut`` call :func:`from_upsmon`.

Rules (upsagent.toml(5) documents every key):

* Unknown keys, wrong types and negative times are errors naming the key path, as in the
  rest of the file (``slave.monitor[1].rol: unknown key (did you mean "role"?)``;
  ``host[2].shutdown_after: must be a number, not a string``).
* Each ``[[slave.monitor]]`` names ``ups`` as ``name@host[:port]`` (the MONITOR system
  name, which is also the name hosts use in ``powered_by``), a ``user`` and its password
  from exactly one place: ``password``, ``password_file`` or ``[slave].secrets_file`` (the
  same rules and permission checks as ``[[user]]``).  ``role`` is ``primary`` or
  ``secondary`` (default), ``power_value`` defaults to 1; ``warning_period`` and
  ``shutdown_delay`` describe the UPS's own cut-off countdown (NMC).  ``warning_period``
  alone: the delay is the UPS's ``ups.delay.shutdown``, which the agent reads once
  connected (:func:`~upsagent.config.slavecheck.countdown_problems` checks the plan
  against it then).
* Without ``[[host]]`` the agent protects its own machine exactly as upsmon would
  (:func:`~upsagent.policy.plan.upsmon_plan`): powered by every monitored UPS, MINSUPPLIES
  from ``minsupplies``, FINALDELAY from ``finaldelay``.  With ``[[host]]`` tables, each
  one's keys are :class:`~upsagent.policy.plan.HostPlan`'s; ``powered_by`` defaults to
  every monitored UPS with its power value; ``minsupplies`` and ``finaldelay`` are then
  an error unless they equal the agent's own host's ``min_supplies`` and
  ``shutdown_delay`` (which are what counts): a safety setting is never silently ignored.
* ``runtime_margin`` (a share from 0 to 1, default
  :data:`~upsagent.policy.plan.DEFAULT_RUNTIME_MARGIN`) and ``pollfreq_alert`` make the
  runtime trigger's margin (:attr:`Plan.runtime_margin`, :attr:`Plan.poll`); a value
  above 1 (25 meant as 25 %) is refused.
* upsmon.conf without SHUTDOWNCMD is a warning saying what happens: the agent runs
  :data:`~upsagent.policy.plan.DEFAULT_SHUTDOWN_COMMAND` (upsmon would run nothing).
* ``[[slave.vcenter]]``, ``[[slave.xenpool]]`` and a host's ``vcenter``, ``pool`` and
  ``[host.ssh]`` are the managers of the ``vsphere``, ``xen`` and ``ssh`` hosts, read by
  :mod:`upsagent.config.managers`; :meth:`SlaveConfig.managers` groups the hosts by
  manager, one backend each.  A ``xenmaster`` host (the pool master the agent runs on)
  names its pool too; it is the pool master (``pool_master`` defaults to true, false is
  refused) and the agent's own host, so the only one (with a ``local`` host besides, the
  plan check refuses two hosts of the agent's machine).
* Commands are argument lists (``shutdown_command``, ``notify_command``, a host's
  ``command``); a string is refused.  From upsmon.conf, SHUTDOWNCMD and NOTIFYCMD are the
  operator's shell lines and run as ``/bin/sh -c <line>``.
* The checks of a built configuration (``check-config``'s lines, also at start and on
  SIGHUP) are in :mod:`upsagent.config.slavecheck`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from upsagent.config.reader import Reader, kind_of
from upsagent.config.schema import ConfigError
from upsagent.config.validate import show, suggest
from upsagent.nut.target import BadTarget, split_name
from upsagent.config.notify import FLAGS, NOTIFY_TYPES, NotifySettings, message_problem
from upsagent.policy.plan import (
    DEFAULT_SHUTDOWN_COMMAND, TRAITS, HostPlan, Plan, Supply,
    UpsCountdown, UpsPlan, VmGroupError, read_vm_groups, upsmon_plan)
from upsagent.config.shellline import ShellLine
from upsagent.config.managers import (
    EsxiConfig, LocalConfig, ManagerConfig, PrivateCheck, ReadableCheck, SshTargetConfig,
    VcenterConfig, XenMasterConfig, XenPoolConfig, host_esxi, host_managers, read_managers)

if TYPE_CHECKING:
    from upsagent.config.monitoring import MonitorSettings
    from upsagent.config.upsmonconf import UpsmonConf

__all__ = ["DEFAULT_STATE_FILE", "DEFAULT_STATUS_SOCKET", "DELAY_VARIABLE", "SIMULATION_ONLY", "ArgvLine",
           "MonitorConfig", "SlaveConfig", "TlsOptions", "build_slave", "from_upsmon",
           "load_upsmon_dir"]

_T = TypeVar("_T")

DEFAULT_STATE_FILE = "/var/lib/upsagent/slave.json"
#: the running agent's status socket (``upsagent status``), unless ``status_socket`` says
DEFAULT_STATUS_SOCKET = "/run/upsagent/slave.sock"
#: what a UPS publishes as the delay between its shutdown order and the output going off
DELAY_VARIABLE = "ups.delay.shutdown"

#: backend kinds of the registry that only ``upsagent simulate`` can drive (they act on a
#: simulated cluster, which the agent does not have)
SIMULATION_ONLY = frozenset({"simulated"})
#: names operators write for a kind the plan knows by another name (for the error's hint)
_BACKEND_ALIASES = {"xenserver": "xen", "xcp-ng": "xen", "xcp": "xen", "esxi": "vsphere",
                    "esx": "vsphere", "vcenter": "vsphere", "os": "local"}

_SLAVE_FLOAT = ("deadtime", "hostsync", "finaldelay", "pollfreq", "pollfreq_alert",
                "nocommwarntime", "rbwarntime", "shutdown_budget", "notify_budget")
_SLAVE_KEYS = ("name", "state_file", "status_socket", *_SLAVE_FLOAT, "minsupplies", "dry_run",
               "secrets_file", "shutdown_command", "powerdown_flag", "notify_command",
               "notify_messages", "notify_flags", "runtime_margin", "monitor", "vcenter",
               "xenpool")
_MONITOR_KEYS = ("ups", "user", "password", "password_file", "role", "power_value",
                 "warning_period", "shutdown_delay", "watch", "tls")
_TLS_KEYS = ("starttls", "required", "verify", "ca_path", "hostname")
_HOST_FLOAT = ("maintenance_after", "shutdown_after", "shutdown_delay", "shutdown_duration",
               "command_budget", "debounce", "maintenance_timeout", "vm_shutdown_timeout")
_HOST_KEYS = ("name", "backend", "powered_by", "min_supplies", *_HOST_FLOAT, "command",
              "message", "cluster", "pool_master", "shutdown_on_critical", "vcenter", "pool",
              "ssh", "vm_groups", "power_on_vms", "runs_vcenter", "runs_agent", "esxi")


@dataclass(frozen=True)
class ArgvLine(ShellLine):
    """A notify command given as an argument list: run as is, the text appended (no shell)."""

    words: tuple[str, ...] = ()

    def argv(self, *arguments: str) -> tuple[str, ...]:
        return (*self.words, *arguments)


@dataclass(frozen=True)
class TlsOptions:
    """``[slave.monitor.tls]`` (see :class:`upsagent.agent.monitor.TlsSettings`)."""

    starttls: bool = True
    required: bool = False
    verify: bool = False
    ca_path: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class MonitorConfig:
    """One monitored UPS: the session (user, password, role) and how it is read."""

    system: str
    user: str
    password: str = field(repr=False)
    primary: bool = False
    power_value: int = 1
    watch: bool = True
    tls: TlsOptions = TlsOptions()
    #: ``warning_period`` when ``shutdown_delay`` is not configured: the agent takes the
    #: delay from the UPS's ``ups.delay.shutdown`` and checks the plan against the sum
    delay_from_ups: float | None = None

    def settings(self, poll_freq: float, poll_freq_alert: float,
                 read_battery: bool = False) -> MonitorSettings:
        """The :class:`~upsagent.agent.monitor.MonitorSettings` of this UPS."""
        from upsagent.config.monitoring import MonitorSettings, TlsSettings

        tls = TlsSettings(self.tls.starttls, self.tls.required, self.tls.verify,
                          self.tls.ca_path, self.tls.hostname)
        return MonitorSettings(self.system, self.user, self.password, self.primary,
                               poll_freq, poll_freq_alert, watch=self.watch, tls=tls,
                               read_battery=read_battery)


@dataclass(frozen=True)
class SlaveConfig:
    """Everything ``upsagent slave`` needs: the plan and how to carry it out."""

    plan: Plan
    monitors: tuple[MonitorConfig, ...] = ()
    state_file: str = DEFAULT_STATE_FILE
    #: the Unix socket ``upsagent status`` asks (:mod:`upsagent.agent.control`); None: no
    #: status socket (``status_socket = ""``, and a :class:`SlaveConfig` built in code)
    status_socket: str | None = None
    poll_freq: float = 5.0
    poll_freq_alert: float = 5.0
    dry_run: bool = False
    #: the local host's shutdown (argv; from upsmon.conf ``/bin/sh -c SHUTDOWNCMD``)
    shutdown_command: tuple[str, ...] = DEFAULT_SHUTDOWN_COMMAND
    shutdown_budget: float = 30.0
    powerdown_flag: str | None = None
    notify: NotifySettings = NotifySettings()
    notify_budget: float = 60.0
    source: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    #: where the settings were written: ``"toml"`` (upsagent.toml) or ``"upsmon.conf"``,
    #: so that a message names the key the operator wrote
    origin: str = "toml"
    #: ``[[slave.vcenter]]`` and ``[[slave.xenpool]]``, in file order
    vcenters: tuple[VcenterConfig, ...] = ()
    xenpools: tuple[XenPoolConfig, ...] = ()
    #: host name -> its manager, for the ``vsphere`` and ``xen`` hosts (the section they
    #: name) and the ``ssh`` hosts (their ``[host.ssh]``)
    host_managers: Mapping[str, VcenterConfig | XenPoolConfig | SshTargetConfig] = field(
        default_factory=dict)
    #: host name -> its ``[host.esxi]`` (the direct ESXi session of a ``vsphere`` host)
    host_esxi: Mapping[str, EsxiConfig] = field(default_factory=dict)

    def key(self, native: str, upsmon: str) -> str:
        """``native`` (an upsagent.toml key path) or ``upsmon`` (the upsmon.conf word)."""
        return upsmon if self.origin == "upsmon.conf" else native

    def monitor_settings(self) -> list[MonitorSettings]:
        """One :class:`~upsagent.agent.monitor.MonitorSettings` per monitored UPS.

        Plans with timed steps read ``battery.charge`` and ``battery.runtime`` too, which
        the engine's runtime trigger needs; a plan without timers reads (and takes from
        pushes) only ``ups.status``, exactly as upsmon does (:attr:`Plan.reads_battery`).
        """
        return [m.settings(self.poll_freq, self.poll_freq_alert, self.plan.reads_battery)
                for m in self.monitors]

    def managers(self) -> list[tuple[ManagerConfig, tuple[str, ...]]]:
        """Each manager with the hosts it manages, in plan order: the agent builds one
        backend per manager.  Hosts naming the same ``[[slave.vcenter]]`` or
        ``[[slave.xenpool]]`` share it; each ``ssh`` host is a manager of its own; the
        ``local`` host's is this OS (:class:`LocalConfig`, from ``[slave]``'s shutdown
        settings); an ``ssh`` host's record carries its ``shutdown_duration`` as the
        ``budget`` of its shutdown command; a ``xenmaster`` host's is its own
        (:class:`XenMasterConfig`: its pool and this OS's shutdown settings); a
        ``[[slave.vcenter]]``'s record has the ``[host.esxi]`` of its hosts (``esxi``, with
        their ``runs_vcenter`` and ``runs_agent`` marks).  Hosts without a manager
        (``simulated``) are left out."""
        groups: dict[tuple[str, str], tuple[ManagerConfig, list[str]]] = {}
        local: LocalConfig | None = None
        for host in self.plan.hosts:
            manager: ManagerConfig | None
            if host.backend == "local":
                manager = local = local or LocalConfig(
                    host.name, self.shutdown_command, self.shutdown_budget,
                    self.powerdown_flag)
            elif host.backend == "xenmaster":   # its pool, and this OS's own shutdown
                pool = self.host_managers.get(host.name)
                manager = None if not isinstance(pool, XenPoolConfig) else XenMasterConfig(
                    host.name, pool, LocalConfig(host.name, self.shutdown_command,
                                                 self.shutdown_budget, self.powerdown_flag))
            else:
                manager = self.host_managers.get(host.name)
                if isinstance(manager, SshTargetConfig):  # the shutdown within its duration
                    manager = replace(manager, budget=host.shutdown_duration)
            if manager is not None:
                groups.setdefault((manager.kind, manager.name), (manager, []))[1].append(
                    host.name)
        return [(self._with_esxi(manager, names), tuple(names))
                for manager, names in groups.values()]

    def _with_esxi(self, manager: ManagerConfig, names: list[str]) -> ManagerConfig:
        if not isinstance(manager, VcenterConfig):
            return manager
        plans = {h.name: h for h in self.plan.hosts}
        esxi = tuple(replace(self.host_esxi[n], runs_vcenter=plans[n].runs_vcenter,
                             runs_agent=plans[n].runs_agent)
                     for n in names if n in self.host_esxi)
        return replace(manager, esxi=esxi) if esxi else manager


def build_slave(document: Mapping[str, Any], *, source: str,
                fail: Callable[[str, str], ConfigError],
                secret: Callable[[str, str], str],
                secrets: Callable[[str | None, str], dict[str, str]],
                path: Callable[[str | None], str | None], private: PrivateCheck,
                readable: ReadableCheck) -> SlaveConfig:
    """``[slave]`` (with its manager sections) + ``[[host]]`` of a parsed upsagent.toml as
    a :class:`SlaveConfig`.

    The callables are the native builder's: ``fail(key_path, reason)``,
    ``secret(password_file, key_path)`` reads a private password file,
    ``secrets(secrets_file, key_path)`` a private ``user = "password"`` table, ``path``
    makes a relative path relative to upsagent.toml, ``private(path, key_path, what)``
    refuses a secret file (an SSH key) others can read and ``readable(path, key_path)`` a
    file that cannot be read (a CA file, known_hosts).
    """
    r = Reader(fail)
    slave = document.get("slave", {})
    if not isinstance(slave, dict):
        raise fail("slave", f"must be a table, not {kind_of(slave)}")
    r.keys(slave, _SLAVE_KEYS, "slave")
    numbers = {key: r.number(slave, key, "slave") for key in _SLAVE_FLOAT}
    for key in ("pollfreq", "pollfreq_alert"):
        if numbers[key] is not None and not numbers[key]:
            raise fail(f"slave.{key}", "must be above 0")
    table = secrets(path(r.text(slave, "secrets_file", "slave")), "slave.secrets_file")
    raw_monitors = slave.get("monitor", [])
    if not isinstance(raw_monitors, list):
        raise fail("slave.monitor", "must be an array of tables: write [[slave.monitor]]")
    monitors = tuple(_monitor(r, item, f"slave.monitor[{i + 1}]", table, secret, path)
                     for i, item in enumerate(raw_monitors))
    vcenters, xenpools, warnings = read_managers(r, slave, source=source, table=table,
                                                 secret=secret, path=path, readable=readable)
    names = [m.system for m in monitors]
    for name in names:
        if names.count(name) > 1:
            raise fail("slave.monitor", f"UPS {show(name)} is monitored twice")
    timers = [_countdown(r, item, f"slave.monitor[{i + 1}]")
              for i, item in enumerate(raw_monitors)]
    countdowns = {m.system: countdown for m, (countdown, _) in zip(monitors, timers)}
    monitors = tuple(_replace(m, delay_from_ups=warning) if warning is not None else m
                     for m, (_, warning) in zip(monitors, timers))
    agent = r.text(slave, "name", "slave") or socket.gethostname()
    minsupplies = r.whole(slave, "minsupplies", "slave")
    finaldelay = numbers["finaldelay"]
    raw_hosts = document.get("host", [])
    if not isinstance(raw_hosts, list):
        raise fail("host", "must be an array of tables: write [[host]], not [host]")
    hosts = tuple(_host(r, item, f"host[{i + 1}]", monitors)
                  for i, item in enumerate(raw_hosts))
    links, unused = host_managers(r, raw_hosts, hosts, source=source, vcenters=vcenters,
                                  pools=xenpools, table=table, secret=secret, path=path,
                                  private=private, readable=readable)
    esxi, esxi_warnings = host_esxi(r, raw_hosts, hosts, source=source, table=table,
                                    secret=secret, path=path, readable=readable)
    if hosts:
        _own_host_settings(hosts, minsupplies, finaldelay, fail)
        plan = Plan(hosts=hosts, name=agent)
    else:
        plan = upsmon_plan(((m.system, m.power_value, "primary" if m.primary else "secondary")
                            for m in monitors), min_supplies=1 if minsupplies is None
                           else minsupplies, final_delay=5.0 if finaldelay is None
                           else finaldelay, name=agent)
    ups = tuple(UpsPlan(m.system, "primary" if m.primary else "secondary",
                        countdowns[m.system]) for m in monitors)
    settings = {"deadtime": numbers["deadtime"], "hostsync": numbers["hostsync"],
                "nocommwarntime": numbers["nocommwarntime"],
                "rbwarntime": numbers["rbwarntime"], "poll": numbers["pollfreq_alert"],
                "runtime_margin": r.share(slave, "runtime_margin", "slave")}
    notify = _notify(r, slave)
    plan = _replace(plan, ups=ups, notify_messages=dict(notify.messages),
                    **{k: v for k, v in settings.items() if v is not None})
    extra: dict[str, Any] = {
        "poll_freq": numbers["pollfreq"], "poll_freq_alert": numbers["pollfreq_alert"],
        "shutdown_budget": numbers["shutdown_budget"],
        "notify_budget": numbers["notify_budget"],
        "dry_run": r.flag(slave, "dry_run", "slave"),
        "shutdown_command": r.argv(slave, "shutdown_command", "slave"),
        "powerdown_flag": path(r.text(slave, "powerdown_flag", "slave")),
        "state_file": path(r.text(slave, "state_file", "slave"))
    }
    status_socket = (None if slave.get("status_socket") == "" else
                     path(r.text(slave, "status_socket", "slave")) or DEFAULT_STATUS_SOCKET)
    return SlaveConfig(plan=plan, monitors=monitors, notify=notify, source=source,
                       vcenters=vcenters, xenpools=xenpools, host_managers=links,
                       host_esxi=esxi, warnings=(*warnings, *esxi_warnings, *unused),
                       status_socket=status_socket,
                       **{k: v for k, v in extra.items() if v is not None})


def _own_host_settings(hosts: tuple[HostPlan, ...], minsupplies: int | None,
                       finaldelay: float | None,
                       fail: Callable[[str, str], ConfigError]) -> None:
    """With ``[[host]]`` tables, ``minsupplies``/``finaldelay`` of ``[slave]`` are not used
    (the agent's own host has ``min_supplies``/``shutdown_delay``): refuse them unless they
    say what that host says, rather than ignore a safety setting silently."""
    local = next((i for i, h in enumerate(hosts) if h.traits.agent), None)
    for key, value, name in (("minsupplies", minsupplies, "min_supplies"),
                             ("finaldelay", finaldelay, "shutdown_delay")):
        if value is None:
            continue
        if local is None:
            raise fail(f"slave.{key}", f"applies to the agent's own host, and with [[host]] "
                       "tables that is the one with backend \"local\" (or \"xenmaster\"), "
                       f"which this file does not have: each [[host]] has its own {name}; "
                       f"remove {key} from [slave]")
        own = getattr(hosts[local], name)
        if own != value:
            raise fail(f"slave.{key}", f"is {value:g}, but with [[host]] tables the agent's "
                       f"own host, host[{local + 1}] ({show(hosts[local].name)}), has "
                       f"{name} = {own:g}, and that is what counts: write {name} = "
                       f"{value:g} in host[{local + 1}] and remove {key} from [slave]")


def _replace(value: _T, **changes: Any) -> _T:
    from dataclasses import replace
    return replace(value, **changes)  # type: ignore[type-var]


def _monitor(r: Reader, item: object, where: str, table: dict[str, str],
             secret: Callable[[str, str], str],
             path: Callable[[str | None], str | None]) -> MonitorConfig:
    if not isinstance(item, dict):
        raise r.fail(where, f"must be a table, not {kind_of(item)}")
    r.keys(item, _MONITOR_KEYS, where)
    system = r.text(item, "ups", where, required=True)
    assert system is not None
    try:
        if not split_name(system).ups:
            raise BadTarget(system)
    except (BadTarget, ValueError):
        raise r.fail(f"{where}.ups", f"{show(system)} is not name@host[:port]") from None
    user = r.text(item, "user", where, required=True)
    assert user is not None
    password = r.password(item, where, user, table, secret, path)
    assert password is not None
    role = (r.text(item, "role", where) or "secondary").lower()
    if role not in ("primary", "secondary", "master", "slave"):
        raise r.fail(f"{where}.role", f"unknown role {show(role)} (primary or secondary)")
    tls = item.get("tls", {})
    if not isinstance(tls, dict):
        raise r.fail(f"{where}.tls", f"must be a table, not {kind_of(tls)}")
    r.keys(tls, _TLS_KEYS, f"{where}.tls")
    flags = {k: r.flag(tls, k, f"{where}.tls") for k in ("starttls", "required", "verify")}
    options = TlsOptions(**{k: v for k, v in flags.items() if v is not None},
                         ca_path=path(r.text(tls, "ca_path", f"{where}.tls")),
                         hostname=r.text(tls, "hostname", f"{where}.tls"))
    if options.verify and options.ca_path is None:
        raise r.fail(f"{where}.tls.verify", "certificate verification needs ca_path")
    value = r.whole(item, "power_value", where)
    watch = r.flag(item, "watch", where)
    return MonitorConfig(system, user, password, role in ("primary", "master"),
                         1 if value is None else value, True if watch is None else watch,
                         options)


def _countdown(r: Reader, item: Mapping[str, Any],
               where: str) -> tuple[UpsCountdown | None, float | None]:
    """The configured countdown, or the warning period whose delay the UPS will give."""
    warning = r.number(item, "warning_period", where)
    delay = r.number(item, "shutdown_delay", where)
    if delay is None:
        return None, warning
    return UpsCountdown(warning or 0.0, delay), None


def _host(r: Reader, item: object, where: str,
          monitors: tuple[MonitorConfig, ...]) -> HostPlan:
    if not isinstance(item, dict):
        raise r.fail(where, f"must be a table, not {kind_of(item)}")
    r.keys(item, _HOST_KEYS, where)
    name = r.text(item, "name", where, required=True)
    backend = r.text(item, "backend", where) or "local"
    if backend not in TRAITS:
        alias = _BACKEND_ALIASES.get(backend.lower())
        hint = (f" (did you mean {show(alias)}?)" if alias else
                suggest(backend, tuple(TRAITS)))
        raise r.fail(f"{where}.backend", f"unknown backend {show(backend)}{hint}; the "
                                         f"kinds are {', '.join(TRAITS)}")
    supplies = _supplies(r, item, where, monitors)
    values: dict[str, Any] = {k: r.number(item, k, where) for k in _HOST_FLOAT}
    values["min_supplies"] = r.whole(item, "min_supplies", where)
    values["command"] = r.argv(item, "command", where)
    values["message"] = r.text(item, "message", where)
    values["cluster"] = r.text(item, "cluster", where)
    if values["cluster"] is None and backend == "xen" and isinstance(item.get("pool"), str):
        # the hosts of one pool evacuate one after the other (R5), as the scenario shows
        values["cluster"] = f"xenpool:{item['pool']}"
    values["is_pool_master"] = r.flag(item, "pool_master", where)
    if backend == "xenmaster":
        if values["is_pool_master"] is False:
            raise r.fail(f"{where}.pool_master", "a xenmaster host is the pool master the "
                         "agent runs on; a pool member is a \"xen\" host (write backend = "
                         "\"xen\", or remove pool_master)")
        values["is_pool_master"] = True
    values["power_on_vms"] = r.flag(item, "power_on_vms", where)
    values["runs_vcenter"] = r.flag(item, "runs_vcenter", where)
    values["runs_agent"] = r.flag(item, "runs_agent", where)
    if backend == "vsphere" and isinstance(item.get("vcenter"), str):
        values["manager"] = item["vcenter"]
    if "vm_groups" in item:
        try:
            values["vm_groups"] = read_vm_groups(item["vm_groups"])
        except VmGroupError as exc:
            raise r.fail(f"{where}.{exc.key}", exc.reason) from None
    explicit = {k: v for k, v in values.items() if v is not None}
    critical = r.flag(item, "shutdown_on_critical", where)
    known = {f.name for f in fields(HostPlan)}
    assert set(explicit) <= known
    return HostPlan(name=name or "", backend=backend, powered_by=supplies,
                    shutdown_on_critical=critical, **explicit)


def _supplies(r: Reader, item: Mapping[str, Any], where: str,
              monitors: tuple[MonitorConfig, ...]) -> tuple[Supply, ...]:
    if "powered_by" not in item:
        return tuple(Supply(m.system, m.power_value) for m in monitors)
    value = item["powered_by"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise r.fail(f"{where}.powered_by", "must be a list of UPS names or "
                                            "{ ups = ..., power_value = ... } tables")
    supplies = []
    for i, entry in enumerate(value):
        at = f"{where}.powered_by[{i + 1}]"
        if isinstance(entry, str):
            supplies.append(Supply(entry))
            continue
        if not isinstance(entry, dict):
            raise r.fail(at, f"must be a UPS name or a table, not {kind_of(entry)}")
        r.keys(entry, ("ups", "power_value"), at)
        ups = r.text(entry, "ups", at, required=True)
        power = r.whole(entry, "power_value", at)
        supplies.append(Supply(ups or "", 1 if power is None else power))
    return tuple(supplies)


def _notify(r: Reader, slave: Mapping[str, Any]) -> NotifySettings:
    command = r.argv(slave, "notify_command", "slave")
    messages: list[tuple[str, str]] = []
    raw = slave.get("notify_messages", {})
    if not isinstance(raw, dict):
        raise r.fail("slave.notify_messages", "must be a table (TYPE = \"text\")")
    for ntype, text in raw.items():
        at = f"slave.notify_messages.{ntype}"
        if ntype.upper() not in NOTIFY_TYPES:
            raise r.fail(at, f"unknown notification type{suggest(ntype.upper(), NOTIFY_TYPES)}")
        if not isinstance(text, str):
            raise r.fail(at, f"must be a string, not {kind_of(text)}")
        problem = message_problem(text)
        if problem:
            raise r.fail(at, problem)
        messages.append((ntype.upper(), text))
    flags: list[tuple[str, frozenset[str]]] = []
    raw = slave.get("notify_flags", {})
    if not isinstance(raw, dict):
        raise r.fail("slave.notify_flags", "must be a table (TYPE = [\"SYSLOG\", ...])")
    for ntype, values in raw.items():
        at = f"slave.notify_flags.{ntype}"
        if ntype.upper() not in NOTIFY_TYPES:
            raise r.fail(at, f"unknown notification type{suggest(ntype.upper(), NOTIFY_TYPES)}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise r.fail(at, "must be a list of flags (SYSLOG, WALL, EXEC, IGNORE)")
        for flag in values:
            if flag not in FLAGS:
                raise r.fail(at, f"unknown flag {show(flag)}{suggest(flag, FLAGS)}")
        flags.append((ntype.upper(), frozenset(values)))
    return NotifySettings(ArgvLine(" ".join(command), command) if command else None,
                          tuple(messages), tuple(flags))


def from_upsmon(conf: UpsmonConf, *, state_file: str = DEFAULT_STATE_FILE,
                status_socket: str | None = DEFAULT_STATUS_SOCKET,
                name: str | None = None) -> SlaveConfig:
    """The slave configuration that behaves as upsmon with ``conf`` (one local host)."""
    monitors = tuple(MonitorConfig(
        m.system, m.user, m.password, m.primary, m.power_value, True,
        _upsmon_tls(conf, m.host)) for m in conf.monitors)
    plan = upsmon_plan(((m.system, m.power_value, "primary" if m.primary else "secondary")
                        for m in conf.monitors), min_supplies=conf.min_supplies,
                       final_delay=float(conf.final_delay), deadtime=float(conf.dead_time),
                       hostsync=float(conf.host_sync), name=name or socket.gethostname())
    plan = _replace(plan, nocommwarntime=float(conf.nocomm_warn_time),
                    rbwarntime=float(conf.rb_warn_time), poll=float(conf.poll_freq_alert),
                    notify_messages=dict(conf.notify.messages))
    shutdown = (conf.shutdown_cmd.argv() if conf.shutdown_cmd is not None
                else DEFAULT_SHUTDOWN_COMMAND)
    return SlaveConfig(plan=plan, monitors=monitors, state_file=state_file,
                       status_socket=status_socket, poll_freq=float(conf.poll_freq),
                       poll_freq_alert=float(conf.poll_freq_alert),
                       shutdown_command=tuple(shutdown), powerdown_flag=conf.powerdown_flag,
                       notify=conf.notify, source=conf.path, warnings=tuple(conf.warnings),
                       origin="upsmon.conf")


def _upsmon_tls(conf: UpsmonConf, host: str) -> TlsOptions:
    rule = conf.tls.for_host(host)
    verify = rule.verify if rule else conf.tls.verify
    force = rule.force_ssl if rule else conf.tls.force_ssl
    return TlsOptions(True, force or verify, verify, conf.tls.cert_path,
                      rule.cert_name if rule else None)


def load_upsmon_dir(directory: str | os.PathLike[str], **options: Any) -> SlaveConfig:
    """``upsmon.conf`` of NUT's configuration ``directory`` as a :class:`SlaveConfig`."""
    from upsagent.config.upsmonconf import load_upsmon_conf
    return from_upsmon(load_upsmon_conf(os.path.join(os.fspath(directory), "upsmon.conf")),
                       **options)
