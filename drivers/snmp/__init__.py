"""The SNMP driver (NUT's ``snmp-ups``) for UPS network management cards, and its pure parts.

* ``values``: SNMP values as plain Python (no pysnmp), OIDs, and snmpsim's ``.snmprec`` walk
  files;
* ``mib``: what a MIB mapping table is (variables, status rules, alarms, commands as data) and
  the decoding core that turns the values a card answered into NUT variables;
* ``mibs/``: one table per MIB (RFC 1628, APC PowerNet, Eaton XUPS, Megatec XPPC and EPPC,
  CyberPower) and the MIB selection (``sysObjectID`` first, then probing, as NUT's
  ``mibs=auto``);
* ``settings``: the ``ups.conf`` options (``port``, ``community``, v3 security, ``mibs``,
  ``pollfreq`` ...) and the secrets read from ``*_file`` options;
* ``client``: the I/O shell on pysnmp (GET, GETNEXT/GETBULK, SET over v1, v2c and v3); pysnmp's
  asyncio loop runs in one thread of its own and hands every answer to the Twisted reactor;
* ``driver``: the Twisted driver (polling, staleness, commands, writable variables);
* ``traps``: the master's trap receiver (one for all SNMP UPSes).

Only ``client``, ``driver`` (through ``client``) and ``traps`` need pysnmp (the ``snmp``
extra); the pure parts do not, so ``upsagent decode snmp`` works without it.
"""
