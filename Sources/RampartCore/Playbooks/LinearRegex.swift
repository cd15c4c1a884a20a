/// The regular expressions of playbooks (`value: {regex: ...}`) and feeds (`exclude`, `regex`),
/// matched in time linear in the value: a pattern compiles to a small program that runs every
/// possible path at once (a Pike machine), so that no pattern and no value, however hostile,
/// makes a match backtrack. A backtracking engine needs seconds for `(a+)+$` against 25
/// characters, and hours for `.*.*x` against a 4 KB URL, which any ingest key or peer could send.
///
/// The syntax is the usual one minus what needs backtracking: literals and escapes (`\.`, `\d`
/// and `\w` for ASCII digits and word characters, `\s` for any white space, their negations,
/// `\t`, `\n`), `.`, classes (`[a-z0-9_-]`, `[^.]`), anchors `^` and `$`, groups `(...)` and
/// `(?:...)` (100 deep at most), alternation `|`, the quantifiers `*`, `+`, `?`, `{m}`, `{m,}`,
/// `{m,n}` and their lazy forms (possessive ones are read as greedy; a quantifier of a quantifier
/// needs a group, as in PCRE), and `(?i)` at the start for a
/// case-insensitive match. Backreferences and lookaround are refused with a message.
/// `firstMatch(in:)` gives what the first group (else the whole pattern) matched, leftmost first.
public struct LinearRegex: Sendable {
    /// The most instructions a pattern may compile to (bounded repetitions are unrolled).
    static let maxProgram = 4_000
    /// The deepest groups may nest.
    static let maxNesting = 100

    private let program: [Instruction]
    private let caseInsensitive: Bool
    /// Whether the pattern has a capturing group (the first one's bounds are saved).
    public let hasGroup: Bool

    public init(_ pattern: String) throws(ValueError) {
        var parser = Parser(Array(pattern.unicodeScalars))
        let node = try parser.parse()
        caseInsensitive = parser.caseInsensitive
        hasGroup = parser.groups > 0
        var compiler = Compiler()
        try compiler.emit(node)
        compiler.program.append(.accept)
        program = compiler.program
    }

    /// Whether the pattern matches anywhere in `text`.
    public func matches(_ text: String) -> Bool {
        let scalars = caseInsensitive ? Array(text.lowercased().unicodeScalars) : Array(text.unicodeScalars)
        var current = ThreadList(count: program.count)
        var next = ThreadList(count: program.count)
        var stack: [Int] = []
        stack.reserveCapacity(program.count)
        for position in 0...scalars.count {
            // A search: a new thread starts at every position.
            if add(0, at: position, of: scalars, to: &current, stack: &stack) { return true }
            guard position < scalars.count else { break }
            let scalar = scalars[position]
            next.clear()
            for pc in current.members {
                if case .scalar(let set) = program[pc], set.contains(scalar, caseInsensitive: caseInsensitive),
                    add(pc + 1, at: position + 1, of: scalars, to: &next, stack: &stack)
                {
                    return true
                }
            }
            swap(&current, &next)
        }
        return false
    }

    /// What the first capturing group matched in the leftmost match of the pattern in `text`
    /// (the whole match when the pattern has no group), as in PCRE's leftmost-first order; nil
    /// when the pattern does not match or the group took no part in the match.
    public func firstMatch(in text: String) -> Substring? {
        let original = Array(text.unicodeScalars)
        // One scalar for each of the text's, so that positions are the text's own.
        let scalars =
            caseInsensitive
            ? original.map { scalar in
                let lower = String(scalar).lowercased().unicodeScalars
                return lower.count == 1 ? lower.first! : scalar
            } : original
        var current: [(pc: Int, bounds: Bounds)] = []
        var next: [(pc: Int, bounds: Bounds)] = []
        var seen = ThreadList(count: program.count)
        var found: Bounds?
        for position in 0...scalars.count {
            // A search: a new thread starts at every position until a match is found, after
            // (below) every thread that started earlier.
            if found == nil {
                follow(0, Bounds(start: position), at: position, of: scalars, into: &current, seen: &seen)
            }
            if current.isEmpty {
                // No thread alive: the match found stands, or one may start further on.
                if found != nil { break }
                seen.clear()
                continue
            }
            next.removeAll(keepingCapacity: true)
            seen.clear()
            for (pc, bounds) in current {
                if case .accept = program[pc] {
                    // Threads after this one have lower priority: they are dropped.
                    found = bounds
                    found?.end = position
                    break
                }
                if position < scalars.count, case .scalar(let set) = program[pc], set.contains(scalars[position], caseInsensitive: caseInsensitive) {
                    follow(pc + 1, bounds, at: position + 1, of: scalars, into: &next, seen: &seen)
                }
            }
            swap(&current, &next)
        }
        guard let found else { return nil }
        let range = hasGroup ? found.group : found.start..<found.end
        guard let range else { return nil }
        let view = text.unicodeScalars
        let lower = view.index(view.startIndex, offsetBy: range.lowerBound)
        let upper = view.index(lower, offsetBy: range.count)
        return text[lower..<upper]
    }

