"""The shutdown policy, pure: the plan (what protects which host, with which steps), the rules
(when a UPS is critical, when a host must act), the engine that turns events and the clock into
actions, and the timeline.  No I/O, no reactor: the agent and the simulator drive it."""
