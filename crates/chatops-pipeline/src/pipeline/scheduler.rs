//! The [`Scheduler`]: which live jobs run and which wait, in plain data (no actor, no I/O), so
//! the rules are unit-tested on their own.
//!
//! A job runs when there is a server slot (`server.max_concurrent_jobs`), a slot of its
//! project (`projects.<name>.max_concurrent_jobs`) and its `resource_group:` (per project) is
//! not busy. Otherwise it waits in one queue, oldest first; when a slot frees, the oldest
//! waiting jobs that fit start (a job that does not fit, its project at its limit or its group
//! busy, does not hold back the others). A manual job that waits to be played is not here: it
//! is a row in the store until played.

use chatops_core::{JobId, ProjectName};
use std::collections::{HashMap, HashSet, VecDeque};

/// What a job needs to run: where its slots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub project: ProjectName,
    /// The project's `max_concurrent_jobs` (at least 1).
    pub project_limit: usize,
    /// `resource_group:`: at most one job of the project's group runs at a time.
    pub resource_group: Option<String>,
}

/// Where a live job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Queued,
    Running,
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    stage: Stage,
}

/// The live jobs (queued or running) and the slots they hold.
#[derive(Debug)]
pub(crate) struct Scheduler {
    /// `server.max_concurrent_jobs` (at least 1).
    max_running: usize,
    jobs: HashMap<JobId, Entry>,
    running: usize,
    running_by_project: HashMap<ProjectName, usize>,
    /// The resource groups busy now, per project.
    busy_groups: HashSet<(ProjectName, String)>,
    /// Jobs waiting for a slot, oldest first.
    queue: VecDeque<JobId>,
}

impl Scheduler {
    pub fn new(max_running: usize) -> Scheduler {
        Scheduler {
            max_running: max_running.max(1),
            jobs: HashMap::new(),
            running: 0,
            running_by_project: HashMap::new(),
            busy_groups: HashSet::new(),
            queue: VecDeque::new(),
        }
    }

    /// Takes a new job: it runs at once when it fits and nobody waits, else it joins the
    /// queue (and any waiting job that fits now starts). Returns the jobs to start, in order
    /// (`id` among them when it runs). A job already here changes nothing.
    pub fn add(&mut self, id: JobId, slot: Slot) -> Vec<JobId> {
        if self.jobs.contains_key(&id) {
            return Vec::new();
        }
        let slot = Slot {
            project_limit: slot.project_limit.max(1),
            ..slot
        };
        let fits = self.fits(&slot);
        self.jobs.insert(
            id,
            Entry {
                slot,
                stage: Stage::Queued,
            },
        );
        if fits && self.queue.is_empty() {
            self.start(id);
            return vec![id];
        }
        self.queue.push_back(id);
        self.drain()
    }

    /// A job ended (ran to its end, or was canceled while queued): its slots are free.
    /// Returns the waiting jobs that start now, oldest first.
    pub fn remove(&mut self, id: JobId) -> Vec<JobId> {
        if let Some(entry) = self.jobs.remove(&id) {
            match entry.stage {
                Stage::Running => {
                    self.running = self.running.saturating_sub(1);
                    if let Some(n) = self.running_by_project.get_mut(&entry.slot.project) {
                        *n = n.saturating_sub(1);
                    }
                    if let Some(g) = entry.slot.resource_group {
                        self.busy_groups.remove(&(entry.slot.project, g));
                    }
                }
                Stage::Queued => self.queue.retain(|q| *q != id),
            }
        }
        self.drain()
    }

    #[cfg(test)]
    pub fn stage(&self, id: JobId) -> Option<Stage> {
        self.jobs.get(&id).map(|e| e.stage)
    }

    pub fn project_of(&self, id: JobId) -> Option<&ProjectName> {
        self.jobs.get(&id).map(|e| &e.slot.project)
    }

    /// A waiting job's place in the queue, from 1.
    pub fn position(&self, id: JobId) -> Option<usize> {
        self.queue.iter().position(|q| *q == id).map(|i| i + 1)
    }

