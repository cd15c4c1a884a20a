import Foundation
import RampartCore

/// Where each block lives in Rampart's nftables sets, and the plan of a batch: pure, so the
/// backend's bookkeeping is tested without a kernel.
///
/// Addresses go into hash sets (`in4`, `out6`, ...), cheap to change one at a time. Networks go
/// into interval sets, and nft refuses overlapping intervals in one set, while a /24 block inside
/// an active /16 block is legitimate (with its own expiry). So networks are spread over
/// `layers` interval sets per side and family (`in4_net0` ... `in4_net3`): a network goes into
/// the first layer where it overlaps nothing, and every element keeps exactly its decision's
/// expiry as its kernel timeout.
struct NFTablesLayout {
    enum Side: String, CaseIterable, Sendable {
        case inbound = "in"
        case outbound = "out"

        static func of(_ direction: Direction) -> [Side] {
            switch direction {
            case .inbound: [.inbound]
            case .outbound: [.outbound]
            case .both: [.inbound, .outbound]
            }
        }
    }

    /// One of the table's sets.
    struct SetName: Hashable, Sendable, Comparable, CustomStringConvertible {
        var side: Side
        var family: IPFamily
        /// nil: the address (hash) set; otherwise the interval layer.
        var layer: Int?

        var description: String {
            let base = "\(side.rawValue)\(family == .v4 ? "4" : "6")"
            return layer.map { "\(base)_net\($0)" } ?? base
        }

        static func < (lhs: SetName, rhs: SetName) -> Bool { lhs.description < rhs.description }
    }

    /// One per block held: a direction rather than an array of sides, so that it needs no
    /// allocation of its own.
    struct Placement: Hashable, Sendable {
        var direction: Direction
        var expiresAt: Date
        var layer: Int?

        var sides: [Side] { Side.of(direction) }
    }

    /// A batch of element changes, written as one `nft -f` transaction.
    struct Batch {
        /// Elements about to be deleted are first added with a short timeout: deleting an element
        /// whose timeout has just lapsed would fail the whole transaction, adding an existing one
        /// does not.
        var ensure: [SetName: [String]] = [:]
        var delete: [SetName: [String]] = [:]
        var add: [SetName: [(element: String, milliseconds: Int64)]] = [:]
        /// Networks that found no free layer: not enforced, reported.
        var unplaced: [IPNetwork] = []

        var isEmpty: Bool { delete.isEmpty && add.isEmpty }

        mutating func remove(_ element: String, from set: SetName) {
            ensure[set, default: []].append(element)
            delete[set, default: []].append(element)
        }

        /// The nft script, with every value rendered from a parsed address: nothing typed by a
        /// user reaches nft as text.
        func script(table: String) -> String {
            var out = ""
            func lines(_ verb: String, _ sets: [SetName: [String]], suffix: String) {
                for (set, elements) in sets.sorted(by: { $0.key < $1.key }) where !elements.isEmpty {
                    for slice in elements.chunked(5_000) {
                        out += "\(verb) element inet \(table) \(set) { \(slice.map { $0 + suffix }.joined(separator: ", ")) }\n"
                    }
                }
            }
            lines("add", ensure, suffix: " timeout 1000ms")
            lines("delete", delete, suffix: "")
            for (set, elements) in add.sorted(by: { $0.key < $1.key }) where !elements.isEmpty {
                for slice in elements.chunked(5_000) {
                    out +=
                        "add element inet \(table) \(set) { \(slice.map { "\($0.element) timeout \($0.milliseconds)ms" }.joined(separator: ", ")) }\n"
                }
            }
            return out
        }
    }

    static let layers = 4

    private(set) var placed: [IPNetwork: Placement] = [:]
    /// Per family and layer, which networks it holds (and their supernets, for overlap queries).
    private var occupancy: [IPFamily: [Occupancy]] = [
        .v4: Array(repeating: Occupancy(), count: layers), .v6: Array(repeating: Occupancy(), count: layers),
    ]
    /// Networks deleted by the batch being planned keep their layer slot until it commits: nft
    /// checks a transaction's adds against the set as it was before the transaction.
    private var vacating: [(IPNetwork, Int)] = []

    static func element(_ target: IPNetwork) -> String {
        target.isHost ? target.address.description : target.cidrNotation
    }

    /// Plans `changes` (the last change per target wins) against what the sets hold.
    mutating func plan(_ changes: [FirewallChange], now: Date) -> Batch {
        var last: [IPNetwork: FirewallChange] = [:]
        var order: [IPNetwork] = []
        for change in changes {
            let target: IPNetwork
            switch change {
            case .add(let block): target = block.target
            case .remove(let t): target = t
            }
            if last.updateValue(change, forKey: target) == nil { order.append(target) }
        }
        var batch = Batch()
        for target in order {
            switch last[target]! {
            case .add(let block):
                let milliseconds = Int64((block.expiresAt.timeIntervalSince(now) * 1000).rounded(.up))
                if milliseconds <= 0 {
                    remove(target, in: &batch)
                } else {
                    add(block, milliseconds: milliseconds, in: &batch)
                }
            case .remove:
                remove(target, in: &batch)
            }
        }
        return batch
    }

