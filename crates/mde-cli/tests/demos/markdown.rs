//! The runnable blocks of a markdown page.

/// A ` ```sh ` block, with the ` ```text ` block that follows it, if any.
pub struct Block {
    /// The line of the page the block starts on.
    pub line: usize,
    /// The script, as written.
    pub script: String,
    /// The output the script must print, as written.
    pub expected: Option<String>,
}

/// The page's ` ```sh ` blocks, in order.
pub fn blocks(page: &str) -> Vec<Block> {
    let lines: Vec<&str> = page.lines().collect();
    let mut blocks: Vec<Block> = Vec::new();
    let mut i = 0;
    // Whether the last fence closed was a runnable block, with nothing but blank lines since.
    let mut after_block = false;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            after_block &= lines[i].trim().is_empty();
            i += 1;
            continue;
        };
        let start = i;
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim_start() != "```")
            .copied()
            .collect();
        i += body.len() + 2;
        let text = body.join("\n") + "\n";
        match info.trim() {
            "sh" => blocks.push(Block {
                line: start + 1,
                script: text,
                expected: None,
            }),
            "text" if after_block => blocks.last_mut().unwrap().expected = Some(text),
            _ => {}
        }
        after_block = info.trim() == "sh";
    }
    blocks
}
