import Foundation

/// RFC 3339 timestamps and human durations (`90s`, `15m`, `4h`, `7d`, `2w`, `1h30m`), parsed without
/// locale or formatter state.
public enum Timestamp {
    /// Formats as `2026-11-22T10:14:03.250Z` (UTC, milliseconds).
    public static func format(_ date: Date) -> String {
        format(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
    }

    public static func format(milliseconds: Int64) -> String {
        String(unsafeUninitializedCapacity: 24) { write(milliseconds: milliseconds, into: $0) }
    }

    /// Writes the 24 bytes of `format(milliseconds:)` into `buffer`; returns 24.
    static func write(milliseconds: Int64, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let ms = Int(milliseconds.modulo(1000))
        let seconds = (milliseconds - Int64(ms)) / 1000
        let days = Int(seconds.floorDivided(by: 86_400))
        let secondOfDay = Int(seconds - Int64(days) * 86_400)
        let (year, month, day) = civil(fromDays: days)
        var n = 0
        func put(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                buffer[n] = UInt8(48 + value / divisor % 10)
                n += 1
                divisor /= 10
            }
        }
        func put(_ char: UInt8) {
            buffer[n] = char
            n += 1
        }
        put(min(max(year, 0), 9999), 4)
        put(UInt8(ascii: "-"))
        put(month, 2)
        put(UInt8(ascii: "-"))
        put(day, 2)
        put(UInt8(ascii: "T"))
        put(secondOfDay / 3600, 2)
        put(UInt8(ascii: ":"))
        put(secondOfDay / 60 % 60, 2)
        put(UInt8(ascii: ":"))
        put(secondOfDay % 60, 2)
        put(UInt8(ascii: "."))
        put(ms, 3)
        put(UInt8(ascii: "Z"))
        return n
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, or a bare date `YYYY-MM-DD` (midnight UTC).
    public static func parse(_ text: String) throws(ValueError) -> Date {
        func fail() -> ValueError {
            ValueError(.invalidField, "'\(text.preview)' is not an RFC 3339 timestamp such as 2026-12-31T23:59:59Z")
        }
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) throws(ValueError) -> Int {
            guard i + width <= b.count else { throw fail() }
            var v = 0
            for k in i..<(i + width) {
                guard b[k] >= 48 && b[k] <= 57 else { throw fail() }
                v = v * 10 + Int(b[k] - 48)
            }
            i += width
            return v
        }
        func expect(_ chars: String) throws(ValueError) {
            guard i < b.count, chars.utf8.contains(b[i]) else { throw fail() }
            i += 1
        }
        let year = try number(4)
        try expect("-")
        let month = try number(2)
        try expect("-")
        let day = try number(2)
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day) else { throw fail() }
        var seconds = Double(days(fromCivil: year, month, day)) * 86_400
        if i == b.count { return Date(timeIntervalSince1970: seconds) }
        try expect("Tt ")
        let hour = try number(2)
        try expect(":")
        let minute = try number(2)
        try expect(":")
        let second = try number(2)
        guard hour < 24, minute < 60, second < 61 else { throw fail() }
        seconds += Double(hour * 3600 + minute * 60 + min(second, 59))
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                seconds += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { throw fail() }
        }
        guard i < b.count else { throw fail() }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else {
            let sign: Double = b[i] == UInt8(ascii: "-") ? -1 : 1
            try expect("+-")
            let offsetHours = try number(2)
            try expect(":")
            let offsetMinutes = try number(2)
            guard offsetHours < 24, offsetMinutes < 60 else { throw fail() }
            seconds -= sign * Double(offsetHours * 3600 + offsetMinutes * 60)
        }
        guard i == b.count else { throw fail() }
        return Date(timeIntervalSince1970: seconds)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

extension Int64 {
    func modulo(_ n: Int64) -> Int64 { ((self % n) + n) % n }
    func floorDivided(by n: Int64) -> Int64 { (self - modulo(n)) / n }
}

extension Date {
    /// Milliseconds since the Unix epoch, the unit the store keeps times in.
    public var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }

    public init(milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    public func adding(_ duration: Duration) -> Date {
        Date(milliseconds: milliseconds + duration.milliseconds)
    }
}

extension Duration {
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Parses `500ms`, `90s`, `15m`, `4h`, `7d`, `2w` and sums of them (`1h30m`).
    public init(parsing text: String) throws(ValueError) {
        func fail() -> ValueError {
            ValueError(
                .invalidDuration, "'\(text.preview)' is not a duration; expected a number and a unit (ms, s, m, h, d, w) such as 90s, 15m, 4h or 7d")
        }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { throw fail() }
        var total: Int64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 12, let amount = Int64(digits) else { throw fail() }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix(while: { $0.isASCII && $0.isLetter })
            guard let unit = units.first(where: { $0.0 == unitText }) else { throw fail() }
            rest = rest.dropFirst(unitText.count)
            let (product, overflow) = amount.multipliedReportingOverflow(by: unit.1)
            guard !overflow, total <= Int64.max / 4 - product else { throw fail() }
            total += product
        }
        self = .milliseconds(total)
    }

    /// The shortest exact rendering in the units `init(parsing:)` reads: `4h`, `1h30m`, `250ms`.
    public var text: String {
        var ms = milliseconds
        if ms == 0 { return "0s" }
        var out = ms < 0 ? "-" : ""
        ms = Swift.abs(ms)
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where ms >= size {
            out += "\(ms / size)\(unit)"
            ms %= size
        }
        return out
    }
}
