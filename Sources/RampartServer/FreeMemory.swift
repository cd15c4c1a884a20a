#if canImport(Glibc)
    import Glibc
#endif

/// Hands heap memory freed after a bulk request or firewall batch back to the system. glibc keeps
/// freed memory for reuse, which would show as resident long after a 100k-item load is done.
enum FreeMemory {
    /// Items or changes from which a request or a batch counts as bulk.
    static let bulk = 10_000

    #if canImport(Glibc)
        /// glibc's `malloc_trim`, which Swift's Glibc module does not export.
        private static let trim: (@convention(c) (Int) -> Int32)? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        }()
    #endif

    static func release() {
        #if canImport(Glibc)
            _ = trim?(0)
        #endif
    }
}
