"""Parsers on every file a real H100 node printed (values read from the files), and on bad input."""
from __future__ import annotations

import pytest

from kubeforge.gpu import parsers as p

UUID = "GPU-fcfb90f9-00a6-92d0-5a6a-aa757e554a89"
NAME = "NVIDIA H100 80GB HBM3"


def read(d, name):
    return (d / name).read_text()


def test_smi_xml(h100):
    r = p.parse_smi_xml(read(h100, "nvidia-smi-q.xml"))
    assert (r.driver_version, r.cuda_version) == ("580.159.04", "13.0")
    assert r.gpus == (p.Gpu(index=0, uuid=UUID, name=NAME, bus_id="00000000:00:06.0",
                            memory_total_mib=81559, persistence=True, mig_current="disabled",
                            mig_pending="disabled"),)


def test_query_gpu_csv(h100):
    (g,) = p.parse_query_gpu(read(h100, "nvidia-smi-query-gpu.csv"))
    assert (g.index, g.uuid, g.name, g.bus_id) == (0, UUID, NAME, "00000000:00:06.0")
    assert (g.driver_version, g.memory_total_mib, g.persistence, g.mig_current) == (
        "580.159.04", 81559, True, "disabled")
    assert g.extra == {"memory.used": "0 MiB", "compute_cap": "9.0", "power.limit": "700.00 W",
                       "temperature.gpu": "38", "clocks.max.sm": "1980 MHz", "ecc.mode.current": "Enabled"}


def test_smi_list(h100):
    assert p.parse_smi_list(read(h100, "nvidia-smi-L.txt")) == [p.Gpu(index=0, uuid=UUID, name=NAME)]


def test_smi_list_with_mig_devices():
    # the layout nvidia-smi -L prints once MIG devices exist (A100 docs); UUIDs are made up here
    text = (f"GPU 0: {NAME} (UUID: {UUID})\n"
            "  MIG 3g.40gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n"
            "  MIG 1g.10gb     Device  1: (UUID: MIG-53d2b0a5-7d6c-5d0a-a8e1-1a2b3c4d5e6f)\n"
            f"GPU 1: {NAME} (UUID: GPU-00000000-0000-0000-0000-000000000001)\n")
    g0, g1 = p.parse_smi_list(text)
    assert [(m.profile, m.index) for m in g0.mig_devices] == [("3g.40gb", 0), ("1g.10gb", 1)]
    assert g1.mig_devices == () and g1.index == 1


def test_mig_lgip(h100):
    profiles = p.parse_mig_lgip(read(h100, "nvidia-smi-mig-lgip.txt"))
    assert [(x.name, x.id, x.instances_free, x.instances_total, x.memory_gib) for x in profiles] == [
        ("1g.10gb", 19, 7, 7, 9.75), ("1g.10gb+me", 20, 1, 1, 9.75), ("1g.20gb", 15, 4, 4, 19.62),
        ("2g.20gb", 14, 3, 3, 19.62), ("3g.40gb", 9, 2, 2, 39.5), ("4g.40gb", 5, 1, 1, 39.5),
        ("7g.80gb", 0, 1, 1, 79.25)]
    full = profiles[-1]
    assert (full.gpu, full.p2p, full.sm, full.dec, full.enc, full.ce, full.jpeg, full.ofa) == (
        0, False, 132, 7, 0, 8, 7, 1)
    assert [x.compute_slices for x in profiles] == [1, 1, 1, 2, 3, 4, 7]
    assert profiles[1].ofa == 1 and profiles[0].ofa == 0   # +me carries the OFA engine


def test_proc_driver_version(h100):
    d = p.parse_proc_driver_version(read(h100, "proc-driver-nvidia-version"))
    assert d == p.DriverInfo(version="580.159.04", open_kernel_module=True, arch="x86_64",
                             gcc="gcc version 15.3.0 (GCC)")


def test_proc_driver_version_proprietary_module():
    text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023\n"
    d = p.parse_proc_driver_version(text)
    assert (d.version, d.open_kernel_module, d.arch, d.gcc) == ("535.129.03", False, "x86_64", None)


