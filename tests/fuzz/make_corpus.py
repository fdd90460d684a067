#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/.

Run it after changing an input format (the layout each *_fuzzer.cc
documents at its top); it rewrites only the seeds it knows (files named
seed-*), never the regression inputs of fixed crashes (regress-*). Needs
protoc (protobuf-compiler) for the manager and agent seeds.

    python3 tests/fuzz/make_corpus.py
"""

import os
import pathlib
import struct
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# google/api/annotations.proto, which fabric/v1 imports (Debian's
# golang-github-grpc-ecosystem-grpc-gateway-dev).
GOOGLEAPIS = pathlib.Path(
    "/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/"
    "third_party/googleapis")
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


# --------------------------------------------------------------------------
# Config spaces (as agent/discovery/test_configs.cc builds them)


class Config:
    def __init__(self, size):
        self.b = bytearray(size)

    def set8(self, off, v):
        self.b[off] = v & 0xFF
        return self

    def set16(self, off, v):
        self.b[off:off + 2] = struct.pack("<H", v & 0xFFFF)
        return self

    def set32(self, off, v):
        self.b[off:off + 4] = struct.pack("<I", v & 0xFFFFFFFF)
        return self

    def cap(self, off, cap_id, nxt):
        return self.set8(off, cap_id).set8(off + 1, nxt)

    def ext_cap(self, off, cap_id, version, nxt):
        return self.set32(off, cap_id | version << 16 | nxt << 20)


def type0(size, vendor, device, class_code):
    c = Config(size)
    c.set16(0x00, vendor).set16(0x02, device).set16(0x04, 0x0406)
    c.set32(0x08, class_code << 8 | 0x02)
    return c


def sriov_pf(num_vfs=2, sriov_at=0x160, total_vfs=8, offset=0x10, stride=1):
    c = type0(4096, 0x8086, 0x1572, 0x020000)
    c.set8(0x0E, 0x80).set16(0x06, 0x0010)
    c.set32(0x10, 0xD000000C).set32(0x14, 0x000038FF)
    c.set32(0x1C, 0xD180000C).set32(0x20, 0x000038FF)
    c.set16(0x2C, 0x8086).set8(0x34, 0x40)
    c.cap(0x40, 0x01, 0x70).cap(0x70, 0x11, 0xA0).set16(0x72, 0x0080)
    c.cap(0xA0, 0x10, 0x00).set16(0xA2, 0x0002)
    c.ext_cap(0x100, 0x0001, 2, 0x150).ext_cap(0x150, 0x000E, 1, sriov_at)
    c.ext_cap(sriov_at, 0x0010, 1, 0x000)
    s = sriov_at
    if s + 0x40 <= 4096:
        c.set16(s + 0x08, 0x0019 if num_vfs else 0x0010)
        c.set16(s + 0x0C, total_vfs).set16(s + 0x0E, total_vfs)
        c.set16(s + 0x10, num_vfs).set16(s + 0x14, offset)
        c.set16(s + 0x16, stride).set16(s + 0x1A, 0x154C)
        c.set32(s + 0x1C, 0x553).set32(s + 0x20, 1)
        c.set32(s + 0x24, 0xD200000C).set32(s + 0x28, 0x000038FF)
        c.set32(s + 0x30, 0xD220000C).set32(s + 0x34, 0x000038FF)
    return c


def sriov_vf():
    c = type0(256, 0xFFFF, 0xFFFF, 0x020000)
    c.set16(0x04, 0).set16(0x06, 0x0010).set16(0x2C, 0x8086).set8(0x34, 0x70)
    c.cap(0x70, 0x11, 0xA0).set16(0x72, 0x0004)
    c.cap(0xA0, 0x10, 0x00).set16(0xA2, 0x0002)
    return c


def intel_ntb():
    c = type0(256, 0x8086, 0x201C, 0x068000)
    c.set16(0x06, 0x0010)
    c.set32(0x10, 0xC6F00004).set32(0x18, 0x0000000C).set32(0x1C, 0x3A00)
    c.set32(0x20, 0x0000000C).set32(0x24, 0x3B00).set8(0x34, 0x60)
    c.cap(0x60, 0x11, 0x90).cap(0x90, 0x10, 0xE0).cap(0xE0, 0x01, 0x00)
    return c


def bridge_type1():
    c = type0(256, 0x8086, 0x2030, 0x060400)
    c.set8(0x0E, 0x01).set16(0x06, 0x0010).set32(0x10, 0xFB000004)
    c.set8(0x34, 0x40).cap(0x40, 0x10, 0x00).set16(0x42, 0x0042)
    return c


def config_space_seeds():
    t = "config_space_fuzzer"
    write(t, "sriov-pf", b"\x02" + sriov_pf().b)
    write(t, "sriov-pf-no-vfs", b"\x02" + sriov_pf(num_vfs=0).b)
    write(t, "sriov-vf", b"\x01" + sriov_vf().b)
    write(t, "intel-ntb", b"\x01" + intel_ntb().b)
    write(t, "bridge-type1", b"\x01" + bridge_type1().b)
    write(t, "unknown-64", b"\x00" + type0(64, 0xFEED, 0xBEEF, 0xFF0000)
          .set32(0x10, 0xF7000000).b)
    loop = type0(256, 0x1AF4, 0x1000, 0x020000).set16(0x06, 0x0010)
    loop.set8(0x34, 0x40).cap(0x40, 0x01, 0x50).cap(0x50, 0x05, 0x40)
    write(t, "cap-loop", b"\x01" + loop.b)
    low = type0(256, 0x1AF4, 0x1000, 0x020000).set16(0x06, 0x0010)
    low.set8(0x34, 0x20)
    write(t, "cap-below-0x40", b"\x01" + low.b)
    caps64 = type0(64, 0x1AF4, 0x1000, 0x020000).set16(0x06, 0x0010)
    caps64.set8(0x34, 0x40)
    write(t, "caps-in-64-bytes", b"\x00" + caps64.b)
    ext = sriov_pf()
    ext.ext_cap(0x150, 0x000E, 1, 0x100)
    write(t, "ext-cap-loop", b"\x02" + ext.b)
    mis = sriov_pf()
    mis.ext_cap(0x150, 0x000E, 1, 0x162)
    write(t, "ext-cap-misaligned", b"\x02" + mis.b)
    write(t, "sriov-past-end", b"\x02" + sriov_pf(sriov_at=0xFE0).b)
    write(t, "sriov-numvfs-above-total",
          b"\x02" + sriov_pf(num_vfs=9, total_vfs=8).b)
    far = sriov_pf(num_vfs=200, total_vfs=255, offset=0xFF00, stride=0x80)
    write(t, "sriov-routing-id-overflow", b"\x02" + far.b)
    bar64 = type0(256, 0x10EE, 0x9038, 0x058000).set32(0x24, 0x4)
    write(t, "bar5-64bit-no-upper", b"\x01" + bar64.b)
    write(t, "bad-size-100", b"\x03" + bytes(100))
    write(t, "empty", b"")


# --------------------------------------------------------------------------
# lspci dumps


def lspci(address, description, config):
    out = f"{address} {description}\n"
    for off in range(0, len(config), 16):
        out += f"{off:02x}:" + "".join(
            f" {b:02x}" for b in config[off:off + 16]) + "\n"
    return out


def lspci_seeds():
    t = "lspci_dump_fuzzer"
    write(t, "ntb-and-vf",
          lspci("3b:00.0", "Bridge: Intel Corporation Sky Lake-E NTB",
                intel_ntb().b) + "\n" +
          lspci("0000:3b:02.0", "Ethernet controller: Intel X710 VF",
                sriov_vf().b))
    write(t, "sriov-pf-4096",
          lspci("0000:5e:00.0", "Ethernet controller: Intel X710",
                sriov_pf().b))
    write(t, "header-only-64",
          lspci("00:1f.3", "Audio device: Intel",
                type0(64, 0x8086, 0xA348, 0x040300).b))
    write(t, "domain-5-digits",
          lspci("10000:00:00.0 ", "Host bridge",
                type0(64, 0x8086, 0x2020, 0x060000).b))
    good = lspci("00:00.0", "Host bridge", type0(64, 0x8086, 0x2020,
                                                 0x060000).b)
    write(t, "no-final-newline", good.rstrip("\n"))
    write(t, "short-data-line", good.replace(" 00\n", "\n", 1))
    write(t, "bad-hex", good.replace(" 86", " 8g", 1))
    write(t, "data-before-header", "00: " + " ".join(["00"] * 16) + "\n")
    write(t, "duplicate-device", good + "\n" + good)
    write(t, "out-of-order", good.replace("10:", "20:", 1))
    write(t, "device-out-of-range", good.replace("00:00.0", "00:20.0", 1))
    write(t, "48-bytes", "".join(good.splitlines(True)[:4]))
    write(t, "long-line", "00:00.0 " + "x" * 300 + "\n")
    write(t, "crlf", good.replace("\n", "\r\n"))
    write(t, "empty", "")


# --------------------------------------------------------------------------
# Fabric specs (protobuf JSON, as fabricctl apply -f reads them)


def fabric_spec_seeds():
    t = "fabric_spec_fuzzer"
    for name in ("ring8.json", "star.json"):
        write(t, name, (ROOT / "deploy" / "examples" / name).read_text())
    write(t, "custom.json", """{"name": "mesh", "topology": "CUSTOM",
  "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
  "links": [{"a": "a", "aPort": 1, "b": "b", "bPort": 1},
            {"a": "b", "aPort": 2, "b": "c", "bPort": 1},
            {"a": "c", "aPort": 2, "b": "a", "bPort": 2}]}
