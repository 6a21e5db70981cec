# -*- test-case-name: tests.test_managers -*-
"""The managers the agent's backends speak to, as frozen records: one backend is built per
manager (:meth:`upsagent.hypervisors.base.Backend.build`), not one per kind.

* ``[[slave.vcenter]]`` (:class:`VcenterConfig`): one per vCenter, or per ESXi host managed
  directly; a ``vsphere`` host names it with ``vcenter = "<name>"``.
* ``[[slave.xenpool]]`` (:class:`XenPoolConfig`): one per XenServer / XCP-ng pool (``url``
  may name any member); a ``xen`` host names it with ``pool = "<name>"``, and so does a
  ``xenmaster`` host (the pool master the agent runs on, :class:`XenMasterConfig`: its
  pool's session and this OS's shutdown settings).
* ``[host.ssh]`` (:class:`SshTargetConfig`): an ``ssh`` host is its own manager.
* :class:`LocalConfig`: this OS, from ``[slave]``'s shutdown settings (no section of its
  own); the agent's local host uses it.

Rules (upsagent.toml(5) documents every key); an error names the key path and the reason:

* ``name``, ``url`` and ``user`` are required; names are unique within their section; a
  host naming a manager that is not defined, a ``vcenter`` on a host that is not
  ``vsphere`` (or ``pool`` on one that is not ``xen`` or ``xenmaster``, ``[host.ssh]`` on one that is not
  ``ssh``) is refused.
* ``url`` is ``https://host[:port][/path]`` (the password is sent over it) and carries no
  user or password of its own.
* The manager's certificate is checked against ``ca_file`` (a PEM file, readable), or
  ``thumbprint`` (``SHA256:`` and the certificate's SHA-256 fingerprint in hex), or, with
  neither, the system's CA certificates.  ``insecure = true`` turns the check off: only
  when written, never with ``ca_file`` or ``thumbprint``, and with a warning at every load
  (check-config prints it, the agent logs it).
* ``[[slave.vcenter]]`` only: ``vcenter_vm`` and ``agent_vm`` (the names of the vCenter's
  own VM and of the VM this agent runs in, when the backend is not to find them itself)
  and ``last_vms`` (VM name patterns, shell-style: the infrastructure VMs a host's VM
  shutdown stops after the others); see :mod:`upsagent.hypervisors.vsphere_vms`.
* The password comes from exactly one place (:meth:`~upsagent.config.reader.Reader.password`:
  ``password``, ``password_file`` or a ``[slave].secrets_file`` entry keyed by the user),
  and secret files others can read are refused, as for every password of the file.
* ``[host.esxi]`` (:class:`EsxiConfig`, a ``vsphere`` host only): the host's own endpoint
  for the direct ESXi session the backend falls back to once vCenter is gone: ``url``
  (default ``https://<host name>/sdk``), ``user`` (required), the password and the
  certificate keys with the same rules as ``[[slave.vcenter]]`` (:func:`host_esxi`).
* ``[host.ssh]``: ``address`` and ``user`` (required), ``port`` (22), ``key_file`` (a
  private file) or a password, ``known_hosts`` (required, readable: the host's key is
  checked against it, never trusted on first use), ``command`` (the argument list run on
  the remote machine, default :data:`~upsagent.policy.plan.DEFAULT_SHUTDOWN_COMMAND`; a
  string is refused).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union
from urllib.parse import urlsplit

from upsagent.config.reader import Reader, kind_of
from upsagent.config.validate import show
from upsagent.policy.plan import DEFAULT_SHUTDOWN_COMMAND, HostPlan

__all__ = ["ApiManagerConfig", "EsxiConfig", "LocalConfig", "MANAGED_KINDS", "ManagerConfig",
           "SshTargetConfig", "VcenterConfig", "XenMasterConfig", "XenPoolConfig", "host_esxi",
           "host_managers", "read_managers"]

#: the backend kinds whose hosts have a manager record (the agent builds one backend each)
MANAGED_KINDS = ("local", "ssh", "vsphere", "xen", "xenmaster")

_API_KEYS = ("name", "url", "user", "password", "password_file", "ca_file", "thumbprint",
             "insecure")
_VCENTER_KEYS = ("vcenter_vm", "agent_vm", "last_vms")
_ESXI_KEYS = tuple(k for k in _API_KEYS if k != "name")
_SSH_KEYS = ("address", "port", "user", "key_file", "password", "password_file",
             "known_hosts", "command")
_THUMBPRINT = re.compile(r"SHA256:(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class LocalConfig:
    """This OS: the shutdown command and POWERDOWNFLAG of ``[slave]``; ``name`` is the
    agent's own host."""

    kind: ClassVar[str] = "local"

    name: str
    shutdown_command: tuple[str, ...] = DEFAULT_SHUTDOWN_COMMAND
    shutdown_budget: float = 30.0
    powerdown_flag: str | None = None


