import FuzzDriver
import Foundation
import RampartCore

@testable import RampartFirewall

/// The nftables batch builder (`NFTablesLayout`): a sequence of blocks, changed blocks and
/// unblocks of addresses and nested networks (four input bytes each; a zero first byte ends a
/// batch), planned batch by batch and applied to a model of the kernel's sets as nft applies a
/// transaction. Each batch must be one nft accepts (nothing added to an interval set overlaps
/// what the set held before the batch or another element it ends with), and after it the sets
/// must hold exactly the blocks placed, each in its direction's sets and its layer.
@main
enum FuzzFirewall {
    static func main() {
        runFuzzer { bytes in
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            var layout = NFTablesLayout()
            var kernel: [NFTablesLayout.SetName: Set<String>] = [:]
            var changes: [FirewallChange] = []
            var index = bytes.startIndex
            while index < bytes.endIndex {
                let op = Array(bytes[index..<min(index + 4, bytes.endIndex)]) + [0, 0, 0]
                index += 4
                if op[0] != 0 {
                    // Targets inside 10.0.0.0/14, prefixes /14 to /32, so that they nest and collide.
                    let length = 14 + Int(op[3] >> 3) % 19
                    let raw = UInt32(op[1] & 3) << 16 | UInt32(op[2]) << 8 | UInt32(op[3] & 7) | 0x0A00_0000
                    let target = IPNetwork(address: .v4(raw & ~0 << (32 - UInt32(length))), prefixLength: length)
                    if op[0] % 5 == 0 {
                        changes.append(.remove(target))
                    } else {
                        let direction: Direction = [.inbound, .outbound, .both][Int(op[0]) % 3]
                        // Up to three hours; a quarter of them already over.
                        let expiry = now.addingTimeInterval(Double(Int(op[1] >> 2) % 4) * 3600 - 60)
                        changes.append(.add(FirewallBlock(target: target, direction: direction, expiresAt: expiry)))
                    }
                }
                if op[0] == 0 || index >= bytes.endIndex {
                    apply(layout.plan(changes, now: now), to: &kernel)
                    layout.committed()
                    check(layout, kernel)
                    changes.removeAll()
                }
            }
        }
    }

    /// What nft does with the batch's script, or a crash where nft would refuse the transaction.
    static func apply(_ batch: NFTablesLayout.Batch, to kernel: inout [NFTablesLayout.SetName: Set<String>]) {
        let before = kernel
        for (set, elements) in batch.ensure { kernel[set, default: []].formUnion(elements) }
        for (set, elements) in batch.delete {
            for element in elements where kernel[set, default: []].remove(element) == nil {
                fatalError("deletes \(element) from \(set), which does not hold it")
            }
        }
        for (set, elements) in batch.add {
            for (element, milliseconds) in elements {
                if milliseconds <= 0 { fatalError("adds \(element) to \(set) with a timeout of \(milliseconds) ms") }
                if set.layer != nil, let network = try? IPNetwork(parsing: element, allowBareAddress: true) {
                    for held in before[set, default: []] where held != element {
                        if let other = try? IPNetwork(parsing: held, allowBareAddress: true), other.overlaps(network) {
                            fatalError("adds \(element) to \(set), which held \(held) before the batch")
                        }
                    }
                }
                kernel[set, default: []].insert(element)
            }
        }
        for (set, elements) in kernel where set.layer != nil {
            let networks = elements.compactMap { try? IPNetwork(parsing: $0, allowBareAddress: true) }
            for (i, a) in networks.enumerated() {
                for b in networks[(i + 1)...] where a.overlaps(b) { fatalError("\(set) ends the batch with \(a) and \(b), which overlap") }
            }
        }
    }

    /// The sets hold exactly what the layout says it placed.
    static func check(_ layout: NFTablesLayout, _ kernel: [NFTablesLayout.SetName: Set<String>]) {
        var expected: [NFTablesLayout.SetName: Set<String>] = [:]
        for (target, placement) in layout.placed {
            for side in placement.sides {
                expected[NFTablesLayout.SetName(side: side, family: target.family, layer: placement.layer), default: []]
                    .insert(NFTablesLayout.element(target))
            }
        }
        let held = kernel.filter { !$0.value.isEmpty }
        if held != expected { fatalError("the sets hold \(held), the layout placed \(expected)") }
    }
}