    /// Where a thread of `firstMatch` started and what its group has matched.
    private struct Bounds {
        var start: Int
        var end = 0
        var groupStart: Int?
        var group: Range<Int>?
    }

    /// `firstMatch`'s `add`: follows jumps, splits (first branch first), anchors and saves from
    /// `pc`, appending the reading and accepting threads reached to `list` in priority order.
    private func follow(
        _ pc: Int, _ bounds: Bounds, at position: Int, of scalars: [Unicode.Scalar], into list: inout [(pc: Int, bounds: Bounds)],
        seen: inout ThreadList
    ) {
        var stack = [(pc, bounds)]
        while let (pc, bounds) = stack.popLast() {
            guard seen.insert(pc) else { continue }
            switch program[pc] {
            case .accept, .scalar: list.append((pc, bounds))
            case .jump(let target): stack.append((target, bounds))
            case .split(let first, let second):
                stack.append((second, bounds))
                stack.append((first, bounds))
            case .lineStart: if position == 0 { stack.append((pc + 1, bounds)) }
            case .lineEnd: if position == scalars.count { stack.append((pc + 1, bounds)) }
            case .groupStart:
                var saved = bounds
                saved.groupStart = position
                stack.append((pc + 1, saved))
            case .groupEnd:
                var saved = bounds
                saved.group = (bounds.groupStart ?? position)..<position
                stack.append((pc + 1, saved))
            }
        }
    }

    /// Adds the thread at `pc` and everything it reaches without reading; true when one accepts.
    private func add(_ pc: Int, at position: Int, of scalars: [Unicode.Scalar], to list: inout ThreadList, stack: inout [Int]) -> Bool {
        stack.removeAll(keepingCapacity: true)
        stack.append(pc)
        while let pc = stack.popLast() {
            guard list.insert(pc) else { continue }
            switch program[pc] {
            case .accept: return true
            case .scalar: break
            case .jump(let target): stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .lineStart: if position == 0 { stack.append(pc + 1) }
            case .lineEnd: if position == scalars.count { stack.append(pc + 1) }
            case .groupStart, .groupEnd: stack.append(pc + 1)
            }
        }
        return false
    }

    private enum Instruction: Sendable {
        case scalar(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case lineStart
        case lineEnd
        /// The bounds of the first capturing group (for `firstMatch`).
        case groupStart
        case groupEnd
        case accept
    }

    /// The threads alive at one position: each instruction at most once.
    private struct ThreadList {
        private var dense: [Int]
        private var sparse: [Int]
        private(set) var size = 0

        init(count: Int) {
            dense = Array(repeating: 0, count: count)
            sparse = Array(repeating: 0, count: count)
        }

        var members: ArraySlice<Int> { dense[0..<size] }

        mutating func insert(_ pc: Int) -> Bool {
            let index = sparse[pc]
            if index < size && dense[index] == pc { return false }
            sparse[pc] = size
            dense[size] = pc
            size += 1
            return true
        }

        mutating func clear() { size = 0 }
    }

    /// A set of scalars: ranges, or everything but them.
    struct ScalarSet: Sendable {
        var ranges: [ClosedRange<UInt32>] = []
        var negated = false

        /// `.`: anything but a line break, as in ICU and PCRE.
        static let any = ScalarSet(ranges: [0x0A...0x0A, 0x0D...0x0D, 0x85...0x85, 0x2028...0x2029], negated: true)
        static let digit = ScalarSet(ranges: [0x30...0x39])
        static let word = ScalarSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
        static let space = ScalarSet(ranges: [
            0x09...0x0D, 0x20...0x20, 0x85...0x85, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029, 0x202F...0x202F,
            0x205F...0x205F, 0x3000...0x3000,
        ])

        static func single(_ scalar: Unicode.Scalar) -> ScalarSet { ScalarSet(ranges: [scalar.value...scalar.value]) }

        var inverted: ScalarSet { ScalarSet(ranges: ranges, negated: !negated) }

        func contains(_ scalar: Unicode.Scalar, caseInsensitive: Bool) -> Bool {
            var found = ranges.contains { $0.contains(scalar.value) }
            // The text is lower-cased; the pattern's upper-case ranges match it too.
            if !found && caseInsensitive, let upper = String(scalar).uppercased().unicodeScalars.first, upper != scalar {
                found = ranges.contains { $0.contains(upper.value) }
            }
            return found != negated
        }
    }

