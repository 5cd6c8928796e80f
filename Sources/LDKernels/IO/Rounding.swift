extension Double {
    /// The value rounded to `places` decimals (half away from zero), for reports; non-finite values as they are.
    public func rounded(places: Int) -> Double {
        guard isFinite else { return self }
        var p = 1.0
        for _ in 0..<places { p *= 10 }
        return (self * p).rounded() / p
    }
}
