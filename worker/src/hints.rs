//! Progress hints: a worker interceptor that tells a task's relays, on the bus, after every
//! workflow activation that was more than queries, that the workflow's log may have grown (or
//! that the run closed). The relays then read the log with one query instead of long-polling
//! the task's history. The hint goes out just before the activation's completion reaches
//! Temporal; a query sent on it is answered only after that workflow task completed (Temporal
//! holds queries while a workflow task runs), so it sees what the task appended.

use agentflow_bus::{Bus, Progress};
use agentflow_shared::ids::TaskId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use temporalio_common::protos::coresdk::workflow_activation::WorkflowActivation;
use temporalio_common::protos::coresdk::workflow_activation::workflow_activation_job::Variant as Job;
use temporalio_common::protos::coresdk::workflow_commands::workflow_command::Variant as Command;
use temporalio_common::protos::coresdk::workflow_completion::WorkflowActivationCompletion;
use temporalio_common::protos::coresdk::workflow_completion::workflow_activation_completion::Status;
use temporalio_sdk::interceptors::WorkerInterceptor;

/// What the interceptor knows of one cached run.
#[derive(Debug)]
struct Run {
    /// The run's task (from its workflow id).
    task: TaskId,
    /// The activation in progress is worth a hint (it was more than queries).
    worth_a_hint: bool,
    /// The activation in progress evicts the run.
    evicted: bool,
}

/// Sends a [`Progress`] hint per workflow activation that could have changed the log. A hint
/// that could not go out (NATS unreachable) is sent again once NATS is back, so no step goes
/// unhinted for longer than the outage. Clones share their state.
#[derive(Clone)]
pub struct ProgressHinter {
    bus: Bus,
    runs: Arc<Runs>,
    /// Tasks whose last hint did not go out (at most [`MAX_MISSED`]).
    missed: Arc<Mutex<HashSet<TaskId>>>,
}

/// The most tasks remembered for a hint again after an outage; past it a relay catches up at
/// its task's next step.
const MAX_MISSED: usize = 65_536;

impl ProgressHinter {
    /// A hinter publishing on `bus`.
    pub fn new(bus: Bus) -> Self {
        Self {
            bus,
            runs: Arc::default(),
            missed: Arc::default(),
        }
    }

    /// Sends `task` its hint, remembering it when it could not go out.
    async fn hint(&self, task: TaskId, progress: Progress) {
        if !self.bus.hint_progress(task, progress).await {
            let mut missed = self.missed.lock().expect("hinter lock");
            if missed.len() < MAX_MISSED {
                missed.insert(task);
            }
        }
    }

    /// Sends the hints that did not go out, now that NATS is back.
    async fn resend_missed(&self) {
        let missed: Vec<TaskId> = self.missed.lock().expect("hinter lock").drain().collect();
        for task in missed {
            self.hint(task, Progress::Appended).await;
        }
    }

    /// Runs until the bus goes away: after every change of the bus's state (a reconnect
    /// among them), resends the hints that did not go out.
    pub async fn resend_after_outages(self) {
        let mut state = self.bus.watch_state();
        while state.changed().await.is_ok() {
            if self.bus.is_connected() {
                self.resend_missed().await;
            }
        }
    }
}

/// The runs the worker caches, by run id, and what their activation in progress deserves.
#[derive(Debug, Default)]
struct Runs(Mutex<HashMap<String, Run>>);

impl Runs {
    /// Notes what `activation` is about; the hint follows its completion.
    fn note(&self, activation: &WorkflowActivation) {
        let mut runs = self.0.lock().expect("hinter lock");
        for job in activation
            .jobs
            .iter()
            .filter_map(|job| job.variant.as_ref())
        {
            if let Job::InitializeWorkflow(start) = job
                && let Some(task) = TaskId::from_workflow_id(&start.workflow_id)
            {
                runs.insert(
                    activation.run_id.clone(),
                    Run {
                        task,
                        worth_a_hint: false,
                        evicted: false,
                    },
                );
            }
        }
        if let Some(run) = runs.get_mut(&activation.run_id) {
            let jobs = activation
                .jobs
                .iter()
                .filter_map(|job| job.variant.as_ref());
            // A replayed activation changes nothing a relay could read; the last one of a
            // replay (new events) is not replaying.
            run.worth_a_hint = !activation.is_replaying
                && jobs
                    .clone()
                    .any(|job| !matches!(job, Job::QueryWorkflow(_) | Job::RemoveFromCache(_)));
            run.evicted = jobs
                .clone()
                .any(|job| matches!(job, Job::RemoveFromCache(_)));
        }
    }

