//! The OData query options the list operations take: `$filter` with `eq`, `ne`, `gt`, `ge`,
//! `lt`, `le`, `and`, `or`, `startswith(property, 'value')` and parentheses, values in single
//! quotes (`''` for a quote) or bare (dates, numbers), as the OData samples page shows them;
//! `$top` (at most 10,000) and `$skip`. Anything else is the API's 400 (`ODataError`).

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::ApiError;

/// The most entities one page may hold (reference: get-machineactions-collection.md).
pub const MAX_TOP: usize = 10_000;

/// A property's value, as a filter compares it.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// Text: compared without regard to ASCII case (the documents do not say; the service's
    /// store is case-insensitive for names and ids as callers use them).
    Text(String),
    /// An instant: compared in time.
    Time(DateTime<Utc>),
}

/// What a filterable property holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// An instant.
    Time,
}

/// An entity a filter can read.
pub trait Filterable {
    /// What the property `name` (case-insensitive) holds; `None`: it cannot be filtered on.
    fn kind(name: &str) -> Option<Kind>;
    /// The property's value (`None`: null).
    fn field(&self, name: &str) -> Option<Field>;
}

/// A comparison operator of `$filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

/// A parsed `$filter`.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// `property op value`.
    Compare(String, Compare, String),
    /// `startswith(property, 'value')`.
    StartsWith(String, String),
}

fn odata_error(message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "ODataError",
        message.into(),
    )
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Token>, ApiError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => return Err(odata_error("An unterminated string in $filter")),
                    }
                }
                out.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, ' ' | '\t' | '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expr(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.term()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.factor()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn value(&mut self) -> Result<String, ApiError> {
        match self.next() {
            Some(Token::Quoted(v) | Token::Word(v)) => Ok(v),
            _ => Err(odata_error("A value is missing in $filter")),
        }
    }

    fn factor(&mut self) -> Result<Filter, ApiError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(odata_error("A parenthesis is not closed in $filter")),
                }
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("startswith") => {
                let shape = (
                    self.next(),
                    self.next(),
                    self.next(),
                    self.next(),
                    self.next(),
                );
                match shape {
                    (
                        Some(Token::Open),
                        Some(Token::Word(property)),
                        Some(Token::Comma),
                        Some(Token::Quoted(prefix)),
                        Some(Token::Close),
                    ) => Ok(Filter::StartsWith(property, prefix)),
                    _ => Err(odata_error(
                        "startswith takes a property and a quoted value: startswith(name,'value')",
                    )),
                }
            }
            Some(Token::Word(property)) => {
                let op = match self.next() {
                    Some(Token::Word(op)) => match op.to_ascii_lowercase().as_str() {
                        "eq" => Compare::Eq,
                        "ne" => Compare::Ne,
                        "gt" => Compare::Gt,
                        "ge" => Compare::Ge,
                        "lt" => Compare::Lt,
                        "le" => Compare::Le,
                        _ => {
                            return Err(odata_error(format!(
                                "The operator '{}' is not supported in $filter",
                                mde_client::workspace::shorten(&op, 40)
                            )));
                        }
                    },
                    _ => return Err(odata_error("An operator is missing in $filter")),
                };
                Ok(Filter::Compare(property, op, self.value()?))
            }
            _ => Err(odata_error("$filter is not a valid OData filter")),
        }
    }
}

/// A literal as an instant: `2018-08-01Z`, `2018-08-01`, or an RFC 3339 date-time.
fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let date = text.strip_suffix('Z').unwrap_or(text);
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

impl Filter {
    /// Parses a `$filter`; the 400 says what is wrong.
    pub fn parse(text: &str) -> Result<Filter, ApiError> {
        let mut parser = Parser {
            tokens: tokens(text)?,
            at: 0,
        };
        let filter = parser.expr()?;
        if parser.at < parser.tokens.len() {
            return Err(odata_error("$filter has more after a complete expression"));
        }
        Ok(filter)
    }