@dataclass(frozen=True)
class ApiManagerConfig:
    """A manager reached over HTTPS with a user and password: a vCenter, a pool.

    The certificate is checked against ``ca_file``, else ``thumbprint``, else the system's
    CA certificates; ``insecure``: not checked at all (only when written, warned about).
    """

    kind: ClassVar[str] = ""
    #: the upsagent.toml section and the [[host]] key that names one
    section: ClassVar[str] = ""
    host_key: ClassVar[str] = ""

    name: str
    url: str
    user: str
    password: str = field(repr=False)
    ca_file: str | None = None
    thumbprint: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class EsxiConfig(ApiManagerConfig):
    """``[host.esxi]``: the direct ESXi session (``apiType`` HostAgent) to one ``vsphere``
    host, ``name``, as vCenter names it.  ``runs_vcenter`` / ``runs_agent`` are the host's
    marks of the same names, not keys of this table:
    :meth:`~upsagent.config.slaveconf.SlaveConfig.managers` copies them in."""

    kind: ClassVar[str] = "esxi"
    section: ClassVar[str] = "host.esxi"
    host_key: ClassVar[str] = "esxi"

    runs_vcenter: bool = False
    runs_agent: bool = False


@dataclass(frozen=True)
class VcenterConfig(ApiManagerConfig):
    """``[[slave.vcenter]]``: a vCenter, or an ESXi host managed directly.  ``esxi``: the
    ``[host.esxi]`` of the hosts that name it (set by
    :meth:`~upsagent.config.slaveconf.SlaveConfig.managers`, not a key)."""

    kind: ClassVar[str] = "vsphere"
    section: ClassVar[str] = "slave.vcenter"
    host_key: ClassVar[str] = "vcenter"

    #: the vCenter's own VM, by name (None: found by its guest addresses)
    vcenter_vm: str | None = None
    #: the VM this agent runs in, by name (None: found by this machine's BIOS UUID / MACs)
    agent_vm: str | None = None
    #: infrastructure VMs (name patterns) stopped after the others of their host
    last_vms: tuple[str, ...] = ()
    esxi: tuple[EsxiConfig, ...] = ()


@dataclass(frozen=True)
class XenPoolConfig(ApiManagerConfig):
    """``[[slave.xenpool]]``: a XenServer / XCP-ng pool, reached through any member."""

    kind: ClassVar[str] = "xen"
    section: ClassVar[str] = "slave.xenpool"
    host_key: ClassVar[str] = "pool"


@dataclass(frozen=True)
class SshTargetConfig:
    """``[host.ssh]``: how to reach one ``ssh`` host (``name``) and what to run there.

    ``key_file`` or ``password`` authenticates; ``known_hosts`` holds the host's key, which
    is checked, never trusted on first use; ``command`` is run on the remote machine.
    ``budget``: seconds for the whole shutdown (login and command); not a key of its own:
    :meth:`~upsagent.config.slaveconf.SlaveConfig.managers` sets it to the host's
    ``shutdown_duration``.
    """

    kind: ClassVar[str] = "ssh"

    name: str
    address: str
    user: str
    known_hosts: str
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int = 22
    command: tuple[str, ...] = DEFAULT_SHUTDOWN_COMMAND
    budget: float = 30.0


@dataclass(frozen=True)
class XenMasterConfig:
    """A ``xenmaster`` host: the XenServer / XCP-ng pool master the agent runs on (in its
    dom0).  ``name`` is the host (its name-label in the pool), ``pool`` the
    ``[[slave.xenpool]]`` it names (its VMs are stopped through it), ``local`` this OS's
    shutdown settings of ``[slave]`` (the host's own shutdown)."""

    kind: ClassVar[str] = "xenmaster"

    name: str
    pool: XenPoolConfig
    local: LocalConfig


#: what a backend is built from (:meth:`upsagent.hypervisors.base.Backend.build`)
ManagerConfig = Union[LocalConfig, VcenterConfig, XenPoolConfig, SshTargetConfig,
                      XenMasterConfig]

