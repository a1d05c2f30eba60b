//! A query of the KQL subset the simulator runs: a table, then operators.

use super::QueryError;
use super::lexer::{Token, tokens};

/// A parsed query: the table, then each operator in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub table: String,
    pub operators: Vec<Operator>,
}

/// One tabular operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Operator {
    Where(Expr),
    Project(Vec<String>),
    Distinct(Vec<String>),
    /// `summarize count() by …`: one row per group, its count in `count_`.
    Count(Vec<String>),
    Take(u64),
    /// `order by` / `sort by`: each column, descending unless `asc`.
    Order(Vec<(String, bool)>),
    /// `top N by COLUMN`, descending unless `asc`.
    Top(u64, String, bool),
}

/// A condition of `where`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `COLUMN OP VALUE`, OP one of `==`, `!=`, `=~`, `!~`, `<`, `<=`, `>`, `>=`, `has`,
    /// `contains`, `startswith`, `!has`, `!contains`, `!startswith`.
    Compare(String, String, Literal),
    /// `COLUMN in (VALUE, …)`.
    In(String, Vec<Literal>),
    /// `COLUMN between (LOW .. HIGH)`.
    Between(String, Literal, Literal),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Real(f64),
    Bool(bool),
    /// `ago(SPAN)`: ticks before the query's `now`.
    Ago(i64),
    /// `datetime(…)`: the text, read as a UTC time when evaluated.
    Time(String),
    /// `now()`.
    Now,
}

/// The words that compare a column with a value.
const WORDS: [&str; 6] = [
    "has",
    "contains",
    "startswith",
    "!has",
    "!contains",
    "!startswith",
];