    /// Every property it reads can be filtered on, and every value fits its property: checked
    /// once, so that a bad filter is a 400 even when nothing matches.
    pub fn check<T: Filterable>(&self) -> Result<(), ApiError> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.check::<T>()?;
                b.check::<T>()
            }
            Filter::StartsWith(property, _) | Filter::Compare(property, _, _) => {
                let Some(kind) = T::kind(property) else {
                    return Err(odata_error(format!(
                        "Could not find a property named '{}' to filter on",
                        mde_client::workspace::shorten(property, 60)
                    )));
                };
                if let (Kind::Time, Filter::Compare(_, _, literal)) = (kind, self)
                    && instant(literal).is_none()
                {
                    return Err(odata_error(format!(
                        "'{}' is not a date for {property}",
                        mde_client::workspace::shorten(literal, 60)
                    )));
                }
                Ok(())
            }
        }
    }

    /// Whether `entity` matches (its properties were [`check`](Filter::check)ed).
    pub fn matches(&self, entity: &impl Filterable) -> bool {
        match self {
            Filter::And(a, b) => a.matches(entity) && b.matches(entity),
            Filter::Or(a, b) => a.matches(entity) || b.matches(entity),
            Filter::StartsWith(property, prefix) => match entity.field(property) {
                Some(Field::Text(text)) => text
                    .to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase()),
                _ => false,
            },
            Filter::Compare(property, op, literal) => {
                let ordering = match entity.field(property) {
                    Some(Field::Text(text)) => {
                        text.to_ascii_lowercase().cmp(&literal.to_ascii_lowercase())
                    }
                    Some(Field::Time(time)) => match instant(literal) {
                        Some(other) => time.cmp(&other),
                        None => return false,
                    },
                    // A null matches only `ne`.
                    None => return *op == Compare::Ne,
                };
                match op {
                    Compare::Eq => ordering.is_eq(),
                    Compare::Ne => ordering.is_ne(),
                    Compare::Gt => ordering.is_gt(),
                    Compare::Ge => ordering.is_ge(),
                    Compare::Lt => ordering.is_lt(),
                    Compare::Le => ordering.is_le(),
                }
            }
        }
    }
}

/// The query options of a list operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// `$filter`.
    pub filter: Option<Filter>,
    /// `$top` (at most [`MAX_TOP`]; that when absent).
    pub top: usize,
    /// `$skip`.
    pub skip: usize,
}

