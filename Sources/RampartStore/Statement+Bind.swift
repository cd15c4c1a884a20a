import GRDB
import GRDBSQLite

/// Binds and steps a cached statement through the SQLite C API, for the per-item inserts of
/// bulk ingest, where boxing every argument in `DatabaseValue`s would cost more than the insert.
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

    mutating func bind(_ bytes: [UInt8]) {
        index += 1
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

    /// Runs the statement to completion; throws the database's error.
    func step(_ db: Database) throws {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
    }
}
