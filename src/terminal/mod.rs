//! Terminals: the container's own pty, made inside the container and handed to whoever asked
//! (`console`), and the runtime's side of a terminal it attaches itself: raw mode, window size,
//! signal forwarding (`relay`).

pub mod console;
pub mod relay;
