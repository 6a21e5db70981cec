# -*- test-case-name: tests.test_slave_daemon -*-
"""Checks of a built :class:`~upsagent.config.slaveconf.SlaveConfig`, as ``check-config``
lines (``<source>: <key or host>: <reason>``), the same at start, on SIGHUP and in
``upsagent check-config``.

* :func:`plan_problems` turns :func:`~upsagent.policy.checks.validate` findings into lines:
  errors stop the agent, warnings are printed.  It adds what the agent needs to run the
  plan: the runner's and monitors' settings (:func:`settings_problems`) and that every
  host's backend exists in this version (:func:`backend_problems`; the plan knows more
  kinds, :data:`~upsagent.policy.plan.TRAITS`, than the agent can drive,
  :data:`~upsagent.hypervisors.base.BACKENDS` less the simulated one).
* :func:`tls_problems`: a monitor that requires TLS where pyOpenSSL (the ``tls`` extra) is
  not installed, a warning that says what to install.
* :func:`countdown_problems`: what a UPS's own ``ups.delay.shutdown``, read once connected,
  adds to the plan check.
* :func:`runtime_triggers`: per host, the runtime at which the engine acts (R4b), with
  its parts, for ``check-config`` to print.
* :func:`upsmon_like`: whether ``[slave]`` alone describes the plan (``import-nut``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from upsagent.config.slaveconf import (
    _HOST_KEYS, DELAY_VARIABLE, SIMULATION_ONLY, SlaveConfig, _replace)
from upsagent.config.validate import show
from upsagent.policy.plan import (
    HostPlan, UpsCountdown, is_upsmon_host, runtime_trigger)
from upsagent.policy.checks import Problem, validate

__all__ = ["agent_backends", "backend_problems", "countdown_problems", "plan_problems",
           "runtime_triggers", "settings_problems", "tls_problems", "upsmon_like",
           "with_ups_delays"]


def upsmon_like(slave: SlaveConfig) -> HostPlan | None:
    """The one local host when the plan is what
    :func:`~upsagent.policy.plan.upsmon_plan` makes of the monitors (so ``[slave]`` alone
    describes it), else None."""
    hosts = slave.plan.hosts
    if len(hosts) != 1 or not is_upsmon_host(hosts[0]):
        return None
    supplies = tuple((s.ups, s.power_value) for s in hosts[0].powered_by)
    monitors = tuple((m.system, m.power_value) for m in slave.monitors)
    return hosts[0] if supplies == monitors else None


def plan_problems(slave: SlaveConfig, available: Collection[str] | None = None,
                  ) -> tuple[list[str], list[str]]:
    """Everything wrong with ``slave`` as (errors, warnings) lines, ``check-config``'s.

    :func:`~upsagent.policy.checks.validate`'s findings, :func:`settings_problems` and
    :func:`backend_problems` (``available``: the backend kinds that can be built, default
    :func:`agent_backends`).  In a dry run a missing backend is only a warning: the dry
    run goes on without it.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for problem in validate(slave.plan):
        line = _problem_line(slave, problem)
        (errors if problem.severity == "error" else warnings).append(line)
    errors += settings_problems(slave)
    for i, monitor in enumerate(slave.monitors):
        if monitor.delay_from_ups is not None:
            warnings.append(
                f"{slave.source}: slave.monitor[{i + 1}]: no shutdown_delay: the plan is "
                f"checked against {monitor.system}'s countdown (warning_period "
                f"{monitor.delay_from_ups:g} s + the UPS's {DELAY_VARIABLE}) only when the "
                "agent has read it; it logs what does not fit then")
    warnings += tls_problems(slave)
    warnings += esxi_problems(slave)
    for line in backend_problems(slave, available):
        if slave.dry_run:
            warnings.append(f"{line} (a dry run goes on without it; a real run refuses "
                            "to start)")
        else:
            errors.append(line)
    return errors, warnings


