import Foundation
import RampartCore

/// The addresses this host's interfaces hold, read with getifaddrs: a block on one of them would
/// cut the host off, so the safety rails protect them all.
public enum HostAddresses {
    public static func current() -> [SafetyPolicy.Protected] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        let builtIn = SafetyPolicy()
        var found: [SafetyPolicy.Protected] = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let socketAddress = entry.pointee.ifa_addr else { continue }
            let name = String(cString: entry.pointee.ifa_name)
            let address: IPAddress
            switch Int32(socketAddress.pointee.sa_family) {
            case AF_INET:
                let raw = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                address = .v4(UInt32(bigEndian: raw))
            case AF_INET6:
                let bytes = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                }
                address = .v6(bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) })
            default:
                continue
            }
            let host = IPNetwork(host: address)
            // Loopback and link-local addresses are protected already, with a clearer reason.
            if builtIn.check(host)?.code == "protected" { continue }
            found.append(SafetyPolicy.Protected(host, "an address of this host (\(name))"))
        }
        return found
    }
}