/// `query` parsed, or the 400 the service answers for a query it cannot run.
pub fn parse(query: &str) -> Result<Query, QueryError> {
    let mut p = Parser {
        tokens: tokens(query)?,
        at: 0,
        end: query.len(),
    };
    let table = p.name("a table name")?;
    let mut operators = Vec::new();
    while !p.done() {
        p.symbol("|")?;
        operators.push(p.operator()?);
    }
    Ok(Query { table, operators })
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        token
    }

    /// The 400 at the current token.
    fn error(&self, wanted: &str) -> QueryError {
        let (offset, found) = match self.tokens.get(self.at) {
            Some((offset, token)) => (*offset, format!("{token:?}")),
            None => (self.end, "the end of the query".to_string()),
        };
        QueryError::syntax(offset, format!("expected {wanted}, found {found}"))
    }

    fn symbol(&mut self, symbol: &str) -> Result<(), QueryError> {
        match self.peek() {
            Some(Token::Symbol(s)) if *s == symbol => {
                self.at += 1;
                Ok(())
            }
            _ => Err(self.error(&format!("'{symbol}'"))),
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(n)) if n == word)
    }

    fn word(&mut self, word: &str) -> Result<(), QueryError> {
        match self.is_word(word) {
            true => {
                self.at += 1;
                Ok(())
            }
            false => Err(self.error(&format!("'{word}'"))),
        }
    }

    fn name(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek() {
            Some(Token::Name(n)) => {
                let n = n.clone();
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.error(what)),
        }
    }

    fn count(&mut self) -> Result<u64, QueryError> {
        match self.peek() {
            Some(Token::Integer(n)) if *n >= 0 => {
                let n = *n as u64;
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.error("a number of rows")),
        }
    }

    /// `NAME, NAME, …`.
    fn names(&mut self) -> Result<Vec<String>, QueryError> {
        let mut names = vec![self.name("a column name")?];
        while matches!(self.peek(), Some(Token::Symbol(","))) {
            self.at += 1;
            names.push(self.name("a column name")?);
        }
        Ok(names)
    }

    /// `desc` unless `asc` follows (KQL sorts descending by default).
    fn descending(&mut self) -> bool {
        match self.peek() {
            Some(Token::Name(n)) if n == "asc" || n == "desc" => {
                let desc = n == "desc";
                self.at += 1;
                desc
            }
            _ => true,
        }
    }

    fn operator(&mut self) -> Result<Operator, QueryError> {
        let name = self.name("an operator")?;
        Ok(match name.as_str() {
            "where" => Operator::Where(self.expr()?),
            "project" => Operator::Project(self.names()?),
            "distinct" => Operator::Distinct(self.names()?),
            "summarize" => {
                self.word("count")?;
                self.symbol("(")?;
                self.symbol(")")?;
                let by = match self.is_word("by") {
                    true => {
                        self.at += 1;
                        self.names()?
                    }
                    false => Vec::new(),
                };
                Operator::Count(by)
            }
            "take" | "limit" => Operator::Take(self.count()?),
            "order" | "sort" => {
                self.word("by")?;
                let mut keys = Vec::new();
                loop {
                    let column = self.name("a column name")?;
                    keys.push((column, self.descending()));
                    if !matches!(self.peek(), Some(Token::Symbol(","))) {
                        break;
                    }
                    self.at += 1;
                }
                Operator::Order(keys)
            }
            "top" => {
                let n = self.count()?;
                self.word("by")?;
                let column = self.name("a column name")?;
                Operator::Top(n, column, self.descending())
            }
            _ => {
                self.at -= 1;
                return Err(self.error(
                    "where, project, distinct, summarize count(), take, limit, order by, sort by or top",
                ));
            }
        })
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.is_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.is_word("not") {
            self.at += 1;
            self.symbol("(")?;
            let inner = self.expr()?;
            self.symbol(")")?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if matches!(self.peek(), Some(Token::Symbol("("))) {
            self.at += 1;
            let inner = self.expr()?;
            self.symbol(")")?;
            return Ok(inner);
        }
        let column = self.name("a column name")?;
        self.comparison(column)
    }

    fn comparison(&mut self, column: String) -> Result<Expr, QueryError> {
        let op = match self.next() {
            Some(Token::Symbol(s)) if !["|", ",", "(", ")", "..", "="].contains(&s) => {
                s.to_string()
            }
            Some(Token::Name(n)) if n == "in" => {
                self.symbol("(")?;
                let mut values = vec![self.literal()?];
                while matches!(self.peek(), Some(Token::Symbol(","))) {
                    self.at += 1;
                    values.push(self.literal()?);
                }
                self.symbol(")")?;
                return Ok(Expr::In(column, values));
            }
            Some(Token::Name(n)) if n == "between" => {
                self.symbol("(")?;
                let low = self.literal()?;
                self.symbol("..")?;
                let high = self.literal()?;
                self.symbol(")")?;
                return Ok(Expr::Between(column, low, high));
            }
            Some(Token::Name(n)) if WORDS.contains(&n.as_str()) => n,
            _ => {
                self.at -= 1;
                return Err(self.error(
                    "a comparison (==, !=, =~, <, has, contains, startswith, in, between…)",
                ));
            }
        };
        Ok(Expr::Compare(column, op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        let literal = match self.next() {
            Some(Token::Text(t)) => Literal::Text(t),
            Some(Token::Integer(n)) => Literal::Integer(n),
            Some(Token::Real(r)) => Literal::Real(r),
            Some(Token::Name(n)) if n == "true" || n == "false" => Literal::Bool(n == "true"),
            Some(Token::Name(n)) if n == "ago" => {
                self.symbol("(")?;
                let span = match self.next() {
                    Some(Token::Span(ticks)) => ticks,
                    _ => {
                        self.at -= 1;
                        return Err(self.error("a timespan such as 7d"));
                    }
                };
                self.symbol(")")?;
                Literal::Ago(span)
            }
            Some(Token::Name(n)) if n == "now" => {
                self.symbol("(")?;
                self.symbol(")")?;
                Literal::Now
            }
            Some(Token::Name(n)) if n == "datetime" => {
                self.symbol("(")?;
                let text = match self.next() {
                    Some(Token::Text(t)) => t,
                    _ => {
                        self.at -= 1;
                        return Err(self.error("a date in quotes"));
                    }
                };
                self.symbol(")")?;
                Literal::Time(text)
            }
            _ => {
                self.at -= 1;
                return Err(self.error("a value"));
            }
        };
        Ok(literal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_queries_parse() {
        let q = parse(r#"DeviceProcessEvents | where InitiatingProcessFileName =~ "powershell.exe" | project Timestamp, FileName, InitiatingProcessFileName | order by Timestamp desc | limit 2"#).unwrap();
        assert_eq!(q.table, "DeviceProcessEvents");
        assert_eq!(
            q.operators,
            [
                Operator::Where(Expr::Compare(
                    "InitiatingProcessFileName".into(),
                    "=~".into(),
                    Literal::Text("powershell.exe".into())
                )),
                Operator::Project(vec![
                    "Timestamp".into(),
                    "FileName".into(),
                    "InitiatingProcessFileName".into()
                ]),
                Operator::Order(vec![("Timestamp".into(), true)]),
                Operator::Take(2),
            ]
        );
        let q = parse("DeviceProcessEvents |where InitiatingProcessFileName =~ 'powershell.exe' |where ProcessCommandLine contains 'appdata'|project Timestamp, FileName, InitiatingProcessFileName, DeviceId|limit 2").unwrap();
        assert_eq!(q.operators.len(), 4);
        assert_eq!(parse("DeviceProcessEvents").unwrap().operators, []);
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_takes_parentheses() {
        let q = parse("T | where A == 1 or B in ('x', 'y') and not(C between (1 .. 5))").unwrap();
        let Operator::Where(Expr::Or(_, right)) = &q.operators[0] else {
            panic!("{q:?}")
        };
        assert!(matches!(**right, Expr::And(_, ref not) if matches!(**not, Expr::Not(_))));
        let q = parse("T | summarize count() by DeviceId | top 3 by count_ asc | sort by DeviceId")
            .unwrap();
        assert_eq!(
            q.operators,
            [
                Operator::Count(vec!["DeviceId".into()]),
                Operator::Top(3, "count_".into(), false),
                Operator::Order(vec![("DeviceId".into(), true)]),
            ]
        );
    }

    #[test]
    fn what_the_subset_lacks_is_the_query_400() {
        for (query, says) in [
            ("T | join (U) on DeviceId", "expected where, project"),
            ("T | where", "found the end of the query"),
            ("T | where A ~~ 1", "unexpected character"),
            ("T | take -1", "unexpected character '-'"),
            ("T | take 1.5", "a number of rows"),
            ("T | where A > ago(7)", "a timespan"),
            ("| take 1", "a table name"),
        ] {
            let error = parse(query).unwrap_err();
            assert!(error.0.contains(says), "{query}: {}", error.0);
        }
    }
}
