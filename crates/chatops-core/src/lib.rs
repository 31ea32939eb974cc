//! chatops' shared language. Every other crate speaks it; it depends on no platform, actor or
//! web crate.
//!
//! # Layout
//! - [`ids`]: newtypes for the identifiers that cross crates (`JobName`, `UserId`, `JobId`, ...).
//! - [`command`]: [`ChatCommand`], the one message adapters produce, and the command grammar.
//! - [`role`]: GitLab's role ladder and who may run jobs.
//! - [`reply`]: the platform-neutral reply model that adapters render.
//! - [`adapter`]: the [`ChatAdapter`] trait a chat platform implements, its capabilities as data.

pub mod adapter;
pub mod command;
pub mod ids;
pub mod reply;
pub mod role;

pub use adapter::{
    Adapters, BoxFuture, Capabilities, ChatAdapter, Clock, DeliveryError, FixedClock,
    HostAllowList, HttpReply, Inbound, InboundError, InboundRequest, Markup, Retry, Route,
    RouteKind, StatusMessage, SystemClock, Via,
};
pub use command::{ChatCommand, ReplyTarget, Subcommand};
pub use ids::{ChannelId, JobId, JobName, PlatformId, ProjectName, UserId};
pub use reply::{Action, Inline, JobStatus, OutputBlock, Reply, Tone, Visibility};
pub use role::Role;
