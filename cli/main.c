/* kvctl: see cli/kvctl.h; everything happens in kvctl_main. */
#include "kvctl.h"

int main(int argc, char **argv)
{
    return kvctl_main(argc, argv);
}
