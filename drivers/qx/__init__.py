"""The Megatec/Voltronic "Q1" family: NUT's ``nutdrv_qx``, ``blazer_ser`` and ``blazer_usb``.

Layers, bottom up (each module says more):

* :mod:`.codec`: the protocol, pure: commands, reply checks, fields, status bits, the
  dialects (NUT's subdriver tables), delays and the shutdown commands they imply;
* :mod:`.battery`: battery charge and runtime estimates as NUT's options define them, pure;
* :mod:`.bridges`: how each USB bridge chip moves bytes (chunking, control bytes,
  reassembly), pure, and the table of USB ids with the bridge each one gets;
* :mod:`.transport` (serial, pyserial) and :mod:`.usb` (pyusb): one blocking
  ``exchange(command) -> reply`` interface over the wire;
* :mod:`.device`: the blocking engine (probe the dialect, read ratings and vendor, poll,
  run a command) over one transport; what it publishes is computed by :mod:`.publish`;
* :mod:`.driver`: the Twisted driver; blocking calls go through an injected seam
  (a thread in the daemon, a direct call in tests);
* :mod:`.q1log`: recorded exchanges (``.q1log``) replayed through the same engine, for
  ``upsagent decode q1``.

Facts are taken from NUT's sources (``drivers/nutdrv_qx.c``, ``nutdrv_qx_megatec.c``,
``nutdrv_qx_blazer-common.c``, ``blazer.c``, ``blazer_ser.c``, ``blazer_usb.c``, at tag
v2.8.0 unless a module says otherwise); the code is ours.
"""
