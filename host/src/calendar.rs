//! Times as people and other programs write them, from milliseconds since the Unix
//! epoch, in UTC: no time zone database, no dependency.

/// A UTC time split into its calendar fields.
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    weekday: usize,
    hour: u64,
    minute: u64,
    second: u64,
    milli: u64,
}

/// Days to a civil date by the proleptic Gregorian calendar, as in Howard Hinnant's
/// `civil_from_days`.
fn civil(ms: u64) -> Civil {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: month as usize,
        day,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4) % 7) as usize,
        hour: rest / 3_600_000,
        minute: rest / 60_000 % 60,
        second: rest / 1000 % 60,
        milli: rest % 1000,
    }
}

/// RFC 3339: `2026-11-30T12:00:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

/// As JavaScript's `String(new Date(ms))` writes it on a machine set to UTC:
/// `Mon Nov 30 2026 12:00:00 GMT+0000 (Coordinated Universal Time)`.
pub fn js_date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(ms);
    format!(
        "{} {} {:02} {:04} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
        DAYS[c.weekday],
        MONTHS[c.month - 1],
        c.day,
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_042_096_789), "2026-11-30T12:34:56.789Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00.000Z");
        // node -e 'console.log(new Date(1796041871123).toISOString(), String(new Date(1796041871123)))' (TZ=UTC)
        assert_eq!(rfc3339(1_796_041_871_123), "2026-11-30T12:31:11.123Z");
        assert_eq!(
            js_date(1_796_041_871_123),
            "Mon Nov 30 2026 12:31:11 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date(951_782_400_000),
            "Tue Feb 29 2000 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
    }
}
