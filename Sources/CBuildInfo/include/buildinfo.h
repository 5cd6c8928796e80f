// The git revision ld was built from (LD_REVISION in revision.h, which scripts/revision.sh writes).
#ifndef LD_BUILDINFO_H
#define LD_BUILDINFO_H
const char *ld_revision(void);
#endif
