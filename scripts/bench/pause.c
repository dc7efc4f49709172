/* A tiny pause process for the benchmark's images (the containerd sandbox image and the bench
 * container image): sleeps in pause(), reaps any child it inherits as PID 1, and exits 0 on SIGINT
 * or SIGTERM. Built static by scripts/bench.sh. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fputs("pause: takes no arguments\n", stderr);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        perror("pause: sigaction SIGCHLD");
        return 1;
    }
    for (;;) {
        pause();
    }
}