def runtime_triggers(slave: SlaveConfig) -> list[str]:
    """Per host, the runtime at which the engine acts at once (R4b), with the parts: what
    the steps need and the margin (two polls of ``pollfreq_alert`` + ``runtime_margin`` of
    the need); for a host that enters maintenance, the point once it is in maintenance too
    (its VMs gone).  No line for a plan that reads no runtime (no timed step: upsmon's
    way), for a pool master left alone (its own agent's plan has it), or for a host that
    is neither shut down nor put into maintenance."""
    plan = slave.plan
    if not plan.reads_battery:
        return []
    poll = slave.key("slave.pollfreq_alert", "POLLFREQALERT").rpartition(".")[2]
    lines = []
    for i, host in enumerate(plan.hosts):
        if host.left_alone or not (host.shuts_down or host.enters_maintenance):
            continue
        trigger = runtime_trigger(host, plan)
        verb = "shuts down" if host.shuts_down else "enters maintenance"
        line = (f"{slave.source}: host[{i + 1}] ({show(host.name)}): {verb} at once when "
                f"the runtime left is {trigger.explain(poll)}")
        if host.shuts_down and host.enters_maintenance:
            done = runtime_trigger(host, plan, in_maintenance=True)
            if done != trigger:
                line += f"; in maintenance {done.explain(poll)}"
        lines.append(line)
    return lines


def with_ups_delays(slave: SlaveConfig, delays: Mapping[str, float]) -> SlaveConfig:
    """``slave`` with the countdown of every UPS that takes its delay from the UPS
    (:attr:`MonitorConfig.delay_from_ups`) and has one in ``delays`` (system -> seconds)."""
    warning = {m.system: m.delay_from_ups for m in slave.monitors
               if m.delay_from_ups is not None and m.system in delays}
    ups = tuple(_replace(u, countdown=UpsCountdown(warning[u.name], delays[u.name]))
                if u.name in warning else u for u in slave.plan.ups)
    return _replace(slave, plan=_replace(slave.plan, ups=ups))


def countdown_problems(slave: SlaveConfig, delays: Mapping[str, float]) -> list[str]:
    """What the UPSes' own delays (``delays``, from ``ups.delay.shutdown``) add to the plan
    check: ``check-config``'s lines (host, step, overrun), errors and warnings alike, that
    the plan without them does not have."""
    before = {_problem_line(slave, p) for p in validate(slave.plan)}
    after = with_ups_delays(slave, delays)
    lines = [_problem_line(after, p) for p in validate(after.plan)]
    return [line for line in lines if line not in before]


def agent_backends() -> tuple[str, ...]:
    """The backend kinds the agent can act on in this version: ``local`` and the
    registry's kinds, less those only a simulation drives (:data:`SIMULATION_ONLY`)."""
    from upsagent.hypervisors.base import BACKENDS
    return tuple(sorted({"local", *BACKENDS} - SIMULATION_ONLY))


def backend_problems(slave: SlaveConfig, available: Collection[str] | None = None,
                     ) -> list[str]:
    """One line per host whose backend the agent cannot use, naming the key
    (``host[N].backend``), the kind, why, and the kinds that are available.

    ``available`` defaults to :func:`agent_backends`; a kind of the registry whose module
    cannot be imported (a missing extra) is named with its install hint.
    """
    from upsagent.hypervisors.base import backend_class
    kinds = agent_backends() if available is None else tuple(available)
    offer = ", ".join(sorted(kinds))
    lines = []
    for i, host in enumerate(slave.plan.hosts):
        kind = host.backend
        why: str | None = None
        if kind not in kinds:
            why = ("only upsagent simulate can drive this kind (it acts on a simulated "
                   "cluster)" if kind in SIMULATION_ONLY else
                   "no backend of this kind is available in this version")
        elif available is None and kind != "local":
            try:
                backend_class(kind)
            except (KeyError, ImportError) as exc:
                why = str(exc).strip("'\"")
        if why is not None:
            lines.append(f"{slave.source}: {slave.key(f'host[{i + 1}].backend', 'backend')}: "
                         f"{kind} (host {show(host.name)}): {why}; available: {offer}")
    return lines


