#include "buildinfo.h"
// revision.h is written by scripts/revision.sh (run by `make build`) and not committed.
#if __has_include("revision.h")
#include "revision.h"
#endif
#ifndef LD_REVISION
#define LD_REVISION "unknown"
#endif
const char *ld_revision(void) { return LD_REVISION; }
