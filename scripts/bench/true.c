/* `true` for the bench container image (ExecSync `true`). Built static by scripts/bench.sh. */
int main(void) { return 0; }
