"""The slave agent, in Twisted: UPS monitors, the executor that carries out the policy's
actions through the backends, notifications, the state file, and the daemon that ties them."""