    indirect enum Node {
        case empty
        case scalars(ScalarSet)
        case lineStart
        case lineEnd
        case sequence([Node])
        case either([Node])
        /// `lazy`: fewer repetitions first (`*?`), which only `firstMatch` tells apart.
        case repeated(Node, min: Int, max: Int?, lazy: Bool)
        /// The first capturing group.
        case group(Node)
    }

    private struct Parser {
        let pattern: [Unicode.Scalar]
        var index = 0
        var caseInsensitive = false
        /// Capturing groups seen so far.
        var groups = 0
        /// Groups open at `index`.
        var nesting = 0

        init(_ pattern: [Unicode.Scalar]) {
            self.pattern = pattern
        }

        func fail(_ why: String) -> ValueError {
            ValueError(.invalidField, "'\(String(String.UnicodeScalarView(pattern)).preview)' is not a regular expression playbooks take: \(why)")
        }

        var atEnd: Bool { index >= pattern.count }
        var peek: Unicode.Scalar? { atEnd ? nil : pattern[index] }

        mutating func parse() throws(ValueError) -> Node {
            if pattern.starts(with: Array("(?i)".unicodeScalars)) {
                caseInsensitive = true
                index = 4
            }
            let node = try alternation()
            guard atEnd else { throw fail("unbalanced ')' at \(index + 1)") }
            return node
        }

        mutating func alternation() throws(ValueError) -> Node {
            var branches = [try sequence()]
            while peek == "|" {
                index += 1
                branches.append(try sequence())
            }
            return branches.count == 1 ? branches[0] : .either(branches)
        }

        mutating func sequence() throws(ValueError) -> Node {
            var items: [Node] = []
            while let scalar = peek, scalar != "|", scalar != ")" {
                var atom = try self.atom()
                if let (min, max) = try quantifier() {
                    if case .lineStart = atom { throw fail("an anchor cannot be repeated") }
                    if case .lineEnd = atom { throw fail("an anchor cannot be repeated") }
                    // A possessive form is read as greedy.
                    let lazy = peek == "?"
                    if peek == "?" || peek == "+" { index += 1 }
                    atom = .repeated(atom, min: min, max: max, lazy: lazy)
                    // As in PCRE; and each one more would nest the program a level deeper.
                    let at = index
                    if try quantifier() != nil { throw fail("the quantifier at \(at + 1) repeats a repetition; group it first, as (?:a{2}){3}") }
                }
                items.append(atom)
            }
            return items.count == 1 ? items[0] : (items.isEmpty ? .empty : .sequence(items))
        }

        /// The quantifier at `index`, or nil for none or a `{` that is a literal.
        mutating func quantifier() throws(ValueError) -> (Int, Int?)? {
            guard let scalar = peek else { return nil }
            switch scalar {
            case "*":
                index += 1
                return (0, nil)
            case "+":
                index += 1
                return (1, nil)
            case "?":
                index += 1
                return (0, 1)
            default:
                guard scalar == "{", let close = pattern[index...].firstIndex(of: "}") else { return nil }
                let body = String(String.UnicodeScalarView(pattern[(index + 1)..<close]))
                let parts = body.split(separator: ",", omittingEmptySubsequences: false)
                // Only digits make a quantifier (`{-1,3}` and `{1,x}` are literals, as in PCRE).
                let isNumber = { (part: Substring) in !part.isEmpty && part.allSatisfy { $0.isASCII && $0.isNumber } }
                guard (1...2).contains(parts.count), isNumber(parts[0]), parts.count == 1 || parts[1].isEmpty || isNumber(parts[1]) else {
                    return nil
                }
                let limit = 1000
                let min = Int(parts[0]) ?? limit + 1
                let max: Int? = parts.count == 1 ? min : (parts[1].isEmpty ? nil : Int(parts[1]) ?? limit + 1)
                guard min <= limit, (max ?? min) <= limit else { throw fail("a repetition {m,n} goes up to \(limit)") }
                guard min <= (max ?? min) else { throw fail("a repetition {\(min),\(max ?? min)} has its bounds the wrong way round") }
                index = close + 1
                return (min, max)
            }
        }

