//! The search attributes every task's workflow carries (`temporal workflow list --query …`).

use temporalio_common::search_attributes::SearchAttributeKey;

/// The agent's id.
pub const AGENT_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("AgentId");
/// The task's status (`TaskStatus::as_str`), upserted on every change.
pub const TASK_STATUS: SearchAttributeKey<String> = SearchAttributeKey::keyword("TaskStatus");
/// The user who created the task.
pub const USER_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("UserId");
/// The tenant the task belongs to (absent on tasks created before tenancy).
pub const TENANT_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("TenantId");

/// Every search attribute a task uses (each must be registered on the namespace).
pub const ALL: [SearchAttributeKey<String>; 4] = [AGENT_ID, TASK_STATUS, USER_ID, TENANT_ID];
