#include "buildinfo.h"
#ifndef LD_REVISION
#define LD_REVISION "unknown"
#endif
const char *ld_revision(void) { return LD_REVISION; }