    /// The hint `completion` deserves, if any; forgets an evicted run.
    fn hint_for(&self, completion: &WorkflowActivationCompletion) -> Option<(TaskId, Progress)> {
        let mut runs = self.0.lock().expect("hinter lock");
        let run = runs.get(&completion.run_id)?;
        let hint = match &completion.status {
            Some(Status::Successful(success)) if run.worth_a_hint => {
                let closes = success.commands.iter().any(|command| {
                    matches!(
                        command.variant,
                        Some(
                            Command::CompleteWorkflowExecution(_)
                                | Command::FailWorkflowExecution(_)
                                | Command::CancelWorkflowExecution(_)
                                | Command::ContinueAsNewWorkflowExecution(_)
                        )
                    )
                });
                let progress = if closes {
                    Progress::Closing
                } else {
                    Progress::Appended
                };
                Some((run.task, progress))
            }
            _ => None,
        };
        if run.evicted {
            runs.remove(&completion.run_id);
        }
        hint
    }
}

#[async_trait::async_trait(?Send)]
impl WorkerInterceptor for ProgressHinter {
    async fn on_workflow_activation_completion(&self, completion: &WorkflowActivationCompletion) {
        if let Some((task, progress)) = self.runs.hint_for(completion) {
            self.hint(task, progress).await;
        }
    }

    async fn on_workflow_activation(
        &self,
        activation: &WorkflowActivation,
    ) -> Result<(), anyhow::Error> {
        self.runs.note(activation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::coresdk::workflow_activation::{
        InitializeWorkflow, QueryWorkflow, RemoveFromCache, ResolveActivity, WorkflowActivationJob,
    };
    use temporalio_common::protos::coresdk::workflow_commands::{
        CompleteWorkflowExecution, ScheduleActivity, WorkflowCommand,
    };
    use temporalio_common::protos::coresdk::workflow_completion::Success;

    const RUN: &str = "run-1";

    fn activation(jobs: Vec<Job>, is_replaying: bool) -> WorkflowActivation {
        WorkflowActivation {
            run_id: RUN.into(),
            is_replaying,
            jobs: jobs
                .into_iter()
                .map(|job| WorkflowActivationJob { variant: Some(job) })
                .collect(),
            ..Default::default()
        }
    }

    fn completion(commands: Vec<Command>) -> WorkflowActivationCompletion {
        WorkflowActivationCompletion {
            run_id: RUN.into(),
            status: Some(Status::Successful(Success {
                commands: commands
                    .into_iter()
                    .map(|command| WorkflowCommand {
                        variant: Some(command),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn a_step_hints_appended_a_closing_step_closing_and_queries_or_replays_nothing() {
        let task = TaskId::new();
        let runs = Runs::default();
        let start = Job::InitializeWorkflow(InitializeWorkflow {
            workflow_id: task.workflow_id(),
            ..Default::default()
        });
        runs.note(&activation(vec![start.clone()], false));
        let scheduled = Command::ScheduleActivity(ScheduleActivity::default());
        assert_eq!(
            runs.hint_for(&completion(vec![scheduled.clone()])),
            Some((task, Progress::Appended))
        );
        // Only queries: nothing a relay could read changed.
        runs.note(&activation(
            vec![Job::QueryWorkflow(QueryWorkflow::default())],
            false,
        ));
        assert_eq!(runs.hint_for(&completion(Vec::new())), None);
        // A replayed activation (after the cache lost the run) neither.
        runs.note(&activation(vec![start], true));
        assert_eq!(runs.hint_for(&completion(vec![scheduled])), None);
        let resolved = Job::ResolveActivity(ResolveActivity::default());
        runs.note(&activation(vec![resolved], false));
        let complete = Command::CompleteWorkflowExecution(CompleteWorkflowExecution::default());
        assert_eq!(
            runs.hint_for(&completion(vec![complete])),
            Some((task, Progress::Closing))
        );
        // Evicted: forgotten, so the map stays as small as the worker's cache.
        runs.note(&activation(
            vec![Job::RemoveFromCache(RemoveFromCache::default())],
            false,
        ));
        assert_eq!(runs.hint_for(&completion(Vec::new())), None);
        assert!(runs.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_run_that_is_not_a_task_gets_no_hint() {
        let runs = Runs::default();
        let start = Job::InitializeWorkflow(InitializeWorkflow {
            workflow_id: "something-else".into(),
            ..Default::default()
        });
        runs.note(&activation(vec![start], false));
        assert_eq!(runs.hint_for(&completion(Vec::new())), None);
    }
}
