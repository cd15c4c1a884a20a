import Foundation

/// When to try a peer next, from what its last answers were: a pure state machine (no clock, no
/// I/O), so that the delivery rules are tested with a manual clock.
///
/// - A 2xx delivers; the next batch may go at once.
/// - Any other answer, a timeout or a refused connection is a failure: the next attempt waits an
///   exponential backoff with jitter (the first retry within 1 s), or what `Retry-After` asks
///   (at most `maxRetryAfter`). A 3xx is a failure too: redirects are never followed.
/// - 410 Gone disables the peer until an operator replays its outbox.
/// - Entries still undelivered `deadAfter` after they were queued are dead-lettered at their next failure.
public struct DeliverySchedule: Sendable, Equatable {
    public struct Settings: Sendable, Equatable {
        public var firstDelay: Duration = .milliseconds(500)
        public var maxDelay: Duration = .seconds(60)
        public var maxRetryAfter: Duration = .seconds(3600)
        public var deadAfter: Duration = .seconds(86_400)

        public init() {}
    }

    public enum Outcome: Sendable, Equatable {
        case delivered
        /// `status` nil: no HTTP answer (timeout, connection refused, TLS failure).
        case failed(status: Int?, retryAfter: Duration?)
    }

    public enum State: Sendable, Equatable {
        case ready
        case waiting(until: Date)
        case disabled(reason: String)
    }

    /// The dead-letter age changes with the peer's `dead_letter_after` on a reload.
    public var settings: Settings
    public private(set) var state: State = .ready
    /// Failures in a row since the last delivery.
    public private(set) var failures = 0
    /// Counts the times the schedule was enabled: an attempt begun before the last `enable()`
    /// (a replay) no longer decides what happens next.
    public private(set) var epoch = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Whether a batch may go at `now`.
    public func isDue(at now: Date) -> Bool {
        switch state {
        case .ready: true
        case .waiting(let until): now >= until
        case .disabled: false
        }
    }

    /// Takes in the outcome of an attempt begun at `epoch` `begun`; returns false, changing
    /// nothing, when the schedule was enabled since, so that a replay is never undone by the
    /// answer to a request that was in flight when it came.
    public mutating func record(_ outcome: Outcome, begun: Int, at now: Date, random: Double) -> Bool {
        guard begun == epoch else { return false }
        record(outcome, at: now, random: random)
        return true
    }

    /// Takes in an attempt's outcome. `random` in 0..<1 picks the jitter.
    public mutating func record(_ outcome: Outcome, at now: Date, random: Double) {
        switch outcome {
        case .delivered:
            failures = 0
            state = .ready
        case .failed(status: 410, _):
            failures += 1
            state = .disabled(reason: "the peer answered 410 Gone")
        case .failed(_, let retryAfter):
            failures += 1
            let delay: Duration
            if let retryAfter {
                delay = min(max(retryAfter, .zero), settings.maxRetryAfter)
            } else {
                // Exponential, capped, with "equal jitter": between half the step and the step.
                let step = min(settings.firstDelay * (1 << min(failures - 1, 30)), settings.maxDelay)
                delay = step / 2 + step / 2 * random
            }
            state = .waiting(until: now.addingTimeInterval(Double(delay.milliseconds) / 1000))
        }
    }

    /// A peer disabled before (by a 410 answered to an earlier run of the daemon).
    public mutating func disable(reason: String) {
        state = .disabled(reason: reason)
    }

    /// The peer answered another request (an anti-entropy sync): a backoff after failures ends,
    /// so that what the sync queued goes now. A disabled peer stays disabled.
    public mutating func answered() {
        guard case .waiting = state else { return }
        state = .ready
        failures = 0
    }

    /// Lets a disabled peer be tried again (after a replay).
    public mutating func enable() {
        if case .disabled = state { state = .ready }
        failures = 0
        epoch += 1
    }

    /// Entries queued before this instant are dead-lettered when an attempt carrying them fails.
    public func deadBefore(_ now: Date) -> Date {
        now.addingTimeInterval(-Double(settings.deadAfter.milliseconds) / 1000)
    }

    /// `Retry-After` as seconds or as an HTTP date.
    public static func retryAfter(_ header: String?, now: Date) -> Duration? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        if let seconds = Int(header), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: header) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSince(now) * 1000)))
    }
}
