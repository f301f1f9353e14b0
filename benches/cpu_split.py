#!/usr/bin/env python3
"""Runs a command and splits the CPU time it cost between the admin host and
the hosts, for the test bed's loopback fleet, where both share the same cores.

Run inside the test bed's network namespace (`testbed exec -- python3
benches/cpu_split.py CMD...`). Counted, from the start of CMD to its end:

- admin: CMD's own process tree (its reaped children: swh-deploy or clush and
  the ssh clients they started) plus every `ssh` process of the namespace
  still alive at the end (the control masters, which fork away from their
  client and outlive it);
- hosts: every `sshd` process of the namespace (with the session processes
  it reaped), i.e. what 200 real hosts would each pay on their own CPU;
- relay: the test bed's latency relay (the stand-in for the network).

Prints one JSON object: wall seconds and CPU seconds per side. Processes of
other namespaces (other test beds, builds) are not counted.
"""

import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
SELF_NET = os.readlink("/proc/self/ns/net")


def side(pid, comm):
    """Which side a process of this namespace is on, or None."""
    if comm == "sshd":
        return "hosts"
    if comm == "ssh":
        return "admin"
    if comm == "testbed":
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"\0relay\0" in f.read():
                    return "relay"
        except OSError:
            return None
    return None


def snapshot():
    """pid -> (side, start time, own CPU seconds, reaped children's CPU seconds)."""
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != SELF_NET:
                continue
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            where = side(pid, comm)
            if where is None:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            with open(f"/proc/{pid}/schedstat") as f:
                own = int(f.read().split()[0]) / 1e9
            children = (int(fields[13]) + int(fields[14])) / TICK
            procs[pid] = (where, fields[19], own, children)
        except (OSError, ValueError, IndexError):
            continue
    return procs


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: cpu_split.py COMMAND [ARG...]")
    before = snapshot()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = snapshot()
    cpu = {"admin": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), "hosts": 0.0, "relay": 0.0}
    for pid, (where, start, own, children) in after.items():
        old = before.get(pid)
        if old is not None and old[1] == start:
            cpu[where] += (own - old[2]) + (children - old[3])
        else:
            cpu[where] += own + children
    out = {"rc": rc, "wall_s": round(wall, 3)}
    out.update({f"{k}_cpu_s": round(v, 3) for k, v in cpu.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
