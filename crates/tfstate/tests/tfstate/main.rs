//! The backend over real sockets: its HTTP protocol with a real client, the real `terraform`
//! binary driving it, and the daemon's hosting on a kept port.

mod hosting;
mod protocol;
mod support;
mod terraform;
