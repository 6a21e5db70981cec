"""Transports for the NUT protocol core: the Twisted client protocol the agent uses and the
blocking client the query tools use.  The server's transport is :mod:`upsagent.master.protocol`."""
