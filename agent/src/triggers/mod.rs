//! What starts runs: cron schedules ([`schedule`]), the Alertmanager
//! webhook ([`alertmanager`], served by [`http`]) and manual requests (the
//! `invoke` command and the HTTP API). Every trigger hands its requests to
//! [`crate::dispatch::admit`], which applies the guardrails and makes them
//! durable, and the run queue ([`crate::dispatch::queue`]) starts them.

pub mod alertmanager;
pub mod http;
pub mod http_serve;
pub mod schedule;
