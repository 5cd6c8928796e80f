// The git revision ld was built from, set by Package.swift (Context.gitInformation) as LD_REVISION.
#ifndef LD_BUILDINFO_H
#define LD_BUILDINFO_H
const char *ld_revision(void);
#endif
