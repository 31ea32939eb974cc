//! GitLab's human durations (`timeout: 1h 30m`, `start_in: 3 hours`), read as the
//! ChronicDuration gem that GitLab uses reads them.

use std::time::Duration;

use crate::CiError;

/// Longest duration accepted: far beyond any CI limit, small enough never to overflow.
const MAX_SECONDS: f64 = 100.0 * 365.25 * 86_400.0;

/// Parses a duration in one of GitLab's forms: `"1h 30m"`, `"3 hours"`, `"10m"`,
/// `"90 seconds"`, `"1d"`, `"1 hour and 30 minutes"`, `"2.5h"`, `"01:30:00"`, or a bare
/// number of seconds (`"3600"`).
pub fn parse_duration(text: &str) -> Result<Duration, CiError> {
    let fail = |message: &str| CiError::Duration {
        text: text.to_string(),
        message: message.to_string(),
    };
    let s = text.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(fail("it is empty"));
    }
    let seconds = if s.contains(':') {
        colon_form(&s).ok_or_else(|| fail("a colon form must be [[dd:]hh:]mm:ss"))?
    } else {
        unit_form(&s).map_err(|m| fail(&m))?
    };
    if !seconds.is_finite() || seconds > MAX_SECONDS {
        return Err(fail("it is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `mm:ss`, `hh:mm:ss`, `dd:hh:mm:ss`.
fn colon_form(s: &str) -> Option<f64> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 4 {
        return None;
    }
    let weights = [1.0, 60.0, 3600.0, 86_400.0];
    let mut total = 0.0;
    for (part, weight) in parts.iter().rev().zip(weights) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        total += part.parse::<f64>().ok()? * weight;
    }
    Some(total)
}

/// Seconds in one of a unit's spellings.
fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "wk" | "wks" | "week" | "weeks" => 7.0 * 86_400.0,
        // ChronicDuration's month is 30 days and its year 365.25 days.
        "mo" | "mos" | "mon" | "mons" | "month" | "months" => 30.0 * 86_400.0,
        "y" | "yr" | "yrs" | "year" | "years" => 365.25 * 86_400.0,
        _ => return None,
    })
}

/// A sequence of `<number>[ ]<unit>` pairs; a number without a unit counts seconds.
fn unit_form(s: &str) -> Result<f64, String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total = 0.0;
    let mut any = false;
    while i < bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(b' ');
        if c.is_ascii_whitespace() || c == b',' {
            i += 1;
            continue;
        }
        if s.get(i..).is_some_and(|rest| rest.starts_with("and"))
            && bytes.get(i + 3).is_none_or(|b| b.is_ascii_whitespace())
        {
            i += 3;
            continue;
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "expected a number at {:?}",
                s.get(start..).unwrap_or("")
            ));
        }
        let number: f64 = s
            .get(start..i)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "a number is malformed".to_string())?;
        while bytes.get(i).is_some_and(|b| *b == b' ') {
            i += 1;
        }
        let ustart = i;
        while bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
            i += 1;
        }
        let unit = s.get(ustart..i).unwrap_or("");
        let factor = if unit.is_empty() {
            1.0
        } else {
            unit_seconds(unit).ok_or_else(|| format!("unknown unit {unit:?}"))?
        };
        total += number * factor;
        any = true;
    }
    if !any {
        return Err("no number in it".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> u64 {
        match parse_duration(text) {
            Ok(d) => d.as_secs(),
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    #[test]
    fn gitlab_forms() {
        assert_eq!(secs("1h 30m"), 5400);
        assert_eq!(secs("3 hours"), 10_800);
        assert_eq!(secs("10m"), 600);
        assert_eq!(secs("90 seconds"), 90);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(secs("1 hour and 30 minutes"), 5400);
        assert_eq!(secs("3h30m"), 12_600);
        assert_eq!(secs("2.5h"), 9000);
        assert_eq!(secs("1 week"), 604_800);
        assert_eq!(secs("30 mins"), 1800);
        assert_eq!(secs("3600"), 3600);
        assert_eq!(secs("1:30"), 90);
        assert_eq!(secs("01:30:00"), 5400);
        assert_eq!(secs("  2 Hours "), 7200);
    }

    #[test]
    fn bad_forms_are_errors() {
        for bad in ["", "soon", "1 fortnight", "h", "1:2:3:4:5", "-1h"] {
            let e = parse_duration(bad);
            assert!(e.is_err(), "{bad:?} should fail");
        }
        let msg = parse_duration("1 fortnight").err().map(|e| e.to_string());
        assert!(msg.unwrap_or_default().contains("fortnight"));
    }
}
