"""The policy engine's Twisted runtime: the executor feeds the pure engine
(:mod:`upsagent.policy`) its events and the time, and carries its actions out on backends
(:mod:`upsagent.hypervisors`).  The slave agent, the master's shutdown and the simulator all
run the engine through it."""
