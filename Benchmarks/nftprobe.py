"""Asks the kernel whether an address is in an nftables set, with one netlink request: used by
the firewall and peers benchmarks to time when an element appears."""
import ipaddress, os, socket, struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETSETELEM = 13
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLA_F_NESTED = 0x8000
NLMSG_ERROR = 2

def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)

class ElementProbe:
    """Asks the kernel whether one address is in a set: one netlink request, no set dump (which
    `nft get element` does, costing 0.4 s on a 100k set)."""
    FAMILIES = {"inet": 1, "ip": 2, "ip6": 10}

    def __init__(self, table, set_name, family="inet"):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.table, self.set = table, set_name
        self.family = self.FAMILIES[family]
        self.seq = 0

    def contains(self, address):
        self.seq += 1
        key = ipaddress.ip_address(address).packed
        element = attr(1 | NLA_F_NESTED, attr(1 | NLA_F_NESTED, attr(1, key)))
        body = struct.pack("=BBH", self.family, 0, 0)  # NFPROTO_*, version, res_id
        body += attr(1, self.table.encode() + b"\0") + attr(2, self.set.encode() + b"\0") + attr(3 | NLA_F_NESTED, element)
        header = struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
        self.sock.send(header + body)
        found = False
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, flags, seq, pid = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", data, offset + 16)
                    if error == 0:
                        return found
                    if -error == 2:  # ENOENT
                        return False
                    raise OSError(-error, os.strerror(-error))
                found = True
                offset += (length + 3) & ~3
