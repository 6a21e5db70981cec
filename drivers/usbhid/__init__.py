"""The USB HID Power Device driver (NUT's ``usbhid-ups``) and its pure parts.

* ``hidparser``: report descriptor parser (bytes in, fields out);
* ``usages``: usage names and paths (``UPS.PowerSummary.RemainingCapacity``);
* ``conversions``, ``status``, ``tables``, ``vendors/``: from report bytes to NUT variables,
  the vendor tables and the status rules as data;
* ``decoder``: the decoding core the driver and ``upsagent decode usbhid`` share;
* ``transport`` and ``driver``: the USB side (hidapi, pyusb) and the Twisted driver.
"""