def tls_problems(slave: SlaveConfig) -> list[str]:
    """One warning per monitor that requires TLS (``required``/FORCESSL, ``verify``/
    CERTVERIFY) where pyOpenSSL, the ``tls`` extra, cannot be imported: the agent runs, but
    that UPS's contact is lost at every connection the server accepts STARTTLS on (as the
    monitor reports it), until ``upsagent[tls]`` is installed.  An optional STARTTLS needs
    nothing: it is simply not attempted."""
    required = [(i, m) for i, m in enumerate(slave.monitors)
                if m.tls.required or m.tls.verify]
    if not required:
        return []
    from upsagent.transport.nutproto import tls_available
    if tls_available():
        return []
    lines = []
    for i, monitor in required:
        native, word = (("verify", "CERTVERIFY") if monitor.tls.verify else
                        ("required", "FORCESSL"))
        key = slave.key(f"slave.monitor[{i + 1}].tls.{native}", f"{word} ({monitor.system})")
        lines.append(f"{slave.source}: {key}: TLS is required, but pyOpenSSL is not "
                     f"installed: install upsagent[tls]; until then contact with "
                     f"{monitor.system} is lost at every connection")
    return lines


def esxi_problems(slave: SlaveConfig) -> list[str]:
    """A warning per ``vsphere`` host that runs the vCenter VM, is shut down, and has no
    ``[host.esxi]``: once its VMs are stopped (the vCenter's among them), nothing can shut
    it down (``upsagent/hypervisors/vsphere.py``)."""
    names = [host.name for host in slave.plan.hosts]
    return [f"{slave.source}: host[{names.index(h.name) + 1}].runs_vcenter (host "
            f"{show(h.name)}): no [host.esxi]: once its VMs are stopped, the vCenter VM "
            "among them, the host's own shutdown cannot go through vCenter and fails; "
            "add [host.esxi] (its own endpoint) for it"
            for h in slave.plan.hosts if h.backend == "vsphere" and h.runs_vcenter
            and h.shuts_down and h.name not in slave.host_esxi]


def settings_problems(slave: SlaveConfig) -> list[str]:
    """What the runner and the monitors would refuse: poll intervals and time limits that
    are not above 0, an empty shutdown command, a monitor's settings (each line names the
    key and the reason)."""
    lines: list[str] = []

    def bad(key: str, reason: str) -> None:
        lines.append(f"{slave.source}: {key}: {reason}")
    polls = (("poll_freq", "slave.pollfreq", "POLLFREQ"),
             ("poll_freq_alert", "slave.pollfreq_alert", "POLLFREQALERT"))
    budgets = (("shutdown_budget", "slave.shutdown_budget", "the shutdown command's"),
               ("notify_budget", "slave.notify_budget", "each notification command's"))
    for attr, native, word in polls:
        value = getattr(slave, attr)
        if not value > 0:
            bad(slave.key(native, word), f"must be above 0, not {value:g}")
    for attr, native, whose in budgets:
        value = getattr(slave, attr)
        if not value > 0:
            bad(native, f"must be above 0, not {value:g} (it is {whose} time limit)")
    command = slave.shutdown_command
    if isinstance(command, str) or not command or not all(
            isinstance(word, str) for word in command) or not command[0]:
        bad(slave.key("slave.shutdown_command", "SHUTDOWNCMD"),
            f"must be a non-empty list of arguments, not {command!r}")
    if lines:
        return lines
    for i, monitor in enumerate(slave.monitors):
        try:
            monitor.settings(slave.poll_freq, slave.poll_freq_alert)
        except ValueError as exc:
            bad(slave.key(f"slave.monitor[{i + 1}]", f"MONITOR {monitor.system}"),
                f"the monitor refuses its settings: {exc}")
    return lines


#: a :class:`~upsagent.policy.checks.Problem`'s step that is a HostPlan field, by its key
#: in a ``[[host]]`` table when the two differ
_STEP_KEYS = {"is_pool_master": "pool_master"}


def _problem_line(slave: SlaveConfig, problem: Problem) -> str:
    """check-config's line for ``problem``: a finding about one of a ``[[host]]``'s keys
    names the key (``host[2].shutdown_after (host "esx1"): ...``), as the backend line
    does; any other names the host (or ``slave``) and the step."""
    key = _STEP_KEYS.get(problem.step, problem.step)
    names = [host.name for host in slave.plan.hosts]
    if (problem.host and slave.origin == "toml" and key in _HOST_KEYS and key != "name"
            and problem.host in names):
        index = names.index(problem.host) + 1
        message = problem.message.removeprefix(f"host {problem.host}: ")
        return f"{slave.source}: host[{index}].{key} (host {show(problem.host)}): {message}"
    where = f"host {show(problem.host)}" if problem.host else "slave"
    return f"{slave.source}: {where}: {problem.step}: {problem.message}"
