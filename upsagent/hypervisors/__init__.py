"""Backends the policy engine drives: this OS, simulated hosts, and (later) vSphere,
XenServer and SSH hosts, all behind one small interface (:mod:`upsagent.hypervisors.base`)."""
