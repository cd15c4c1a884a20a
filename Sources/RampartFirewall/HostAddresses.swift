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

extension HostAddresses {
    /// The addresses of the peers' URLs (literal, or what their names resolve to now): blocking a
    /// peer would cut this node off from it, so the safety rails protect them too.
    public static func peers(_ peers: [Peer]) -> [SafetyPolicy.Protected] {
        peers.flatMap { peer -> [SafetyPolicy.Protected] in
            guard var host = URLComponents(string: peer.url)?.host, !host.isEmpty else { return [] }
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if let literal = try? IPAddress(parsing: host) { return [SafetyPolicy.Protected(IPNetwork(host: literal), "peer \(peer.name)")] }
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var results: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, nil, &hints, &results) == 0, let first = results else { return [] }
            defer { freeaddrinfo(results) }
            var found: [SafetyPolicy.Protected] = []
            for entry in sequence(first: first, next: { $0.pointee.ai_next }) {
                var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                guard getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0,
                    let address = try? IPAddress(parsing: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
                else { continue }
                found.append(SafetyPolicy.Protected(IPNetwork(host: address), "peer \(peer.name) (\(host))"))
            }
            return found
        }
    }
}
