//! A query's `Timespan`: runHuntingQuery's five ISO 8601 forms (security-security-runhuntingquery.md),
//! read as a window `[from, to)`.

use chrono::{DateTime, TimeDelta, Utc};

use super::RETENTION;

/// The window a `Timespan` names (runHuntingQuery's five ISO 8601 forms), `[from, to)`;
/// without one, the 30 days back from `now`.
pub fn window(
    timespan: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let Some(text) = timespan else {
        return Ok((now - RETENTION, now));
    };
    let bad = || format!("Timespan {text:?} is not an ISO 8601 time, duration or interval");
    let time = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()).ok();
    let span = |t: &str| duration(t);
    match text.split_once('/') {
        Some((a, b)) => match (time(a), time(b), span(a), span(b)) {
            (Some(from), Some(to), _, _) => Ok((from, to)),
            (_, Some(to), Some(d), _) => Ok((to - d, to)),
            (Some(from), _, _, Some(d)) => Ok((from, from + d)),
            _ => Err(bad()),
        },
        None => match (time(text), span(text)) {
            (Some(from), _) => Ok((from, now)),
            (_, Some(d)) => Ok((now - d, now)),
            _ => Err(bad()),
        },
    }
    .and_then(|(from, to)| match from <= to {
        true => Ok((from, to)),
        false => Err(format!("Timespan {text:?} ends before it starts")),
    })
}

/// An ISO 8601 duration: `P[nY][nM][nW][nD][T[nH][nM][nS]]`, a year 365 days and a month 30
/// (a fixed length: no page says how the service counts them).
fn duration(text: &str) -> Option<TimeDelta> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0f64;
    let mut any = false;
    for (part, units) in [
        (
            date,
            &[
                ('Y', 31_536_000.0),
                ('M', 2_592_000.0),
                ('W', 604_800.0),
                ('D', 86_400.0),
            ][..],
        ),
        (time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut number = String::new();
        let mut last = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let at = units
                .iter()
                .position(|(u, _)| *u == c)
                .filter(|&i| i >= last)?;
            total += number.parse::<f64>().ok()? * units[at].1;
            (number, last, any) = (String::new(), at + 1, true);
        }
        if !number.is_empty() {
            return None;
        }
    }
    (any && rest.contains('T') != time.is_empty())
        .then(|| TimeDelta::milliseconds((total * 1000.0) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_timespan_is_read_in_its_five_documented_forms() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        let (feb1, feb15) = (at("2024-02-01T08:00:00Z"), at("2024-02-15T08:00:00Z"));
        let days = |n| TimeDelta::days(n);
        for (text, expected) in [
            ("2024-02-01T08:00:00Z/2024-02-15T08:00:00Z", (feb1, feb15)),
            ("P30D/2024-02-15T08:00:00Z", (feb15 - days(30), feb15)),
            ("2024-02-01T08:00:00Z/P30D", (feb1, feb1 + days(30))),
            ("P30D", (now() - days(30), now())),
            ("2024-02-01T08:00:00Z", (feb1, now())),
            ("PT1H30M", (now() - TimeDelta::minutes(90), now())),
            ("P1W", (now() - days(7), now())),
        ] {
            assert_eq!(window(Some(text), now()), Ok(expected), "{text}");
        }
        for bad in [
            "30 days",
            "P",
            "PT",
            "P1H",
            "P1DT",
            "2024-02-15T08:00:00Z/2024-02-01T08:00:00Z",
            "P5D/P3D",
        ] {
            assert!(window(Some(bad), now()).is_err(), "{bad}");
        }
    }
}
