/* What the loader checks before using the library: the hash of the sources it was built from. */
#include "kernels.h"

#ifndef EDGENODE_SOURCE_HASH
#error "build with -DEDGENODE_SOURCE_HASH (python -m edgenode.kernels.build)"
#endif

/* The marker lets the build find the stamp in the file's bytes without loading it. */
static const char stamp[] = "edgenode-kernels-source:" EDGENODE_SOURCE_HASH;

EDGENODE_EXPORT const char *edgenode_kernels_source(void) { return stamp + sizeof "edgenode-kernels-source:" - 1; }