""")
    write(t, "proto-names.json", """{"name": "r", "topology": "RING",
  "default_export_size": "1048576",
  "nodes": [{"name": "x", "export_base": "4294967296",
             "window_base": "2199023255552", "profile": "switchtec"},
            {"name": "y", "mmio_base": "17179869184", "mmio_size": "65536"}]}
""")
    write(t, "two-node-ring.json",
          '{"name":"r2","topology":"RING","nodes":[{"name":"a"},'
          '{"name":"b"}]}')
    write(t, "huge-export.json",
          '{"name":"big","topology":"RING","defaultExportSize":'
          '"18446744073709551615","nodes":[{"name":"a","exportBase":'
          '"18446744073709547520"},{"name":"b"}]}')
    write(t, "bad-enum.json", '{"name": "r1", "topology": "RINGG"}')
    write(t, "unknown-field.json", '{"name": "r1", "nodez": []}')
    write(t, "no-name.json", '{"topology": "RING"}')
    write(t, "syntax-error.json", '{"name": "r1",\n  "topology": RING}')
    write(t, "not-an-object.json", '[1, 2, 3]')
    write(t, "whitespace.json", " \n\t ")
    write(t, "bad-port.json",
          '{"name":"c","topology":"CUSTOM","nodes":[{"name":"a"},'
          '{"name":"b"}],"links":[{"a":"a","aPort":0,"b":"b","bPort":5000}]}')


# --------------------------------------------------------------------------
# Config virtualizer sessions (config_virtualizer_fuzzer.cc's format)


def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v)


SIZE = {1: 0, 2: 1, 4: 2}


def layout(flags, vectors=4, bir=3, table_offset=0x2000, bars=(), pokes=()):
    out = u8(flags) + u8(vectors - 1) + u8(bir) + u16(table_offset // 8)
    out += u8(len(bars))
    for reg, log2, bar_flags, base in bars:
        out += u8(reg) + u8(log2 - 4) + u8(bar_flags) + u64(base)
    out += u8(len(pokes))
    for off, val in pokes:
        out += u16(off) + u8(val)
    return out


def rd(off, size=4):
    return u8(0) + u16(off) + u8(SIZE[size])


def wr(off, size, value):
    return u8(1) + u16(off) + u8(SIZE[size]) + u32(value)


def rd_table(off):
    return u8(2) + u16(off) + u8(SIZE[4])


def wr_table(off, value):
    return u8(3) + u16(off) + u8(SIZE[4]) + u32(value)


def fail_next(kind):
    return u8(4) + u8(kind)


def size_bar(reg):
    return u8(5) + u8(reg)


FLR = u8(6)
VF_BARS = ((0, 33, 3, 0x4000000000), (3, 14, 3, 0x4200010000),
           (5, 12, 0, 0xFE000000))


def virtualizer_seeds():
    t = "config_virtualizer_fuzzer"
    full = layout(0x3F, bars=VF_BARS)
    ops = (rd(0x00) + rd(0x04) + wr(0x04, 2, 0x0547) + rd(0x04) +
           wr(0x04, 4, 0xFFFF0006) + rd(0x06, 2) + size_bar(0) +
           size_bar(1) + rd(0x10) + rd(0x14) + wr(0x10, 4, 0x12345678) +
           rd(0x10) + wr(0x3C, 1, 0x0B) + rd(0x3C) + rd(0x30) +
           wr(0x72, 2, 0xC003) + rd(0x70) + wr(0xA8, 2, 0x2810) +
           wr(0xB0, 2, 0x0003) + wr(0x104, 4, 1) + rd(0x100))
    msix = (wr_table(0x00, 0xFEE00000) + wr_table(0x04, 0) +
            wr_table(0x08, 0x41) + wr_table(0x0C, 0) + rd_table(0x00) +
            wr_table(0x00, 0x12340000) + wr_table(0x00, 0xFEE01000) +
            wr_table(0x0C, 1) + wr_table(0x1C, 0))
    write(t, "full-vf", full + ops + msix + FLR + rd(0x04) + rd(0x10))
    write(t, "pcie-only-256", layout(0x04, bars=((0, 14, 0, 0xF0000000),)) +
          wr(0xA8, 2, 0x8000) + rd(0xA8, 2) + wr(0xA0, 4, 0) +
          wr(0x0C, 4, 0xFFFFFFFF) + rd(0x0C))
    write(t, "no-caps", layout(0x00) + rd(0x34, 1) + wr(0x34, 1, 0x40) +
          rd(0x10) + wr(0x10, 4, 0xFFFFFFFF) + rd_table(0) + wr_table(0, 1))
    write(t, "msix-only-first", layout(0x23, vectors=1, bir=0,
                                       table_offset=0,
                                       bars=((0, 12, 2, 0xFE001000),)) +
          wr_table(0x0C, 0) + wr_table(0x00, 0xFEE00010) + rd_table(0x08))
    write(t, "write-failures", full + fail_next(1) + wr(0x04, 2, 0x0006) +
          fail_next(0) + rd(0x08) + fail_next(2) + msix + fail_next(1) +
          FLR + rd(0x04))
    write(t, "bad-accesses", full + rd(0x01, 2) + rd(0xFFF, 2) +
          rd(0x1000, 1) + u8(0) + u16(0xFFFF) + u8(2) +
          u8(1) + u16(0x04) + u8(6) + u32(0) + rd_table(0x41) +
          u8(2) + u16(0) + u8(1))
    write(t, "table-outside-bar", layout(0x02, vectors=32, bir=0,
                                         bars=((0, 8, 0, 0),)))
    write(t, "corrupt-caps", layout(0x06, bars=VF_BARS,
                                    pokes=((0x71, 0x70), (0x34, 0x3C))))
    write(t, "pcie-at-end", layout(0x04, pokes=((0x34, 0xFC), (0xFC, 0x10),
                                                (0xFD, 0x00))))
    write(t, "bar-partial-writes", full + wr(0x10, 1, 0xFF) +
          wr(0x12, 2, 0xFFFF) + rd(0x10) + wr(0x14, 4, 0xFFFFFFFF) +
          rd(0x14) + wr(0x1C, 4, 0xFFFFFFF0) + rd(0x1C) + wr(0x24, 4, 1) +
          rd(0x24) + wr(0x18, 2, 0xFFFF) + rd(0x18))


# --------------------------------------------------------------------------
# Manager sessions (manager_fuzz.proto, written as text, encoded by protoc)


def manager_seed(name, text):
    out = subprocess.run(
        ["protoc", f"--proto_path={ROOT / 'proto'}",
         f"--proto_path={GOOGLEAPIS}", f"--proto_path={HERE}",
         "--encode=fabric.fuzz.ManagerSession", "manager_fuzz.proto"],
        input=text.encode(), capture_output=True, check=True, cwd=HERE)
    write("manager_fuzzer", name, out.stdout)


def ring(name, nodes, extra=""):
    ns = " ".join(f'nodes {{ name: "{n}" }}' for n in nodes)
    return (f'steps {{ create_fabric {{ spec {{ name: "{name}" '
            f'topology: RING {ns} {extra} }} request_id: "cf-{name}" }} }}\n')


def manager_seeds():
    nodes = ["n1", "n2", "n3", "n4"]
    agents = "".join(
        f'steps {{ register_node {{ node: "{n}" backend: "sim" }} }}\n'
        f'steps {{ report_status {{ node: "{n}" applied_generation: -1 }} }}\n'
        for n in nodes)
    manager_seed("ring-lifecycle", ring("lab", nodes) + """
