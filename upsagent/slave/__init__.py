"""The slave agent: monitors, the policy engine, the action runners and backends."""
