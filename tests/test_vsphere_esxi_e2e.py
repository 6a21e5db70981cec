"""End to end: our master, our slave (a real process) protecting two hosts of a vCenter
(vcsim-ext): H0, and H2, which runs the vCenter VM (``runs_vcenter``) and has a
``[host.esxi]`` whose endpoint is an ``-esx`` simulator standing for H2.  On a power cut
H0 is shut down through vCenter; then H2's VMs (the vCenter VM last) and H2 itself through
its own endpoint, which goes away with the host.  Everything is read from the simulators'
state; every wait polls with a bound, nothing sleeps for time to pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyVmomi")

from tests.ourmaster import OurMaster, ask, wait_for  # noqa: E402
from tests.test_reliability import UPS_CONF, Slave, dev  # noqa: E402
from tests.test_vsphere import H0, H1, H2, simulator_binary  # noqa: E402, F401
from tests.test_vsphere_esxi import VCSA, esx_sim  # noqa: E402
from tests.vcsimext import PASSWORD, USER, Vcsim  # noqa: E402


def test_power_cut_the_vcenter_host_last_through_its_own_endpoint(
        tmp_path: Path, simulator_binary: Path) -> None:
    (tmp_path / "vc").mkdir()
    vc = Vcsim(tmp_path / "vc", "-extra-vm", f"{VCSA}=127.0.0.1")
    esx = esx_sim(tmp_path, H2)
    master = OurMaster(UPS_CONF, files={"ups.dev": dev("OL CHRG")}).start()
    slave = None
    try:
        pw = tmp_path / "vc1.pw"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        hosts = f"""
[[slave.vcenter]]
name = "vc1"
url = "{vc.url}"
user = "{USER}"
password_file = "{pw}"
ca_file = "{vc.cert}"

[[host]]
name = "vm"
backend = "local"

[[host]]
name = "{H0}"
backend = "vsphere"
vcenter = "vc1"
powered_by = ["{{ups}}"]
debounce = 1
shutdown_after = 2
vm_shutdown_timeout = 10

[[host]]
name = "{H2}"
backend = "vsphere"
vcenter = "vc1"
powered_by = ["{{ups}}"]
debounce = 1
shutdown_after = 2
vm_shutdown_timeout = 10
runs_vcenter = true
[host.esxi]
url = "{esx.url}"
user = "{USER}"
password_file = "{pw}"
ca_file = "{esx.cert}"
"""
        slave = Slave(tmp_path, master.port, hosts)
        wait_for(lambda: "NUMLOGINS dummy 1" in ask(master.port, "GET NUMLOGINS dummy"), 20,
                 f"the slave to log in\n{slave.log()}")
        slave.wait_log(f"direct ESXi session to {H2}: HostAgent", 20)
        (master.dir / "ups.dev").write_text(dev("OB DISCHRG"))
        answer = ask(master.port, "USERNAME admin", "PASSWORD adminpass",
                     'SET VAR dummy ups.status "OB DISCHRG"')
        assert answer == "OK\nOK\nOK\n", answer
        wait_for(esx.gone, 40, f"H2's endpoint to go away with H2\n{slave.log()}")
        log = slave.log()
        # H0 through vCenter, accepted before anything was done on H2
        state = vc.state()
        assert next(h for h in state["hosts"] if h["name"] == H0)["power"] == "poweredOff"
        assert log.index("shutdown accepted (forced: not in maintenance) (through vcenter)"
                         ) < log.index("(through the direct ESXi session (runs the vCenter "
                                       "VM))")
        assert (f"3 VMs stopped in order {H2}_VM0, {H2}_VM1 | {VCSA} (the vCenter VM) "
                "(through the direct ESXi session (runs the vCenter VM))") in log
        # vCenter never acted on H2 (nor on H1, which the agent does not protect)
        for name in (H1, H2):
            host = next(h for h in state["hosts"] if h["name"] == name)
            assert host["power"] == "poweredOn" and not host["maintenance"]
        assert all(v["power"] == "poweredOn" for v in state["vms"] if v["host"] != H0)
    finally:
        if slave is not None:
            slave.proc.terminate()
            slave.proc.wait(10)
        master.stop()
        esx.stop()
        vc.stop()