steps { create_allocation { allocation { borrower: "n1" target: "n3"
  size: 4194304 owner: "sched" labels { key: "job" value: "42" } }
  request_id: "a1" } }
""" + agents + """
steps { get_allocation { name: "#0" } }
steps { list_allocations { fabric: "fabrics/lab" page_size: 1 } }
steps { prepare_verify: "#0" }
steps { set_link_state { name: "links/n2--n3" up: false request_id: "l1" } }
steps { get_address_map { name: "bridges/n2" } }
steps { restart: true }
steps { set_link_state { name: "n2--n3" up: true } }
steps { delete_allocation { name: "#0" request_id: "d1" } }
steps { delete_fabric { name: "fabrics/lab" request_id: "df" } }
""")
    manager_seed("star-lease", """
steps { create_fabric { spec { name: "rack" topology: STAR hub: "mgmt"
  nodes { name: "mgmt" } nodes { name: "s1" } nodes { name: "s2" } } } }
steps { create_allocation { allocation { borrower: "s1" target: "s2"
  size: 1048576 ttl { seconds: 3600 } } } }
steps { create_allocation { allocation { borrower: "nodes/s2" target: "mgmt"
  size: 2097152 } request_id: "keep" } }
steps { advance_clock_ms: 3600001 }
steps { list_allocations { } }
steps { restart: true }
steps { delete_fabric { name: "rack" force: true } }
""")
    manager_seed("rejections", ring("lab", nodes) + """
