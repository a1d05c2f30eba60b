//! A hunting answer read as it arrives: each row of its `results` (or `Results`) array is cut
//! out of the stream as its own JSON text, and the rest (the schema, the OData context, the
//! statistics) is kept as a small skeleton with an empty `results`, read at the end. The
//! answer's body is never held whole: an answer of 100,000 rows costs its rows' text.

use serde_json::value::RawValue;

use super::Row;

/// The splitter's state between chunks.
#[derive(Default)]
pub(crate) struct Splitter {
    /// The answer without its rows.
    skeleton: Vec<u8>,
    /// The row being read.
    row: Vec<u8>,
    /// The rows read.
    pub rows: Vec<Row>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The last string closed at depth 1 (a member's name, or a value).
    last_key: Vec<u8>,
    /// The string being read at depth 1.
    key: Vec<u8>,
    /// Inside the rows' array (depth 2 and more).
    in_rows: bool,
    /// A row that is not a JSON object.
    pub bad_row: Option<String>,
}

impl Splitter {
    /// Reads a chunk of the body.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            self.byte(byte);
        }
    }

    fn byte(&mut self, byte: u8) {
        let in_row = self.in_rows && self.depth >= 3;
        if self.in_string {
            match (self.escaped, byte) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => {
                    self.in_string = false;
                    if self.depth == 1 {
                        self.last_key = std::mem::take(&mut self.key);
                    }
                }
                _ if self.depth == 1 => self.key.push(byte),
                _ => {}
            }
            self.keep(byte, in_row);
            return;
        }
        match byte {
            b'"' => {
                self.in_string = true;
                self.key.clear();
            }
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 2 && byte == b'[' {
                    self.in_rows = self.last_key.eq_ignore_ascii_case(b"results");
                    self.skeleton.push(byte);
                    return;
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.in_rows && self.depth == 2 {
                    self.row.push(byte);
                    self.end_row();
                    return;
                }
                if self.depth < 2 {
                    self.in_rows = false;
                }
            }
            _ => {}
        }
        // A row starts with its `{` (depth now 3); the commas between rows are dropped, and
        // anything else between them is a row that is not an object.
        let starts_row = self.in_rows && self.depth == 3 && byte == b'{' && self.row.is_empty();
        if self.in_rows && self.depth == 2 {
            if !(byte.is_ascii_whitespace() || byte == b',') && self.bad_row.is_none() {
                self.bad_row = Some(format!("a row begins with {:?}", byte as char));
            }
            return;
        }
        self.keep(byte, in_row || starts_row);
    }

    fn keep(&mut self, byte: u8, in_row: bool) {
        if in_row {
            self.row.push(byte);
        } else {
            self.skeleton.push(byte);
        }
    }

    fn end_row(&mut self) {
        let text = std::mem::take(&mut self.row);
        match serde_json::from_slice::<Box<RawValue>>(&text) {
            Ok(raw) if raw.get().starts_with('{') => self.rows.push(Row::from_raw(raw)),
            _ if self.bad_row.is_none() => {
                self.bad_row = Some(String::from_utf8_lossy(&text[..text.len().min(80)]).into());
            }
            _ => {}
        }
    }

    /// The answer without its rows, to read with the operation's type.
    pub(crate) fn skeleton(&self) -> &[u8] {
        &self.skeleton
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str, chunk: usize) -> Splitter {
        let mut splitter = Splitter::default();
        for part in body.as_bytes().chunks(chunk) {
            splitter.feed(part);
        }
        splitter
    }

    #[test]
    fn rows_are_cut_out_whatever_the_chunks() {
        let body = r#"{"@odata.context":"x","schema":[{"name":"A","type":"String"}],"results":[{"A":"a}[\"{"},{"A":{"n":[1,2]}} , {"A":null}],"Stats":{"results":[{"no":1}]}}"#;
        for chunk in [1, 2, 7, body.len()] {
            let s = split(body, chunk);
            let rows: Vec<&str> = s.rows.iter().map(Row::as_str).collect();
            assert_eq!(
                rows,
                [r#"{"A":"a}[\"{"}"#, r#"{"A":{"n":[1,2]}}"#, r#"{"A":null}"#],
                "{chunk}"
            );
            let skeleton: serde_json::Value = serde_json::from_slice(s.skeleton()).unwrap();
            assert_eq!(skeleton["results"], serde_json::json!([]));
            assert_eq!(skeleton["schema"][0]["name"], "A");
            assert_eq!(
                skeleton["Stats"]["results"][0]["no"], 1,
                "only the answer's rows"
            );
        }
        let bad = split(r#"{"Results":[1]}"#, 3);
        assert!(
            bad.rows.is_empty() && bad.bad_row.is_some(),
            "not an object: not a row"
        );
    }
}
