/* weftd_core.c: weftd.c without its main, for the dispatcher's fuzz target
 * (which sets up the global state itself). */
#define main weftd_main
#include "scheduler/weftd.c"
