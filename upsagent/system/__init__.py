"""What master, agent and backends share about this operating system: the process runner,
one :class:`~upsagent.system.runner.Runner` protocol and one
:class:`~upsagent.system.runner.Result` type for external actions, and the power-down flag."""
