//! Progress hints: a worker interceptor that tells a task's relays, on the bus, after every
//! workflow activation that was more than queries, that the workflow's log may have grown (or
//! that the run closed). The relays then read the log with one query instead of long-polling
//! the task's history. The hint goes out just before the activation's completion reaches
//! Temporal; a query sent on it is answered only after that workflow task completed (Temporal
//! holds queries while a workflow task runs), so it sees what the task appended.

use agentflow_bus::{Bus, Progress};
use agentflow_shared::ids::{TaskId, TenantId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use temporalio_common::protos::coresdk::workflow_activation::workflow_activation_job::Variant as Job;
use temporalio_common::protos::coresdk::workflow_activation::{
    InitializeWorkflow, WorkflowActivation,
};
use temporalio_common::protos::coresdk::workflow_commands::workflow_command::Variant as Command;
use temporalio_common::protos::coresdk::workflow_completion::WorkflowActivationCompletion;
use temporalio_common::protos::coresdk::workflow_completion::workflow_activation_completion::Status;
use temporalio_sdk::interceptors::WorkerInterceptor;

/// What the interceptor knows of one cached run.
#[derive(Debug)]
struct Run {
    /// The run's task (from its workflow id).
    task: TaskId,
    /// The task's tenant (from its input; the default one for a task created before tenancy).
    tenant: TenantId,
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
    /// The tenant of tasks created before tenancy.
    default_tenant: TenantId,
    runs: Arc<Runs>,
    /// Tasks whose last hint did not go out (at most [`MAX_MISSED`]).
    missed: Arc<Mutex<HashSet<(TenantId, TaskId)>>>,
}

/// The most tasks remembered for a hint again after an outage; past it a relay catches up at
/// its task's next step.
const MAX_MISSED: usize = 65_536;

impl ProgressHinter {
    /// A hinter publishing on `bus`, a task created before tenancy under `default_tenant`
    /// (`auth.default_tenant`).
    pub fn new(bus: Bus, default_tenant: TenantId) -> Self {
        Self {
            bus,
            default_tenant,
            runs: Arc::default(),
            missed: Arc::default(),
        }
    }

    /// Sends `tenant`'s `task` its hint, remembering it when it could not go out.
    async fn hint(&self, tenant: TenantId, task: TaskId, progress: Progress) {
        if !self.bus.hint_progress(&tenant, task, progress).await {
            let mut missed = self.missed.lock().expect("hinter lock");
            if missed.len() < MAX_MISSED {
                missed.insert((tenant, task));
            }
        }
    }

    /// Sends the hints that did not go out, now that NATS is back.
    async fn resend_missed(&self) {
        let missed: Vec<_> = self.missed.lock().expect("hinter lock").drain().collect();
        for (tenant, task) in missed {
            self.hint(tenant, task, Progress::Appended).await;
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

/// The tenant a run's input names, if any (only that field of the task's input is read).
fn input_tenant(start: &InitializeWorkflow) -> Option<TenantId> {
    #[derive(serde::Deserialize)]
    struct Input {
        #[serde(default)]
        tenant: Option<TenantId>,
    }
    let input = start.arguments.first()?;
    serde_json::from_slice::<Input>(&input.data).ok()?.tenant
}

impl Runs {
    /// Notes what `activation` is about (a new run's tenant, or `default_tenant`); the hint
    /// follows its completion.
    fn note(&self, activation: &WorkflowActivation, default_tenant: &TenantId) {
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
                        tenant: input_tenant(start).unwrap_or_else(|| default_tenant.clone()),
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
    fn hint_for(
        &self,
        completion: &WorkflowActivationCompletion,
    ) -> Option<(TenantId, TaskId, Progress)> {
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
                Some((run.tenant.clone(), run.task, progress))
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
        if let Some((tenant, task, progress)) = self.runs.hint_for(completion) {
            self.hint(tenant, task, progress).await;
        }
    }

    async fn on_workflow_activation(
        &self,
        activation: &WorkflowActivation,
    ) -> Result<(), anyhow::Error> {
        self.runs.note(activation, &self.default_tenant);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use temporalio_common::protos::coresdk::workflow_activation::{
        QueryWorkflow, RemoveFromCache, ResolveActivity, WorkflowActivationJob,
    };
    use temporalio_common::protos::coresdk::workflow_commands::{
        CompleteWorkflowExecution, ScheduleActivity, WorkflowCommand,
    };
    use temporalio_common::protos::coresdk::workflow_completion::Success;
    use temporalio_common::protos::temporal::api::common::v1::Payload;

    const RUN: &str = "run-1";

    fn default_tenant() -> TenantId {
        "default".parse().unwrap()
    }

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
        let tenant = default_tenant();
        let runs = Runs::default();
        let start = Job::InitializeWorkflow(InitializeWorkflow {
            workflow_id: task.workflow_id(),
            ..Default::default()
        });
        runs.note(&activation(vec![start.clone()], false), &tenant);
        let scheduled = Command::ScheduleActivity(ScheduleActivity::default());
        assert_eq!(
            runs.hint_for(&completion(vec![scheduled.clone()])),
            Some((tenant.clone(), task, Progress::Appended))
        );
        // Only queries: nothing a relay could read changed.
        runs.note(
            &activation(vec![Job::QueryWorkflow(QueryWorkflow::default())], false),
            &tenant,
        );
        assert_eq!(runs.hint_for(&completion(Vec::new())), None);
        // A replayed activation (after the cache lost the run) neither.
        runs.note(&activation(vec![start], true), &tenant);
        assert_eq!(runs.hint_for(&completion(vec![scheduled])), None);
        let resolved = Job::ResolveActivity(ResolveActivity::default());
        runs.note(&activation(vec![resolved], false), &tenant);
        let complete = Command::CompleteWorkflowExecution(CompleteWorkflowExecution::default());
        assert_eq!(
            runs.hint_for(&completion(vec![complete])),
            Some((tenant.clone(), task, Progress::Closing))
        );
        // Evicted: forgotten, so the map stays as small as the worker's cache.
        runs.note(
            &activation(
                vec![Job::RemoveFromCache(RemoveFromCache::default())],
                false,
            ),
            &tenant,
        );
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
        runs.note(&activation(vec![start], false), &default_tenant());
        assert_eq!(runs.hint_for(&completion(Vec::new())), None);
    }

    #[test]
    fn a_runs_hints_name_the_tenant_of_its_input_or_else_the_default_one() {
        let task = TaskId::new();
        let scheduled = Command::ScheduleActivity(ScheduleActivity::default());
        for (input, tenant) in [
            (json!({"task_id": task, "tenant": "acme"}), "acme"),
            (json!({"task_id": task}), "default"),
        ] {
            let runs = Runs::default();
            let start = Job::InitializeWorkflow(InitializeWorkflow {
                workflow_id: task.workflow_id(),
                arguments: vec![Payload {
                    data: serde_json::to_vec(&input).unwrap(),
                    ..Default::default()
                }],
                ..Default::default()
            });
            runs.note(&activation(vec![start], false), &default_tenant());
            assert_eq!(
                runs.hint_for(&completion(vec![scheduled.clone()])),
                Some((tenant.parse().unwrap(), task, Progress::Appended))
            );
        }
    }
}
