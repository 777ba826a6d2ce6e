/* Shared declarations of edgenode's native kernels (edgenode/kernels/README in __init__.py).
 *
 * Every exported function takes plain C types (pointers, int64_t, double) so that ctypes calls it with
 * no Python C API: one shared library serves every CPython version and numpy 1 and 2 alike. Arrays are
 * C-contiguous and owned by the caller; a kernel never allocates, never keeps a pointer past its return,
 * and writes only the outputs it is given with their capacities. */
#ifndef EDGENODE_KERNELS_H
#define EDGENODE_KERNELS_H

#include <stdint.h>

#define EDGENODE_EXPORT __attribute__((visibility("default")))

#endif
