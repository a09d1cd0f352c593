//! Default run names: `<prefix>-<UTC date>-<UTC time>` (`lora-20261204-211503`), then `-2`,
//! `-3`, ... for runs started within the same second; the run writer takes the first name no
//! other run holds, atomically.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYYMMDD-HHMMSS` (UTC) of `t`.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// (year, month, day) of the `z`-th day after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The `k`-th candidate name (1-based) for `prefix` at `stamp`.
pub fn candidate(prefix: &str, stamp: &str, k: usize) -> String {
    if k <= 1 {
        format!("{prefix}-{stamp}")
    } else {
        format!("{prefix}-{stamp}-{k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_dates() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101-000000");
        // date -u -d @951782400 +%Y%m%d-%H%M%S -> 20000229-000000 (a leap day)
        assert_eq!(at(951_782_400), "20000229-000000");
        // date -u -d @1733346903 +%Y%m%d-%H%M%S -> 20241204-211503
        assert_eq!(at(1_733_346_903), "20241204-211503");
        assert_eq!(candidate("lora", "x", 1), "lora-x");
        assert_eq!(candidate("lora", "x", 3), "lora-x-3");
    }
}