steps { create_fabric { spec { name: "Bad_Name" topology: RING
  nodes { name: "a" } nodes { name: "b" } } } }
steps { create_fabric { spec { name: "lab" topology: RING
  nodes { name: "x" } nodes { name: "y" } } } }
steps { create_fabric { spec { name: "dup" topology: RING
  nodes { name: "n1" } nodes { name: "z" } } } }
steps { create_fabric { spec { name: "nt" nodes { name: "a" } } } }
steps { create_allocation { allocation { borrower: "n1" target: "n1"
  size: 4096 } } }
steps { create_allocation { allocation { borrower: "n1" target: "n2"
  size: 0 } } }
steps { create_allocation { allocation { borrower: "n1" target: "n2"
  size: 1099511627776 } } }
steps { create_allocation { allocation { borrower: "n1" target: "ghost"
  size: 4096 } } }
steps { create_allocation { allocation { borrower: "n1" target: "n2"
  size: 1048576 } request_id: "cf-lab" } }
steps { delete_allocation { name: "allocations/nope" } }
steps { set_link_state { name: "links/n1--n3" up: false } }
steps { report_status { node: "ghost" applied_generation: 5 } }
steps { report_status { node: "n1" applied_generation: 99 } }
steps { list_fabrics { page_size: -1 } }
steps { list_nodes { page_token: "!!" } }
steps { delete_fabric { name: "fabrics/other" } }
steps { delete_fabric { name: "lab" } }
""")
    manager_seed("custom-validate-only", """