def test_dev_nvidia_ls(h100):
    d = p.parse_dev_nvidia_ls(read(h100, "dev-nvidia-ls.txt"))
    assert d.paths() == ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                         "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-caps/nvidia-cap2"]
    assert d.gpu_minors == [0]
    assert d.nodes[1] == p.DeviceNode("/dev/nvidiactl", "c", "rw-rw-rw-", 195, 255)
    assert d.nodes[4].mode == "r--------" and (d.nodes[4].major, d.nodes[4].minor) == (241, 1)


def test_smi_summary(h100):
    r = p.parse_smi_summary(read(h100, "nvidia-smi.txt"))
    assert (r.driver_version, r.cuda_version) == ("580.159.04", "13.0")
    (g,) = r.gpus
    assert (g.index, g.name, g.persistence, g.bus_id, g.memory_total_mib, g.mig_current) == (
        0, NAME, True, "00000000:00:06.0", 81559, "disabled")


def test_os_release(h100):
    o = p.parse_os_release(read(h100, "os-release"))
    assert (o["ID"], o["VERSION_ID"], o["VERSION_CODENAME"], o["PRETTY_NAME"]) == (
        "ubuntu", "24.04", "noble", "Ubuntu 24.04.3 LTS")


def test_cuda_smoke(h100):
    s = p.parse_cuda_smoke(read(h100, "cuda-smoke.txt"))
    assert s == p.CudaSmoke(torch_version="2.11.0+cu130", cuda_version="13.0", available=True, device=NAME,
                            sm_count=132, memory_gib=79.2, compute_capability="9.0",
                            vector_add_elements=16777216, vector_add_ok=True, matmul_tflops=798.0)


def test_readme_lists_every_fixture(h100):
    """Every captured file is covered above; a new capture must get a parser test."""
    covered = {"README.md", "nvidia-smi-q.xml", "nvidia-smi-query-gpu.csv", "nvidia-smi-L.txt",
               "nvidia-smi-mig-lgip.txt", "proc-driver-nvidia-version", "dev-nvidia-ls.txt",
               "nvidia-smi.txt", "os-release", "cuda-smoke.txt"}
    assert {f.name for f in h100.iterdir()} == covered


@pytest.mark.parametrize("fn,text,message", [
    (p.parse_smi_xml, "<nvidia_smi_log><driver_version>1", "not XML"),
    (p.parse_smi_xml, "<other/>", "expected <nvidia_smi_log>"),
    (p.parse_smi_xml, "<nvidia_smi_log><cuda_version>13.0</cuda_version></nvidia_smi_log>", "no <driver_version>"),
    (p.parse_smi_xml, "<nvidia_smi_log><driver_version>1</driver_version><cuda_version>2</cuda_version>"
                      "<attached_gpus>2</attached_gpus></nvidia_smi_log>", "attached_gpus says 2"),
    (p.parse_query_gpu, "", "empty output"),
    (p.parse_query_gpu, "0, GPU-x, NVIDIA H100\n", "lacks index, uuid, name"),
    (p.parse_query_gpu, "index, uuid, name\n0, GPU-x\n", "line 2 has 2 fields"),
    (p.parse_query_gpu, "index, uuid, name, persistence_mode\n0, GPU-x, H100, Maybe\n", "persistence_mode 'Maybe'"),
    (p.parse_smi_list, "No devices were found\n", "is neither"),
    (p.parse_mig_lgip, "garbage\n", "no 'GPU instance profiles:' table"),
    (p.parse_mig_lgip, "| GPU instance profiles: |\n|   0  MIG 1g.10gb         19     7/7        9.75       No     16     1     0   |\n",
     "expected the CE/JPEG/OFA line"),
    (p.parse_proc_driver_version, "", "no 'NVRM version"),
    (p.parse_dev_nvidia_ls, "ls: cannot access '/dev/nvidia*': No such file or directory\n", "is not an `ls -l` entry"),
    (p.parse_smi_summary, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
     "no 'Driver Version"),
    (p.parse_os_release, "ID=ubuntu\nthis is not\n", "line 2"),
    (p.parse_cuda_smoke, "torch 2.11.0+cu130 cuda 13.0 available False\n", "missing the device, vectorAdd"),
])
def test_malformed_input_names_the_problem(fn, text, message):
    with pytest.raises(p.ParseError) as e:
        fn(text)
    assert message in str(e.value)


def test_mig_lgip_without_mig_capable_gpu():
    assert p.parse_mig_lgip("No MIG-supported devices found.\n") == []
