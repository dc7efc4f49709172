/* A port-forward target for the bench image: `serve PORT MIB` listens on PORT (all addresses of
 * the pod's netns) and writes MIB MiB of zeros to each connection, then closes it. One connection
 * at a time: the bench reads them one after another. Built static by scripts/bench.sh. */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char chunk[1 << 16];

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int port = atoi(argv[1]);
  long total = atol(argv[2]) << 20;
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) return 1;
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) continue;
    for (long left = total; left > 0;) {
      ssize_t n = write(c, chunk, left < (long)sizeof chunk ? (size_t)left : sizeof chunk);
      if (n <= 0) break;
      left -= n;
    }
    close(c);
  }
}
