/// IMF-fixdate (RFC 9110 §5.6.7) from seconds since the Unix epoch, by arithmetic alone,
/// so this module needs no clock and no Foundation. Workers format it once a second.
public enum HTTPDate {
    public static func format(epochSeconds t: Int64) -> String {
        var out: [UInt8] = []
        append(epochSeconds: t, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of `t`, byte by byte:
    /// a static file's Last-Modified is made per request, and interpolating it showed in
    /// profiles.
    public static func append(epochSeconds t: Int64, into out: inout [UInt8]) {
        let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
        let secs = Int(t - days * 86400)
        let weekdays: StaticString = "ThuFriSatSunMonTueWed"
        let months: StaticString = "JanFebMarAprMayJunJulAugSepOctNovDec"
        let w = Int(((days % 7) + 7) % 7) * 3
        let (y, m, d) = civil(fromDays: days)
        out.append(contentsOf: UnsafeBufferPointer(start: weekdays.utf8Start + w, count: 3))
        out.appendUTF8(", ")
        pad2(d, &out)
        out.append(ASCII.sp)
        out.append(contentsOf: UnsafeBufferPointer(start: months.utf8Start + (m - 1) * 3, count: 3))
        out.append(ASCII.sp)
        if y >= 1000 && y <= 9999 {
            HTTPResponseWriter.appendDecimal(UInt64(y), into: &out)
        } else {
            out.appendUTF8(String(y))
        }
        out.append(ASCII.sp)
        pad2(secs / 3600, &out)
        out.append(UInt8(ascii: ":"))
        pad2(secs / 60 % 60, &out)
        out.append(UInt8(ascii: ":"))
        pad2(secs % 60, &out)
        out.appendUTF8(" GMT")
    }

    private static func pad2(_ n: Int, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") + UInt8(n / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(n % 10))
    }

    /// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); the era-based method.
    static func civil(fromDays z0: Int64) -> (Int64, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

extension HTTPDate {
    /// Seconds since the epoch from an HTTP date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
    /// GMT"), the obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
    /// ("Sun Nov  6 08:49:37 1994"), as RFC 9110 §5.6.7 asks a recipient to accept.
    /// Nil for anything else: a conditional header with a bad date is ignored.
    public static func parse(_ s: Substring) -> Int64? {
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        func month(_ m: Substring) -> Int? { months.firstIndex(of: m.lowercased()).map { $0 + 1 } }
        func time(_ t: Substring) -> Int64? {
            let p = t.split(separator: ":", omittingEmptySubsequences: false)
            guard p.count == 3, p.allSatisfy({ $0.count == 2 }), let h = Int64(p[0]), let m = Int64(p[1]), let s = Int64(p[2]),
                  h < 24, m < 60, s < 61 else { return nil }
            return h * 3600 + m * 60 + min(s, 59)
        }
        let words = s.split(separator: " ")
        var day: Int?, mon: Int?, year: Int64?, clock: Int64?
        if words.count == 6, words[0].hasSuffix(","), words[5] == "GMT" {  // IMF-fixdate
            day = Int(words[1]); mon = month(words[2]); year = Int64(words[3]); clock = time(words[4])
            if words[1].count != 2 || words[3].count != 4 { return nil }
        } else if words.count == 4, words[0].hasSuffix(","), words[3] == "GMT" {  // RFC 850
            let d = words[1].split(separator: "-")
            guard d.count == 3, d[0].count == 2, d[2].count == 2, let yy = Int64(d[2]) else { return nil }
            day = Int(d[0]); mon = month(d[1]); year = yy < 70 ? 2000 + yy : 1900 + yy; clock = time(words[2])
        } else if words.count == 5 {  // asctime
            day = Int(words[2]); mon = month(words[1]); year = Int64(words[4]); clock = time(words[3])
        }
        guard let day, let mon, let year, let clock, (1...31).contains(day), year >= 1970, year < 10000 else { return nil }
        return days(year: year, month: mon, day: day) * 86400 + clock
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `civil`).
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
