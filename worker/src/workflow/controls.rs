//! Pause, resume, cancel and close: whether the task's state allows them, what was asked for,
//! and whether a person's pause is in effect. The loop acts on them at safe points.

use super::AgentTaskWorkflow;
use agentflow_shared::event::Reason;
use agentflow_shared::task::{ControlRequest, ExecuteRequest, Rejection, TaskStatus};

/// What control updates asked for and the loop has not acted on yet.
#[derive(Debug, Default)]
pub(super) struct Controls {
    /// A pause waiting for the next safe point.
    pause: Option<Reason>,
    /// A person's pause is in effect.
    paused: bool,
    /// A resume of the pause in effect.
    resume: Option<Reason>,
    /// A cancellation.
    cancel: Option<Reason>,
    /// Closing a conversation.
    close: Option<Reason>,
}

/// The reason a control request gives, or `default` when it gives none.
pub(super) fn reason(request: ControlRequest, default: &str) -> Reason {
    Reason {
        reason: request
            .reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| default.to_owned()),
        requested_by: request.requested_by,
    }
}

impl Controls {
    /// Records a pause for the next safe point.
    pub(super) fn request_pause(&mut self, reason: Reason) {
        self.pause = Some(reason);
    }

    /// Resumes the pause in effect, or withdraws one that has not taken effect yet.
    pub(super) fn request_resume(&mut self, reason: Reason) {
        if self.paused {
            self.resume = Some(reason);
        } else {
            self.pause = None;
        }
    }

    /// Records a cancellation (the first one's reason stands).
    pub(super) fn request_cancel(&mut self, reason: Reason) {
        self.cancel.get_or_insert(reason);
    }

    /// Records closing the conversation (the first one's reason stands).
    pub(super) fn request_close(&mut self, reason: Reason) {
        self.close.get_or_insert(reason);
    }

    /// Whether a person's pause is in effect.
    pub(super) fn is_paused(&self) -> bool {
        self.paused
    }

    /// The cancellation asked for, if any.
    pub(super) fn cancel(&self) -> Option<&Reason> {
        self.cancel.as_ref()
    }

    /// Whether the conversation was asked to close.
    pub(super) fn closing(&self) -> bool {
        self.close.is_some()
    }

    /// Whether a resume waits.
    pub(super) fn has_resume(&self) -> bool {
        self.resume.is_some()
    }

    /// Takes a requested pause: it is in effect from now on.
    pub(super) fn take_pause(&mut self) -> Option<Reason> {
        let reason = self.pause.take()?;
        self.paused = true;
        Some(reason)
    }

    /// Takes a requested resume: the pause ends.
    pub(super) fn take_resume(&mut self) -> Option<Reason> {
        let reason = self.resume.take()?;
        self.paused = false;
        Some(reason)
    }

    /// Drops a pause that did not take effect (the turn it was for ended).
    pub(super) fn drop_pause(&mut self) {
        self.pause = None;
    }

    /// Whether no control waits to be acted on (cancel, close, pause, resume).
    pub(super) fn idle(&self) -> bool {
        self.cancel.is_none()
            && self.close.is_none()
            && self.pause.is_none()
            && self.resume.is_none()
    }
}

impl AgentTaskWorkflow {
    /// Refuses any control of a finished task.
    pub(super) fn check_open(&self) -> Result<(), Rejection> {
        if self.status.is_finished() {
            return Err(Rejection::Conflict(format!(
                "task {} is already {}",
                self.input.task_id,
                self.status.as_str()
            )));
        }
        Ok(())
    }

    /// Checks an `execute`: a query, for a task that is open, idle and not ending. (Its
    /// texts predate the typed rejections and read as conflicts.)
    pub(super) fn check_execute(&self, request: &ExecuteRequest) -> Result<(), String> {
        let task = self.input.task_id;
        if request.query.trim().is_empty() {
            return Err("the query must not be empty".into());
        }
        if self.status.is_finished() {
            return Err(format!(
                "task {task} is already {}; create a new task to run another query",
                self.status.as_str()
            ));
        }
        if self.pending.is_some() {
            return Err(format!("task {task} is already running"));
        }
        if self.controls.closing() || self.controls.cancel.is_some() {
            return Err(format!("task {task} is ending"));
        }
        Ok(())
    }

    /// Checks a `pause`: only a running (or approval-waiting), unpaused task can pause.
    pub(super) fn check_pause(&self) -> Result<(), Rejection> {
        self.check_open()?;
        let task = self.input.task_id;
        if self.controls.paused || self.budget.is_paused() || self.controls.pause.is_some() {
            return Err(Rejection::Conflict(format!(
                "task {task} is already paused"
            )));
        }
        if !matches!(
            self.status,
            TaskStatus::Running | TaskStatus::WaitingApproval
        ) {
            return Err(Rejection::Conflict(format!(
                "task {task} is not running (it is {})",
                self.status.as_str()
            )));
        }
        Ok(())
    }

