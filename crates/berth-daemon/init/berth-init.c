/*
 * berth-init: the tiny init `run --init` puts at /dev/init as the container's PID 1
 * (Docker's docker-init/tini role). It starts the command after "--", passes the signals it
 * gets on to it, reaps every zombie (orphans are re-parented to PID 1), and exits with the
 * command's status (128 + the signal when the command was killed by one).
 *
 * Built static by berth-daemon's build.rs, so it runs in any image.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "berth-init: usage: berth-init -- COMMAND [ARG...]\n");
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) {
        perror("berth-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        /* Its own process group, on the terminal if there is one, as tini does. */
        setpgid(0, 0);
        if (isatty(STDIN_FILENO)) {
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(STDIN_FILENO, getpgrp());
            signal(SIGTTOU, SIG_DFL);
        }
        execvp(argv[first], &argv[first]);
        fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        struct timespec tick = {1, 0};
        siginfo_t si;
        int sig = sigtimedwait(&all, &si, &tick);
        if (sig > 0 && sig != SIGCHLD) {
            /* To the command's process group, falling back to the command itself. */
            if (kill(-child, sig) < 0)
                kill(child, sig);
        }
        int status;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
            if (p == child) {
                if (WIFSIGNALED(status))
                    return 128 + WTERMSIG(status);
                return WEXITSTATUS(status);
            }
        }
    }
}
