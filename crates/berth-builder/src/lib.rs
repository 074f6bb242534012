//! `docker build`: the Dockerfile front end (parser, shell-word expansion, typed
//! instructions), `.dockerignore` rules, and the build executor that drives an engine
//! through [`executor::Backend`].

pub mod dockerfile;
pub mod dockerignore;
pub mod instructions;
pub mod shell;
