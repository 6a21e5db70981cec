# -*- test-case-name: tests.test_config -*-
"""Render a :class:`~upsagent.config.schema.Config` as upsagent.toml text.

Written by hand (no TOML writer dependency).  The rules that make the output load back into
an equal Config (:func:`upsagent.config.native.loads_toml`):

* strings are TOML basic strings: ``\\`` and ``"`` escaped, control characters written as
  ``\\b \\t \\n \\f \\r`` or ``\\uXXXX``, everything else (Unicode included) as is;
* keys are bare when they are ``A-Za-z0-9_-`` only, quoted otherwise (``"override.ups.mfr"``);
* ``[master]`` always carries ``listen``; other settings only when they differ from the
  default; the same for ``[master.shutdown]``, written only when some setting differs;
* a UPS's ``port`` is written in its ``[[ups]]`` table and left out of ``[ups.options]``
  (the loader puts it back first); ``confdir`` is written when set, so that relative
  dummy-ups data files keep pointing at the same directory;
* a user's actions are written as ``upsmon = "primary"`` (login, master, fsd) or
  ``"secondary"`` (login) plus the remaining ``actions``; passwords are written inline, so the
  output starts with a comment saying it holds secrets and must be saved with mode 0600;
* the slave part (:class:`~upsagent.config.slaveconf.SlaveConfig`) is written as
  ``[slave]`` with its ``[[slave.monitor]]``, ``[[slave.vcenter]]`` and
  ``[[slave.xenpool]]`` tables (passwords inline, as the users'); ``[[host]]`` tables only
  when the plan is not the upsmon-like default (one local host fed by every monitored
  UPS), each with the ``vcenter`` or ``pool`` it names or its ``[host.ssh]`` table.
  upsmon.conf's shell lines become ``["/bin/sh", "-c", ...]`` argument lists.
"""

from __future__ import annotations

import re
import socket
from dataclasses import fields

from upsagent.config.schema import (
    Config, ListenAddress, MasterConfig, ShutdownConfig, UpsConfig, UserConfig)
from upsagent.config.managers import ApiManagerConfig, SshTargetConfig, VcenterConfig
from upsagent.config.slavecheck import upsmon_like
from upsagent.config.slaveconf import (
    DEFAULT_STATE_FILE, DEFAULT_STATUS_SOCKET, ArgvLine, SlaveConfig, TlsOptions)
from upsagent.policy.plan import HostPlan, Plan

__all__ = ["toml_key", "toml_string", "to_toml"]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')
_PRIMARY = frozenset({"login", "master", "fsd"})
#: the [master] settings in the order they are written (listen first, always)
_MASTER_ORDER = ("maxconn", "maxage", "tracking_delay", "certfile", "keyfile", "idle_timeout",
                 "max_line_length", "max_send_buffer", "max_conn_per_address",
                 "reserved_monitor_slots", "powerdown_flag", "snmp_traps", "allow_no_device",
                 "disable_weak_ssl", "statepath")


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _ESCAPES.get(char) or f"\\u{ord(char):04X}"
    return '"' + _NEEDS_ESCAPE.sub(escape, value) + '"'