    /// The waiting jobs, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = JobId> + '_ {
        self.queue.iter().copied()
    }

    pub fn running(&self) -> usize {
        self.running
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Live jobs: running and queued.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Every live job.
    pub fn ids(&self) -> Vec<JobId> {
        self.jobs.keys().copied().collect()
    }

    fn fits(&self, slot: &Slot) -> bool {
        let in_project = self
            .running_by_project
            .get(&slot.project)
            .copied()
            .unwrap_or(0);
        let group_free = slot.resource_group.as_ref().is_none_or(|g| {
            !self
                .busy_groups
                .contains(&(slot.project.clone(), g.clone()))
        });
        self.running < self.max_running && in_project < slot.project_limit && group_free
    }

    fn start(&mut self, id: JobId) {
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        entry.stage = Stage::Running;
        self.running += 1;
        *self
            .running_by_project
            .entry(entry.slot.project.clone())
            .or_default() += 1;
        if let Some(g) = &entry.slot.resource_group {
            self.busy_groups
                .insert((entry.slot.project.clone(), g.clone()));
        }
    }

    /// Starts waiting jobs while they fit, oldest first.
    fn drain(&mut self) -> Vec<JobId> {
        let mut started = Vec::new();
        let mut i = 0;
        while let Some(&id) = self.queue.get(i) {
            let fits = match self.jobs.get(&id) {
                Some(entry) => self.fits(&entry.slot),
                None => {
                    // Not live any more: it has no place in the queue.
                    self.queue.remove(i);
                    continue;
                }
            };
            if fits {
                self.queue.remove(i);
                self.start(id);
                started.push(id);
            } else {
                i += 1;
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(project: &str, limit: usize, group: Option<&str>) -> Slot {
        Slot {
            project: ProjectName::new(project),
            project_limit: limit,
            resource_group: group.map(str::to_owned),
        }
    }

    fn queued(s: &Scheduler) -> Vec<u64> {
        s.queued().map(|id| id.0).collect()
    }

    #[test]
    fn jobs_run_up_to_the_server_limit_then_wait_in_order() {
        let mut s = Scheduler::new(2);
        assert_eq!(s.add(JobId(1), slot("a", 10, None)), vec![JobId(1)]);
        assert_eq!(s.add(JobId(2), slot("b", 10, None)), vec![JobId(2)]);
        assert!(s.add(JobId(3), slot("a", 10, None)).is_empty());
        assert!(s.add(JobId(4), slot("b", 10, None)).is_empty());
        assert_eq!(s.stage(JobId(3)), Some(Stage::Queued));
        assert_eq!(
            (s.position(JobId(3)), s.position(JobId(4))),
            (Some(1), Some(2))
        );
        assert_eq!((s.running(), s.queue_len(), s.len()), (2, 2, 4));
        // A slot frees: the oldest waiting job takes it.
        assert_eq!(s.remove(JobId(2)), vec![JobId(3)]);
        assert_eq!(s.stage(JobId(3)), Some(Stage::Running));
        assert_eq!(s.position(JobId(4)), Some(1));
        assert_eq!(s.remove(JobId(1)), vec![JobId(4)]);
        assert_eq!((s.running(), s.queue_len()), (2, 0));
    }

    #[test]
    fn a_project_at_its_limit_does_not_hold_back_others() {
        let mut s = Scheduler::new(10);
        assert_eq!(s.add(JobId(1), slot("a", 1, None)), vec![JobId(1)]);
        // a is full: its second job waits; b's job, queued behind it, still starts.
        assert!(s.add(JobId(2), slot("a", 1, None)).is_empty());
        assert_eq!(s.add(JobId(3), slot("b", 1, None)), vec![JobId(3)]);
        assert_eq!(queued(&s), vec![2]);
        assert_eq!(s.remove(JobId(1)), vec![JobId(2)]);
        assert_eq!(s.project_of(JobId(2)), Some(&ProjectName::new("a")));
    }

    #[test]
    fn a_new_job_never_overtakes_waiting_ones_that_fit() {
        let mut s = Scheduler::new(1);
        s.add(JobId(1), slot("a", 5, None));
        s.add(JobId(2), slot("a", 5, None));
        s.add(JobId(3), slot("a", 5, None));
        assert_eq!(s.remove(JobId(1)), vec![JobId(2)]);
        assert_eq!(queued(&s), vec![3]);
    }

    #[test]
    fn a_resource_group_runs_one_job_at_a_time_per_project() {
        let mut s = Scheduler::new(10);
        assert_eq!(s.add(JobId(1), slot("a", 5, Some("prod"))), vec![JobId(1)]);
        assert!(s.add(JobId(2), slot("a", 5, Some("prod"))).is_empty());
        // Same group name in another project, or no group: not held back.
        assert_eq!(s.add(JobId(3), slot("b", 5, Some("prod"))), vec![JobId(3)]);
        assert_eq!(s.add(JobId(4), slot("a", 5, None)), vec![JobId(4)]);
        assert_eq!(queued(&s), vec![2]);
        assert_eq!(s.remove(JobId(1)), vec![JobId(2)]);
    }

    #[test]
    fn canceling_a_queued_job_moves_the_others_up_and_starts_nothing() {
        let mut s = Scheduler::new(1);
        s.add(JobId(1), slot("a", 5, None));
        s.add(JobId(2), slot("a", 5, None));
        s.add(JobId(3), slot("a", 5, None));
        assert!(s.remove(JobId(2)).is_empty());
        assert_eq!(s.stage(JobId(2)), None);
        assert_eq!(s.position(JobId(3)), Some(1));
        assert_eq!((s.running(), s.len()), (1, 2));
        assert_eq!(s.remove(JobId(1)), vec![JobId(3)]);
    }

    #[test]
    fn limits_of_zero_mean_one_and_repeats_change_nothing() {
        let mut s = Scheduler::new(0);
        assert_eq!(s.add(JobId(1), slot("a", 0, None)), vec![JobId(1)]);
        assert!(s.add(JobId(2), slot("a", 0, None)).is_empty());
        // Added twice (a replayed message): still one entry.
        assert!(s.add(JobId(1), slot("a", 0, None)).is_empty());
        assert_eq!((s.running(), s.len()), (1, 2));
        // An unknown or already removed job frees nothing twice.
        assert!(s.remove(JobId(9)).is_empty());
        assert_eq!(s.remove(JobId(1)), vec![JobId(2)]);
        assert!(s.remove(JobId(1)).is_empty());
        assert_eq!(s.running(), 1);
        assert_eq!(s.ids(), vec![JobId(2)]);
    }
}