    /// The batch planned last was applied: the slots it vacated are free.
    mutating func committed() {
        for (network, layer) in vacating { occupancy[network.family]![layer].remove(network) }
        vacating.removeAll()
    }

    private mutating func add(_ block: FirewallBlock, milliseconds: Int64, in batch: inout Batch) {
        let target = block.target
        let element = Self.element(target)
        let sides = Side.of(block.direction)
        if let old = placed[target] {
            for side in old.sides where !sides.contains(side) {
                batch.remove(element, from: SetName(side: side, family: target.family, layer: old.layer))
            }
            for side in sides {
                let set = SetName(side: side, family: target.family, layer: old.layer)
                // A changed timeout is deleted and added again: older kernels ignore the timeout of
                // an element that is already present.
                if old.sides.contains(side) {
                    guard old.expiresAt != block.expiresAt else { continue }
                    batch.remove(element, from: set)
                }
                batch.add[set, default: []].append((element, milliseconds))
            }
            placed[target] = Placement(direction: block.direction, expiresAt: block.expiresAt, layer: old.layer)
            return
        }
        var layer: Int? = nil
        if !target.isHost {
            guard let free = (0..<Self.layers).first(where: { !occupancy[target.family]![$0].overlaps(target) }) else {
                batch.unplaced.append(target)
                return
            }
            occupancy[target.family]![free].insert(target)
            layer = free
        }
        for side in sides {
            batch.add[SetName(side: side, family: target.family, layer: layer), default: []].append((element, milliseconds))
        }
        placed[target] = Placement(direction: block.direction, expiresAt: block.expiresAt, layer: layer)
    }

    private mutating func remove(_ target: IPNetwork, in batch: inout Batch) {
        guard let old = placed.removeValue(forKey: target) else { return }
        for side in old.sides {
            batch.remove(Self.element(target), from: SetName(side: side, family: target.family, layer: old.layer))
        }
        if let layer = old.layer { vacating.append((target, layer)) }
    }

    /// Places `blocks` from scratch, keeping networks in the layer the kernel already holds them
    /// in where that is free, so a reconcile does not move elements between sets.
    static func placing(_ blocks: [FirewallBlock], kernelLayers: [IPNetwork: Int], now: Date) -> (NFTablesLayout, unplaced: [IPNetwork]) {
        var layout = NFTablesLayout()
        var unplaced: [IPNetwork] = []
        let live = blocks.filter { $0.expiresAt > now }
        let networks = live.filter { !$0.target.isHost }.sorted { a, b in
            let (ka, kb) = (kernelLayers[a.target] != nil, kernelLayers[b.target] != nil)
            return ka != kb ? ka : a.target.prefixLength < b.target.prefixLength
        }
        for block in live where block.target.isHost {
            layout.placed[block.target] = Placement(direction: block.direction, expiresAt: block.expiresAt, layer: nil)
        }
        for block in networks {
            let target = block.target
            let occupancy = layout.occupancy[target.family]!
            let preferred = kernelLayers[target].flatMap { occupancy[$0].overlaps(target) ? nil : $0 }
            guard let layer = preferred ?? (0..<layers).first(where: { !occupancy[$0].overlaps(target) }) else {
                unplaced.append(target)
                continue
            }
            layout.occupancy[target.family]![layer].insert(target)
            layout.placed[target] = Placement(direction: block.direction, expiresAt: block.expiresAt, layer: layer)
        }
        return (layout, unplaced)
    }

    /// What each set should hold: element text and expiry.
    var contents: [SetName: [String: Date]] {
        var sets: [SetName: [String: Date]] = [:]
        for (target, placement) in placed {
            for side in placement.sides {
                sets[SetName(side: side, family: target.family, layer: placement.layer), default: [:]][Self.element(target)] = placement.expiresAt
            }
        }
        return sets
    }

    static var allSets: [SetName] {
        var sets: [SetName] = []
        for side in Side.allCases {
            for family in [IPFamily.v4, .v6] {
                sets.append(SetName(side: side, family: family, layer: nil))
                for layer in 0..<layers { sets.append(SetName(side: side, family: family, layer: layer)) }
            }
        }
        return sets
    }
}

/// The networks one interval set holds, with a count of members below every supernet of them,
/// so "does this overlap a member" is a few hash lookups (networks either nest or are disjoint).
private struct Occupancy {
    var members: Set<IPNetwork> = []
    var below: [IPNetwork: Int] = [:]

    func overlaps(_ network: IPNetwork) -> Bool {
        if members.contains(network) || below[network, default: 0] > 0 { return true }
        return (0..<network.prefixLength).contains { members.contains(network.supernet($0)) }
    }

    mutating func insert(_ network: IPNetwork) {
        guard members.insert(network).inserted else { return }
        for length in 0..<network.prefixLength { below[network.supernet(length), default: 0] += 1 }
    }

    mutating func remove(_ network: IPNetwork) {
        guard members.remove(network) != nil else { return }
        for length in 0..<network.prefixLength {
            let key = network.supernet(length)
            let count = below[key, default: 0] - 1
            below[key] = count > 0 ? count : nil
        }
    }
}

extension IPNetwork {
    /// The network of `length` bits that contains this one.
    func supernet(_ length: Int) -> IPNetwork {
        IPNetwork(address: IPNetwork.mask(address, to: length), prefixLength: length)
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