_A = TypeVar("_A", bound=ApiManagerConfig)

#: (path, key path, what it holds): refuses a secret file others can read
PrivateCheck = Callable[[str, str, str], None]
#: (path, key path): refuses a file the agent cannot read
ReadableCheck = Callable[[str, str], None]


@dataclass(frozen=True)
class _Files:
    """The builder's file handling: passwords, secrets entries, paths, checks."""

    table: Mapping[str, str]
    secret: Callable[[str, str], str]
    path: Callable[[str | None], str | None]
    private: PrivateCheck
    readable: ReadableCheck


def read_managers(r: Reader, slave: Mapping[str, Any], *, source: str,
                  table: Mapping[str, str], secret: Callable[[str, str], str],
                  path: Callable[[str | None], str | None], readable: ReadableCheck,
                  ) -> tuple[tuple[VcenterConfig, ...], tuple[XenPoolConfig, ...], list[str]]:
    """``[[slave.vcenter]]`` and ``[[slave.xenpool]]`` of the ``[slave]`` table, and the
    warnings they give (``insecure``)."""
    files = _Files(table, secret, path, lambda *_: None, readable)
    warnings: list[str] = []
    vcenters = _api_managers(r, slave, "vcenter", VcenterConfig, files, source, warnings)
    pools = _api_managers(r, slave, "xenpool", XenPoolConfig, files, source, warnings)
    return vcenters, pools, warnings


def _api_managers(r: Reader, slave: Mapping[str, Any], key: str, cls: type[_A],
                  files: _Files, source: str, warnings: list[str]) -> tuple[_A, ...]:
    raw = slave.get(key, [])
    if not isinstance(raw, list):
        raise r.fail(f"slave.{key}", f"must be an array of tables: write [[slave.{key}]]")
    found: list[_A] = []
    for i, item in enumerate(raw):
        where = f"slave.{key}[{i + 1}]"
        manager = _api_manager(r, r.table(item, where), where, cls, files)
        for j, other in enumerate(found):
            if other.name == manager.name:
                raise r.fail(f"{where}.name", f"{show(manager.name)} is already the name of "
                                              f"slave.{key}[{j + 1}]")
        if manager.insecure:
            warnings.append(_insecure_warning(source, where, key, manager))
        found.append(manager)
    return tuple(found)


def _insecure_warning(source: str, where: str, what: str, manager: ApiManagerConfig) -> str:
    return (f"{source}: {where}.insecure: the certificate of {what} {show(manager.name)} "
            f"({manager.url}) is not verified: anyone on the network path can pose as it "
            "and take its password; set ca_file or thumbprint instead")


def host_esxi(r: Reader, raw_hosts: Sequence[Mapping[str, Any]], hosts: Sequence[HostPlan],
              *, source: str, table: Mapping[str, str], secret: Callable[[str, str], str],
              path: Callable[[str | None], str | None], readable: ReadableCheck,
              ) -> tuple[dict[str, EsxiConfig], list[str]]:
    """Host name -> its ``[host.esxi]`` (``vsphere`` hosts only), and the warnings they
    give (``insecure``).  ``url`` defaults to ``https://<host name>/sdk``; the rest is read
    as a ``[[slave.vcenter]]`` is, the key paths named ``host[N].esxi.<key>``."""
    files = _Files(table, secret, path, lambda *_: None, readable)
    found: dict[str, EsxiConfig] = {}
    warnings: list[str] = []
    for i, (item, host) in enumerate(zip(raw_hosts, hosts)):
        if "esxi" not in item:
            continue
        where = f"host[{i + 1}].esxi"
        if host.backend != "vsphere":
            raise r.fail(where, f"only a vsphere host has a direct ESXi session (this one's "
                                f"backend is {show(host.backend)})")
        raw = r.table(item["esxi"], where)
        r.keys(raw, _ESXI_KEYS, where)
        address = f"[{host.name}]" if ":" in host.name else host.name
        filled = {"name": host.name, "url": f"https://{address}/sdk", **raw}
        esxi = _api_manager(r, filled, where, EsxiConfig, files)
        if esxi.insecure:
            warnings.append(_insecure_warning(source, where, "the ESXi host", esxi))
        found[host.name] = esxi
    return found, warnings


