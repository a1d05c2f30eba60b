//! Listing machines and actions (every page) and following actions to their end, with the
//! rule for giving up on an action the list does not show.

use crate::client::Client;
use crate::error::Error;
use crate::operations::{self, Request};

/// Whether a machine action's status is final. A status the spec does not know is not: it is
/// shown as it is, and followed until it turns into a known final one.
pub fn is_final(status: &crate::types::MachineActionStatus) -> bool {
    use crate::types::MachineActionStatus as S;
    match status {
        S::Succeeded | S::Failed | S::TimeOut | S::Cancelled => true,
        S::Pending | S::InProgress | S::Other(_) => false,
    }
}

/// The most entities a list page holds (reference: get-machines.md,
/// get-machineactions-collection.md); the list operations ask for pages this size.
pub const PAGE: usize = 10_000;

/// The list calls that read `items` entities a [`PAGE`] at a time: each full page, and the
/// last one, short or empty.
pub fn list_calls(items: usize) -> usize {
    1 + items / PAGE
}

/// What [`Client::follow_actions`] saw.
#[derive(Clone, Debug, Default)]
pub struct Followed {
    /// Each action as last seen, by id.
    pub actions: std::collections::HashMap<String, crate::types::MachineAction>,
    /// The list calls it took.
    pub list_calls: u32,
    /// Ids the list stopped showing, or never showed: given up, not final.
    pub unlisted: Vec<String>,
    /// Ids still not final when the deadline passed.
    pub running: Vec<String>,
}

