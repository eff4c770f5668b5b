/* Entry point: parses flags, loads the config and runs the agent. */
#include <stdio.h>

int main(int argc, char **argv)
{
    fprintf(stderr, "bpftail: not wired yet\n");
    return 1;
}
