//! Links and transfers: a result's link asked for as the limits allow, then streamed to disk,
//! verified; each step's outcome moves the machine on.

use super::*;

impl<'a> Pipeline<'a> {
    /// Asks for a ready file's link.
    pub(super) fn link(&self, item: Item) -> Work<'a> {
        let client = self.client;
        Box::pin(async move {
            let link = match item.index {
                None => client.package_link(&item.action).await,
                Some(index) => client.live_response_result_link(&item.action, index).await,
            };
            (item, Step::Link(link))
        })
    }

    /// Downloads a file whose link was given.
    pub(super) fn download(&self, item: Item, link: PackageLink) -> Work<'a> {
        let client = self.client;
        let dest = self.settings.dir.join(self.file_of(&item));
        Box::pin(async move {
            let saved = match item.index {
                None => {
                    client
                        .download_package(&item.action, Some(link), &dest)
                        .await
                }
                Some(index) => {
                    client
                        .download_live_response_result(&item.action, index, Some(link), &dest)
                        .await
                }
            };
            (item, Step::Saved(saved))
        })
    }

    /// What a link or a download came to. `Some`: more work for the file.
    pub(super) fn step(
        &mut self,
        item: Item,
        step: Step,
        progress: OnBoard<'_>,
    ) -> Result<Option<Work<'a>>, Error> {
        let id = item.action.clone();
        let machine = self.actions[&id].0.clone();
        if self
            .packages
            .get(&machine)
            .is_some_and(|p| p.stage == Stage::Saved)
        {
            // Saved already: whatever else came for it changes nothing.
            return Ok(None);
        }
        let failed = |p: &Self| {
            p.packages
                .get(&machine)
                .is_some_and(|p| p.stage == Stage::Failed)
        };
        match step {
            Step::Link(Ok(link)) => {
                if !failed(self) {
                    self.set(
                        &machine,
                        Some(&id),
                        Stage::Downloading,
                        Note::default(),
                        progress,
                    )?;
                }
                Ok(Some(self.download(item, link)))
            }
            Step::Link(Err(Error::NotFound(_))) => {
                // Listed complete, but not downloadable yet: not a failure, a few times.
                let tries = self.early.entry(item.clone()).or_insert(0);
                *tries += 1;
                if *tries <= NOT_YET {
                    self.retry.push(item);
                } else {
                    let why = Note::says(format!(
                        "{} answered 404 {NOT_YET} times for a complete {}",
                        self.evidence.link_operation(),
                        self.evidence.action_noun()
                    ));
                    self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                }
                Ok(None)
            }
            Step::Link(Err(e)) | Step::Saved(Err(e)) => {
                // A full or read-only disk fails every machine alike: the run stops on it.
                if vocabulary::holds_for_every_call(&e) || local_fault(&e) {
                    return Err(e);
                }
                let why = Note::failed(&e);
                self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                Ok(None)
            }
            Step::Saved(Ok(saved)) => {
                let file = self.file_of(&item);
                let record = self.record_of(&item, &file, (saved.size, &saved.sha256));
                if let Err(e) = evidence::append(self.settings.dir, &record) {
                    let why = format!("saved {file}, but the manifest could not be written: {e}");
                    self.set(
                        &machine,
                        Some(&id),
                        Stage::Failed,
                        Note::says(why),
                        progress,
                    )?;
                    return Ok(None);
                }
                self.saved(&item, record, (Some(&saved), false), progress)?;
                Ok(None)
            }
        }
    }
}