impl Client {
    /// Every entity of a list operation, a page of [`PAGE`] at a time (`request` makes the
    /// request for a `$top` and a `$skip`), the next page only when one is full. With
    /// `none_if_404`, a 404 for the first page is no entity.
    async fn all_pages<R: Request, T>(
        &self,
        request: impl Fn(Option<i32>, Option<i32>) -> R,
        value: impl Fn(R::Response) -> Vec<T>,
        none_if_404: bool,
    ) -> Result<Vec<T>, Error> {
        let mut all = Vec::new();
        loop {
            let skip = (!all.is_empty()).then_some(all.len() as i32);
            let page = match self.send(request(Some(PAGE as i32), skip)).await {
                Ok(page) => value(page),
                Err(Error::NotFound(_)) if none_if_404 && all.is_empty() => return Ok(all),
                Err(e) => return Err(e),
            };
            let full = page.len() >= PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Every machine action `filter` selects (an OData `$filter`, or all), newest first: one
    /// listMachineActions call per 10,000 (the next page only when one is full).
    pub async fn list_actions(
        &self,
        filter: Option<String>,
    ) -> Result<Vec<crate::types::MachineAction>, Error> {
        let request = |top, skip| operations::ListMachineActions {
            filter: filter.clone(),
            top,
            skip,
        };
        self.all_pages(request, |page| page.value, false).await
    }

    /// Every machine `filter` selects (an OData `$filter`, or all), in the service's order: one
    /// listMachines call per 10,000 (the next page only when one is full). The service's 404
    /// for a tenant with no recent machines (get-machines.md) is an empty list.
    pub async fn list_machines(
        &self,
        filter: Option<String>,
    ) -> Result<Vec<crate::types::Machine>, Error> {
        let request = |top, skip| operations::ListMachines {
            filter: filter.clone(),
            top,
            skip,
        };
        self.all_pages(request, |page| page.value, true).await
    }

    /// The machines that carry `tag` (findMachinesByTag: one call; with `starts_with`, a tag
    /// that starts with it). An empty tag is [`Error::InvalidInput`], never sent.
    pub async fn find_machines_by_tag(
        &self,
        tag: &str,
        starts_with: bool,
    ) -> Result<Vec<crate::types::Machine>, Error> {
        let tag = tag
            .try_into()
            .map_err(|e| Error::InvalidInput(format!("the tag: {e}")))?;
        let find = operations::FindMachinesByTag {
            tag,
            use_starts_with_filter: starts_with.then_some(true),
        };
        Ok(self.send(find).await?.value)
    }

    /// Follows `ids` to their final statuses with listMachineActions: one call per `interval`
    /// sees every action created since `since` (10,000 a page, the next page only when one
    /// is full), never one call per action. `seen` is told each action whose status changed.
    ///
    /// Returns when every id has a final status ([`is_final`]), or has gone unlisted: an id
    /// the list does not show in [`UNLISTED_LOOKS`] looks in a row (an action of another
    /// tenant or host, one the service no longer has, or `since` after its creation) is
    /// given up and named in [`Followed::unlisted`]. With a `deadline` (the client's clock
    /// time from now), it also returns when the deadline passes, with the ids still running
    /// in [`Followed::running`].
    pub async fn follow_actions<I>(
        &self,
        ids: I,
        since: chrono::DateTime<chrono::Utc>,
        interval: std::time::Duration,
        deadline: Option<std::time::Duration>,
        mut seen: impl FnMut(&crate::types::MachineAction),
    ) -> Result<Followed, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let ids: Vec<String> = ids.into_iter().map(|id| id.as_ref().to_string()).collect();
        let ends = deadline.map(|d| self.clock().now() + d);
        let mut unlisted = Unlisted::default();
        let mut followed = Followed::default();
        let filter = since_filter(since);
        loop {
            let listed = self.list_actions(Some(filter.clone())).await?;
            followed.list_calls += list_calls(listed.len()) as u32;
            let mut shown = std::collections::HashSet::new();
            for action in listed {
                let Some(id) = action.id.clone().filter(|id| ids.contains(id)) else {
                    continue;
                };
                let changed = followed
                    .actions
                    .get(&id)
                    .is_none_or(|before| before.status != action.status);
                if changed {
                    seen(&action);
                }
                shown.insert(id.clone());
                followed.actions.insert(id, action);
            }
            let gone = unlisted.look(ids.iter().map(String::as_str), &shown);
            let is_done = |id: &String| {
                followed
                    .actions
                    .get(id)
                    .and_then(|a| a.status.as_ref())
                    .is_some_and(is_final)
            };
            let open: Vec<&String> = ids.iter().filter(|id| !is_done(id)).collect();
            let (unlisted, running): (Vec<&String>, Vec<&String>) =
                open.into_iter().partition(|id| gone.contains(id));
            let late = ends.is_some_and(|end| self.clock().now() + interval > end);
            if running.is_empty() || late {
                followed.unlisted = unlisted.into_iter().cloned().collect();
                followed.running = running.into_iter().cloned().collect();
                return Ok(followed);
            }
            self.clock().sleep(interval).await;
        }
    }
}

/// How many looks in a row an action followed may be missing from the list before it is
/// given up: an action is listed from its creation on, so this only covers a list that
/// lags behind its writes.
pub const UNLISTED_LOOKS: u32 = 3;

/// The rule for giving up on an action the list does not show: [`UNLISTED_LOOKS`] looks in a
/// row without it. [`Client::follow_actions`] follows it, and so may a caller that lists the
/// actions itself.
#[derive(Debug, Default)]
pub struct Unlisted {
    looks: std::collections::HashMap<String, u32>,
}

impl Unlisted {
    /// One more look: of `followed`, those `listed` (their ids) does not show are missing
    /// once more, the others not at all; returns those missing [`UNLISTED_LOOKS`] times in
    /// a row, to give up on.
    pub fn look<'a>(
        &mut self,
        followed: impl IntoIterator<Item = &'a str>,
        listed: &std::collections::HashSet<String>,
    ) -> Vec<String> {
        let mut gone = Vec::new();
        for id in followed {
            let missing = self.looks.entry(id.to_string()).or_insert(0);
            *missing = if listed.contains(id) { 0 } else { *missing + 1 };
            if *missing >= UNLISTED_LOOKS {
                gone.push(id.to_string());
            }
        }
        gone
    }
}

/// The `$filter` of the actions created at or after `since` (to the second, rounded down).
pub fn since_filter(since: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "creationDateTimeUtc ge {}",
        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}
