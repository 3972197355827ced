//! One module per verb: its arguments (`Args`) and `exec`, which calls the use case and prints.

pub mod approve;
pub mod artifacts;
pub mod build;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod doctor;
pub mod down;
pub mod env;
pub mod exec;
pub mod gc;
pub mod history;
pub mod init;
pub mod log_writer;
pub mod logs;
pub mod ls;
pub mod model_server;
pub mod promote;
pub mod psql;
pub mod restart;
pub mod rollback;
pub mod status;
pub mod trace;
pub mod up;
pub mod verify;