steps { create_fabric { validate_only: true spec { name: "m" topology: CUSTOM
  nodes { name: "a" profile: "idt" } nodes { name: "b" profile: "amd" }
  nodes { name: "c" }
  links { a: "a" a_port: 1 b: "b" b_port: 1 }
  links { a: "b" a_port: 2 b: "c" b_port: 1 } } } }
steps { create_fabric { spec { name: "m" topology: CUSTOM
  nodes { name: "a" profile: "idt" } nodes { name: "b" profile: "amd" }
  nodes { name: "c" }
  links { a: "a" a_port: 1 b: "b" b_port: 1 }
  links { a: "b" a_port: 2 b: "c" b_port: 1 } } } }
steps { create_allocation { allocation { borrower: "a" target: "c"
  size: 1048576 } request_id: "x" } }
steps { report_status { node: "b" applied_generation: -1 errors {
  entry: "window 0" message: "refused" allocation: "#0" } } }
steps { register_node { node: "b" } }
steps { report_status { node: "b" applied_generation: -1 errors {
  entry: "window 0" message: "refused" allocation: "#0" } } }
steps { set_link_state { name: "links/b--c" up: false request_id: "l" } }
steps { list_bridges { fabric: "fabrics/m" } }
steps { desired_config_for: "a" }
steps { restart: true }
""")
    manager_seed("many-allocations", ring("big", [f"n{i}" for i in range(8)],
                                          'default_profile: "switchtec"') +
                 "".join(
                     f'steps {{ create_allocation {{ allocation {{ '
                     f'borrower: "n{i % 8}" target: "n{(i * 3 + 1) % 8}" '
                     f'size: {65536 * (1 + i % 5)} }} }} }}\n'
                     for i in range(12)) +
                 'steps { delete_allocation { name: "#3" } }\n'
                 'steps { list_address_maps { page_size: 3 } }\n')
    manager_seed("empty", "")
    vf_seeds()


# VF lending: a ring n0 n1 n2 whose n1 lends devices (as manager_test.cc's
# ManagerVfTest): PF 3b:00.0 and its VFs 3b:02.x, each with a 64 KiB BAR0
# (and, with bar3, a 16 KiB BAR3) in n1's device MMIO range.
MMIO = 0x300_0000_0000


def vf_fabric(n0_profile=""):
    profile = f' profile: "{n0_profile}"' if n0_profile else ""
    return (f'steps {{ create_fabric {{ spec {{ name: "vf" topology: RING '
            f'nodes {{ name: "n0"{profile} }} nodes {{ name: "n1" '
            f'mmio_base: {MMIO} mmio_size: {1 << 30} }} nodes {{ name: "n2" }} '
            f'}} request_id: "cf-vf" }} }}\n')


def vf_inventory(vfs, bar3=False, no_addr=()):
    out = ('functions { address: "0000:3b:00.0" kind: SRIOV_PF '
           'vendor_id: 32902 } ')
    for i in range(vfs):
        bars = f"bar_sizes: 65536 bar_addresses: " + (
            "0" if i in no_addr else str(MMIO + i * 65536))
        if bar3:
            bars += (f" bar_sizes: 0 bar_addresses: 0 bar_sizes: 0 "
                     f"bar_addresses: 0 bar_sizes: 16384 bar_addresses: "
                     f"{MMIO + (1 << 20) + i * 16384}")
        out += (f'functions {{ address: "0000:3b:02.{i}" kind: SRIOV_VF '
                f'pf_address: "0000:3b:00.0" vendor_id: 32902 '
                f'device_id: 5452 {bars} }} ')
    return out


def vf_register(inventory):
    return "".join(
        f'steps {{ register_node {{ node: "{n}" backend: "sim" '
        f'control_address: "127.0.0.1:{7000 + i}"'
        + (f' inventory {{ {inventory} }}' if n == "n1" else "") + " } }\n"
        for i, n in enumerate(["n0", "n1", "n2"]))


def vf_report(shadow_of=None):
    return "".join(
        f'steps {{ report_status {{ node: "{n}" applied_generation: -1'
        + (f' shadows {{ attachment: "{shadow_of}" ready: true }}'
           if shadow_of and n == "n0" else "") + " } }\n"
        for n in ["n0", "n1", "n2"])


def vf_seeds():
    manager_seed("vf-lifecycle", vf_fabric() + vf_register(vf_inventory(2)) +
                 vf_report() + """
