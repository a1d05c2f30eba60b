//! A KQL query's tokens: names, string and number literals, timespans (`7d`), operators.

use super::QueryError;

/// One token, with the byte offset it starts at (for the error's position).
#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    /// A table, column, operator or function name (`where`, `DeviceId`, `ago`).
    Name(String),
    /// A string literal, its escapes resolved.
    Text(String),
    /// An integer literal.
    Integer(i64),
    /// A real literal.
    Real(f64),
    /// A timespan literal (`7d`, `12h`, `30m`, `10s`, `100ms`), in 100-nanosecond ticks.
    Span(i64),
    /// Punctuation and comparison operators: `|`, `,`, `(`, `)`, `..`, `==`, `!=`, `=~`,
    /// `!~`, `<`, `<=`, `>`, `>=`, `=`.
    Symbol(&'static str),
}

const SYMBOLS: [&str; 14] = [
    "..", "==", "!=", "=~", "!~", "<=", ">=", "|", ",", "(", ")", "<", ">", "=",
];

/// Ticks of each timespan unit KQL writes after a number.
const UNITS: [(&str, i64); 5] = [
    ("ms", 10_000),
    ("d", 864_000_000_000),
    ("h", 36_000_000_000),
    ("m", 600_000_000),
    ("s", 10_000_000),
];

/// The tokens of `query`, each with its byte offset.
pub fn tokens(query: &str) -> Result<Vec<(usize, Token)>, QueryError> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
        } else if c == b'/' && bytes.get(at + 1) == Some(&b'/') {
            // A comment, to the end of the line.
            at = query[at..].find('\n').map_or(bytes.len(), |n| at + n);
        } else if c == b'"' || c == b'\'' {
            let (text, next) = quoted(query, at)?;
            out.push((at, Token::Text(text)));
            at = next;
        } else if c.is_ascii_digit() {
            let (token, next) = number(query, at)?;
            out.push((at, token));
            at = next;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = query[at..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map_or(bytes.len(), |n| at + n);
            out.push((at, Token::Name(query[at..end].to_string())));
            at = end;
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| query[at..].starts_with(**s)) {
            out.push((at, Token::Symbol(symbol)));
            at += symbol.len();
            // `datetime(2026-12-06)`: the date unquoted, taken as it is written.
            let after_datetime =
                matches!(out.iter().rev().nth(1), Some((_, Token::Name(n))) if n == "datetime");
            if *symbol == "("
                && after_datetime
                && !query[at..].trim_start().starts_with(['"', '\''])
            {
                let end = query[at..].find(')').map_or(bytes.len(), |n| at + n);
                out.push((at, Token::Text(query[at..end].trim().to_string())));
                at = end;
            }
        } else {
            let ch = query[at..].chars().next().unwrap_or('?');
            return Err(QueryError::syntax(
                at,
                format!("unexpected character {ch:?}"),
            ));
        }
    }
    Ok(out)
}

/// A string literal at `at` (double or single quotes, `\` escapes): its text and the offset
/// after it.
fn quoted(query: &str, at: usize) -> Result<(String, usize), QueryError> {
    let quote = query.as_bytes()[at] as char;
    let mut text = String::new();
    let mut chars = query[at + 1..].char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, other)) => text.push(other),
                None => break,
            },
            ch if ch == quote => return Ok((text, at + 1 + i + 1)),
            ch => text.push(ch),
        }
    }
    Err(QueryError::syntax(at, "a string literal is not closed"))
}

/// A number at `at`: an integer, a real, or a timespan when a unit follows.
fn number(query: &str, at: usize) -> Result<(Token, usize), QueryError> {
    let rest = &query[at..];
    let digits = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    // `1..5`: the range's dots are not the number's.
    let digits = rest[..digits].find("..").unwrap_or(digits);
    let text = &rest[..digits];
    let after = &rest[digits..];
    let unit_len = after
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(after.len());
    let bad = || {
        QueryError::syntax(
            at,
            format!("{:?} is not a number", &rest[..digits + unit_len]),
        )
    };
    if unit_len > 0 {
        let (_, per) = UNITS
            .iter()
            .find(|(unit, _)| *unit == &after[..unit_len])
            .ok_or_else(bad)?;
        let value: f64 = text.parse().map_err(|_| bad())?;
        return Ok((
            Token::Span((value * *per as f64) as i64),
            at + digits + unit_len,
        ));
    }
    let token = match text.contains('.') {
        true => Token::Real(text.parse().map_err(|_| bad())?),
        false => Token::Integer(text.parse().map_err(|_| bad())?),
    };
    Ok((token, at + digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(query: &str) -> Vec<Token> {
        tokens(query).unwrap().into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn a_query_reads_as_its_tokens() {
        use Token::*;
        assert_eq!(
            kinds(r#"T | where A =~ "p\"s.exe" and B >= ago(7d) | take 2"#),
            [
                Name("T".into()),
                Symbol("|"),
                Name("where".into()),
                Name("A".into()),
                Symbol("=~"),
                Text("p\"s.exe".into()),
                Name("and".into()),
                Name("B".into()),
                Symbol(">="),
                Name("ago".into()),
                Symbol("("),
                Span(7 * 864_000_000_000),
                Symbol(")"),
                Symbol("|"),
                Name("take".into()),
                Integer(2),
            ]
        );
        assert_eq!(
            kinds("between (1 .. 2.5) 90m 100ms"),
            [
                Name("between".into()),
                Symbol("("),
                Integer(1),
                Symbol(".."),
                Real(2.5),
                Symbol(")"),
                Span(90 * 600_000_000),
                Span(1_000_000),
            ]
        );
    }

    #[test]
    fn what_is_not_kql_is_refused_with_its_place() {
        let error = tokens("T | where A == 'open").unwrap_err();
        assert!(
            error.0.contains("not closed") && error.0.contains("15"),
            "{}",
            error.0
        );
        assert!(tokens("T # x").unwrap_err().0.contains("'#'"));
        assert!(tokens("T | take 5w").unwrap_err().0.contains("\"5w\""));
    }
}
