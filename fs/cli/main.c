#include <stdio.h>
int main(void) { puts("dsfs " DSFS_VERSION); return 0; }
