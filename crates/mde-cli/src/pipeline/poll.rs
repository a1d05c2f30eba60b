//! Following the collections (or sessions): one listMachineActions call per interval for the
//! whole run, and giving up on actions the service does not list.

use super::*;

impl<'a> Pipeline<'a> {
    /// Actions still to see complete.
    pub(super) fn following(&self) -> impl Iterator<Item = &MachineAction> {
        self.actions
            .iter()
            .filter(|(id, _)| {
                !self.ready.iter().any(|i| &i.action == *id)
                    && !self.retry.iter().any(|i| &i.action == *id)
            })
            .map(|(_, (_, a))| a)
            .filter(|a| a.status.as_ref().is_none_or(|s| !mde_client::is_final(s)))
    }

    /// One look at every action of the run: a listMachineActions call (a page per 10,000)
    /// for those created since the oldest followed.
    pub(super) async fn poll(&mut self, progress: OnBoard<'_>) -> Result<(), Error> {
        if !self.to_find.is_empty() {
            let machines = std::mem::take(&mut self.to_find);
            let kind = self.evidence.action_type();
            let (found, calls) = find_actions(self.client, kind, &machines, None).await?;
            self.list_calls += calls;
            for machine in machines {
                match found.get(&machine) {
                    Some(action) => self.follow(machine, action.clone(), progress)?,
                    None => {
                        let why = Note::says(format!(
                            "a {} was already running, and none is listed",
                            self.evidence.action_noun()
                        ));
                        self.set(&machine, None, Stage::Failed, why, progress)?;
                    }
                }
            }
        }
        // Asked too early: asked again now.
        self.ready.extend(self.retry.drain(..));
        if self.following().next().is_none() {
            return Ok(());
        }
        let created = self.following().map(|a| a.creation_date_time_utc.as_ref());
        let since = crate::vocabulary::listed_since(created);
        let mut listed = self
            .client
            .list_actions(Some(mde_client::since_filter(since)))
            .await?;
        self.list_calls += mde_client::workspace::list_calls(listed.len());
        self.give_up_unlisted(&listed, progress)?;
        // Listed newest first; the oldest complete action gets the next link.
        listed.reverse();
        for action in listed {
            let Some(id) = action.id.clone() else {
                continue;
            };
            let Some((machine, before)) = self.actions.get(&id) else {
                continue;
            };
            let queued = self.ready.iter().any(|i| i.action == id);
            if before.status == action.status || queued {
                continue;
            }
            let machine = machine.clone();
            self.moved(machine, action, progress)?;
        }
        Ok(())
    }

    /// Fails each action followed that the list has not shown in
    /// [`mde_client::UNLISTED_LOOKS`] looks in a row: the service does not have it (another
    /// tenant or host, a restarted service, an action deleted), and following it would
    /// never end.
    pub(super) fn give_up_unlisted(
        &mut self,
        listed: &[MachineAction],
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let shown: std::collections::HashSet<String> =
            listed.iter().filter_map(|a| a.id.clone()).collect();
        let followed: Vec<String> = self.following().filter_map(|a| a.id.clone()).collect();
        for id in self
            .unlisted
            .look(followed.iter().map(String::as_str), &shown)
        {
            let Some((machine, _)) = self.actions.remove(&id) else {
                continue;
            };
            let why = Note::says(format!(
                "the service does not list the {} {id} ({} looks in a row): it is not in this tenant or at this host, or it was deleted",
                self.evidence.action_noun(),
                mde_client::UNLISTED_LOOKS
            ));
            self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
        }
        Ok(())
    }
}