def _api_manager(r: Reader, item: Mapping[str, Any], where: str, cls: type[_A],
                 files: _Files) -> _A:
    r.keys(item, _API_KEYS + (_VCENTER_KEYS if cls is VcenterConfig else ()), where)
    name = r.text(item, "name", where, required=True)
    url = r.text(item, "url", where, required=True)
    user = r.text(item, "user", where, required=True)
    assert name is not None and url is not None and user is not None
    _check_url(r, url, f"{where}.url")
    password = r.password(item, where, user, files.table, files.secret, files.path)
    assert password is not None
    ca_file = files.path(r.text(item, "ca_file", where))
    thumbprint = r.text(item, "thumbprint", where)
    insecure = bool(r.flag(item, "insecure", where))
    if ca_file is not None and thumbprint is not None:
        raise r.fail(f"{where}.thumbprint", "ca_file and thumbprint are both given; keep one "
                                            "(the certificate is checked against one)")
    if insecure and (ca_file is not None or thumbprint is not None):
        other = "ca_file" if ca_file is not None else "thumbprint"
        raise r.fail(f"{where}.insecure", f"insecure = true turns off the certificate check "
                                          f"that {other} sets up; keep one")
    if thumbprint is not None and not _THUMBPRINT.fullmatch(thumbprint):
        raise r.fail(f"{where}.thumbprint", f"{show(thumbprint)} is not \"SHA256:\" and the "
                                            "certificate's SHA-256 fingerprint in hex (64 "
                                            "digits, colons allowed)")
    if ca_file is not None:
        files.readable(ca_file, f"{where}.ca_file")
    if cls is VcenterConfig:
        return cls(name, url, user, password, ca_file, thumbprint, insecure,
                   **_vcenter_vms(r, item, where))
    return cls(name, url, user, password, ca_file, thumbprint, insecure)


