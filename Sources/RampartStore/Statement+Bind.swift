import GRDB
import GRDBSQLite

/// Binds and steps a prepared statement through the SQLite C API, for the statements run per item
/// and per block of bulk ingest, where boxing every argument and column in `DatabaseValue`s and
/// `Row`s would cost more than the statement.
struct Binder {
    private let statement: OpaquePointer
    private var index: Int32 = 0
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: Statement) {
        self.statement = statement.sqliteStatement
        sqlite3_reset(self.statement)
    }

    mutating func bind(_ text: String?) {
        index += 1
        guard var text else {
            sqlite3_bind_null(statement, index)
            return
        }
        text.withUTF8 { utf8 in
            _ = sqlite3_bind_text(statement, index, utf8.baseAddress, Int32(utf8.count), Binder.transient)
        }
    }

    /// Binds bytes as text without copying them: they must stay valid until `step`.
    mutating func bind(borrowing bytes: UnsafeBufferPointer<UInt8>) {
        index += 1
        _ = sqlite3_bind_text(statement, index, bytes.baseAddress, Int32(bytes.count), nil)
    }

    /// Binds bytes as text (copied), or NULL.
    mutating func bind(text bytes: [UInt8]?) {
        index += 1
        guard let bytes else {
            sqlite3_bind_null(statement, index)
            return
        }
        bytes.withUnsafeBufferPointer { buffer in
            _ = sqlite3_bind_text(statement, index, buffer.baseAddress, Int32(buffer.count), Binder.transient)
        }
    }

    mutating func bind(blob bytes: [UInt8]) {
        index += 1
        bytes.withUnsafeBufferPointer { buffer in
            _ = sqlite3_bind_blob(statement, index, buffer.baseAddress, Int32(buffer.count), Binder.transient)
        }
    }

    mutating func bind(_ number: Int64) {
        index += 1
        sqlite3_bind_int64(statement, index, number)
    }

    mutating func bind(_ flag: Bool) {
        bind(flag ? 1 : 0 as Int64)
    }

    /// Runs the statement to completion and returns how many rows it changed; throws the
    /// database's error.
    @discardableResult
    func step(_ db: Database) throws -> Int {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else {
            throw Binder.error(code, db)
        }
        return Int(sqlite3_changes(db.sqliteConnection))
    }

    /// Steps to the next row of a query: true with a row to read through `text(_:)` and
    /// `integer(_:)` (columns from 0), false (and the statement reset) after the last.
    func nextRow(_ db: Database) throws -> Bool {
        let code = sqlite3_step(statement)
        if code == SQLITE_ROW { return true }
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else { throw Binder.error(code, db) }
        return false
    }

    func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(statement, column) else { return nil }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(statement, column))), as: UTF8.self)
    }

    func integer(_ column: Int32) -> Int64 {
        sqlite3_column_int64(statement, column)
    }

    private static func error(_ code: Int32, _ db: Database) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
    }
}