def toml_key(key: str) -> str:
    """``key`` bare if TOML allows it, quoted otherwise."""
    return key if _BARE.fullmatch(key) else toml_string(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _listen(address: ListenAddress) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


def to_toml(config: Config, *, comment: str | None = None) -> str:
    """The TOML text of ``config``; ``comment`` lines go first, as ``#`` comments."""
    master = config.master
    out: list[str] = [f"# {line}".rstrip() for line in (comment or "").splitlines()]
    if any(user.password is not None for user in master.users) or config.slave:
        out += ["# This file contains passwords: save it with mode 0600 (chmod 600 FILE),",
                "# or 0640 with a group that only upsagent belongs to."]
    if out:
        out.append("")
    if master.ups or master.users or config.slave is None:
        out += _master(master)
        for ups in master.ups:
            out += [""] + _ups(ups)
        for user in master.users:
            out += [""] + _user(user)
        out.append("")
    if config.slave is not None:
        out += _slave(config.slave)
    return "\n".join(out).rstrip("\n") + "\n"


def _slave(slave: SlaveConfig) -> list[str]:
    plan = slave.plan
    lines = ["[slave]"]
    if plan.name != socket.gethostname():
        lines.append(f"name = {_value(plan.name)}")
    if slave.state_file != DEFAULT_STATE_FILE:
        lines.append(f"state_file = {_value(slave.state_file)}")
    if slave.status_socket != DEFAULT_STATUS_SOCKET:
        lines.append(f"status_socket = {_value(slave.status_socket or '')}")
    defaults = Plan()
    for key, value in (("deadtime", plan.deadtime), ("hostsync", plan.hostsync),
                       ("nocommwarntime", plan.nocommwarntime),
                       ("rbwarntime", plan.rbwarntime),
                       ("runtime_margin", plan.runtime_margin)):
        if value != getattr(defaults, key):
            lines.append(f"{key} = {_value(value)}")
    lines.append(f"pollfreq = {_value(slave.poll_freq)}")
    lines.append(f"pollfreq_alert = {_value(slave.poll_freq_alert)}")
    simple = upsmon_like(slave)
    if simple is not None:
        lines.append(f"minsupplies = {simple.min_supplies}")
        lines.append(f"finaldelay = {_value(simple.shutdown_delay)}")
    if slave.dry_run:
        lines.append("dry_run = true")
    lines.append(f"shutdown_command = {_value(list(slave.shutdown_command))}")
    if slave.powerdown_flag is not None:
        lines.append(f"powerdown_flag = {_value(slave.powerdown_flag)}")
    command = slave.notify.command
    if command is not None:
        words = command.words if isinstance(command, ArgvLine) else command.argv("")[:-1]
        lines.append(f"notify_command = {_value(list(words))}")
    if slave.notify.messages:
        lines += ["", "[slave.notify_messages]"]
        lines += [f"{key} = {_value(text)}" for key, text in slave.notify.messages]
    if slave.notify.flags:
        lines += ["", "[slave.notify_flags]"]
        lines += [f"{key} = {_value(sorted(flags))}" for key, flags in slave.notify.flags]
    countdowns = {ups.name: ups.countdown for ups in plan.ups}
    for monitor in slave.monitors:
        lines += ["", "[[slave.monitor]]", f"ups = {_value(monitor.system)}",
                  f"user = {_value(monitor.user)}", f"password = {_value(monitor.password)}",
                  f"role = {_value('primary' if monitor.primary else 'secondary')}"]
        if monitor.power_value != 1:
            lines.append(f"power_value = {monitor.power_value}")
        if not monitor.watch:
            lines.append("watch = false")
        countdown = countdowns.get(monitor.system)
        if countdown is not None:
            lines.append(f"warning_period = {_value(countdown.warning_period)}")
            lines.append(f"shutdown_delay = {_value(countdown.shutdown_delay)}")
        elif monitor.delay_from_ups is not None:   # the delay is read from the UPS
            lines.append(f"warning_period = {_value(monitor.delay_from_ups)}")
        if monitor.tls != TlsOptions():
            lines.append("[slave.monitor.tls]")
            for f in fields(TlsOptions):
                value = getattr(monitor.tls, f.name)
                if value != f.default:
                    lines.append(f"{f.name} = {_value(value)}")
    for section in (*slave.vcenters, *slave.xenpools):
        lines += [""] + _api_manager(section)
    if simple is None:
        for host in plan.hosts:
            lines += [""] + _host(host)
            manager = slave.host_managers.get(host.name)
            if isinstance(manager, ApiManagerConfig):
                lines.append(f"{manager.host_key} = {_value(manager.name)}")
            elif isinstance(manager, SshTargetConfig):
                lines += _ssh(manager)
            esxi = slave.host_esxi.get(host.name)
            if esxi is not None:
                lines += ["[host.esxi]"] + _api_manager(esxi)[2:]
    return lines


def _api_manager(manager: ApiManagerConfig) -> list[str]:
    lines = [f"[[{manager.section}]]", f"name = {_value(manager.name)}",
             f"url = {_value(manager.url)}", f"user = {_value(manager.user)}",
             f"password = {_value(manager.password)}"]
    for key in ("ca_file", "thumbprint"):
        value = getattr(manager, key)
        if value is not None:
            lines.append(f"{key} = {_value(value)}")
    if manager.insecure:
        lines.append("insecure = true")
    if isinstance(manager, VcenterConfig):
        for key in ("vcenter_vm", "agent_vm"):
            value = getattr(manager, key)
            if value is not None:
                lines.append(f"{key} = {_value(value)}")
        if manager.last_vms:
            lines.append(f"last_vms = {_value(list(manager.last_vms))}")
    return lines


def _ssh(target: SshTargetConfig) -> list[str]:
    lines = ["[host.ssh]", f"address = {_value(target.address)}"]
    if target.port != 22:
        lines.append(f"port = {target.port}")
    lines += [f"user = {_value(target.user)}", f"known_hosts = {_value(target.known_hosts)}"]
    if target.key_file is not None:
        lines.append(f"key_file = {_value(target.key_file)}")
    if target.password is not None:
        lines.append(f"password = {_value(target.password)}")
    lines.append(f"command = {_value(list(target.command))}")
    return lines


def _host(host: HostPlan) -> list[str]:
    lines = ["[[host]]", f"name = {_value(host.name)}", f"backend = {_value(host.backend)}",
             "powered_by = [" + ", ".join(
                 f"{{ ups = {_value(s.ups)}, power_value = {s.power_value} }}"
                 for s in host.powered_by) + "]"]
    for f in fields(HostPlan):
        # manager: from the host's vcenter, written with the manager sections
        if f.name in ("name", "backend", "powered_by", "manager"):
            continue
        value = getattr(host, f.name)
        if f.name == "vm_groups" and value:
            lines.append("vm_groups = [" + ", ".join(
                f"{{ patterns = {_value(list(g.patterns))}, timeout = {_value(g.timeout)} }}"
                for g in value) + "]")
            continue
        if value != f.default:
            key = "pool_master" if f.name == "is_pool_master" else f.name
            lines.append(f"{key} = {_value(list(value) if isinstance(value, tuple) else value)}")
    return lines


def _master(master: MasterConfig) -> list[str]:
    defaults = {f.name: f.default for f in fields(MasterConfig)}
    lines = ["[master]", f"listen = {_value([_listen(a) for a in master.listen])}"]
    for key in _MASTER_ORDER:
        value = getattr(master, key)
        if value != defaults[key]:
            lines.append(f"{key} = {_value(value)}")
    if master.shutdown != ShutdownConfig():
        lines += ["", "[master.shutdown]"]
        for f in fields(ShutdownConfig):
            value = getattr(master.shutdown, f.name)
            if value != f.default:
                lines.append(f"{f.name} = {_value(value)}")
    return lines


def _ups(ups: UpsConfig) -> list[str]:
    lines = ["[[ups]]", f"name = {_value(ups.name)}", f"driver = {_value(ups.driver)}"]
    port = ups.port if ups.port is not None else ups.options.get("port")
    if port is not None:
        lines.append(f"port = {_value(port)}")
    if ups.desc is not None:
        lines.append(f"desc = {_value(ups.desc)}")
    if ups.aliases:
        lines.append(f"aliases = {_value(ups.aliases)}")
    if ups.flags:
        lines.append(f"flags = {_value(ups.flags)}")
    if ups.confdir is not None:
        lines.append(f"confdir = {_value(ups.confdir)}")
    for key in ("lowbatt_charge", "lowbatt_runtime"):
        if getattr(ups, key) is not None:
            lines.append(f"{key} = {_value(getattr(ups, key))}")
    if ups.serve != "auto":
        lines.append(f"serve = {_value(ups.serve)}")
    options = {key: value for key, value in ups.options.items() if key != "port"}
    if options:
        lines.append("[ups.options]")
        lines += [f"{toml_key(key)} = {_value(value)}" for key, value in options.items()]
    return lines


def _user(user: UserConfig) -> list[str]:
    lines = ["[[user]]", f"name = {_value(user.name)}"]
    if user.password is not None:
        lines.append(f"password = {_value(user.password)}")
    actions = set(user.actions)
    if _PRIMARY <= actions:
        lines.append('upsmon = "primary"')
        actions -= _PRIMARY
    elif "login" in actions:
        lines.append('upsmon = "secondary"')
        actions.discard("login")
    if actions:
        lines.append(f"actions = {_value(sorted(actions))}")
    if user.instcmds:
        lines.append(f"instcmds = {_value(sorted(user.instcmds))}")
    return lines
