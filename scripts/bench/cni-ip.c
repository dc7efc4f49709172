/* A no-op CNI plugin for containerd's side of the benchmark: containerd 1.6 refuses a pod whose CNI
 * result has no "eth0" interface with an address ("failed to find network info for sandbox"), so a
 * loopback-only conflist cannot start pods. Chained after the loopback plugin, this one reports an
 * "eth0" holding a loopback-range address without creating anything: the pod's network namespace
 * keeps only lo (what a crius pod has today), and nothing is routed anywhere. ADD prints that
 * result; DEL, CHECK and GC do nothing; VERSION lists the versions it speaks.
 * Built static by scripts/bench.sh as <temp>/cni/bin/bench-ip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    /* Drain the network configuration on stdin (the runtime writes it whatever the command). */
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0) {
    }
    const char *cmd = getenv("CNI_COMMAND");
    if (cmd == NULL) {
        fputs("bench-ip: CNI_COMMAND is not set\n", stderr);
        return 1;
    }
    if (strcmp(cmd, "VERSION") == 0) {
        puts("{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}");
        return 0;
    }
    if (strcmp(cmd, "ADD") != 0) {
        return 0;
    }
    const char *netns = getenv("CNI_NETNS");
    printf("{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"%s\"}],"
           "\"ips\":[{\"address\":\"127.0.0.2/8\",\"interface\":0}],\"dns\":{}}\n",
           netns ? netns : "");
    return 0;
}