    /// Checks a `resume`: only a task a person paused (or asked to pause) can resume.
    pub(super) fn check_resume(&self) -> Result<(), Rejection> {
        self.check_open()?;
        let task = self.input.task_id;
        if self.budget.is_paused() {
            return Err(Rejection::Conflict(format!(
                "task {task} is paused because its budget is spent; raise the budget to resume it"
            )));
        }
        if !self.controls.paused && self.controls.pause.is_none() {
            return Err(Rejection::Conflict(format!("task {task} is not paused")));
        }
        Ok(())
    }

    /// Checks a `close`: only a conversation between turns can be closed.
    pub(super) fn check_close(&self) -> Result<(), Rejection> {
        self.check_open()?;
        let task = self.input.task_id;
        if !self.is_conversation() {
            return Err(Rejection::Conflict(format!(
                "task {task} is not a conversation; cancel it instead"
            )));
        }
        if self.pending.is_some() {
            return Err(Rejection::Conflict(format!(
                "task {task} is running a turn; wait for WorkflowTurnCompleted or cancel it"
            )));
        }
        if self.turn == 0 {
            return Err(Rejection::Conflict(format!(
                "task {task} has had no turn yet; cancel it instead"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{task, with};
    use super::*;

    fn conflict(result: Result<(), Rejection>) -> String {
        match result {
            Err(Rejection::Conflict(message)) => message,
            other => panic!("not a conflict: {other:?}"),
        }
    }

    #[test]
    fn only_a_running_unpaused_task_can_pause() {
        let mut workflow = task(with(|_| {}));
        assert!(conflict(workflow.check_pause()).contains("is not running (it is created)"));
        workflow.status = TaskStatus::Running;
        workflow.check_pause().unwrap();
        workflow.controls.request_pause(Reason::new("p"));
        assert!(conflict(workflow.check_pause()).contains("already paused"));
        workflow.status = TaskStatus::Completed;
        assert!(conflict(workflow.check_pause()).contains("already completed"));
    }

    #[test]
    fn resume_withdraws_a_pause_not_yet_taken_and_ends_one_in_effect() {
        let mut workflow = task(with(|_| {}));
        workflow.status = TaskStatus::Running;
        assert!(conflict(workflow.check_resume()).contains("is not paused"));
        workflow.controls.request_pause(Reason::new("p"));
        workflow.check_resume().unwrap();
        workflow.controls.request_resume(Reason::new("r"));
        assert!(workflow.controls.idle(), "withdrawn before it took effect");
        workflow.controls.request_pause(Reason::new("p"));
        assert!(workflow.controls.take_pause().is_some());
        assert!(workflow.controls.is_paused());
        workflow.controls.request_resume(Reason::new("r"));
        assert_eq!(workflow.controls.take_resume().unwrap().reason, "r");
        assert!(!workflow.controls.is_paused());
    }

    #[test]
    fn a_task_paused_on_its_budget_resumes_only_by_a_raise() {
        let mut workflow = task(with(|_| {}));
        workflow.status = TaskStatus::Paused;
        workflow.budget.set_paused(true);
        assert!(conflict(workflow.check_resume()).contains("raise the budget"));
        assert!(conflict(workflow.check_pause()).contains("already paused"));
    }

    #[test]
    fn only_a_conversation_between_turns_can_close() {
        let mut workflow = task(with(|_| {}));
        assert!(conflict(workflow.check_close()).contains("not a conversation"));
        let mut conversation = task(with(|input| input.parameters.conversation = Some(true)));
        assert!(conflict(conversation.check_close()).contains("no turn yet"));
        conversation.turn = 1;
        conversation.check_close().unwrap();
        conversation.pending = Some(ExecuteRequest {
            query: "q".into(),
            enable_streaming: None,
        });
        assert!(conflict(conversation.check_close()).contains("running a turn"));
        workflow.turn = 1;
        assert!(workflow.check_close().is_err());
    }

    #[test]
    fn execute_needs_a_query_and_an_idle_open_task() {
        let request = |query: &str| ExecuteRequest {
            query: query.into(),
            enable_streaming: None,
        };
        let mut workflow = task(with(|_| {}));
        assert_eq!(
            workflow.check_execute(&request("  ")),
            Err("the query must not be empty".into())
        );
        workflow.check_execute(&request("q")).unwrap();
        workflow.controls.request_cancel(Reason::new("c"));
        assert!(
            workflow
                .check_execute(&request("q"))
                .unwrap_err()
                .ends_with("is ending")
        );
        let mut created = task(with(|input| input.query = Some("first".into())));
        assert!(
            created
                .check_execute(&request("q"))
                .unwrap_err()
                .ends_with("already running")
        );
        created.status = TaskStatus::Failed;
        assert!(
            created
                .check_execute(&request("q"))
                .unwrap_err()
                .contains("create a new task")
        );
    }
}
