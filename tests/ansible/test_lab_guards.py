"""The test-host builder refuses a subnet this machine already uses, and leaves nothing behind."""
from __future__ import annotations

import ipaddress
import subprocess

import hostlab
import pytest

pytestmark = pytest.mark.hosts


def _own_network() -> ipaddress.IPv4Network:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        cidr = line.split()[3]
        net = ipaddress.ip_interface(cidr).network
        if not net.is_loopback:
            return net
    pytest.skip("this machine has no non-loopback IPv4 address to collide with")


def test_refuses_a_subnet_in_use_and_builds_nothing():
    why = hostlab.missing_requirements()
    if why:
        pytest.skip(why)
    net = _own_network()
    lab = hostlab.Lab(["kf-x"], subnet=str(net))
    with pytest.raises(hostlab.LabError, match=rf"refusing to build test hosts: {net} is already in use"):
        with lab:
            pass
    assert subprocess.run(["ip", "link", "show", lab.bridge], capture_output=True).returncode != 0
    assert not lab.workdir.exists()
    assert lab.hosts == []


def test_subnet_in_use_sees_this_machines_own_routes():
    net = _own_network()
    assert hostlab.subnet_in_use(net) is not None
