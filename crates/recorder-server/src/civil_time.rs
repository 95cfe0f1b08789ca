//! UTC calendar arithmetic for timestamps in file names, listings and event filters.
//!
//! The crate needs only three things from a calendar: an RFC 3339 rendering of a Unix time, the
//! parse back (event `timestamp`s written by Go's `time.Time` are RFC 3339 strings), and the UTC day
//! of an instant for naming event files. The conversions are Howard Hinnant's `days_from_civil` and
//! `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>), exact for the
//! proleptic Gregorian calendar, so no date crate is needed.

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A UTC calendar date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl CivilTime {
    /// The UTC date and time of `unix_seconds` (fractions dropped, rounding down).
    pub(crate) fn from_unix(unix_seconds: i64) -> Self {
        let days = unix_seconds.div_euclid(DAY);
        let in_day = unix_seconds.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        // in_day < 86_400, so the casts below cannot truncate.
        Self {
            year,
            month,
            day,
            hour: (in_day / 3600) as u32,
            minute: (in_day % 3600 / 60) as u32,
            second: (in_day % 60) as u32,
        }
    }

    /// Seconds since the Unix epoch.
    pub(crate) fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// `YYYY-MM-DD` of the UTC day holding `unix_seconds`.
pub(crate) fn utc_day(unix_seconds: f64) -> String {
    let t = CivilTime::from_unix(unix_seconds.floor() as i64);
    format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)
}

/// Compact `YYYYMMDDTHHMMSSZ`, sortable and safe in file names and URL paths.
pub(crate) fn compact_stamp(unix_seconds: f64) -> String {
    let t = CivilTime::from_unix(unix_seconds.floor() as i64);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// RFC 3339 in UTC to the second, e.g. `2024-05-01T12:03:04Z`.
pub(crate) fn rfc3339(unix_seconds: f64) -> String {
    let t = CivilTime::from_unix(unix_seconds.floor() as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Parses RFC 3339 (`2024-05-01T12:03:04.5Z`, `...+02:00`; `t` and space accepted for `T`) into
/// Unix seconds.
pub(crate) fn parse_rfc3339(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(range)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let civil = CivilTime {
        year: i64::from(num(0..4)?),
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
    };
    if !(1..=12).contains(&civil.month)
        || civil.day == 0
        || civil.day > days_in_month(civil.year, civil.month)
        || civil.hour > 23
        || civil.minute > 59
        || civil.second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..len]).parse().ok()?;
        rest = &after_dot[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            let magnitude = hours * 3600 + minutes * 60;
            if ob[0] == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    Some((civil.to_unix() - offset) as f64 + fraction)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month = i64::from(month);
    let day = i64::from(day);
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_984.9), "2024-05-01T12:03:04Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(utc_day(1_714_564_984.0), "2024-05-01");
        assert_eq!(compact_stamp(1_714_564_984.0), "20240501T120304Z");
        assert_eq!(rfc3339(-1.0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_what_go_writes() {
        assert_eq!(parse_rfc3339("2024-05-01T12:03:04Z"), Some(1_714_564_984.0));
        assert_eq!(
            parse_rfc3339("2024-05-01T14:03:04+02:00"),
            Some(1_714_564_984.0)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:03:04.25Z"),
            Some(1_714_564_984.25)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:03:04.500000000-00:30"),
            Some(1_714_566_784.5)
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T12:03:04",
            "2024-05-01T12:03:04.Z",
            "x024-05-01T12:03:04Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_every_day_for_centuries() {
        for days in (-200_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