steps { list_virtual_functions { fabric: "fabrics/vf" } }
steps { get_virtual_function { name: "nodes/n1/vfs/0000-3b-02.0" } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0"
  borrower: "nodes/n0" vm: "vm1" interrupts: DIRECT owner: "sched" }
  request_id: "at1" } }
steps { get_attachment { name: "#0" } }
steps { list_attachments { node: "n1" page_size: 1 } }
""" + vf_report("#0") + """
steps { prepare_attachment_op { name: "#0" need_ready: true } }
steps { agent_address: "nodes/n0" }
steps { desired_config_for: "n1" }
steps { restart: true }
steps { register_node { node: "n1" inventory { """ + vf_inventory(2) + """} } }
steps { get_attachment { name: "attachments/#0" } }
steps { delete_attachment { name: "#0" request_id: "dt1" } }
steps { get_virtual_function { name: "n1/0000:3b:02.0" } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0"
  borrower: "nodes/n0" vm: "vm1" interrupts: DIRECT owner: "sched" }
  request_id: "at1" } }
steps { restart: true }
steps { delete_fabric { name: "vf" request_id: "df" } }
""")
    manager_seed("vf-rejections", vf_fabric() + vf_register(vf_inventory(2)) +
                 """
steps { create_attachment { attachment { vf: "n1/0000:3b:00.0" borrower: "n0" } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:09.0" borrower: "n0" } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n1" } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n9" } } }
steps { create_attachment { attachment { vf: "nope" borrower: "n0" } } }
steps { create_attachment { attachment { borrower: "n0" } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n0"
  dma_size: 4097 } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n0"
  interrupts: 42 } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n0"
  interrupts: HYPERVISOR } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n0"
  } request_id: "cf-vf" } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n0"
  } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n2"
  } } }
steps { delete_fabric { name: "vf" } }
steps { prepare_attachment_op { name: "#0" need_ready: true } }
steps { list_attachments { page_size: -1 } }
steps { list_virtual_functions { page_token: "!!" } }
steps { get_virtual_function { name: "n1" } }
steps { get_virtual_function { name: "n1/0000:3b:07.0" } }
steps { agent_address: "ghost" }
steps { advance_clock_ms: 10000 }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.1" borrower: "n2"
  } } }