def _vcenter_vms(r: Reader, item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``vcenter_vm``, ``agent_vm`` and ``last_vms`` of a ``[[slave.vcenter]]``."""
    values: dict[str, Any] = {}
    for key in ("vcenter_vm", "agent_vm"):
        name = r.text(item, key, where)
        if name is not None and not name.strip():
            raise r.fail(f"{where}.{key}", "must be a VM's name as vCenter shows it, not "
                                           "empty")
        values[key] = name
    raw = item.get("last_vms", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise r.fail(f"{where}.last_vms", "must be a list of VM name patterns (such as "
                                          f"[\"dns*\", \"ad?\"]), not {kind_of(raw)}")
    for i, pattern in enumerate(raw):
        if not isinstance(pattern, str) or not pattern:
            raise r.fail(f"{where}.last_vms", f"entry {i + 1} must be a non-empty VM name "
                                              f"pattern, not {pattern!r}")
    values["last_vms"] = tuple(raw)
    return values


def _check_url(r: Reader, url: str, where: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise r.fail(where, f"{show(url)} is not a URL ({exc})") from None
    if parts.scheme != "https" or not parts.hostname:
        raise r.fail(where, f"must be an https:// URL (the password is sent over it), not "
                            f"{show(url)}")
    if parts.username is not None or parts.password is not None:
        raise r.fail(where, "must not carry a user or password: write user and "
                            "password_file")
    if port == 0:
        raise r.fail(where, f"{show(url)}: port 0 is not a port")


def host_managers(r: Reader, raw_hosts: Sequence[Mapping[str, Any]],
                  hosts: Sequence[HostPlan], *, source: str,
                  vcenters: Sequence[VcenterConfig], pools: Sequence[XenPoolConfig],
                  table: Mapping[str, str], secret: Callable[[str, str], str],
                  path: Callable[[str | None], str | None], private: PrivateCheck,
                  readable: ReadableCheck,
                  ) -> tuple[dict[str, VcenterConfig | XenPoolConfig | SshTargetConfig],
                             list[str]]:
    """Host name -> the manager each ``vsphere``, ``xen`` and ``ssh`` host names (or has,
    ``[host.ssh]``), and a warning for each manager section no host names."""
    files = _Files(table, secret, path, private, readable)
    links: dict[str, VcenterConfig | XenPoolConfig | SshTargetConfig] = {}
    for i, (item, host) in enumerate(zip(raw_hosts, hosts)):
        where = f"host[{i + 1}]"
        for key, kinds in (("vcenter", ("vsphere",)), ("pool", ("xen", "xenmaster")),
                           ("ssh", ("ssh",))):
            if key in item and host.backend not in kinds:
                raise r.fail(f"{where}.{key}", f"only a {' or '.join(kinds)} host has a "
                                               f"{key} (this one's backend is "
                                               f"{show(host.backend)})")
        if host.backend == "ssh":
            raw = item.get("ssh")
            if raw is None:
                raise r.fail(f"{where}.ssh", "missing: an ssh host needs its [host.ssh] table "
                                             "(address, user, key_file or a password, "
                                             "known_hosts)")
            links[host.name] = _ssh(r, r.table(raw, f"{where}.ssh"), f"{where}.ssh",
                                    host.name, files)
        elif host.backend == "vsphere":
            links[host.name] = _named(r, item, where, vcenters, VcenterConfig)
        elif host.backend in ("xen", "xenmaster"):
            links[host.name] = _named(r, item, where, pools, XenPoolConfig, host.backend)
    _one_master_per_pool(r, hosts, links)
    warnings = []
    for managers, cls in ((vcenters, VcenterConfig), (pools, XenPoolConfig)):
        for j, manager in enumerate(managers):
            if manager not in links.values():
                warnings.append(f"{source}: {cls.section}[{j + 1}]: no [[host]] names "
                                f"{show(manager.name)} ({cls.host_key} = "
                                f"{show(manager.name)}): it is not used")
    return links, warnings


def _one_master_per_pool(r: Reader, hosts: Sequence[HostPlan],
                         links: Mapping[str, object]) -> None:
    """A pool has one master: a ``xenmaster`` host and another host of its pool declared
    ``pool_master = true`` (or a second ``xenmaster`` host) are refused."""
    masters: dict[str, int] = {}
    for i, host in enumerate(hosts):
        pool = links.get(host.name)
        if not isinstance(pool, XenPoolConfig) or not host.is_pool_master:
            continue
        if pool.name in masters:
            j = masters[pool.name]
            raise r.fail(f"host[{i + 1}].pool_master", f"pool {show(pool.name)} already has "
                         f"its master, host[{j + 1}] ({show(hosts[j].name)}); a pool has one")
        masters[pool.name] = i


def _named(r: Reader, item: Mapping[str, Any], where: str, managers: Sequence[_A],
           cls: type[_A], kind: str | None = None) -> _A:
    """The manager a host (of backend ``kind``, default the manager's) names with
    ``vcenter = ...`` / ``pool = ...``."""
    names = ", ".join(show(m.name) for m in managers)
    known = f" (the names are: {names})" if managers else \
        f" (there is no [[{cls.section}]])"
    if cls.host_key not in item:
        raise r.fail(f"{where}.{cls.host_key}", f"missing: a {kind or cls.kind} host names "
                                                f"its [[{cls.section}]]{known}")
    name = item[cls.host_key]
    if not isinstance(name, str):
        raise r.fail(f"{where}.{cls.host_key}", f"must be a string, not {kind_of(name)}")
    for manager in managers:
        if manager.name == name:
            return manager
    raise r.fail(f"{where}.{cls.host_key}", f"no [[{cls.section}]] is named "
                                            f"{show(name)}{known}")


def _ssh(r: Reader, item: Mapping[str, Any], where: str, host: str,
         files: _Files) -> SshTargetConfig:
    r.keys(item, _SSH_KEYS, where)
    address = r.text(item, "address", where, required=True)
    user = r.text(item, "user", where, required=True)
    assert address is not None and user is not None
    port = item.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise r.fail(f"{where}.port", f"must be a port number (1-65535), not {port!r}")
    known_hosts = files.path(r.text(item, "known_hosts", where))
    if known_hosts is None:
        raise r.fail(f"{where}.known_hosts", "missing (it is required: the host's key is "
                                             "checked against it, never trusted on first "
                                             "use)")
    files.readable(known_hosts, f"{where}.known_hosts")
    key_file = files.path(r.text(item, "key_file", where))
    password: str | None = None
    if key_file is not None:
        for key in ("password", "password_file"):
            if key in item:
                raise r.fail(f"{where}.{key}", "key_file is given too; keep one way to log "
                                               "in")
        files.private(key_file, f"{where}.key_file", "the private key it holds")
    else:
        password = r.password(item, where, user, files.table, files.secret, files.path,
                              required=False)
        if password is None:
            raise r.fail(where, f"no way to log in as {show(user)}: set key_file, or "
                                "password, password_file or a slave.secrets_file entry")
    command = r.argv(item, "command", where) or DEFAULT_SHUTDOWN_COMMAND
    return SshTargetConfig(host, address, user, known_hosts, key_file, password, port,
                           command)
