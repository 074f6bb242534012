//! Network namespaces for tests: each is held by a thread that `unshare(CLONE_NEWNET)`ed and
//! runs the closures it is sent, so a test never touches the host's network and everything
//! it made dies with the threads.

#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// Whether the tests can make namespaces (root); the tests skip otherwise.
pub fn privileged() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (network namespaces, links)");
    false
}

/// A new network namespace, held by its own thread.
pub struct Netns {
    file: File,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Netns {
    pub fn new() -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ftx, frx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            let tid = nix::unistd::gettid();
            let f = File::open(format!("/proc/self/task/{tid}/ns/net")).expect("open own netns");
            ftx.send(f).unwrap();
            for job in rx {
                job();
            }
        });
        let file = frx.recv().expect("netns thread started");
        Self {
            file,
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// The namespace, as a file (`/proc/self/task/<tid>/ns/net` of its thread).
    pub fn file(&self) -> File {
        self.file.try_clone().unwrap()
    }

    /// Run `f` on the namespace's thread.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        match rx.recv().expect("job ran") {
            Ok(v) => v,
            Err(p) => resume_unwind(p),
        }
    }

    /// Run the future `f` makes on a current-thread runtime on the namespace's thread.
    pub fn block_on<F, T>(&self, f: impl FnOnce() -> F + Send + 'static) -> T
    where
        F: Future<Output = T>,
        T: Send + 'static,
    {
        self.run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