steps { delete_attachment { name: "attachments/att-nope" } }
steps { delete_fabric { name: "vf" force: true } }
""")
    manager_seed("vf-degraded", vf_fabric("intel-xeon-gen4") +
                 vf_register(vf_inventory(3, bar3=True, no_addr=(2,))) + """
steps { create_attachment { attachment { vf: "n1/0000:3b:02.0" borrower: "n0"
  } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.1" borrower: "n0"
  } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.2" borrower: "n2"
  } } }
steps { report_status { node: "n1" applied_generation: -1 vf_health {
  vf_address: "0000:3b:02.1" reason: "vendor id reads 0xffff" } errors {
  entry: "window 0" message: "refused" allocation: "attachments/#0" } } }
steps { create_attachment { attachment { vf: "n1/0000:3b:02.1" borrower: "n2"
  } } }
steps { set_link_state { name: "links/n0--n1" up: false } }
steps { get_attachment { name: "#0" } }
steps { report_status { node: "n1" applied_generation: -1 inventory { } } }
steps { list_virtual_functions { node: "n1" } }
steps { restart: true }
steps { delete_fabric { name: "vf" force: true } }
""")


# --------------------------------------------------------------------------
# Agent sessions (agent_fuzz.proto, written as text, encoded by protoc): the
# lender n1 of one_pf.json ("#0" the PF, "#1".."#8" its VFs), its host
# memory at 4 GiB (+16 MiB) holding the DMA and MSI-X windows.
AGENT_MEM = 1 << 32
AGENT_DMA = AGENT_MEM
AGENT_MSIX = AGENT_MEM + (2 << 20)


def agent_seed(name, text):
    out = subprocess.run(
        ["protoc", f"--proto_path={ROOT / 'proto'}",
         f"--proto_path={GOOGLEAPIS}", f"--proto_path={HERE}",
         "--encode=fabric.fuzz.AgentSession", "agent_fuzz.proto"],
        input=text.encode(), capture_output=True, check=True, cwd=HERE)
    write("agent_rpc_fuzzer", name, out.stdout)


def lend(att="att-1", vf="#1", borrower="nodes/n0", dma=AGENT_DMA,
         msix=AGENT_MSIX, field="assignments"):
    return (f'{field} {{ attachment: "attachments/{att}" role: LENDER '
            f'vf_address: "{vf}" lender: "nodes/n1" borrower: "{borrower}" '
            f'windows {{ role: "dma" from_node: "n1" to_node: "n0" '
            f'local_addr: {dma} size: {1 << 20} }} '
            f'windows {{ role: "msix" from_node: "n1" to_node: "n0" '
            f'local_addr: {msix} size: 4096 }} }}\n')


def access(op, vf="#1", borrower="nodes/n0", **fields):
    f = " ".join(f"{k}: {v}" for k, v in fields.items())
    return (f'steps {{ vf_access {{ borrower: "{borrower}" vf_address: '
            f'"{vf}" op: {op} {f} }} }}\n')


# Bus mastering, then MSI-X enabled (as a borrower's driver would).
AGENT_START = (access("CONFIG_WRITE", offset=0x04, size=2, value=0x0006) +
               access("CONFIG_WRITE", offset=0x82, size=2, value=0x8000))


def agent_seeds():
    agent_seed("config", lend() +
               access("CONFIG_SNAPSHOT") +
               access("CONFIG_READ", offset=0, size=4) +
               access("CONFIG_READ", offset=0x82, size=2) +
               access("CONFIG_WRITE", offset=0x04, size=2, value=0x0004) +
               access("CONFIG_WRITE", offset=0x82, size=2, value=0xC000) +
               access("CONFIG_WRITE", offset=0x48, size=2, value=0x2810) +
               access("CONFIG_READ", offset=0x04, size=1) +
               access("CONFIG_WRITE", offset=0x10, size=4, value=0xFFFFFFFF) +
               access("CONFIG_WRITE", offset=0x34, size=1, value=0))
    agent_seed("dma", lend() +
               access("DMA", addr=AGENT_DMA + 16, data='"abcd"') +
               AGENT_START +
               access("DMA", addr=AGENT_DMA + 16, data='"abcd"') +
               access("DMA", addr=AGENT_DMA + (1 << 20) - 2, data='"abcd"') +
               access("DMA", addr=AGENT_MSIX, data='"abcd"') +
               access("DMA", addr=0xFFFFFFFFFFFFFFFE, data='"abcd"'))
    agent_seed("msix", lend() + AGENT_START +
               access("MSIX_ENTRY", vector=0, addr=AGENT_MSIX, msi_data=7) +
               access("RAISE_MSIX", vector=0) +
               access("MSIX_ENTRY", vector=1, addr=0xFEE00000, masked="true") +
               access("RAISE_MSIX", vector=1) +
               access("MSIX_ENTRY", vector=2, addr=0xFEE00000) +
               access("MSIX_ENTRY", vector=4, addr=AGENT_MSIX, masked="true") +
               access("MSIX_ENTRY", vector=-1, addr=AGENT_MSIX) +
               access("RAISE_MSIX", vector=4) +
               access("RAISE_MSIX", vector=-1))
    agent_seed("wrong-borrower", lend() +
               access("CONFIG_READ", borrower="nodes/n2", offset=0, size=4) +
               access("CONFIG_WRITE", borrower="", offset=4, size=2, value=4) +
               access("CONFIG_READ", borrower="n0", offset=0, size=4) +
               access("CONFIG_READ", vf="#2", offset=0, size=4) +
               access("CONFIG_READ", vf="#0", offset=0, size=4) +
               access("DMA", vf="0000:3b:02.0", borrower="nodes/n2",
                      addr=AGENT_DMA, data='"x"') +
               access("CONFIG_SNAPSHOT", vf="zz"))
    agent_seed("bad-sizes", lend() +
               access("CONFIG_READ", offset=0, size=3) +
               access("CONFIG_READ", offset=0, size=0) +
               access("CONFIG_READ", offset=4094, size=4) +
               access("CONFIG_READ", offset=4096, size=4) +
               access("CONFIG_WRITE", offset=4, size=0xFFFFFFFF, value=4) +
               access("CONFIG_WRITE", offset=5, size=2, value=4) +
               access("CONFIG_WRITE", offset=0x82, size=4, value=0xFFFFFFFF) +
               access("OP_UNSPECIFIED"))
    agent_seed("relend", lend() + AGENT_START +
               access("MSIX_ENTRY", vector=0, addr=AGENT_MSIX, msi_data=7) +
               "steps { set_assignments { " +
               lend(att="att-2", borrower="nodes/n2", msix=AGENT_MSIX + 8192,
                    field="assignments") + "} }\n" +
               access("CONFIG_READ", offset=4, size=2) +
               access("CONFIG_READ", borrower="nodes/n2", offset=4, size=2) +
               access("CONFIG_WRITE", borrower="nodes/n2", offset=0x04,
                      size=2, value=0x0006) +
               access("MSIX_ENTRY", borrower="nodes/n2", vector=1,
                      addr=AGENT_MSIX + 8192, msi_data=1) +
               "steps { set_assignments { } }\n")
    agent_seed("borrower", """