        mutating func atom() throws(ValueError) -> Node {
            let scalar = pattern[index]
            index += 1
            switch scalar {
            case ".": return .scalars(.any)
            case "^": return .lineStart
            case "$": return .lineEnd
            case "[": return .scalars(try characterClass())
            case "\\": return .scalars(try escape())
            case "(":
                // Parsing and compiling recurse once a level.
                nesting += 1
                defer { nesting -= 1 }
                guard nesting <= LinearRegex.maxNesting else { throw fail("groups nest at most \(LinearRegex.maxNesting) deep") }
                var first = false
                if peek == "?" {
                    guard index + 1 < pattern.count, pattern[index + 1] == ":" else {
                        throw fail("lookaround, named groups and inline flags other than a leading (?i) are not supported")
                    }
                    index += 2
                } else {
                    groups += 1
                    first = groups == 1
                }
                let inner = try alternation()
                guard peek == ")" else { throw fail("a group is not closed") }
                index += 1
                return first ? .group(inner) : inner
            case "*", "+", "?": throw fail("'\(scalar)' at \(index) repeats nothing")
            default: return .scalars(.single(scalar))
            }
        }

        mutating func escape() throws(ValueError) -> ScalarSet {
            guard let scalar = peek else { throw fail("it ends with '\\'") }
            index += 1
            switch scalar {
            case "d": return .digit
            case "D": return ScalarSet.digit.inverted
            case "w": return .word
            case "W": return ScalarSet.word.inverted
            case "s": return .space
            case "S": return ScalarSet.space.inverted
            case "t": return .single("\t")
            case "n": return .single("\n")
            case "r": return .single("\r")
            default:
                if scalar.properties.numericType != nil || (scalar.properties.isAlphabetic && scalar.isASCII) {
                    throw fail("'\\\(scalar)' is not supported (no backreferences, word boundaries or \\p classes)")
                }
                return .single(scalar)
            }
        }

        mutating func characterClass() throws(ValueError) -> ScalarSet {
            var set = ScalarSet()
            if peek == "^" {
                set.negated = true
                index += 1
            }
            var first = true
            while let scalar = peek, scalar != "]" || first {
                first = false
                index += 1
                var low: UInt32
                if scalar == "\\" {
                    let escaped = try escape()
                    guard !escaped.negated, escaped.ranges.count == 1, escaped.ranges[0].count == 1 else {
                        // \d, \w, \s inside a class: their ranges join it.
                        guard !escaped.negated else { throw fail("negated classes (\\D, \\W, \\S) inside [...] are not supported") }
                        set.ranges += escaped.ranges
                        continue
                    }
                    low = escaped.ranges[0].lowerBound
                } else {
                    low = scalar.value
                }
                if peek == "-", index + 1 < pattern.count, pattern[index + 1] != "]" {
                    index += 1
                    var high = pattern[index].value
                    index += 1
                    if high == 0x5C {  // an escaped upper bound
                        let escaped = try escape()
                        guard escaped.ranges.count == 1, escaped.ranges[0].count == 1 else { throw fail("a range ends with a class") }
                        high = escaped.ranges[0].lowerBound
                    }
                    guard low <= high else { throw fail("a range in [...] runs backwards") }
                    set.ranges.append(low...high)
                } else {
                    set.ranges.append(low...low)
                }
            }
            guard peek == "]" else { throw fail("a class '[' is not closed") }
            index += 1
            return set
        }
    }

    private struct Compiler {
        var program: [Instruction] = []

        mutating func emit(_ node: Node) throws(ValueError) {
            guard program.count < LinearRegex.maxProgram else {
                throw ValueError(.invalidField, "the regular expression is too large once its repetitions are counted out")
            }
            switch node {
            case .empty: break
            case .scalars(let set): program.append(.scalar(set))
            case .lineStart: program.append(.lineStart)
            case .lineEnd: program.append(.lineEnd)
            case .sequence(let items): for item in items { try emit(item) }
            case .group(let inner):
                program.append(.groupStart)
                try emit(inner)
                program.append(.groupEnd)
            case .either(let branches):
                var jumps: [Int] = []
                for (offset, branch) in branches.enumerated() {
                    if offset < branches.count - 1 {
                        let split = program.count
                        program.append(.split(split + 1, 0))
                        try emit(branch)
                        jumps.append(program.count)
                        program.append(.jump(0))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repeated(let inner, let min, let max, let lazy):
                // A split tries its first target first: one more repetition, or (lazy) one fewer.
                func split(_ more: Int, _ done: Int) -> Instruction { lazy ? .split(done, more) : .split(more, done) }
                for _ in 0..<min { try emit(inner) }
                if let max {
                    // Each optional copy may be skipped.
                    var splits: [Int] = []
                    for _ in min..<max {
                        splits.append(program.count)
                        program.append(.split(program.count + 1, 0))
                        try emit(inner)
                    }
                    for at in splits { program[at] = split(at + 1, program.count) }
                } else {
                    let loop = program.count
                    program.append(.split(loop + 1, 0))
                    try emit(inner)
                    program.append(.jump(loop))
                    program[loop] = split(loop + 1, program.count)
                }
            }
        }
    }
}
