"""Unit tests for micado.core.listening_ports against a fake /proc tree."""

from __future__ import annotations

import os

from ansible_collections.micado.core.plugins.modules import listening_ports

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _row(local, state, inode):
    return (f"   0: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000"
            f"     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n")


def make_proc(tmp_path):
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    # 0.0.0.0:443 LISTEN (inode 111), 127.0.0.1:9090 LISTEN (222), an established socket (333)
    (proc / "net" / "tcp").write_text(HEADER + _row("00000000:01BB", "0A", 111)
                                      + _row("0100007F:2382", "0A", 222)
                                      + _row("0100007F:C350", "01", 333))
    # [::]:6443 LISTEN (444)
    (proc / "net" / "tcp6").write_text(HEADER + _row("00000000000000000000000000000000:192B", "0A", 444))
    for pid, comm, cgroup, inodes in (
        (10, "nginx", "0::/system.slice/nginx.service\n", [111]),
        (11, "nginx", "0::/system.slice/nginx.service\n", [111]),
        (20, "prometheus", "0::/system.slice/prometheus.service\n", [222]),
        (30, "python3", "0::/user.slice/user-0.slice/session-3.scope\n", [444]),
    ):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "cgroup").write_text(cgroup)
        for number, inode in enumerate(inodes, start=3):
            os.symlink(f"socket:[{inode}]", proc / str(pid) / "fd" / str(number))
    return str(proc)


def test_every_listener_with_process_and_unit(tmp_path):
    found = listening_ports.collect(proc=make_proc(tmp_path))
    assert [(item["port"], item["address"], item["pid"], item["process"], item["unit"])
            for item in found] == [
        (443, "0.0.0.0", 10, "nginx", "nginx.service"),
        (443, "0.0.0.0", 11, "nginx", "nginx.service"),
        (6443, "::", 30, "python3", "session-3.scope"),
        (9090, "127.0.0.1", 20, "prometheus", "prometheus.service"),
    ]


def test_only_the_ports_asked_for(tmp_path):
    found = listening_ports.collect(ports=[9090, 8080], proc=make_proc(tmp_path))
    assert [item["port"] for item in found] == [9090]


def test_a_socket_with_no_visible_owner(tmp_path):
    proc = make_proc(tmp_path)
    os.unlink(os.path.join(proc, "20", "fd", "3"))
    found = listening_ports.collect(ports=[9090], proc=proc)
    assert found == [{"port": 9090, "address": "127.0.0.1", "pid": None, "process": "", "unit": ""}]
