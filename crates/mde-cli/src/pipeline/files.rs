//! Where each result is saved and how it is recorded: its file name, its manifest record, and
//! a file a killed run saved but did not record.

use super::*;

impl<'a> Pipeline<'a> {
    /// The file of an item in the evidence folder.
    pub(super) fn file_of(&self, item: &Item) -> String {
        let machine = &self.actions[&item.action].0;
        match self.command_of(item) {
            Some(command) => evidence::result_file_name(machine, &item.action, command),
            None => evidence::file_name(machine, &item.action),
        }
    }

    /// The command an item is the result of.
    pub(super) fn command_of(&self, item: &Item) -> Option<&LiveResponseCommandResult> {
        let (_, action) = &self.actions[&item.action];
        let index = item.index?;
        action
            .commands
            .iter()
            .flatten()
            .find(|c| c.index == Some(index))
    }

    /// The record of an item just saved.
    pub(super) fn record_of(&self, item: &Item, file: &str, saved: (u64, &str)) -> Record {
        let (_, action) = &self.actions[&item.action];
        let downloaded = self.client.clock().now_utc();
        match self.command_of(item) {
            Some(command) => Record::of_result(action, command, file, saved, downloaded),
            None => Record::new(action, file, saved, downloaded),
        }
    }

    /// An item saved and recorded (`took`: the download, when it was one now; `earlier`: by
    /// an earlier run). A package is its machine's end; a session ends with its last result.
    pub(super) fn saved(
        &mut self,
        item: &Item,
        record: Record,
        (took, earlier): (Option<&Downloaded>, bool),
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let machine = self.actions[&item.action].0.clone();
        self.recorded
            .insert(evidence::key(&item.action, item.index), record.clone());
        if let Some(row) = self
            .packages
            .get_mut(&machine)
            .and_then(|p| p.results.iter_mut().find(|r| Some(r.index) == item.index))
        {
            if record.script.is_some() {
                // The transcript, read into its type: its exit code and first line.
                let path = self.settings.dir.join(&record.file);
                let transcript = std::fs::read(&path).ok().and_then(|bytes| {
                    serde_json::from_slice::<mde_client::types::RunScriptTranscript>(&bytes).ok()
                });
                if let Some(t) = transcript {
                    row.exit_code = t.exit_code;
                    // The first line the script wrote: past the transcript's own header.
                    row.output = t.script_output.as_deref().map(|o| {
                        let line = o
                            .lines()
                            .map(|l| l.trim_matches(|c: char| c == '\u{0}' || c.is_whitespace()))
                            .find(|l| !l.is_empty() && !l.starts_with("Transcript started"))
                            .unwrap_or_default();
                        line.to_string()
                    });
                }
            }
            row.record = Some(record.clone());
        }
        let left = self.outstanding.entry(item.action.clone()).or_insert(1);
        *left = left.saturating_sub(1);
        if *left == 0 {
            let note = match self.evidence {
                Evidence::Package => {
                    let mut note = Note::saved(record, earlier, took);
                    if let (Some(early), Some(detail)) = (self.early.remove(item), &mut note.detail)
                    {
                        detail.push_str(&format!(
                            " (the link was not ready {early} time(s) after the collection completed)"
                        ));
                    }
                    Some(note)
                }
                Evidence::LiveResponse => None,
            };
            self.finish(&item.action, note, progress)?;
        }
        Ok(())
    }
}

/// A file found in the folder with no record: saved by a run killed between the rename and
/// the manifest. It was renamed only once complete and verified, so it is recorded now.
pub(super) fn adopt_saved(
    dir: &Path,
    file: &str,
    record: impl FnOnce(u64, &str) -> Record,
) -> std::io::Result<Option<Record>> {
    let Some((size, sha256)) = evidence::sha256_of_file(&dir.join(file))? else {
        return Ok(None);
    };
    let record = record(size, &sha256);
    evidence::append(dir, &record)?;
    Ok(Some(record))
}
