//! `docker build`'s front end: the Dockerfile parser, Docker's shell-word expansion, the
//! typed instructions, and `.dockerignore` rules. It knows nothing of engines: the daemon's
//! build executor (`berth_daemon::build`) and the CLI's context walker use it.

pub mod dockerfile;
pub mod dockerignore;
pub mod instructions;
pub mod shell;
