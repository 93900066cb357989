#!/usr/bin/env python3
"""Records the nftables notifications that loading a ruleset produces, as seeds of the nft fuzz target.

Run as root under the kernel lock, inside a fresh network namespace so no real table is touched:
  flock /tmp/topowall-kernel.lock unshare -n python3 tools/fuzz/record_nft.py \
      tests/unit/topology/golden/small.nft tests/fuzz/corpus/nft
Each datagram received (one or more NEWTABLE/NEWCHAIN/NEWRULE/NEWSET/NEWSETELEM/NEWGEN messages)
becomes one file, as the agent's NftMonitor and the writer's dumps receive them. Then the table is
deleted again, which records the DEL* messages too.
"""
import os
import select
import socket
import subprocess
import sys

NETLINK_NETFILTER, NFNLGRP_NFTABLES, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 12, 7, 270, 1
MAX_BYTES = 8192  # the fuzz target's -max_len


def main():
    ruleset, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    subprocess.run(["nft", "-f", ruleset], check=True)
    subprocess.run(["nft", "delete", "table", "inet", "topowall"], check=True)
    n = 0
    while select.select([s], [], [], 0.5)[0]:
        data = s.recv(1 << 16)
        if len(data) > MAX_BYTES:
            continue
        with open(os.path.join(out, "recorded_%02d.bin" % n), "wb") as f:
            f.write(data)
        n += 1
    print("%d datagrams recorded in %s" % (n, out))


if __name__ == "__main__":
    main()