assignments { attachment: "attachments/b-1" role: BORROWER
  vf_address: "0000:3b:02.0" lender: "nodes/n1" borrower: "nodes/n0"
  lender_agent: "127.0.0.1:1" vm: "vm-1" interrupts: DIRECT
  windows { role: "msix" local_addr: 4297064448 target_addr: 4297064448
            size: 4096 } }
steps { access_shadow { attachment: "attachments/b-1" space: CONFIG op: READ
  offset: 0 size: 4 } }
steps { access_shadow { attachment: "attachments/x" op: DRIVER_SETUP } }
steps { shadow_interrupt { attachment: "attachments/b-1" addr: 4297064448
  data: 0 } }
steps { set_vm_state { node: "nodes/n0" vm: "" running: true } }
steps { set_vm_state { node: "nodes/n0" vm: "vm-1" running: true core: 1 } }
steps { set_vm_state { node: "nodes/n0" vm: "vm-1" running: false } }
steps { set_vm_state { node: "nodes/n0" vm: "vm-2" running: false } }
""")
    agent_seed("faults", lend() + AGENT_START +
               'steps { fault { vf_address: "#1" failed: true } }\n' +
               access("CONFIG_READ", offset=0, size=4) +
               access("CONFIG_WRITE", offset=4, size=2, value=0) +
               access("DMA", addr=AGENT_DMA, data='"abcd"') +
               access("RAISE_MSIX", vector=0) +
               'steps { fault { vf_address: "#1" } }\n' +
               'steps { fault { vf_address: "#0" link_down: true } }\n' +
               access("MSIX_ENTRY", vector=0, addr=AGENT_MSIX) +
               "steps { set_assignments { } }\n")
    agent_seed("empty", "")


def main():
    config_space_seeds()
    lspci_seeds()
    fabric_spec_seeds()
    virtualizer_seeds()
    manager_seeds()
    agent_seeds()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} files, "
              f"{sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
