//! Driving the run: each request's outcome admitted as it comes, one look at the actions per
//! interval, and as many links and transfers at once as `--parallel` allows, until every
//! machine ends or the run is stopped.

use super::*;

impl<'a> Pipeline<'a> {
    /// Follows the outcomes `rx` brings until every machine has ended (or `stop`); an error
    /// that stops the run (the journal or the evidence folder not writable) ends it.
    pub(super) async fn drive(
        &mut self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
        stop: impl Future<Output = ()>,
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let mut open = true;
        let mut stopping = false;
        let mut work: FuturesUnordered<Work<'a>> = FuturesUnordered::new();
        let mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        tokio::pin!(stop);
        progress(&self.board, None);
        loop {
            if !stopping {
                self.start_ready(&mut work, progress)?;
            }
            let waiting = self.following().next().is_some()
                || !self.to_find.is_empty()
                || !self.retry.is_empty();
            if waiting && timer.is_none() && !stopping {
                timer = Some(self.client.clock().sleep(self.settings.interval));
            }
            if !open && (stopping || (!waiting && work.is_empty() && self.ready.is_empty())) {
                return Ok(());
            }
            tokio::select! {
                outcome = rx.recv(), if open => match outcome {
                    Some(outcome) => self.admit(outcome, progress)?,
                    None => open = false,
                },
                () = async { timer.as_mut().expect("a timer is set").await }, if timer.is_some() && !stopping => {
                    timer = None;
                    self.poll(progress).await?;
                }
                Some((item, step)) = work.next(), if !work.is_empty() && !stopping => {
                    if let Some(next) = self.step(item, step, progress)? {
                        work.push(next);
                    }
                }
                () = &mut stop, if !stopping => stopping = true,
            }
        }
    }

    /// Starts the links of the items ready, up to `--parallel` at once; one a killed run saved
    /// but did not record is recorded, not fetched again.
    fn start_ready(
        &mut self,
        work: &mut FuturesUnordered<Work<'a>>,
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        while work.len() < self.settings.parallel {
            let Some(item) = self.ready.pop_front() else {
                break;
            };
            let machine = self.actions[&item.action].0.clone();
            let file = self.file_of(&item);
            let record = |size, sha256: &str| self.record_of(&item, &file, (size, sha256));
            match adopt_saved(self.settings.dir, &file, record) {
                Ok(Some(record)) => self.saved(&item, record, (None, false), progress)?,
                Ok(None) => work.push(self.link(item)),
                Err(e) => {
                    let why = Note::says(format!("{file} exists but cannot be read: {e}"));
                    let id = item.action.clone();
                    self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                }
            }
        }
        Ok(())
    }
}
