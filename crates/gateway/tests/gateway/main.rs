//! `sandpit_gateway::serve` over real sockets: a real backend (hyper), a real client (hyper,
//! raw TCP, a WebSocket client), the gateway between them. Timeouts are configured small where
//! a test needs one; every wait is for something to happen, bounded by a guard, never a fixed
//! sleep.

mod activity;
mod answers;
mod forwarding;
mod limits;
mod streaming;
mod support;
mod websocket;
