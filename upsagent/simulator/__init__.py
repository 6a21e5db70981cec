"""``upsagent simulate``: the policy engine on a simulated clock, against a simulated world
(UPSes, hosts, VMs and a simulated backend), with the built-in scenarios."""