impl Query {
    /// Reads `$filter`, `$top` and `$skip` from a query string; any other option, or a bad
    /// value, is the 400.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
            .map_err(|e| odata_error(format!("The query string is not readable: {e}")))?;
        let mut query = Query {
            top: MAX_TOP,
            ..Query::default()
        };
        let number = |name: &str, value: &str| {
            value.trim().parse::<usize>().map_err(|_| {
                odata_error(format!(
                    "{name} must be a whole number, not '{}'",
                    mde_client::workspace::shorten(value, 40)
                ))
            })
        };
        for (name, value) in pairs {
            match name.as_str() {
                "$filter" => query.filter = Some(Filter::parse(&value)?),
                "$top" => {
                    query.top = number("$top", &value)?;
                    if query.top > MAX_TOP {
                        return Err(odata_error(format!("$top is at most {MAX_TOP}")));
                    }
                }
                "$skip" => query.skip = number("$skip", &value)?,
                other => {
                    return Err(odata_error(format!(
                        "The query option '{}' is not supported",
                        mde_client::workspace::shorten(other, 40)
                    )));
                }
            }
        }
        Ok(query)
    }

    /// The page of `entities` (in the order given) the query selects.
    pub fn page<T: Filterable>(
        &self,
        entities: impl IntoIterator<Item = T>,
    ) -> Result<Vec<T>, ApiError> {
        if let Some(filter) = &self.filter {
            filter.check::<T>()?;
        }
        Ok(entities
            .into_iter()
            .filter(|e| self.filter.as_ref().is_none_or(|f| f.matches(e)))
            .skip(self.skip)
            .take(self.top)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Action {
        status: &'static str,
        machine: &'static str,
        created: &'static str,
        requestor: Option<&'static str>,
    }

    impl Filterable for &Action {
        fn kind(name: &str) -> Option<Kind> {
            match name.to_ascii_lowercase().as_str() {
                "status" | "machineid" | "requestor" => Some(Kind::Text),
                "creationdatetimeutc" => Some(Kind::Time),
                _ => None,
            }
        }

        fn field(&self, name: &str) -> Option<Field> {
            let text = |t: &str| Some(Field::Text(t.to_string()));
            match name.to_ascii_lowercase().as_str() {
                "status" => text(self.status),
                "machineid" => text(self.machine),
                "requestor" => self.requestor.and_then(text),
                "creationdatetimeutc" => Some(Field::Time(instant(self.created)?)),
                _ => None,
            }
        }
    }

    const A: Action = Action {
        status: "Succeeded",
        machine: "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f",
        created: "2018-12-04T12:43:57.2011911Z",
        requestor: Some("Analyst@contoso.com"),
    };
    const B: Action = Action {
        status: "InProgress",
        machine: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
        created: "2018-12-05T08:00:00Z",
        requestor: None,
    };

    fn matching(filter: &str) -> Vec<&'static str> {
        let query = Query::parse(Some(&format!("$filter={}", filter.replace(' ', "+")))).unwrap();
        query
            .page([&A, &B])
            .unwrap()
            .iter()
            .map(|a| a.status)
            .collect()
    }

    #[test]
    fn the_documented_operators_select_what_they_say() {
        assert_eq!(
            matching("machineId eq 'f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f'"),
            ["Succeeded"]
        );
        assert_eq!(matching("status ne 'Succeeded'"), ["InProgress"]);
        assert_eq!(
            matching("creationDateTimeUtc gt 2018-12-05Z"),
            ["InProgress"]
        );
        assert_eq!(
            matching("creationDateTimeUtc ge 2018-12-04T12:43:57.2011911Z"),
            ["Succeeded", "InProgress"]
        );
        assert_eq!(
            matching("creationDateTimeUtc lt 2018-12-05Z"),
            ["Succeeded"]
        );
        assert_eq!(
            matching("creationDateTimeUtc le 2018-12-04T12:43:57Z"),
            Vec::<&str>::new()
        );
        assert_eq!(
            matching(
                "status eq 'InProgress' or (startswith(machineId,'F46B') and Status eq 'succeeded')"
            ),
            ["Succeeded", "InProgress"]
        );
        assert_eq!(matching("requestor ne 'x'"), ["Succeeded", "InProgress"]);
        assert_eq!(matching("requestor eq 'O''Brien'"), Vec::<&str>::new());
    }

    #[test]
    fn top_and_skip_page_and_anything_else_is_the_odata_400() {
        let page = |q: &str| Query::parse(Some(q)).and_then(|q| Ok(q.page([&A, &B])?.len()));
        assert_eq!(page("$top=1").unwrap(), 1);
        assert_eq!(page("$skip=1").unwrap(), 1);
        assert_eq!(page("$skip=2").unwrap(), 0);
        assert_eq!(page("").unwrap(), 2);
        for bad in [
            "$top=10001",
            "$top=-1",
            "$skip=x",
            "$expand=x",
            "$filter=status+in+('a')",
            "$filter=status+eq",
            "$filter=nosuch+eq+'a'",
            "$filter=creationDateTimeUtc+gt+'yesterday'",
            "$filter=(status+eq+'a'",
            "$filter=status+eq+'a",
            "$filter=startswith(status)",
            "$filter=status+eq+'a'+extra",
        ] {
            let e = page(bad).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (400, "ODataError"), "{bad}");
        }
    }
}
